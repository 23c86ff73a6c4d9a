"""Ranking (排序): a learned model of P(click | user, item, context) over the recalled candidates.

The second stage of an industrial recommender scores only the few hundred candidates recall
proposed, so it can afford rich features: the user's profile (用户画像), the item's attributes
and momentum, user x item crosses (the user's affinity to the item's category, the price gap)
and the recall channels' own scores and ranks. Training data comes from *time*: candidates are
generated from everything before a cut-off ``t``, and a candidate is labelled 1 when the user
interacts with it in ``[t, t + window)``. The ranker is trained at an earlier cut-off than the
one it is tested at, so its labels end where the test period starts (no leakage).

Models (:class:`Ranker`): LightGBM with a binary objective (a click-through-rate model, whose
probabilities are scored with AUC and log-loss) or a LambdaRank objective (Burges 2010, "From
RankNet to LambdaRank to LambdaMART: an overview"; Ke et al. 2017, "LightGBM", NeurIPS), and
logistic regression as the linear baseline (the classic CTR model, McMahan et al. 2013).
Negatives are subsampled for speed and the binary probabilities corrected back to the full
population (King & Zeng 2001, prior correction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_utils.core.vocabulary import BRAND, CATEGORY, EVENT, ITEM, PRICE, PURCHASE, TIMESTAMP, USER, VIEW
from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.features.profile import CATEGORY_PREFIX, category_column, relative_log_price, user_profile
from recsys_utils.pipeline.recall import ITEM_INDEX, USER_INDEX

DAY = pd.Timedelta(days=1)
#: profile columns used as user features (those present are kept)
USER_COLUMNS = ("n_events", "n_items", "n_sessions", "n_active_days", "conversion", "recency_days",
                "purchase_recency_days", "frequency", "monetary", "tenure_days", "category_entropy",
                "brand_share", "price_index", "avg_item_price", "weekend_share", "age", "city_tier")


# ----------------------------------------------------------------------------------- features


@dataclass
class Snapshot:
    """What is known at a cut-off ``at``: the events before it and the tables built from them.

    Build it with :func:`snapshot`. ``interactions`` is the user x item matrix of all events
    before ``at`` over the shared indexes; ``user_features`` (by user index) and
    ``item_features`` (by item index) are numeric tables; ``item_category`` / ``item_top``
    hold category codes per item index; ``leaf_affinity`` and ``recent_affinity`` are sparse
    user x category shares (all history / the last ``recent_days``).
    """

    at: pd.Timestamp
    interactions: Interactions
    recent: Interactions
    user_features: pd.DataFrame
    item_features: pd.DataFrame
    item_category: np.ndarray
    leaf_affinity: sp.csr_matrix
    recent_affinity: sp.csr_matrix
    top_affinity: np.ndarray
    item_top: np.ndarray
    user_brand: np.ndarray
    item_brand: np.ndarray


def _row_shares(matrix: sp.spmatrix) -> sp.csr_matrix:
    matrix = sp.csr_matrix(matrix, dtype=np.float64)
    totals = np.asarray(matrix.sum(axis=1)).ravel()
    return sp.csr_matrix(sp.diags(1.0 / np.maximum(totals, 1e-12)) @ matrix)


def _codes(values: pd.Series, categories: pd.Index) -> np.ndarray:
    return categories.get_indexer(pd.Index(values.astype(object).fillna("unknown")))


def snapshot(events: pd.DataFrame, at, users: IdIndex, items: IdIndex, item_table: pd.DataFrame,
             user_table: pd.DataFrame | None = None, recent_days: float = 14.0) -> Snapshot:
    """Everything the ranker may know at ``at``: only rows of ``events`` strictly before ``at`` are used."""
    for column in (USER, ITEM, TIMESTAMP):
        if column not in events.columns:
            raise KeyError(f"snapshot: events lack column '{column}'; columns are {list(events.columns)}")
    at = pd.Timestamp(at)
    time = pd.to_datetime(events[TIMESTAMP])
    past = events[(time < at).to_numpy()]
    if past.empty:
        raise ValueError(f"snapshot: no events before {at}")
    recent_rows = past[(pd.to_datetime(past[TIMESTAMP]) >= at - recent_days * DAY).to_numpy()]
    matrix = Interactions.from_frame(past, users, items, drop_unknown=True)
    recent = Interactions.from_frame(recent_rows, users, items, drop_unknown=True)
    if ITEM not in item_table.columns:
        raise KeyError(f"snapshot: the item table has no '{ITEM}' column")
    table = item_table.drop_duplicates(ITEM).set_index(ITEM).reindex(items.ids)

    # user features: the profile of notebook 02, at the same cut-off
    profile = user_profile(past, item_table, user_table, at=at)
    user_frame = profile.reindex(users.ids)
    user_features = pd.DataFrame(index=pd.RangeIndex(len(users)))
    for column in USER_COLUMNS:
        if column in user_frame.columns:
            user_features[f"user_{column}"] = pd.to_numeric(user_frame[column], errors="coerce").to_numpy()

    # item features: popularity and its momentum, conversion, freshness (a context feature), price
    weeks = max((at - pd.to_datetime(past[TIMESTAMP]).min()) / pd.Timedelta(weeks=1), 1e-9)
    counts = matrix.item_counts().astype(np.float64)
    recent_week = Interactions.from_frame(recent_rows[(pd.to_datetime(recent_rows[TIMESTAMP])
                                                       >= at - 7 * DAY).to_numpy()], users, items, drop_unknown=True)
    week_counts = recent_week.item_counts().astype(np.float64)
    item_features = pd.DataFrame(index=pd.RangeIndex(len(items)))
    item_features["item_log_users"] = np.log1p(counts)
    item_features["item_log_users_7d"] = np.log1p(week_counts)
    item_features["item_trend"] = np.log1p(week_counts) - np.log1p(counts / weeks)
    if EVENT in past.columns:
        index = items.to_index(past[ITEM].to_numpy(), missing="ignore")
        ok = index >= 0
        views = np.bincount(index[ok & (past[EVENT] == VIEW).to_numpy()], minlength=len(items))
        buys = np.bincount(index[ok & (past[EVENT] == PURCHASE).to_numpy()], minlength=len(items))
        item_features["item_purchase_rate"] = (buys + 0.1) / (views + 5.0)
    if "launch_time" in table.columns:
        item_features["item_age_days"] = ((at - pd.to_datetime(table["launch_time"])) / DAY).to_numpy()
    if PRICE in table.columns:
        price = pd.to_numeric(table[PRICE], errors="coerce")
        item_features["item_log_price"] = np.log(price.clip(lower=0.01)).to_numpy()
        item_features["item_rel_price"] = relative_log_price(item_table).reindex(items.ids).to_numpy()

    # category codes and user x category affinities (cross features)
    leaf = table[CATEGORY] if CATEGORY in table.columns else pd.Series("all", index=table.index)
    leaves = pd.Index(pd.unique(leaf.astype(object).fillna("unknown")))
    item_category = _codes(leaf, leaves)
    onehot = sp.csr_matrix((np.ones(len(items)), (np.arange(len(items)), item_category)),
                           shape=(len(items), len(leaves)))
    top_column = category_column(item_table)
    share_columns = [c for c in profile.columns if str(c).startswith(CATEGORY_PREFIX)]
    tops = pd.Index([c[len(CATEGORY_PREFIX):] for c in share_columns])
    item_top = _codes(table[top_column], tops) if top_column else np.full(len(items), -1)
    if "other" in tops:
        item_top[item_top < 0] = tops.get_loc("other")
    top_affinity = np.nan_to_num(user_frame[share_columns].to_numpy(dtype=np.float64)) if share_columns else \
        np.zeros((len(users), 0))
    brands = pd.Index(pd.unique(table[BRAND].astype(object).fillna("unknown"))) if BRAND in table.columns else \
        pd.Index([])
    item_brand = _codes(table[BRAND], brands) if BRAND in table.columns else np.full(len(items), -1)
    user_brand = (_codes(user_frame["fav_brand"], brands) if "fav_brand" in user_frame.columns
                  else np.full(len(users), -2))
    user_brand[user_brand < 0] = -2
    return Snapshot(at, matrix, recent, user_features, item_features, item_category,
                    _row_shares(matrix.matrix @ onehot), _row_shares(recent.matrix @ onehot),
                    top_affinity, item_top, user_brand, item_brand)


def pair_features(candidates: pd.DataFrame, snap: Snapshot, channel_columns: bool = True) -> pd.DataFrame:
    """Feature table of (user, item) pairs: user, item, cross, context and recall features.

    ``candidates`` needs ``user_index`` and ``item_index`` (as made by
    :func:`~recsys_utils.pipeline.recall.generate_candidates`); its ``score_*``, ``rank_*``,
    ``n_sources`` and ``position`` columns are kept as recall features when ``channel_columns``.
    ``item_category`` is a pandas categorical (LightGBM splits on it natively).
    """
    for column in (USER_INDEX, ITEM_INDEX):
        if column not in candidates.columns:
            raise KeyError(f"pair_features: candidates lack column '{column}'")
    u = candidates[USER_INDEX].to_numpy()
    i = candidates[ITEM_INDEX].to_numpy()
    out = pd.concat([snap.user_features.iloc[u].reset_index(drop=True),
                     snap.item_features.iloc[i].reset_index(drop=True)], axis=1)
    out["item_category"] = pd.Categorical(snap.item_category[i], categories=np.arange(snap.item_category.max() + 1))
    leaf = snap.item_category[i]
    out["cross_leaf_affinity"] = np.asarray(snap.leaf_affinity[u, leaf]).ravel()
    out["cross_recent_leaf_affinity"] = np.asarray(snap.recent_affinity[u, leaf]).ravel()
    top = snap.item_top[i]
    out["cross_top_affinity"] = np.where(top >= 0, snap.top_affinity[u, np.maximum(top, 0)], 0.0) \
        if snap.top_affinity.shape[1] else 0.0
    out["cross_fav_brand"] = (snap.user_brand[u] == snap.item_brand[i]).astype(np.float64)
    if "item_rel_price" in out and "user_price_index" in out:
        out["cross_price_gap"] = out["item_rel_price"] - out["user_price_index"]
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
    """A pointwise or listwise ranker over candidate features.

    ``kind``: ``"lgbm"`` (LightGBM binary: a CTR model), ``"lambdarank"`` (LightGBM LambdaRank
    on each user's candidate list) or ``"logistic"`` (standardised logistic regression on the
    numeric features; categorical columns are dropped). ``negative_rate`` subsamples negatives
    during :meth:`fit`; :meth:`predict_proba` undoes the sampling with a prior correction
    ``p / (p + (1 - p) / rate)`` so probabilities refer to the full candidate population.
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
            from sklearn.impute import SimpleImputer
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline
            from sklearn.preprocessing import StandardScaler

            self.numeric_ = [c for c in self.columns_ if not isinstance(features[c].dtype, pd.CategoricalDtype)]
            self.model_ = make_pipeline(SimpleImputer(strategy="median"), StandardScaler(),
                                        LogisticRegression(C=self.params.get("C", 1.0), max_iter=1000))
            self.model_.fit(x[self.numeric_].to_numpy(dtype=np.float64), y)
            return self
        import lightgbm as lgb

        if self.kind == "lgbm":
            self.model_ = lgb.LGBMClassifier(objective="binary", **self._lgbm_params())
            self.model_.fit(x, y)
            return self
        if users is None:
            raise ValueError("Ranker.fit: LambdaRank needs each row's user (users=...)")
        users = np.asarray(users)[keep]
        order = np.argsort(users, kind="stable")
        _, group = np.unique(users[order], return_counts=True)
        self.model_ = lgb.LGBMRanker(objective="lambdarank", **self._lgbm_params())
        self.model_.fit(x.iloc[order], y[order], group=group)
        return self

    def _check(self) -> None:
        if not hasattr(self, "model_"):
            raise RuntimeError("Ranker is not fitted: call fit(features, labels) first")

    def predict(self, features: pd.DataFrame) -> np.ndarray:
        """Ranking scores (higher = better): probabilities for the classifiers, raw scores for LambdaRank."""
        self._check()
        if self.kind == "lambdarank":
            return np.asarray(self.model_.predict(features[self.columns_]), dtype=np.float64)
        return self.predict_proba(features)

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray:
        """P(click) corrected for negative subsampling (classifiers only)."""
        self._check()
        if self.kind == "lambdarank":
            raise TypeError("Ranker.predict_proba: LambdaRank scores are not probabilities")
        if self.kind == "logistic":
            p = self.model_.predict_proba(features[self.numeric_].to_numpy(dtype=np.float64))[:, 1]
        else:
            p = self.model_.predict_proba(features[self.columns_])[:, 1]
        rate = self.negative_rate
        return p / (p + (1.0 - p) / rate) if rate < 1 else p

    def feature_importance(self) -> pd.Series:
        """Total split gain per feature (LightGBM) or |standardised coefficient| (logistic), descending."""
        self._check()
        if self.kind == "logistic":
            coef = np.abs(self.model_[-1].coef_.ravel())
            return pd.Series(coef, index=self.numeric_).sort_values(ascending=False)
        gain = self.model_.booster_.feature_importance(importance_type="gain")
        return pd.Series(gain, index=self.columns_).sort_values(ascending=False)


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
