"""A recall channel served from an ANN index: any dot-product model's top items, found approximately.

:class:`ANNRecall` speaks the channel interface of :mod:`recsys_utils.pipeline.recall` (a fitted
:class:`~recsys_utils.models.base.Recommender` whose ``score`` is ``-inf`` for the items it does not
propose), so it drops into :func:`~recsys_utils.pipeline.recall.generate_candidates` and the
serving pipeline next to the other channels. It wraps a model that exposes
``user_vectors(user_indices)`` and ``item_vectors()`` (the two-tower model), or ``embeddings()``
(LightGCN, torch BPR) or ``user_factors_`` / ``item_factors_`` (ALS), builds an
:class:`~recsys_utils.pipeline.ann.ANNIndex` over the item vectors and returns, per user, the
inner products of the ``n`` items the index finds.
"""

from __future__ import annotations

import numpy as np

from recsys_utils.data.interactions import Interactions
from recsys_utils.models.base import Recommender
from recsys_utils.pipeline.ann import ANNIndex


def model_vectors(model: Recommender, user_indices: np.ndarray | None = None) -> tuple[np.ndarray | None, np.ndarray]:
    """``(user vectors of user_indices or None, item vectors)`` of a fitted dot-product model."""
    if hasattr(model, "user_vectors") and hasattr(model, "item_vectors"):
        users = None if user_indices is None else model.user_vectors(user_indices)
        return users, model.item_vectors()
    if hasattr(model, "embeddings"):
        user_emb, item_emb = model.embeddings()
        return (None if user_indices is None else user_emb[user_indices]), item_emb
    if hasattr(model, "user_factors_") and hasattr(model, "item_factors_"):
        users = None if user_indices is None else np.asarray(model.user_factors_)[user_indices]
        return users, np.asarray(model.item_factors_)
    raise TypeError(f"ANNRecall: {type(model).__name__} exposes no user/item vectors "
                    "(user_vectors + item_vectors, embeddings() or user_factors_ + item_factors_)")


class ANNRecall(Recommender):
    """The ``n`` items with the largest ``user · item`` product per user, from an :class:`ANNIndex`.

    ``model`` is fitted on :meth:`fit` when it is not yet; ``index`` (default HNSW) is built over its
    item vectors. Items the index does not return score ``-inf``. Ask for ``n`` above the list
    length the pipeline keeps, as seen items are removed after retrieval.
    """

    name = "ann-recall"

    def __init__(self, model: Recommender, index: ANNIndex | None = None, n: int = 400) -> None:
        super().__init__()
        if n < 1:
            raise ValueError(f"ANNRecall: n must be >= 1, got {n}")
        self.model = model
        self.index = index if index is not None else ANNIndex("hnsw")
        self.n = n

    def _fit(self, train: Interactions) -> None:
        if getattr(self.model, "train_", None) is None:
            self.model.fit(train)
        if self.model.train_.n_items != train.n_items:
            raise ValueError(f"ANNRecall: the model knows {self.model.train_.n_items} items, train has {train.n_items}")
        _, items = model_vectors(self.model)
        self.index.build(items)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        train = self._check_fitted()
        users = np.asarray(user_indices, dtype=np.int64)
        queries, _ = model_vectors(self.model, users)
        scores, ids = self.index.search(queries, min(self.n, train.n_items))
        out = np.full((len(users), train.n_items), -np.inf, dtype=np.float32)
        rows = np.repeat(np.arange(len(users)), ids.shape[1])
        valid = ids.ravel() >= 0
        out[rows[valid], ids.ravel()[valid]] = scores.ravel()[valid]
        return out
