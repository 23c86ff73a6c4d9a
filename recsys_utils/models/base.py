"""The one model protocol every recommender in the course speaks.

``fit(train) -> self``, ``score(user_indices) -> (n, n_items) array`` and
``recommend(user_ids, k, exclude_seen=True) -> DataFrame``. Evaluation, the serving pipeline
and the benchmark treat classic and neural models alike through it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import pandas as pd

from recsys_utils.core.topk import top_k
from recsys_utils.core.vocabulary import ITEM, RANK, SCORE, USER
from recsys_utils.data.interactions import Interactions

#: users scored at once when a model ranks the whole catalogue for many users
DEFAULT_BATCH = 2048


class Recommender(ABC):
    """Base class: subclasses implement :meth:`_fit` and :meth:`score`."""

    name: str = "recommender"

    def __init__(self) -> None:
        self.train_: Interactions | None = None

    def fit(self, train: Interactions) -> Recommender:
        """Learn from ``train`` and return ``self``."""
        if not isinstance(train, Interactions):
            raise TypeError(f"{type(self).__name__}.fit expects Interactions, got {type(train).__name__}")
        self.train_ = train
        self._fit(train)
        return self

    @abstractmethod
    def _fit(self, train: Interactions) -> None:
        """Model-specific training."""

    @abstractmethod
    def score(self, user_indices: np.ndarray) -> np.ndarray:
        """Scores of every item for each user index: an array of shape ``(len(user_indices), n_items)``."""

    def _check_fitted(self) -> Interactions:
        if self.train_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(train) first")
        return self.train_

    def recommend_indices(
        self, user_indices, k: int = 10, exclude_seen: bool = True, batch_size: int = DEFAULT_BATCH
    ) -> np.ndarray:
        """Top-``k`` item indices for each user index (``-1`` pads short lists), in batches."""
        train = self._check_fitted()
        user_indices = np.asarray(user_indices, dtype=np.int64)
        out = np.empty((len(user_indices), min(k, train.n_items)), dtype=np.int64)
        for start in range(0, len(user_indices), batch_size):
            batch = user_indices[start : start + batch_size]
            scores = self.score(batch)
            exclude = train.matrix[batch] if exclude_seen else None
            out[start : start + len(batch)] = top_k(scores, k, exclude)
        return out

    def recommend(self, user_ids, k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """Top-``k`` recommendations for raw user ids: ``user_id, item_id, score, rank`` (rank 1 = best)."""
        train = self._check_fitted()
        user_ids = np.atleast_1d(np.asarray(user_ids))
        users = train.users.to_index(user_ids)
        rows, items, scores = [], [], []
        for start in range(0, len(users), DEFAULT_BATCH):
            batch = users[start : start + DEFAULT_BATCH]
            batch_scores = self.score(batch)
            exclude = train.matrix[batch] if exclude_seen else None
            top = top_k(batch_scores, k, exclude)
            row = np.repeat(np.arange(start, start + len(batch)), top.shape[1])
            flat = top.ravel()
            valid = flat >= 0
            rows.append(row[valid])
            items.append(flat[valid])
            scores.append(batch_scores[row[valid] - start, flat[valid]])
        rows = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
        items = np.concatenate(items) if items else np.empty(0, dtype=np.int64)
        frame = pd.DataFrame(
            {
                USER: user_ids[rows],
                ITEM: train.items.to_ids(items),
                SCORE: np.concatenate(scores) if scores else np.empty(0),
            }
        )
        frame[RANK] = frame.groupby(USER, sort=False).cumcount() + 1
        return frame

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
