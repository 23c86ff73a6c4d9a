"""Data cleaning (数据清洗) with an audit that accounts for every row.

Each rule is a small, data-driven function (it never reads the truth table) that returns a
boolean mask of rows to drop, or repaired values plus a mask of rows it changed. An
:class:`AuditTrail` applies rules in order, so each dropped row carries exactly one reason (the
first rule that caught it), and checks that ``rows_in == rows_kept + sum(dropped per reason)``.

:func:`clean_sources` cleans the four raw sources of the simulated marketplace
(:mod:`recsys_utils.data.raw_sources`); :func:`score_against_truth` scores every rule against the
world's truth table (precision and recall per rule); :func:`cleaned_interactions` turns the
cleaned logs into the course's interactions table, and :func:`compare_with_clean` says how close
it is to the world's clean view. :mod:`recsys_utils.data.retail_cleaning` reuses the same
machinery on UCI Online Retail.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import EVENT, ITEM, PRICE, PURCHASE, TIMESTAMP, USER

SOURCES = ("members", "behaviour_log", "click_log", "catalogue")
EPOCH = pd.Timestamp("1970-01-01")
#: default widths of the time-based rules
PLAUSIBLE_MARGIN = pd.Timedelta(days=7)
SKEW_MIN_OFFSET = pd.Timedelta(hours=2)
SKEW_RESOLUTION = pd.Timedelta(minutes=15)
NEAR_DUPLICATE_WINDOW = pd.Timedelta(milliseconds=500)
SESSION_GAP = pd.Timedelta(minutes=30)

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

BOT_AGENT_PATTERN = r"bot|crawl|spider|slurp|scrapy|python-requests|curl|wget|headless|httpclient|okhttp"
TEST_NICK_PATTERN = r"^(?:qa|test)[_\-]"
TEST_EMAIL_DOMAINS = ("test.internal", "example.com")
GENDER_MAP = {"f": "F", "female": "F", "woman": "F", "m": "M", "male": "M", "man": "M"}


class CleaningError(ValueError):
    """Cleaning cannot give a usable result (e.g. every row is dirty); carries the audit."""

    def __init__(self, message: str, audit: pd.DataFrame | None = None) -> None:
        super().__init__(message)
        self.audit = audit


# ------------------------------------------------------------------------------- validation
def _is_kind(series: pd.Series, kind: str) -> bool:
    dtype = series.dtype
    if kind == "integer":
        return pd.api.types.is_integer_dtype(dtype)
    if kind == "numeric":
        return pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if kind == "datetime":
        return pd.api.types.is_datetime64_any_dtype(dtype)
    if kind == "string":
        return (pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype)
                or isinstance(dtype, pd.CategoricalDtype))
    raise ValueError(f"unknown kind {kind!r}")


def validate_table(frame: pd.DataFrame, schema: Mapping[str, str], source: str) -> None:
    """Raise a clear error if ``frame`` is not a non-empty table with ``schema``'s columns and kinds.

    ``schema`` maps column names to ``"integer"``, ``"numeric"``, ``"datetime"`` or ``"string"``.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{source}: expected a DataFrame, got {type(frame).__name__}")
    missing = [c for c in schema if c not in frame.columns]
    if missing:
        raise KeyError(f"{source}: missing required column(s) {missing}; columns are {list(frame.columns)}")
    if len(frame) == 0:
        raise ValueError(f"{source}: the table is empty (0 rows): nothing to clean")
    wrong = {c: str(frame[c].dtype) for c, kind in schema.items() if not _is_kind(frame[c], kind)}
    if wrong:
        expected = {c: schema[c] for c in wrong}
        raise TypeError(f"{source}: wrong dtype for column(s) {wrong}; expected {expected}")
    if not frame.index.is_unique:
        raise ValueError(f"{source}: the index has repeated labels; reset_index() first so rows can be audited")


def profile_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per column: dtype, missing values, distinct values, most frequent value, min and max.

    The first look a data team takes at a new source: which columns are sparse, which ids repeat,
    which strings have suspiciously many spellings, which numbers have impossible ranges.
    """
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"profile_table: expected a DataFrame, got {type(frame).__name__}")
    rows = {}
    for column in frame.columns:  # one entry per column, not per row
        values = frame[column]
        top = values.value_counts(dropna=True)
        ordered = (pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)) \
            or pd.api.types.is_datetime64_any_dtype(values.dtype)
        rows[column] = {"dtype": str(values.dtype), "missing": int(values.isna().sum()),
                        "missing_share": float(values.isna().mean()) if len(values) else 0.0,
                        "distinct": int(values.nunique(dropna=True)),
                        "most_frequent": top.index[0] if len(top) else None,
                        "min": values.min() if ordered else None, "max": values.max() if ordered else None}
    return pd.DataFrame.from_dict(rows, orient="index")


# ------------------------------------------------------------------------------- the audit
class AuditTrail:
    """Rows of one source, the reason each dropped row was dropped and the fixes applied.

    ``drop(mask, reason)`` drops rows still kept (a row is dropped once, by the first rule that
    catches it); ``fix(mask, reason)`` records repairs of kept rows.
    """

    def __init__(self, source: str, index: pd.Index) -> None:
        self.source = source
        self.index = index
        self.reason = np.full(len(index), None, dtype=object)
        self.fixes: list[tuple[str, np.ndarray]] = []
        self.order: list[str] = []

    @property
    def kept(self) -> np.ndarray:
        return pd.isna(self.reason)

    def drop(self, mask, reason: str) -> int:
        """Drop the still-kept rows where ``mask`` is true; returns how many were newly dropped."""
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (len(self.index),):
            raise ValueError(f"{self.source}/{reason}: mask of length {mask.shape} for {len(self.index)} rows")
        new = mask & self.kept
        self.reason[new] = reason
        if reason not in self.order:
            self.order.append(reason)
        return int(new.sum())

    def fix(self, mask, reason: str) -> int:
        """Record that the kept rows where ``mask`` is true were repaired by rule ``reason``."""
        mask = np.asarray(mask, dtype=bool) & self.kept
        self.fixes.append((reason, self.index.to_numpy()[mask]))
        return int(mask.sum())

    def dropped_rows(self) -> pd.DataFrame:
        drop = ~self.kept
        return pd.DataFrame({"source": self.source, "row": self.index.to_numpy()[drop],
                             "reason": self.reason[drop], "action": "drop"})

    def fixed_rows(self) -> pd.DataFrame:
        frames = [pd.DataFrame({"source": self.source, "row": rows, "reason": reason, "action": "fix"})
                  for reason, rows in self.fixes]
        if not frames:
            return pd.DataFrame({"source": pd.Series(dtype=object), "row": pd.Series(dtype=np.int64),
                                 "reason": pd.Series(dtype=object), "action": pd.Series(dtype=object)})
        fixed = pd.concat(frames, ignore_index=True).drop_duplicates(["row", "reason"])
        still_kept = self.kept[self.index.get_indexer(fixed["row"].to_numpy())]  # a row fixed, then dropped: dropped
        return fixed[still_kept].reset_index(drop=True)

    def summary(self) -> dict:
        """``rows_in, rows_kept, dropped, dropped:<reason>..., fixed:<reason>...``; asserts the balance."""
        counts = pd.Series(self.reason[~self.kept]).value_counts()
        row = {"rows_in": len(self.index), "rows_kept": int(self.kept.sum()),
               "rows_dropped": int((~self.kept).sum())}
        for reason in self.order:
            row[f"dropped:{reason}"] = int(counts.get(reason, 0))
        fixed = self.fixed_rows()
        for reason, count in fixed.groupby("reason", sort=False).size().items():
            row[f"fixed:{reason}"] = int(count)  # distinct rows: a row fixed twice by one rule counts once
        dropped = sum(v for k, v in row.items() if k.startswith("dropped:"))
        if row["rows_in"] != row["rows_kept"] + dropped:
            raise RuntimeError(f"{self.source}: audit does not balance: {row['rows_in']} in != "
                               f"{row['rows_kept']} kept + {dropped} dropped")
        return row


def audit_table(trails: Iterable[AuditTrail]) -> pd.DataFrame:
    """One row per source; missing reason counts are 0. Asserts that every row balances."""
    table = pd.DataFrame({t.source: t.summary() for t in trails}).T.fillna(0).astype(np.int64)
    dropped = table[[c for c in table.columns if c.startswith("dropped:")]].sum(axis=1)
    if not ((table["rows_in"] == table["rows_kept"] + dropped).all() and (table["rows_dropped"] == dropped).all()):
        raise RuntimeError(f"audit does not balance:\n{table}")
    table.index.name = "source"
    return table


def _check_not_all_dropped(trails: Iterable[AuditTrail], audit: pd.DataFrame) -> None:
    empty = [t.source for t in trails if t.kept.sum() == 0]
    if empty:
        detail = "; ".join(
            f"{s}: " + ", ".join(f"{c.split(':', 1)[1]}={audit.loc[s, c]}" for c in audit.columns
                                 if c.startswith("dropped:") and audit.loc[s, c] > 0) for s in empty)
        raise CleaningError(f"every row of {empty} was dropped as dirty ({detail}); "
                            "check the input or loosen the rules (see .audit)", audit)


# ------------------------------------------------------------------------------- rules
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


# ------------------------------------------------------------------------------- result
@dataclass
class CleaningResult:
    """Clean tables, the audit per source and every dropped / fixed row with its reason."""

    tables: dict[str, pd.DataFrame]
    audit: pd.DataFrame
    dropped: pd.DataFrame
    fixed: pd.DataFrame
    details: dict = field(default_factory=dict)

    def __getitem__(self, source: str) -> pd.DataFrame:
        return self.tables[source]

    def flagged(self) -> pd.DataFrame:
        """Dropped and fixed rows together (``source, row, reason, action``)."""
        return pd.concat([self.dropped, self.fixed], ignore_index=True)

    def audit_long(self) -> pd.DataFrame:
        """The audit as ``source, kind (kept/dropped/fixed), reason, rows``."""
        rows = []
        for source, row in self.audit.iterrows():
            rows.append((source, "kept", "", int(row["rows_kept"])))
            for col, value in row.items():
                if ":" in col and value:
                    kind, reason = col.split(":", 1)
                    rows.append((source, kind, reason, int(value)))
        return pd.DataFrame(rows, columns=["source", "kind", "reason", "rows"])


def _as_tables(raw) -> dict[str, pd.DataFrame]:
    if isinstance(raw, Mapping):
        tables = dict(raw)
    else:
        tables = {name: getattr(raw, name, None) for name in SOURCES}
    missing = [name for name in SOURCES if tables.get(name) is None]
    if missing:
        raise KeyError(f"clean_sources: missing source table(s) {missing}; need {list(SOURCES)}")
    return tables


def clean_sources(raw, near_duplicate_window: pd.Timedelta = NEAR_DUPLICATE_WINDOW,
                  bot_max_median_gap_s: float = 2.5, bot_min_requests: int = 30,
                  max_quantity: int = 100, max_price_ratio: float = 50.0,
                  price_typo_ratio: float = 5.0) -> CleaningResult:
    """Clean the marketplace's four raw sources; see the module docstring and notebook 01.

    ``raw`` is a :class:`~recsys_utils.data.raw_sources.RawSources` or a mapping of the four
    tables. Rules run in a fixed order per source (each dropped row gets the first reason that
    applies); the audit balances exactly (asserted). Raises a clear error for a missing table,
    missing columns, wrong dtypes or empty tables, and :class:`CleaningError` when every row of
    a source would be dropped.
    """
    tables = _as_tables(raw)
    for name in SOURCES:
        validate_table(tables[name], SCHEMAS[name], name)
    members, behaviour = tables["members"], tables["behaviour_log"]
    clicks, catalogue = tables["click_log"], tables["catalogue"]
    trails = {name: AuditTrail(name, tables[name].index) for name in SOURCES}
    details: dict = {}

    # ---- catalogue: duplicates, then repairs of kept rows
    cat_t = trails["catalogue"]
    cat_t.drop(exact_duplicates(catalogue), "duplicate")
    cat_t.drop(catalogue[ITEM].duplicated(keep="first").to_numpy(), "duplicate")
    cat = catalogue.copy()
    brand, changed = canonical_strings(cat["brand"])
    cat["brand"] = brand
    cat_t.fix(changed, "inconsistent")
    category, filled = impute_category_from_title(cat["title"], cat["category_path"])
    cat["category_path"] = category
    cat_t.fix(filled, "missing")
    known_items = cat.loc[cat_t.kept, ITEM]

    # ---- members: test accounts and re-synced duplicates (scrapers are found in the click log)
    mem_t = trails["members"]
    test_ids = members.loc[test_accounts(members), "member_id"]
    mem_t.drop(members["member_id"].isin(test_ids).to_numpy(), "test_account")
    mem_t.drop(members["member_id"].duplicated(keep="first").to_numpy(), "duplicate")

    # ---- click log
    clk_t = trails["click_log"]
    clk_t.drop(exact_duplicates(clicks), "duplicate")
    when = EPOCH + pd.to_timedelta(clicks["ts_ms"], unit="ms")
    low, high = plausible_window(when[clk_t.kept])
    clk_t.drop(out_of_range_times(when, low, high), "bad_timestamp")
    details["time_window"] = (low, high)
    clock_reference = clk_t.kept.copy()
    clk_t.drop(bot_user_agents(clicks["user_agent"]), "bot")
    rates = inhuman_rate_accounts(clicks.loc[clk_t.kept, USER], clicks.loc[clk_t.kept, "ts_ms"],
                                  bot_max_median_gap_s, bot_min_requests)
    scraper_ids = rates.index[rates["scraper"]]
    details["request_rates"] = rates
    clk_t.drop(clicks[USER].isin(scraper_ids).fillna(False).to_numpy(bool), "bot")
    clk_t.drop(clicks[USER].isin(test_ids).fillna(False).to_numpy(bool), "test_account")
    clk_t.drop(clicks[USER].isna().to_numpy(), "anonymous")
    clk_t.drop(unknown_ids(clicks[ITEM], known_items), "unknown_item")
    mem_t.drop(members["member_id"].isin(scraper_ids).to_numpy(), "bot")
    known_users = members.loc[mem_t.kept, "member_id"]
    clk_t.drop(unknown_ids(clicks[USER], known_users), "unknown_user")
    offset, skew = estimate_clock_skew(clicks, reference=clock_reference)
    details["clock_skew"] = skew
    clk = clicks.copy()
    clk["ts_ms"] = clk["ts_ms"].to_numpy() - offset
    clk_t.fix(offset != 0, "clock_skew")

    # ---- behaviour log
    beh_t = trails["behaviour_log"]
    beh_t.drop(exact_duplicates(behaviour), "duplicate")
    keys = [USER, ITEM, "event_type", "order_id"]
    beh_t.drop(near_duplicates(behaviour, keys, "event_time", near_duplicate_window, beh_t.kept), "duplicate")
    beh_t.drop(behaviour[USER].isin(test_ids).to_numpy(), "test_account")
    beh_t.drop(unknown_ids(behaviour[ITEM], known_items), "unknown_item")
    beh_t.drop(unknown_ids(behaviour[USER], known_users), "unknown_user")
    event = behaviour["event_type"].astype("string").str.strip().str.lower()
    is_cancel = (event == "cancel").fillna(False).to_numpy(bool)
    is_buy = (event == PURCHASE).fillna(False).to_numpy(bool)
    beh_t.drop(is_buy & impossible_quantities(behaviour["quantity"], max_quantity), "bad_quantity")
    list_price = cat.loc[cat_t.kept].set_index(ITEM)[PRICE]
    median_paid = behaviour.loc[beh_t.kept & is_buy].groupby(ITEM)["unit_price"].median()
    reference = list_price.where(list_price > 0).fillna(median_paid.reindex(list_price.index))
    beh_t.drop(is_buy & impossible_prices(behaviour["unit_price"], reference.reindex(behaviour[ITEM]),
                                          max_price_ratio), "bad_price")
    cancelled_orders = behaviour.loc[is_cancel, "order_id"].dropna()
    beh_t.drop(is_cancel | (is_buy & behaviour["order_id"].isin(cancelled_orders).fillna(False).to_numpy(bool)),
               "cancellation")
    beh_t.drop(~(event.isin(["favorite", "add_to_cart", PURCHASE, "cancel"]).fillna(False).to_numpy(bool)),
               "unknown_event")

    ordered = [trails[name] for name in SOURCES]
    _check_not_all_dropped(ordered, audit_table(ordered))  # before repairs that need kept rows

    # ---- catalogue prices: repaired from what customers paid (kept purchases), then the category
    paid = behaviour.loc[beh_t.kept & is_buy].groupby(ITEM)["unit_price"].max()
    paid_ref = paid.reindex(cat[ITEM]).to_numpy()
    price = cat[PRICE].to_numpy().astype(float).copy()
    positive = cat_t.kept & (price > 0)
    group = cat.loc[positive].groupby(["brand", "category_path"])[PRICE]
    group_median = group.median()[group.size() >= 3]
    brand_ref = group_median.reindex(pd.MultiIndex.from_frame(cat[["brand", "category_path"]])).to_numpy()
    category_median = cat.loc[positive].groupby("category_path")[PRICE].median()
    cat_ref = category_median.reindex(cat["category_path"]).to_numpy()
    ref = np.where(np.isfinite(paid_ref), paid_ref, np.where(np.isfinite(brand_ref), brand_ref, cat_ref))
    nonpositive = ~(price > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        typo = (price > 0) & (price > price_typo_ratio * ref)
    price = np.where(nonpositive, ref, np.where(typo, np.round(price / 10, 2), price))
    cat[PRICE] = price
    cat_t.fix(nonpositive | typo, "bad_price")
    list_price = cat.loc[cat_t.kept].set_index(ITEM)[PRICE]

    # ---- members: repairs
    mem = members.copy()
    gender, changed, missing_gender = canonical_gender(mem["gender"])
    mem["gender"] = gender
    mem_t.fix(changed, "inconsistent")
    city, changed = canonical_strings(mem["city"], key="city")
    mem["city"] = city
    mem_t.fix(changed, "inconsistent")
    year = pd.to_numeric(mem["birth_year"], errors="coerce")
    missing_year = year.isna().to_numpy()
    mem["birth_year_imputed"] = missing_year
    mem["birth_year"] = year.fillna(np.round(year[mem_t.kept].median())).astype("Int64")
    mem_t.fix(missing_year | missing_gender, "missing")

    # ---- behaviour: restore missing unit prices from the repaired catalogue
    beh = behaviour.copy()
    no_price = is_buy & beh["unit_price"].isna().to_numpy()
    beh.loc[no_price, "unit_price"] = list_price.reindex(beh.loc[no_price, ITEM]).to_numpy()
    beh["event_type"] = event
    beh_t.fix(no_price, "missing")

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


# ------------------------------------------------------------------------------- scoring
def score_against_truth(result: CleaningResult | pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """Precision and recall of every rule against the truth table, plus an ``overall`` row.

    A rule is a (source, reason) pair; a flagged row counts as correct when the truth names the
    same row of the same source with the same reason and action. Rows per rule: ``flagged``,
    ``truth``, ``correct``, ``precision``, ``recall`` (1.0 when there is nothing to find or flag).
    """
    flagged = result.flagged() if isinstance(result, CleaningResult) else result
    cols = ["source", "row", "reason", "action"]
    for name, frame in (("result", flagged), ("truth", truth)):
        missing = [c for c in cols if c not in frame.columns]
        if missing:
            raise KeyError(f"score_against_truth: {name} lacks column(s) {missing}")
    f = flagged[cols].drop_duplicates().assign(_f=True)
    t = truth[cols].drop_duplicates().assign(_t=True)
    both = f.merge(t, on=cols, how="outer")
    both["_f"] = both["_f"].fillna(False).astype(bool)
    both["_t"] = both["_t"].fillna(False).astype(bool)
    both["rule"] = both["source"] + "/" + both["reason"]
    g = both.groupby(["rule", "source", "reason", "action"])
    table = pd.DataFrame({"flagged": g["_f"].sum(), "truth": g["_t"].sum(),
                          "correct": g.apply(lambda d: int((d["_f"] & d["_t"]).sum()), include_groups=False)})
    table = table.reset_index().set_index("rule")
    overall = table[["flagged", "truth", "correct"]].sum()
    table.loc["overall", ["flagged", "truth", "correct"]] = overall.to_numpy()
    table.loc["overall", ["source", "reason", "action"]] = ["all", "all", "all"]
    with np.errstate(invalid="ignore", divide="ignore"):
        table["precision"] = np.where(table["flagged"] > 0, table["correct"] / table["flagged"], 1.0)
        table["recall"] = np.where(table["truth"] > 0, table["correct"] / table["truth"], 1.0)
    for col in ("flagged", "truth", "correct"):
        table[col] = table[col].astype(np.int64)
    return table


#: the column that names the person behind a row of each source (the catalogue has none)
PERSON_COLUMN = {"members": "member_id", "behaviour_log": USER, "click_log": USER}


def over_cleaning(result: CleaningResult, raw) -> pd.DataFrame:
    """What over-cleaning cost: dropped rows the truth says were real, per source and reason.

    ``raw`` is the :class:`~recsys_utils.data.raw_sources.RawSources` that was cleaned (its
    ``truth`` table and tables). Columns: ``source, reason, real_rows_lost`` and
    ``real_users_hit`` (distinct people those rows belong to; 0 for the catalogue).
    """
    truth = raw.truth
    real_drop = truth.loc[truth["action"] == "drop", ["source", "row"]].assign(_dirty=True)
    lost = result.dropped.merge(real_drop, on=["source", "row"], how="left")
    lost = lost[lost["_dirty"].isna()].drop(columns="_dirty")
    rows = []
    for (source, reason), part in lost.groupby(["source", "reason"], sort=True):
        column = PERSON_COLUMN.get(source)
        people = 0
        if column is not None:
            people = int(getattr(raw, source).loc[part["row"].to_numpy(), column].nunique(dropna=True))
        rows.append({"source": source, "reason": reason, "real_rows_lost": len(part), "real_users_hit": people})
    return pd.DataFrame(rows, columns=["source", "reason", "real_rows_lost", "real_users_hit"])


# ------------------------------------------------------------------------------- interactions
def cleaned_interactions(result: CleaningResult, session_gap: pd.Timedelta = SESSION_GAP
                         ) -> pd.DataFrame:
    """The cleaned logs as the course's interactions table (like ``world.interactions``).

    Views come from the click log, favourites / carts / purchases from the behaviour log, merged
    in time order and split into sessions per user (see :mod:`recsys_utils.data.integration`).
    """
    from recsys_utils.data.integration import merge_logs, sessionise

    return sessionise(merge_logs(result["click_log"], result["behaviour_log"]), gap=session_gap)


def compare_with_clean(cleaned: pd.DataFrame, clean: pd.DataFrame,
                       keys: tuple[str, ...] = (USER, ITEM, EVENT, TIMESTAMP)) -> dict[str, float]:
    """How close a cleaned table is to the clean view: rows matched on ``keys`` both ways.

    Returns ``rows_cleaned``, ``rows_clean``, ``matched``, ``precision`` (share of cleaned rows
    that are real) and ``recall`` (share of real rows recovered), counting repeats (multisets).
    """
    keys = list(keys)
    a = cleaned[keys].copy()
    b = clean[keys].copy()
    a["_n"] = a.groupby(keys, sort=False).cumcount()
    b["_n"] = b.groupby(keys, sort=False).cumcount()
    matched = len(a.merge(b, on=keys + ["_n"], how="inner"))
    out = {"rows_cleaned": len(a), "rows_clean": len(b), "matched": matched,
           "precision": matched / max(len(a), 1), "recall": matched / max(len(b), 1)}
    if PRICE in cleaned.columns and PRICE in clean.columns:
        buy_a = cleaned[cleaned[EVENT] == PURCHASE]
        buy_b = clean[clean[EVENT] == PURCHASE]
        m = buy_a.merge(buy_b, on=keys, suffixes=("", "_clean"))
        out["purchase_price_match"] = float(np.isclose(m[PRICE], m[f"{PRICE}_clean"]).mean()) if len(m) else 1.0
    return out


def views_per_rule(result: CleaningResult) -> pd.Series:
    """Dropped click-log rows per reason (what each rule removed from the view stream)."""
    return result.dropped[result.dropped["source"] == "click_log"]["reason"].value_counts()


__all__ = [
    "AuditTrail", "CleaningError", "CleaningResult", "SCHEMAS", "audit_table", "bot_user_agents",
    "canonical_gender", "canonical_strings", "clean_sources", "cleaned_interactions", "compare_with_clean",
    "estimate_clock_skew", "exact_duplicates", "impossible_prices", "impossible_quantities",
    "impute_category_from_title", "inhuman_rate_accounts", "near_duplicates", "out_of_range_times", "over_cleaning",
    "plausible_window", "profile_table", "score_against_truth", "test_accounts", "unknown_ids", "validate_table",
]
