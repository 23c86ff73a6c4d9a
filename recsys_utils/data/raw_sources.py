"""The marketplace's raw company sources, the way a data team receives them, with known dirt.

A real shop does not hand its recommender team a clean ``interactions`` table: it has a
member-centre table (会员中心数据), a business behaviour log written by the order and favourites
services (用户行为日志), a web-server click log of item page requests (商品点击日志) and the item
catalogue. :func:`make_raw_sources` derives those four tables from the clean world and injects
the defects such tables really carry, recording every defect in a separate ``truth`` table so
the cleaning lesson can score itself row by row.

The clean data is ``world.interactions`` (views come from the click log; favourites, add-to-cart
and purchases from the behaviour log), ``world.cancelled`` (orders cancelled later), ``world.users``
and ``world.items``. Every raw row that is not marked ``drop`` in the truth table corresponds to
exactly one clean row (after its ``fix`` entries are repaired), so a perfect cleaner returns the
clean view.

Injected defects (``reason`` in the truth table, ``action`` drop or fix):

============== ================ ======================================================= ======
source         reason           what                                                    action
============== ================ ======================================================= ======
members        test_account     QA accounts (``qa_``/``test_`` nicknames, ``@test.internal``) drop
members        bot              accounts of scrapers (seen only through their click rate)  drop
members        duplicate        the same member synced twice (a later copy)              drop
members        inconsistent     gender ``female``/`` F``, city case/space/"Shi" variants fix
members        missing          missing ``birth_year`` or ``gender``                     fix
behaviour_log  test_account     events of QA accounts                                    drop
behaviour_log  duplicate        exact retries, and near retries (new log id, < 1 s later) drop
behaviour_log  unknown_item     item ids that are not in the catalogue (deleted items)    drop
behaviour_log  bad_quantity     purchases with quantity 0, negative or > 100              drop
behaviour_log  bad_price        purchases with unit price <= 0 or absurdly high          drop
behaviour_log  cancellation     purchases of cancelled orders and the ``cancel`` records  drop
behaviour_log  missing          purchases with no ``unit_price`` (restorable from catalogue) fix
click_log      duplicate        the same request logged twice                             drop
click_log      bad_timestamp    epoch 0 and 2038-01-19 timestamps                        drop
click_log      bot              crawler user agents, and scraper accounts (inhuman rate)  drop
click_log      test_account     page views of QA accounts                                drop
click_log      anonymous        requests with no user id (cannot be attributed)           drop
click_log      unknown_item     item ids that are not in the catalogue                   drop
click_log      clock_skew       one server logged local time (UTC+8) for two days         fix
catalogue      duplicate        an item exported twice                                   drop
catalogue      bad_price        price 0, negative, or ten times too high (typo)           fix
catalogue      inconsistent     brand in other case / with stray spaces                  fix
catalogue      missing          missing ``category_path``                                fix
============== ================ ======================================================= ======

Everything is vectorised and deterministic for ``world.config.seed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import CATEGORY, EVENT, ITEM, PRICE, PURCHASE, TIMESTAMP, TITLE, USER, VIEW
from recsys_utils.data import taxonomy as tx

SOURCES = ("members", "behaviour_log", "click_log", "catalogue")
DROP, FIX = "drop", "fix"
EPOCH = pd.Timestamp("1970-01-01")
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
NICK_WORDS = ("sunny", "panda", "lucky", "tiger", "maple", "river", "cloud", "peach", "jade", "lotus",
              "bamboo", "pearl", "comet", "happy", "little", "silver", "ocean", "misty", "cherry", "swift")
MAIL_DOMAINS = ("qq.com", "163.com", "gmail.com", "outlook.com", "126.com", "foxmail.com")


@dataclass
class RawSources:
    """The four raw tables and the truth table of their injected defects.

    ``truth`` has columns ``source, row, reason, action``: ``row`` is the row's index label in
    that raw table; a row to drop appears once, a row to fix once per defect.
    """

    members: pd.DataFrame
    behaviour_log: pd.DataFrame
    click_log: pd.DataFrame
    catalogue: pd.DataFrame
    truth: pd.DataFrame
    notes: dict = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The four raw tables by source name."""
        return {name: getattr(self, name) for name in SOURCES}

    def summary(self) -> pd.DataFrame:
        """Rows, dirty rows and dirty share per source (from the truth table)."""
        rows = {}
        for name, frame in self.tables().items():
            t = self.truth[self.truth["source"] == name]
            rows[name] = {"rows": len(frame),
                          "rows_to_drop": int((t["action"] == DROP).sum()),
                          "rows_to_fix": int(t.loc[t["action"] == FIX, "row"].nunique())}
        out = pd.DataFrame.from_dict(rows, orient="index")
        out["dirty_share"] = (out["rows_to_drop"] + out["rows_to_fix"]) / out["rows"]
        return out

    def truth_counts(self) -> pd.DataFrame:
        """Number of truth rows per source, reason and action."""
        return (self.truth.groupby(["source", "reason", "action"]).size()
                .rename("rows").reset_index())


class _Builder:
    """Collects the rows of one raw table with the truth entries that belong to them."""

    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []
        self.fixes: list[tuple[np.ndarray, str]] = []  # (uids, reason)
        self.n = 0

    def add(self, frame: pd.DataFrame, reason: str | None = None) -> np.ndarray:
        uid = np.arange(self.n, self.n + len(frame))
        self.n += len(frame)
        frame = frame.reset_index(drop=True).assign(_uid=uid, _reason=reason)
        self.parts.append(frame)
        return uid

    def fix(self, uids: np.ndarray, reason: str) -> None:
        self.fixes.append((np.asarray(uids), reason))

    def build(self, source: str, sort_by: list[str], keep_uid: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
        frame = pd.concat(self.parts, ignore_index=True)
        frame = frame.sort_values(sort_by + ["_uid"], kind="stable").reset_index(drop=True)
        label_of_uid = np.empty(self.n, dtype=np.int64)
        label_of_uid[frame["_uid"].to_numpy()] = np.arange(len(frame))
        dropped = frame["_reason"].notna().to_numpy()
        truth = [pd.DataFrame({"source": source, "row": np.flatnonzero(dropped),
                               "reason": frame["_reason"].to_numpy()[dropped], "action": DROP})]
        for uids, reason in self.fixes:
            labels = np.sort(label_of_uid[uids])
            labels = labels[~dropped[labels]]
            truth.append(pd.DataFrame({"source": source, "row": labels, "reason": reason, "action": FIX}))
        frame = frame.drop(columns=["_reason"] if keep_uid else ["_uid", "_reason"])
        truth = pd.concat(truth, ignore_index=True).drop_duplicates(["row", "reason", "action"])
        return frame, truth.reset_index(drop=True)


def _pick(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    """Sorted positions of about ``share * n`` rows drawn without replacement."""
    k = int(round(share * n))
    return np.sort(rng.choice(n, size=min(k, n), replace=False))


def _ms(times: pd.Series | np.ndarray) -> np.ndarray:
    """Epoch milliseconds of timestamps."""
    values = pd.to_datetime(pd.Series(times)).to_numpy().astype("datetime64[ms]")
    return values.astype(np.int64)


# ------------------------------------------------------------------------------- members
def _members(world, rng: np.random.Generator, n_test: int, n_scrapers: int):
    users = world.users
    n = len(users)
    nick = (np.asarray(NICK_WORDS, dtype=object)[rng.integers(0, len(NICK_WORDS), n)]
            + np.asarray(NICK_WORDS, dtype=object)[rng.integers(0, len(NICK_WORDS), n)]
            + pd.Series(rng.integers(1, 9999, n)).astype(str).to_numpy())
    email = nick + "@" + np.asarray(MAIL_DOMAINS, dtype=object)[rng.integers(0, len(MAIL_DOMAINS), n)]
    ref_year = world.start.year
    real = pd.DataFrame({
        "member_id": users[USER].to_numpy(),
        "nickname": nick,
        "email": email,
        "signup_time": users["signup_time"].to_numpy(),
        "birth_year": pd.array(ref_year - users["age"].to_numpy(), dtype="Int64"),
        "gender": users["gender"].to_numpy().astype(object),
        "city": users["city"].to_numpy().astype(object),
        "member_level": users["member_level"].to_numpy(),
    })
    # inconsistent strings: gender spellings and city variants
    gender_bad = _pick(rng, n, 0.04)
    variants = {"F": np.array(["female", "Female", " F", "f", "FEMALE"], dtype=object),
                "M": np.array(["male", "Male", "M ", "m", "MALE"], dtype=object)}
    g = real["gender"].to_numpy().copy()
    pick = rng.integers(0, 5, len(gender_bad))
    g[gender_bad] = np.where(g[gender_bad] == "F", variants["F"][pick], variants["M"][pick])
    city_bad = _pick(rng, n, 0.05)
    c = real["city"].to_numpy().copy()
    style = rng.integers(0, 4, len(city_bad))
    base = pd.Series(c[city_bad])
    c[city_bad] = np.select(
        [style == 0, style == 1, style == 2],
        [base.str.lower().to_numpy(), (" " + base + "  ").to_numpy(), (base + " Shi").to_numpy()],
        default=base.str.upper().to_numpy())
    # missing values
    missing_year = _pick(rng, n, 0.03)
    missing_gender = np.setdiff1d(_pick(rng, n, 0.02), gender_bad)
    year = real["birth_year"].copy()
    year.iloc[missing_year] = pd.NA
    g[missing_gender] = None
    real = real.assign(gender=g, city=c, birth_year=year)

    b = _Builder()
    uid = b.add(real)
    b.fix(uid[gender_bad], "inconsistent")
    b.fix(uid[city_bad], "inconsistent")
    b.fix(uid[missing_year], "missing")
    b.fix(uid[missing_gender], "missing")
    # re-synced duplicates: the same member, exported again later
    dup = _pick(rng, n, 0.01)
    copies = real.iloc[dup].copy()
    b.add(copies, "duplicate")
    # QA and scraper accounts, with ids after the real members
    extra_ids = users[USER].max() + 1 + rng.permutation(n_test + n_scrapers)
    test_ids, scraper_ids = extra_ids[:n_test], extra_ids[n_test:]
    prefix = np.where(rng.random(n_test) < 0.5, "qa_", "test_")
    test_nick = pd.Series(prefix).str.cat(pd.Series(np.arange(n_test) + 1).astype(str)).to_numpy()
    signup = world.start - pd.to_timedelta(rng.uniform(1, 300, n_test + n_scrapers), unit="D")
    test = pd.DataFrame({
        "member_id": test_ids, "nickname": test_nick, "email": test_nick + "@test.internal",
        "signup_time": signup[:n_test].round("s"), "birth_year": pd.array([1990] * n_test, dtype="Int64"),
        "gender": "M", "city": "Shanghai", "member_level": "bronze"})
    b.add(test, "test_account")
    sn = nick[rng.integers(0, n, n_scrapers)] + "x"
    scrapers = pd.DataFrame({
        "member_id": scraper_ids, "nickname": sn, "email": sn + "@" + "gmail.com",
        "signup_time": signup[n_test:].round("s"),
        "birth_year": pd.array(rng.integers(1975, 2002, n_scrapers), dtype="Int64"),
        "gender": np.where(rng.random(n_scrapers) < 0.5, "F", "M"),
        "city": np.asarray(tx.CITIES[0], dtype=object)[rng.integers(0, 4, n_scrapers)],
        "member_level": "bronze"})
    b.add(scrapers, "bot")
    frame, truth = b.build("members", ["member_id", "signup_time"])
    frame["birth_year"] = frame["birth_year"].astype("Int64")
    return frame, truth, test_ids, scraper_ids


# ------------------------------------------------------------------------------- catalogue
def _catalogue(world, rng: np.random.Generator):
    items = world.items
    n = len(items)
    status = np.where((items["launch_time"] < world.start - pd.Timedelta(days=400))
                      & (rng.random(n) < 0.15), "offline", "active")
    cat = pd.DataFrame({
        ITEM: items[ITEM].to_numpy(),
        TITLE: items[TITLE].to_numpy(),
        "category_path": items[CATEGORY].to_numpy().astype(object),
        "brand": items["brand"].to_numpy().astype(object),
        PRICE: items[PRICE].to_numpy().copy(),
        "launch_date": items["launch_time"].to_numpy(),
        "status": status,
    })
    chosen = rng.permutation(n)
    k = max(1, int(round(0.015 * n)))
    zero, typo = chosen[:k], chosen[k:3 * k]
    brand_bad = chosen[3 * k:3 * k + 2 * k]
    cat_missing = chosen[5 * k:6 * k]
    price = cat[PRICE].to_numpy().copy()
    price[zero] = np.where(rng.random(k) < 0.5, 0.0, -price[zero])
    price[typo] = np.round(price[typo] * 10, 2)
    style = rng.integers(0, 3, len(brand_bad))
    base = pd.Series(cat["brand"].to_numpy()[brand_bad])
    cat.loc[brand_bad, "brand"] = np.select(
        [style == 0, style == 1], [base.str.upper().to_numpy(), base.str.lower().to_numpy()],
        default=(" " + base + " ").to_numpy())
    cat.loc[cat_missing, "category_path"] = None
    cat[PRICE] = price
    b = _Builder()
    uid = b.add(cat)
    b.fix(uid[np.concatenate([zero, typo])], "bad_price")
    b.fix(uid[brand_bad], "inconsistent")
    b.fix(uid[cat_missing], "missing")
    clean_rows = np.setdiff1d(np.arange(n), chosen[:6 * k])
    b.add(cat.iloc[rng.choice(clean_rows, size=max(1, int(round(0.01 * n))), replace=False)], "duplicate")
    frame, truth = b.build("catalogue", [ITEM])
    return frame, truth


# ------------------------------------------------------------------------------- behaviour log
def _behaviour(world, rng: np.random.Generator, test_ids: np.ndarray, unknown_ids: np.ndarray):
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
    n = len(clean)
    b = _Builder()
    # missing unit price on purchases paid at catalogue price (restorable from the catalogue)
    list_price = world.items.set_index(ITEM)[PRICE].reindex(clean[ITEM]).to_numpy()
    restorable = np.flatnonzero(purchase & np.isclose(clean["unit_price"].to_numpy(), list_price))
    missing = np.sort(rng.choice(restorable, size=int(round(0.02 * len(restorable))), replace=False))
    clean.loc[missing, "unit_price"] = np.nan
    uid = b.add(clean)
    b.fix(uid[missing], "missing")

    # cancelled orders: the purchase rows plus one cancel record per line, hours to days later
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

    # retries: exact copies, and near copies logged again < 1 s later with a new log id
    exact_pos = _pick(rng, n, 0.012)
    exact = clean.iloc[exact_pos].assign(_src=uid[exact_pos])
    near = clean.iloc[_pick(rng, n, 0.012)].copy()
    near["event_time"] = near["event_time"] + pd.to_timedelta(np.round(rng.uniform(0.02, 0.4, len(near)), 3),
                                                              unit="s")
    b.add(exact, "duplicate")
    b.add(near, "duplicate")

    # QA accounts replaying real traffic
    test = clean.iloc[_pick(rng, n, 0.01)].copy()
    test[USER] = rng.choice(test_ids, size=len(test))
    is_buy = test["event_type"].to_numpy() == PURCHASE
    test.loc[is_buy, "order_id"] = 9_000_000 + np.arange(int(is_buy.sum()))
    b.add(test, "test_account")

    # unknown (deleted) items
    unknown = clean.iloc[_pick(rng, n, 0.006)].copy()
    unknown[ITEM] = rng.choice(unknown_ids, size=len(unknown))
    unknown["event_time"] = unknown["event_time"] + pd.to_timedelta(rng.uniform(1, 60, len(unknown)).round(3),
                                                                    unit="s")
    b.add(unknown, "unknown_item")

    # impossible quantities and prices on purchases, from a buggy checkout release
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

    frame, truth = b.build("behaviour_log", ["event_time"], keep_uid=True)
    # log ids follow time; an exact retry repeats the id of the row it copies
    log_id = pd.Series(50_000_000 + np.arange(len(frame)), index=frame.pop("_uid").to_numpy())
    src = frame.pop("_src").to_numpy()
    copy = ~pd.isna(src)
    values = log_id.to_numpy().copy()
    values[copy] = log_id.reindex(src[copy].astype(np.int64)).to_numpy()
    frame.insert(0, "log_id", values)
    frame = frame[["log_id", USER, ITEM, "event_type", "event_time", "order_id", "quantity", "unit_price"]]
    frame["event_time"] = frame["event_time"].astype("datetime64[ms]")
    return frame, truth


# ------------------------------------------------------------------------------- click log
def _clicks(world, rng: np.random.Generator, test_ids, scraper_ids, unknown_ids):
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
    clean = pd.DataFrame({
        "true_ms": _ms(views[TIMESTAMP]), USER: pd.array(views[USER].to_numpy(), dtype="Int64"),
        ITEM: views[ITEM].to_numpy(),
        "server_id": np.asarray(SERVERS, dtype=object)[rng.integers(0, len(SERVERS), n)],
        "user_agent": agents, "ip": ip_of.reindex(views[USER].to_numpy()).to_numpy(), "device": device,
    })
    b = _Builder()
    b.add(clean)
    start_ms, end_ms = _ms([world.start])[0], _ms([world.end])[0]
    item_ids = world.items[ITEM].to_numpy()

    # crawlers: bot user agents, no login, sweeping the catalogue around the clock
    n_crawl = int(round(0.025 * n))
    crawl = pd.DataFrame({
        "true_ms": np.sort(rng.integers(start_ms, end_ms, n_crawl)),
        USER: pd.array([pd.NA] * n_crawl, dtype="Int64"),
        ITEM: item_ids[rng.integers(0, len(item_ids), n_crawl)],
        "server_id": np.asarray(SERVERS, dtype=object)[rng.integers(0, len(SERVERS), n_crawl)],
        "user_agent": np.asarray(BOT_AGENTS, dtype=object)[rng.integers(0, len(BOT_AGENTS), n_crawl)],
        "ip": "66.249.66." + pd.Series(rng.integers(1, 255, n_crawl)).astype(str).to_numpy(),
        "device": "desktop"})
    b.add(crawl, "bot")

    # scrapers: logged-in accounts with a browser agent, one request every 0.5-3 s for hours
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
    b.add(pd.concat(parts, ignore_index=True), "bot")

    # QA accounts replaying real sessions
    test = clean.iloc[_pick(rng, n, 0.01)].copy()
    test[USER] = pd.array(rng.choice(test_ids, size=len(test)), dtype="Int64")
    test["ip"] = "10.0.0.7"
    b.add(test, "test_account")

    # anonymous visitors: real-looking traffic with no user id
    anon = clean.iloc[_pick(rng, n, 0.03)].copy()
    anon[USER] = pd.array([pd.NA] * len(anon), dtype="Int64")
    anon["true_ms"] = anon["true_ms"].to_numpy() + rng.integers(-3_600_000, 3_600_000, len(anon))
    anon["true_ms"] = anon["true_ms"].clip(start_ms, end_ms - 1)
    anon["ip"] = "117.136." + pd.Series(rng.integers(1, 255, len(anon))).astype(str).to_numpy() + ".20"
    b.add(anon, "anonymous")

    # broken links to deleted items
    unknown = clean.iloc[_pick(rng, n, 0.005)].copy()
    unknown[ITEM] = rng.choice(unknown_ids, size=len(unknown))
    unknown["true_ms"] = np.minimum(unknown["true_ms"].to_numpy() + rng.integers(1000, 60_000, len(unknown)),
                                    end_ms - 1)
    b.add(unknown, "unknown_item")

    # out-of-range timestamps: a clock reset to epoch 0, and the 32-bit overflow date
    bad_ts = clean.iloc[_pick(rng, n, 0.001)].copy()
    bad_ts["_bad_ts"] = np.where(rng.random(len(bad_ts)) < 0.5, 0, TS_2038_MS)
    b.add(bad_ts, "bad_timestamp")

    # exact duplicates: the same request logged twice
    dup_pos = _pick(rng, n, 0.01)
    dup = clean.iloc[dup_pos].assign(_src=dup_pos)  # the clean rows were added first: uid = position
    b.add(dup, "duplicate")

    frame, truth = b.build("click_log", ["true_ms"], keep_uid=True)
    request_id = pd.Series(80_000_000 + np.arange(len(frame), dtype=np.int64), index=frame.pop("_uid").to_numpy())
    src = frame.pop("_src").to_numpy()
    copy = ~pd.isna(src)
    values = request_id.to_numpy().copy()
    values[copy] = request_id.reindex(src[copy].astype(np.int64)).to_numpy()
    frame.insert(0, "request_id", values)
    # the skewed server: two days of local time (UTC+8) instead of UTC
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


def make_raw_sources(world, n_test_accounts: int = 12, n_scrapers: int = 6) -> RawSources:
    """Derive the four raw sources and their truth table from a :class:`Marketplace`.

    Deterministic for ``world.config.seed``. The share of dirty rows is a few percent per
    defect, about 8-15% of all rows per source.
    """
    rng = np.random.default_rng([world.config.seed, 20240304])
    members, t_members, test_ids, scraper_ids = _members(world, rng, n_test_accounts, n_scrapers)
    catalogue, t_catalogue = _catalogue(world, rng)
    known = world.items[ITEM].to_numpy()
    pool = np.setdiff1d(np.arange(known.min() - 5000, known.min()), known)
    unknown_ids = rng.choice(pool, size=min(60, len(pool)), replace=False)
    behaviour, t_behaviour = _behaviour(world, rng, test_ids, unknown_ids)
    clicks, t_clicks, notes = _clicks(world, rng, test_ids, scraper_ids, unknown_ids)
    truth = pd.concat([t_members, t_behaviour, t_clicks, t_catalogue], ignore_index=True)
    truth["row"] = truth["row"].astype(np.int64)
    notes.update({"test_accounts": np.sort(test_ids), "scraper_accounts": np.sort(scraper_ids),
                  "unknown_items": np.sort(unknown_ids)})
    return RawSources(members, behaviour, clicks, catalogue, truth, notes)


__all__ = ["RawSources", "make_raw_sources", "SOURCES"]
