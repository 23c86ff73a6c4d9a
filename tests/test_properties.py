"""Property-based tests (hypothesis): ranking metrics against a brute-force reference, their bounds and
symmetry; splitters put every row in exactly one part and temporal splits never leak the future."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import scipy.sparse as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from recsys_utils.core.metrics import ranking_metrics
from recsys_utils.core.topk import top_k
from recsys_utils.data.splits import leave_last_out, random_split, stratified_split, temporal_split

FAST = settings(max_examples=50, deadline=None, database=None)  # a few seconds in all; writes no example files


# ------------------------------------------------------------------ ranking metrics


@st.composite
def ranking_cases(draw):
    """Top-k lists (with -1 padding) and a binary relevance matrix of a few users and items."""
    n_users = draw(st.integers(1, 8))
    n_items = draw(st.integers(2, 12))
    k = draw(st.integers(1, n_items + 2))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    density = draw(st.floats(0.0, 1.0))
    relevant = rng.random((n_users, n_items)) < density
    width = draw(st.integers(1, n_items))
    top = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :width]
    lengths = rng.integers(0, width + 1, n_users)
    top[np.arange(width)[None, :] >= lengths[:, None]] = -1  # some lists end early
    return top, relevant, k


def reference(top, relevant, k):
    """Each metric from its definition, one user at a time."""
    rows = {}
    for user in range(len(top)):
        rel = set(np.flatnonzero(relevant[user]))
        if not rel:
            continue
        hits = [item >= 0 and item in rel for item in list(top[user][:k]) + [-1] * max(0, k - top.shape[1])]
        dcg = sum(1 / math.log2(j + 2) for j, hit in enumerate(hits) if hit)
        idcg = sum(1 / math.log2(j + 2) for j in range(min(len(rel), k)))
        first = next((j for j, hit in enumerate(hits) if hit), None)
        rows[user] = {
            "precision": sum(hits) / k, "recall": sum(hits) / len(rel), "ndcg": dcg / idcg,
            "map": sum(sum(hits[: j + 1]) / (j + 1) for j, hit in enumerate(hits) if hit) / min(len(rel), k),
            "hr": float(any(hits)), "mrr": 0.0 if first is None else 1 / (first + 1),
        }
    names = ["precision", "recall", "ndcg", "map", "hr", "mrr"]
    return pd.DataFrame.from_dict(rows, orient="index", columns=names, dtype=float)


@FAST
@given(ranking_cases())
def test_metrics_agree_with_the_brute_force_reference(case):
    top, relevant, k = case
    result = ranking_metrics(top, sp.csr_matrix(relevant), k)
    expected = reference(top, relevant, k)
    np.testing.assert_array_equal(result.users, expected.index.to_numpy(dtype=np.int64))
    assert result.n_excluded == len(top) - len(expected)
    for name in expected.columns:
        np.testing.assert_allclose(result.per_user[f"{name}@{k}"], expected[name], rtol=0, atol=1e-12, err_msg=name)


@FAST
@given(ranking_cases())
def test_metrics_are_bounded_and_consistent(case):
    top, relevant, k = case
    values = ranking_metrics(top, sp.csr_matrix(relevant), k).per_user
    assert ((values >= 0) & (values <= 1 + 1e-12)).all().all()
    assert (values[f"mrr@{k}"] <= values[f"hr@{k}"]).all()  # a reciprocal rank needs a hit
    assert (values[f"ndcg@{k}"] <= values[f"hr@{k}"] + 1e-12).all()
    assert ((values[f"hr@{k}"] == 0) == (values[f"precision@{k}"] == 0)).all()


@FAST
@given(ranking_cases(), st.integers(0, 2**32 - 1))
def test_metrics_are_invariant_to_permuting_users(case, seed):
    top, relevant, k = case
    order = np.random.default_rng(seed).permutation(len(top))
    original = ranking_metrics(top, sp.csr_matrix(relevant), k)
    permuted = ranking_metrics(top[order], sp.csr_matrix(relevant[order]), k)
    for name, value in original.mean.items():
        if not math.isnan(value):
            assert math.isclose(permuted.mean[name], value, abs_tol=1e-12), name
    # per user: the permuted row of a user carries that user's values
    rows = pd.Series(np.arange(len(order)), index=order)  # original user -> position after permuting
    np.testing.assert_allclose(permuted.per_user.loc[rows[original.users].to_numpy()].to_numpy(),
                               original.per_user.to_numpy(), rtol=0, atol=1e-12)


@FAST
@given(st.integers(1, 6), st.integers(2, 15), st.integers(0, 2**32 - 1))
def test_recall_and_hit_rate_never_fall_as_k_grows(n_users, n_items, seed):
    rng = np.random.default_rng(seed)
    relevant = sp.csr_matrix(rng.random((n_users, n_items)) < 0.3)
    top = top_k(rng.random((n_users, n_items)), n_items)
    previous = None
    for k in range(1, n_items + 1):
        values = ranking_metrics(top, relevant, k, metrics=("recall", "hr")).per_user.to_numpy()
        if previous is not None:
            assert (values >= previous - 1e-12).all()
        previous = values
    if previous is not None and len(previous):
        np.testing.assert_allclose(previous, 1.0)  # the whole catalogue finds everything


# ------------------------------------------------------------------ splitters


@st.composite
def event_frames(draw):
    """A log of a few users and items with (possibly tied) timestamps and a non-default index."""
    n = draw(st.integers(2, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_times = draw(st.integers(1, 30))  # few distinct times: many ties
    frame = pd.DataFrame({
        "user_id": rng.integers(0, draw(st.integers(1, 8)), n),
        "item_id": rng.integers(0, draw(st.integers(1, 10)), n),
        "timestamp": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, n_times, n), unit="h"),
    }, index=rng.permutation(np.arange(100, 100 + n)))
    return frame


def assert_partition(frame, split):
    parts = [part for part in (split.train, split.validation, split.test) if part is not None]
    joined = pd.concat(parts)
    assert not joined.index.duplicated().any()  # no row in two parts
    assert sorted(joined.index) == sorted(frame.index)  # and every row in one
    pd.testing.assert_frame_equal(joined.loc[frame.index], frame)  # rows unchanged


@FAST
@given(event_frames(), st.floats(0.05, 0.6), st.floats(0.0, 0.3), st.integers(0, 1000))
def test_random_and_stratified_splits_partition_the_rows(frame, test_fraction, validation_fraction, seed):
    assert_partition(frame, random_split(frame, test_fraction, validation_fraction, seed=seed))
    split = stratified_split(frame, test_fraction, by="item_id", seed=seed)
    assert_partition(frame, split)
    # each item keeps round((1 - f) * its rows) in train
    expected = np.round((1 - test_fraction) * frame.item_id.value_counts()).astype(int)
    kept = split.train.item_id.value_counts().reindex(expected.index, fill_value=0)
    pd.testing.assert_series_equal(kept, expected, check_names=False)


@FAST
@given(event_frames(), st.data())
def test_temporal_split_never_trains_on_the_future(frame, data):
    # cut-offs drawn from the log's own times, so there is always a past to train on and a test period
    times = np.sort(frame.timestamp.unique())
    assume(len(times) >= 2)  # one distinct time cannot be split by time (the splitter rightly refuses)
    test_at = data.draw(st.integers(1, len(times) - 1))
    validation_at = data.draw(st.integers(1, test_at))
    test_start, validation_start = pd.Timestamp(times[test_at]), pd.Timestamp(times[validation_at])
    split = temporal_split(frame, test_start=test_start, validation_start=validation_start)
    assert_partition(frame, split)
    assert split.train.timestamp.max() < validation_start <= split.test.timestamp.min()
    if split.validation is not None and len(split.validation):
        assert split.train.timestamp.max() < split.validation.timestamp.min()
        assert split.validation.timestamp.max() < split.test.timestamp.min()


@FAST
@given(event_frames(), st.integers(1, 3), st.integers(0, 2), st.integers(1, 3))
def test_leave_last_out_holds_out_each_users_latest_rows(frame, n_test, n_validation, min_train):
    split = leave_last_out(frame, n_test=n_test, n_validation=n_validation, min_train=min_train)
    assert_partition(frame, split)
    counts = frame.user_id.value_counts()
    eligible = counts[counts >= min_train + n_test + n_validation].index
    held = split.test.user_id.value_counts().reindex(eligible, fill_value=0)
    assert (held == n_test).all() and set(split.test.user_id) <= set(eligible)
    if n_validation:
        assert (split.validation.user_id.value_counts().reindex(eligible, fill_value=0) == n_validation).all()
    for user, rows in split.train.groupby("user_id"):  # no training row is later than the user's held-out rows
        later = [part[part.user_id == user].timestamp.min() for part in (split.validation, split.test)
                 if part is not None and (part.user_id == user).any()]
        if later:
            assert rows.timestamp.max() <= min(later)
