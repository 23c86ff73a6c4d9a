"""Feature modules on small cases: no leakage at a cut-off on a generated world, RFM and affinity by hand,
item features of a tiny catalogue, context dayparts and sessions, the segmentation matrix."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from recsys_utils.data.world import generate
from recsys_utils.features import (
    attribute_matrix,
    build_feature_tables,
    context_features,
    features_for_pairs,
    item_features,
    title_tfidf,
    user_profile,
)
from recsys_utils.features.segmentation import segment_portraits, segmentation_matrix

T0 = pd.Timestamp("2024-03-04 00:00")  # a Monday
DAY = pd.Timedelta(days=1)


def _t(days: float, hours: float = 0.0) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=days, hours=hours)


# ------------------------------------------------------------------ no leakage on a generated world


@pytest.fixture(scope="module")
def world():
    return generate(n_users=150, n_items=100, n_weeks=3, seed=5)


def _rewrite_future(events: pd.DataFrame, cut: pd.Timestamp, seed: int = 0) -> pd.DataFrame:
    """Every column of the rows at or after ``cut`` replaced, plus extra future rows of a new user."""
    rng = np.random.default_rng(seed)
    future = events.copy()
    late = (future.timestamp >= cut).to_numpy()
    n = int(late.sum())
    future.loc[late, "item_id"] = rng.choice(events.item_id.unique(), n)
    future.loc[late, "event"] = rng.choice(["view", "purchase", "add_to_cart"], n)
    future.loc[late, "device"] = "tv"
    future.loc[late, "price"] = 1e6
    extra = future[late].head(20).assign(user_id=events.user_id.max() + 1)
    return pd.concat([future, extra], ignore_index=True)


def test_features_at_a_cutoff_ignore_the_future(world):
    events, items, users = world.interactions, world.items, world.users
    cut = world.start + pd.Timedelta(days=10)
    assert (events.timestamp >= cut).sum() > 1000  # there is a future to ignore
    future = _rewrite_future(events, cut)
    past = events[events.timestamp < cut]
    profile = user_profile(events, items, users, at=cut)
    pd.testing.assert_frame_equal(profile, user_profile(future, items, users, at=cut))
    pd.testing.assert_frame_equal(profile, user_profile(past, items, users, at=cut))
    assert set(profile.index) == set(past.user_id)  # only users seen before the cut-off
    item_table = item_features(items, events, at=cut)
    pd.testing.assert_frame_equal(item_table, item_features(items, future, at=cut))
    assert item_table["n_events"].sum() == len(past)
    pairs = past[["user_id", "item_id"]].drop_duplicates().head(200).reset_index(drop=True)
    x = features_for_pairs(pairs, build_feature_tables(events, items, users, at=cut))
    pd.testing.assert_frame_equal(x, features_for_pairs(pairs, build_feature_tables(future, items, users, at=cut)))
    # the profile does change when the past changes: the check above is not vacuous
    rewritten_past = _rewrite_future(events, world.start + pd.Timedelta(days=5))
    assert not user_profile(rewritten_past, items, users, at=cut)["n_purchase"].equals(profile["n_purchase"])


# ------------------------------------------------------------------ RFM and affinity by hand


@pytest.fixture
def shop():
    items = pd.DataFrame({"item_id": [1, 2, 3], "category": ["X", "X", "Y"], "brand": ["p", "q", "p"],
                          "price": [10.0, 40.0, 20.0]})
    rows = [  # user, item, day, hour, event, price paid
        (1, 1, 0, 10.0, "view", np.nan),
        (1, 1, 0, 10.5, "purchase", 10.0),
        (1, 2, 0, 11.0, "purchase", 40.0),
        (1, 3, 3, 20.0, "view", np.nan),
        (1, 3, 3, 20.5, "add_to_cart", np.nan),
        (2, 3, 5, 2.0, "view", np.nan),
        (1, 2, 12, 9.0, "purchase", 40.0),  # after the cut-off
    ]
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "day", "hour", "event", "price"])
    events.insert(2, "timestamp", [_t(d, h) for d, h in zip(events.pop("day"), events.pop("hour"), strict=True)])
    return events, items


def test_rfm_affinity_and_habits_by_hand(shop):
    events, items = shop
    at = _t(10)
    p = user_profile(events, items, at=at, max_categories=1)
    u, v = p.loc[1], p.loc[2]
    assert (u["n_events"], u["n_items"], u["n_active_days"], u["events_per_active_day"]) == (5, 3, 2, 2.5)
    assert (u["n_view"], u["n_purchase"], u["n_add_to_cart"], u["conversion"]) == (2, 2, 1, 1.0)
    assert u["recency_days"] == pytest.approx(10 - (3 + 20.5 / 24))
    assert u["purchase_recency_days"] == pytest.approx(10 - 11 / 24)
    assert u["tenure_days"] == u["first_seen_days"] == pytest.approx(10 - 10 / 24)  # no sign-up dates
    # without order or session ids an order is a day with purchases: both purchases on day 0
    assert u["frequency"] == 1 and u["monetary"] == 50.0 and u["avg_order_value"] == 50.0
    # weights view 1, cart 3, purchase 5: category X 1 + 5 + 5 = 11, Y 1 + 3 = 4; only the top category is kept
    assert u["cat__X"] == pytest.approx(11 / 15) and u["cat__other"] == pytest.approx(4 / 15)
    assert u["category_entropy"] == pytest.approx(-(11 / 15 * math.log(11 / 15) + 4 / 15 * math.log(4 / 15)))
    assert u["fav_category"] == "X" and v["fav_category"] == "Y" and v["cat__other"] == 1.0
    # brands: p 6 + 4 = 10, q 5
    assert u["fav_brand"] == "p" and u["brand_share"] == pytest.approx(10 / 15) and u["n_brands"] == 2
    # relative log price: item 1 -log 2, item 2 +log 2 (around the X median), item 3 0 -> (-6 + 5) log 2 / 15
    assert u["price_index"] == pytest.approx(-math.log(2) / 15)
    assert u["avg_item_price"] == pytest.approx((10 + 10 + 40 + 20 + 20) / 5)
    assert (u["daypart__morning"], u["daypart__evening"], u["daypart__night"]) == (0.6, 0.4, 0.0)
    assert v["daypart__night"] == 1.0 and u["weekend_share"] == 0.0 and v["weekend_share"] == 1.0  # day 5: Sat
    # a user who never bought: no money, and the purchase recency is the whole observed span
    assert (v["frequency"], v["monetary"], v["conversion"]) == (0, 0.0, 0.0)
    assert v["purchase_recency_days"] == pytest.approx(10 - 10 / 24)
    assert v["peak_hour"] == pytest.approx(2.0)


def test_without_event_types_every_row_is_a_transaction(shop):
    events, _ = shop
    ratings = events[["user_id", "item_id", "timestamp"]]  # MovieLens-like: no event, no price
    p = user_profile(ratings, at=_t(10))
    assert p.loc[1, "frequency"] == 2 and p.loc[1, "monetary"] == 0.0  # two days with rows
    assert p.loc[1, "purchase_recency_days"] == p.loc[1, "recency_days"]
    assert "cat__X" not in p.columns and "conversion" not in p.columns


# ------------------------------------------------------------------ item features of a tiny catalogue


def test_item_features_of_a_tiny_catalogue():
    items = pd.DataFrame({
        "item_id": [1, 2, 3, 4],
        "title": ["Red Shoe 2024", "Blue Shoe", "Green Tea", "Black Tea"],
        "category": ["shoes", "shoes", "tea", "tea"],
        "brand": ["a", "b", "c", "c"],
        "price": [50.0, 200.0, 8.0, 2.0],
        "launch_time": [_t(-100), _t(-5), _t(-100), _t(3)],
    })
    events = pd.DataFrame({
        "user_id": [1, 2, 2, 3, 1, 1],
        "item_id": [1, 1, 1, 3, 2, 4],
        "timestamp": [_t(-20), _t(-9), _t(-2), _t(-1), _t(-3), _t(1)],
        "rating": [4.0, 2.0, 5.0, 3.0, np.nan, 1.0],
    })
    f = item_features(items, events, at=_t(0), n_price_bands=2, new_days=14, recent_days=7)
    np.testing.assert_array_equal(f["n_events"], [3, 1, 1, 0])  # the day-1 event is after the cut-off
    np.testing.assert_array_equal(f["n_users"], [2, 1, 1, 0])
    np.testing.assert_array_equal(f["recent_events"], [1, 1, 1, 0])  # only the last 7 days
    np.testing.assert_allclose(f["log_popularity"], np.log1p([3, 1, 1, 0]))
    np.testing.assert_allclose(f["popularity_pct"], [1.0, 0.625, 0.625, 0.25])  # average ranks of 4
    np.testing.assert_allclose(f["days_since_first_event"], [20, 3, 1, np.nan])
    np.testing.assert_allclose(f["age_days"], [100, 5, 100, -3])
    np.testing.assert_array_equal(f["is_new"], [0, 1, 0, 0])
    np.testing.assert_array_equal(f["available"], [1, 1, 1, 0])
    np.testing.assert_allclose(f["n_ratings"], [3, 0, 1, 0])
    np.testing.assert_allclose(f["mean_rating"], [11 / 3, np.nan, 3.0, np.nan])
    np.testing.assert_allclose(f["rel_price"], [-math.log(2), math.log(2), math.log(2), -math.log(2)])
    np.testing.assert_array_equal(f["price_band"], [0, 1, 1, 0])  # cheap or dear for its category
    # titles: letter tokens only, terms in fewer than min_df titles dropped
    _, vectorizer = title_tfidf(items, min_df=1)
    assert sorted(vectorizer.get_feature_names_out()) == ["black", "blue", "green", "red", "shoe", "tea"]
    matrix, vectorizer = title_tfidf(items, min_df=2)
    assert sorted(vectorizer.get_feature_names_out()) == ["shoe", "tea"]
    np.testing.assert_allclose(matrix.toarray(), [[1, 0], [1, 0], [0, 1], [0, 1]], atol=1e-6)
    # attribute similarity from the category alone: 1 within a category, 0 across
    only_category, names = attribute_matrix(items, weights={"title": 0, "brand": 0, "price_band": 0})
    assert names == ["category__shoes", "category__tea"]
    np.testing.assert_allclose((only_category @ only_category.T).toarray(),
                               [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], atol=1e-6)


# ------------------------------------------------------------------ context


def test_dayparts_cycle_and_weekdays_at_their_edges():
    hours = [0.0, 5.99, 6.0, 11.99, 12.0, 17.99, 18.0, 23.99]
    frame = pd.DataFrame({"user_id": np.arange(8), "timestamp": [_t(d, h) for d, h in zip(range(8), hours,
                                                                                          strict=True)]})
    c = context_features(frame)
    assert [str(x) for x in c["daypart"]] == ["night", "night", "morning", "morning", "afternoon", "afternoon",
                                              "evening", "evening"]
    assert c["weekday"].tolist() == [0, 1, 2, 3, 4, 5, 6, 0] and c["is_weekend"].tolist() == [0, 0, 0, 0, 0, 1, 1, 0]
    assert c["hour"].tolist() == [0, 5, 6, 11, 12, 17, 18, 23]
    np.testing.assert_allclose(c.loc[2, ["hour_sin", "hour_cos"]].astype(float), [1.0, 0.0], atol=1e-12)  # 6:00
    np.testing.assert_allclose(c.loc[6, ["hour_sin", "hour_cos"]].astype(float), [-1.0, 0.0], atol=1e-12)  # 18:00


def test_sessions_split_after_thirty_idle_minutes_and_keep_the_input_order():
    minutes = [0, 30, 60.5, 70, 0, 45]  # user 1: a 30-minute gap stays in the session, 30.5 starts a new one
    frame = pd.DataFrame({"user_id": [1, 1, 1, 1, 2, 2],
                          "timestamp": [_t(0, m / 60) for m in minutes]}, index=[10, 11, 12, 13, 14, 15])
    shuffled = frame.sample(frac=1.0, random_state=3)
    c = context_features(shuffled)
    assert c.index.equals(shuffled.index)
    expected = pd.DataFrame({"session_position": [0, 1, 0, 1, 0, 0],
                             "session_seconds": [0.0, 1800.0, 0.0, 570.0, 0.0, 0.0]}, index=frame.index)
    pd.testing.assert_frame_equal(c.loc[frame.index, ["session_position", "session_seconds"]], expected)
    promotions = pd.DataFrame({"start": [_t(0, 1)], "end": [_t(0, 70 / 60)]})  # [01:00, 01:10)
    flags = context_features(frame, promotions)["in_promotion"].tolist()
    assert flags == [0, 0, 1, 0, 0, 0]


def test_context_features_name_the_problem():
    frame = pd.DataFrame({"user_id": [1, 2], "timestamp": [_t(0), pd.NaT]})
    with pytest.raises(ValueError, match="missing timestamp on row 1"):
        context_features(frame)
    with pytest.raises(KeyError, match="missing column 'timestamp'"):
        context_features(frame.drop(columns="timestamp"))
    with pytest.raises(KeyError, match="lack column 'end'"):
        context_features(frame.iloc[:1], pd.DataFrame({"start": [_t(0)]}))


# ------------------------------------------------------------------ segmentation


def test_segmentation_matrix_and_portraits_by_hand():
    profile = pd.DataFrame({"n_events": [0.0, np.e - 1, np.e ** 2 - 1, np.e ** 3 - 1],
                            "price_index": [1.0, np.nan, 3.0, 5.0], "constant": 7.0},
                           index=pd.Index([5, 6, 7, 8], name="user_id"))
    x, columns = segmentation_matrix(profile, ["n_events", "price_index", "constant"])
    assert columns == ["n_events", "price_index", "constant"]
    logged = np.array([0.0, 1.0, 2.0, 3.0])  # log1p of the counts
    filled = np.array([1.0, 3.0, 3.0, 5.0])  # the gap takes the median
    np.testing.assert_allclose(x[:, 0], (logged - logged.mean()) / logged.std())
    np.testing.assert_allclose(x[:, 1], (filled - filled.mean()) / filled.std())
    np.testing.assert_array_equal(x[:, 2], 0.0)
    labels = pd.Series([0, 0, 1, 1], index=profile.index, name="segment")
    portraits = segment_portraits(profile, labels, columns=["price_index", "constant"])
    assert portraits["users"].tolist() == [2, 2]
    np.testing.assert_allclose(portraits["price_index"], [1.0, 4.0])  # the mean skips the gap
    with pytest.raises(ValueError, match="at least 3 users"):
        segmentation_matrix(profile.iloc[:2], ["n_events"])
    with pytest.raises(TypeError, match="not numeric"):
        segmentation_matrix(profile.assign(city=["a", "b", "c", "d"]), ["n_events", "city"])
