"""The two raw event logs of the marketplace, with dirt: the business behaviour log and the click log.

The behaviour log (用户行为日志) is written by the order and favourites services: favourites,
add-to-cart and purchases, plus the purchases of cancelled orders and their ``cancel`` records,
logging retries (exact and near copies), QA accounts replaying traffic, deleted items, impossible
quantities and prices from a buggy checkout release, and purchases with no unit price. The click
log (商品点击日志) is the web servers' log of item page requests: crawlers, scraper accounts
behind a browser user agent, QA accounts, anonymous visitors, deleted items, broken timestamps,
requests logged twice and one server that wrote local time (UTC+8) for two days. Every defect is
recorded in the truth table (see :mod:`recsys_utils.data.raw_sources`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import EVENT, ITEM, PRICE, PURCHASE, TIMESTAMP, USER, VIEW
from recsys_utils.data.integration import EPOCH
from recsys_utils.data.raw_truth import DROP, FIX, TruthBuilder, assign_ids, epoch_ms, pick_rows

#: the click-log timestamp of the "year 2038" defect (the 32-bit epoch overflow, in ms)
TS_2038_MS = 2_147_483_647_000
SERVERS = ("web-01", "web-02", "web-03", "web-04", "web-05", "web-06")
SKEW_SERVER = "web-04"
SKEW_HOURS = 8  # the server wrote local time (UTC+8) instead of UTC
HUMAN_AGENTS = {
    "app": ("ShopApp/5.2.1 (iPhone; iOS 17.4)", "ShopApp/5.2.0 (Android 14; Pixel 8)"),
    "mobile_web": ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) Mobile Safari/604.1",
                   "Mozilla/5.0 (Linux; Android 14) Chrome/124.0 Mobile Safari/537.36"),
    "desktop": ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/124.0 Safari/537.36",
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) Safari/605.1.15"),
}
BOT_AGENTS = ("Googlebot/2.1 (+http://www.google.com/bot.html)", "Baiduspider/2.0",
              "python-requests/2.31.0", "Scrapy/2.11 (+https://scrapy.org)", "AhrefsBot/7.0",
              "curl/8.5.0", "HeadlessChrome/124.0 (compatible; crawler)")
BEHAVIOUR_COLUMNS = ["log_id", USER, ITEM, "event_type", "event_time", "order_id", "quantity", "unit_price"]


# ------------------------------------------------------------------------------- behaviour log
def _behaviour_rows(world, rng: np.random.Generator, b: TruthBuilder):
    """The real favourites, carts and purchases; 2% of catalogue-price purchases lose their unit price."""
    x = world.interactions
    acts = x[x[EVENT] != VIEW]
    purchase = (acts[EVENT] == PURCHASE).to_numpy()
    clean = pd.DataFrame({
        USER: acts[USER].to_numpy(), ITEM: acts[ITEM].to_numpy(),
        "event_type": acts[EVENT].to_numpy(), "event_time": acts[TIMESTAMP].to_numpy(),
        "order_id": pd.array(np.where(purchase, acts["order_id"].to_numpy(), 0), dtype="Int64"),
        "quantity": pd.array(acts["quantity"].to_numpy(), dtype="Int64"),
        "unit_price": acts[PRICE].to_numpy().astype(float),
    })
    clean.loc[~purchase, ["order_id", "quantity"]] = pd.NA
    # missing unit price on purchases paid at catalogue price (restorable from the catalogue)
    list_price = world.items.set_index(ITEM)[PRICE].reindex(clean[ITEM]).to_numpy()
    restorable = np.flatnonzero(purchase & np.isclose(clean["unit_price"].to_numpy(), list_price))
    missing = np.sort(rng.choice(restorable, size=int(round(0.02 * len(restorable))), replace=False))
    clean.loc[missing, "unit_price"] = np.nan
    uid = b.add(clean)
    b.fix(uid[missing], "missing")
    return clean, uid, purchase, list_price


def _cancellations(world, rng: np.random.Generator, b: TruthBuilder) -> None:
    """Cancelled orders: the purchase rows plus one cancel record per line, hours to days later."""
    canc = world.cancelled
    cancelled = pd.DataFrame({
        USER: canc[USER].to_numpy(), ITEM: canc[ITEM].to_numpy(), "event_type": PURCHASE,
        "event_time": canc[TIMESTAMP].to_numpy(),
        "order_id": pd.array(canc["order_id"].to_numpy(), dtype="Int64"),
        "quantity": pd.array(canc["quantity"].to_numpy(), dtype="Int64"),
        "unit_price": canc[PRICE].to_numpy().astype(float)})
    b.add(cancelled, "cancellation")
    delay = pd.to_timedelta(np.round(rng.uniform(0.5, 72, len(cancelled)) * 3600, 3), unit="s")
    records = cancelled.assign(event_type="cancel", event_time=cancelled["event_time"] + delay,
                               quantity=-cancelled["quantity"])
    latest = world.end - pd.Timedelta(milliseconds=1)
    records["event_time"] = records["event_time"].where(records["event_time"] < world.end, latest)
    b.add(records, "cancellation")


def _behaviour_replays(clean: pd.DataFrame, uid: np.ndarray, rng: np.random.Generator, b: TruthBuilder,
                       test_ids: np.ndarray, unknown_ids: np.ndarray) -> None:
    """Retries (exact copies; near copies < 1 s later with a new log id), QA replays, deleted items."""
    n = len(clean)
    exact_pos = pick_rows(rng, n, 0.012)
    exact = clean.iloc[exact_pos].assign(_src=uid[exact_pos])
    near = clean.iloc[pick_rows(rng, n, 0.012)].copy()
    near["event_time"] = near["event_time"] + pd.to_timedelta(np.round(rng.uniform(0.02, 0.4, len(near)), 3),
                                                              unit="s")
    b.add(exact, "duplicate")
    b.add(near, "duplicate")

    test = clean.iloc[pick_rows(rng, n, 0.01)].copy()
    test[USER] = rng.choice(test_ids, size=len(test))
    is_buy = test["event_type"].to_numpy() == PURCHASE
    test.loc[is_buy, "order_id"] = 9_000_000 + np.arange(int(is_buy.sum()))
    b.add(test, "test_account")

    unknown = clean.iloc[pick_rows(rng, n, 0.006)].copy()
    unknown[ITEM] = rng.choice(unknown_ids, size=len(unknown))
    unknown["event_time"] = unknown["event_time"] + pd.to_timedelta(rng.uniform(1, 60, len(unknown)).round(3),
                                                                    unit="s")
    b.add(unknown, "unknown_item")


def _bad_checkouts(clean: pd.DataFrame, purchase: np.ndarray, list_price: np.ndarray, rng: np.random.Generator,
                   b: TruthBuilder) -> None:
    """Impossible quantities (0, negative, > 100) and prices (0, negative, x1000) from a buggy release."""
    buy_rows = np.flatnonzero(purchase)
    shift = pd.to_timedelta(np.round(rng.uniform(60, 3600, len(buy_rows)), 3), unit="s")
    shifted = clean.iloc[buy_rows].assign(event_time=clean["event_time"].to_numpy()[buy_rows] + shift)
    shifted = shifted.reset_index(drop=True)
    shifted["unit_price"] = list_price[buy_rows]
    order = rng.permutation(len(shifted))
    k = int(round(0.01 * len(shifted)))
    bad_q = shifted.iloc[order[:k]].copy()
    bad_q["quantity"] = pd.array(rng.choice([0, -1, -2, 250, 999], size=k), dtype="Int64")
    bad_p = shifted.iloc[order[k:2 * k]].copy()
    kinds = rng.integers(0, 3, k)
    bad_p["unit_price"] = np.select([kinds == 0, kinds == 1], [0.0, -bad_p["unit_price"].to_numpy()],
                                    default=np.round(bad_p["unit_price"].to_numpy() * 1000, 2))
    b.add(bad_q, "bad_quantity")
    b.add(bad_p, "bad_price")


def behaviour_log(world, rng: np.random.Generator, test_ids: np.ndarray, unknown_ids: np.ndarray
                  ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The behaviour log (favourites, carts, purchases, cancellations) with its truth rows."""
    b = TruthBuilder()
    clean, uid, purchase, list_price = _behaviour_rows(world, rng, b)
    _cancellations(world, rng, b)
    _behaviour_replays(clean, uid, rng, b, test_ids, unknown_ids)
    _bad_checkouts(clean, purchase, list_price, rng, b)
    frame, truth = b.build("behaviour_log", ["event_time"], keep_uid=True)
    frame = assign_ids(frame, "log_id", 50_000_000)[BEHAVIOUR_COLUMNS]  # log ids follow time
    frame["event_time"] = frame["event_time"].astype("datetime64[ms]")
    return frame, truth


# ------------------------------------------------------------------------------- click log
def _click_rows(world, rng: np.random.Generator) -> pd.DataFrame:
    """One request per real view: true time, user, item, server, a human user agent, the user's home IP."""
    x = world.interactions
    views = x[x[EVENT] == VIEW]
    n = len(views)
    users = world.users[USER].to_numpy()
    device = views["device"].to_numpy()
    agent_pick = rng.integers(0, 2, n)
    agents = np.empty(n, dtype=object)
    for name, options in HUMAN_AGENTS.items():  # three devices
        mask = device == name
        agents[mask] = np.asarray(options, dtype=object)[agent_pick[mask]]
    # one home address per user (an IPv4 string), looked up per row
    octets = rng.integers(1, 255, (len(users), 3))
    parts_ip = [pd.Series(octets[:, j]).astype(str) for j in range(3)]
    user_ip = "36." + parts_ip[0] + "." + parts_ip[1] + "." + parts_ip[2]
    ip_of = pd.Series(user_ip.to_numpy(), index=users)
    return pd.DataFrame({
        "true_ms": epoch_ms(views[TIMESTAMP]), USER: pd.array(views[USER].to_numpy(), dtype="Int64"),
        ITEM: views[ITEM].to_numpy(),
        "server_id": np.asarray(SERVERS, dtype=object)[rng.integers(0, len(SERVERS), n)],
        "user_agent": agents, "ip": ip_of.reindex(views[USER].to_numpy()).to_numpy(), "device": device,
    })


def _crawlers(n: int, rng: np.random.Generator, start_ms: int, end_ms: int, item_ids: np.ndarray) -> pd.DataFrame:
    """Bot user agents, no login, sweeping the catalogue around the clock (2.5% of the views)."""
    n_crawl = int(round(0.025 * n))
    return pd.DataFrame({
        "true_ms": np.sort(rng.integers(start_ms, end_ms, n_crawl)),
        USER: pd.array([pd.NA] * n_crawl, dtype="Int64"),
        ITEM: item_ids[rng.integers(0, len(item_ids), n_crawl)],
        "server_id": np.asarray(SERVERS, dtype=object)[rng.integers(0, len(SERVERS), n_crawl)],
        "user_agent": np.asarray(BOT_AGENTS, dtype=object)[rng.integers(0, len(BOT_AGENTS), n_crawl)],
        "ip": "66.249.66." + pd.Series(rng.integers(1, 255, n_crawl)).astype(str).to_numpy(),
        "device": "desktop"})


def _scrapers(n: int, rng: np.random.Generator, start_ms: int, end_ms: int, item_ids: np.ndarray,
              scraper_ids: np.ndarray) -> pd.DataFrame:
    """Logged-in accounts with a browser agent, one request every 0.5-3 s for hours."""
    parts = []
    typical = max(60, int(0.015 * n / max(len(scraper_ids), 1)))
    for account in scraper_ids:  # a handful of accounts
        length = int(typical * rng.uniform(0.7, 1.3))
        begin = rng.integers(start_ms, end_ms - 4 * 3600 * 1000)
        times = begin + np.cumsum(rng.uniform(500, 3000, length)).astype(np.int64)
        first = rng.integers(0, len(item_ids))
        parts.append(pd.DataFrame({
            "true_ms": times, USER: pd.array(np.full(length, account), dtype="Int64"),
            ITEM: np.sort(item_ids)[(first + np.arange(length)) % len(item_ids)],
            "server_id": np.asarray(SERVERS, dtype=object)[rng.integers(0, len(SERVERS), length)],
            "user_agent": HUMAN_AGENTS["desktop"][0], "ip": f"47.100.{int(rng.integers(1, 255))}.9",
            "device": "desktop"}))
    return pd.concat(parts, ignore_index=True)


def _click_replays(clean: pd.DataFrame, rng: np.random.Generator, b: TruthBuilder, test_ids: np.ndarray,
                   unknown_ids: np.ndarray, start_ms: int, end_ms: int) -> None:
    """QA replays, anonymous visitors, deleted items, broken timestamps and requests logged twice."""
    n = len(clean)
    test = clean.iloc[pick_rows(rng, n, 0.01)].copy()
    test[USER] = pd.array(rng.choice(test_ids, size=len(test)), dtype="Int64")
    test["ip"] = "10.0.0.7"
    b.add(test, "test_account")

    anon = clean.iloc[pick_rows(rng, n, 0.03)].copy()
    anon[USER] = pd.array([pd.NA] * len(anon), dtype="Int64")
    anon["true_ms"] = anon["true_ms"].to_numpy() + rng.integers(-3_600_000, 3_600_000, len(anon))
    anon["true_ms"] = anon["true_ms"].clip(start_ms, end_ms - 1)
    anon["ip"] = "117.136." + pd.Series(rng.integers(1, 255, len(anon))).astype(str).to_numpy() + ".20"
    b.add(anon, "anonymous")

    unknown = clean.iloc[pick_rows(rng, n, 0.005)].copy()
    unknown[ITEM] = rng.choice(unknown_ids, size=len(unknown))
    unknown["true_ms"] = np.minimum(unknown["true_ms"].to_numpy() + rng.integers(1000, 60_000, len(unknown)),
                                    end_ms - 1)
    b.add(unknown, "unknown_item")

    # out-of-range timestamps: a clock reset to epoch 0, and the 32-bit overflow date
    bad_ts = clean.iloc[pick_rows(rng, n, 0.001)].copy()
    bad_ts["_bad_ts"] = np.where(rng.random(len(bad_ts)) < 0.5, 0, TS_2038_MS)
    b.add(bad_ts, "bad_timestamp")

    dup_pos = pick_rows(rng, n, 0.01)
    dup = clean.iloc[dup_pos].assign(_src=dup_pos)  # the clean rows were added first: uid = position
    b.add(dup, "duplicate")


def _logged_times(frame: pd.DataFrame, truth: pd.DataFrame, start_ms: int, end_ms: int):
    """Replace the true times by what the servers wrote: the skewed server's local time, broken values."""
    skew_start = start_ms + int(0.4 * (end_ms - start_ms)) // 3_600_000 * 3_600_000
    skewed = ((frame["server_id"] == SKEW_SERVER).to_numpy()
              & (frame["true_ms"].to_numpy() >= skew_start)
              & (frame["true_ms"].to_numpy() < skew_start + 2 * 86_400_000))
    ts = frame["true_ms"].to_numpy() + skewed * SKEW_HOURS * 3_600_000
    bad = frame.pop("_bad_ts").to_numpy()
    has_bad = ~pd.isna(bad)
    ts = np.where(has_bad, pd.Series(bad).fillna(0).to_numpy().astype(np.int64), ts)
    frame.insert(1, "ts_ms", ts.astype(np.int64))
    frame = frame.drop(columns="true_ms")
    skew_rows = np.flatnonzero(skewed & ~has_bad)
    skew_rows = skew_rows[~np.isin(skew_rows, truth.loc[truth["action"] == DROP, "row"].to_numpy())]
    truth = pd.concat([truth, pd.DataFrame({"source": "click_log", "row": skew_rows,
                                            "reason": "clock_skew", "action": FIX})], ignore_index=True)
    notes = {"skew_server": SKEW_SERVER, "skew_hours": SKEW_HOURS,
             "skew_window": (EPOCH + pd.Timedelta(milliseconds=int(skew_start)),
                             EPOCH + pd.Timedelta(milliseconds=int(skew_start + 2 * 86_400_000)))}
    return frame, truth, notes


def click_log(world, rng: np.random.Generator, test_ids: np.ndarray, scraper_ids: np.ndarray,
              unknown_ids: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """The click log (item page requests) with its truth rows and notes on the skewed server."""
    clean = _click_rows(world, rng)
    b = TruthBuilder()
    b.add(clean)
    start_ms, end_ms = epoch_ms([world.start])[0], epoch_ms([world.end])[0]
    item_ids = world.items[ITEM].to_numpy()
    b.add(_crawlers(len(clean), rng, start_ms, end_ms, item_ids), "bot")
    b.add(_scrapers(len(clean), rng, start_ms, end_ms, item_ids, scraper_ids), "bot")
    _click_replays(clean, rng, b, test_ids, unknown_ids, start_ms, end_ms)
    frame, truth = b.build("click_log", ["true_ms"], keep_uid=True)
    frame = assign_ids(frame, "request_id", 80_000_000)
    return _logged_times(frame, truth, start_ms, end_ms)


__all__ = ["SKEW_HOURS", "SKEW_SERVER", "TS_2038_MS", "behaviour_log", "click_log"]
