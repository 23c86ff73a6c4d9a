"""Graders of notebook 00 (quickstart): recall@k by hand and EASE's closed form."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys_utils.core.metrics import ranking_metrics
from recsys_utils.course.graders.registry import grader
from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.models.ease import EASE


@grader("00.1")
def recall_at_k(learner) -> str:
    """``learner(recommended, relevant, k)`` equals the package's recall@k on random lists."""
    rng = np.random.default_rng(0)
    n_items, cases = 30, 0
    for k in (1, 3, 5, 10):
        for _ in range(20):
            recommended = rng.permutation(n_items)[:10]
            relevant = rng.choice(n_items, size=int(rng.integers(1, 8)), replace=False)
            expected = ranking_metrics(recommended[None, :], sp.csr_matrix(
                (np.ones(relevant.size), (np.zeros(relevant.size, int), relevant)), shape=(1, n_items)),
                k, ("recall",)).mean[f"recall@{k}"]
            got = learner(list(recommended), list(relevant), k)
            assert got is not None, "recall_at_k returned None"
            assert abs(float(got) - expected) < 1e-12, (
                f"recommended={list(recommended)}, relevant={list(relevant)}, k={k}: expected {expected:.4f}, "
                f"got {float(got):.4f} (divide the hits in the first k by the number of relevant items)")
            cases += 1
    return f"{cases} random cases equal the package's recall@k"


@grader("00.2")
def ease_weights(learner) -> str:
    """``learner(X, l2)`` returns EASE's item-item matrix B, equal to the package's to 1e-5."""
    rng = np.random.default_rng(1)
    x = (rng.random((60, 12)) < 0.3).astype(np.float64)
    for l2 in (0.5, 10.0):
        got = np.asarray(learner(x.copy(), l2), dtype=np.float64)
        train = Interactions(sp.csr_matrix(x), IdIndex(np.arange(60), "user_id"), IdIndex(np.arange(12), "item_id"))
        expected = EASE(l2=l2).fit(train).weights_.astype(np.float64)
        assert got.shape == expected.shape, f"B must be items x items {expected.shape}, got {got.shape}"
        assert np.allclose(np.diag(got), 0.0, atol=1e-8), "B's diagonal must be zero (no item explains itself)"
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5,
                                   err_msg=f"B differs from the package's EASE with l2={l2}")
    return "B equals recsys_utils.models.ease.EASE's weights for two values of l2"
