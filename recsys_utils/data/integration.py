"""Data integration (数据整合): one event stream from the click log and the behaviour log.

The web servers log item page requests (views) in epoch milliseconds; the business services
log favourites, add-to-cart and purchases as datetimes. :func:`merge_logs` brings both into
the course vocabulary and one time order; :func:`sessionise` splits each user's stream into
sessions at gaps of inactivity (30 minutes, the convention of web analytics); :func:`attach_items`
and :func:`attach_members` join item details by item id and member data by user id;
:func:`integrate` does all of it on a :class:`~recsys_utils.data.cleaning_audit.CleaningResult`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import CATEGORY, EVENT, ITEM, PRICE, SESSION, TIMESTAMP, USER, VIEW

#: the origin of epoch timestamps (the click log writes milliseconds since it)
EPOCH = pd.Timestamp("1970-01-01")
#: the web-analytics convention: a session ends after 30 minutes without events
SESSION_GAP = pd.Timedelta(minutes=30)
COLUMNS = [USER, ITEM, TIMESTAMP, EVENT, SESSION, "device", "quantity", PRICE, "order_id", "source"]


def _need(frame: pd.DataFrame, columns: list[str], where: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{where}: expected a DataFrame, got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise KeyError(f"{where}: missing column(s) {missing}; columns are {list(frame.columns)}")


def merge_logs(clicks: pd.DataFrame, behaviour: pd.DataFrame) -> pd.DataFrame:
    """Views (click log) and favourites / carts / purchases (behaviour log) in one time order.

    Click rows need ``ts_ms, user_id, item_id, device``; behaviour rows ``event_time, user_id,
    item_id, event_type`` (and optionally ``quantity, unit_price, order_id``). Rows with a missing
    user id cannot be attributed and raise an error (clean first). Behaviour events take the
    device of the user's latest page view before them. Output columns: :data:`COLUMNS` without
    ``session_id`` (see :func:`sessionise`).
    """
    _need(clicks, ["ts_ms", USER, ITEM, "device"], "merge_logs(clicks)")
    _need(behaviour, ["event_time", USER, ITEM, "event_type"], "merge_logs(behaviour)")
    for name, frame in (("clicks", clicks), ("behaviour", behaviour)):
        if frame[USER].isna().any():
            raise ValueError(f"merge_logs({name}): {int(frame[USER].isna().sum())} rows without user_id; "
                             "drop anonymous rows before integrating")
    n_b = len(behaviour)
    views = pd.DataFrame({
        USER: clicks[USER].to_numpy().astype(np.int64),
        ITEM: clicks[ITEM].to_numpy(),
        TIMESTAMP: EPOCH + pd.to_timedelta(clicks["ts_ms"].to_numpy().astype(np.int64), unit="ms"),
        EVENT: VIEW,
        "device": clicks["device"].astype(object).to_numpy(),
        "quantity": np.zeros(len(clicks), dtype=np.int64),
        PRICE: np.full(len(clicks), np.nan),
        "order_id": np.full(len(clicks), -1, dtype=np.int64),
        "source": "click_log",
    })
    qty = behaviour["quantity"] if "quantity" in behaviour else pd.Series(np.nan, index=behaviour.index)
    price = behaviour["unit_price"] if "unit_price" in behaviour else pd.Series(np.nan, index=behaviour.index)
    order = behaviour["order_id"] if "order_id" in behaviour else pd.Series(np.nan, index=behaviour.index)
    acts = pd.DataFrame({
        USER: behaviour[USER].to_numpy().astype(np.int64),
        ITEM: behaviour[ITEM].to_numpy(),
        TIMESTAMP: pd.to_datetime(behaviour["event_time"]).to_numpy().astype("datetime64[ns]"),
        EVENT: behaviour["event_type"].astype(str).to_numpy(),
        "device": np.full(n_b, None, dtype=object),
        "quantity": pd.to_numeric(qty, errors="coerce").fillna(0).to_numpy().astype(np.int64),
        PRICE: pd.to_numeric(price, errors="coerce").to_numpy(float),
        "order_id": pd.to_numeric(order, errors="coerce").fillna(-1).to_numpy().astype(np.int64),
        "source": "behaviour_log",
    })
    events = pd.concat([views, acts], ignore_index=True)
    events[TIMESTAMP] = events[TIMESTAMP].astype("datetime64[ns]")
    events = events.sort_values([USER, TIMESTAMP], kind="stable")
    device = events.groupby(USER, sort=False)["device"].ffill()
    events["device"] = device.groupby(events[USER], sort=False).bfill()
    events["device"] = events["device"].fillna("unknown")
    events = events.sort_values([TIMESTAMP, USER], kind="stable").reset_index(drop=True)
    return events


def sessionise(events: pd.DataFrame, gap: pd.Timedelta = SESSION_GAP) -> pd.DataFrame:
    """Add ``session_id``: a user's session ends after ``gap`` without events.

    Session ids are 1..n in the order of (user id, session start). Returns a copy in the input's row
    order, with ``session_id`` placed after ``event``.
    """
    _need(events, [USER, TIMESTAMP], "sessionise")
    if gap <= pd.Timedelta(0):
        raise ValueError("sessionise: gap must be positive")
    t = pd.to_datetime(events[TIMESTAMP]).to_numpy().astype("datetime64[ns]").astype(np.int64)
    user = pd.factorize(events[USER], sort=True)[0]
    order = np.lexsort((np.arange(len(events)), t, user))
    u, ts = user[order], t[order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (u[1:] != u[:-1]) | (np.diff(ts) > gap.value)
    session = np.empty(len(order), dtype=np.int64)
    session[order] = np.cumsum(new)
    out = events.drop(columns=[SESSION], errors="ignore").copy()
    at = list(out.columns).index(EVENT) + 1 if EVENT in out.columns else len(out.columns)
    out.insert(at, SESSION, session)
    return out


def session_table(events: pd.DataFrame) -> pd.DataFrame:
    """One row per session: user, start, end, duration, events per type."""
    _need(events, [USER, TIMESTAMP, SESSION, EVENT], "session_table")
    g = events.groupby(SESSION)
    table = pd.DataFrame({USER: g[USER].first(), "start": g[TIMESTAMP].min(), "end": g[TIMESTAMP].max(),
                          "events": g.size()})
    table["minutes"] = (table["end"] - table["start"]).dt.total_seconds() / 60
    counts = events.groupby([SESSION, EVENT]).size().unstack(fill_value=0)
    return table.join(counts)


def attach_items(events: pd.DataFrame, catalogue: pd.DataFrame) -> pd.DataFrame:
    """Join item details (title, category, top category, brand, list price) by ``item_id``.

    ``catalogue`` may be the raw-style table (``category_path``) or the course's items table
    (``category``); its item ids must be unique. Events whose item is not in the catalogue raise.
    """
    _need(catalogue, [ITEM], "attach_items(catalogue)")
    if catalogue[ITEM].duplicated().any():
        raise ValueError("attach_items: the catalogue has repeated item_id values; clean it first")
    items = catalogue.rename(columns={"category_path": CATEGORY, PRICE: "list_price"})
    if CATEGORY in items.columns and "top_category" not in items.columns:
        items["top_category"] = items[CATEGORY].astype("string").str.split(" > ").str[0]
    keep = [c for c in (ITEM, "title", CATEGORY, "top_category", "brand", "list_price") if c in items.columns]
    unknown = ~events[ITEM].isin(items[ITEM])
    if unknown.any():
        raise KeyError(f"attach_items: {int(unknown.sum())} events refer to items not in the catalogue, "
                       f"e.g. {events.loc[unknown, ITEM].head(3).tolist()}")
    return events.merge(items[keep], on=ITEM, how="left", validate="many_to_one")


def attach_members(events: pd.DataFrame, members: pd.DataFrame,
                   columns: tuple[str, ...] = ("gender", "birth_year", "city", "member_level")) -> pd.DataFrame:
    """Join member data by ``user_id`` (``member_id`` in the member-centre table)."""
    table = members.rename(columns={"member_id": USER})
    _need(table, [USER], "attach_members(members)")
    if table[USER].duplicated().any():
        raise ValueError("attach_members: the member table has repeated member ids; clean it first")
    keep = [USER] + [c for c in columns if c in table.columns]
    return events.merge(table[keep], on=USER, how="left", validate="many_to_one")


def integrate(result, gap: pd.Timedelta = SESSION_GAP) -> pd.DataFrame:
    """Cleaned sources → one sessionised event table with item details and member data."""
    events = sessionise(merge_logs(result["click_log"], result["behaviour_log"]), gap=gap)
    return attach_members(attach_items(events, result["catalogue"]), result["members"])


__all__ = ["EPOCH", "SESSION_GAP", "attach_items", "attach_members", "integrate", "merge_logs", "session_table",
           "sessionise"]
