"""Non-personalised baselines every model must beat: random and most popular."""

from __future__ import annotations

import numpy as np

from recsys_utils.data.interactions import Interactions
from recsys_utils.models.base import Recommender


class RandomRecommender(Recommender):
    """Scores items uniformly at random (seeded): the floor of every metric."""

    name = "random"

    def __init__(self, seed: int = 42) -> None:
        super().__init__()
        self.seed = seed

    def _fit(self, train: Interactions) -> None:
        self._n_items = train.n_items

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        self._check_fitted()
        users = np.asarray(user_indices, dtype=np.uint64)[:, None]
        items = np.arange(self._n_items, dtype=np.uint64)[None, :]
        # a counter-based hash of (seed, user, item): a user's scores do not depend on the batch
        with np.errstate(over="ignore"):
            keys = users * np.uint64(self._n_items) + items + np.uint64(self.seed) * _GOLDEN
        return _splitmix64(keys)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele et al. 2014) mapped to floats in [0, 1)."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return ((z >> np.uint64(40)).astype(np.float32)) / np.float32(1 << 24)


class PopularityRecommender(Recommender):
    """Ranks items by how many distinct users interacted with them in training.

    With ``exclude_seen=True`` in :meth:`recommend` this is "most popular among the items the
    user has not seen yet", the standard non-personalised baseline.
    """

    name = "popularity"

    def __init__(self, weighted: bool = False) -> None:
        super().__init__()
        self.weighted = weighted

    def _fit(self, train: Interactions) -> None:
        if self.weighted:
            counts = np.asarray(train.matrix.sum(axis=0)).ravel()
        else:
            counts = train.item_counts().astype(np.float64)
        self.item_scores_ = counts.astype(np.float32)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return np.broadcast_to(self.item_scores_, (len(user_indices), len(self.item_scores_))).copy()


class ItemScorer(Recommender):
    """Scores users by their (folded-in) history with item weights fixed elsewhere.

    ``weights`` is an item x item matrix (scores ``x_u W``, an item-item model such as EASE fitted
    on other users) or a vector of item scores (a popularity ranking). ``fit`` only stores the
    history of the users to be scored, so a model learned on generated users can be applied to
    real ones.
    """

    name = "item_scorer"

    def __init__(self, weights: np.ndarray, name: str | None = None) -> None:
        super().__init__()
        self.weights = np.asarray(weights, dtype=np.float32)
        if self.weights.ndim not in (1, 2):
            raise ValueError(f"ItemScorer: weights must be a vector or an item x item matrix, got {self.weights.shape}")
        if name:
            self.name = name

    def _fit(self, train: Interactions) -> None:
        if self.weights.shape[0] != train.n_items:
            raise ValueError(f"ItemScorer: weights cover {self.weights.shape[0]} items, history has {train.n_items}")
        self._x = train.binary()

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        self._check_fitted()
        users = np.asarray(user_indices)
        if self.weights.ndim == 1:
            return np.broadcast_to(self.weights, (len(users), len(self.weights))).copy()
        return np.asarray(self._x[users] @ self.weights)
