"""Cleaning rules, the audit, scoring against the truth table, and Online Retail cleaning."""

import gzip

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import precision_score, recall_score

from recsys_utils.data.cleaning import clean_sources, cleaned_interactions
from recsys_utils.data.cleaning_audit import AuditTrail, CleaningError, audit_table, profile_table, validate_table
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
    unknown_ids,
)
from recsys_utils.data.cleaning_rules import test_accounts as find_test_accounts
from recsys_utils.data.cleaning_scores import compare_with_clean, over_cleaning, score_against_truth
from recsys_utils.data.online_retail import read_online_retail
from recsys_utils.data.retail_cleaning import clean_online_retail, is_cancellation, is_product, retail_facts
from recsys_utils.data.world import WorldConfig, load_marketplace

CONFIG = WorldConfig(n_users=600, n_items=300, n_weeks=4)


@pytest.fixture(scope="module")
def world():
    return load_marketplace(CONFIG)


@pytest.fixture(scope="module")
def result(world):
    return clean_sources(world.raw)


# ------------------------------------------------------------------------------- single rules
def test_exact_and_near_duplicates():
    t0 = pd.Timestamp("2024-03-04 10:00:00")
    frame = pd.DataFrame({
        "user_id": [1, 1, 1, 1, 2, 1],
        "item_id": [5, 5, 5, 6, 5, 5],
        "event_time": [t0, t0, t0 + pd.Timedelta("300ms"), t0 + pd.Timedelta("100ms"), t0,
                       t0 + pd.Timedelta("2s")],
    })
    np.testing.assert_array_equal(exact_duplicates(frame), [0, 1, 0, 0, 0, 0])
    near = near_duplicates(frame, ["user_id", "item_id"], "event_time", pd.Timedelta("500ms"))
    # row 1 repeats row 0 (0 ms), row 2 repeats row 1 (300 ms); row 5 is 1.7 s after row 2: a new event
    np.testing.assert_array_equal(near, [0, 1, 1, 0, 0, 0])
    eligible = np.array([1, 0, 1, 1, 1, 1], dtype=bool)  # row 1 already dropped: row 2 is 300 ms after row 0
    np.testing.assert_array_equal(
        near_duplicates(frame, ["user_id", "item_id"], "event_time", pd.Timedelta("500ms"), eligible),
        [0, 0, 1, 0, 0, 0])


def test_bot_user_agents_and_inhuman_rates():
    agents = pd.Series(["Mozilla/5.0 (Windows NT 10.0) Chrome/124.0", "Googlebot/2.1", "python-requests/2.31",
                        None, "Baiduspider/2.0", "ShopApp/5.2.1 (iPhone)"])
    np.testing.assert_array_equal(bot_user_agents(agents), [0, 1, 1, 0, 1, 0])
    # user 1: 40 requests 1 s apart (a scraper); user 2: 40 requests 40 s apart; user 3: 5 fast requests
    users = np.r_[np.full(40, 1), np.full(40, 2), np.full(5, 3)]
    times = np.r_[np.arange(40) * 1000, np.arange(40) * 40_000, np.arange(5) * 500]
    stats = inhuman_rate_accounts(pd.Series(users), pd.Series(times), max_median_gap_s=2.5, min_requests=30)
    assert stats.loc[1, "median_gap_s"] == pytest.approx(1.0)
    assert stats.loc[2, "median_gap_s"] == pytest.approx(40.0)
    assert stats["scraper"].to_dict() == {1: True, 2: False, 3: False}


def test_time_rules():
    times = pd.Series(pd.to_datetime(["1970-01-01", "2024-03-05", "2024-03-20", "2038-01-19", None]))
    bad = out_of_range_times(times, pd.Timestamp("2024-01-01"), pd.Timestamp("2024-12-31"))
    np.testing.assert_array_equal(bad, [1, 0, 0, 1, 1])
    many = pd.Series(pd.date_range("2024-03-01", periods=1000, freq="h"))
    low, high = plausible_window(many, margin=pd.Timedelta(days=1))
    assert many.min() - pd.Timedelta(days=1) <= low < many.min()
    assert many.max() < high <= many.max() + pd.Timedelta(days=1)


def test_clock_skew_found_and_corrected():
    rng = np.random.default_rng(0)
    n = 3000
    true_ms = np.sort(rng.integers(0, 10 * 86_400_000, n))
    server = rng.choice(["a", "b", "c"], n)
    skewed = (server == "b") & (true_ms > 4 * 86_400_000) & (true_ms < 6 * 86_400_000)
    frame = pd.DataFrame({"request_id": np.arange(n), "ts_ms": true_ms + skewed * 8 * 3_600_000,
                          "server_id": server})
    offset, table = estimate_clock_skew(frame)
    assert table.set_index("server_id").loc["b", "offset_hours"] == 8.0
    assert table.set_index("server_id").loc[["a", "c"], "offset_hours"].eq(0).all()
    np.testing.assert_array_equal(offset != 0, skewed)
    np.testing.assert_array_equal(frame["ts_ms"].to_numpy() - offset, true_ms)


def test_no_skew_means_no_correction():
    n = 500
    frame = pd.DataFrame({"request_id": np.arange(n), "ts_ms": np.arange(n) * 60_000,
                          "server_id": np.tile(["a", "b"], n // 2)})
    offset, _ = estimate_clock_skew(frame)
    assert not offset.any()


def test_string_rules():
    brand, changed = canonical_strings(pd.Series(["Acme", "ACME", " Acme ", "acme", "Zeta", None]))
    assert brand.tolist()[:5] == ["Acme"] * 4 + ["Zeta"] and pd.isna(brand.iloc[5])
    np.testing.assert_array_equal(changed, [0, 1, 1, 1, 0, 0])
    city, changed = canonical_strings(pd.Series(["Shanghai", "Shanghai", "shanghai", "Shanghai Shi",
                                                 " Shanghai  ", "SHANGHAI", "Beijing"]), key="city")
    assert set(city[:6]) == {"Shanghai"} and city.iloc[6] == "Beijing"
    assert changed.sum() == 4
    gender, changed, missing = canonical_gender(pd.Series(["F", "female", " F", "M", "MALE", None, "x"]))
    assert gender.tolist() == ["F", "F", "F", "M", "M", "unknown", "unknown"]
    np.testing.assert_array_equal(changed, [0, 1, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(missing, [0, 0, 0, 0, 0, 1, 0])


def test_account_and_value_rules():
    members = pd.DataFrame({"nickname": ["qa_1", "test_7", "sunnypanda", "testudo", "river"],
                            "email": ["qa_1@test.internal", "t@x.com", "a@qq.com", "b@qq.com", "c@example.com"]})
    np.testing.assert_array_equal(find_test_accounts(members), [1, 1, 0, 0, 1])
    np.testing.assert_array_equal(unknown_ids(pd.Series([1, 2, None, 4], dtype="Int64"), [1, 4]), [0, 1, 1, 0])
    q = pd.Series([1, 0, -2, 101, 100, None], dtype="Int64")
    np.testing.assert_array_equal(impossible_quantities(q, max_quantity=100), [0, 1, 1, 1, 0, 1])
    price = pd.Series([10.0, 0.0, -5.0, 600.0, 400.0, np.nan])
    ref = pd.Series([10.0, 10.0, 10.0, 10.0, np.nan, 10.0])
    np.testing.assert_array_equal(impossible_prices(price, ref, max_ratio=50), [0, 1, 1, 1, 0, 0])


def test_impute_category_from_title():
    titles = pd.Series(["Acme Tent 2", "Zeta Tent X", "Acme Light Tent", "Acme Kettle", "Zeta Kettle",
                        "Nova Kettle 3", "Nova Tent", "Zeta Kettle Pro"])
    cats = pd.Series(["Outdoor", "Outdoor", "Outdoor", "Kitchen", "Kitchen", "Kitchen", None, None])
    filled, changed = impute_category_from_title(titles, cats)
    assert filled.tolist()[-2:] == ["Outdoor", "Kitchen"]
    np.testing.assert_array_equal(changed, [0] * 6 + [1, 1])


def test_profile_table():
    frame = pd.DataFrame({"a": [1, 2, 2, None], "s": ["x", "x", None, "y"],
                          "t": pd.to_datetime(["2024-01-02", "2024-01-01", None, "2024-01-03"])})
    prof = profile_table(frame)
    assert prof.loc["a", "missing"] == 1 and prof.loc["a", "distinct"] == 2 and prof.loc["a", "most_frequent"] == 2
    assert prof.loc["a", "min"] == 1 and prof.loc["a", "max"] == 2
    assert prof.loc["s", "most_frequent"] == "x" and prof.loc["s", "min"] is None
    assert prof.loc["t", "min"] == pd.Timestamp("2024-01-01") and prof.loc["t", "missing_share"] == 0.25
    with pytest.raises(TypeError, match="expected a DataFrame"):
        profile_table([1])


# ------------------------------------------------------------------------------- the audit
def test_audit_first_reason_wins_and_balances():
    trail = AuditTrail("t", pd.RangeIndex(6))
    assert trail.drop(np.array([1, 1, 0, 0, 0, 0], bool), "a") == 2
    assert trail.drop(np.array([0, 1, 1, 0, 0, 0], bool), "b") == 1  # row 1 is already gone
    trail.fix(np.array([0, 0, 0, 1, 1, 0], bool), "f")
    trail.fix(np.array([0, 0, 0, 1, 0, 0], bool), "f")  # a second repair of row 3 counts once
    trail.drop(np.array([0, 0, 0, 0, 1, 0], bool), "c")  # a fixed row dropped later is a dropped row
    row = trail.summary()
    assert row == {"rows_in": 6, "rows_kept": 2, "rows_dropped": 4, "dropped:a": 2, "dropped:b": 1,
                   "dropped:c": 1, "fixed:f": 1}
    table = audit_table([trail])
    assert table.loc["t", "rows_in"] == 6
    with pytest.raises(ValueError, match="mask of length"):
        trail.drop(np.ones(3, bool), "x")


def test_validate_table_errors():
    schema = {"a": "integer", "t": "datetime"}
    good = pd.DataFrame({"a": [1], "t": pd.to_datetime(["2024-01-01"])})
    validate_table(good, schema, "src")
    with pytest.raises(KeyError, match="src: missing required column"):
        validate_table(good[["a"]], schema, "src")
    with pytest.raises(ValueError, match="src: the table is empty"):
        validate_table(good.iloc[:0], schema, "src")
    with pytest.raises(TypeError, match=r"src: wrong dtype.*'t'"):
        validate_table(good.assign(t="2024-01-01"), schema, "src")
    with pytest.raises(ValueError, match="repeated labels"):
        validate_table(pd.concat([good, good]), schema, "src")
    with pytest.raises(TypeError, match="expected a DataFrame"):
        validate_table([1, 2], schema, "src")


# ------------------------------------------------------------------------------- the marketplace
def test_clean_sources_leaves_its_input_alone(world):
    before = {name: pd.util.hash_pandas_object(t, index=True).sum() for name, t in world.raw.tables().items()}
    clean_sources(world.raw)
    after = {name: pd.util.hash_pandas_object(t, index=True).sum() for name, t in world.raw.tables().items()}
    assert before == after


def test_clean_sources_audit_balances(world, result):
    audit = result.audit
    dropped = audit[[c for c in audit.columns if c.startswith("dropped:")]].sum(axis=1)
    assert (audit["rows_in"] == audit["rows_kept"] + dropped).all()
    for name in ("members", "behaviour_log", "click_log", "catalogue"):
        assert audit.loc[name, "rows_in"] == len(getattr(world.raw, name))
        assert audit.loc[name, "rows_kept"] == len(result[name])
        assert len(result.dropped.query("source == @name")) == audit.loc[name, "rows_dropped"]
    assert result["catalogue"]["item_id"].is_unique and result["members"]["member_id"].is_unique
    assert (result["catalogue"]["price"] > 0).all()
    assert result["members"]["gender"].isin(["F", "M", "unknown"]).all()


def test_clean_sources_against_truth(world, result):
    score = score_against_truth(result, world.raw.truth)
    assert score.loc["overall", "precision"] >= 0.98 and score.loc["overall", "recall"] >= 0.98
    rules = score.drop(index="overall")
    assert (rules["precision"] >= 0.95).all(), rules
    assert (rules["recall"] >= 0.95).all(), rules
    assert len(rules) == world.raw.truth.groupby(["source", "reason"]).ngroups
    # the cleaned logs are (almost exactly) the world's clean interactions
    close = compare_with_clean(cleaned_interactions(result), world.interactions)
    assert close["precision"] >= 0.99 and close["recall"] >= 0.99
    assert close["purchase_price_match"] >= 0.99


def test_over_cleaning_counts_real_rows(world, result):
    default = over_cleaning(result, world.raw)
    assert default["real_rows_lost"].sum() <= 0.002 * sum(len(t) for t in world.raw.tables().values())
    # a scraper rule that flags ordinary browsing: every real row it drops is counted, with its people
    strict = clean_sources(world.raw, bot_max_median_gap_s=60.0, bot_min_requests=10)
    lost = over_cleaning(strict, world.raw).set_index(["source", "reason"])
    truth_drop = world.raw.truth.query("action == 'drop'")
    wrongly = strict.dropped.merge(truth_drop[["source", "row"]], how="left", indicator=True)
    wrongly = wrongly[wrongly["_merge"] == "left_only"]
    assert lost["real_rows_lost"].sum() == len(wrongly) > 100
    members_hit = wrongly.query("source == 'members' and reason == 'bot'")
    assert lost.loc[("members", "bot"), "real_users_hit"] == len(members_hit)


def test_score_against_truth_hand_case_and_sklearn():
    truth = pd.DataFrame({"source": "s", "row": [0, 1, 2, 5], "reason": ["dup", "dup", "bot", "bot"],
                          "action": "drop"})
    flagged = pd.DataFrame({"source": "s", "row": [0, 2, 3, 4], "reason": ["dup", "bot", "bot", "bot"],
                            "action": "drop"})
    score = score_against_truth(flagged, truth)
    assert score.loc["s/dup", ["flagged", "truth", "correct"]].tolist() == [1, 2, 1]
    assert score.loc["s/dup", "precision"] == 1.0 and score.loc["s/dup", "recall"] == 0.5
    assert score.loc["s/bot", "precision"] == pytest.approx(1 / 3) and score.loc["s/bot", "recall"] == 0.5
    # per rule, the same as scikit-learn on row indicator vectors
    rows = np.arange(6)
    y_true = np.isin(rows, [2, 5])
    y_pred = np.isin(rows, [2, 3, 4])
    assert score.loc["s/bot", "precision"] == pytest.approx(precision_score(y_true, y_pred))
    assert score.loc["s/bot", "recall"] == pytest.approx(recall_score(y_true, y_pred))
    assert score.loc["overall", "precision"] == pytest.approx(2 / 4)
    with pytest.raises(KeyError, match="lacks column"):
        score_against_truth(flagged.drop(columns="action"), truth)


def test_compare_with_clean_counts_repeats():
    t = pd.Timestamp("2024-03-04")
    clean = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [5, 5, 6], "event": "view", "timestamp": t})
    cleaned = pd.DataFrame({"user_id": [1, 2, 3], "item_id": [5, 6, 7], "event": "view", "timestamp": t})
    out = compare_with_clean(cleaned, clean)
    assert out["matched"] == 2 and out["precision"] == pytest.approx(2 / 3) and out["recall"] == pytest.approx(2 / 3)


def test_clean_sources_bad_input(world):
    raw = world.raw
    tables = raw.tables()
    with pytest.raises(KeyError, match="missing source table"):
        clean_sources({k: v for k, v in tables.items() if k != "catalogue"})
    with pytest.raises(KeyError, match="click_log: missing required column"):
        clean_sources({**tables, "click_log": tables["click_log"].drop(columns="ts_ms")})
    with pytest.raises(ValueError, match="members: the table is empty"):
        clean_sources({**tables, "members": tables["members"].iloc[:0]})
    with pytest.raises(TypeError, match="behaviour_log: wrong dtype"):
        clean_sources({**tables, "behaviour_log": tables["behaviour_log"].assign(
            event_time=tables["behaviour_log"]["event_time"].astype(str))})
    # every member a test account: nothing usable is left, and the error says why
    members = tables["members"].assign(nickname="qa_" + tables["members"]["nickname"].astype(str))
    with pytest.raises(CleaningError, match="test_account") as info:
        clean_sources({**tables, "members": members})
    assert info.value.audit.loc["members", "rows_kept"] == 0


# ------------------------------------------------------------------------------- Online Retail
def _retail_fixture() -> pd.DataFrame:
    rows = [  # InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country
        ("500001", "10001A", "RED MUG ", 6, "2011-01-03 09:00", 1.25, 12001, "United Kingdom"),
        ("500001", "10002", "BLUE  PLATE", 2, "2011-01-03 09:00", 3.50, 12001, "United Kingdom"),
        ("500001", "10002", "BLUE  PLATE", 2, "2011-01-03 09:00", 3.50, 12001, "United Kingdom"),  # duplicate
        ("500002", "10003", "GREEN BOWL", 4, "2011-01-04 10:30", 2.10, None, "France"),  # no customer
        ("C500003", "10001A", "RED MUG", -6, "2011-01-05 11:00", 1.25, 12001, "United Kingdom"),  # cancellation
        ("500004", "POST", "POSTAGE", 1, "2011-01-05 12:00", 18.0, 12002, "Germany"),  # not a product
        ("500005", "10004", "?", -3, "2011-01-06 08:00", 0.0, 12003, "United Kingdom"),  # stock adjustment
        ("500006", "10005", "YELLOW CUP", 1, "2011-01-06 08:10", 0.0, 12003, "United Kingdom"),  # free line
        ("500007", "10001a", "RED MUG", 12, "2011-01-07 14:00", 1.05, 12002, "Germany"),  # lower-case code
    ]
    cols = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID",
            "Country"]
    frame = pd.DataFrame(rows, columns=cols)
    frame["InvoiceDate"] = pd.to_datetime(frame["InvoiceDate"])
    frame["CustomerID"] = frame["CustomerID"].astype("Int64")
    return frame


def test_retail_rules_and_audit():
    raw = _retail_fixture()
    np.testing.assert_array_equal(is_cancellation(raw["InvoiceNo"]), [0, 0, 0, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(is_product(raw["StockCode"]), [1, 1, 1, 1, 1, 0, 1, 1, 1])
    result = clean_online_retail(raw)
    row = result.audit.loc["online_retail"]
    assert row["rows_in"] == 9 and row["rows_kept"] == 3
    assert {k: int(row[f"dropped:{k}"]) for k in ("missing_customer", "cancellation", "not_a_product",
                                                  "bad_quantity", "bad_price", "duplicate")} == {
        "missing_customer": 1, "cancellation": 1, "not_a_product": 1, "bad_quantity": 1, "bad_price": 1,
        "duplicate": 1}
    assert row["fixed:inconsistent"] == 3  # "RED MUG ", "BLUE  PLATE", "10001a" among the kept rows
    kept = result.frame
    assert kept["StockCode"].tolist() == ["10001A", "10002", "10001A"]
    assert kept["Description"].tolist() == ["RED MUG", "BLUE PLATE", "RED MUG"]
    assert kept["CustomerID"].dtype == np.int64
    facts = retail_facts(raw)
    assert facts["cancellation_rows"] == 1 and facts["cancellations_all_negative_quantity"]
    assert facts["missing_customer_rows"] == 1 and facts["exact_duplicate_rows"] == 1
    assert facts["negative_quantity_not_cancellation"] == 1


def test_retail_bad_input():
    raw = _retail_fixture()
    with pytest.raises(KeyError, match="online_retail: missing required column"):
        clean_online_retail(raw.drop(columns="CustomerID"))
    with pytest.raises(TypeError, match="InvoiceDate"):
        clean_online_retail(raw.assign(InvoiceDate=raw["InvoiceDate"].astype(str)))
    with pytest.raises(ValueError, match="empty"):
        clean_online_retail(raw.iloc[:0])
    with pytest.raises(CleaningError, match="missing_customer"):
        clean_online_retail(raw.assign(CustomerID=pd.array([pd.NA] * len(raw), dtype="Int64")))
    empty = clean_online_retail(raw.assign(CustomerID=pd.array([pd.NA] * len(raw), dtype="Int64")),
                                allow_empty=True)
    assert empty.audit.loc["online_retail", "dropped:missing_customer"] == len(raw) and len(empty.frame) == 0


def test_retail_from_a_file_in_the_real_format(tmp_path):
    raw = _retail_fixture()
    text = raw.assign(InvoiceDate=raw["InvoiceDate"].dt.strftime("%-m/%-d/%Y %-H:%M"))
    path = tmp_path / "online_retail.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
        text.to_csv(handle, index=False)
    result = clean_online_retail(read_online_retail(path))
    assert result.audit.loc["online_retail", "rows_in"] == len(raw)
    assert result.audit.loc["online_retail", "rows_kept"] == 3


def test_retail_missing_price_or_quantity_is_dropped_with_its_reason(tmp_path):
    """A line with no UnitPrice (or no Quantity) is never kept: bad_price / bad_quantity, in memory and from a file."""
    raw = _retail_fixture()
    raw["Quantity"] = raw["Quantity"].astype("Int64")
    raw.loc[0, "UnitPrice"] = np.nan  # a good line of a known customer, except for its price
    raw.loc[8, "Quantity"] = pd.NA
    result = clean_online_retail(raw)
    row = result.audit.loc["online_retail"]
    assert row["rows_kept"] == 1 and row["dropped:bad_price"] == 2 and row["dropped:bad_quantity"] == 2
    assert result.frame["UnitPrice"].notna().all() and result.frame["Quantity"].notna().all()
    assert result.frame["StockCode"].tolist() == ["10002"]
    dropped = result.dropped.set_index("row")["reason"]
    assert dropped[0] == "bad_price" and dropped[8] == "bad_quantity"
    # the same lines read from a file: the reader keeps the gaps (no format error), the cleaner drops them
    text = raw.assign(InvoiceDate=raw["InvoiceDate"].dt.strftime("%-m/%-d/%Y %-H:%M"))
    path = tmp_path / "gaps.csv"
    text.to_csv(path, index=False)
    read = read_online_retail(path)
    assert pd.isna(read.loc[0, "UnitPrice"]) and pd.isna(read.loc[8, "Quantity"])
    assert clean_online_retail(read).audit.loc["online_retail"].equals(row)

