"""The protocol of the generative models: :class:`Generator` (``fit(data) -> self``, ``sample(n, seed)``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import scipy.sparse as sp


class Generator(ABC):
    """Base class of every generator of synthetic data in :mod:`recsys_utils.models.generative`.

    ``fit(data) -> self`` learns from real data and ``sample(n, seed=0)`` returns ``n`` new rows,
    the same rows for the same seed. User-vector generators take a users x items matrix and return
    a binary ``scipy.sparse.csr_matrix`` of shape ``(n, n_items)``; the session generator
    (:class:`~recsys_utils.models.generative.sessions.SessionGenerator`) takes right-aligned item
    sequences and returns an ``(n, max_len)`` int array of item indices (``-1`` = padding).
    """

    name: str = "generator"

    @abstractmethod
    def fit(self, data: Any) -> Generator:
        """Learn from real data; return ``self``."""

    @abstractmethod
    def sample(self, n: int, seed: int = 0) -> Any:
        """``n`` generated rows (seeded)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def binary_csr(matrix, where: str) -> sp.csr_matrix:
    """A float32 CSR copy of a users x items matrix with every stored value set to 1 (errors name ``where``)."""
    x = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{where}: expected a non-empty users x items matrix, got shape {x.shape}")
    x.data = (x.data > 0).astype(np.float32)
    x.eliminate_zeros()
    if x.nnz == 0:
        raise ValueError(f"{where}: the matrix has no interactions")
    return x


def draw_without_replacement(log_weights: np.ndarray, sizes: np.ndarray, rng: np.random.Generator) -> sp.csr_matrix:
    """One row per entry of ``sizes``: ``sizes[r]`` distinct columns drawn with probabilities
    proportional to ``exp(log_weights[r])`` (Gumbel-top-k, Vieira 2014; vectorised).

    ``log_weights`` is ``(n_rows, n_items)`` or ``(n_items,)`` (the same weights for every row).
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    logw = np.asarray(log_weights, dtype=np.float64)
    if logw.ndim == 1:
        logw = np.broadcast_to(logw, (len(sizes), logw.size))
    if logw.shape[0] != len(sizes):
        raise ValueError(f"draw_without_replacement: {logw.shape[0]} weight rows for {len(sizes)} sizes")
    n_items = logw.shape[1]
    sizes = np.clip(sizes, 0, n_items)
    keys = logw - np.log(-np.log(rng.random(logw.shape)))
    order = np.argsort(-keys, axis=1)
    take = np.arange(n_items)[None, :] < sizes[:, None]
    rows = np.nonzero(take)[0]
    cols = order[take]
    return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(sizes), n_items))
