"""Graders of notebook 19 (benchmark): the protocols' pieces and a BPR update by hand.

16.1 sampled HR@k / NDCG@k of one positive against N negatives (against
:func:`recsys_utils.core.metrics.sampled_ranking_metrics`), 16.2 the random split stratified by
item (against :func:`recsys_utils.data.splits.stratified_split`), 16.3 MAP@k as we define it and
as microsoft/recommenders' ``map`` does (against :func:`recsys_utils.core.metrics.ranking_metrics`)
and 16.4 one mini-batch step of BPR-MF in numpy (against :meth:`recsys_utils.models.bpr.BPR._step`
with the same weights).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from recsys_utils.core.metrics import ranking_metrics, sampled_ranking_metrics
from recsys_utils.course.graders.registry import grader
from recsys_utils.data.splits import stratified_split
from recsys_utils.models.bpr import BPR


def _pair(value, what: str) -> tuple[float, float]:
    assert value is not None, f"{what} returned None: return a pair (hr, ndcg)"
    assert isinstance(value, tuple) and len(value) == 2, f"{what} must return a pair (hr, ndcg)"
    return float(value[0]), float(value[1])


@grader("19.1")
def sampled_metrics(learner) -> str:
    """``learner(pos_scores, neg_scores, k)`` equals ``sampled_ranking_metrics`` (ties count against)."""
    rng = np.random.default_rng(111)
    for n_neg, k in ((99, 10), (20, 5), (9, 1)):
        pos = rng.integers(0, 30, size=400).astype(np.float64)  # integer scores: many ties on purpose
        neg = rng.integers(0, 30, size=(400, n_neg)).astype(np.float64)
        neg[rng.random(neg.shape) < 0.05] = -np.inf  # a dropped candidate never outranks the positive
        expected = sampled_ranking_metrics(pos, neg, k)
        hr, ndcg = _pair(learner(pos.copy(), neg.copy(), k), "sampled_metrics")
        assert abs(hr - expected[f"sampled_hr@{k}"]) < 1e-9, (
            f"{n_neg} negatives, k={k}: HR expected {expected[f'sampled_hr@{k}']:.4f}, got {hr:.4f}. The positive's "
            "0-based rank is the number of negatives scoring AT LEAST as high (a tie counts against it, so a "
            "constant model earns nothing); a hit is rank < k")
        assert abs(ndcg - expected[f"sampled_ndcg@{k}"]) < 1e-9, (
            f"{n_neg} negatives, k={k}: NDCG expected {expected[f'sampled_ndcg@{k}']:.4f}, got {ndcg:.4f} "
            "(1 / log2(rank + 2) for a hit, 0 otherwise, averaged over the rows)")
    return "sampled HR@k and NDCG@k equal recsys_utils' sampled_ranking_metrics with ties and dropped negatives"


@grader("19.2")
def stratified_train_mask(learner) -> str:
    """``learner(items, test_fraction, seed)`` keeps in train the rows ``stratified_split`` keeps."""
    rng = np.random.default_rng(112)
    sizes = np.r_[1, 2, 2, 3, 4, 6, 6, 7, 10, 10, 14, rng.integers(1, 40, size=30)]
    items = np.repeat(np.arange(sizes.size) * 7 + 3, sizes)
    items = items[rng.permutation(items.size)]
    frame = pd.DataFrame({"user_id": rng.integers(0, 50, size=items.size), "item_id": items})
    for fraction, seed in ((0.25, 42), (0.25, 7), (0.4, 42)):
        split = stratified_split(frame, test_fraction=fraction, by="item_id", seed=seed)
        expected = frame.index.isin(split.train.index)
        got = learner(frame["item_id"].to_numpy().copy(), fraction, seed)
        assert got is not None, "stratified_train_mask returned None: return a boolean mask, True = train"
        got = np.asarray(got, dtype=bool)
        assert got.shape == expected.shape, f"one flag per row ({expected.size}), got shape {got.shape}"
        if not np.array_equal(got, expected):
            bad = frame["item_id"].to_numpy()[got != expected][0]
            n = int((items == bad).sum())
            raise AssertionError(
                f"test_fraction={fraction}, seed={seed}: item {bad} ({n} rows) should keep "
                f"{int(expected[items == bad].sum())} rows in train, you kept {int(got[items == bad].sum())} "
                "or other rows. Draw one key per row with np.random.default_rng(seed).random(n_rows); within "
                "each item the np.round((1 - test_fraction) * size) rows with the smallest keys train")
    return "train rows equal recsys_utils.data.splits.stratified_split for three fractions and seeds"


def _lists(rng: np.random.Generator, n_users: int, n_items: int, k: int) -> tuple[np.ndarray, list[set]]:
    top = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :k]
    sizes = rng.integers(1, 3 * k, size=n_users)  # fewer and more relevant items than k
    relevant = [set(rng.choice(n_items, size=s, replace=False).tolist()) for s in sizes]
    return top, relevant


@grader("19.3")
def map_at_k(learner) -> str:
    """``learner(top, relevant, k, divide_by)``: ours ("min") and recommenders' ("all") MAP@k."""
    rng = np.random.default_rng(113)
    n_users, n_items = 150, 40
    for k in (1, 5, 10):
        top, relevant = _lists(rng, n_users, n_items, k)
        rows = np.repeat(np.arange(n_users), [len(r) for r in relevant])
        cols = np.concatenate([sorted(r) for r in relevant])
        matrix = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n_users, n_items))
        ours = ranking_metrics(top, matrix, k, ("map",)).per_user[f"map@{k}"].to_numpy()
        sizes = np.array([len(r) for r in relevant])
        theirs = ours * np.minimum(sizes, k) / sizes  # the same sum of precisions, divided by |R|
        for divide_by, expected in (("min", ours.mean()), ("all", theirs.mean())):
            got = learner(top.copy(), [set(r) for r in relevant], k, divide_by)
            assert got is not None, "map_at_k returned None: return the mean over users"
            assert abs(float(got) - expected) < 1e-9, (
                f"k={k}, divide_by={divide_by!r}: expected {expected:.5f}, got {float(got):.5f}. AP@k sums "
                "precision@j at each position j <= k holding a relevant item, then divides by "
                + ("min(|R|, k) (ours: a perfect list scores 1)" if divide_by == "min"
                   else "|R| (recommenders': a user with more than k relevant items cannot reach 1)"))
    return "MAP@k equals recsys_utils' ranking_metrics (divide by min(|R|, k)) and recommenders' (divide by |R|)"


@grader("19.4")
def bpr_step(learner) -> str:
    """``learner(P, Q, b, users, pos, neg, lr, l2)`` equals ``BPR._step`` on the same weights."""
    rng = np.random.default_rng(114)
    n_users, n_items, dim, batch = 8, 12, 5, 64  # a batch larger than the tables: rows repeat
    for lr, l2 in ((0.05, 0.01), (0.5, 0.0)):
        p = rng.normal(0, 0.5, size=(n_users, dim))
        q = rng.normal(0, 0.5, size=(n_items, dim))
        b = rng.normal(0, 0.1, size=n_items)
        users = rng.integers(0, n_users, size=batch)
        pos = rng.integers(0, n_items, size=batch)
        neg = (pos + rng.integers(1, n_items, size=batch)) % n_items
        tp, tq, tb = (torch.tensor(a, dtype=torch.float64) for a in (p, q, b))
        BPR._step(tp, tq, tb, torch.tensor(users), torch.tensor(pos), torch.tensor(neg), lr, l2)
        got = learner(p.copy(), q.copy(), b.copy(), users.copy(), pos.copy(), neg.copy(), lr, l2)
        assert isinstance(got, tuple) and len(got) == 3, "return the updated (P, Q, b)"
        for name, mine, want, before in zip("PQb", got, (tp, tq, tb), (p, q, b), strict=True):
            mine = np.asarray(mine, dtype=np.float64)
            assert mine.shape == before.shape, f"{name} must keep its shape {before.shape}, got {mine.shape}"
            assert not np.allclose(want.numpy(), before), "the fixture must move every table"
            np.testing.assert_allclose(
                mine, want.numpy(), rtol=1e-5, atol=1e-5,
                err_msg=f"lr={lr}, l2={l2}: {name} differs from recsys_utils.models.bpr.BPR._step. With "
                "x = p_u.(q_i - q_j) + b_i - b_j and g = sigmoid(-x), ascend: p_u += lr (g (q_i - q_j) - l2 p_u), "
                "q_i += lr (g p_u - l2 q_i), q_j += lr (-g p_u - l2 q_j), b_i += lr (g - l2 b_i), "
                "b_j -= lr (g + l2 b_j), all computed from the OLD weights, and a row that appears several "
                "times in the batch gets the sum of its updates (np.add.at, not P[users] += ...)")
    return "P, Q and b equal recsys_utils.models.bpr.BPR._step (same weights, repeated rows) to 1e-5"
