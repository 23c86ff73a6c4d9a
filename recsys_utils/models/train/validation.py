"""Validation metrics for early stopping, computed inside the models layer.

The same protocol as :func:`recsys_utils.evaluation.protocol.evaluate` (full catalogue, items seen
in training excluded, warm users), built from the core metrics so the training loop needs nothing
above the models layer.
"""

from __future__ import annotations

import numpy as np

from recsys_utils.core.metrics import ranking_metrics
from recsys_utils.data.holdout import evaluation_users, relevant_matrix
from recsys_utils.data.interactions import Interactions
from recsys_utils.models.base import Recommender


def validation_ndcg(model: Recommender, train: Interactions, validation: Interactions, k: int = 10,
                    max_users: int | None = None, seed: int = 0) -> float:
    """NDCG@k of a fitted ``model`` on ``validation``; ``max_users`` evaluates a fixed random sample
    of the warm users (the same sample every call, so epochs are comparable)."""
    relevant = relevant_matrix(train, validation)
    users, _ = evaluation_users(train, relevant, "warm")
    if max_users is not None and len(users) > max_users:
        users = np.sort(np.random.default_rng(seed).choice(users, max_users, replace=False))
    if len(users) == 0:
        return 0.0
    top = model.recommend_indices(users, k=k, exclude_seen=True)
    return float(ranking_metrics(top, relevant[users], k, ("ndcg",)).mean[f"ndcg@{k}"])
