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

from recsys_utils.core.beyond_accuracy import (
    average_popularity,
    catalog_coverage,
    gini_index,
    intra_list_diversity,
    novelty,
)
from recsys_utils.core.metrics import ranking_metrics
from recsys_utils.data.holdout import evaluation_users, relevant_matrix
from recsys_utils.data.interactions import Interactions

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
    if not ks or any(isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 1 for c in ks):
        raise ValueError(f"evaluate: k must be an integer >= 1 (or a tuple of them), got {k!r}")
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
