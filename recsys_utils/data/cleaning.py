"""Data cleaning (数据清洗) of the marketplace's four raw sources, with an audit that accounts for every row.

:func:`clean_sources` validates the members table, the behaviour log, the click log and the
catalogue (:mod:`recsys_utils.data.raw_sources`) and runs the data-driven rules of
:mod:`recsys_utils.data.cleaning_rules` in a fixed order per source, recording each dropped row's
reason and each repair in an :class:`~recsys_utils.data.cleaning_audit.AuditTrail`; the audit
balances exactly (asserted). :func:`cleaned_interactions` turns the cleaned logs into the course's
interactions table (:mod:`recsys_utils.data.integration`); :mod:`recsys_utils.data.cleaning_scores`
scores the result against the world's truth. :mod:`recsys_utils.data.retail_cleaning` uses the
same audit machinery on UCI Online Retail.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import ITEM, PRICE, PURCHASE, USER
from recsys_utils.data.cleaning_audit import (
    AuditTrail,
    CleaningResult,
    audit_table,
    check_not_all_dropped,
    validate_table,
)
from recsys_utils.data.cleaning_rules import (
    bot_user_agents,
    canonical_gender,
    canonical_strings,
    estimate_clock_skew,
    exact_duplicates,
    impossible_prices,
    impossible_quantities,
    impute_category_from_title,
    inhuman_rate_accounts,
    near_duplicates,
    out_of_range_times,
    plausible_window,
    test_accounts,
    unknown_ids,
)
from recsys_utils.data.integration import EPOCH, SESSION_GAP, merge_logs, sessionise
from recsys_utils.data.raw_sources import SOURCES

NEAR_DUPLICATE_WINDOW = pd.Timedelta(milliseconds=500)

#: required columns of each raw source and the kind of values each must hold
SCHEMAS: dict[str, dict[str, str]] = {
    "members": {"member_id": "integer", "nickname": "string", "email": "string",
                "signup_time": "datetime", "birth_year": "numeric", "gender": "string",
                "city": "string", "member_level": "string"},
    "behaviour_log": {"log_id": "integer", USER: "integer", ITEM: "integer", "event_type": "string",
                      "event_time": "datetime", "order_id": "numeric", "quantity": "numeric",
                      "unit_price": "numeric"},
    "click_log": {"request_id": "integer", "ts_ms": "integer", USER: "numeric", ITEM: "integer",
                  "server_id": "string", "user_agent": "string", "ip": "string", "device": "string"},
    "catalogue": {ITEM: "integer", "title": "string", "category_path": "string", "brand": "string",
                  PRICE: "numeric", "launch_date": "datetime", "status": "string"},
}


def _as_tables(raw) -> dict[str, pd.DataFrame]:
    if isinstance(raw, Mapping):
        tables = dict(raw)
    else:
        tables = {name: getattr(raw, name, None) for name in SOURCES}
    missing = [name for name in SOURCES if tables.get(name) is None]
    if missing:
        raise KeyError(f"clean_sources: missing source table(s) {missing}; need {list(SOURCES)}")
    return tables


# ------------------------------------------------------------------------------- drop rules per source
def _clean_catalogue(catalogue: pd.DataFrame, trail: AuditTrail) -> pd.DataFrame:
    """Drop duplicate items; repair brand spellings and fill missing categories from titles."""
    trail.drop(exact_duplicates(catalogue), "duplicate")
    trail.drop(catalogue[ITEM].duplicated(keep="first").to_numpy(), "duplicate")
    cat = catalogue.copy()
    brand, changed = canonical_strings(cat["brand"])
    cat["brand"] = brand
    trail.fix(changed, "inconsistent")
    category, filled = impute_category_from_title(cat["title"], cat["category_path"])
    cat["category_path"] = category
    trail.fix(filled, "missing")
    return cat


def _drop_members(members: pd.DataFrame, trail: AuditTrail) -> pd.Series:
    """Drop QA accounts and re-synced duplicates (scrapers are found in the click log); returns the QA ids."""
    test_ids = members.loc[test_accounts(members), "member_id"]
    trail.drop(members["member_id"].isin(test_ids).to_numpy(), "test_account")
    trail.drop(members["member_id"].duplicated(keep="first").to_numpy(), "duplicate")
    return test_ids


def _clean_clicks(clicks: pd.DataFrame, trail: AuditTrail, members: pd.DataFrame, member_trail: AuditTrail,
                  test_ids: pd.Series, known_items: pd.Series, details: dict, max_median_gap_s: float,
                  min_requests: int) -> tuple[pd.DataFrame, pd.Index, pd.Series]:
    """Drop duplicate, mistimed, bot, QA, anonymous and unknown requests (and the scrapers' member rows);
    correct the skewed server's clock. Returns (clicks, scraper ids, known user ids)."""
    trail.drop(exact_duplicates(clicks), "duplicate")
    when = EPOCH + pd.to_timedelta(clicks["ts_ms"], unit="ms")
    low, high = plausible_window(when[trail.kept])
    trail.drop(out_of_range_times(when, low, high), "bad_timestamp")
    details["time_window"] = (low, high)
    clock_reference = trail.kept.copy()
    trail.drop(bot_user_agents(clicks["user_agent"]), "bot")
    rates = inhuman_rate_accounts(clicks.loc[trail.kept, USER], clicks.loc[trail.kept, "ts_ms"],
                                  max_median_gap_s, min_requests)
    scraper_ids = rates.index[rates["scraper"]]
    details["request_rates"] = rates
    trail.drop(clicks[USER].isin(scraper_ids).fillna(False).to_numpy(bool), "bot")
    trail.drop(clicks[USER].isin(test_ids).fillna(False).to_numpy(bool), "test_account")
    trail.drop(clicks[USER].isna().to_numpy(), "anonymous")
    trail.drop(unknown_ids(clicks[ITEM], known_items), "unknown_item")
    member_trail.drop(members["member_id"].isin(scraper_ids).to_numpy(), "bot")
    known_users = members.loc[member_trail.kept, "member_id"]
    trail.drop(unknown_ids(clicks[USER], known_users), "unknown_user")
    offset, skew = estimate_clock_skew(clicks, reference=clock_reference)
    details["clock_skew"] = skew
    clk = clicks.copy()
    clk["ts_ms"] = clk["ts_ms"].to_numpy() - offset
    trail.fix(offset != 0, "clock_skew")
    return clk, scraper_ids, known_users


def _drop_behaviour(behaviour: pd.DataFrame, trail: AuditTrail, test_ids: pd.Series, known_items: pd.Series,
                    known_users: pd.Series, list_price: pd.Series, window: pd.Timedelta, max_quantity: int,
                    max_price_ratio: float) -> tuple[pd.Series, np.ndarray]:
    """Drop retries, QA and unknown rows, impossible purchases, cancelled orders and unknown event types.

    Returns the normalised event types and the purchase mask.
    """
    trail.drop(exact_duplicates(behaviour), "duplicate")
    keys = [USER, ITEM, "event_type", "order_id"]
    trail.drop(near_duplicates(behaviour, keys, "event_time", window, trail.kept), "duplicate")
    trail.drop(behaviour[USER].isin(test_ids).to_numpy(), "test_account")
    trail.drop(unknown_ids(behaviour[ITEM], known_items), "unknown_item")
    trail.drop(unknown_ids(behaviour[USER], known_users), "unknown_user")
    event = behaviour["event_type"].astype("string").str.strip().str.lower()
    is_cancel = (event == "cancel").fillna(False).to_numpy(bool)
    is_buy = (event == PURCHASE).fillna(False).to_numpy(bool)
    trail.drop(is_buy & impossible_quantities(behaviour["quantity"], max_quantity), "bad_quantity")
    median_paid = behaviour.loc[trail.kept & is_buy].groupby(ITEM)["unit_price"].median()
    reference = list_price.where(list_price > 0).fillna(median_paid.reindex(list_price.index))
    trail.drop(is_buy & impossible_prices(behaviour["unit_price"], reference.reindex(behaviour[ITEM]),
                                          max_price_ratio), "bad_price")
    cancelled_orders = behaviour.loc[is_cancel, "order_id"].dropna()
    trail.drop(is_cancel | (is_buy & behaviour["order_id"].isin(cancelled_orders).fillna(False).to_numpy(bool)),
               "cancellation")
    trail.drop(~(event.isin(["favorite", "add_to_cart", PURCHASE, "cancel"]).fillna(False).to_numpy(bool)),
               "unknown_event")
    return event, is_buy


# ------------------------------------------------------------------------------- repairs
def _repair_catalogue_prices(cat: pd.DataFrame, trail: AuditTrail, paid: pd.Series, typo_ratio: float) -> None:
    """Replace prices <= 0 by what customers paid (else the brand's or category's median) and divide
    ten-times typos by 10, in place."""
    paid_ref = paid.reindex(cat[ITEM]).to_numpy()
    price = cat[PRICE].to_numpy().astype(float).copy()
    positive = trail.kept & (price > 0)
    group = cat.loc[positive].groupby(["brand", "category_path"])[PRICE]
    group_median = group.median()[group.size() >= 3]
    brand_ref = group_median.reindex(pd.MultiIndex.from_frame(cat[["brand", "category_path"]])).to_numpy()
    category_median = cat.loc[positive].groupby("category_path")[PRICE].median()
    cat_ref = category_median.reindex(cat["category_path"]).to_numpy()
    ref = np.where(np.isfinite(paid_ref), paid_ref, np.where(np.isfinite(brand_ref), brand_ref, cat_ref))
    nonpositive = ~(price > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        typo = (price > 0) & (price > typo_ratio * ref)
    cat[PRICE] = np.where(nonpositive, ref, np.where(typo, np.round(price / 10, 2), price))
    trail.fix(nonpositive | typo, "bad_price")


def _repair_members(members: pd.DataFrame, trail: AuditTrail) -> pd.DataFrame:
    """Canonical gender and city spellings; missing birth years imputed by the median (flagged)."""
    mem = members.copy()
    gender, changed, missing_gender = canonical_gender(mem["gender"])
    mem["gender"] = gender
    trail.fix(changed, "inconsistent")
    city, changed = canonical_strings(mem["city"], key="city")
    mem["city"] = city
    trail.fix(changed, "inconsistent")
    year = pd.to_numeric(mem["birth_year"], errors="coerce")
    missing_year = year.isna().to_numpy()
    mem["birth_year_imputed"] = missing_year
    mem["birth_year"] = year.fillna(np.round(year[trail.kept].median())).astype("Int64")
    trail.fix(missing_year | missing_gender, "missing")
    return mem


def _restore_prices(behaviour: pd.DataFrame, trail: AuditTrail, event: pd.Series, is_buy: np.ndarray,
                    list_price: pd.Series) -> pd.DataFrame:
    """Missing unit prices of purchases from the repaired catalogue; normalised event types."""
    beh = behaviour.copy()
    no_price = is_buy & beh["unit_price"].isna().to_numpy()
    beh.loc[no_price, "unit_price"] = list_price.reindex(beh.loc[no_price, ITEM]).to_numpy()
    beh["event_type"] = event
    trail.fix(no_price, "missing")
    return beh


def clean_sources(raw, near_duplicate_window: pd.Timedelta = NEAR_DUPLICATE_WINDOW,
                  bot_max_median_gap_s: float = 2.5, bot_min_requests: int = 30,
                  max_quantity: int = 100, max_price_ratio: float = 50.0,
                  price_typo_ratio: float = 5.0) -> CleaningResult:
    """Clean the marketplace's four raw sources; see the module docstring and notebook 01.

    ``raw`` is a :class:`~recsys_utils.data.raw_sources.RawSources` or a mapping of the four
    tables. Rules run in a fixed order per source (each dropped row gets the first reason that
    applies); the audit balances exactly (asserted). Raises a clear error for a missing table,
    missing columns, wrong dtypes or empty tables, and
    :class:`~recsys_utils.data.cleaning_audit.CleaningError` when every row of a source would be dropped.
    """
    tables = _as_tables(raw)
    for name in SOURCES:
        validate_table(tables[name], SCHEMAS[name], name)
    members, behaviour = tables["members"], tables["behaviour_log"]
    trails = {name: AuditTrail(name, tables[name].index) for name in SOURCES}
    cat_t, mem_t, clk_t, beh_t = (trails[n] for n in ("catalogue", "members", "click_log", "behaviour_log"))
    details: dict = {}

    cat = _clean_catalogue(tables["catalogue"], cat_t)
    known_items = cat.loc[cat_t.kept, ITEM]
    test_ids = _drop_members(members, mem_t)
    clk, scraper_ids, known_users = _clean_clicks(tables["click_log"], clk_t, members, mem_t, test_ids, known_items,
                                                  details, bot_max_median_gap_s, bot_min_requests)
    event, is_buy = _drop_behaviour(behaviour, beh_t, test_ids, known_items, known_users,
                                    cat.loc[cat_t.kept].set_index(ITEM)[PRICE], near_duplicate_window,
                                    max_quantity, max_price_ratio)
    ordered = [trails[name] for name in SOURCES]
    check_not_all_dropped(ordered, audit_table(ordered))  # before repairs that need kept rows

    paid = behaviour.loc[beh_t.kept & is_buy].groupby(ITEM)["unit_price"].max()
    _repair_catalogue_prices(cat, cat_t, paid, price_typo_ratio)
    list_price = cat.loc[cat_t.kept].set_index(ITEM)[PRICE]
    mem = _repair_members(members, mem_t)
    beh = _restore_prices(behaviour, beh_t, event, is_buy, list_price)

    audit = audit_table(ordered)
    clean = {"members": mem.loc[mem_t.kept].reset_index(drop=True),
             "behaviour_log": beh.loc[beh_t.kept].reset_index(drop=True),
             "click_log": clk.loc[clk_t.kept].reset_index(drop=True),
             "catalogue": cat.loc[cat_t.kept].reset_index(drop=True)}
    dropped = pd.concat([t.dropped_rows() for t in ordered], ignore_index=True)
    fixed = pd.concat([t.fixed_rows() for t in ordered], ignore_index=True)
    details["scrapers"] = np.asarray(scraper_ids)
    details["test_accounts"] = np.asarray(test_ids)
    return CleaningResult(clean, audit, dropped, fixed, details)


def cleaned_interactions(result: CleaningResult, session_gap: pd.Timedelta = SESSION_GAP) -> pd.DataFrame:
    """The cleaned logs as the course's interactions table (like ``world.interactions``).

    Views come from the click log, favourites / carts / purchases from the behaviour log, merged
    in time order and split into sessions per user (see :mod:`recsys_utils.data.integration`).
    """
    return sessionise(merge_logs(result["click_log"], result["behaviour_log"]), gap=session_gap)


__all__ = ["NEAR_DUPLICATE_WINDOW", "SCHEMAS", "clean_sources", "cleaned_interactions"]
