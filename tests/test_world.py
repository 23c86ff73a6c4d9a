"""Properties of the default simulated marketplace, measured from its generated tables."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from recsys_utils.data.datasets import load_dataset
from recsys_utils.data.world import generate
from recsys_utils.evaluation.protocol import evaluate
from recsys_utils.models import PopularityRecommender
from recsys_utils.simulation.simulator import OracleRecommender


@pytest.fixture(scope="module")
def dataset():
    return load_dataset("marketplace", seed=42)


@pytest.fixture(scope="module")
def world(dataset):
    return dataset.world


@pytest.fixture(scope="module")
def events(world):
    return world.interactions


def test_size_is_a_few_hundred_thousand_events(world, events):
    assert 2000 <= events.user_id.nunique() <= 20000
    assert 1000 <= events.item_id.nunique() <= 5000
    assert 150_000 <= len(events) <= 800_000
    assert (events.timestamp.max() - events.timestamp.min()).days >= 28


def test_long_tail_popularity(world, events):
    counts = (
        events.item_id.value_counts().reindex(world.items.item_id, fill_value=0).sort_values(ascending=False)
    )
    top_share = counts.iloc[: len(counts) // 10].sum() / counts.sum()
    assert 0.35 <= top_share <= 0.70


def test_heavy_tailed_user_activity(events):
    per_user = events.user_id.value_counts()
    top_decile_share = per_user.iloc[: len(per_user) // 10].sum() / per_user.sum()
    assert top_decile_share >= 0.30  # a tenth of the users make at least 30% of the events
    assert per_user.max() >= 10 * per_user.median()


def test_funnel_and_segment_differences(world, events):
    counts = events.event.value_counts()
    assert counts["view"] > counts["add_to_cart"] > counts["purchase"] > 0
    by_segment = events.merge(world.user_truth[["user_id", "segment"]], on="user_id")
    table = by_segment.pivot_table(index="segment", columns="event", values="item_id", aggfunc="size")
    conversion = table["purchase"] / table["view"]
    assert conversion.max() / conversion.min() >= 1.3


def behaviour_features(world, events):
    items = world.items.set_index("item_id")
    frame = events.join(
        items[["top_category", "price"]].rename(columns={"price": "price_item"}), on="item_id"
    )
    views = frame[frame.event == "view"]
    shares = pd.crosstab(views.user_id, views.top_category, normalize="index")
    rates = pd.crosstab(frame.user_id, frame.event)
    features = shares.join(np.log1p(rates)).join(
        views.groupby("user_id").price_item.apply(lambda p: np.log(p).mean()).rename("log_price")
    )
    hours = frame.timestamp.dt.hour.to_numpy() / 24 * 2 * np.pi
    features = features.join(
        pd.DataFrame({"user_id": frame.user_id, "sin": np.sin(hours), "cos": np.cos(hours)})
        .groupby("user_id")
        .mean()
    )
    devices = pd.crosstab(frame.user_id, frame.device, normalize="index").add_prefix("device_")
    features = features.join(devices)
    return features.fillna(0.0)


def test_segments_are_visible_in_behaviour(world, events):
    features = behaviour_features(world, events)
    truth = world.user_truth.set_index("user_id").segment.reindex(features.index)
    chance = truth.value_counts(normalize=True).max()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    accuracy = cross_val_score(model, features.to_numpy(), truth.to_numpy(), cv=3).mean()
    assert accuracy >= 2 * chance, (accuracy, chance)


def test_sequential_dependence_within_sessions(world, events):
    views = events[events.event == "view"]
    category = views.item_id.map(world.items.set_index("item_id").category).to_numpy()
    session = views.session_id.to_numpy()
    order = np.lexsort((views.timestamp.to_numpy(), session))
    category, session = category[order], session[order]
    same_session = session[1:] == session[:-1]
    same_category = (category[1:] == category[:-1])[same_session].mean()
    p = pd.Series(category).value_counts(normalize=True)
    chance = float((p**2).sum())
    assert same_category >= 5 * chance, (same_category, chance)


def test_new_users_and_items_keep_arriving(dataset, world):
    split = dataset.temporal_split(validation=False)
    train_users, train_items = set(split.train.user_id), set(split.train.item_id)
    test_users = set(split.test.user_id)
    cold_users = len(test_users - train_users) / len(test_users)
    cold_items = len(set(split.test.item_id) - train_items)
    assert cold_users >= 0.03
    assert cold_items >= 10
    launches = world.items.launch_time
    weeks = (launches - world.start).dt.days // 7
    assert weeks[weeks >= 0].nunique() >= world.config.n_weeks - 1  # launches every week


def test_truth_beats_popularity_by_a_wide_margin(dataset, world):
    split = dataset.temporal_split(validation=False)
    m = split.to_interactions()
    middle = split.test.timestamp.min() + (split.test.timestamp.max() - split.test.timestamp.min()) / 2
    popularity = evaluate(PopularityRecommender().fit(m.train), m.train, m.test, k=10)
    oracle = evaluate(OracleRecommender(world, at=middle).fit(m.train), m.train, m.test, k=10)
    assert oracle["ndcg@10"] >= 2.5 * popularity["ndcg@10"], (oracle["ndcg@10"], popularity["ndcg@10"])


def test_preference_is_exposed_and_consistent(world):
    users = world.users.user_id.to_numpy()[:3]
    items = world.items.item_id.to_numpy()[:5]
    matrix = world.preference(users, items, at=world.end)
    pairs = world.pair_preference(np.repeat(users, 5), np.tile(items, 3), at=world.end)
    np.testing.assert_allclose(matrix.ravel(), pairs, rtol=1e-6)


def test_deterministic_for_a_seed():
    a = generate(n_users=300, n_items=200, n_weeks=3, seed=7)
    b = generate(n_users=300, n_items=200, n_weeks=3, seed=7)
    c = generate(n_users=300, n_items=200, n_weeks=3, seed=8)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    pd.testing.assert_frame_equal(a.items, b.items)
    assert not a.interactions[["user_id", "item_id"]].equals(c.interactions[["user_id", "item_id"]])


def test_reviews_follow_purchases(world):
    buys = world.interactions[world.interactions.event == "purchase"][["user_id", "item_id"]]
    reviewed = world.reviews[["user_id", "item_id"]]
    assert reviewed.merge(buys.drop_duplicates(), how="left", indicator=True)["_merge"].eq("both").all()
    assert set(world.reviews.rating.unique()) <= {1, 2, 3, 4, 5}
