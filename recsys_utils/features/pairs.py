"""Features of (user, item) pairs: the package's one builder, used by the ranker, the CTR model and serving.

Everything is built at a cut-off ``at`` from the events strictly before it (no leakage):

- :func:`build_feature_tables` makes the tables: the user profile (:func:`~recsys_utils.features.profile.user_profile`)
  and the item table (:func:`~recsys_utils.features.items.item_features`); given the user and item
  indexes it also makes the interaction matrices and per-index columns, a :class:`FeatureTables`;
- :func:`pair_features` gives the named feature columns of (user row, item row) pairs from them:
  ``user_*`` (profile), ``item_*`` (popularity, momentum, conversion, freshness, price),
  ``item_category`` and the user x item crosses ``cross_*`` (category affinity over all history and
  the recent window, top-category share, favourite brand, price gap). Consumers select columns:
  the ranker (:mod:`recsys_utils.pipeline.ranking`) :data:`RANKER_COLUMNS`, the serving pipeline
  :data:`SERVING_COLUMNS` (at request time through the same functions, :func:`history_columns`),
  the CTR model (:mod:`recsys_utils.models.ctr`) the per-side tables;
- :func:`features_for_pairs` is the by-id view (notebook 02): every profile and item column with
  prefixes plus the crosses ``x_category_affinity``, ``x_price_gap``, ``x_fav_brand``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_utils.core.vocabulary import BRAND, CATEGORY, ITEM, TIMESTAMP, USER
from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.features.items import item_features
from recsys_utils.features.profile import CATEGORY_PREFIX, DAY, category_column, user_profile

#: profile columns used as ``user_<column>`` features (those present are kept)
USER_COLUMNS = ("n_events", "n_items", "n_sessions", "n_active_days", "conversion", "recency_days",
                "purchase_recency_days", "frequency", "monetary", "tenure_days", "category_entropy",
                "brand_share", "price_index", "avg_item_price", "weekend_share", "age", "city_tier")
#: the columns of the learned ranker, in its order (those the data allow)
RANKER_COLUMNS = tuple(f"user_{c}" for c in USER_COLUMNS) + (
    "item_log_users", "item_log_users_7d", "item_trend", "item_purchase_rate", "item_age_days", "item_log_price",
    "item_rel_price", "item_category", "cross_leaf_affinity", "cross_recent_leaf_affinity", "cross_top_affinity",
    "cross_fav_brand", "cross_price_gap")
#: the serving pipeline's pair features (its names on the left); history ones are computed per request
SERVING_COLUMNS = {"item:log_popularity": "item_log_users", "user:category_affinity": "cross_leaf_affinity",
                   "user:log_activity": "user_log_items"}
#: the serving pipeline's per-item features (its names on the left), fixed at the cut-off
SERVING_ITEM_COLUMNS = {"recent_log_popularity": "item_log_events_7d", "age_days": "item_age_days",
                        "freshness": "item_freshness", "log_price": "item_log_price"}
FRESH_DAYS = 14.0


@dataclass
class FeatureTables:
    """The tables of one cut-off ``at``: ``users`` (profile by ``user_id``), ``items`` (item table by
    ``item_id``), ``category`` (the item column the profile's ``cat__`` shares refer to) and, when built
    with indexes, everything by index row: the matrices, ``user_columns``/``item_columns`` and the codes
    the crosses need."""

    users: pd.DataFrame
    items: pd.DataFrame
    at: pd.Timestamp
    category: str | None
    user_index: IdIndex | None = None
    item_index: IdIndex | None = None
    interactions: Interactions | None = None
    recent: Interactions | None = None
    user_columns: pd.DataFrame = field(default_factory=pd.DataFrame)
    item_columns: pd.DataFrame = field(default_factory=pd.DataFrame)
    item_leaf: np.ndarray | None = None
    leaf_affinity: sp.csr_matrix | None = None
    recent_affinity: sp.csr_matrix | None = None
    top_affinity: np.ndarray | None = None
    item_top: np.ndarray | None = None

    @property
    def columns(self) -> list[str]:
        """Every feature :func:`pair_features` can give for these tables, in canonical order."""
        if self.interactions is None:
            raise ValueError("FeatureTables: built without indexes; pass user_index and item_index to "
                             "build_feature_tables for pair_features")
        cross = ["item_category", "cross_leaf_affinity", "cross_recent_leaf_affinity", "cross_top_affinity",
                 "cross_fav_brand"]
        if "item_rel_price" in self.item_columns and "user_price_index" in self.user_columns:
            cross.append("cross_price_gap")
        return list(self.user_columns.columns) + list(self.item_columns.columns) + cross


# ----------------------------------------------------------------------------- shared formulas


def log_item_users(matrix: sp.spmatrix) -> np.ndarray:
    """``log(1 + distinct users)`` of every item (column) of an interaction matrix."""
    matrix = sp.csr_matrix(matrix)
    return np.log1p(np.bincount(matrix.indices[matrix.data > 0], minlength=matrix.shape[1]).astype(np.float64))


def log_user_items(rows: sp.spmatrix) -> np.ndarray:
    """``log(1 + distinct items)`` of every user (row): light and heavy users apart."""
    rows = sp.csr_matrix(rows)
    return np.log1p(np.diff(rows.indptr)).astype(np.float64)


def category_shares(rows: sp.spmatrix, item_category: np.ndarray, n_categories: int | None = None) -> sp.csr_matrix:
    """Each user's (row's) share of interaction weight per category: rows x categories, rows sum to 1 (or 0)."""
    item_category = np.asarray(item_category, dtype=np.int64)
    n_categories = int(item_category.max()) + 1 if n_categories is None else n_categories
    rows = sp.csr_matrix(rows)
    row_of = np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr))
    counts = sp.csr_matrix((rows.data.astype(np.float64), (row_of, item_category[rows.indices])),
                           shape=(rows.shape[0], n_categories))
    counts.sum_duplicates()
    totals = np.asarray(counts.sum(axis=1)).ravel()
    scale = 1.0 / np.maximum(totals, 1e-12)
    counts.data *= np.repeat(scale, np.diff(counts.indptr))
    return counts


def gather(shares: sp.spmatrix, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``shares[rows, columns]`` element-wise as a dense array of ``rows``' shape (0 where not stored)."""
    rows, columns = np.asarray(rows, dtype=np.int64), np.asarray(columns, dtype=np.int64)
    matrix = sp.csr_matrix(shares)
    if not matrix.has_sorted_indices:
        matrix = matrix.sorted_indices()
    keys = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr)) * matrix.shape[1] \
        + matrix.indices
    want = rows.ravel() * matrix.shape[1] + columns.ravel()
    position = np.minimum(np.searchsorted(keys, want), max(len(keys) - 1, 0))
    hit = keys[position] == want if len(keys) else np.zeros(len(want), dtype=bool)
    return np.where(hit, matrix.data[position] if len(keys) else 0.0, 0.0).reshape(rows.shape)


def same_value(a, b) -> np.ndarray:
    """1.0 where ``a`` is known and equals ``b`` (e.g. the user's favourite brand is the item's), else 0.0."""
    a, b = np.asarray(a, dtype=object), np.asarray(b, dtype=object)
    return (pd.notna(a) & (a == b)).astype(np.float64)


def share_codes(share_columns: list[str], categories) -> np.ndarray:
    """Column of each category among the profile's ``cat__`` share columns (``cat__other`` for the rest; -1)."""
    col_of = {c[len(CATEGORY_PREFIX):]: j for j, c in enumerate(share_columns)}
    other = col_of.get("other", -1)
    values = pd.Series(np.asarray(categories, dtype=object))
    uniques = pd.unique(values)
    codes = np.array([col_of.get(c, other) if pd.notna(c) else other for c in uniques], dtype=np.int64)
    return codes[pd.Index(uniques).get_indexer(values)] if len(uniques) else np.empty(0, dtype=np.int64)


def freshness(age_days: np.ndarray, fresh_days: float = FRESH_DAYS) -> np.ndarray:
    """``clip(1 - age / fresh_days, 0, 1)``, 0 before launch: 1 for a brand-new item."""
    age = np.asarray(age_days, dtype=np.float64)
    return np.clip(1.0 - age / fresh_days, 0.0, 1.0) * (age >= 0)


# ----------------------------------------------------------------------------- tables


def build_feature_tables(interactions: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame | None = None,
                         at=None, user_index: IdIndex | None = None, item_index: IdIndex | None = None,
                         recent_days: float = 14.0) -> FeatureTables:
    """:func:`user_profile` and :func:`item_features` from the events strictly before ``at`` (default:
    after the last event); with ``user_index`` and ``item_index`` also the index-level columns that
    :func:`pair_features` serves (``recent_days``: the window of ``cross_recent_leaf_affinity``)."""
    profile = user_profile(interactions, items, users, at=at)
    at = pd.Timestamp(at) if at is not None else pd.to_datetime(interactions[TIMESTAMP]).max() + pd.Timedelta(
        seconds=1)
    tables = FeatureTables(users=profile, items=item_features(items, interactions, at=at), at=at,
                           category=category_column(items))
    if (user_index is None) != (item_index is None):
        raise ValueError("build_feature_tables: give both user_index and item_index, or neither")
    if user_index is not None:
        _index_tables(tables, interactions, items, user_index, item_index, recent_days)
    return tables


def _window(past: pd.DataFrame, at: pd.Timestamp, days: float, users: IdIndex, items: IdIndex) -> Interactions:
    rows = past[(pd.to_datetime(past[TIMESTAMP]) >= at - days * DAY).to_numpy()]
    return Interactions.from_frame(rows, users, items, drop_unknown=True)


def _index_tables(tables: FeatureTables, events: pd.DataFrame, items: pd.DataFrame, users: IdIndex,
                  index: IdIndex, recent_days: float) -> None:
    """Fill the index-level part of ``tables``: matrices, user/item columns and cross codes."""
    at = tables.at
    past = events[(pd.to_datetime(events[TIMESTAMP]) < at).to_numpy()]
    tables.user_index, tables.item_index = users, index
    tables.interactions = Interactions.from_frame(past, users, index, drop_unknown=True)
    tables.recent = _window(past, at, recent_days, users, index)
    profile = tables.users.reindex(users.ids)
    user_columns = pd.DataFrame(index=pd.RangeIndex(len(users)))
    for column in USER_COLUMNS:
        if column in profile.columns:
            user_columns[f"user_{column}"] = pd.to_numeric(profile[column], errors="coerce").to_numpy()
    user_columns["user_log_items"] = log_user_items(tables.interactions.matrix)
    tables.user_columns = user_columns
    tables.item_columns = _item_columns(tables, past, items, index)
    table = items.drop_duplicates(ITEM).set_index(ITEM).reindex(index.ids)
    leaf = table[CATEGORY] if CATEGORY in table.columns else pd.Series("all", index=table.index)
    leaf = leaf.astype(object).fillna("unknown")
    tables.item_leaf = pd.Index(pd.unique(leaf)).get_indexer(pd.Index(leaf)).astype(np.int64)
    n_leaves = int(tables.item_leaf.max()) + 1
    tables.leaf_affinity = category_shares(tables.interactions.matrix, tables.item_leaf, n_leaves)
    tables.recent_affinity = category_shares(tables.recent.matrix, tables.item_leaf, n_leaves)
    shares = [c for c in profile.columns if str(c).startswith(CATEGORY_PREFIX)]
    tables.top_affinity = np.nan_to_num(profile[shares].to_numpy(dtype=np.float64)) if shares else \
        np.zeros((len(users), 0))
    top = table[tables.category] if tables.category else pd.Series(np.nan, index=table.index)
    tables.item_top = share_codes(shares, top.to_numpy())


def _item_columns(tables: FeatureTables, past: pd.DataFrame, items: pd.DataFrame, index: IdIndex) -> pd.DataFrame:
    """``item_*`` columns by item index row: popularity and its momentum from the matrices, then
    :func:`item_table_columns`."""
    at = tables.at
    weeks = max((at - pd.to_datetime(past[TIMESTAMP]).min()) / pd.Timedelta(weeks=1), 1e-9)
    counts = tables.interactions.item_counts().astype(np.float64)
    week_counts = _window(past, at, 7.0, tables.user_index, index).item_counts().astype(np.float64)
    out = pd.DataFrame(index=pd.RangeIndex(len(index)))
    out["item_log_users"] = log_item_users(tables.interactions.matrix)
    out["item_log_users_7d"] = np.log1p(week_counts)
    out["item_trend"] = np.log1p(week_counts) - np.log1p(counts / weeks)
    table_columns = item_table_columns(tables.items.reindex(index.ids), "launch_time" in items.columns)
    return pd.concat([out, table_columns.set_axis(out.index)], axis=1)


def item_table_columns(table: pd.DataFrame, launched: bool = True, fresh_days: float = FRESH_DAYS) -> pd.DataFrame:
    """``item_*`` columns that follow from an :func:`item_features` table (rows in its order):
    ``item_purchase_rate`` ((purchases + 0.1) / (views + 5)), ``item_age_days`` and ``item_freshness``
    (when the catalogue has launch times, ``launched``), ``item_log_price``, ``item_rel_price`` and
    ``item_log_events_7d`` (log of 1 + the table's ``recent_events``)."""
    out = pd.DataFrame(index=pd.RangeIndex(len(table)))
    if "n_views" in table.columns and "n_purchases" in table.columns:
        out["item_purchase_rate"] = ((table["n_purchases"].fillna(0) + 0.1) / (table["n_views"].fillna(0) + 5.0)
                                     ).to_numpy()
    if launched and "age_days" in table.columns:
        out["item_age_days"] = table["age_days"].to_numpy(dtype=np.float64)
    if "log_price" in table.columns:
        out["item_log_price"] = table["log_price"].to_numpy(dtype=np.float64)
        out["item_rel_price"] = table["rel_price"].to_numpy(dtype=np.float64)
    if "recent_events" in table.columns:
        out["item_log_events_7d"] = np.log1p(table["recent_events"].fillna(0).to_numpy(dtype=np.float64))
    if "item_age_days" in out:
        out["item_freshness"] = freshness(out["item_age_days"].to_numpy(), fresh_days)
    return out


# ----------------------------------------------------------------------------- rows


def history_columns(rows: sp.spmatrix, item_category: np.ndarray, items: np.ndarray,
                    n_categories: int | None = None) -> dict[str, np.ndarray]:
    """The history-based pair features of users (``rows`` of an interaction matrix) x ``items``
    (``(len(rows), C)`` item indices): ``cross_leaf_affinity`` and ``user_log_items`` (broadcast),
    as :func:`pair_features` gives them; the serving pipeline calls this per request."""
    items = np.asarray(items)
    shares = category_shares(rows, item_category, n_categories)
    user_rows = np.broadcast_to(np.arange(items.shape[0])[:, None], items.shape)
    return {"cross_leaf_affinity": gather(shares, user_rows, np.asarray(item_category)[items]),
            "user_log_items": np.broadcast_to(log_user_items(rows)[:, None], items.shape)}


def _cross(tables: FeatureTables, name: str, u: np.ndarray, i: np.ndarray):
    leaf = tables.item_leaf[i]
    if name == "item_category":
        return pd.Categorical(leaf, categories=np.arange(tables.item_leaf.max() + 1))
    if name == "cross_leaf_affinity":
        return gather(tables.leaf_affinity, u, leaf)
    if name == "cross_recent_leaf_affinity":
        return gather(tables.recent_affinity, u, leaf)
    if name == "cross_top_affinity":
        top = tables.item_top[i]
        if not tables.top_affinity.shape[1]:
            return np.zeros(len(u))
        return np.where(top >= 0, tables.top_affinity[u, np.maximum(top, 0)], 0.0)
    if name == "cross_fav_brand":
        fav = tables.users["fav_brand"].reindex(tables.user_index.ids).to_numpy()[u] \
            if "fav_brand" in tables.users else np.full(len(u), None)
        brand = tables.items[BRAND].reindex(tables.item_index.ids).to_numpy()[i] \
            if BRAND in tables.items else np.full(len(i), None)
        return same_value(fav, brand)
    return (tables.item_columns["item_rel_price"].to_numpy()[i]
            - tables.user_columns["user_price_index"].to_numpy()[u])


def pair_features(tables: FeatureTables, user_rows, item_rows, columns=None) -> pd.DataFrame:
    """Feature rows of the pairs (``user_rows[k]``, ``item_rows[k]``) (index rows of ``tables``).

    ``columns``: names from ``tables.columns`` (default all, in that order; names the data do not
    allow are skipped when the selection is :data:`RANKER_COLUMNS`, otherwise they raise). Unknown
    users have NaN profile columns and zero affinities.
    """
    available = tables.columns
    u = np.asarray(user_rows, dtype=np.int64)
    i = np.asarray(item_rows, dtype=np.int64)
    if u.shape != i.shape:
        raise ValueError(f"pair_features: {u.shape} user rows but {i.shape} item rows")
    if len(u) and (u.min() < 0 or u.max() >= len(tables.user_index) or i.min() < 0
                   or i.max() >= len(tables.item_index)):
        raise IndexError("pair_features: user or item rows outside the tables' indexes")
    if columns is None:
        columns = available
    elif tuple(columns) == RANKER_COLUMNS:
        columns = [c for c in columns if c in available]
    else:
        missing = [c for c in columns if c not in available]
        if missing:
            raise KeyError(f"pair_features: unknown column(s) {missing}; available: {available}")
    out = {}
    for name in columns:
        if name in tables.user_columns:
            out[name] = tables.user_columns[name].to_numpy()[u]
        elif name in tables.item_columns:
            out[name] = tables.item_columns[name].to_numpy()[i]
        else:
            out[name] = _cross(tables, name, u, i)
    return pd.DataFrame(out, index=pd.RangeIndex(len(u)))


def features_for_pairs(pairs: pd.DataFrame, tables: FeatureTables, context: pd.DataFrame | None = None,
                       user_prefix: str = "u_", item_prefix: str = "i_") -> pd.DataFrame:
    """One wide feature row per row of ``pairs`` (``user_id, item_id``), in the same order and index.

    Every profile column gets ``user_prefix``, every item-table column ``item_prefix``; ``context``
    (same index as ``pairs``, e.g. from :func:`~recsys_utils.features.context.context_features`) is
    appended as is. Users or items unknown to the tables get missing values (cold start) and
    ``u_known``/``i_known`` = 0. Crosses (the formulas of :func:`pair_features`):
    ``x_category_affinity`` (NaN when unknown), ``x_price_gap``, ``x_fav_brand``.
    """
    for column in (USER, ITEM):
        if column not in pairs.columns:
            raise KeyError(f"features_for_pairs: pairs lack column '{column}'")
    user_table, item_table = tables.users, tables.items
    u = user_table.reindex(pairs[USER].to_numpy())
    i = item_table.reindex(pairs[ITEM].to_numpy())
    out = pd.concat([u.add_prefix(user_prefix).reset_index(drop=True),
                     i.add_prefix(item_prefix).reset_index(drop=True)], axis=1)
    out[f"{user_prefix}known"] = pairs[USER].isin(user_table.index).to_numpy().astype(np.float64)
    out[f"{item_prefix}known"] = pairs[ITEM].isin(item_table.index).to_numpy().astype(np.float64)
    share_cols = [c for c in user_table.columns if str(c).startswith(CATEGORY_PREFIX)]
    if tables.category is not None and tables.category in item_table.columns and share_cols:
        row = user_table.index.get_indexer(pairs[USER].to_numpy())
        col = share_codes(share_cols, item_table[tables.category].astype(object).reindex(pairs[ITEM].to_numpy()))
        ok = (row >= 0) & (col >= 0)
        aff = np.full(len(pairs), np.nan)
        aff[ok] = user_table[share_cols].to_numpy(np.float64)[row[ok], col[ok]]
        out["x_category_affinity"] = aff
    if "price_index" in user_table.columns and "rel_price" in item_table.columns:
        out["x_price_gap"] = out[f"{item_prefix}rel_price"].to_numpy() - out[f"{user_prefix}price_index"].to_numpy()
    if "fav_brand" in user_table.columns and BRAND in item_table.columns:
        out["x_fav_brand"] = same_value(out[f"{user_prefix}fav_brand"], out[f"{item_prefix}{BRAND}"])
    out.index = pairs.index
    if context is not None:
        if not context.index.equals(pairs.index):
            raise ValueError("features_for_pairs: context must have the same index as pairs")
        out = out.join(context)
    return out
