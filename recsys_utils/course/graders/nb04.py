"""Graders of notebook 04 (recall and ranking): candidate recall@N, the weighted round-robin merge,
the ranker's calibrated log-loss and a logistic-regression ranker with its gradient by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.metrics import log_loss

from recsys_utils.core.metrics import ranking_metrics
from recsys_utils.course.graders.registry import grader
from recsys_utils.pipeline.ranking import Ranker, ctr_metrics
from recsys_utils.pipeline.recall import merge_lists


def _padded_lists(rng: np.random.Generator, n_rows: int, width: int, n_items: int) -> np.ndarray:
    """Rows of distinct item indices, some rows ending in ``-1`` pads."""
    lists = np.stack([rng.permutation(n_items)[:width] for _ in range(n_rows)])
    lengths = np.where(rng.random(n_rows) < 0.3, rng.integers(0, width, n_rows), width)
    lists[np.arange(width)[None, :] >= lengths[:, None]] = -1
    return lists


@grader("04.1")
def candidate_recall(learner) -> str:
    """``learner(candidates, held_out)`` equals the package's mean recall@N of padded candidate lists."""
    rng = np.random.default_rng(4)
    n_items, width = 60, 15
    for case in range(5):
        candidates = _padded_lists(rng, 25, width, n_items)
        held_out = [rng.choice(n_items, size=int(rng.integers(0, 6)), replace=False) for _ in range(25)]
        rows = np.repeat(np.arange(25), [len(h) for h in held_out])
        relevant = sp.csr_matrix((np.ones(rows.size), (rows, np.concatenate(held_out))), shape=(25, n_items))
        expected = ranking_metrics(candidates, relevant, width, ("recall",)).mean[f"recall@{width}"]
        got = learner(candidates.copy(), [h.copy() for h in held_out])
        assert got is not None, "candidate_recall returned None"
        assert abs(float(got) - expected) < 1e-9, (
            f"case {case}: expected mean recall@{width} {expected:.4f}, got {float(got):.4f} (per user: hits among "
            "the candidates / number of held-out items; skip users with no held-out item; -1 is a pad, not an item)")
    return "5 random cases (pads, users without held-out items) equal recsys_utils.core.metrics.ranking_metrics"


@grader("04.2")
def merge_round_robin(learner) -> str:
    """``learner(lists, quotas, n)`` equals the items of :func:`recsys_utils.pipeline.recall.merge_lists`."""
    rng = np.random.default_rng(42)
    for quotas in ([4.0, 2.0, 1.0], [1.0, 1.0, 1.0], [0.5, 2.0, 1.0, 3.0]):
        lists = [_padded_lists(rng, 12, 10, 25) for _ in quotas]
        for n in (5, 20):
            expected, _ = merge_lists([top.copy() for top in lists], np.asarray(quotas), n)
            got = learner([top.copy() for top in lists], list(quotas), n)
            assert got is not None, "merge_round_robin returned None"
            got = np.asarray(got)
            assert got.shape == expected.shape, f"expected shape {expected.shape} (rows x n), got {got.shape}"
            wrong = np.flatnonzero((got != expected).any(axis=1))
            assert wrong.size == 0, (
                f"quotas={quotas}, n={n}, row {wrong[0] if wrong.size else 0}: expected {expected[wrong[0]].tolist()}, "
                f"got {got[wrong[0]].tolist()} (priority (rank + 1) / quota, ties to the lower channel, each item "
                "once at its best priority, -1 pads at the end)")
    return "three quota settings, two list lengths: equal to recsys_utils.pipeline.recall.merge_lists"


@grader("04.3")
def corrected_log_loss(learner) -> str:
    """``learner(labels, sampled_p, rate)`` equals sklearn's log-loss of the prior-corrected probabilities,
    and with ``rate=1`` the package's :func:`~recsys_utils.pipeline.ranking.ctr_metrics` log-loss."""
    rng = np.random.default_rng(3)
    labels = (rng.random(500) < 0.1).astype(np.int64)
    p = np.clip(rng.beta(2, 5, 500) + 0.3 * labels, 1e-4, 1 - 1e-4)
    for rate in (1.0, 0.2, 0.05):
        got = learner(labels.copy(), p.copy(), rate)
        assert got is not None, "corrected_log_loss returned None"
        corrected = p / (p + (1 - p) / rate)
        expected = log_loss(labels, corrected)
        torch_bce = float(torch.nn.functional.binary_cross_entropy(torch.tensor(corrected), torch.tensor(
            labels, dtype=torch.float64)))
        assert abs(expected - torch_bce) < 1e-9
        assert np.ndim(got) == 0, f"return one number (the mean over pairs), got shape {np.shape(got)}"
        assert abs(float(got) - expected) < 1e-6, (
            f"rate={rate}: expected {expected:.5f}, got {float(got):.5f} (correct p' = p / (p + (1 - p) / rate), "
            "then -mean[y log p' + (1 - y) log(1 - p')] with both terms inside the brackets)")
    package = ctr_metrics(labels, p)["log_loss"]
    assert abs(float(learner(labels, p, 1.0)) - package) < 1e-6, "with rate=1 it must equal the package's log-loss"
    return "equal to sklearn's and torch's log-loss of the corrected probabilities for three sampling rates"


def _reference_bce(weight: torch.Tensor, bias: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.binary_cross_entropy(torch.sigmoid(x @ weight + bias), y)


def _learner_model(learner_class, n_features: int, weight: np.ndarray, bias: float):
    model = learner_class(n_features).double()
    linear = getattr(model, "linear", None)
    assert isinstance(linear, torch.nn.Linear), "keep `self.linear = nn.Linear(n_features, 1)` in __init__"
    with torch.no_grad():
        linear.weight.copy_(torch.as_tensor(weight, dtype=torch.float64).reshape(1, -1))
        linear.bias.fill_(float(bias))
    return model


@grader("04.4")
def logistic_ranker(learner_class, learner_gradients) -> str:
    """The learner's module reproduces the package's fitted logistic :class:`Ranker` (same weights), and
    its hand-written gradients equal torch autograd's."""
    rng = np.random.default_rng(7)
    n, d = 400, 5
    x = rng.normal(size=(n, d)) * np.array([1.0, 3.0, 0.5, 10.0, 2.0]) + np.array([0.0, 5.0, -1.0, 50.0, 0.0])
    truth = np.array([1.0, -0.5, 2.0, 0.1, 0.0])
    y = (rng.random(n) < 1 / (1 + np.exp(-((x - x.mean(0)) / x.std(0)) @ truth + 1.5))).astype(np.int64)
    features = pd.DataFrame(x, columns=[f"f{j}" for j in range(d)])
    ranker = Ranker("logistic").fit(features, y)
    model = _learner_model(learner_class, d, ranker.coef_, ranker.intercept_)
    standardised = torch.as_tensor((x - ranker.mean_) / ranker.scale_)
    with torch.no_grad():
        got = model(standardised)
    assert got is not None, "forward returned None"
    got = np.asarray(got.detach().numpy() if isinstance(got, torch.Tensor) else got, dtype=np.float64)
    assert got.shape == (n,), f"forward must return one probability per row, shape ({n},), got {got.shape}"
    np.testing.assert_allclose(got, ranker.predict_proba(features), rtol=1e-6, atol=1e-8,
                               err_msg="forward differs from the package's logistic Ranker.predict_proba "
                                       "with the same weights (P(click) = sigmoid(x @ w + b))")
    for seed in range(3):
        g = np.random.default_rng(seed)
        weight, bias = g.normal(size=d), float(g.normal())
        xb = torch.as_tensor(g.normal(size=(64, d)))
        yb = torch.as_tensor((g.random(64) < 0.3).astype(np.float64))
        w = torch.tensor(weight, requires_grad=True)
        b = torch.tensor(bias, dtype=torch.float64, requires_grad=True)
        _reference_bce(w, b, xb, yb).backward()
        result = learner_gradients(_learner_model(learner_class, d, weight, bias), xb, yb)
        assert result is not None and len(result) == 2, "return (gradient of w, gradient of b)"
        grad_w, grad_b = (np.asarray(torch.as_tensor(r).detach(), dtype=np.float64) for r in result)
        np.testing.assert_allclose(grad_w.ravel(), w.grad.numpy(), rtol=1e-6, atol=1e-9,
                                   err_msg="dL/dw differs from autograd's (mean over the batch of (p - y) x)")
        assert abs(float(grad_b) - float(b.grad)) < 1e-9, (
            f"dL/db: expected {float(b.grad):.6f}, got {float(grad_b):.6f}")
    return "forward equals the package's logistic Ranker; gradients equal torch autograd on three batches"
