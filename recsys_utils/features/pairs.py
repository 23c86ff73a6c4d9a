"""Features of (user, item[, context]) rows: the one builder the ranker (04) and deep CTR models (05) use.

:func:`features_for_pairs` joins a user profile, an item feature table and (optionally) context
features onto candidate rows and adds user x item cross features: the user's affinity for the
item's category, the gap between the item's relative price and the user's price index, whether the
item is the user's favourite brand. The tables must have been built at a cut-off before the rows
they describe (:func:`build_feature_tables` does both at one ``at``), so nothing leaks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import BRAND, ITEM, USER
from recsys_utils.features.items import item_features
from recsys_utils.features.profile import CATEGORY_PREFIX, category_column, user_profile


@dataclass
class FeatureTables:
    """A user profile and an item feature table built at the same cut-off ``at``."""

    users: pd.DataFrame
    items: pd.DataFrame
    at: pd.Timestamp
    category: str | None  # the item column the profile's ``cat__`` shares refer to


def build_feature_tables(interactions: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame | None = None,
                         at=None) -> FeatureTables:
    """:func:`user_profile` and :func:`item_features` from the events strictly before ``at``."""
    profile = user_profile(interactions, items, users, at=at)
    at = pd.Timestamp(at) if at is not None else pd.to_datetime(interactions["timestamp"]).max() + pd.Timedelta(
        seconds=1)
    return FeatureTables(users=profile, items=item_features(items, interactions, at=at), at=at,
                         category=category_column(items))


def features_for_pairs(pairs: pd.DataFrame, tables: FeatureTables, context: pd.DataFrame | None = None,
                       user_prefix: str = "u_", item_prefix: str = "i_") -> pd.DataFrame:
    """One feature row per row of ``pairs`` (``user_id, item_id``), in the same order and index.

    User columns get ``user_prefix``, item columns ``item_prefix``; ``context`` (same index as
    ``pairs``, e.g. from :func:`~recsys_utils.features.context.context_features`) is appended as is.
    Users or items unknown to the tables get missing values (cold start) and ``u_known``/``i_known`` = 0.
    Cross features: ``x_category_affinity``, ``x_price_gap``, ``x_fav_brand``.
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

    # user x item crosses
    if tables.category is not None and tables.category in item_table.columns:
        share_cols = [c for c in user_table.columns if str(c).startswith(CATEGORY_PREFIX)]
        if share_cols:
            shares = user_table[share_cols].to_numpy(np.float64)
            row = user_table.index.get_indexer(pairs[USER].to_numpy())
            cats = item_table[tables.category].astype(object).reindex(pairs[ITEM].to_numpy()).to_numpy()
            col_of = {c[len(CATEGORY_PREFIX):]: j for j, c in enumerate(share_cols)}
            other = col_of.get("other", -1)
            col = np.array([col_of.get(c, other) for c in pd.unique(cats)], dtype=np.int64)
            col = col[pd.Index(pd.unique(cats)).get_indexer(cats)]
            ok = (row >= 0) & (col >= 0)
            aff = np.full(len(pairs), np.nan)
            aff[ok] = shares[row[ok], col[ok]]
            out["x_category_affinity"] = aff
    if "price_index" in user_table.columns and "rel_price" in item_table.columns:
        out["x_price_gap"] = out[f"{item_prefix}rel_price"].to_numpy() - out[f"{user_prefix}price_index"].to_numpy()
    if "fav_brand" in user_table.columns and BRAND in item_table.columns:
        fav = out[f"{user_prefix}fav_brand"].astype(object).to_numpy()
        brand = out[f"{item_prefix}{BRAND}"].astype(object).to_numpy()
        out["x_fav_brand"] = (pd.notna(fav) & (fav == brand)).astype(np.float64)
    out.index = pairs.index
    if context is not None:
        if not context.index.equals(pairs.index):
            raise ValueError("features_for_pairs: context must have the same index as pairs")
        out = out.join(context)
    return out
