"""The serving pipeline: recall channels → learned ranker → business rules → diversity → sponsored slot.

Everything the pipeline needs at request time is plain arrays (factor matrices, an item-item
matrix, a popularity vector, the ranker's coefficients), so it is saved with ``numpy.savez``
(``allow_pickle=False``) and loaded without unpickling anything, behind a format-version check.

Stages, for a batch of users at once:

1. **recall** (召回): each channel scores the whole catalogue, seen items are removed, its top
   ``n_recall`` items are kept; the channels' lists are merged and deduplicated;
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
import scipy.sparse as sp

from recsys_utils.pipeline.rerank import (
    PAD,
    BusinessRules,
    cap_per_group,
    first_k,
    insert_sponsored,
    mmr,
    sparse_lookup,
)

FORMAT = "recsys_utils.pipeline.serving"
FORMAT_VERSION = 1


class PipelineFormatError(ValueError):
    """A saved pipeline file that this version cannot load (the message says why)."""


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
    ranker: np.ndarray | None = None  # logistic-regression coefficients, intercept last
    feature_mean: np.ndarray | None = None
    feature_scale: np.ndarray | None = None
    booster: str | None = None  # a LightGBM model as text (fit_ranker(kind="gbdt"))
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.history = sp.csr_matrix(self.history, dtype=np.float32)
        counts = np.asarray((self.history > 0).sum(axis=0)).ravel()
        self._log_popularity = np.log1p(counts).astype(np.float32)
        n_categories = int(self.item_category.max()) + 1
        self._category_onehot = sp.csr_matrix(
            (np.ones(len(self.item_category), dtype=np.float32), (np.arange(len(self.item_category)),
                                                                  self.item_category)),
            shape=(len(self.item_category), n_categories))

    # ----------------------------------------------------------------- recall and features

    @property
    def feature_names(self) -> list[str]:
        names = []
        for channel in self.channels:
            names += [f"{channel.name}:reciprocal_rank", f"{channel.name}:score_z"]
        return names + ["item:log_popularity", "user:category_affinity", "user:log_activity"] + [
            f"item:{n}" for n in self.item_features]

    def recall(self, user_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Merged candidates ``(n, C)``, their features ``(n, C, F)`` and each channel's own top list."""
        user_indices = np.asarray(user_indices, dtype=np.int64)
        seen = self.history[user_indices]
        n_items = self.history.shape[1]
        n_recall = min(self.n_recall, n_items)
        rows = np.arange(len(user_indices))
        per_channel, scores, ranks = {}, [], []
        for channel in self.channels:
            score = np.asarray(channel.score(user_indices, self.history), dtype=np.float32)
            score[seen.nonzero()] = -np.inf
            top = np.argpartition(-score, n_recall - 1, axis=1)[:, :n_recall]
            top = np.take_along_axis(top, np.argsort(-np.take_along_axis(score, top, axis=1), axis=1), axis=1)
            top = np.where(np.isfinite(np.take_along_axis(score, top, axis=1)), top, PAD)
            rank = np.full(score.shape, np.inf, dtype=np.float32)
            valid = top >= 0
            rank[np.repeat(rows, n_recall)[valid.ravel()], top[valid]] = np.tile(np.arange(n_recall), len(rows))[
                valid.ravel()]
            per_channel[channel.name] = top
            finite = np.where(np.isfinite(score), score, np.nan)
            mean, std = np.nanmean(finite, axis=1, keepdims=True), np.nanstd(finite, axis=1, keepdims=True)
            scores.append(np.nan_to_num((finite - mean) / np.where(std > 0, std, 1.0), nan=-10.0))
            ranks.append(rank)
        candidates = dedupe_rows(np.hstack(list(per_channel.values())))
        cells = np.where(candidates >= 0, candidates, 0)
        features = []
        for score, rank in zip(scores, ranks, strict=True):
            features.append(1.0 / (1.0 + np.take_along_axis(rank, cells, axis=1)))
            features.append(np.take_along_axis(score, cells, axis=1))
        features.append(self._log_popularity[cells])
        affinity = np.asarray((seen @ self._category_onehot).todense(), dtype=np.float32)
        affinity /= np.maximum(affinity.sum(axis=1, keepdims=True), 1.0)
        features.append(np.take_along_axis(affinity, self.item_category[cells], axis=1))
        activity = np.log1p(np.diff(seen.indptr)).astype(np.float32)  # lets trees treat light and heavy users apart
        features.append(np.broadcast_to(activity[:, None], cells.shape))
        features += [np.asarray(values, dtype=np.float32)[cells] for values in self.item_features.values()]
        return candidates, np.stack(features, axis=2).astype(np.float32), per_channel

    # ----------------------------------------------------------------- ranker

    def fit_ranker(self, user_indices: np.ndarray, relevant: sp.csr_matrix, kind: str = "logistic",
                   c: float = 1.0, n_trees: int = 60, num_leaves: int = 7, learning_rate: float = 0.05,
                   min_data_in_leaf: int = 200, seed: int = 0) -> dict:
        """Fit the ranker on candidates labelled by ``relevant`` (users x items, a period *after* the
        channels' training data): ``kind="logistic"`` (a linear model) or ``"gbdt"`` (LightGBM
        gradient-boosted trees, binary log-loss, Ke et al. 2017; the trees are kept as text).
        Trees can use interactions a linear model cannot (e.g. trust EASE more for heavy users,
        popularity more for light ones). Returns a summary of the training data."""
        user_indices = np.asarray(user_indices, dtype=np.int64)
        relevant = sp.csr_matrix(relevant)
        if relevant.shape != self.history.shape:
            raise ValueError(f"fit_ranker: relevant has shape {relevant.shape}, the history {self.history.shape}")
        candidates, features, _ = self.recall(user_indices)
        labels = sparse_lookup(relevant[user_indices], np.where(candidates >= 0, candidates, 0))
        valid = candidates >= 0
        x, y = features[valid], labels[valid]
        if y.sum() == 0:
            raise ValueError("fit_ranker: no relevant item among the candidates; cannot learn a ranker")
        if kind == "logistic":
            from sklearn.linear_model import LogisticRegression

            self.feature_mean, self.feature_scale = x.mean(axis=0), x.std(axis=0) + 1e-6
            model = LogisticRegression(C=c, max_iter=500)
            model.fit((x - self.feature_mean) / self.feature_scale, y)
            self.ranker, self.booster, self._booster = np.r_[model.coef_.ravel(), model.intercept_], None, None
        elif kind == "gbdt":
            import lightgbm as lgb

            params = {"objective": "binary", "learning_rate": learning_rate, "num_leaves": num_leaves,
                      "min_data_in_leaf": min_data_in_leaf, "feature_fraction": 0.9, "bagging_fraction": 0.8,
                      "bagging_freq": 1, "seed": seed, "deterministic": True, "force_row_wise": True,
                      "num_threads": 1, "verbose": -1}
            names = [name.replace(":", "__") for name in self.feature_names]
            booster = lgb.train(params, lgb.Dataset(x, y.astype(np.float32), feature_name=names),
                                num_boost_round=n_trees)
            self.booster, self.ranker, self._booster = booster.model_to_string(), None, booster
        else:
            raise ValueError(f"fit_ranker: kind must be 'logistic' or 'gbdt', got {kind!r}")
        rel = relevant[user_indices]
        return {"rows": int(len(y)), "positives": int(y.sum()),
                "candidate_recall": float(y.sum() / rel.nnz) if rel.nnz else float("nan")}

    def copy_ranker(self, other: ServingPipeline) -> ServingPipeline:
        """Use ``other``'s fitted ranker (e.g. trained on an earlier period with the same features)."""
        if other.feature_names != self.feature_names:
            raise ValueError(f"copy_ranker: features differ: {other.feature_names} vs {self.feature_names}")
        self.ranker, self.feature_mean, self.feature_scale = other.ranker, other.feature_mean, other.feature_scale
        self.booster, self._booster = other.booster, getattr(other, "_booster", None)
        return self

    def feature_importance(self) -> dict[str, float]:
        """Gain importance (gbdt) or |standardised coefficient| (logistic) of each feature."""
        if self.booster is not None:
            return dict(zip(self.feature_names, self._gbdt().feature_importance("gain").tolist(), strict=True))
        if self.ranker is None:
            raise RuntimeError("ServingPipeline: the ranker is not fitted: call fit_ranker first")
        return dict(zip(self.feature_names, np.abs(self.ranker[:-1]).tolist(), strict=True))

    def _gbdt(self):
        if getattr(self, "_booster", None) is None:
            import lightgbm as lgb

            self._booster = lgb.Booster(model_str=self.booster)
        return self._booster

    def rank_scores(self, features: np.ndarray) -> np.ndarray:
        """Ranker score of each candidate (``features``: ``(n, C, F)``)."""
        if self.booster is not None:
            flat = features.reshape(-1, features.shape[-1])
            return self._gbdt().predict(flat, raw_score=True, num_threads=1).reshape(features.shape[:-1])
        if self.ranker is None:
            raise RuntimeError("ServingPipeline: the ranker is not fitted: call fit_ranker first")
        z = (features - self.feature_mean) / self.feature_scale
        return z @ self.ranker[:-1] + self.ranker[-1]

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
            arrays.update(ranker=self.ranker, feature_mean=self.feature_mean, feature_scale=self.feature_scale)
        if self.booster is not None:
            arrays["booster"] = np.frombuffer(self.booster.encode(), dtype=np.uint8)
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
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ServingPipeline:
        """Load a file written by :meth:`save`; refuses other formats and versions with a clear message."""
        path = Path(path)
        try:
            stored = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise PipelineFormatError(f"{path}: not a saved pipeline ({error})") from None
        with stored:
            if "manifest" not in stored.files:
                raise PipelineFormatError(f"{path}: no manifest; not written by ServingPipeline.save")
            manifest = json.loads(bytes(stored["manifest"]).decode())
            if manifest.get("format") != FORMAT:
                raise PipelineFormatError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
            if manifest.get("format_version") != FORMAT_VERSION:
                raise PipelineFormatError(
                    f"{path}: saved with pipeline format version {manifest.get('format_version')}, this "
                    f"recsys_utils reads version {FORMAT_VERSION}; re-export the pipeline with this version")
            history = sp.csr_matrix((stored["history_data"], stored["history_indices"], stored["history_indptr"]),
                                    shape=tuple(manifest["history_shape"]))
            channels = [Channel(c["name"], c["kind"], {key: stored[f"channel{n}__{key}"] for key in c["arrays"]})
                        for n, c in enumerate(manifest["channels"])]
            item_features = {name: stored[f"item_feature__{name}"] for name in manifest.get("item_features", [])}
            pipeline = cls(channels, history, stored["item_category"], n_recall=manifest["n_recall"],
                           item_features=item_features, meta=manifest.get("meta", {}))
            if "ranker" in stored.files:
                pipeline.ranker = stored["ranker"]
                pipeline.feature_mean, pipeline.feature_scale = stored["feature_mean"], stored["feature_scale"]
            if "booster" in stored.files:
                pipeline.booster = bytes(stored["booster"]).decode()
        return pipeline


def item_serving_features(events, items, item_ids: np.ndarray, cutoff,
                          recent_days: float = 7.0, fresh_days: float = 14.0) -> dict[str, np.ndarray]:
    """Item features known at ``cutoff`` for the ranker, in the order of ``item_ids``: log-popularity
    over the last ``recent_days`` (trends), age in days since launch, freshness
    ``clip(1 − age / fresh_days, 0, 1)`` (new items; 0 before launch) and log price.

    A view of :func:`recsys_utils.features.items.item_features` (only events before ``cutoff``
    count: no leakage) as float32 arrays; missing ages and prices take the catalogue's median.
    """
    from recsys_utils.features.items import item_features

    table = item_features(items, events, at=cutoff, recent_days=recent_days).reindex(item_ids)
    out = {"recent_log_popularity": np.log1p(table["recent_events"].fillna(0).to_numpy()).astype(np.float32)}
    if "launch_time" in items.columns:
        age = table["age_days"].to_numpy(dtype=np.float64)
        age = np.nan_to_num(age, nan=np.nanmedian(age))
        out["age_days"] = age.astype(np.float32)
        out["freshness"] = (np.clip(1.0 - age / fresh_days, 0.0, 1.0) * (age >= 0)).astype(np.float32)
    if "price" in items.columns:
        price = table["price"].to_numpy(dtype=np.float64)
        out["log_price"] = np.log(np.nan_to_num(price, nan=np.nanmedian(price)).clip(min=0.01)).astype(np.float32)
    return out
