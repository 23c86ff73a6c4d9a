"""Batched top-k selection over score matrices (no Python loop per user)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def top_k(scores: np.ndarray, k: int, exclude: sp.csr_matrix | None = None) -> np.ndarray:
    """Column indices of the ``k`` highest scores in each row, best first.

    ``exclude`` (same shape, any stored cell counts) removes cells from the ranking, e.g. the
    items a user has already seen. Ties are broken by the lower column index within the list,
    deterministically among the k selected; which of several items tied at the k-th place is kept
    is decided by ``np.argpartition`` (deterministic for the same input). Rows with fewer than
    ``k`` rankable cells are padded with -1.
    ``scores`` is not modified.
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"top_k: scores must be 2-D, got shape {scores.shape}")
    n_rows, n_cols = scores.shape
    k = int(min(k, n_cols))
    if k <= 0:
        return np.empty((n_rows, 0), dtype=np.int64)
    work = scores.astype(np.float32, copy=True) if exclude is not None else scores
    if exclude is not None:
        if exclude.shape != scores.shape:
            raise ValueError(f"top_k: exclude has shape {exclude.shape}, scores {scores.shape}")
        exclude = sp.csr_matrix(exclude)
        rows = np.repeat(np.arange(n_rows), np.diff(exclude.indptr))
        work[rows, exclude.indices] = -np.inf
    if k < n_cols:
        part = np.argpartition(-work, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n_cols), (n_rows, n_cols)).copy()
    part_scores = np.take_along_axis(work, part, axis=1)
    # sort the k candidates by score descending, then by column index ascending
    order = np.lexsort((part, -part_scores), axis=1)
    top = np.take_along_axis(part, order, axis=1)
    top_scores = np.take_along_axis(part_scores, order, axis=1)
    top = top.astype(np.int64)
    top[~np.isfinite(top_scores) & (top_scores < 0)] = -1
    return top
