"""Vectorised recommendation metrics: accuracy of top-k lists, AUC and the sampled protocol
(beyond-accuracy measures are in :mod:`recsys_utils.core.beyond_accuracy`).

Every function works on whole matrices (one row per user) with numpy and scipy.sparse; there is
no Python loop per user. Loops run over batches of rows or over the k list positions only.

Conventions shared by all functions:

- ``top_items`` is an ``(n, k)`` integer array of item indices, best first, as returned by
  :func:`recsys_utils.core.topk.top_k`; ``-1`` marks an empty slot (fewer than k items recommended).
  An item may appear at most once per row.
- ``relevant`` is a ``scipy.sparse`` CSR matrix ``(n, n_items)`` with the same rows; any stored
  nonzero value marks an item as relevant (binary relevance).

References: Järvelin & Kekäläinen (2002) for (N)DCG; Manning, Raghavan & Schütze, *Introduction
to Information Retrieval* (2008), ch. 8, for precision, recall and MAP; Zhou et al. (2010) for
novelty; Abdollahpouri et al. (2019) for average recommendation popularity; He et al. (2017) and
Krichene & Rendle (2020) for the sampled protocol.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

RANKING_METRICS = ("precision", "recall", "ndcg", "map", "hr", "mrr")


# Cells (rows x columns) handled per batch by the functions that materialise dense blocks.
_BATCH_CELLS = 1 << 23


def _check_k(k: int, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {k!r}")
    return int(k)


def _check_top_items(top_items: np.ndarray, n_items: int | None = None) -> np.ndarray:
    """Validate a ``(n, k)`` list matrix: integers, ``-1`` pads, no item twice in a row."""
    top = np.asarray(top_items)
    if top.ndim != 2:
        raise ValueError(f"top_items must be 2-D (users x positions), got shape {top.shape}")
    if top.size and not np.issubdtype(top.dtype, np.integer):
        raise ValueError(f"top_items must hold integer item indices, got dtype {top.dtype}")
    top = top.astype(np.int64, copy=False)
    if top.size == 0:
        return top
    low, high = int(top.min()), int(top.max())
    if low < -1:
        raise ValueError(f"top_items holds {low}; item indices are >= 0 and -1 marks an empty slot")
    if n_items is not None and high >= n_items:
        raise ValueError(f"top_items holds item {high} but there are only {n_items} items")
    if top.shape[1] > 1:
        ordered = np.sort(top, axis=1)
        repeated = (ordered[:, 1:] == ordered[:, :-1]) & (ordered[:, 1:] >= 0)
        if repeated.any():
            row, col = np.argwhere(repeated)[0]
            raise ValueError(f"top_items row {row} recommends item {ordered[row, col + 1]} more than once")
    return top


def _first_k_columns(top: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` columns of ``top``; missing columns are filled with -1 (no item)."""
    if top.shape[1] >= k:
        return top[:, :k]
    pad = np.full((top.shape[0], k - top.shape[1]), -1, dtype=np.int64)
    return np.hstack([top, pad])


def _as_csr(matrix, name: str) -> sp.csr_matrix:
    if not sp.issparse(matrix):
        raise TypeError(f"{name} must be a scipy.sparse matrix, got {type(matrix).__name__}")
    csr = sp.csr_matrix(matrix)
    if not csr.has_canonical_format:
        csr = csr.copy()
        csr.sum_duplicates()
    return csr


def _row_of_each_entry(csr: sp.csr_matrix) -> np.ndarray:
    return np.repeat(np.arange(csr.shape[0], dtype=np.int64), np.diff(csr.indptr))


def _relevant_keys(relevant: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Sorted linear keys ``row * n_items + col`` of the relevant cells and their count per row."""
    rows = _row_of_each_entry(relevant)
    stored = relevant.data != 0
    rows, cols = rows[stored], relevant.indices[stored].astype(np.int64)
    keys = rows * relevant.shape[1] + cols  # canonical CSR: already sorted row-major
    n_relevant = np.bincount(rows, minlength=relevant.shape[0])
    return keys, n_relevant


def _lookup(keys: np.ndarray, top: np.ndarray, n_items: int) -> np.ndarray:
    """Boolean matrix: is ``top[u, j]`` among the sorted ``keys`` of row ``u``?"""
    if keys.size == 0:
        return np.zeros(top.shape, dtype=bool)
    query = np.arange(top.shape[0], dtype=np.int64)[:, None] * n_items + top
    position = np.minimum(np.searchsorted(keys, query), keys.size - 1)
    return (keys[position] == query) & (top >= 0)


def hits_at_k(top_items: np.ndarray, relevant: sp.csr_matrix) -> np.ndarray:
    """Boolean ``(n, k)`` matrix: ``True`` where the recommended item is relevant to that row.

    The lookup is vectorised: recommended cells and relevant cells are turned into linear keys
    ``row * n_items + item`` and matched with one ``np.searchsorted`` on the sorted CSR keys.
    Empty slots (``-1``) are never hits.
    """
    relevant = _as_csr(relevant, "relevant")
    top = _check_top_items(top_items, relevant.shape[1])
    if top.shape[0] != relevant.shape[0]:
        raise ValueError(f"top_items has {top.shape[0]} rows but relevant has {relevant.shape[0]}")
    keys, _ = _relevant_keys(relevant)
    return _lookup(keys, top, relevant.shape[1])


@dataclass
class RankingMetrics:
    """Per-user top-k metrics and their means.

    ``per_user`` has one column per metric (``"precision@10"``, ...) and one row per evaluated
    user, indexed by the row position in the input; ``users`` holds those positions;
    ``n_excluded`` counts the rows left out because they had no relevant item.
    """

    per_user: pd.DataFrame
    users: np.ndarray
    n_excluded: int
    k: int

    @property
    def mean(self) -> dict[str, float]:
        """Mean of each metric over the evaluated users, plus ``"users"``: how many there were."""
        n = len(self.users)
        out = {name: (float(self.per_user[name].mean()) if n else float("nan")) for name in self.per_user}
        out["users"] = n
        return out


def _discounts(k: int) -> np.ndarray:
    """``1 / log2(rank + 1)`` for ranks 1..k."""
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def _precision(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    return hits.sum(axis=1) / k


def _recall(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    return hits.sum(axis=1) / n_relevant


def _ndcg(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    discount = _discounts(k)
    ideal = np.cumsum(discount)[np.minimum(n_relevant, k) - 1]
    return (hits @ discount) / ideal


def _map(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    precision_at_j = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    return (precision_at_j * hits).sum(axis=1) / np.minimum(n_relevant, k)


def _hr(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    return hits.any(axis=1).astype(np.float64)


def _mrr(hits: np.ndarray, n_relevant: np.ndarray, k: int) -> np.ndarray:
    first = hits.argmax(axis=1)
    return np.where(hits.any(axis=1), 1.0 / (first + 1), 0.0)


_METRIC_FUNCTIONS = {
    "precision": _precision,
    "recall": _recall,
    "ndcg": _ndcg,
    "map": _map,
    "hr": _hr,
    "mrr": _mrr,
}


def ranking_metrics(
    top_items: np.ndarray,
    relevant: sp.csr_matrix,
    k: int,
    metrics: Sequence[str] = RANKING_METRICS,
) -> RankingMetrics:
    """Top-k accuracy per user with binary relevance, over the rows that have a relevant item.

    Only the first ``k`` columns of ``top_items`` are used; missing columns count as empty slots.
    With ``hits`` the relevant items in the top k and ``R`` the user's relevant set:

    - ``precision@k = hits / k`` (always over k, even when fewer items were recommended);
    - ``recall@k = hits / |R|``;
    - ``ndcg@k = DCG / IDCG`` with ``DCG = sum_j rel_j / log2(j + 1)`` and the ideal DCG of
      ``min(|R|, k)`` hits at the top (Järvelin & Kekäläinen 2002);
    - ``map@k`` (AP@k averaged) ``= sum_{j<=k} P@j * rel_j / min(|R|, k)``;
    - ``hr@k = 1`` if any hit, else 0;
    - ``mrr@k = 1 / rank`` of the first hit within k, else 0.

    Rows whose relevant set is empty are excluded from every metric and counted in
    ``n_excluded``.
    """
    k = _check_k(k)
    unknown = [name for name in metrics if name not in _METRIC_FUNCTIONS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; choose from {list(_METRIC_FUNCTIONS)}")
    relevant = _as_csr(relevant, "relevant")
    top = _check_top_items(top_items, relevant.shape[1])
    if top.shape[0] != relevant.shape[0]:
        raise ValueError(f"top_items has {top.shape[0]} rows but relevant has {relevant.shape[0]}")
    keys, n_relevant = _relevant_keys(relevant)
    users = np.flatnonzero(n_relevant > 0)
    top = _first_k_columns(top, k)
    hits = _lookup(keys, top, relevant.shape[1])[users]
    n_rel = n_relevant[users]
    columns = {f"{name}@{k}": _METRIC_FUNCTIONS[name](hits, n_rel, k) for name in metrics}
    per_user = pd.DataFrame(columns, index=pd.Index(users, name="row"))
    return RankingMetrics(per_user, users, int(top.shape[0] - users.size), k)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of a 1-D array, ties given the average of their ranks."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts = np.r_[True, ordered[1:] != ordered[:-1]]
    group = np.cumsum(starts) - 1
    first = np.flatnonzero(starts)
    last = np.r_[first[1:], values.size] - 1
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = (first[group] + last[group]) / 2.0 + 1.0
    return ranks


def auc_score(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Global binary ROC AUC, ties counted half (the Mann-Whitney U statistic).

    ``AUC = (sum of the positives' average ranks - P (P + 1) / 2) / (P N)``; equal to
    ``sklearn.metrics.roc_auc_score`` (Hanley & McNeil 1982). ``y_true`` holds two classes; the
    larger value (1, ``True``) is the positive one.
    """
    y_true, y_score = np.asarray(y_true).ravel(), np.asarray(y_score, dtype=np.float64).ravel()
    if y_true.size != y_score.size:
        raise ValueError(f"auc_score: y_true has {y_true.size} values but y_score has {y_score.size}")
    if np.isnan(y_score).any():
        raise ValueError("auc_score: y_score contains NaN")
    classes = np.unique(y_true)
    if classes.size != 2:
        raise ValueError(f"auc_score: y_true must hold exactly two classes, found {classes.size} "
                         f"({classes[:5].tolist()}); AUC is undefined with only one class present")
    positive = y_true == classes[1]
    n_pos = int(positive.sum())
    n_neg = y_true.size - n_pos
    rank_sum = _average_ranks(y_score)[positive].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _count_below(flat: np.ndarray, width: int, rows: np.ndarray, values: np.ndarray,
                 strict: bool) -> np.ndarray:
    """Per query, how many entries of row ``rows[q]`` are ``< values[q]`` (``<=`` unless strict).

    ``flat`` is a row-major matrix of ``width`` columns, each row sorted ascending (NaN last,
    never counted). A branch-free bisection over all queries at once: ``log2(width)`` steps of
    one gather and one comparison each.
    """
    base = rows.astype(np.int64) * width - 1
    count = np.zeros(rows.size, dtype=np.int64)
    step = 1 << (max(width, 1).bit_length() - 1)
    while step:
        candidate = count + step
        probe = flat[base + np.minimum(candidate, width)]
        move = (candidate <= width) & ((probe < values) if strict else (probe <= values))
        count += step * move
        step >>= 1
    return count


def _auc_block(block: np.ndarray, relevant: sp.csr_matrix, exclude: sp.csr_matrix | None) -> np.ndarray:
    """Per-row AUC of one batch of rows (``block`` is a private float copy, sorted in place here)."""
    n_rows, width = block.shape
    n_kept = np.full(n_rows, width, dtype=np.int64)
    if exclude is not None and exclude.nnz:
        block[_row_of_each_entry(exclude), exclude.indices] = np.nan  # sorts last, never counted
        n_kept -= np.diff(exclude.indptr)
    stored = relevant.data != 0
    rows = _row_of_each_entry(relevant)[stored]
    values = block[rows, relevant.indices[stored]]
    rows, values = rows[~np.isnan(values)], values[~np.isnan(values)]  # excluded positives drop out
    n_pos = np.bincount(rows, minlength=n_rows)
    n_neg = n_kept - n_pos
    block.sort(axis=1)
    flat = block.ravel()
    less = _count_below(flat, width, rows, values, strict=True)
    # each positive sits at index `less` of its sorted row; look further only where a tie follows
    after = rows.astype(np.int64) * width + np.minimum(less + 1, width - 1)
    tied = (less + 1 < width) & (flat[after] == values)
    equal = np.ones(rows.size, dtype=np.int64)
    equal[tied] = _count_below(flat, width, rows[tied], values[tied], strict=False) - less[tied]
    # Mann-Whitney: sum over positives of (#items below + half the other items tied), minus the
    # P (P - 1) / 2 that the positives contribute among themselves.
    u = np.bincount(rows, weights=less + 0.5 * (equal - 1), minlength=n_rows)
    u -= n_pos * (n_pos - 1) / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = u / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc


def per_user_auc(
    scores: np.ndarray, relevant: sp.csr_matrix, exclude: sp.csr_matrix | None = None
) -> np.ndarray:
    """AUC of each row: relevant items against the other, non-excluded items; ties count half.

    Excluded cells (e.g. the training items) take no part, as positives or as negatives. Rows
    with no positive or no negative get NaN. Each batch of rows is sorted once (in place, along
    axis 1) and every positive's count of lower and tied scores is found by a vectorised
    bisection, so the cost is one row sort per user plus O(|positives| log n_items).
    """
    scores = np.asarray(scores)
    if scores.ndim != 2:
        raise ValueError(f"per_user_auc: scores must be 2-D, got shape {scores.shape}")
    relevant = _as_csr(relevant, "relevant")
    if relevant.shape != scores.shape:
        raise ValueError(f"per_user_auc: relevant has shape {relevant.shape}, scores {scores.shape}")
    if exclude is not None:
        exclude = _as_csr(exclude, "exclude")
        if exclude.shape != scores.shape:
            raise ValueError(f"per_user_auc: exclude has shape {exclude.shape}, scores {scores.shape}")
    dtype = scores.dtype if scores.dtype in (np.float32, np.float64) else np.float64
    n_rows, n_cols = scores.shape
    batch = max(1, _BATCH_CELLS // max(1, n_cols))
    out = np.empty(n_rows, dtype=np.float64)
    for start in range(0, n_rows, batch):
        stop = min(start + batch, n_rows)
        block = np.array(scores[start:stop], dtype=dtype)
        if block.size and np.isnan(block.min()):  # min propagates NaN: one fast pass
            first = start + int(np.isnan(block).any(axis=1).argmax())
            raise ValueError(f"per_user_auc: scores contain NaN (first in row {first})")
        sub_exclude = exclude[start:stop] if exclude is not None else None
        out[start:stop] = _auc_block(block, relevant[start:stop], sub_exclude)
    return out


def sampled_ranking_metrics(pos_scores: np.ndarray, neg_scores: np.ndarray, k: int) -> dict[str, float]:
    """SAMPLED protocol: HR@k and NDCG@k of one held-out positive against N sampled negatives.

    This is the leave-one-out protocol of He et al. (2017, NCF), usually with N = 99 negatives.
    It is kept to reproduce papers; Krichene & Rendle (2020, "On Sampled Metrics for Item
    Recommendation") show that sampled metrics can rank models differently from full-catalogue
    metrics, so prefer :func:`ranking_metrics` on full rankings.

    The positive's 0-based rank is the number of negatives scoring strictly higher plus the
    number tied with it (pessimistic, so a constant scorer earns nothing); ``hr = rank < k`` and
    ``ndcg = 1 / log2(rank + 2)`` if ``rank < k`` else 0. Returns means over the ``n`` rows with
    keys ``"sampled_hr@k"``, ``"sampled_ndcg@k"`` (k substituted) and ``"users"``.
    """
    k = _check_k(k)
    pos = np.asarray(pos_scores, dtype=np.float64).ravel()
    neg = np.asarray(neg_scores, dtype=np.float64)
    if neg.ndim != 2 or neg.shape[0] != pos.size:
        raise ValueError(f"sampled_ranking_metrics: neg_scores must be ({pos.size}, N), got {neg.shape}")
    if np.isnan(pos).any() or np.isnan(neg).any():
        raise ValueError("sampled_ranking_metrics: scores contain NaN")
    rank = (neg >= pos[:, None]).sum(axis=1)
    inside = rank < k
    ndcg = np.where(inside, 1.0 / np.log2(rank + 2.0), 0.0)
    n = pos.size
    return {
        f"sampled_hr@{k}": float(inside.mean()) if n else float("nan"),
        f"sampled_ndcg@{k}": float(ndcg.mean()) if n else float("nan"),
        "users": n,
    }
