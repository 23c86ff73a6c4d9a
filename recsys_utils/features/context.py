"""Context features (上下文特征): what is true of the moment of an event, not of the user or item.

:func:`context_features` gives, for every interaction row (same index, same order): hour of day
(also as a point on the unit circle, so 23:00 and 01:00 are close), daypart, weekday and weekend,
device, the event's position in its session and the time since the session started, and whether a
promotion was running for that item at that moment. Nothing here looks at other rows' futures: a
session position counts only earlier events of the same session.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import ITEM, SESSION, TIMESTAMP, USER
from recsys_utils.data.integration import SESSION_GAP

#: (name, first hour, last hour + 1) of the dayparts: the package's one definition of a daypart
DAYPARTS = (("night", 0, 6), ("morning", 6, 12), ("afternoon", 12, 18), ("evening", 18, 24))


def daypart_codes(hours) -> np.ndarray:
    """Daypart number of each hour of day (0 night [0, 6), 1 morning, 2 afternoon, 3 evening); -1 where
    the hour is missing or outside [0, 24). Hours may be fractional (14.5 = 14:30)."""
    hours = np.asarray(hours, dtype=np.float64)
    starts = np.array([start for _, start, _ in DAYPARTS[1:]], dtype=np.float64)
    codes = np.searchsorted(starts, hours, side="right").astype(np.int64)
    return np.where(np.isfinite(hours) & (hours >= 0) & (hours < DAYPARTS[-1][2]), codes, -1)


def daypart(hour) -> pd.Categorical:
    """Night (0-6), morning (6-12), afternoon (12-18), evening (18-24) of an hour-of-day series (NaN if missing)."""
    return pd.Categorical.from_codes(daypart_codes(hour), categories=[name for name, _, _ in DAYPARTS])


def in_promotion(interactions: pd.DataFrame, promotions: pd.DataFrame) -> np.ndarray:
    """Boolean per interaction: a promotion covering the event's time (and its item, if given).

    ``promotions`` has ``start`` and ``end`` (the period ``[start, end)``) and optionally
    ``item_id`` (otherwise the promotion is site-wide).
    """
    for column in ("start", "end"):
        if column not in promotions.columns:
            raise KeyError(f"in_promotion: promotions lack column '{column}'; columns are {list(promotions.columns)}")
    time = pd.to_datetime(interactions[TIMESTAMP]).to_numpy()
    flag = np.zeros(len(interactions), dtype=bool)
    site = promotions[ITEM].isna() if ITEM in promotions.columns else pd.Series(True, index=promotions.index)
    for start, end in promotions.loc[site.to_numpy(), ["start", "end"]].drop_duplicates().itertuples(index=False):
        flag |= (time >= np.datetime64(pd.Timestamp(start))) & (time < np.datetime64(pd.Timestamp(end)))
    items = promotions[~site.to_numpy()]
    if len(items):
        rows = pd.DataFrame({ITEM: interactions[ITEM].to_numpy(), "t": time, "row": np.arange(len(interactions))})
        hit = rows.merge(items[[ITEM, "start", "end"]], on=ITEM, how="inner")
        hit = hit[(hit["t"] >= pd.to_datetime(hit["start"])) & (hit["t"] < pd.to_datetime(hit["end"]))]
        flag[hit["row"].to_numpy()] = True
    return flag


def world_promotions(world) -> pd.DataFrame:
    """The marketplace's promotion calendar: discounted items and the promotion week (a shop knows this)."""
    start = world.start + pd.Timedelta(weeks=world.config.promo_week)
    items = world.items[ITEM].to_numpy()[np.asarray(world.latent.promo, dtype=bool)]
    return pd.DataFrame({ITEM: items, "start": start, "end": start + pd.Timedelta(weeks=1)})


def session_position(interactions: pd.DataFrame, gap: pd.Timedelta = SESSION_GAP) -> pd.DataFrame:
    """``session_position`` (0 = first event) and ``session_seconds`` (since the session's first event).

    Uses ``session_id`` when present, else sessions of one user separated by more than ``gap``.
    Ties in time keep the input order. Returned in the input's row order and index.
    """
    time = pd.to_datetime(interactions[TIMESTAMP]).to_numpy().astype("datetime64[ns]").astype(np.int64)
    user = pd.factorize(interactions[USER])[0]
    order = np.lexsort((np.arange(len(time)), time, user))
    if SESSION in interactions.columns:
        key = pd.factorize(interactions[SESSION])[0][order]
        order = order[np.argsort(key, kind="stable")]
        key = key[np.argsort(key, kind="stable")]
        new = np.r_[True, key[1:] != key[:-1]]
    else:
        u, t = user[order], time[order]
        new = np.r_[True, (u[1:] != u[:-1]) | (np.diff(t) > gap.value)]
    group = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    position = np.arange(len(order)) - starts[group]
    seconds = (time[order] - time[order][starts[group]]) / 1e9
    out = np.empty((len(order), 2))
    out[order, 0] = position
    out[order, 1] = seconds
    return pd.DataFrame({"session_position": out[:, 0].astype(np.int64), "session_seconds": out[:, 1]},
                        index=interactions.index)


def context_features(interactions: pd.DataFrame, promotions: pd.DataFrame | None = None,
                     gap: pd.Timedelta = SESSION_GAP) -> pd.DataFrame:
    """Context of every interaction row: a DataFrame with the input's index.

    Columns: ``hour`` (0-23), ``hour_sin``, ``hour_cos``, ``daypart``, ``weekday`` (0 = Monday),
    ``is_weekend``, ``device`` (if the data have it), ``session_position``, ``session_seconds``
    and ``in_promotion`` (if ``promotions`` is given; see :func:`in_promotion`).
    """
    for column in (USER, TIMESTAMP):
        if column not in interactions.columns:
            raise KeyError(f"context_features: missing column '{column}'; columns are {list(interactions.columns)}")
    time = pd.to_datetime(interactions[TIMESTAMP])
    if time.isna().any():
        row = int(np.flatnonzero(time.isna().to_numpy())[0])
        raise ValueError(f"context_features: missing timestamp on row {row}")
    hour = time.dt.hour + time.dt.minute / 60.0
    angle = 2 * np.pi * hour / 24.0
    out = pd.DataFrame({
        "hour": time.dt.hour.astype(np.int64),
        "hour_sin": np.sin(angle),
        "hour_cos": np.cos(angle),
        "daypart": daypart(hour),
        "weekday": time.dt.day_of_week.astype(np.int64),
        "is_weekend": (time.dt.day_of_week >= 5).astype(np.float64),
    }, index=interactions.index)
    if "device" in interactions.columns:
        out["device"] = pd.Categorical(interactions["device"].to_numpy())
    out = out.join(session_position(interactions, gap))
    if promotions is not None:
        out["in_promotion"] = in_promotion(interactions, promotions).astype(np.float64)
    return out
