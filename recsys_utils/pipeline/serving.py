"""The serving pipeline: recall channels → learned ranker → business rules → diversity → sponsored slot.

Everything the pipeline needs at request time is plain arrays (factor matrices, an item-item
matrix, a popularity vector, the ranker's coefficients or trees), so it is saved with ``numpy.savez``
(``allow_pickle=False``) and loaded without unpickling anything, behind a format-version check.
It reuses the package's stages rather than its own: recall is
:func:`recsys_utils.pipeline.recall.recall_batch`, the pair features come from the one builder
(:mod:`recsys_utils.features.pairs`, :data:`~recsys_utils.features.pairs.SERVING_COLUMNS`) and the
ranker is :class:`recsys_utils.pipeline.ranking.Ranker`.

Stages, for a batch of users at once:

1. **recall** (召回): each channel scores the whole catalogue, seen items are removed, its top
   ``n_recall`` items are kept; the channels' lists are merged (round-robin) and deduplicated;
2. **rank** (排序): a logistic regression or gradient-boosted trees on per-candidate features (each
   channel's reciprocal rank and per-user standardised score, item log-popularity, the user's
   affinity to the item's category and activity, item features such as recent popularity and
   freshness) estimate P(relevant | user, item); trained on a later period than the channels;
3. **re-rank**: business rules (:class:`~recsys_utils.pipeline.rerank.BusinessRules`), then maximal
   marginal relevance if ``mmr_trade_off`` < 1, then a sponsored item at a fixed slot (广告投放).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_utils.core.io import atomic_write
from recsys_utils.features.items import item_features as item_feature_table
from recsys_utils.features.pairs import (
    SERVING_COLUMNS,
    SERVING_ITEM_COLUMNS,
    history_columns,
    item_table_columns,
    log_item_users,
)
from recsys_utils.pipeline.ranking import Ranker
from recsys_utils.pipeline.recall import channel_ranks, recall_batch
from recsys_utils.pipeline.rerank import (
    PAD,
    BusinessRules,
    cap_per_group,
    first_k,
    insert_sponsored,
    mmr,
    sparse_lookup,
)
from recsys_utils.pipeline.serving_file import FORMAT, FORMAT_VERSION, PipelineFormatError, read_pipeline_file


@dataclass
class Channel:
    """A recall channel reduced to arrays: ``factors`` (user x item dot products), ``item_item``
    (history times an item-item matrix, as EASE or item kNN; with ``arrays["binary"]`` true the
    history is binarised first, as the model saw it in training) or ``popularity``."""

    name: str
    kind: str
    arrays: dict[str, np.ndarray]

    KINDS = ("factors", "item_item", "popularity")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"Channel {self.name!r}: kind must be one of {self.KINDS}, got {self.kind!r}")

    def score(self, user_indices: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        if self.kind == "factors":
            return self.arrays["user_factors"][user_indices] @ self.arrays["item_factors"].T
        if self.kind == "item_item":
            rows = history[user_indices]
            if bool(self.arrays.get("binary", False)):
                rows = rows.copy()
                rows.data[:] = 1.0
            return np.asarray(rows @ self.arrays["weights"])
        return np.broadcast_to(self.arrays["scores"], (len(user_indices), self.arrays["scores"].size)).copy()


def channel_from_model(name: str, model) -> Channel:
    """Reduce a fitted course model to a :class:`Channel` (ALS/MF factors, EASE/kNN weights, popularity)."""
    if hasattr(model, "user_factors_") and hasattr(model, "item_factors_"):
        return Channel(name, "factors", {"user_factors": np.asarray(model.user_factors_, dtype=np.float32),
                                         "item_factors": np.asarray(model.item_factors_, dtype=np.float32)})
    if hasattr(model, "weights_"):
        weights = model.weights_
        weights = weights.toarray() if sp.issparse(weights) else np.asarray(weights)
        binary = np.array(bool(getattr(model, "binary", False)))  # score the history the way it was fitted
        return Channel(name, "item_item", {"weights": weights.astype(np.float32), "binary": binary})
    if hasattr(model, "item_scores_"):
        return Channel(name, "popularity", {"scores": np.asarray(model.item_scores_, dtype=np.float32)})
    raise TypeError(f"channel_from_model: cannot export {type(model).__name__} as arrays "
                    "(expected user_factors_/item_factors_, weights_ or item_scores_)")


def dedupe_rows(candidates: np.ndarray) -> np.ndarray:
    """Each row's items in order of first appearance, duplicates removed, ``-1`` padded at the end."""
    n_rows, width = candidates.shape
    order = np.argsort(candidates, axis=1, kind="stable")
    ordered = np.take_along_axis(candidates, order, axis=1)
    repeat = np.zeros_like(ordered, dtype=bool)
    repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    keep = np.empty_like(repeat)
    np.put_along_axis(keep, order, ~repeat, axis=1)
    keep &= candidates >= 0
    return first_k(candidates, keep, width)


@dataclass
class ServingPipeline:
    """Recall → rank → re-rank for users of a fixed training history (see the module docstring)."""

    channels: list[Channel]
    history: sp.csr_matrix
    item_category: np.ndarray
    n_recall: int = 100
    item_features: dict[str, np.ndarray] = field(default_factory=dict)  # one float per item each
    ranker: Ranker | None = None  # fit_ranker or copy_ranker
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.history = sp.csr_matrix(self.history, dtype=np.float32)
        self.item_category = np.asarray(self.item_category, dtype=np.int64)
        self._log_popularity = log_item_users(self.history).astype(np.float32)
        self._n_categories = int(self.item_category.max()) + 1

    # ----------------------------------------------------------------- recall and features

    @property
    def feature_names(self) -> list[str]:
        names = []
        for channel in self.channels:
            names += [f"{channel.name}:reciprocal_rank", f"{channel.name}:score_z"]
        return names + list(SERVING_COLUMNS) + [f"item:{n}" for n in self.item_features]

    def recall(self, user_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Merged candidates ``(n, C)``, their features ``(n, C, F)`` and each channel's own top list."""
        user_indices = np.asarray(user_indices, dtype=np.int64)
        seen = self.history[user_indices]
        n_items = self.history.shape[1]
        n_recall = min(self.n_recall, n_items)
        scores = [channel.score(user_indices, self.history) for channel in self.channels]
        candidates, _, tops, masked = recall_batch(scores, n_recall, n_recall * len(self.channels),
                                                   np.ones(len(self.channels)), seen)
        cells = np.where(candidates >= 0, candidates, 0)
        features = []
        for score, rank in zip(masked, channel_ranks(tops, n_items), strict=True):
            rank = np.take_along_axis(rank, cells, axis=1)
            features.append(np.where(rank > 0, 1.0 / np.maximum(rank, 1.0), 0.0))
            finite = np.where(np.isfinite(score), score, np.nan)
            mean, std = np.nanmean(finite, axis=1, keepdims=True), np.nanstd(finite, axis=1, keepdims=True)
            z = np.nan_to_num((finite - mean) / np.where(std > 0, std, 1.0), nan=-10.0)
            features.append(np.take_along_axis(z, cells, axis=1))
        history = history_columns(seen, self.item_category, cells, self._n_categories)
        history["item_log_users"] = self._log_popularity[cells]
        features += [history[column] for column in SERVING_COLUMNS.values()]
        features += [np.asarray(values, dtype=np.float32)[cells] for values in self.item_features.values()]
        per_channel = {channel.name: top for channel, top in zip(self.channels, tops, strict=True)}
        return candidates, np.stack(features, axis=2).astype(np.float32), per_channel

    # ----------------------------------------------------------------- ranker

    def _frame(self, features: np.ndarray) -> pd.DataFrame:
        names = [name.replace(":", "__") for name in self.feature_names]
        return pd.DataFrame(features.reshape(-1, features.shape[-1]), columns=names)

    def fit_ranker(self, user_indices: np.ndarray, relevant: sp.csr_matrix, kind: str = "logistic",
                   c: float = 1.0, n_trees: int = 60, num_leaves: int = 7, learning_rate: float = 0.05,
                   min_data_in_leaf: int = 200, seed: int = 0) -> dict:
        """Fit the package's :class:`~recsys_utils.pipeline.ranking.Ranker` on candidates labelled by
        ``relevant`` (users x items, a period *after* the channels' training data): ``kind="logistic"``
        (a linear model) or ``"gbdt"`` (LightGBM gradient-boosted trees, binary log-loss, Ke et al.
        2017). Trees can use interactions a linear model cannot (e.g. trust EASE more for heavy users,
        popularity more for light ones). Returns a summary of the training data."""
        user_indices = np.asarray(user_indices, dtype=np.int64)
        relevant = sp.csr_matrix(relevant)
        if relevant.shape != self.history.shape:
            raise ValueError(f"fit_ranker: relevant has shape {relevant.shape}, the history {self.history.shape}")
        if kind not in ("logistic", "gbdt"):
            raise ValueError(f"fit_ranker: kind must be 'logistic' or 'gbdt', got {kind!r}")
        candidates, features, _ = self.recall(user_indices)
        labels = sparse_lookup(relevant[user_indices], np.where(candidates >= 0, candidates, 0))
        valid = candidates >= 0
        x, y = self._frame(features[valid]), labels[valid]
        if y.sum() == 0:
            raise ValueError("fit_ranker: no relevant item among the candidates; cannot learn a ranker")
        if kind == "logistic":
            self.ranker = Ranker("logistic", C=c).fit(x, y)
        else:
            self.ranker = Ranker("lgbm", seed=seed, n_threads=1, n_estimators=n_trees, learning_rate=learning_rate,
                                 num_leaves=num_leaves, min_child_samples=min_data_in_leaf, colsample_bytree=0.9,
                                 subsample=0.8, subsample_freq=1, reg_lambda=0.0, force_row_wise=True).fit(x, y)
        rel = relevant[user_indices]
        return {"rows": int(len(y)), "positives": int(y.sum()),
                "candidate_recall": float(y.sum() / rel.nnz) if rel.nnz else float("nan")}

    def copy_ranker(self, other: ServingPipeline) -> ServingPipeline:
        """Use ``other``'s fitted ranker (e.g. trained on an earlier period with the same features)."""
        if other.feature_names != self.feature_names:
            raise ValueError(f"copy_ranker: features differ: {other.feature_names} vs {self.feature_names}")
        self.ranker = other.ranker
        return self

    def _check_ranker(self) -> Ranker:
        if self.ranker is None:
            raise RuntimeError("ServingPipeline: the ranker is not fitted: call fit_ranker first")
        return self.ranker

    def feature_importance(self) -> dict[str, float]:
        """Gain importance (gbdt) or |standardised coefficient| (logistic) of each feature."""
        importance = self._check_ranker().feature_importance()
        names = dict(zip([n.replace(":", "__") for n in self.feature_names], self.feature_names, strict=True))
        return {names[key]: float(value) for key, value in importance.items()}

    def rank_scores(self, features: np.ndarray) -> np.ndarray:
        """Ranker score of each candidate (``features``: ``(n, C, F)``; higher = better)."""
        flat = features.reshape(-1, features.shape[-1])  # columns in feature_names order: the fast path
        return self._check_ranker().score_pairs(flat).reshape(features.shape[:-1])

    # ----------------------------------------------------------------- serving

    def rank(self, user_indices) -> tuple[np.ndarray, np.ndarray]:
        """Recall and rank: every candidate of each user, best first, and its ranker score (``-inf`` on pads)."""
        candidates, features, _ = self.recall(np.asarray(user_indices, dtype=np.int64))
        score = np.where(candidates >= 0, self.rank_scores(features), -np.inf)
        order = np.argsort(-score, axis=1, kind="stable")
        return np.take_along_axis(candidates, order, axis=1), np.take_along_axis(score, order, axis=1)

    def rerank(self, user_indices, candidates: np.ndarray, scores: np.ndarray, k: int = 10,
               rules: BusinessRules | None = None, mmr_trade_off: float = 1.0, item_vectors: np.ndarray | None = None,
               sponsored: np.ndarray | None = None, sponsored_position: int = 2) -> np.ndarray:
        """Business rules, MMR and the sponsored slot on ranked candidates (from :meth:`rank`).

        The sponsored item must pass the per-item rules too (stock, blocked, price): where it does
        not, that row shows no advert. It does not count against the category cap of organic items.
        """
        user_indices = np.asarray(user_indices, dtype=np.int64)
        keep = rules.allowed(user_indices, candidates) if rules is not None else candidates >= 0
        if sponsored is not None:
            sponsored = np.asarray(sponsored, dtype=np.int64).reshape(-1)
            if len(sponsored) != len(user_indices):
                raise ValueError(f"rerank: {len(sponsored)} sponsored items for {len(user_indices)} users")
            keep &= candidates != sponsored[:, None]  # the advert is not also shown as an organic item
        if mmr_trade_off < 1.0:
            if item_vectors is None:
                raise ValueError("rerank: mmr_trade_off < 1 needs item_vectors")
            order = np.argsort(~keep, axis=1, kind="stable")[:, : min(candidates.shape[1], 5 * k)]
            pool_keep = np.take_along_axis(keep, order, axis=1)
            pool = np.where(pool_keep, np.take_along_axis(candidates, order, axis=1), PAD)
            pool_score = np.take_along_axis(scores, order, axis=1)
            candidates = mmr(pool, pool_score, item_vectors, pool.shape[1], mmr_trade_off, keep=pool_keep)
            keep = candidates >= 0
        if sponsored is not None and rules is not None:
            sponsored = np.where(rules.allowed(user_indices, sponsored[:, None])[:, 0], sponsored, PAD)
        if rules is not None:
            if sponsored is not None:  # the advert takes one place of its category's cap
                both = np.hstack([sponsored[:, None], candidates])
                keep = cap_per_group(both, np.hstack([(sponsored >= 0)[:, None], keep]), rules.item_category,
                                     rules.max_per_category)[:, 1:]
            else:
                keep = cap_per_group(candidates, keep, rules.item_category, rules.max_per_category)
        lists = first_k(candidates, keep, k)
        if sponsored is not None:
            advert = insert_sponsored(lists, np.where(sponsored >= 0, sponsored, 0), sponsored_position)
            lists = np.where((sponsored >= 0)[:, None], advert, lists)
        return lists

    def recommend(self, user_indices, k: int = 10, rules: BusinessRules | None = None,
                  mmr_trade_off: float = 1.0, item_vectors: np.ndarray | None = None,
                  sponsored: np.ndarray | None = None, sponsored_position: int = 2) -> np.ndarray:
        """Final lists ``(n, k)`` of item indices (``-1`` pads when rules leave too few items):
        :meth:`rank` then :meth:`rerank`."""
        user_indices = np.asarray(user_indices, dtype=np.int64)
        candidates, scores = self.rank(user_indices)
        return self.rerank(user_indices, candidates, scores, k, rules, mmr_trade_off, item_vectors,
                           sponsored, sponsored_position)

    # ----------------------------------------------------------------- persistence

    def save(self, path: str | Path) -> Path:
        """Write every array and a JSON manifest into one ``.npz`` (no pickled objects)."""
        path = Path(path)
        arrays = {"history_data": self.history.data, "history_indices": self.history.indices,
                  "history_indptr": self.history.indptr, "item_category": self.item_category}
        if self.ranker is not None:
            arrays.update(_ranker_arrays(self.ranker))
        for name, values in self.item_features.items():
            arrays[f"item_feature__{name}"] = np.asarray(values)
        for number, channel in enumerate(self.channels):
            for key, value in channel.arrays.items():
                arrays[f"channel{number}__{key}"] = value
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "n_recall": self.n_recall,
                    "history_shape": list(self.history.shape), "meta": self.meta,
                    "item_features": list(self.item_features),
                    "channels": [{"name": c.name, "kind": c.kind, "arrays": sorted(c.arrays)} for c in self.channels]}
        arrays["manifest"] = np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8)
        with atomic_write(path, "wb") as handle:
            np.savez(handle, **arrays)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ServingPipeline:
        """Load a file written by :meth:`save`; anything else is a :class:`PipelineFormatError` naming the
        file and the problem (:func:`~recsys_utils.pipeline.serving_file.read_pipeline_file`)."""
        manifest, stored = read_pipeline_file(path)
        history = sp.csr_matrix((stored["history_data"], stored["history_indices"], stored["history_indptr"]),
                                shape=tuple(manifest["history_shape"]))
        channels = [Channel(c["name"], c["kind"], {key: stored[f"channel{n}__{key}"] for key in c["arrays"]})
                    for n, c in enumerate(manifest["channels"])]
        item_features = {name: stored[f"item_feature__{name}"] for name in manifest["item_features"]}
        pipeline = cls(channels, history, stored["item_category"], n_recall=manifest["n_recall"],
                       item_features=item_features, meta=manifest["meta"])
        try:
            pipeline.ranker = _load_ranker(stored, [n.replace(":", "__") for n in pipeline.feature_names])
        except (KeyError, ValueError, IndexError) as error:
            raise PipelineFormatError(f"{path}: the ranker's arrays do not fit the pipeline ({error})") from None
        return pipeline


def _ranker_arrays(ranker: Ranker) -> dict[str, np.ndarray]:
    """The ranker in the file's keys: ``booster`` (trees as text) or ``ranker`` (coefficients, intercept
    last), ``feature_mean``, ``feature_scale`` and ``feature_median`` (missing values' fill)."""
    arrays = ranker.to_arrays()
    if ranker.kind == "lgbm":
        return {"booster": arrays["booster"]}
    if ranker.kind != "logistic" or ranker.negative_rate < 1 or ranker.numeric_ != ranker.columns_:
        raise ValueError("ServingPipeline.save: the ranker must be a binary LightGBM or a logistic regression "
                         "on every feature without negative sampling (as fit_ranker makes it)")
    return {"ranker": np.r_[arrays["coef"], arrays["intercept"]], "feature_mean": arrays["mean"],
            "feature_scale": arrays["scale"], "feature_median": arrays["median"]}


def _load_ranker(stored, names: list[str]) -> Ranker | None:
    """The :class:`Ranker` of a saved file (or ``None``); ``names`` are the pipeline's feature names."""
    import json

    state = {"negative_rate": 1.0, "n_threads": 1, "columns": names, "numeric": names}
    if "booster" in stored:
        return Ranker.from_arrays({"state": np.frombuffer(json.dumps({**state, "kind": "lgbm"}).encode(), np.uint8),
                                   "booster": stored["booster"]})
    if "ranker" not in stored:
        return None
    coef = stored["ranker"]
    median = stored["feature_median"] if "feature_median" in stored else stored["feature_mean"]
    return Ranker.from_arrays({"state": np.frombuffer(json.dumps({**state, "kind": "logistic"}).encode(), np.uint8),
                               "coef": coef[:-1], "intercept": coef[-1:], "mean": stored["feature_mean"],
                               "scale": stored["feature_scale"], "median": median})


def item_serving_features(events, items, item_ids: np.ndarray, cutoff,
                          recent_days: float = 7.0, fresh_days: float = 14.0) -> dict[str, np.ndarray]:
    """Item features known at ``cutoff`` for the ranker, in the order of ``item_ids``: log-popularity
    over the last ``recent_days`` (trends), age in days since launch, freshness
    ``clip(1 − age / fresh_days, 0, 1)`` (new items; 0 before launch) and log price.

    The builder's item columns (:data:`~recsys_utils.features.pairs.SERVING_ITEM_COLUMNS` of
    :func:`~recsys_utils.features.pairs.item_table_columns` on
    :func:`~recsys_utils.features.items.item_features`; only events before ``cutoff`` count: no
    leakage) as float32 arrays; missing ages and prices take the catalogue's median.
    """
    table = item_feature_table(items, events, at=cutoff, recent_days=recent_days).reindex(item_ids)
    if "launch_time" in items.columns:  # a missing launch is an item of typical age
        age = table["age_days"].to_numpy(dtype=np.float64)
        table["age_days"] = np.nan_to_num(age, nan=np.nanmedian(age))
    if "price" in items.columns:  # a missing price is the median price
        price = table["price"].to_numpy(dtype=np.float64)
        table["log_price"] = np.log(np.nan_to_num(price, nan=np.nanmedian(price)).clip(min=0.01))
        table["rel_price"] = table["rel_price"].fillna(0.0)
    columns = item_table_columns(table, "launch_time" in items.columns, fresh_days)
    return {name: columns[column].to_numpy(dtype=np.float32) for name, column in SERVING_ITEM_COLUMNS.items()
            if column in columns}
