"""Click-through-rate prediction (点击率预测) on user, item and context features: DeepFM.

Guo, Tang, Ye, Li & He (2017), "DeepFM: A Factorization-Machine based Neural Network for CTR
Prediction", IJCAI. Every feature is a categorical *field* (numbers are cut into quantile bins);
field ``f`` of a row has an embedding ``e_f`` and a weight ``w_f``, and the logit is

    ŷ = b + Σ_f w_f  +  ½ Σ_d [(Σ_f e_fd)² - Σ_f e_fd²]  +  MLP([e_1; …; e_F]),

the linear ("wide") part, the factorisation machine's pairwise interactions ⟨e_f, e_g⟩
(Rendle 2010) and a deep tower on the same embeddings. ``fm=False`` drops the FM term, which
leaves Wide & Deep (Cheng et al. 2016) without hand-made cross features.

The data: the marketplace logs clicks (item views), never impressions, so — as in the course's
source documents — a click-through-rate dataset is clicks versus *sampled non-clicks*:
:func:`ctr_samples` pairs every clicked (user, item) of a period with ``n_negatives`` items the user
did not click in it, in the same context (device, time). Features come strictly from the past:
:class:`CTRFeatures` reads user features (the profile) and item features (category, brand, price,
popularity, age) from the package's one pair-feature builder
(:func:`recsys_utils.features.pairs.build_feature_tables`) and adds context (device, daypart of
:mod:`recsys_utils.features.context`, weekend), all from events before the labelled period.
Probabilities are calibrated to the sampling ratio, not to a real click rate; AUC does not depend on it.

As a ranker (:class:`DeepFM`, a :class:`~recsys_utils.models.torch_base.TorchRecommender`), every user is
scored against the whole catalogue in their usual context (favourite device, peak daypart). The
user and item halves of the first hidden layer and of the FM are computed once each
(:meth:`DeepFMNet.score_grid`), not once per pair.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from recsys_utils.core.vocabulary import BRAND, CATEGORY, ITEM, TIMESTAMP, USER
from recsys_utils.data.interactions import Interactions
from recsys_utils.features.context import daypart_codes
from recsys_utils.features.pairs import build_feature_tables
from recsys_utils.models.torch_base import TorchRecommender
from recsys_utils.models.train.batches import ArrayBatches, sample_negatives

__all__ = ["CTRFeatures", "DeepFM", "DeepFMNet", "ctr_metrics", "ctr_samples"]

DEVICE = "device"
#: user-side fields: (name, kind, profile column); "num" fields are binned by quantiles
USER_FIELDS = (
    ("user_id", "id", None), ("gender", "cat", "gender"), ("member_level", "cat", "member_level"),
    ("city_tier", "cat", "city_tier"), ("age", "num", "age"), ("fav_category", "cat", "fav_category"),
    ("activity", "num", "n_events"), ("price_index", "num", "price_index"), ("recency", "num", "recency_days"),
    ("conversion", "num", "conversion"),
)
CONTEXT_FIELDS = ("device", "daypart", "weekend")
#: item-side fields: (name, kind, column of :func:`~recsys_utils.features.items.item_features`)
ITEM_FIELDS = (
    ("item_id", "id", None), ("category", "cat", CATEGORY), ("top_category", "cat", "top_category"),
    ("brand", "cat", BRAND), ("price_band", "num", "log_price"), ("popularity", "num", "log_popularity"),
    ("item_age", "num", "age_days"),
)


# --------------------------------------------------------------------------------------------
# encoders
# --------------------------------------------------------------------------------------------


class _Codes:
    """One field's encoder: a vocabulary (categorical) or quantile edges (numeric); 0 = unknown."""

    def __init__(self, kind: str, values: pd.Series | np.ndarray, n_bins: int) -> None:
        self.kind = kind
        values = pd.Series(np.asarray(values, dtype=object if kind != "num" else np.float64))
        if kind == "num":
            finite = values.to_numpy(dtype=np.float64)
            finite = finite[np.isfinite(finite)]
            qs = np.linspace(0, 1, n_bins + 1)[1:-1]
            self.edges = np.unique(np.quantile(finite, qs)) if len(finite) else np.empty(0)
            self.size = len(self.edges) + 2
        else:
            vocab = pd.unique(values.dropna().astype(str))
            self.index = pd.Index(np.sort(vocab))
            self.size = len(self.index) + 1

    def __call__(self, values) -> np.ndarray:
        if self.kind == "num":
            x = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=np.float64)
            codes = np.searchsorted(self.edges, x, side="right") + 1
            return np.where(np.isfinite(x), codes, 0).astype(np.int64)
        series = pd.Series(values, dtype=object)
        keys = series.where(series.notna(), None).astype(str).to_numpy()
        return (self.index.get_indexer(keys) + 1).astype(np.int64)  # -1 (unknown) -> 0


class CTRFeatures:
    """Categorical fields for (user, item, context) rows, learned from a history of events.

    ``fit(history, items, users)`` builds the user profile and item table at the end of
    ``history`` and learns each field's vocabulary or quantile bins (``n_bins``); unknown values,
    users and items fall into code 0 of their field. ``refresh(newer_history)`` keeps the encoders
    and recomputes the tables (serving features at a later time). Field order: user fields, then
    context fields, then item fields (:attr:`fields`, :attr:`sizes`, :attr:`n_user_side`).
    """

    def __init__(self, n_bins: int = 8) -> None:
        if n_bins < 2:
            raise ValueError(f"CTRFeatures: n_bins must be >= 2, got {n_bins}")
        self.n_bins = n_bins

    # -- tables -----------------------------------------------------------------------------
    def _tables(self, history: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """(user table, item table) at the end of ``history``: the one pair-feature builder's tables
        (:func:`~recsys_utils.features.pairs.build_feature_tables`), from which the fields are read."""
        tables = build_feature_tables(history, self._items, self._users)
        return tables.users, tables.items

    def fit(self, history: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame | None = None) -> CTRFeatures:
        for column in (USER, ITEM, TIMESTAMP):
            if column not in history.columns:
                raise KeyError(f"CTRFeatures.fit: history has no column '{column}' (columns: {list(history.columns)})")
        if ITEM not in items.columns:
            raise KeyError(f"CTRFeatures.fit: the item table has no column '{ITEM}'")
        if len(history) == 0:
            raise ValueError("CTRFeatures.fit: the history is empty")
        self._items, self._users = items, users
        self.user_table_, self.item_table_ = self._tables(history)
        self.user_fields = [(n, k, c) for n, k, c in USER_FIELDS if k == "id" or c in self.user_table_.columns]
        self.item_fields = [(n, k, c) for n, k, c in ITEM_FIELDS if k == "id" or c in self.item_table_.columns]
        self.context_fields = [n for n in CONTEXT_FIELDS if n != DEVICE or DEVICE in history.columns]
        self.codes_: dict[str, _Codes] = {}
        for name, kind, column in self.user_fields:
            values = self.user_table_.index if kind == "id" else self.user_table_[column]
            self.codes_[name] = _Codes("cat" if kind == "id" else kind, values, self.n_bins)
        for name, kind, column in self.item_fields:
            values = self.item_table_.index if kind == "id" else self.item_table_[column]
            self.codes_[name] = _Codes("cat" if kind == "id" else kind, values, self.n_bins)
        if DEVICE in self.context_fields:
            self.codes_[DEVICE] = _Codes("cat", history[DEVICE], self.n_bins)
        self.codes_["daypart"] = _Codes("cat", np.arange(4), self.n_bins)
        self.codes_["weekend"] = _Codes("cat", np.arange(2), self.n_bins)
        return self

    def refresh(self, history: pd.DataFrame) -> CTRFeatures:
        """A copy with the same encoders and tables rebuilt from ``history`` (a later cut-off)."""
        self._check()
        out = copy.copy(self)
        out.user_table_, out.item_table_ = out._tables(history)
        return out

    def _check(self) -> None:
        if not hasattr(self, "codes_"):
            raise RuntimeError("CTRFeatures is not fitted: call fit(history, items, users) first")

    # -- layout -----------------------------------------------------------------------------
    @property
    def fields(self) -> list[str]:
        self._check()
        return [n for n, _, _ in self.user_fields] + list(self.context_fields) + [n for n, _, _ in self.item_fields]

    @property
    def sizes(self) -> list[int]:
        return [self.codes_[name].size for name in self.fields]

    @property
    def n_user_side(self) -> int:
        """Number of user + context fields (they come first in every row)."""
        return len(self.user_fields) + len(self.context_fields)

    # -- encoding ---------------------------------------------------------------------------
    def encode_users(self, user_ids, device=None, timestamp=None) -> np.ndarray:
        """``(n, n_user_side)`` codes; context from ``device``/``timestamp`` (arrays) or, when not
        given, the user's usual context (favourite device, peak daypart, a weekday)."""
        self._check()
        user_ids = np.asarray(user_ids)
        table = self.user_table_.reindex(pd.Index(user_ids))
        cols = []
        for name, kind, column in self.user_fields:
            cols.append(self.codes_[name](user_ids if kind == "id" else table[column].to_numpy()))
        if DEVICE in self.context_fields:
            if device is None:
                usual = "fav_device" in table.columns
                device = table["fav_device"].to_numpy() if usual else np.full(len(user_ids), None)
            cols.append(self.codes_[DEVICE](np.asarray(device, dtype=object)))
        if timestamp is not None:
            time = pd.to_datetime(pd.Series(np.asarray(timestamp)))
            hours = (time.dt.hour + time.dt.minute / 60.0).to_numpy(dtype=np.float64)
            weekend = (time.dt.day_of_week >= 5).to_numpy().astype(np.int64)
        else:
            hours = table["peak_hour"].to_numpy(dtype=np.float64) if "peak_hour" in table.columns \
                else np.full(len(user_ids), np.nan)
            weekend = np.zeros(len(user_ids), dtype=np.int64)
        cols.append(self.codes_["daypart"](daypart_codes(hours).astype(object)))
        cols.append(self.codes_["weekend"](weekend.astype(object)))
        # codes are matched as strings: integers 0..3 / 0..1 and -1 (unknown daypart) -> 0
        return np.stack(cols, axis=1)

    def encode_items(self, item_ids) -> np.ndarray:
        """``(n, n_item_fields)`` codes of the items."""
        self._check()
        item_ids = np.asarray(item_ids)
        table = self.item_table_.reindex(pd.Index(item_ids))
        cols = [self.codes_[name](item_ids if kind == "id" else table[column].to_numpy())
                for name, kind, column in self.item_fields]
        return np.stack(cols, axis=1)

    def encode(self, rows: pd.DataFrame) -> np.ndarray:
        """``(len(rows), n_fields)`` codes of a frame with ``user_id, item_id`` and, optionally, the
        context columns ``device`` and ``timestamp``."""
        for column in (USER, ITEM):
            if column not in rows.columns:
                raise KeyError(f"CTRFeatures.encode: missing column '{column}' (columns: {list(rows.columns)})")
        user = self.encode_users(rows[USER].to_numpy(),
                                 rows[DEVICE].to_numpy() if DEVICE in rows.columns else None,
                                 rows[TIMESTAMP].to_numpy() if TIMESTAMP in rows.columns else None)
        return np.concatenate([user, self.encode_items(rows[ITEM].to_numpy())], axis=1)

    def one_hot(self, codes: np.ndarray) -> sp.csr_matrix:
        """One-hot CSR matrix of encoded rows (for a logistic-regression baseline)."""
        offsets = np.concatenate([[0], np.cumsum(self.sizes)[:-1]])
        cols = (codes + offsets).ravel()
        rows = np.repeat(np.arange(len(codes)), codes.shape[1])
        return sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)),
                             shape=(len(codes), int(sum(self.sizes))))


# --------------------------------------------------------------------------------------------
# samples and metrics
# --------------------------------------------------------------------------------------------


def ctr_samples(events: pd.DataFrame, item_ids, n_negatives: int = 4, strategy: str = "uniform",
                item_counts: np.ndarray | None = None, seed: int = 0) -> pd.DataFrame:
    """Clicks versus sampled non-clicks of one period, in the clicks' context.

    Each distinct (user, item) of ``events`` is a positive (label 1), with the device and time
    of its first event; ``n_negatives`` items drawn from ``item_ids`` (uniformly, or by
    ``item_counts`` for ``strategy="popularity"``) that the user did not click in the period are
    its negatives (label 0, same user and context). Returns ``user_id, item_id, [device],
    timestamp, label``.
    """
    for column in (USER, ITEM, TIMESTAMP):
        if column not in events.columns:
            raise KeyError(f"ctr_samples: missing column '{column}' (columns: {list(events.columns)})")
    if n_negatives < 1:
        raise ValueError(f"ctr_samples: n_negatives must be >= 1, got {n_negatives}")
    item_ids = np.asarray(item_ids)
    keep = [c for c in (USER, ITEM, DEVICE, TIMESTAMP) if c in events.columns]
    pos = events.sort_values(TIMESTAMP, kind="stable").drop_duplicates([USER, ITEM])[keep]
    pos = pos[np.isin(pos[ITEM].to_numpy(), item_ids)].reset_index(drop=True)
    if len(pos) == 0:
        raise ValueError("ctr_samples: no click on a catalogue item in the period")
    rng = np.random.default_rng(seed)
    draws = sample_negatives(len(pos) * n_negatives, len(item_ids), strategy, item_counts, rng, alpha=1.0)
    neg = pos.loc[np.repeat(np.arange(len(pos)), n_negatives)].reset_index(drop=True)
    neg[ITEM] = item_ids[draws]
    clicked = pd.MultiIndex.from_frame(pos[[USER, ITEM]])
    neg = neg[~pd.MultiIndex.from_frame(neg[[USER, ITEM]]).isin(clicked)]
    out = pd.concat([pos.assign(label=1), neg.assign(label=0)], ignore_index=True)
    return out.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def ctr_metrics(labels, probabilities) -> dict[str, float]:
    """AUC and log-loss of click probabilities (never accuracy: clicks are rare), plus the
    number of rows and the share of positives."""
    from sklearn.metrics import log_loss, roc_auc_score

    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-7, 1 - 1e-7)
    if y.shape != p.shape:
        raise ValueError(f"ctr_metrics: {y.shape} labels but {p.shape} probabilities")
    return {"auc": float(roc_auc_score(y, p)), "log_loss": float(log_loss(y, p, labels=[0, 1])),
            "rows": int(len(y)), "positive_rate": float(y.mean())}


# --------------------------------------------------------------------------------------------
# the network
# --------------------------------------------------------------------------------------------


class DeepFMNet(nn.Module):
    """DeepFM on ``len(sizes)`` categorical fields; the first ``n_user_side`` are the user's."""

    def __init__(self, sizes: Sequence[int], n_user_side: int, dim: int = 8, hidden: Sequence[int] = (64, 32),
                 dropout: float = 0.0, fm: bool = True) -> None:
        super().__init__()
        if not 0 < n_user_side < len(sizes):
            raise ValueError(f"DeepFMNet: n_user_side must be in (0, {len(sizes)}), got {n_user_side}")
        self.register_buffer("offsets", torch.tensor(np.concatenate([[0], np.cumsum(sizes)[:-1]]), dtype=torch.long))
        total = int(sum(sizes))
        self.n_fields, self.n_user_side, self.dim, self.fm = len(sizes), n_user_side, dim, fm
        self.embedding = nn.Embedding(total, dim)
        self.linear = nn.Embedding(total, 1)
        self.bias = nn.Parameter(torch.zeros(()))
        nn.init.normal_(self.embedding.weight, std=0.01)
        nn.init.zeros_(self.linear.weight)
        dims = [len(sizes) * dim, *hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.out = nn.Linear(dims[-1], 1)
        self.dropout = dropout

    def _tower(self, h: torch.Tensor, skip_first: bool = False) -> torch.Tensor:
        for index, layer in enumerate(self.layers):
            h = h if (index == 0 and skip_first) else layer(h)
            h = F.dropout(F.relu(h), self.dropout, self.training)
        return self.out(h).squeeze(-1)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """Logits of rows of field codes ``(N, n_fields)``."""
        idx = codes + self.offsets
        e = self.embedding(idx)
        logit = self.bias + self.linear(idx).squeeze(-1).sum(1)
        if self.fm:
            logit = logit + 0.5 * (e.sum(1).pow(2) - e.pow(2).sum(1)).sum(-1)
        return logit + self._tower(e.flatten(1))

    def score_grid(self, user_codes: torch.Tensor, item_codes: torch.Tensor) -> torch.Tensor:
        """Logits of every (user row, item row) pair, ``(U, I)``, equal to :meth:`forward` on the
        concatenated rows but with the user and item halves computed once each."""
        k = self.n_user_side
        iu, ii = user_codes + self.offsets[:k], item_codes + self.offsets[k:]
        eu, ei = self.embedding(iu), self.embedding(ii)
        logit = (self.bias + self.linear(iu).squeeze(-1).sum(1))[:, None] + self.linear(ii).squeeze(-1).sum(1)[None, :]
        if self.fm:
            su, si = eu.sum(1), ei.sum(1)
            self_u = 0.5 * (su.pow(2) - eu.pow(2).sum(1)).sum(-1)
            self_i = 0.5 * (si.pow(2) - ei.pow(2).sum(1)).sum(-1)
            logit = logit + self_u[:, None] + self_i[None, :] + su @ si.T
        first = self.layers[0]
        width = k * self.dim
        pre = (eu.flatten(1) @ first.weight[:, :width].T + first.bias)[:, None, :] \
            + (ei.flatten(1) @ first.weight[:, width:].T)[None, :, :]
        return logit + self._tower(pre, skip_first=True)


# --------------------------------------------------------------------------------------------
# the recommender
# --------------------------------------------------------------------------------------------


class DeepFM(TorchRecommender):
    """DeepFM trained on clicks vs sampled non-clicks, usable as a CTR model and as a ranker.

    ``events`` -- the raw events of the training period (e.g. ``split.train``; the rows behind
    the ``train`` :class:`Interactions` given to :meth:`fit`), ``items`` / ``users`` -- the item
    catalogue and the member table. The last ``label_days`` of ``events`` are the labelled
    period (clicks + ``n_negatives`` sampled non-clicks each), the events before it the feature
    history; after training, the serving features are rebuilt from all of ``events``.
    ``fm=False`` gives Wide & Deep.
    """

    name = "deepfm"

    def __init__(self, events: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame | None = None,
                 label_days: float = 7.0, n_negatives: int = 4, negative_strategy: str = "uniform",
                 dim: int = 8, hidden: Sequence[int] = (64, 32), dropout: float = 0.0, fm: bool = True,
                 n_bins: int = 8, epochs: int = 10, batch_size: int = 2048, lr: float = 2e-3, **kwargs) -> None:
        super().__init__(epochs=epochs, batch_size=batch_size, lr=lr, **kwargs)
        self.events, self.items, self.users = events, items, users
        self.label_days = label_days
        self.n_negatives = n_negatives
        self.negative_strategy = negative_strategy
        self.dim, self.hidden, self.dropout, self.fm, self.n_bins = dim, tuple(hidden), dropout, fm, n_bins

    def _build(self, train: Interactions) -> nn.Module:
        events = self.events
        if TIMESTAMP not in events.columns:
            raise KeyError(f"DeepFM: events need a '{TIMESTAMP}' column (columns: {list(events.columns)})")
        time = pd.to_datetime(events[TIMESTAMP])
        start = time.max() - pd.Timedelta(days=self.label_days)
        history, labelled = events[(time < start).to_numpy()], events[(time >= start).to_numpy()]
        if len(history) == 0 or len(labelled) == 0:
            raise ValueError(f"DeepFM: label_days={self.label_days} leaves no history or no labelled period "
                             f"in events spanning {time.min()} to {time.max()}")
        features = CTRFeatures(self.n_bins).fit(history, self.items, self.users)
        catalogue = train.items.ids
        counts = np.bincount(train.items.to_index(history[ITEM].to_numpy(), missing="ignore").clip(-1) + 1,
                             minlength=len(catalogue) + 1)[1:].astype(float) + 1.0
        self.samples_ = ctr_samples(labelled, catalogue, self.n_negatives, self.negative_strategy, counts, self.seed)
        self._x = features.encode(self.samples_)
        self._y = self.samples_["label"].to_numpy(np.float32)
        self.features_ = features.refresh(events)
        self._user_codes = torch.from_numpy(self.features_.encode_users(train.users.ids))
        self._item_codes = torch.from_numpy(self.features_.encode_items(catalogue))
        return DeepFMNet(features.sizes, features.n_user_side, self.dim, self.hidden, self.dropout, self.fm)

    def _batches(self, train: Interactions):
        return ArrayBatches(self._x, self._y, batch_size=self.batch_size, seed=self.seed)

    def _loss(self, module: nn.Module, batch) -> torch.Tensor:
        codes, labels = batch
        return F.binary_cross_entropy_with_logits(module(codes), labels)

    def _score_users(self, module: nn.Module, users: torch.Tensor) -> torch.Tensor:
        device = users.device
        return module.score_grid(self._user_codes[users.cpu()].to(device), self._item_codes.to(device))

    def _score_batch_size(self) -> int:
        return max(1, min(1024, (1 << 23) // max(1, self.train_.n_items * max(self.hidden))))

    def refresh_features(self, events: pd.DataFrame) -> DeepFM:
        """Rebuild the serving features from a newer history (same encoders, same weights), as a
        production system refreshes features daily and retrains the model less often."""
        self._check_module()
        self.features_ = self.features_.refresh(events)
        self._user_codes = torch.from_numpy(self.features_.encode_users(self.train_.users.ids))
        self._item_codes = torch.from_numpy(self.features_.encode_items(self.train_.items.ids))
        return self

    def predict_proba(self, rows: pd.DataFrame, batch_size: int = 65536) -> np.ndarray:
        """Click probabilities of rows ``user_id, item_id[, device, timestamp]``, with the serving
        features (the history up to the end of ``events``)."""
        module = self._check_module()
        codes = torch.from_numpy(self.features_.encode(rows))
        out = []
        module.eval()
        with torch.no_grad():
            for start in range(0, len(codes), batch_size):
                out.append(torch.sigmoid(module(codes[start:start + batch_size].to(self.device_))).cpu())
        return torch.cat(out).numpy() if out else np.empty(0, dtype=np.float32)
