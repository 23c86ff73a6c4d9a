"""Beyond-accuracy measures of top-k lists: catalogue coverage, novelty, average popularity, Gini index
and intra-list diversity, vectorised over users.

References: Ge et al. (2010) for coverage; Zhou et al. (2010) for novelty; Abdollahpouri et al. (2019)
for average recommendation popularity; Ziegler et al. (2005) for intra-list diversity.
Inputs follow :mod:`recsys_utils.core.metrics`'s conventions (``top_items`` with ``-1`` for empty slots)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recsys_utils.core.metrics import _BATCH_CELLS, _check_top_items


def _recommended(top: np.ndarray) -> np.ndarray:
    """All recommended item indices (empty slots dropped), with repetitions across users."""
    return top[top >= 0]


def catalog_coverage(top_items: np.ndarray, n_items: int) -> float:
    """Fraction of the catalogue recommended to at least one user (Ge et al. 2010)."""
    top = _check_top_items(top_items, n_items)
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    return float(np.unique(_recommended(top)).size / n_items)


def _per_list_mean(top: np.ndarray, item_values: np.ndarray) -> np.ndarray:
    """Mean of ``item_values`` over each non-empty list (rows with no item are dropped)."""
    valid = top >= 0
    sizes = valid.sum(axis=1)
    totals = np.where(valid, item_values[np.where(valid, top, 0)], 0.0).sum(axis=1)
    keep = sizes > 0
    return totals[keep] / sizes[keep]


def novelty(top_items: np.ndarray, item_counts: np.ndarray, n_users: int) -> float:
    """Mean self-information ``-log2(count_i / n_users)`` of the recommended items.

    ``item_counts[i]`` is how many of the ``n_users`` training users interacted with item ``i``;
    counts are clipped at 1 so that unseen items stay finite. The mean is taken within each list,
    then over the users with a non-empty list (Zhou et al. 2010, PNAS 107(10), "surprisal").
    NaN when no list has an item.
    """
    counts = np.asarray(item_counts, dtype=np.float64)
    if n_users < 1:
        raise ValueError(f"novelty: n_users must be >= 1, got {n_users}")
    if counts.size and counts.max() > n_users:
        raise ValueError(f"novelty: an item count ({counts.max():g}) exceeds n_users ({n_users}); "
                         "pass the number of distinct users per item")
    top = _check_top_items(top_items, counts.size)
    information = -np.log2(np.clip(counts, 1.0, None) / n_users)
    means = _per_list_mean(top, information)
    return float(means.mean()) if means.size else float("nan")


def average_popularity(top_items: np.ndarray, item_counts: np.ndarray) -> float:
    """Average recommendation popularity (ARP, Abdollahpouri et al. 2019).

    ``ARP = 1/|U| sum_u (sum_{i in L_u} count_i) / |L_u|`` over the users with a non-empty
    list; NaN when no list has an item.
    """
    counts = np.asarray(item_counts, dtype=np.float64)
    top = _check_top_items(top_items, counts.size)
    means = _per_list_mean(top, counts)
    return float(means.mean()) if means.size else float("nan")


def gini_index(top_items: np.ndarray, n_items: int) -> float:
    """Gini index of how often each catalogue item is recommended: 0 = equal exposure.

    ``G = sum_j (2j - n - 1) x_(j) / (n sum x)`` with ``x_(j)`` the recommendation counts of all
    ``n_items`` items sorted ascending; all lists naming a single item gives ``(n - 1) / n``
    (Fleder & Hosanagar 2009). NaN when nothing is recommended.
    """
    if n_items < 1:
        raise ValueError(f"n_items must be >= 1, got {n_items}")
    top = _check_top_items(top_items, n_items)
    counts = np.sort(np.bincount(_recommended(top), minlength=n_items)).astype(np.float64)
    total = counts.sum()
    if total == 0:
        return float("nan")
    j = np.arange(1, n_items + 1, dtype=np.float64)
    return float(((2 * j - n_items - 1) * counts).sum() / (n_items * total))


def _unit_rows(item_features) -> sp.csr_matrix | np.ndarray:
    """Item features with every nonzero row scaled to unit L2 norm (zero rows stay zero)."""
    if sp.issparse(item_features):
        features = sp.csr_matrix(item_features, dtype=np.float64)
        norms = np.sqrt(np.asarray(features.multiply(features).sum(axis=1)).ravel())
        scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        return sp.csr_matrix(sp.diags(scale) @ features)
    features = np.asarray(item_features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"item_features must be 2-D (items x features), got shape {features.shape}")
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return np.divide(features, norms, out=np.zeros_like(features), where=norms > 0)


def intra_list_diversity(top_items: np.ndarray, item_features) -> float:
    """Mean over users of the mean pairwise cosine distance ``1 - cos`` within each list.

    Smyth & McClave (2001), Ziegler et al. (2005). ``item_features`` is a dense array or a sparse
    matrix ``(n_items, d)``; an all-zero feature row has similarity 0 to everything. Lists with
    fewer than two items are left out; NaN when no list has two.

    Vectorised without the ``(n, k, k)`` similarity tensor: with unit rows ``f_i`` and
    ``s = sum_i f_i`` over a list, the sum of similarities over its ordered pairs ``i != j`` is
    ``|s|^2 - sum_i |f_i|^2``. The per-list sums ``s`` are one sparse product (users x items
    indicator times features), taken in batches of users.
    """
    unit = _unit_rows(item_features)
    n_items = unit.shape[0]
    top = _check_top_items(top_items, n_items)
    self_similarity = (np.asarray(unit.multiply(unit).sum(axis=1)).ravel() if sp.issparse(unit)
                       else np.einsum("ij,ij->i", unit, unit))
    batch = max(1, _BATCH_CELLS // max(1, unit.shape[1]))
    pair_sums, sizes = [], []
    for start in range(0, top.shape[0], batch):
        block = top[start:start + batch]
        valid = block >= 0
        rows = np.nonzero(valid)[0]
        indicator = sp.csr_matrix((np.ones(rows.size), (rows, block[valid])), shape=(block.shape[0], n_items))
        summed = indicator @ unit
        squared = (np.asarray(summed.multiply(summed).sum(axis=1)).ravel() if sp.issparse(summed)
                   else np.einsum("ij,ij->i", summed, summed))
        pair_sums.append(squared - indicator @ self_similarity)
        sizes.append(valid.sum(axis=1))
    pair_sum, size = np.concatenate(pair_sums), np.concatenate(sizes)
    keep = size >= 2
    if not keep.any():
        return float("nan")
    n_pairs = size[keep] * (size[keep] - 1.0)
    return float((1.0 - pair_sum[keep] / n_pairs).mean())
