"""Data-driven cleaning rules: each returns a mask of rows to drop, or repaired values and a changed mask.

No rule reads a truth table. Duplicates (exact, and near retries within a time window), crawler
user agents, accounts requesting pages at an inhuman rate, timestamps outside a plausible window,
a server's clock skew (estimated from request order), unknown ids, spelling variants, QA
accounts, impossible quantities and prices, and categories imputed from title words.
:func:`recsys_utils.data.cleaning.clean_sources` runs them in order on the marketplace's sources.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import USER

#: default widths of the time-based rules
PLAUSIBLE_MARGIN = pd.Timedelta(days=7)
SKEW_MIN_OFFSET = pd.Timedelta(hours=2)
SKEW_RESOLUTION = pd.Timedelta(minutes=15)
BOT_AGENT_PATTERN = r"bot|crawl|spider|slurp|scrapy|python-requests|curl|wget|headless|httpclient|okhttp"
TEST_NICK_PATTERN = r"^(?:qa|test)[_\-]"
TEST_EMAIL_DOMAINS = ("test.internal", "example.com")
GENDER_MAP = {"f": "F", "female": "F", "woman": "F", "m": "M", "male": "M", "man": "M"}


def exact_duplicates(frame: pd.DataFrame, subset: list[str] | None = None) -> np.ndarray:
    """Rows identical to an earlier row (logging retries); the first copy is kept."""
    return frame.duplicated(subset=subset, keep="first").to_numpy()


def near_duplicates(frame: pd.DataFrame, keys: list[str], time: str, window: pd.Timedelta,
                    eligible: np.ndarray | None = None) -> np.ndarray:
    """Rows repeating the same ``keys`` less than ``window`` after the previous such row.

    A retry that got a new id and a slightly later timestamp is not an exact duplicate, but the
    same user does not favourite the same item twice within half a second. Only ``eligible`` rows are
    compared (default: all).
    """
    eligible = np.ones(len(frame), dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    pos = np.flatnonzero(eligible)
    sub = frame.iloc[pos]
    key_code = sub.groupby(keys, dropna=False, sort=False).ngroup().to_numpy()
    t = pd.to_datetime(sub[time]).to_numpy().astype("datetime64[ns]").astype(np.int64)
    order = np.lexsort((np.arange(len(pos)), t, key_code))
    same = np.zeros(len(pos), dtype=bool)
    same[1:] = (key_code[order][1:] == key_code[order][:-1]) & (np.diff(t[order]) < window.value)
    out = np.zeros(len(frame), dtype=bool)
    out[pos[order[same]]] = True
    return out


def bot_user_agents(agents: pd.Series, pattern: str = BOT_AGENT_PATTERN) -> np.ndarray:
    """Requests whose user agent names a crawler, a script or a headless browser.

    A log has millions of rows but a few hundred distinct agents: each distinct string is tested once.
    """
    codes, distinct = pd.factorize(agents.astype("string"), use_na_sentinel=True)
    is_bot = pd.Series(distinct, dtype="string").str.contains(pattern, case=False, regex=True)
    lookup = np.append(is_bot.fillna(False).to_numpy(bool), False)  # code -1 (missing) -> not a bot
    return lookup[codes]


def inhuman_rate_accounts(users: pd.Series, times_ms: pd.Series, max_median_gap_s: float = 2.5,
                          min_requests: int = 30) -> pd.DataFrame:
    """Per account: requests, median gap between consecutive requests, and whether it is a scraper.

    People read a product page for tens of seconds; a scraper behind a browser user agent asks
    for a page every second or two, for hours. An account is flagged when it has at least
    ``min_requests`` requests and a median gap below ``max_median_gap_s``.
    """
    frame = pd.DataFrame({"u": users.to_numpy(), "t": times_ms.to_numpy()}).dropna()
    frame = frame.sort_values(["u", "t"], kind="stable")
    u = frame["u"].to_numpy()
    gap = np.diff(frame["t"].to_numpy().astype(np.float64), prepend=np.nan) / 1000.0
    gap[np.r_[True, u[1:] != u[:-1]]] = np.nan
    stats = pd.DataFrame({"u": u, "gap": gap}).groupby("u").agg(requests=("gap", "size"),
                                                                median_gap_s=("gap", "median"))
    stats["scraper"] = (stats["requests"] >= min_requests) & (stats["median_gap_s"] < max_median_gap_s)
    stats.index.name = USER
    return stats


def out_of_range_times(times: pd.Series, low: pd.Timestamp, high: pd.Timestamp) -> np.ndarray:
    """Timestamps outside ``[low, high]`` (epoch 0, the 2038 overflow, dates in the future)."""
    t = pd.to_datetime(times)
    return (t.isna() | (t < low) | (t > high)).to_numpy()


def plausible_window(times: pd.Series, margin: pd.Timedelta = PLAUSIBLE_MARGIN) -> tuple:
    """A data-driven valid time range: the 0.5% and 99.5% quantiles widened by ``margin``."""
    t = pd.to_datetime(times)
    return t.quantile(0.005) - margin, t.quantile(0.995) + margin


def estimate_clock_skew(frame: pd.DataFrame, time_ms: str = "ts_ms", order: str = "request_id",
                        server: str = "server_id", reference: np.ndarray | None = None,
                        min_offset: pd.Timedelta = SKEW_MIN_OFFSET,
                        resolution: pd.Timedelta = SKEW_RESOLUTION, min_rows: int = 20
                        ) -> tuple[np.ndarray, pd.DataFrame]:
    """Per-row clock offsets (ms) of servers whose clock disagrees with the others.

    Request ids are issued in arrival order by the load balancer, so they order requests in
    true time. For each server, the expected time of its requests is interpolated from the
    other servers' (request id, time) pairs; a server whose residuals sit far from zero (more
    than ``min_offset``) for at least ``min_rows`` requests has a skewed clock. Its offset is the
    median residual rounded to ``resolution`` (clock errors are usually whole time zones), and
    each of its rows is corrected when the offset explains its residual better than no offset.
    ``reference`` marks the rows whose times are judged and serve as a reference (default all;
    leave out duplicates and impossible timestamps).
    """
    reference = np.ones(len(frame), dtype=bool) if reference is None else np.asarray(reference, dtype=bool)
    ts = frame[time_ms].to_numpy().astype(np.float64)
    key = frame[order].to_numpy().astype(np.float64)
    srv = frame[server].astype("string").to_numpy()
    names = pd.unique(srv)
    offset = np.zeros(len(frame), dtype=np.int64)
    step = resolution.value / 1e6
    limit = min_offset.value / 1e6
    found: dict[str, float] = {}

    cache: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}

    def residuals(name: str) -> tuple[np.ndarray, np.ndarray]:
        key_now = (name, len(found))  # offsets change only when a server is found
        if key_now not in cache:
            cache[key_now] = _residuals(name)
        return cache[key_now]

    def _residuals(name: str) -> tuple[np.ndarray, np.ndarray]:
        mine = (srv == name) & reference
        ref = reference & (srv != name)
        if ref.sum() < 2 or not mine.any():
            return np.zeros(int(mine.sum())), np.zeros(int(mine.sum()), dtype=bool)
        corrected = ts - offset
        order_ref = np.argsort(key[ref], kind="stable")
        ref_key = key[ref][order_ref]
        ref_ts = pd.Series(corrected[ref][order_ref]).rolling(9, center=True, min_periods=1).median().to_numpy()
        residual = corrected[mine] - np.interp(key[mine], ref_key, ref_ts)
        # judge only where the reference is dense: the bracketing reference requests are close in time
        right = np.clip(np.searchsorted(ref_key, key[mine]), 1, len(ref_key) - 1)
        dense = np.abs(ref_ts[right] - ref_ts[right - 1]) < limit / 2
        return residual, dense & (np.abs(residual) > limit)

    for _ in range(len(names)):  # the worst server first, then look again with it corrected
        far_counts = {name: int(residuals(name)[1].sum()) for name in names if name not in found}
        if not far_counts:
            break
        worst = max(far_counts, key=far_counts.get)
        if far_counts[worst] < min_rows:
            break
        residual, far = residuals(worst)
        candidate = int(np.round(np.median(residual[far]) / step) * step)
        if np.mean(np.abs(residual[far] - candidate) < limit / 2) < 0.8 or candidate == 0:
            break
        apply = far & (np.abs(residual - candidate) < np.abs(residual))
        offset[np.flatnonzero((srv == worst) & reference)[apply]] = candidate
        found[worst] = candidate
    rows = []
    for name in names:
        residual, far = residuals(name) if name not in found else (None, None)
        mine = srv == name
        rows.append({server: name, "rows": int(mine.sum()),
                     "rows_far_after": 0 if far is None else int(far.sum()),
                     "offset_hours": found.get(name, 0) / 3.6e6,
                     "rows_corrected": int((offset[mine] != 0).sum())})
    return offset, pd.DataFrame(rows).sort_values(server).reset_index(drop=True)


def unknown_ids(values: pd.Series, known) -> np.ndarray:
    """Ids that are missing or not in ``known`` (deleted items, broken links)."""
    return (~values.isin(pd.Index(known))).to_numpy() | values.isna().to_numpy()


def canonical_strings(values: pd.Series, key: str = "casefold") -> tuple[pd.Series, np.ndarray]:
    """Map spelling variants to one canonical spelling; returns (fixed values, changed mask).

    Values are grouped by a normalised key (stripped, whitespace collapsed, case folded; with
    ``key="city"`` also without spaces and a trailing ``" shi"``); each group takes its most
    frequent stripped spelling. Missing values stay missing.
    """
    text = values.astype("string")
    stripped = text.str.strip().str.replace(r"\s+", " ", regex=True)
    norm = stripped.str.casefold()
    if key == "city":
        norm = norm.str.replace(r"\s*shi$", "", regex=True).str.replace(" ", "", regex=False)
    frame = pd.DataFrame({"norm": norm, "spelling": stripped}).dropna()
    counts = frame.groupby(["norm", "spelling"]).size().reset_index(name="n")
    counts = counts.sort_values(["norm", "n", "spelling"], ascending=[True, False, True])
    canonical = counts.drop_duplicates("norm").set_index("norm")["spelling"]
    fixed = norm.map(canonical).astype("string")
    changed = (fixed != text).fillna(False).to_numpy(bool)
    return fixed, changed


def canonical_gender(values: pd.Series, unknown: str = "unknown") -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Gender as ``F``/``M``/``unknown``; returns (values, changed spelling mask, missing mask)."""
    text = values.astype("string")
    key = text.str.strip().str.casefold()
    mapped = key.map(GENDER_MAP).astype("string")
    missing = text.isna().to_numpy()
    out = mapped.fillna(unknown)
    changed = (~missing) & (out != text).fillna(True).to_numpy(bool)
    return out, changed, missing


def test_accounts(members: pd.DataFrame, nick_pattern: str = TEST_NICK_PATTERN,
                  domains: tuple[str, ...] = TEST_EMAIL_DOMAINS) -> np.ndarray:
    """Members whose nickname starts ``qa_``/``test_`` or whose email is on an internal test domain."""
    nick = members["nickname"].astype("string").str.contains(nick_pattern, case=False, regex=True)
    domain = members["email"].astype("string").str.split("@").str[-1].str.casefold()
    return (nick.fillna(False) | domain.isin(domains).fillna(False)).to_numpy(bool)


def impossible_quantities(quantity: pd.Series, max_quantity: int = 100) -> np.ndarray:
    """Purchase quantities that cannot be true: missing, 0, negative or above ``max_quantity``."""
    q = pd.to_numeric(quantity, errors="coerce")
    return (q.isna() | (q <= 0) | (q > max_quantity)).to_numpy(bool)


def impossible_prices(price: pd.Series, reference: pd.Series, max_ratio: float = 50.0) -> np.ndarray:
    """Prices <= 0, or more than ``max_ratio`` times a reference price (missing prices are not flagged)."""
    p = pd.to_numeric(price, errors="coerce").to_numpy(float)
    ref = pd.to_numeric(reference, errors="coerce").to_numpy(float)
    with np.errstate(invalid="ignore"):
        bad = (p <= 0) | (np.isfinite(ref) & (ref > 0) & (p > max_ratio * ref))
    return np.asarray(bad & np.isfinite(p))


def impute_category_from_title(titles: pd.Series, categories: pd.Series, min_count: int = 3
                               ) -> tuple[pd.Series, np.ndarray]:
    """Fill missing categories from title words (nouns like "Tent" name a category).

    For every word, the share of known items with that word in their most common category is its
    purity; a missing category takes the category of its purest word (ties: most frequent).
    Returns (filled categories, mask of rows filled).
    """
    cats = categories.astype("string")
    words = titles.astype("string").str.split().explode()
    words = pd.DataFrame({"pos": words.index, "word": words.to_numpy()})
    pos_of_label = pd.Series(np.arange(len(titles)), index=titles.index)
    words["pos"] = pos_of_label.reindex(words["pos"]).to_numpy()
    words["cat"] = cats.to_numpy()[words["pos"].to_numpy()]
    known = words.dropna(subset=["cat"])
    table = known.groupby(["word", "cat"]).size().rename("n").reset_index()
    total = table.groupby("word")["n"].transform("sum")
    table["purity"] = table["n"] / total
    table["total"] = total
    table = table[table["total"] >= min_count].sort_values(["word", "n"], ascending=[True, False])
    best = table.drop_duplicates("word").set_index("word")
    need = words[words["cat"].isna()].join(best[["cat", "purity", "total"]].rename(columns={"cat": "guess"}),
                                           on="word")
    need = need.dropna(subset=["guess"]).sort_values(["pos", "purity", "total"], ascending=[True, False, False])
    pick = need.drop_duplicates("pos")
    filled = cats.copy()
    filled.iloc[pick["pos"].to_numpy()] = pick["guess"].to_numpy()
    changed = cats.isna().to_numpy() & filled.notna().to_numpy()
    return filled, changed


__all__ = [
    "bot_user_agents", "canonical_gender", "canonical_strings", "estimate_clock_skew", "exact_duplicates",
    "impossible_prices", "impossible_quantities", "impute_category_from_title", "inhuman_rate_accounts",
    "near_duplicates", "out_of_range_times", "plausible_window", "test_accounts", "unknown_ids",
]
