"""Ranking (排序): a learned model of P(click | user, item, context) over the recalled candidates.

The second stage of an industrial recommender scores only the few hundred candidates recall
proposed, so it can afford rich features: the user's profile (用户画像), the item's attributes
and momentum, user x item crosses (the user's affinity to the item's category, the price gap)
and the recall channels' own scores and ranks. The features come from the package's one
pair-feature builder (:func:`recsys_utils.features.pairs.pair_features`, columns
:data:`~recsys_utils.features.pairs.RANKER_COLUMNS`); this module adds the recall columns.
Training data comes from *time*: candidates are generated from everything before a cut-off ``t``,
and a candidate is labelled 1 when the user interacts with it in ``[t, t + window)``. The ranker
is trained at an earlier cut-off than the one it is tested at, so its labels end where the test
period starts (no leakage).

Models (:class:`Ranker`): LightGBM with a binary objective (a click-through-rate model, whose
probabilities are scored with AUC and log-loss) or a LambdaRank objective (Burges 2010, "From
RankNet to LambdaRank to LambdaMART: an overview"; Ke et al. 2017, "LightGBM", NeurIPS), and
logistic regression as the linear baseline (the classic CTR model, McMahan et al. 2013).
Negatives are subsampled for speed and the binary probabilities corrected back to the full
population (King & Zeng 2001, prior correction). The serving pipeline
(:mod:`recsys_utils.pipeline.serving`) uses this same class.

The ranker's protocol (:class:`PairRanker`) is not :class:`recsys_utils.models.base.Recommender`:
a Recommender is fitted on an interaction matrix and scores *every* item for a user, whereas a
ranker is fitted on labelled feature rows of (user, item) candidate pairs and scores only those
pairs, so it speaks ``fit(features, labels, users=None)`` and ``score_pairs(features)`` (one score
per pair row, higher = better), plus :meth:`Ranker.to_arrays` / :meth:`Ranker.from_arrays` so a
pipeline can save it without pickling.
"""

from __future__ import annotations

import json
from typing import Protocol

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import ITEM, TIMESTAMP, USER
from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.features.pairs import RANKER_COLUMNS, USER_COLUMNS, FeatureTables, build_feature_tables
from recsys_utils.features.pairs import pair_features as build_pair_features
from recsys_utils.pipeline.recall import ITEM_INDEX, USER_INDEX

__all__ = ["USER_COLUMNS", "PairRanker", "Ranker", "Snapshot", "ctr_metrics", "label_pairs", "pair_features",
           "rank_candidates", "sample_negatives", "snapshot"]

#: what is known at a cut-off (the tables of :func:`recsys_utils.features.pairs.build_feature_tables`)
Snapshot = FeatureTables


class PairRanker(Protocol):
    """What a ranker of candidate pairs offers (see the module docstring for why not a Recommender)."""

    def fit(self, features: pd.DataFrame, labels: np.ndarray, users: np.ndarray | None = None) -> PairRanker: ...

    def score_pairs(self, features: pd.DataFrame) -> np.ndarray: ...


# ----------------------------------------------------------------------------------- features


def snapshot(events: pd.DataFrame, at, users: IdIndex, items: IdIndex, item_table: pd.DataFrame,
             user_table: pd.DataFrame | None = None, recent_days: float = 14.0) -> FeatureTables:
    """Everything the ranker may know at ``at`` (only rows of ``events`` strictly before it):
    :func:`~recsys_utils.features.pairs.build_feature_tables` over the shared indexes."""
    for column in (USER, ITEM, TIMESTAMP):
        if column not in events.columns:
            raise KeyError(f"snapshot: events lack column '{column}'; columns are {list(events.columns)}")
    if ITEM not in item_table.columns:
        raise KeyError(f"snapshot: the item table has no '{ITEM}' column")
    at = pd.Timestamp(at)
    if not (pd.to_datetime(events[TIMESTAMP]) < at).any():
        raise ValueError(f"snapshot: no events before {at}")
    return build_feature_tables(events, item_table.drop_duplicates(ITEM), user_table, at=at, user_index=users,
                                item_index=items, recent_days=recent_days)


def pair_features(candidates: pd.DataFrame, snap: FeatureTables, channel_columns: bool = True) -> pd.DataFrame:
    """The ranker's feature table of (user, item) candidates: the builder's :data:`RANKER_COLUMNS`
    plus, when ``channel_columns``, the candidates' ``score_*``, ``rank_*``, ``n_sources`` and
    ``position`` columns as ``recall_*`` features.

    ``candidates`` needs ``user_index`` and ``item_index`` (as made by
    :func:`~recsys_utils.pipeline.recall.generate_candidates`). ``item_category`` is a pandas
    categorical (LightGBM splits on it natively).
    """
    for column in (USER_INDEX, ITEM_INDEX):
        if column not in candidates.columns:
            raise KeyError(f"pair_features: candidates lack column '{column}'")
    out = build_pair_features(snap, candidates[USER_INDEX].to_numpy(), candidates[ITEM_INDEX].to_numpy(),
                              RANKER_COLUMNS)
    if channel_columns:
        keep = [c for c in candidates.columns if c.startswith(("score_", "rank_")) or c in ("n_sources", "position")]
        out = pd.concat([out, candidates[keep].reset_index(drop=True).add_prefix("recall_")], axis=1)
    return out


def label_pairs(candidates: pd.DataFrame, future: Interactions) -> np.ndarray:
    """1 where the user interacted with the candidate item in ``future`` (same indexes), else 0."""
    u = candidates[USER_INDEX].to_numpy()
    i = candidates[ITEM_INDEX].to_numpy()
    if len(u) and (u.max() >= future.n_users or i.max() >= future.n_items):
        raise ValueError("label_pairs: candidate indices exceed the future matrix; build both on shared indexes")
    return (np.asarray(future.binary()[u, i]).ravel() > 0).astype(np.int8)


# ----------------------------------------------------------------------------------- rankers


def sample_negatives(labels: np.ndarray, rate: float, seed: int = 42) -> np.ndarray:
    """Boolean mask keeping every positive and each negative with probability ``rate``."""
    if not 0 < rate <= 1:
        raise ValueError(f"sample_negatives: rate must lie in (0, 1], got {rate}")
    labels = np.asarray(labels)
    return (labels > 0) | (np.random.default_rng(seed).random(len(labels)) < rate)


class Ranker:
    """A pointwise or listwise ranker over candidate features (the package's one learned ranker).

    ``kind``: ``"lgbm"`` (LightGBM binary: a CTR model), ``"lambdarank"`` (LightGBM LambdaRank
    on each user's candidate list) or ``"logistic"`` (median-imputed, standardised logistic
    regression on the numeric features; categorical columns are dropped). ``negative_rate``
    subsamples negatives during :meth:`fit`; :meth:`predict_proba` undoes the sampling with a prior
    correction ``p / (p + (1 - p) / rate)`` so probabilities refer to the full candidate population.
    LightGBM ``params`` override the defaults (e.g. ``n_estimators``, ``num_leaves``); ``C`` is the
    logistic regression's inverse regularisation.
    """

    def __init__(self, kind: str = "lgbm", negative_rate: float = 1.0, seed: int = 42,
                 n_threads: int = 1, **params) -> None:
        if kind not in ("lgbm", "lambdarank", "logistic"):
            raise ValueError(f"Ranker: kind must be 'lgbm', 'lambdarank' or 'logistic', got {kind!r}")
        self.kind = kind
        self.negative_rate = negative_rate
        self.seed = seed
        self.n_threads = n_threads
        self.params = params

    def _lgbm_params(self) -> dict:
        base = {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 31, "min_child_samples": 50,
                "subsample": 0.8, "subsample_freq": 1, "colsample_bytree": 0.8, "reg_lambda": 1.0,
                "random_state": self.seed, "n_jobs": self.n_threads, "verbose": -1, "deterministic": True}
        return {**base, **self.params}

    def fit(self, features: pd.DataFrame, labels: np.ndarray, users: np.ndarray | None = None) -> Ranker:
        """Train on a feature table, 0/1 ``labels`` and (for LambdaRank) each row's user."""
        labels = np.asarray(labels)
        if len(labels) != len(features):
            raise ValueError(f"Ranker.fit: {len(features)} feature rows but {len(labels)} labels")
        if labels.min() == labels.max():
            raise ValueError("Ranker.fit: labels hold a single class; need clicks and non-clicks")
        keep = sample_negatives(labels, self.negative_rate, self.seed) if self.negative_rate < 1 else \
            np.ones(len(labels), dtype=bool)
        x, y = features[keep], labels[keep]
        self.columns_ = list(features.columns)
        if self.kind == "logistic":
            self._fit_logistic(features, x, y)
            return self
        import lightgbm as lgb

        if self.kind == "lgbm":
            model = lgb.LGBMClassifier(objective="binary", **self._lgbm_params())
            model.fit(x, y)
        else:
            if users is None:
                raise ValueError("Ranker.fit: LambdaRank needs each row's user (users=...)")
            users = np.asarray(users)[keep]
            order = np.argsort(users, kind="stable")
            _, group = np.unique(users[order], return_counts=True)
            model = lgb.LGBMRanker(objective="lambdarank", **self._lgbm_params())
            model.fit(x.iloc[order], y[order], group=group)
        self.booster_ = model.booster_
        return self

    def _fit_logistic(self, features: pd.DataFrame, x: pd.DataFrame, y: np.ndarray) -> None:
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.numeric_ = [c for c in self.columns_ if not isinstance(features[c].dtype, pd.CategoricalDtype)]
        model = make_pipeline(SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler(),
                              LogisticRegression(C=self.params.get("C", 1.0), max_iter=1000))
        model.fit(x[self.numeric_].to_numpy(dtype=np.float64), y)
        self.median_, self.mean_ = model[0].statistics_, model[1].mean_
        self.scale_, self.coef_ = model[1].scale_, model[-1].coef_.ravel()
        self.intercept_ = float(model[-1].intercept_[0])

    def _check(self) -> None:
        if not hasattr(self, "columns_"):
            raise RuntimeError("Ranker is not fitted: call fit(features, labels) first")

    def _raw(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Raw scores: the linear predictor (logistic) or the boosted trees' sum (LightGBM).

        ``features`` is a table with the training columns, or (the fast path for serving) a numeric
        array whose columns are the training columns in their order (no categorical columns).
        """
        self._check()
        if isinstance(features, np.ndarray):
            if features.ndim != 2 or features.shape[1] != len(self.columns_):
                raise ValueError(f"Ranker: features array has shape {features.shape}, expected (n, "
                                 f"{len(self.columns_)}) in the training column order")
            if self.kind == "logistic":
                x = features[:, [self.columns_.index(c) for c in self.numeric_]].astype(np.float64)
            else:
                x = features
        else:
            x = features[self.numeric_ if self.kind == "logistic" else self.columns_]
        if self.kind == "logistic":
            x = np.asarray(x, dtype=np.float64)
            x = np.where(np.isnan(x), self.median_, x)
            return ((x - self.mean_) / self.scale_) @ self.coef_ + self.intercept_
        return np.asarray(self.booster_.predict(x, raw_score=True, num_threads=self.n_threads), dtype=np.float64)

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Ranking scores (higher = better): probabilities for the classifiers, raw scores for LambdaRank."""
        if self.kind == "lambdarank":
            return self._raw(features)
        return self.predict_proba(features)

    def score_pairs(self, features: pd.DataFrame) -> np.ndarray:
        """One score per (user, item) row of ``features`` (higher = better): :meth:`predict`."""
        return self.predict(features)

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """P(click) corrected for negative subsampling (classifiers only)."""
        self._check()
        if self.kind == "lambdarank":
            raise TypeError("Ranker.predict_proba: LambdaRank scores are not probabilities")
        p = 1.0 / (1.0 + np.exp(-self._raw(features)))
        rate = self.negative_rate
        return p / (p + (1.0 - p) / rate) if rate < 1 else p

    def feature_importance(self) -> pd.Series:
        """Total split gain per feature (LightGBM) or |standardised coefficient| (logistic), descending."""
        self._check()
        if self.kind == "logistic":
            return pd.Series(np.abs(self.coef_), index=self.numeric_).sort_values(ascending=False)
        gain = self.booster_.feature_importance(importance_type="gain")
        return pd.Series(gain, index=self.columns_).sort_values(ascending=False)

    # -- saving without pickle --------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted ranker as plain arrays (a JSON ``state`` and numbers or the trees as text)."""
        self._check()
        state = {"kind": self.kind, "negative_rate": self.negative_rate, "n_threads": self.n_threads,
                 "columns": self.columns_, "numeric": getattr(self, "numeric_", None)}
        arrays = {"state": np.frombuffer(json.dumps(state).encode(), dtype=np.uint8)}
        if self.kind == "logistic":
            arrays.update(median=self.median_, mean=self.mean_, scale=self.scale_, coef=self.coef_,
                          intercept=np.array([self.intercept_]))
        else:
            arrays["booster"] = np.frombuffer(self.booster_.model_to_string().encode(), dtype=np.uint8)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> Ranker:
        """The ranker saved by :meth:`to_arrays`."""
        state = json.loads(bytes(arrays["state"]).decode())
        ranker = cls(state["kind"], negative_rate=state["negative_rate"], n_threads=state["n_threads"])
        ranker.columns_ = state["columns"]
        if ranker.kind == "logistic":
            ranker.numeric_ = state["numeric"]
            ranker.median_, ranker.mean_, ranker.scale_ = arrays["median"], arrays["mean"], arrays["scale"]
            ranker.coef_, ranker.intercept_ = arrays["coef"], float(arrays["intercept"][0])
        else:
            import lightgbm as lgb

            ranker.booster_ = lgb.Booster(model_str=bytes(arrays["booster"]).decode())
        return ranker


# ----------------------------------------------------------------------------------- lists


def rank_candidates(candidates: pd.DataFrame, scores: np.ndarray, users: np.ndarray, k: int = 10) -> np.ndarray:
    """Top-``k`` candidate items of each user in ``users`` by ``scores`` (``(len(users), k)``, -1 pads).

    Ties are broken by the candidate's recall ``position`` when present, else by item index.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) != len(candidates):
        raise ValueError(f"rank_candidates: {len(candidates)} candidates but {len(scores)} scores")
    users = np.asarray(users, dtype=np.int64)
    row_of = pd.Series(np.arange(len(users)), index=users)
    rows = row_of.reindex(candidates[USER_INDEX].to_numpy()).to_numpy()
    known = ~np.isnan(rows)
    rows = rows[known].astype(np.int64)
    items = candidates[ITEM_INDEX].to_numpy()[known]
    tie = candidates["position"].to_numpy()[known] if "position" in candidates else items
    order = np.lexsort((tie, -scores[known], rows))
    rows, items = rows[order], items[order]
    position = np.arange(len(rows)) - np.searchsorted(rows, rows)
    keep = position < k
    out = np.full((len(users), k), -1, dtype=np.int64)
    out[rows[keep], position[keep]] = items[keep]
    return out


def ctr_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """AUC and log-loss (:func:`recsys_utils.models.ctr.ctr_metrics`), plus the log-loss of always
    predicting the observed click rate (``log_loss_constant``: a CTR model must beat it) and ``click_rate``."""
    from sklearn.metrics import log_loss

    from recsys_utils.models.ctr import ctr_metrics as base_metrics

    out = base_metrics(labels, probabilities)
    labels = np.asarray(labels, dtype=np.float64)
    out["log_loss_constant"] = float(log_loss(labels, np.full(len(labels), labels.mean()), labels=[0, 1]))
    out["click_rate"] = out["positive_rate"]
    return out
