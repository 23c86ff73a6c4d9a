"""Graders of notebook 11 (cross-domain transfer and personalised search): BM25 by hand, NDCG with
graded relevance, users new to a domain without leakage, and a listwise re-ranker's gradient."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from recsys_utils.course.graders.registry import grader
from recsys_utils.features.text_search import BM25
from recsys_utils.models.cross_domain import cross_domain_split
from recsys_utils.models.personalised_search import graded_ndcg

_TITLES = ["Nuvo Wireless Earbuds", "Voltix Earbuds Pro", "Kestrel Smart Plug Max", "Wireless Smart Hub",
           "Aurelion Classic Phone Case", "Classic Phone", "Orbita Travel Speaker Mini Plus", "Smart Earbuds Earbuds"]


@grader("11.1")
def bm25_scores(learner) -> str:
    """``learner(docs, query, k1, b)`` (token lists) equals the package's :class:`BM25` on titles."""
    docs = [t.lower().split() for t in _TITLES]
    for query, k1, b in ((["wireless", "earbuds"], 1.5, 0.75), (["smart", "phone", "case"], 1.2, 0.3),
                         (["earbuds"], 2.0, 1.0)):
        expected = BM25(k1=k1, b=b).fit(_TITLES).score([" ".join(query)])[0]
        got = learner([list(d) for d in docs], list(query), k1, b)
        assert got is not None, "bm25_scores returned None"
        got = np.asarray(got, dtype=np.float64)
        assert got.shape == expected.shape, f"one score per document: expected shape {expected.shape}, got {got.shape}"
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6, err_msg=(
            f"BM25 differs from the package for query {query} (k1={k1}, b={b}): idf = log(1 + (N - n_t + 0.5) / "
            "(n_t + 0.5)), tf part = f / (f + k1 (1 - b + b |d| / avgdl)), summed over the query's terms"))
    return "BM25 equals the package (bm25s, Lucene variant) on 8 titles, 3 queries and 3 settings of k1, b"


@grader("11.2")
def ndcg_graded(learner) -> str:
    """``learner(relevance, ranked, k)`` equals :func:`graded_ndcg` (gain 2^rel - 1, -1 pads)."""
    rng = np.random.default_rng(3)
    relevance = rng.integers(0, 4, size=(6, 12)).astype(np.float64)
    relevance[2] = 0.0
    relevance[3] = 0.0
    relevance[3, 5] = 1.0  # a single relevant item
    ranked = np.argsort(rng.random((6, 12)), axis=1)[:, :8]
    ranked[1, 6:] = -1
    for k in (3, 5):
        expected = graded_ndcg(relevance, ranked, k)
        got = learner(relevance.copy(), ranked.copy(), k)
        assert got is not None, "ndcg_graded returned None"
        got = np.asarray(got, dtype=np.float64)
        assert got.shape == expected.shape, f"one NDCG per row: expected shape {expected.shape}, got {got.shape}"
        assert np.isnan(got[2]), "a row with no relevant item has no ideal DCG: return NaN for it"
        keep = ~np.isnan(expected)
        np.testing.assert_allclose(got[keep], expected[keep], atol=1e-9, err_msg=(
            f"NDCG@{k} differs: DCG = sum over the first k ranks of (2^rel - 1) / log2(rank + 1) (rank from 1; "
            "-1 pads count as 0), divided by the DCG of the relevance sorted from best to worst"))
    return "graded NDCG@3 and @5 equal the package on 6 rows (padding, an all-zero row, a single relevant item)"


def _domain_events() -> tuple[pd.DataFrame, np.ndarray, pd.Timestamp]:
    start = pd.Timestamp("2024-01-01")
    day = pd.Timedelta(days=1)
    rows = [  # (user, item, day): items 1-3 are domain A, items 10-12 domain B; test from day 10
        (1, 1, 1), (1, 10, 12),            # A before, B after: new to B
        (2, 2, 2), (2, 11, 3), (2, 12, 11),  # B before: not new
        (3, 3, 4), (3, 1, 12),             # no B after: not a target
        (4, 10, 13),                       # no A before: not a target
        (5, 2, 9), (5, 11, 10), (5, 11, 15),  # new to B (B at the first instant of the test)
        (6, 1, 2), (6, 12, 9),             # B the day before the test: not new
        (7, 3, 11), (7, 12, 12),           # A only after the test start: not a target
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "day"])
    frame["timestamp"] = start + frame.pop("day") * day
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True), np.array([10, 11, 12]), start + 10 * day


@grader("11.3")
def users_new_to_b(learner) -> str:
    """``learner(interactions, b_items, test_start)`` returns the target users of :func:`cross_domain_split`."""
    frame, b_items, test_start = _domain_events()
    expected = cross_domain_split(frame, b_items, test_start).target_users
    got = learner(frame.copy(), b_items.copy(), test_start)
    assert got is not None, "users_new_to_b returned None"
    got = np.sort(np.asarray(list(got), dtype=np.int64))
    assert got.tolist() == expected.tolist(), (
        f"expected users {expected.tolist()}, got {got.tolist()}: a target has an A event before test_start, NO B "
        "event before test_start (that would leak B taste into training), and a B event at or after test_start")
    return "the users new to domain B match cross_domain_split on a 7-user log with every edge case"


def _reference_loss(weights: np.ndarray, features: np.ndarray, clicked: np.ndarray) -> tuple[float, np.ndarray]:
    w = torch.tensor(weights, dtype=torch.float64, requires_grad=True)
    scores = torch.tensor(features, dtype=torch.float64) @ w
    loss = torch.nn.functional.cross_entropy(scores, torch.as_tensor(clicked))
    loss.backward()
    return float(loss.detach()), w.grad.numpy()


@grader("11.4")
def listwise_loss_and_grad(learner) -> str:
    """``learner(weights, features, clicked)`` returns the softmax loss and its gradient, as autograd does."""
    rng = np.random.default_rng(4)
    features = rng.normal(size=(7, 5, 3))
    clicked = rng.integers(0, 5, size=7)
    for weights in (np.zeros(3), rng.normal(size=3)):
        expected_loss, expected_grad = _reference_loss(weights, features, clicked)
        got = learner(weights.copy(), features.copy(), clicked.copy())
        assert got is not None and len(got) == 2, "return the pair (loss, gradient)"
        loss, grad = float(got[0]), np.asarray(got[1], dtype=np.float64)
        assert abs(loss - expected_loss) < 1e-6, (
            f"loss {loss:.6f} differs from {expected_loss:.6f}: "
            "the mean over searches of -log softmax(scores)[clicked]")
        assert grad.shape == (3,), f"the gradient has one entry per weight, shape (3,), got {grad.shape}"
        np.testing.assert_allclose(grad, expected_grad, atol=1e-6, err_msg=(
            "the gradient differs from torch autograd: dL/dw = mean over searches of (E_p[x] - x_clicked), "
            "with p the softmax of the candidates' scores"))
    return "loss and gradient equal torch autograd's cross-entropy on 7 searches of 5 candidates, two weight vectors"
