"""Reading latent factors: nearest items by cosine, variance per factor, a 2-D projection.

Shared by every factor model (ALS, BPR, explicit MF); used for the interpretation plots of the
collaborative-filtering lesson.
"""

from __future__ import annotations

import numpy as np

from recsys_utils.core.topk import top_k


def _unit(factors: np.ndarray) -> np.ndarray:
    factors = np.asarray(factors, dtype=np.float64)
    if factors.ndim != 2:
        raise ValueError(f"factors must be a 2-D (n_items, n_factors) array, got shape {factors.shape}")
    norms = np.linalg.norm(factors, axis=1, keepdims=True)
    return factors / np.maximum(norms, 1e-12)


def nearest_items(factors: np.ndarray, item_indices, k: int = 10) -> np.ndarray:
    """The ``k`` items with the highest cosine to each of ``item_indices`` (itself excluded)."""
    unit = _unit(factors)
    item_indices = np.asarray(item_indices, dtype=np.int64).reshape(-1)
    if item_indices.size and (item_indices.min() < 0 or item_indices.max() >= len(unit)):
        raise IndexError(f"nearest_items: item indices must lie in [0, {len(unit)})")
    sims = unit[item_indices] @ unit.T
    sims[np.arange(len(item_indices)), item_indices] = -np.inf
    return top_k(sims, k)


def factor_variance(factors: np.ndarray) -> np.ndarray:
    """Share of the total variance carried by each principal direction of ``factors``, descending.

    Latent factors are only defined up to a rotation, so the variance is read along the
    principal axes (singular values of the centred matrix), not along the raw coordinates.
    """
    centred = np.asarray(factors, dtype=np.float64) - np.mean(factors, axis=0)
    singular = np.linalg.svd(centred, compute_uv=False)
    power = singular ** 2
    return power / max(power.sum(), 1e-300)


def project_2d(factors: np.ndarray) -> np.ndarray:
    """Coordinates of every row on the first two principal axes (PCA by SVD)."""
    centred = np.asarray(factors, dtype=np.float64) - np.mean(factors, axis=0)
    u, s, _ = np.linalg.svd(centred, full_matrices=False)
    return u[:, :2] * s[:2]
