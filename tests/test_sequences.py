"""Histories as padded arrays and the leave-last-out next-item split (recsys_utils.data.sequences)."""

import numpy as np
import pandas as pd
import pytest

from recsys_utils.data.interactions import IdIndex
from recsys_utils.data.sequences import (
    PAD,
    NextItemTask,
    Sequences,
    build_sequences,
    drop_last,
    leave_last_out_sequences,
    length_buckets,
)

T0 = pd.Timestamp("2024-03-01")


def frame(rows):
    """rows: (user, item, minute[, event]) -> interactions frame in the course vocabulary."""
    out = pd.DataFrame(rows, columns=["user_id", "item_id", "minute", "event"][: len(rows[0])])
    out["timestamp"] = T0 + pd.to_timedelta(out.pop("minute"), unit="min")
    return out


@pytest.fixture
def small():
    # user 1: a b c d e (given out of time order); user 2: x a (a repeat of x collapses); user 3: b
    return frame([
        (1, "c", 3, "view"), (1, "a", 1, "view"), (1, "b", 2, "view"), (1, "e", 5, "view"),
        (1, "d", 4, "view"), (2, "x", 1, "view"), (2, "x", 2, "view"), (2, "a", 3, "purchase"),
        (3, "b", 1, "view"),
    ])


def decode(seq: Sequences, row: int) -> list:
    items = seq.items[row]
    return list(seq.item_index.to_ids(items[items != PAD]))


def test_build_sequences_orders_by_time_right_aligns_and_dedupes(small):
    seq = build_sequences(small, max_len=4)
    keys = list(seq.keys)
    assert sorted(keys) == [1, 2, 3]
    r1, r2, r3 = keys.index(1), keys.index(2), keys.index(3)
    assert decode(seq, r1) == ["b", "c", "d", "e"]  # most recent 4 of a b c d e
    assert decode(seq, r2) == ["x", "a"]  # consecutive x x collapsed
    assert decode(seq, r3) == ["b"]
    assert seq.items[r2, :2].tolist() == [PAD, PAD]  # padding on the left
    assert seq.lengths[[r1, r2, r3]].tolist() == [4, 2, 1]
    assert seq.n_items == 6 and seq.max_len == 4
    # without dedupe the repeat stays
    assert decode(build_sequences(small, max_len=4, dedupe=False), r2) == ["x", "x", "a"]


def test_build_sequences_ties_keep_row_order_and_filters():
    tied = frame([(1, "p", 0), (1, "q", 0), (1, "r", 0)])
    seq = build_sequences(tied, max_len=5)
    assert decode(seq, 0) == ["p", "q", "r"]
    small = frame([(1, "a", 1, "view"), (1, "b", 2, "purchase"), (2, "a", 1, "view")])
    only_views = build_sequences(small, events="view")
    assert [decode(only_views, r) for r in range(len(only_views))] == [["a"], ["a"]]
    assert list(build_sequences(small, min_length=2).keys) == [1]


def test_build_sequences_matches_a_brute_force_groupby():
    rng = np.random.default_rng(3)
    n = 600
    events = pd.DataFrame({"user_id": rng.integers(0, 40, n), "item_id": rng.integers(0, 25, n),
                           "timestamp": T0 + pd.to_timedelta(rng.permutation(n), unit="s")})
    seq = build_sequences(events, max_len=7)
    ordered = events.sort_values("timestamp")
    for row, user in enumerate(seq.keys):
        items = ordered.loc[ordered.user_id == user, "item_id"].to_numpy()
        items = items[np.r_[True, items[1:] != items[:-1]]][-7:]
        assert decode(seq, row) == list(items)


def test_leave_last_out_sequences_targets_and_histories(small):
    split = leave_last_out_sequences(small, max_len=3)
    assert list(split.train.keys) == [1]  # users 2 and 3 have fewer than 3 items
    ids = split.train.item_index
    assert decode(split.train, 0) == ["a", "b", "c"]
    assert ids.to_ids(split.validation.targets).tolist() == ["d"]
    assert ids.to_ids(split.test.targets).tolist() == ["e"]
    assert list(ids.to_ids(split.validation.histories[0])) == ["a", "b", "c"]
    assert list(ids.to_ids(split.test.histories[0])) == ["b", "c", "d"]  # truncated to max_len
    assert split.full_lengths.tolist() == [5]
    assert split.validation.full_lengths.tolist() == [3]
    assert split.test.full_lengths.tolist() == [4]
    assert split.sizes() == {"sequences": 1, "train_items": 3, "validation": 1, "test": 1, "items": 6}


def test_leave_last_out_sequences_never_leaks_targets():
    rng = np.random.default_rng(0)
    n = 3000
    events = pd.DataFrame({"user_id": rng.integers(0, 80, n), "item_id": rng.integers(0, 60, n),
                           "timestamp": T0 + pd.to_timedelta(rng.integers(0, 10**6, n), unit="s")})
    split = leave_last_out_sequences(events, max_len=10)
    # the validation history is the training sequence; the test history is it plus the validation target
    np.testing.assert_array_equal(split.validation.histories, split.train.items)
    np.testing.assert_array_equal(split.test.histories[:, -1], split.validation.targets)
    np.testing.assert_array_equal(split.test.histories[:, :-1], split.train.items[:, 1:])
    # after collapsing repeats, a target never equals the item just before it
    assert (split.test.targets != split.test.histories[:, -1]).all()
    assert (split.validation.targets != split.validation.histories[:, -1]).all()


def test_item_index_can_be_fixed_and_unknown_items_are_named(small):
    index = IdIndex(["a", "b", "c", "d", "e", "x", "zz"], "item_id")
    seq = build_sequences(small, items=index)
    assert seq.n_items == 7
    with pytest.raises(KeyError, match="item_id 'x'"):
        build_sequences(small, items=IdIndex(["a", "b", "c", "d", "e"], "item_id"))


def test_bad_input_errors(small):
    with pytest.raises(KeyError, match="timestamp"):
        build_sequences(small.drop(columns="timestamp"))
    with pytest.raises(KeyError, match="session_id"):
        build_sequences(small, by="session_id")
    with pytest.raises(ValueError, match="max_len"):
        build_sequences(small, max_len=0)
    with pytest.raises(ValueError, match="min_length"):
        leave_last_out_sequences(small, min_length=2)
    with pytest.raises(ValueError, match="no 'user_id'"):
        leave_last_out_sequences(small, min_length=9)
    with pytest.raises(ValueError, match="no rows"):
        build_sequences(small, events="refund")
    with pytest.raises(TypeError):
        build_sequences(small.to_numpy())
    missing = small.copy()
    missing.loc[3, "user_id"] = np.nan
    with pytest.raises(ValueError, match="missing values"):
        build_sequences(missing)


def test_sequences_validate_their_array():
    with pytest.raises(ValueError, match="padding after an item"):
        Sequences.from_array(np.array([[1, -1, 2]]), n_items=3)
    with pytest.raises(ValueError, match=r"\[0, 3\)"):
        Sequences.from_array(np.array([[-1, 3]]), n_items=3)
    with pytest.raises(ValueError, match="2-D"):
        Sequences.from_array(np.array([1, 2]), n_items=3)
    with pytest.raises(ValueError, match="target"):
        NextItemTask(np.array([[0, 1]]), np.array([-1]), np.array([0]))


def test_sequence_helpers():
    seq = Sequences.from_array(np.array([[-1, 0, 1, 2], [-1, -1, 2, 0], [-1, -1, -1, 1]]), n_items=4)
    assert seq.last().tolist() == [2, 0, 1]
    assert seq.drop_last().items.tolist() == [[-1, -1, 0, 1], [-1, -1, -1, 2], [-1, -1, -1, -1]]
    prev, nxt = seq.transitions()
    assert sorted(zip(prev.tolist(), nxt.tolist(), strict=True)) == [(0, 1), (1, 2), (2, 0)]
    assert seq.item_counts().tolist() == [2, 2, 2, 0]
    assert drop_last(seq.items, 0).tolist() == seq.items.tolist()
    with pytest.raises(ValueError):
        drop_last(seq.items, -1)


def test_length_buckets():
    buckets = length_buckets(np.array([1, 4, 5, 19, 20, 49, 50, 300]))
    assert list(buckets.astype(str)) == ["1-4", "1-4", "5-9", "10-19", "20-49", "20-49", "50+", "50+"]
    assert list(length_buckets(np.array([2, 3]), edges=(1, 3)).astype(str)) == ["1-2", "3+"]
