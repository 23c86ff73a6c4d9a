"""Error analysis (错误分析) by slice: where does a model fail, and for whom?

A mean NDCG hides who is served well. Slicing the per-user metrics of an
:class:`~recsys_utils.evaluation.protocol.Evaluation` by user attributes (activity, segment,
member level, cold vs warm) and the hits by the popularity of the relevant items (head, torso,
tail, new items) shows where a model wins and loses (Chen et al. 2023, "Bias and Debias in
Recommender System: A Survey"; Abdollahpouri et al. 2019 on popularity bias; Ekstrand et al.
2018, "All the cool kids, how do they fit in?", on metrics by user group).

All functions work on whole arrays (``groupby`` on the per-user frame, ``bincount`` over the
hit matrix); there is no Python loop per user.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_utils.core.metrics import hits_at_k
from recsys_utils.core.vocabulary import USER
from recsys_utils.data.interactions import Interactions

__all__ = [
    "ACTIVITY_BINS",
    "POPULARITY_SHARES",
    "activity_bucket",
    "item_popularity_bucket",
    "metrics_by_slice",
    "per_user_frame",
    "recall_by_item_bucket",
]

#: training interactions per user: edges of the activity buckets (right-open)
ACTIVITY_BINS = (0, 1, 5, 10, 20, 50, np.inf)
#: cumulative shares of training interactions that end the head and the torso of the catalogue
POPULARITY_SHARES = (0.2, 0.8)


def activity_bucket(counts, bins: Sequence[float] = ACTIVITY_BINS) -> pd.Categorical:
    """Label each count with its right-open bucket ``[lo, hi)`` of ``bins`` (e.g. ``"5-9"``).

    Integer counts are assumed: the bucket ``[5, 10)`` is labelled ``"5-9"``, ``[50, inf)`` is
    ``"50+"`` and ``[0, 1)`` is ``"0"``.
    """
    counts = np.asarray(counts, dtype=np.float64)
    edges = np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or np.any(np.diff(edges) <= 0):
        raise ValueError(f"activity_bucket: bins must be increasing with at least 2 edges, got {bins}")
    if counts.size and (counts.min() < edges[0] or counts.max() >= edges[-1]):
        raise ValueError(f"activity_bucket: counts range [{counts.min():g}, {counts.max():g}] is not inside "
                         f"the bins [{edges[0]:g}, {edges[-1]:g})")
    labels = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        if np.isinf(hi):
            labels.append(f"{lo:g}+")
        elif hi - lo == 1:
            labels.append(f"{lo:g}")
        else:
            labels.append(f"{lo:g}-{hi - 1:g}")
    codes = np.searchsorted(edges, counts, side="right") - 1
    return pd.Categorical.from_codes(codes, categories=labels, ordered=True)


def item_popularity_bucket(train: Interactions, shares: Sequence[float] = POPULARITY_SHARES,
                           labels: Sequence[str] = ("head", "torso", "tail")) -> pd.Categorical:
    """Bucket every item of the index by its training popularity; items never seen are ``"new"``.

    Items are sorted by their number of training users, most popular first; the *head* holds the
    most popular items that together account for the first ``shares[0]`` of all training
    (user, item) pairs, the *torso* the next ones up to ``shares[1]``, the *tail* the rest
    (Abdollahpouri et al. 2019 use the same cumulative 20 % cut). Items with no training user are
    ``"new"`` (item cold start).
    """
    shares = np.asarray(shares, dtype=np.float64)
    if len(labels) != shares.size + 1:
        raise ValueError(f"item_popularity_bucket: need {shares.size + 1} labels for {shares.size} cut(s)")
    if np.any(np.diff(shares) <= 0) or shares.min() <= 0 or shares.max() >= 1:
        raise ValueError(f"item_popularity_bucket: shares must increase inside (0, 1), got {shares.tolist()}")
    counts = train.item_counts().astype(np.float64)
    total = counts.sum()
    if total == 0:
        raise ValueError("item_popularity_bucket: the training matrix is empty")
    order = np.argsort(-counts, kind="stable")
    before = np.cumsum(counts[order]) - counts[order]  # share of pairs above each item
    codes_sorted = np.searchsorted(shares, before / total, side="right")
    codes = np.empty_like(codes_sorted)
    codes[order] = codes_sorted
    codes[counts == 0] = len(labels)
    return pd.Categorical.from_codes(codes, categories=[*labels, "new"], ordered=True)


def per_user_frame(evaluation, train: Interactions, attributes: pd.DataFrame | None = None,
                   bins: Sequence[float] = ACTIVITY_BINS) -> pd.DataFrame:
    """The evaluation's per-user metrics with ``user_id``, activity and user attributes joined.

    Adds ``user_id``, ``train_items`` (distinct training items), ``activity`` (its bucket) and
    ``warm`` (has training history); ``attributes`` (one row per ``user_id``, e.g. ``ds.users``
    or ``world.user_truth``) is left-joined on ``user_id``.
    """
    per_user = evaluation.per_user
    if "user_index" not in per_user.columns:
        raise KeyError("per_user_frame: the evaluation's per_user frame has no 'user_index' column")
    index = per_user["user_index"].to_numpy()
    counts = train.user_counts()[index]
    frame = per_user.copy()
    frame.insert(0, USER, train.users.to_ids(index))
    frame["train_items"] = counts
    frame["activity"] = activity_bucket(counts, bins)
    frame["warm"] = counts > 0
    if attributes is not None:
        if USER not in attributes.columns:
            raise KeyError(f"per_user_frame: attributes need a '{USER}' column (columns are "
                           f"{list(attributes.columns)})")
        if attributes[USER].duplicated().any():
            dup = attributes.loc[attributes[USER].duplicated(), USER].iloc[0]
            raise ValueError(f"per_user_frame: attributes has user_id {dup!r} more than once")
        extra = [c for c in attributes.columns if c != USER and c not in frame.columns]
        frame = frame.merge(attributes[[USER, *extra]], on=USER, how="left", validate="one_to_one")
    return frame


def metrics_by_slice(frame: pd.DataFrame, by: str | Sequence[str], metrics: Sequence[str]) -> pd.DataFrame:
    """Mean, standard error and user count of each metric per slice of ``frame``.

    Columns: ``users``, then ``<metric>`` and ``<metric>_se`` (``std / sqrt(n)``) for each metric;
    one row per slice (empty categorical slices are dropped).
    """
    keys = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [*keys, *metrics] if c not in frame.columns]
    if missing:
        raise KeyError(f"metrics_by_slice: missing column(s) {missing}; columns are {list(frame.columns)}")
    grouped = frame.groupby(keys, observed=True, sort=True)
    out = grouped.size().rename("users").to_frame()
    for metric in metrics:
        out[metric] = grouped[metric].mean()
        out[f"{metric}_se"] = grouped[metric].std(ddof=1) / np.sqrt(out["users"])
    return out


def recall_by_item_bucket(top_items: np.ndarray, relevant: sp.csr_matrix, item_bucket: pd.Categorical,
                          k: int) -> pd.DataFrame:
    """Hits and recall@k of the held-out items, grouped by the bucket of each relevant item.

    ``top_items`` and ``relevant`` have the same rows (one per evaluated user), as in
    ``Evaluation.top_items`` and ``relevant_matrix(train, test)[Evaluation.user_indices]``.
    ``recall`` here is pooled: hits on the bucket's relevant items over all of them (a
    micro-average, since most users have no relevant item in most buckets). Also reports the
    bucket's share of the relevant items and of the recommended slots.
    """
    relevant = sp.csr_matrix(relevant)
    top = np.asarray(top_items)[:, :k]
    codes = np.asarray(item_bucket.codes)
    if codes.size != relevant.shape[1]:
        raise ValueError(f"recall_by_item_bucket: {codes.size} item buckets for {relevant.shape[1]} items")
    hits = hits_at_k(top, relevant)
    n_buckets = len(item_bucket.categories)
    hit_items = top[hits]
    n_hits = np.bincount(codes[hit_items], minlength=n_buckets)
    rel_items = relevant.indices[relevant.data != 0]
    n_relevant = np.bincount(codes[rel_items], minlength=n_buckets)
    shown = top[top >= 0]
    n_shown = np.bincount(codes[shown], minlength=n_buckets)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(n_relevant > 0, n_hits / np.maximum(n_relevant, 1), np.nan)
    return pd.DataFrame({
        "relevant": n_relevant,
        "hits": n_hits,
        f"recall@{k}": recall,
        "share_of_relevant": n_relevant / max(1, n_relevant.sum()),
        "share_of_recommended": n_shown / max(1, n_shown.sum()),
    }, index=pd.Index(item_bucket.categories, name="item_bucket"))
