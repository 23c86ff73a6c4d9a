"""Neighbourhood collaborative filtering: item-based and user-based kNN with shrunk cosine similarity.

Item-based kNN (Sarwar et al. 2001, "Item-based collaborative filtering recommendation
algorithms", WWW; Deshpande & Karypis 2004) scores item ``i`` for user ``u`` by the similarity of
``i`` to the items ``u`` already has; user-based kNN (Herlocker et al. 1999, SIGIR) by what the
``u``'s most similar users have. Both use cosine similarity with a shrinkage term ``h`` (Koren
2008), which pulls similarities computed from few co-occurrences towards zero:

    s_ij = (x_i . x_j) / (||x_i|| ||x_j|| + h)

and keep only the ``k`` largest similarities of each row, stored as a sparse matrix. Scores are
sparse products: ``X S`` (items) or ``S_u X`` (users). Nothing loops over users or items.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys_utils.core.topk import top_k
from recsys_utils.data.interactions import Interactions
from recsys_utils.models.base import Recommender


def cosine_neighbours(vectors: sp.spmatrix, k: int, shrink: float = 0.0, block: int = 1024) -> sp.csr_matrix:
    """The ``k`` largest shrunk cosine similarities of every row of ``vectors`` to the other rows.

    ``vectors`` is a sparse ``(n, d)`` matrix (rows are the objects to compare). Returns a CSR
    ``(n, n)`` matrix with at most ``k`` stored, strictly positive values per row and an empty
    diagonal. Rows are processed in blocks of ``block``: one sparse product and one
    ``argpartition`` per block.
    """
    if k < 1:
        raise ValueError(f"cosine_neighbours: k must be >= 1, got {k}")
    if shrink < 0:
        raise ValueError(f"cosine_neighbours: shrink must be >= 0, got {shrink}")
    rows = sp.csr_matrix(vectors, dtype=np.float64)
    n = rows.shape[0]
    norms = np.sqrt(np.asarray(rows.multiply(rows).sum(axis=1)).ravel())
    columns = rows.T.tocsc()
    k = min(k, max(n - 1, 1))
    indptr = [np.zeros(1, dtype=np.int64)]
    indices, values = [], []
    stored = 0
    for start in range(0, n, block):
        stop = min(n, start + block)
        dots = (rows[start:stop] @ columns).toarray()
        sims = dots / (norms[start:stop, None] * norms[None, :] + shrink + 1e-12)
        sims[np.arange(stop - start), np.arange(start, stop)] = 0.0
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (stop - start, 1))
        top_values = np.take_along_axis(sims, top, axis=1)
        keep = top_values > 0
        counts = keep.sum(axis=1)
        indices.append(top[keep])
        values.append(top_values[keep])
        indptr.append(stored + np.cumsum(counts))
        stored += int(counts.sum())
    matrix = sp.csr_matrix(
        (np.concatenate(values) if values else np.zeros(0), np.concatenate(indices) if indices else np.zeros(0, int),
         np.concatenate(indptr)), shape=(n, n))
    matrix.sort_indices()
    return matrix


class _KNN(Recommender):
    """Shared settings and input handling of the two neighbourhood models."""

    def __init__(self, k: int = 100, shrink: float = 10.0, binary: bool = True, block: int = 1024) -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"{type(self).__name__}: k must be >= 1, got {k}")
        if shrink < 0:
            raise ValueError(f"{type(self).__name__}: shrink must be >= 0, got {shrink}")
        self.k = k
        self.shrink = shrink
        self.binary = binary
        self.block = block

    def _input(self, train: Interactions) -> sp.csr_matrix:
        matrix = train.binary() if self.binary else train.matrix
        if matrix.nnz and matrix.data.min() < 0:
            raise ValueError(f"{type(self).__name__}: interaction weights must be non-negative")
        return sp.csr_matrix(matrix, dtype=np.float32)


class ItemKNN(_KNN):
    """Item-based kNN: ``score(u, i) = sum_{j in N_k(i)} s_ij x_uj`` (Sarwar et al. 2001).

    ``similarity_`` is the sparse item x item matrix (row ``j`` holds the ``k`` neighbours of
    item ``j``), so scores are ``X @ similarity_``.
    """

    name = "item-knn"

    def _fit(self, train: Interactions) -> None:
        self._x = self._input(train)
        self.similarity_ = cosine_neighbours(self._x.T, self.k, self.shrink, self.block).astype(np.float32)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return np.asarray((self._x[np.asarray(user_indices)] @ self.similarity_).toarray())

    def similar_items(self, item_indices, k: int = 10) -> np.ndarray:
        """The ``k`` most similar item indices of each item (``-1`` pads short lists)."""
        self._check_fitted()
        rows = self.similarity_[np.asarray(item_indices)].toarray()
        rows[rows <= 0] = -np.inf
        return top_k(rows, k)


class UserKNN(_KNN):
    """User-based kNN: ``score(u, i) = sum_{v in N_k(u)} s_uv x_vi`` (Herlocker et al. 1999).

    ``similarity_`` is the sparse user x user matrix of each user's ``k`` neighbours.
    """

    name = "user-knn"

    def _fit(self, train: Interactions) -> None:
        self._x = self._input(train)
        self.similarity_ = cosine_neighbours(self._x, self.k, self.shrink, self.block).astype(np.float32)

    def score(self, user_indices: np.ndarray) -> np.ndarray:
        self._check_fitted()
        return np.asarray((self.similarity_[np.asarray(user_indices)] @ self._x).toarray())
