"""The raw company sources of the simulated marketplace and their truth table."""

import numpy as np
import pandas as pd
import pytest

from recsys_utils.data.raw_logs import SKEW_HOURS, SKEW_SERVER
from recsys_utils.data.raw_sources import SOURCES, make_raw_sources
from recsys_utils.data.world import WorldConfig, load_marketplace

CONFIG = WorldConfig(n_users=600, n_items=300, n_weeks=4)


@pytest.fixture(scope="module")
def world():
    return load_marketplace(CONFIG)


@pytest.fixture(scope="module")
def raw(world):
    return world.raw


def test_tables_and_columns(raw):
    assert list(raw.members.columns) == ["member_id", "nickname", "email", "signup_time", "birth_year",
                                         "gender", "city", "member_level"]
    assert list(raw.behaviour_log.columns) == ["log_id", "user_id", "item_id", "event_type", "event_time",
                                               "order_id", "quantity", "unit_price"]
    assert list(raw.click_log.columns) == ["request_id", "ts_ms", "user_id", "item_id", "server_id",
                                           "user_agent", "ip", "device"]
    assert list(raw.catalogue.columns) == ["item_id", "title", "category_path", "brand", "price",
                                           "launch_date", "status"]
    assert raw.click_log["ts_ms"].dtype == np.int64  # epoch ms, unlike the behaviour log's datetimes
    assert pd.api.types.is_datetime64_any_dtype(raw.behaviour_log["event_time"])
    assert set(raw.behaviour_log["event_type"]) == {"favorite", "add_to_cart", "purchase", "cancel"}


def test_deterministic(world):
    again = make_raw_sources(world)
    for name in SOURCES:
        pd.testing.assert_frame_equal(getattr(again, name), getattr(world.raw, name))
    pd.testing.assert_frame_equal(again.truth, world.raw.truth)


def test_truth_is_consistent(raw):
    truth = raw.truth
    assert set(truth["action"]) == {"drop", "fix"}
    assert set(truth["source"]) == set(SOURCES)
    for name in SOURCES:
        t = truth[truth["source"] == name]
        frame = getattr(raw, name)
        assert t["row"].isin(frame.index).all(), name
        drops = t.loc[t["action"] == "drop", "row"]
        assert drops.is_unique, name
        assert not t.loc[t["action"] == "fix", "row"].isin(drops).any(), name
        assert not t.duplicated(["row", "reason"]).any(), name


def test_rows_not_dropped_are_the_clean_view(world, raw):
    drop = raw.truth[raw.truth["action"] == "drop"]
    kept = {name: getattr(raw, name).drop(index=drop.loc[drop["source"] == name, "row"]) for name in SOURCES}
    x = world.interactions
    assert len(kept["click_log"]) == int((x["event"] == "view").sum())
    assert len(kept["behaviour_log"]) == int((x["event"] != "view").sum())
    assert len(kept["members"]) == len(world.users)
    assert len(kept["catalogue"]) == len(world.items)
    # views with their true time: skewed rows move back by the known offset
    clicks = kept["click_log"].copy()
    skew = raw.truth[(raw.truth["source"] == "click_log") & (raw.truth["reason"] == "clock_skew")]["row"]
    assert (clicks.loc[skew, "server_id"] == SKEW_SERVER).all() and len(skew) > 0
    clicks.loc[skew, "ts_ms"] -= SKEW_HOURS * 3_600_000
    views = x[x["event"] == "view"]
    true_ms = views["timestamp"].to_numpy().astype("datetime64[ms]").astype(np.int64)
    left = clicks[["user_id", "item_id", "ts_ms"]].astype(np.int64).sort_values(["ts_ms", "user_id", "item_id"])
    right = pd.DataFrame({"user_id": views["user_id"].to_numpy(), "item_id": views["item_id"].to_numpy(),
                          "ts_ms": true_ms}).sort_values(["ts_ms", "user_id", "item_id"])
    np.testing.assert_array_equal(left.to_numpy(), right.to_numpy())


def test_dirty_shares_are_realistic(raw):
    shares = raw.summary()["dirty_share"]
    assert (shares > 0.02).all() and (shares < 0.25).all(), shares


def test_every_defect_is_present(raw):
    counts = raw.truth_counts().set_index(["source", "reason"])["rows"]
    expected = {
        "members": ["test_account", "bot", "duplicate", "inconsistent", "missing"],
        "behaviour_log": ["test_account", "duplicate", "unknown_item", "bad_quantity", "bad_price",
                          "cancellation", "missing"],
        "click_log": ["duplicate", "bad_timestamp", "bot", "test_account", "anonymous", "unknown_item",
                      "clock_skew"],
        "catalogue": ["duplicate", "bad_price", "inconsistent", "missing"],
    }
    for source, reasons in expected.items():
        for reason in reasons:
            assert counts.get((source, reason), 0) > 0, (source, reason)


def test_cancel_records_reference_cancelled_orders(world, raw):
    log = raw.behaviour_log
    cancels = log[log["event_type"] == "cancel"]
    assert len(cancels) == len(world.cancelled)
    assert set(cancels["order_id"]) == set(world.cancelled["order_id"])
    assert (cancels["quantity"] < 0).all()
