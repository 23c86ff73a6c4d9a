"""User profile (用户画像): one tidy row of features per user, from events before a cut-off.

:func:`user_profile` builds what the source documents list under user profiling: RFM
(recency, frequency, monetary value), category and brand affinity, price sensitivity, activity
level, time-of-day and device habits, tenure, plus the member data (age, gender, ...). Only events
strictly before ``at`` are used, so a profile built at the training cut-off never sees the
validation or test period (no leakage). The same table feeds segmentation (notebook 02), the
learned ranker (04) and the feature-based deep models (05) through
:func:`recsys_utils.features.pairs.features_for_pairs`.

Reference for RFM: A. M. Hughes, *Strategic Database Marketing*, 1994; price index as the
log price relative to the category median, as in the marketplace's own generator.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import (
    BRAND,
    CATEGORY,
    EVENT,
    EVENT_WEIGHTS,
    ITEM,
    PRICE,
    PURCHASE,
    SESSION,
    TIMESTAMP,
    USER,
    VIEW,
)
from recsys_utils.features.context import DAYPARTS, daypart

DAY = pd.Timedelta(days=1)
#: prefixes of share columns (each group sums to 1 over its columns for a user with events)
CATEGORY_PREFIX, DEVICE_PREFIX, DAYPART_PREFIX = "cat__", "device__", "daypart__"


def cutoff(interactions: pd.DataFrame, at=None) -> tuple[pd.DataFrame, pd.Timestamp]:
    """Rows strictly before ``at`` (default: just after the last event) and the cut-off used."""
    if TIMESTAMP not in interactions.columns:
        raise KeyError(f"missing column '{TIMESTAMP}'; columns are {list(interactions.columns)}")
    time = pd.to_datetime(interactions[TIMESTAMP])
    at = time.max() + pd.Timedelta(seconds=1) if at is None else pd.Timestamp(at)
    past = interactions[(time < at).to_numpy()]
    if past.empty:
        raise ValueError(f"no interactions before {at} (data span {time.min()} to {time.max()})")
    return past, at


def category_column(items: pd.DataFrame | None) -> str | None:
    """The coarsest category column of an item table: ``top_category`` if present, else ``category``."""
    if items is None:
        return None
    for column in ("top_category", CATEGORY):
        if column in items.columns:
            return column
    return None


def relative_log_price(items: pd.DataFrame) -> pd.Series:
    """``log(price) - median log(price) of the item's category`` (0 = a typical price), by item_id."""
    if PRICE not in items.columns:
        raise KeyError("relative_log_price: the item table has no 'price' column")
    log_price = np.log(pd.to_numeric(items[PRICE], errors="coerce").clip(lower=0.01))
    group = items[CATEGORY] if CATEGORY in items.columns else pd.Series(0, index=items.index)
    rel = log_price - log_price.groupby(group.to_numpy()).transform("median")
    return pd.Series(rel.to_numpy(), index=items[ITEM].to_numpy(), name="rel_price")


def _shares(frame: pd.DataFrame, column: str, weight: pd.Series, prefix: str,
            keep: list | None = None) -> pd.DataFrame:
    """Per-user weighted share of each value of ``column`` (values outside ``keep`` -> ``other``)."""
    values = frame[column].astype(object).where(frame[column].notna(), "unknown")
    if keep is not None:
        values = values.where(values.isin(keep), "other")
    table = weight.groupby([frame[USER].to_numpy(), values.to_numpy()]).sum().unstack(fill_value=0.0)
    table = table.div(table.sum(axis=1).replace(0, 1), axis=0)
    table.columns = [f"{prefix}{c}" for c in table.columns]
    return table


def _favourite(frame: pd.DataFrame, column: str, weight: pd.Series) -> tuple[pd.Series, pd.Series, pd.Series]:
    """(most weighted value, its share, number of distinct values) per user."""
    sums = weight.groupby([frame[USER].to_numpy(), frame[column].astype(object).to_numpy()]).sum()
    sums = sums[sums > 0]
    total = sums.groupby(level=0).sum()
    top = sums.sort_values(ascending=False, kind="stable").groupby(level=0).head(1)
    fav = pd.Series(top.index.get_level_values(1), index=top.index.get_level_values(0))
    share = pd.Series(top.to_numpy(), index=fav.index) / total.reindex(fav.index)
    return fav, share, sums.groupby(level=0).size()


def _entropy(shares: pd.DataFrame) -> pd.Series:
    p = shares.to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    return pd.Series(h, index=shares.index)


def user_profile(interactions: pd.DataFrame, items: pd.DataFrame | None = None,
                 users: pd.DataFrame | None = None, at=None, purchase_events: tuple[str, ...] = (PURCHASE,),
                 max_categories: int = 12) -> pd.DataFrame:
    """A tidy user profile (one row per user with an event before ``at``), indexed by ``user_id``.

    Columns (those the data allow; see :func:`split_columns` for numeric vs categorical):

    - activity: ``n_events``, ``n_items``, ``n_sessions``, ``n_active_days``,
      ``events_per_active_day``, ``n_<event>`` per event type, ``conversion`` (purchases / views)
    - RFM: ``recency_days`` (since the last event), ``purchase_recency_days`` (since the last
      purchase; the whole observed span for users who never bought), ``frequency`` (orders),
      ``monetary`` (spend), ``avg_order_value``
    - tenure: ``tenure_days`` (since sign-up, else since the first event), ``first_seen_days``
    - affinity: ``cat__<category>`` weighted shares (the ``max_categories`` largest, rest
      ``cat__other``), ``fav_category``, ``category_entropy``; ``fav_brand``, ``brand_share``,
      ``n_brands``
    - price sensitivity: ``price_index`` (mean log price relative to the category median of the
      items a user interacts with, weighted by event strength; negative = cheaper than typical),
      ``avg_item_price``
    - habits: ``daypart__<part>`` shares, ``peak_hour`` (circular mean), ``hour_sin``/``hour_cos``,
      ``hour_concentration``, ``weekend_share``, ``device__<device>`` shares, ``fav_device``
    - member data: the ``users`` table's columns (e.g. ``age``, ``gender``, ``city_tier``).

    Events are weighted by :data:`~recsys_utils.core.vocabulary.EVENT_WEIGHTS` (unknown events and
    data without an ``event`` column weigh 1). Transactions for RFM are rows whose event is in
    ``purchase_events``; when there are none (MovieLens), every row counts as a transaction and
    ``monetary`` is 0.
    """
    for column in (USER, ITEM):
        if column not in interactions.columns:
            raise KeyError(f"user_profile: missing column '{column}'; columns are {list(interactions.columns)}")
    past, at = cutoff(interactions, at)
    events = past[EVENT] if EVENT in past.columns else pd.Series("event", index=past.index)
    weight = events.map(EVENT_WEIGHTS).fillna(1.0).astype(float)
    out = _activity(past, events)
    out = _rfm(out, past, events, at, purchase_events)
    out["tenure_days"] = _tenure(out, users, at)
    if items is not None:
        out = _item_affinity(out, past, items, weight, max_categories)
    out = _habits(out, past)
    if users is not None:
        out = _member_data(out, users)
    numeric, categorical = split_columns(out)
    out[numeric] = out[numeric].astype(np.float64)
    for column in categorical:
        out[column] = out[column].astype("category")
    return out


def _activity(past: pd.DataFrame, events: pd.Series) -> pd.DataFrame:
    """Counts of events, items, sessions, active days and events by type; conversion."""
    user = past[USER]
    out = pd.DataFrame(index=pd.Index(np.sort(user.unique()), name=USER))
    out["n_events"] = user.value_counts()
    out["n_items"] = past.groupby(USER)[ITEM].nunique()
    if SESSION in past.columns:
        out["n_sessions"] = past.groupby(USER)[SESSION].nunique()
    days = pd.to_datetime(past[TIMESTAMP]).dt.floor("D")
    out["n_active_days"] = days.groupby(user.to_numpy()).nunique()
    out["events_per_active_day"] = out["n_events"] / out["n_active_days"]
    if EVENT in past.columns:
        counts = events.groupby(user.to_numpy()).value_counts().unstack(fill_value=0)
        for name in counts.columns:
            out[f"n_{name}"] = counts[name]
        if VIEW in counts.columns and PURCHASE in counts.columns:
            out["conversion"] = counts[PURCHASE] / counts[VIEW].clip(lower=1)
    return out


def _rfm(out: pd.DataFrame, past: pd.DataFrame, events: pd.Series, at: pd.Timestamp,
         purchase_events: tuple[str, ...]) -> pd.DataFrame:
    """Recency, frequency and monetary value (Hughes 1994) at ``at``."""
    time = pd.to_datetime(past[TIMESTAMP])
    grouped_time = time.groupby(past[USER].to_numpy())
    out["recency_days"] = (at - grouped_time.max()) / DAY
    out["first_seen_days"] = (at - grouped_time.min()) / DAY
    is_tx = events.isin(purchase_events).to_numpy()
    has_tx = bool(is_tx.any())
    tx = past[is_tx] if has_tx else past
    tx_time = time[is_tx] if has_tx else time
    span = (at - time.min()) / DAY
    out["purchase_recency_days"] = ((at - tx_time.groupby(tx[USER].to_numpy()).max()) / DAY).reindex(out.index)
    out["purchase_recency_days"] = out["purchase_recency_days"].fillna(span)
    if "order_id" in tx.columns:
        orders = tx["order_id"]
    elif SESSION in tx.columns:
        orders = tx[SESSION]
    else:
        orders = tx_time.dt.floor("D")
    out["frequency"] = orders.groupby(tx[USER].to_numpy()).nunique().reindex(out.index).fillna(0)
    if has_tx and PRICE in tx.columns:
        quantity = tx["quantity"] if "quantity" in tx.columns else 1
        spend = pd.to_numeric(tx[PRICE], errors="coerce").fillna(0) * quantity
        out["monetary"] = spend.groupby(tx[USER].to_numpy()).sum().reindex(out.index).fillna(0.0)
    else:
        out["monetary"] = 0.0
    out["avg_order_value"] = out["monetary"] / out["frequency"].clip(lower=1)
    return out


def _tenure(out: pd.DataFrame, users: pd.DataFrame | None, at: pd.Timestamp) -> pd.Series:
    """Days since sign-up (the member table's ``signup_time``), else since the first event."""
    if users is not None and "signup_time" in users.columns:
        signup = pd.Series(pd.to_datetime(users["signup_time"]).to_numpy(), index=users[USER].to_numpy())
        return ((at - signup.reindex(out.index)) / DAY).fillna(out["first_seen_days"])
    return out["first_seen_days"]


def _item_affinity(out: pd.DataFrame, past: pd.DataFrame, items: pd.DataFrame, weight: pd.Series,
                   max_categories: int) -> pd.DataFrame:
    """Category shares and favourite, brand loyalty and price sensitivity from the item table."""
    if ITEM not in items.columns:
        raise KeyError(f"user_profile: the item table has no '{ITEM}' column")
    user = past[USER]
    item_table = items.set_index(ITEM)
    cat_col = category_column(items)
    if cat_col is not None:
        cats = past[ITEM].map(item_table[cat_col])
        frame = pd.DataFrame({USER: user.to_numpy(), "c": cats.to_numpy()}, index=past.index)
        overall = weight.groupby(cats.to_numpy()).sum().sort_values(ascending=False, kind="stable")
        keep = list(overall.index[:max_categories])
        shares = _shares(frame, "c", weight, CATEGORY_PREFIX, keep)
        out = out.join(shares)
        out["category_entropy"] = _entropy(shares)
        fav, _, _ = _favourite(frame, "c", weight)
        out["fav_category"] = fav
    if BRAND in item_table.columns:
        frame = pd.DataFrame({USER: user.to_numpy(), "b": past[ITEM].map(item_table[BRAND]).to_numpy()},
                             index=past.index)
        fav, share, n = _favourite(frame.dropna(), "b", weight[frame["b"].notna()])
        out["fav_brand"], out["brand_share"], out["n_brands"] = fav, share, n
    if PRICE in item_table.columns:
        rel = past[ITEM].map(relative_log_price(items))
        price = past[ITEM].map(pd.to_numeric(item_table[PRICE], errors="coerce"))
        ok = rel.notna()
        w = weight[ok]
        out["price_index"] = (rel[ok] * w).groupby(user[ok].to_numpy()).sum() / w.groupby(user[ok].to_numpy()).sum()
        out["avg_item_price"] = price.groupby(user.to_numpy()).mean()
    return out


def _habits(out: pd.DataFrame, past: pd.DataFrame) -> pd.DataFrame:
    """Time-of-day (dayparts of :mod:`~recsys_utils.features.context`), weekday and device habits."""
    time = pd.to_datetime(past[TIMESTAMP])
    user = past[USER]
    hour = time.dt.hour + time.dt.minute / 60.0
    frame = pd.DataFrame({USER: user.to_numpy(), "part": np.asarray(daypart(hour.to_numpy()), dtype=object)},
                         index=past.index)
    ones = pd.Series(1.0, index=past.index)
    dayparts = _shares(frame, "part", ones, DAYPART_PREFIX)
    for name, _, _ in DAYPARTS:
        out[f"{DAYPART_PREFIX}{name}"] = dayparts.get(f"{DAYPART_PREFIX}{name}", 0.0)
    angle = 2 * np.pi * hour / 24.0
    sin = np.sin(angle).groupby(user.to_numpy()).mean()
    cos = np.cos(angle).groupby(user.to_numpy()).mean()
    out["hour_sin"], out["hour_cos"] = sin, cos
    out["hour_concentration"] = np.hypot(sin, cos)
    out["peak_hour"] = (np.degrees(np.arctan2(sin, cos)) / 15.0) % 24
    out["weekend_share"] = (time.dt.day_of_week >= 5).astype(float).groupby(user.to_numpy()).mean()
    if "device" in past.columns:
        frame = pd.DataFrame({USER: user.to_numpy(), "d": past["device"].to_numpy()}, index=past.index)
        out = out.join(_shares(frame, "d", ones, DEVICE_PREFIX))
        out["fav_device"] = _favourite(frame, "d", ones)[0]
    return out


def _member_data(out: pd.DataFrame, users: pd.DataFrame) -> pd.DataFrame:
    """The member table's static columns (dates left out), joined by ``user_id``."""
    if USER not in users.columns:
        raise KeyError(f"user_profile: the user table has no '{USER}' column")
    static = users.set_index(USER)
    static = static[[c for c in static.columns
                     if not pd.api.types.is_datetime64_any_dtype(static[c]) and c not in out.columns]]
    return out.join(static)


def split_columns(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(numeric columns, categorical columns) of a feature table; booleans count as numeric."""
    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])
               and not isinstance(frame[c].dtype, pd.CategoricalDtype)]
    categorical = [c for c in frame.columns if c not in numeric]
    return numeric, categorical


def share_columns(profile: pd.DataFrame, prefix: str) -> list[str]:
    """Columns of a profile starting with ``prefix`` (e.g. :data:`CATEGORY_PREFIX`)."""
    return [c for c in profile.columns if str(c).startswith(prefix)]
