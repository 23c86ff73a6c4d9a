"""Feature engineering: user profile, item and context features, segmentation, pair features, EDA tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import adjusted_rand_score

from recsys_utils.features import (
    attribute_matrix,
    build_feature_tables,
    compare_segments,
    context_features,
    features_for_pairs,
    item_features,
    price_bands,
    segment_predictability,
    segment_users,
    similar_items,
    user_profile,
)
from recsys_utils.features.eda import cohort_retention, funnel, head_share, long_tail

T0 = pd.Timestamp("2024-03-04 00:00")  # a Monday


def _t(days: float, hours: float = 0.0) -> pd.Timestamp:
    return T0 + pd.Timedelta(days=days, hours=hours)


@pytest.fixture
def items():
    return pd.DataFrame({
        "item_id": [1, 2, 3, 4],
        "title": ["Red Running Shoe", "Blue Running Shoe", "Organic Green Tea", "Organic Black Tea"],
        "category": ["Shoes", "Shoes", "Tea", "Tea"],
        "brand": ["Swift", "Swift", "Leaf", "Leaf"],
        "price": [100.0, 400.0, 10.0, 10.0],
        "launch_time": [_t(-30), _t(-30), _t(-30), _t(9)],
    })


@pytest.fixture
def events():
    rows = [  # user, item, day, hour, event, session, device, quantity, price
        (10, 1, 0, 9, "view", 1, "app", 0, np.nan),
        (10, 1, 0, 9.1, "purchase", 1, "app", 2, 100.0),
        (10, 3, 2, 21, "view", 2, "desktop", 0, np.nan),
        (10, 3, 2, 21.1, "purchase", 2, "desktop", 1, 10.0),
        (20, 2, 1, 14, "view", 3, "app", 0, np.nan),
        (20, 2, 5, 14, "view", 4, "app", 0, np.nan),  # a Saturday
        (10, 2, 8, 10, "purchase", 5, "app", 1, 400.0),  # after the cut-off (day 7)
        (30, 4, 9, 10, "view", 6, "app", 0, np.nan),  # after the cut-off
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "day", "hour", "event", "session_id", "device",
                                        "quantity", "price"])
    frame.insert(2, "timestamp", [_t(d, h) for d, h in zip(frame.pop("day"), frame.pop("hour"), strict=True)])
    return frame


@pytest.fixture
def users():
    return pd.DataFrame({"user_id": [10, 20, 30], "signup_time": [_t(-100), _t(1), _t(8)], "age": [30, 40, 50]})


CUT = _t(7)


# ------------------------------------------------------------------ user profile


def test_user_profile_hand_computed(events, items, users):
    p = user_profile(events, items, users, at=CUT)
    assert list(p.index) == [10, 20]  # user 30 has no event before the cut-off
    u = p.loc[10]
    assert u["n_events"] == 4 and u["n_items"] == 2 and u["n_sessions"] == 2 and u["n_active_days"] == 2
    assert u["frequency"] == 2 and u["monetary"] == pytest.approx(2 * 100.0 + 10.0)
    assert u["avg_order_value"] == pytest.approx(105.0)
    last = _t(2, 21.1)
    assert u["recency_days"] == pytest.approx((CUT - last) / pd.Timedelta(days=1))
    assert u["tenure_days"] == pytest.approx(107.0)
    # category shares weighted by event (view 1, purchase 5): Shoes 6, Tea 6
    assert u["cat__Shoes"] == pytest.approx(0.5) and u["cat__Tea"] == pytest.approx(0.5)
    # item 1 costs 100 vs Shoes median log(200): log(100) - (log(100) + log(400)) / 2 = -log 2; tea is at its median
    assert u["price_index"] == pytest.approx(-np.log(2) * 6 / 12)
    assert u["device__app"] == pytest.approx(0.5) and u["fav_device"] in ("app", "desktop")
    assert u["daypart__morning"] == pytest.approx(0.5) and u["daypart__evening"] == pytest.approx(0.5)
    v = p.loc[20]
    assert v["frequency"] == 0 and v["monetary"] == 0 and v["weekend_share"] == pytest.approx(0.5)
    assert v["fav_category"] == "Shoes" and v["price_index"] == pytest.approx(np.log(2))
    assert v["age"] == 40


def test_user_profile_has_no_leakage(events, items, users):
    before = user_profile(events, items, users, at=CUT)
    future = events.copy()
    late = future["timestamp"] >= CUT
    future.loc[late, "item_id"] = 3  # rewrite the future completely
    future.loc[late, "price"] = 9999.0
    after = user_profile(future, items, users, at=CUT)
    pd.testing.assert_frame_equal(before, after)
    only_past = user_profile(events[events["timestamp"] < CUT], items, users, at=CUT)
    pd.testing.assert_frame_equal(before, only_past)


def test_user_profile_errors(events, items):
    with pytest.raises(KeyError, match="missing column 'item_id'"):
        user_profile(events.drop(columns="item_id"), items)
    with pytest.raises(ValueError, match="no interactions before"):
        user_profile(events, items, at=_t(-1))


# ------------------------------------------------------------------ item features


def test_price_bands_within_category():
    frame = pd.DataFrame({"item_id": range(7), "category": ["a"] * 5 + ["b"] * 2,
                          "price": [5.0, 1.0, 4.0, 2.0, 3.0, 10.0, np.nan]})
    bands = price_bands(frame, n_bands=5)
    assert bands.tolist() == [4, 0, 3, 1, 2, 4, -1]
    with pytest.raises(ValueError, match="at least 2"):
        price_bands(frame, n_bands=1)


def test_item_features_popularity_only_before_cutoff(events, items):
    f = item_features(items, events, at=CUT)
    assert f.loc[1, "n_events"] == 2 and f.loc[1, "n_purchases"] == 1 and f.loc[1, "n_views"] == 1
    assert f.loc[2, "n_events"] == 2 and f.loc[2, "n_purchases"] == 0  # the purchase on day 8 is after the cut
    assert f.loc[4, "n_events"] == 0 and f.loc[4, "available"] == 0 and f.loc[4, "age_days"] == pytest.approx(-2)
    assert f.loc[1, "age_days"] == pytest.approx(37) and f.loc[1, "is_new"] == 0
    assert f.loc[2, "recent_events"] == 2
    recent = item_features(items, events, at=CUT, recent_days=3)["recent_events"]
    assert recent.loc[2] == 1  # the Saturday view is within the last 3 days, the day-1 view is not
    assert f.loc[1, "rel_price"] == pytest.approx(-np.log(2)) and f.loc[3, "rel_price"] == pytest.approx(0)
    assert f.loc[2, "conversion"] == 0 and f.loc[1, "conversion"] == 1
    with pytest.raises(ValueError, match="item_id 1 appears more than once"):
        item_features(pd.concat([items, items.head(1)]))


def test_attribute_similarity(items):
    matrix, names = attribute_matrix(items)
    assert matrix.shape[0] == 4 and len(names) == matrix.shape[1]
    assert np.allclose(np.asarray(matrix.multiply(matrix).sum(axis=1)).ravel(), 1.0, atol=1e-5)
    near = similar_items(items, 3, k=2, matrix=matrix)
    assert near["item_id"].tolist()[0] == 4 and 3 not in near["item_id"].tolist()
    assert near["similarity"].is_monotonic_decreasing
    with pytest.raises(KeyError, match="item_id 99"):
        similar_items(items, 99)


# ------------------------------------------------------------------ context


def test_context_features(events):
    promos = pd.DataFrame({"item_id": [2, np.nan], "start": [_t(5), _t(9)], "end": [_t(6), _t(10)]})
    c = context_features(events, promos)
    assert c.index.equals(events.index)
    assert c["hour"].tolist() == [9, 9, 21, 21, 14, 14, 10, 10]
    assert c["weekday"].tolist() == [0, 0, 2, 2, 1, 5, 1, 2] and c["is_weekend"].tolist() == [0, 0, 0, 0, 0, 1, 0, 0]
    assert c["session_position"].tolist() == [0, 1, 0, 1, 0, 0, 0, 0]
    assert c.loc[1, "session_seconds"] == pytest.approx(360.0)
    assert c["in_promotion"].tolist() == [0, 0, 0, 0, 0, 1, 0, 1]  # item 2 on day 5; site-wide on day 9
    assert np.allclose(c["hour_sin"] ** 2 + c["hour_cos"] ** 2, 1.0)
    assert str(c.loc[2, "daypart"]) == "evening"
    # without session ids: sessions end after 30 idle minutes
    no_session = context_features(events.drop(columns="session_id"))
    assert no_session["session_position"].tolist() == [0, 1, 0, 1, 0, 0, 0, 0]


# ------------------------------------------------------------------ segmentation


def _blob_profile(seed: int = 0, n: int = 300) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 3, n)
    centres = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    shares = np.clip(centres[truth] + rng.normal(0, 0.05, (n, 3)), 0, None)
    shares /= shares.sum(axis=1, keepdims=True)
    index = pd.Index(np.arange(1000, 1000 + n), name="user_id")
    profile = pd.DataFrame(shares, columns=["cat__a", "cat__b", "cat__c"], index=index)
    profile["price_index"] = np.array([-0.5, 0.0, 0.5])[truth] + rng.normal(0, 0.1, n)
    profile["n_events"] = rng.integers(1, 50, n).astype(float)
    return profile, pd.Series(truth, index=index, name="segment")


def test_segment_users_finds_planted_clusters():
    profile, truth = _blob_profile()
    seg = segment_users(profile, ks=range(2, 7), min_events=1)
    assert seg.k == 3 and seg.scores["silhouette"].idxmax() == 1
    assert adjusted_rand_score(truth, seg.labels) == pytest.approx(1.0)
    sizes = seg.labels.value_counts()
    assert sizes.index[0] == 0 and sizes.is_monotonic_decreasing  # 0 = largest
    scores = compare_segments(seg.labels, truth)
    assert scores["ari"] == pytest.approx(1.0) and abs(scores["ari_shuffled"]) < 0.05
    pred = segment_predictability(profile, truth)
    assert pred["accuracy"] > 0.95 and pred["chance"] == pytest.approx(1 / 3)


def test_segment_users_errors():
    profile, _ = _blob_profile(n=20)
    with pytest.raises(ValueError, match="k must be between"):
        segment_users(profile, k=1)
    with pytest.raises(KeyError, match="lacks column"):
        segment_users(profile, columns=["nope"])
    with pytest.raises(ValueError, match="n_components"):
        segment_users(profile, n_components=99)


# ------------------------------------------------------------------ pair features


def test_features_for_pairs(events, items, users):
    tables = build_feature_tables(events, items, users, at=CUT)
    pairs = pd.DataFrame({"user_id": [10, 20, 99], "item_id": [3, 1, 2]}, index=[5, 6, 7])
    x = features_for_pairs(pairs, tables)
    assert x.index.tolist() == [5, 6, 7]
    assert x.loc[5, "x_category_affinity"] == pytest.approx(tables.users.loc[10, "cat__Tea"])
    assert x.loc[6, "x_category_affinity"] == pytest.approx(1.0)
    assert x["u_known"].tolist() == [1, 1, 0] and np.isnan(x.loc[7, "u_n_events"])
    assert x.loc[5, "x_price_gap"] == pytest.approx(0 - tables.users.loc[10, "price_index"])
    assert x.loc[6, "i_n_purchases"] == 1
    with pytest.raises(KeyError, match="pairs lack column 'item_id'"):
        features_for_pairs(pairs[["user_id"]], tables)


# ------------------------------------------------------------------ EDA tables


def test_eda_tables(events):
    tail = long_tail(events)
    assert tail["events"].tolist()[0] == 3 and tail["cum_share"].iloc[-1] == pytest.approx(1.0)
    assert head_share(events, top=0.25) == pytest.approx(3 / 8)
    f = funnel(events)
    assert f.index.tolist() == ["view", "purchase"] and f.loc["purchase", "events"] == 3
    r = cohort_retention(events, freq="W")
    assert r.loc[r.index[0], "users"] == 2 and r.loc[r.index[0], 1] == pytest.approx(0.5)
    assert np.isnan(r.loc[r.index[1], 1])  # the second cohort cannot be observed a week later
