"""Exploratory tables a practitioner looks at first: long tail, activity, funnel, cohort retention.

Each function returns a tidy table (the notebook plots it); none loops over users or items.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import EVENT, EVENTS, ITEM, TIMESTAMP, USER


def long_tail(interactions: pd.DataFrame) -> pd.DataFrame:
    """Items by popularity: ``item_id, events, rank`` (1 = most popular), ``cum_share`` of all events."""
    counts = interactions[ITEM].value_counts()
    out = pd.DataFrame({ITEM: counts.index.to_numpy(), "events": counts.to_numpy()})
    out["rank"] = np.arange(1, len(out) + 1)
    out["cum_share"] = out["events"].cumsum() / max(out["events"].sum(), 1)
    return out


def head_share(interactions: pd.DataFrame, top: float = 0.2) -> float:
    """Share of events on the ``top`` fraction of most popular items (0.8 means "80/20")."""
    tail = long_tail(interactions)
    n = max(1, int(np.ceil(top * len(tail))))
    return float(tail["cum_share"].iloc[n - 1])


def funnel(interactions: pd.DataFrame, stages: tuple[str, ...] = EVENTS) -> pd.DataFrame:
    """Events and users per stage (those present), with the rate relative to the first stage."""
    if EVENT not in interactions.columns:
        raise KeyError("funnel: the interactions have no 'event' column")
    present = [s for s in stages if (interactions[EVENT] == s).any()]
    if not present:
        raise ValueError(f"funnel: none of the stages {stages} occurs in the 'event' column")
    sub = interactions[interactions[EVENT].isin(present)]
    events = sub[EVENT].value_counts().reindex(present)
    users = sub.groupby(EVENT)[USER].nunique().reindex(present)
    out = pd.DataFrame({"events": events.to_numpy(), "users": users.to_numpy()}, index=pd.Index(present, name=EVENT))
    out["events_vs_first"] = out["events"] / out["events"].iloc[0]
    out["users_vs_first"] = out["users"] / out["users"].iloc[0]
    return out


def cohort_retention(interactions: pd.DataFrame, freq: str = "W") -> pd.DataFrame:
    """Share of each cohort (users by the period of their first event) active ``k`` periods later.

    Rows: cohort period; columns: 0, 1, 2, ... periods since the first; values in [0, 1] (column 0
    is 1 by definition; periods after the end of the data are missing, not 0); a ``users`` column
    gives the cohort size.
    """
    time = pd.to_datetime(interactions[TIMESTAMP])
    period = time.dt.to_period(freq)
    frame = pd.DataFrame({USER: interactions[USER].to_numpy(), "period": period.to_numpy()})
    first = frame.groupby(USER)["period"].transform("min")
    frame["cohort"] = first.to_numpy()
    frame["offset"] = (frame["period"] - frame["cohort"]).map(lambda d: d.n).astype(np.int64)
    active = frame.drop_duplicates([USER, "offset"]).groupby(["cohort", "offset"])[USER].nunique().unstack(fill_value=0)
    sizes = active[0]
    out = active.div(sizes, axis=0).astype(np.float64)
    last = frame["period"].max()
    horizon = np.array([(last - c).n for c in out.index])
    out = out.where(out.columns.to_numpy()[None, :] <= horizon[:, None])  # not observable yet: NaN
    out.insert(0, "users", sizes)
    return out


def category_by_group(interactions: pd.DataFrame, items: pd.DataFrame, groups: pd.Series,
                      column: str = "top_category") -> pd.DataFrame:
    """Share of each group's events per item category (rows: group, columns: category; rows sum to 1)."""
    if column not in items.columns:
        column = "category"
    cats = interactions[ITEM].map(items.set_index(ITEM)[column])
    group = interactions[USER].map(groups)
    ok = group.notna() & cats.notna()
    table = pd.crosstab(group[ok], cats[ok], normalize="index")
    table.index.name, table.columns.name = groups.name or "group", column
    return table
