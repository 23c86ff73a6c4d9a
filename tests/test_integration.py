"""Integration: merging the click and behaviour logs, sessions, item and member joins."""

import numpy as np
import pandas as pd
import pytest

from recsys_utils.data.cleaning import clean_sources
from recsys_utils.data.integration import (
    EPOCH,
    attach_items,
    attach_members,
    integrate,
    merge_logs,
    session_table,
    sessionise,
)
from recsys_utils.data.world import WorldConfig, load_marketplace

T0 = pd.Timestamp("2024-03-04 10:00:00")


def _ms(t: pd.Timestamp) -> int:
    return (t - EPOCH) // pd.Timedelta(milliseconds=1)


@pytest.fixture
def logs():
    clicks = pd.DataFrame({
        "ts_ms": [_ms(T0), _ms(T0 + pd.Timedelta("1min")), _ms(T0 + pd.Timedelta("5min")),
                  _ms(T0 + pd.Timedelta("2h"))],
        "user_id": pd.array([1, 1, 2, 1], dtype="Int64"),
        "item_id": [10, 11, 10, 12],
        "device": ["app", "app", "desktop", "mobile_web"],
    })
    behaviour = pd.DataFrame({
        "event_time": [T0 + pd.Timedelta("90s"), T0 + pd.Timedelta("6min"), T0 + pd.Timedelta("3min")],
        "user_id": [1, 2, 1],
        "item_id": [11, 10, 11],
        "event_type": ["add_to_cart", "favorite", "purchase"],
        "order_id": pd.array([pd.NA, pd.NA, 7001], dtype="Int64"),
        "quantity": pd.array([pd.NA, pd.NA, 2], dtype="Int64"),
        "unit_price": [np.nan, np.nan, 9.99],
    })
    return clicks, behaviour


def test_merge_logs_time_order_and_devices(logs):
    clicks, behaviour = logs
    events = merge_logs(clicks, behaviour)
    assert len(events) == len(clicks) + len(behaviour)
    assert events["timestamp"].is_monotonic_increasing
    assert events["event"].tolist() == ["view", "view", "add_to_cart", "purchase", "view", "favorite", "view"]
    # a behaviour event takes the device of the user's latest page view before it
    assert events.loc[events["event"] == "add_to_cart", "device"].item() == "app"
    assert events.loc[events["event"] == "favorite", "device"].item() == "desktop"
    buy = events[events["event"] == "purchase"].iloc[0]
    assert buy["quantity"] == 2 and buy["price"] == 9.99 and buy["order_id"] == 7001
    assert set(events["source"]) == {"click_log", "behaviour_log"}


def test_merge_logs_errors(logs):
    clicks, behaviour = logs
    with pytest.raises(ValueError, match="without user_id"):
        merge_logs(clicks.assign(user_id=pd.array([1, None, 2, 1], dtype="Int64")), behaviour)
    with pytest.raises(KeyError, match=r"merge_logs\(clicks\): missing column"):
        merge_logs(clicks.drop(columns="ts_ms"), behaviour)
    with pytest.raises(TypeError, match="expected a DataFrame"):
        merge_logs(clicks, None)


def test_sessionise_hand_case(logs):
    events = sessionise(merge_logs(*logs))
    # user 1: views at 0, 1 min, cart 1.5 min, purchase 3 min (one session), view at 2 h (a second one)
    # user 2: view 5 min, favourite 6 min (one session); ids follow (user, session start)
    by = events.set_index(["user_id", "event"])["session_id"]
    assert by.loc[(1, "purchase")] == 1 and by.loc[(1, "add_to_cart")] == 1
    assert sorted(events.loc[events["user_id"] == 1, "session_id"].unique()) == [1, 2]
    assert set(events.loc[events["user_id"] == 2, "session_id"]) == {3}
    assert list(events.columns).index("session_id") == list(events.columns).index("event") + 1
    # a 2-hour gap rule merges user 1's sessions
    assert events.pipe(sessionise, gap=pd.Timedelta(hours=3))["session_id"].nunique() == 2
    with pytest.raises(ValueError, match="gap must be positive"):
        sessionise(events, gap=pd.Timedelta(0))


def test_sessionise_matches_a_loop():
    rng = np.random.default_rng(1)
    n = 400
    frame = pd.DataFrame({"user_id": rng.integers(0, 20, n),
                          "timestamp": T0 + pd.to_timedelta(rng.integers(0, 3 * 86400, n), unit="s"),
                          "event": "view"})
    out = sessionise(frame, gap=pd.Timedelta(minutes=30))
    # independent implementation: walk each user's sorted times
    expected = {}
    next_id = 0
    for user in sorted(frame["user_id"].unique()):
        rows = frame[frame["user_id"] == user].sort_values("timestamp", kind="stable")
        last = None
        for idx, t in rows["timestamp"].items():
            if last is None or t - last > pd.Timedelta(minutes=30):
                next_id += 1
            expected[idx] = next_id
            last = t
    assert out["session_id"].to_dict() == expected


def test_session_table(logs):
    table = session_table(sessionise(merge_logs(*logs)))
    assert table.loc[1, "events"] == 4 and table.loc[1, "minutes"] == pytest.approx(3.0)
    assert table.loc[1, "purchase"] == 1 and table.loc[3, "favorite"] == 1


def test_attach_items_and_members(logs):
    events = merge_logs(*logs)
    catalogue = pd.DataFrame({"item_id": [10, 11, 12], "title": ["a", "b", "c"],
                              "category_path": ["Home > Kitchen", "Home > Bath", "Sports > Tents"],
                              "brand": ["x", "y", "z"], "price": [1.0, 2.0, 3.0]})
    joined = attach_items(events, catalogue)
    assert len(joined) == len(events)
    assert joined.loc[joined["item_id"] == 12, "top_category"].eq("Sports").all()
    assert joined.loc[joined["item_id"] == 11, "list_price"].eq(2.0).all()
    with pytest.raises(ValueError, match="repeated item_id"):
        attach_items(events, pd.concat([catalogue, catalogue.iloc[:1]]))
    with pytest.raises(KeyError, match="not in the catalogue"):
        attach_items(events, catalogue.iloc[:2])
    members = pd.DataFrame({"member_id": [1, 2], "gender": ["F", "M"], "city": ["Beijing", "Wuhan"]})
    with_members = attach_members(joined, members)
    assert with_members.loc[with_members["user_id"] == 2, "city"].eq("Wuhan").all()
    assert len(with_members) == len(events)
    with pytest.raises(ValueError, match="repeated member ids"):
        attach_members(joined, pd.concat([members, members]))


def test_integrate_on_the_marketplace():
    world = load_marketplace(WorldConfig(n_users=600, n_items=300, n_weeks=4))
    result = clean_sources(world.raw)
    events = integrate(result)
    assert len(events) == len(result["click_log"]) + len(result["behaviour_log"])
    assert events["timestamp"].is_monotonic_increasing
    assert events[["title", "category", "brand", "gender", "city"]].notna().all().all()
    # sessions rebuilt from a 30-minute gap are close to the world's own sessions
    ours = events.groupby("user_id")["session_id"].nunique().sum()
    truth = world.interactions.groupby("user_id")["session_id"].nunique().sum()
    assert 0.85 * truth <= ours <= 1.05 * truth
