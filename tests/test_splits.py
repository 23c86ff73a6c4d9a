import numpy as np
import pandas as pd
import pytest

from recsys_utils.data.splits import leave_last_out, random_split, temporal_split


@pytest.fixture
def events():
    rng = np.random.default_rng(0)
    n = 2000
    return pd.DataFrame(
        {
            "user_id": rng.integers(0, 100, n),
            "item_id": rng.integers(0, 50, n),
            "timestamp": pd.Timestamp("2024-01-01")
            + pd.to_timedelta(rng.integers(0, 60 * 86400, n), unit="s"),
        }
    )


def row_keys(frame):
    return set(frame.index)


def test_temporal_split_respects_time_and_partitions(events):
    copy = events.copy()
    split = temporal_split(events, test_days=10, validation_days=5)
    pd.testing.assert_frame_equal(events, copy)  # input untouched
    assert split.train.timestamp.max() < split.validation.timestamp.min()
    assert split.validation.timestamp.max() < split.test.timestamp.min()
    parts = [row_keys(split.train), row_keys(split.validation), row_keys(split.test)]
    assert sum(map(len, parts)) == len(events)
    assert not (parts[0] & parts[2]) and not (parts[0] & parts[1]) and not (parts[1] & parts[2])
    cut = events.timestamp.max() - pd.Timedelta(days=10)
    assert (split.test.timestamp >= cut).all() and len(split.test) == (events.timestamp >= cut).sum()


def test_leave_last_out_matches_groupby(events):
    split = leave_last_out(events, n_test=1, n_validation=1, min_train=1)
    # independent implementation: each user's latest row (ties by original order)
    ordered = events.reset_index().sort_values(["timestamp", "index"], kind="stable")
    counts = events.user_id.value_counts()
    eligible = ordered[ordered.user_id.map(counts) >= 3]
    last = eligible.groupby("user_id").tail(1)["index"]
    second = eligible.drop(last.index).groupby("user_id").tail(1)["index"]
    assert row_keys(split.test) == set(last)
    assert row_keys(split.validation) == set(second)
    assert len(split.train) + len(split.test) + len(split.validation) == len(events)
    # nothing in train is later than the same user's test row
    latest_train = split.train.groupby("user_id").timestamp.max()
    test_time = split.test.set_index("user_id").timestamp
    assert (latest_train.reindex(test_time.index) <= test_time).all()


def test_random_split_fractions_and_seed(events):
    a = random_split(events, test_fraction=0.25, seed=1)
    b = random_split(events, test_fraction=0.25, seed=1)
    assert row_keys(a.test) == row_keys(b.test)
    assert abs(len(a.test) / len(events) - 0.25) < 0.05
    assert not (row_keys(a.train) & row_keys(a.test))


def test_to_interactions_shares_index(events):
    split = temporal_split(events, test_days=10)
    m = split.to_interactions()
    assert m.train.matrix.shape == m.test.matrix.shape
    assert m.train.nnz + m.test.nnz >= events[["user_id", "item_id"]].drop_duplicates().shape[0]


def test_errors_name_the_problem(events):
    with pytest.raises(KeyError, match="timestamp"):
        temporal_split(events.drop(columns="timestamp"), test_days=3)
    with pytest.raises(ValueError, match="empty"):
        leave_last_out(events.iloc[:0])
    with pytest.raises(ValueError, match="test_start or test_days"):
        temporal_split(events)


def test_stratified_split_keeps_each_items_share():
    from recsys_utils.data.splits import stratified_split

    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"user_id": rng.integers(0, 50, 2000), "item_id": rng.integers(0, 40, 2000)})
    before = frame.copy()
    split = stratified_split(frame, test_fraction=0.25, by="item_id", seed=1)
    pd.testing.assert_frame_equal(frame, before)
    assert len(split.train) + len(split.test) == len(frame)
    assert split.train.index.intersection(split.test.index).empty
    counts = frame["item_id"].value_counts()
    train_counts = split.train["item_id"].value_counts().reindex(counts.index, fill_value=0)
    np.testing.assert_array_equal(train_counts.to_numpy(), np.round(0.75 * counts.to_numpy()).astype(int))
    again = stratified_split(frame, test_fraction=0.25, by="item_id", seed=1)
    pd.testing.assert_frame_equal(split.test, again.test)
