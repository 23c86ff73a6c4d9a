"""Tests of the ranking stage: features at a cut-off, labels, rankers, list building, CTR metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.pipeline.ranking import (
    Ranker,
    ctr_metrics,
    label_pairs,
    pair_features,
    rank_candidates,
    sample_negatives,
    snapshot,
)


def tiny_world():
    users, items = IdIndex([1, 2, 3], "user_id"), IdIndex([10, 11, 12, 13], "item_id")
    item_table = pd.DataFrame({
        "item_id": [10, 11, 12, 13], "title": ["red shoe", "blue shoe", "red hat", "green hat"],
        "category": ["shoes", "shoes", "hats", "hats"], "top_category": ["wear", "wear", "wear", "wear"],
        "brand": ["a", "b", "a", "c"], "price": [10.0, 20.0, 5.0, 8.0],
        "launch_time": pd.to_datetime(["2023-01-01", "2023-06-01", "2024-01-05", "2024-02-01"])})
    user_table = pd.DataFrame({"user_id": [1, 2, 3], "age": [20, 30, 40], "gender": ["F", "M", "F"],
                               "signup_time": pd.to_datetime(["2023-01-01"] * 3)})
    events = pd.DataFrame({
        "user_id": [1, 1, 1, 2, 2, 3, 1],
        "item_id": [10, 11, 12, 12, 10, 11, 13],
        "timestamp": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-08", "2024-01-03", "2024-01-09",
                                     "2024-01-09", "2024-01-20"]),
        "event": ["view", "purchase", "view", "view", "view", "view", "purchase"],
        "price": [np.nan, 20.0, np.nan, np.nan, np.nan, np.nan, 8.0],
    })
    return users, items, item_table, user_table, events


def test_snapshot_ignores_the_future_and_builds_crosses():
    users, items, item_table, user_table, events = tiny_world()
    at = pd.Timestamp("2024-01-10")
    snap = snapshot(events, at, users, items, item_table, user_table)
    later = pd.concat([events, events.assign(timestamp=pd.Timestamp("2024-03-01"))])
    again = snapshot(later, at, users, items, item_table, user_table)
    pd.testing.assert_frame_equal(snap.user_columns, again.user_columns)
    pd.testing.assert_frame_equal(snap.item_columns, again.item_columns)
    assert snap.interactions.nnz == 6  # the 2024-01-20 purchase is after the cut-off
    cands = pd.DataFrame({"user_index": [0, 0, 1], "item_index": [2, 3, 1]})
    features = pair_features(cands, snap, channel_columns=False)
    # user 1: weights view 1 (shoe 10) + purchase 5 (shoe 11) + view 1 (hat 12) -> hats share 1/7
    assert features.loc[0, "cross_leaf_affinity"] == pytest.approx(1 / 7)
    assert features.loc[2, "cross_leaf_affinity"] == pytest.approx(0.5)  # user 2: one shoe, one hat
    assert features.loc[1, "item_age_days"] == pytest.approx((at - pd.Timestamp("2024-02-01")) / pd.Timedelta(days=1))
    assert features.loc[0, "item_log_users"] == pytest.approx(np.log1p(2))
    assert features.loc[0, "user_n_events"] == 3
    assert isinstance(features["item_category"].dtype, pd.CategoricalDtype)
    with pytest.raises(ValueError, match="no events before"):
        snapshot(events, "2023-01-01", users, items, item_table)


def test_pair_features_keeps_recall_columns():
    users, items, item_table, user_table, events = tiny_world()
    snap = snapshot(events, "2024-01-10", users, items, item_table, user_table)
    cands = pd.DataFrame({"user_index": [0], "item_index": [3], "position": [0], "n_sources": [2],
                          "sources": [3], "score_ease": [0.5], "rank_ease": [1.0]})
    features = pair_features(cands, snap)
    assert {"recall_position", "recall_n_sources", "recall_score_ease", "recall_rank_ease"} <= set(features)
    assert "recall_sources" not in features
    with pytest.raises(KeyError, match="item_index"):
        pair_features(cands.drop(columns="item_index"), snap)


def test_label_pairs():
    future = Interactions(sp.csr_matrix(np.array([[0, 2, 0], [1, 0, 0]], dtype=np.float32)),
                          IdIndex([1, 2], "user_id"), IdIndex([7, 8, 9], "item_id"))
    cands = pd.DataFrame({"user_index": [0, 0, 1, 1], "item_index": [1, 2, 0, 1]})
    assert label_pairs(cands, future).tolist() == [1, 0, 1, 0]
    with pytest.raises(ValueError, match="exceed"):
        label_pairs(pd.DataFrame({"user_index": [5], "item_index": [0]}), future)


def test_rank_candidates_orders_and_pads():
    cands = pd.DataFrame({"user_index": [4, 4, 4, 9, 9], "item_index": [1, 2, 3, 5, 6],
                          "position": [0, 1, 2, 1, 0]})
    scores = np.array([0.1, 0.9, 0.5, 0.3, 0.3])
    top = rank_candidates(cands, scores, np.array([9, 4, 7]), k=2)
    assert top.tolist() == [[6, 5], [2, 3], [-1, -1]]  # tie broken by recall position
    with pytest.raises(ValueError, match="scores"):
        rank_candidates(cands, scores[:2], np.array([4]))


def test_sample_negatives():
    labels = np.r_[np.ones(50), np.zeros(10_000)].astype(int)
    keep = sample_negatives(labels, 0.2, seed=1)
    assert keep[:50].all()
    assert abs(keep[50:].mean() - 0.2) < 0.03
    with pytest.raises(ValueError, match="rate"):
        sample_negatives(labels, 0.0)


def synthetic(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    x = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "noise": rng.normal(size=n)})
    logit = 2.0 * x.a - 1.5 * x.b - 1.0
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    users = np.repeat(np.arange(n // 20), 20)
    return x, y, users


def test_lgbm_ranker_learns_and_reports_importance():
    x, y, users = synthetic()
    ranker = Ranker("lgbm", n_estimators=60).fit(x[:3000], y[:3000])
    metrics = ctr_metrics(y[3000:], ranker.predict_proba(x[3000:]))
    assert metrics["auc"] > 0.8 and metrics["log_loss"] < metrics["log_loss_constant"]
    importance = ranker.feature_importance()
    assert importance.index[-1] == "noise"


def test_logistic_ranker_matches_sklearn_and_prior_correction():
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x, y, _ = synthetic()
    ours = Ranker("logistic").fit(x, y).predict_proba(x)
    scaled = StandardScaler().fit_transform(x.to_numpy())
    theirs = LogisticRegression(C=1.0, max_iter=1000).fit(scaled, y).predict_proba(scaled)[:, 1]
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    sampled = Ranker("logistic", negative_rate=0.25, seed=3).fit(x, y)
    keep = sample_negatives(y, 0.25, seed=3)
    raw = LogisticRegression(C=1.0, max_iter=1000).fit(StandardScaler().fit(x[keep]).transform(x[keep]), y[keep]
                                                       ).predict_proba(StandardScaler().fit(x[keep]).transform(x))[:, 1]
    np.testing.assert_allclose(sampled.predict_proba(x), raw / (raw + (1 - raw) / 0.25))
    # the correction brings the mean prediction back near the true click rate
    assert abs(sampled.predict_proba(x).mean() - y.mean()) < abs(raw.mean() - y.mean())


def test_lambdarank_ranks_within_users():
    x, y, users = synthetic()
    ranker = Ranker("lambdarank", n_estimators=40, min_child_samples=20).fit(x, y, users)
    scores = ranker.predict(x)
    assert np.corrcoef(scores, 2.0 * x.a - 1.5 * x.b)[0, 1] > 0.8
    with pytest.raises(TypeError, match="not probabilities"):
        ranker.predict_proba(x)
    with pytest.raises(ValueError, match="users"):
        Ranker("lambdarank").fit(x, y)


def test_ranker_errors():
    x, y, _ = synthetic(200)
    with pytest.raises(ValueError, match="kind"):
        Ranker("forest")
    with pytest.raises(ValueError, match="single class"):
        Ranker().fit(x, np.zeros(len(x)))
    with pytest.raises(ValueError, match="labels"):
        Ranker().fit(x, y[:10])
    with pytest.raises(RuntimeError, match="not fitted"):
        Ranker().predict(x)


def test_ctr_metrics_match_sklearn():
    from sklearn.metrics import log_loss, roc_auc_score

    y = np.array([0, 1, 0, 1, 1, 0])
    p = np.array([0.1, 0.8, 0.3, 0.6, 0.4, 0.5])
    metrics = ctr_metrics(y, p)
    assert metrics["auc"] == pytest.approx(roc_auc_score(y, p))
    assert metrics["log_loss"] == pytest.approx(log_loss(y, p))
    assert metrics["log_loss_constant"] == pytest.approx(np.log(2))


def test_one_pair_feature_builder_reproduces_the_old_formulas():
    """Hand-computed values of the old separate builders (ranker snapshot, features_for_pairs, CTR item
    table, serving item features) on the tiny marketplace, against the one builder."""
    from recsys_utils.features.pairs import build_feature_tables, features_for_pairs
    from recsys_utils.features.pairs import pair_features as builder
    from recsys_utils.models.ctr import CTRFeatures
    from recsys_utils.pipeline.serving import item_serving_features

    users, items, item_table, user_table, events = tiny_world()
    at = pd.Timestamp("2024-01-10")
    snap = snapshot(events, at, users, items, item_table, user_table)
    u, i = np.array([0, 0, 0, 1, 2]), np.array([0, 1, 3, 2, 1])  # users 1,1,1,2,3 x items 10,11,13,12,11
    x = builder(snap, u, i)
    # popularity (distinct users before at) and its 7-day momentum: window [01-03, 01-10)
    np.testing.assert_allclose(x["item_log_users"], np.log1p([2, 2, 0, 2, 2]))
    np.testing.assert_allclose(x["item_log_users_7d"], np.log1p([1, 1, 0, 2, 1]))
    weeks = 9 / 7
    assert x.loc[3, "item_trend"] == pytest.approx(np.log1p(2) - np.log1p(2 / weeks))
    # conversion with the old smoothing (purchases + 0.1) / (views + 5)
    np.testing.assert_allclose(x["item_purchase_rate"], [0.1 / 7, 1.1 / 6, 0.1 / 5, 0.1 / 7, 1.1 / 6])
    # crosses: one top category ("wear") -> share 1; user 1's favourite brand is b (purchase weight 5)
    np.testing.assert_allclose(x["cross_top_affinity"], 1.0)
    np.testing.assert_allclose(x["cross_fav_brand"], [0, 1, 0, 1, 1])
    rel = {10: -0.5 * np.log(2), 11: 0.5 * np.log(2), 12: -0.5 * np.log(1.6), 13: 0.5 * np.log(1.6)}
    price_index_1 = (rel[10] + 5 * rel[11] + rel[12]) / 7
    assert x.loc[2, "cross_price_gap"] == pytest.approx(rel[13] - price_index_1)
    np.testing.assert_allclose(x["cross_leaf_affinity"], [6 / 7, 6 / 7, 1 / 7, 0.5, 1.0])
    np.testing.assert_allclose(x["user_log_items"], np.log1p([3, 3, 3, 2, 1]))
    # the by-id view gives the same crosses as the index view
    wide = features_for_pairs(pd.DataFrame({"user_id": users.to_ids(u), "item_id": items.to_ids(i)}),
                              build_feature_tables(events, item_table, user_table, at=at))
    np.testing.assert_allclose(wide["x_category_affinity"], x["cross_top_affinity"])
    np.testing.assert_allclose(wide["x_fav_brand"], x["cross_fav_brand"])
    np.testing.assert_allclose(wide["x_price_gap"], x["cross_price_gap"])
    # the CTR model reads its item fields from the same tables: log(1 + events) and age at the history's end
    ctr = CTRFeatures(n_bins=2).fit(events[events.timestamp < at], item_table, user_table)
    np.testing.assert_allclose(ctr.item_table_.loc[[10, 11, 12, 13], "log_popularity"], np.log1p([2, 2, 2, 0]))
    end = pd.Timestamp("2024-01-09") + pd.Timedelta(seconds=1)
    age = (end - pd.Timestamp("2024-02-01")) / pd.Timedelta(days=1)
    assert ctr.item_table_.loc[13, "age_days"] == pytest.approx(age)
    # serving's item features: events of the last 7 days, freshness over 14 days
    served = item_serving_features(events, item_table, items.ids, at)
    np.testing.assert_allclose(served["recent_log_popularity"], np.log1p([1, 1, 2, 0]), rtol=1e-6)
    np.testing.assert_allclose(served["freshness"], [0, 0, 1 - 5 / 14, 0], atol=1e-6)  # item 13 not launched


def test_serving_features_equal_the_rankers_for_the_same_pairs_and_cut_off():
    from recsys_utils.features.pairs import SERVING_COLUMNS, SERVING_ITEM_COLUMNS
    from recsys_utils.features.pairs import pair_features as builder
    from recsys_utils.pipeline.serving import Channel, ServingPipeline, item_serving_features

    users, items, item_table, user_table, events = tiny_world()
    at = pd.Timestamp("2024-01-10")
    snap = snapshot(events, at, users, items, item_table, user_table)
    popularity = Channel("popularity", "popularity", {"scores": np.array([4.0, 3.0, 2.0, 1.0], np.float32)})
    pipeline = ServingPipeline([popularity], snap.interactions.matrix, snap.item_leaf, n_recall=4,
                               item_features=item_serving_features(events, item_table, items.ids, at))
    candidates, features, _ = pipeline.recall(np.arange(3))
    rows, cols = np.nonzero(candidates >= 0)
    assert len(rows) == 4 - 3 + 4 - 2 + 4 - 1  # every unseen item of each user
    names = {**SERVING_COLUMNS, **{f"item:{k}": v for k, v in SERVING_ITEM_COLUMNS.items()}}
    expected = builder(snap, rows, candidates[rows, cols], list(names.values()))
    for position, name in enumerate(pipeline.feature_names):
        if name in names:
            np.testing.assert_allclose(features[rows, cols, position], expected[names[name]], rtol=1e-6,
                                       err_msg=name)
    assert set(names) <= set(pipeline.feature_names)
