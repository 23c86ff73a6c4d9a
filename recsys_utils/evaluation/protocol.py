"""The course's main evaluation protocol: full-catalogue ranking of a fitted model.

For every evaluated user the model scores the whole catalogue, the items the user already
interacted with in training are removed (``exclude_seen``), the top ``k`` are compared with the
user's held-out items, and the metrics are averaged over users. With ``exclude_seen`` the
held-out items a user already had in training are not counted as relevant either (the model
was not allowed to recommend them). Users without a relevant item are excluded and counted;
``users="warm"`` (the default) also leaves out users with no training history, who are the
subject of the cold-start lessons.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_utils.data.interactions import Interactions
from recsys_utils.evaluation.metrics import (
    average_popularity,
    catalog_coverage,
    gini_index,
    intra_list_diversity,
    novelty,
    ranking_metrics,
)

DEFAULT_METRICS = ("precision", "recall", "ndcg", "map", "hr", "mrr")


@dataclass
class Evaluation:
    """Mean metrics of one model (``summary``), per-user values and who was evaluated."""

    model: str
    summary: dict[str, float]
    per_user: pd.DataFrame
    user_indices: np.ndarray
    excluded: dict[str, int] = field(default_factory=dict)
    top_items: np.ndarray | None = None

    def __getitem__(self, key: str) -> float:
        return self.summary[key]


def relevant_matrix(train: Interactions, test: Interactions, exclude_seen: bool = True) -> sp.csr_matrix:
    """Binary held-out matrix; with ``exclude_seen`` cells already in train are removed."""
    if train.matrix.shape != test.matrix.shape:
        raise ValueError(
            f"train {train.matrix.shape} and test {test.matrix.shape} do not share an index: "
            "build them with DataSplit.to_interactions()"
        )
    relevant = test.binary()
    if exclude_seen:
        relevant = relevant - relevant.multiply(train.binary())
        relevant.eliminate_zeros()
    return sp.csr_matrix(relevant)


def evaluation_users(
    train: Interactions, relevant: sp.csr_matrix, users: str | np.ndarray = "warm"
) -> tuple[np.ndarray, dict[str, int]]:
    """User indices to evaluate and how many were left out, by reason."""
    has_relevant = np.diff(relevant.indptr) > 0
    has_history = train.user_counts() > 0
    if isinstance(users, str):
        if users not in ("warm", "all", "cold"):
            raise ValueError("users must be 'warm', 'all', 'cold' or an array of user indices")
        chosen = {
            "warm": has_relevant & has_history,
            "all": has_relevant,
            "cold": has_relevant & ~has_history,
        }[users]
        excluded = {"no_relevant_items": int((~has_relevant & (has_history | (users != "warm"))).sum())}
        if users == "warm":
            excluded["cold_users"] = int((has_relevant & ~has_history).sum())
        if users == "cold":
            excluded["warm_users"] = int((has_relevant & has_history).sum())
        return np.flatnonzero(chosen), excluded
    given = np.asarray(users, dtype=np.int64)
    keep = has_relevant[given]
    return given[keep], {"no_relevant_items": int((~keep).sum())}


def evaluate(
    model,
    train: Interactions,
    test: Interactions,
    k: int | tuple[int, ...] = 10,
    metrics: tuple[str, ...] = DEFAULT_METRICS,
    users: str | np.ndarray = "warm",
    exclude_seen: bool = True,
    item_features=None,
    batch_size: int = 2048,
    name: str | None = None,
) -> Evaluation:
    """Full-catalogue ranking metrics of a fitted model at one or more cut-offs ``k``.

    Returns an :class:`Evaluation` whose ``summary`` holds ``metric@k`` means, ``users``
    (evaluated), ``coverage@k``, ``novelty@k``, ``gini@k``, ``arp@k`` (average recommended
    popularity), ``diversity@k`` when ``item_features`` are given, and ``score_seconds``.
    """
    ks = (k,) if np.isscalar(k) else tuple(k)
    k_max = max(ks)
    relevant = relevant_matrix(train, test, exclude_seen)
    user_idx, excluded = evaluation_users(train, relevant, users)
    started = time.perf_counter()
    top = model.recommend_indices(user_idx, k=k_max, exclude_seen=exclude_seen, batch_size=batch_size)
    seconds = time.perf_counter() - started
    rel = relevant[user_idx]
    item_counts = train.item_counts()
    summary: dict[str, float] = {}
    per_user = pd.DataFrame(index=pd.RangeIndex(len(user_idx)))
    for cut in ks:
        result = ranking_metrics(top, rel, cut, metrics)
        per_user = per_user.join(result.per_user.set_axis(result.users))
        summary.update({key: value for key, value in result.mean.items() if key != "users"})
        summary[f"coverage@{cut}"] = catalog_coverage(top[:, :cut], train.n_items)
        summary[f"novelty@{cut}"] = novelty(top[:, :cut], item_counts, train.n_users)
        summary[f"arp@{cut}"] = average_popularity(top[:, :cut], item_counts)
        summary[f"gini@{cut}"] = gini_index(top[:, :cut], train.n_items)
        if item_features is not None:
            summary[f"diversity@{cut}"] = intra_list_diversity(top[:, :cut], item_features)
    summary["users"] = int(len(user_idx))
    summary["score_seconds"] = seconds
    per_user.insert(0, "user_index", user_idx)
    return Evaluation(
        name or getattr(model, "name", type(model).__name__), summary, per_user, user_idx, excluded, top
    )


def compare(
    models: dict, train: Interactions, test: Interactions, k=(10, 20), fit: bool = True, **kwargs
) -> pd.DataFrame:
    """Fit (optionally) and evaluate several models on one split; one row per model.

    Adds ``fit_seconds`` when the models are fitted here.
    """
    rows = {}
    for label, model in models.items():
        fit_seconds = np.nan
        if fit:
            started = time.perf_counter()
            model.fit(train)
            fit_seconds = time.perf_counter() - started
        result = evaluate(model, train, test, k=k, name=label, **kwargs)
        rows[label] = {**result.summary, "fit_seconds": fit_seconds}
    return pd.DataFrame.from_dict(rows, orient="index")
