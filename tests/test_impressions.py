"""The impression log: its truth equals the simulator's expectations, labels follow the funnel,
features are leak-free and shaped for the models, bad input is named."""

import numpy as np
import pandas as pd
import pytest

from recsys_utils.data.interactions import Interactions
from recsys_utils.data.world import generate
from recsys_utils.models import PopularityRecommender
from recsys_utils.models.ctr import CTRFeatures
from recsys_utils.simulation.impression_features import behaviour_sequences, impression_features, ranker_columns
from recsys_utils.simulation.impressions import impression_log, impression_truth, slate_requests
from recsys_utils.simulation.simulator import Simulator


@pytest.fixture(scope="module")
def setting():
    world = generate(n_users=300, n_items=200, n_weeks=3, seed=5)
    events = world.interactions
    start = world.start + pd.Timedelta(days=14)
    policy = PopularityRecommender().fit(Interactions.from_frame(events[events.timestamp < start]))
    requests = slate_requests(events, start, start + pd.Timedelta(days=3))
    log = impression_log(world, policy, requests, k=5, explore=0.5, seed=0)
    return world, events, start, policy, log


def test_truth_matches_the_simulator(setting):
    world, _, _, _, log = setting
    days = pd.to_datetime(log.timestamp).dt.floor("D")
    for day in days.unique():
        rows = log[(days == day).to_numpy()]
        at = day + pd.Timedelta(days=1) - pd.Timedelta(seconds=1)
        expected = Simulator(world).expected(rows[["user_id", "item_id", "rank"]], at=at)
        assert np.allclose(rows.p_click, expected.p_click)
        assert np.allclose(rows.p_ctcvr, expected.p_purchase)
    assert np.allclose(log.p_cvr, log.p_cart * log.p_buy)


def test_log_shape_labels_and_exploration(setting):
    world, _, _, policy, log = setting
    assert (log.groupby("slate_id")["rank"].apply(list) == pd.Series([[1, 2, 3, 4, 5]] * log.slate_id.nunique())
            .set_axis(log.groupby("slate_id").size().index)).all()
    assert not log.duplicated(["slate_id", "item_id"]).any()
    assert ((log.carted <= log.clicked) & (log.purchased <= log.carted)).all()
    launch = world.items.set_index("item_id").launch_time.reindex(log.item_id).to_numpy()
    assert (launch <= log.timestamp.to_numpy()).all()
    top = set(policy.recommend(log.user_id.iloc[:1], k=5, exclude_seen=False).item_id) | set()
    assert len(set(log.item_id)) > len(top)  # exploration shows items beyond the policy's top
    # the draws converge to the truth (a few thousand impressions)
    assert abs(log.clicked.mean() - log.p_click.mean()) < 4 * np.sqrt(log.p_click.mean() / len(log))


def test_features_are_leak_free_and_shaped(setting):
    world, events, start, _, log = setting
    encoders = CTRFeatures(4).fit(events[events.timestamp < start], world.items, world.users)
    f = impression_features(log, events, start, encoders, seq_len=6)
    assert f.codes.shape == (len(log), len(f.sizes)) and f.sequence.shape == (len(log), 6, 2)
    assert (f.codes < np.asarray(f.sizes)).all() and f.fields[-1] == "position"
    # the behaviour sequence is the user's last distinct items before the period, most recent first
    past = events[events.timestamp < start].sort_values("timestamp", ascending=False)
    user = log.user_id.iloc[0]
    mine = past[past.user_id == user].item_id.drop_duplicates().to_numpy()[:6]
    got = behaviour_sequences(past, [user], 6)[0]
    assert list(got[: len(mine)]) == list(mine) and all(v is None for v in got[len(mine):])
    # events inside the period do not change the features
    shifted = events.copy()
    inside = shifted.timestamp >= start
    shifted.loc[inside, "item_id"] = shifted.item_id.iloc[0]
    g = impression_features(log, shifted, start, encoders, seq_len=6)
    assert (g.codes == f.codes).all() and (g.sequence == f.sequence).all()
    columns = ranker_columns(log, events, start, world.items, world.users)
    assert len(columns) == len(log) and "position" in columns and "cross_leaf_affinity" in columns


def test_bad_input(setting):
    world, events, start, policy, log = setting
    with pytest.raises(ValueError, match="start"):
        slate_requests(events, start, start)
    with pytest.raises(KeyError, match="session_id"):
        slate_requests(events.drop(columns="session_id"), start, start + pd.Timedelta(days=1))
    with pytest.raises(ValueError, match="explore"):
        impression_log(world, policy, log.head(3), explore=1.5)
    with pytest.raises(ValueError, match="not fitted"):
        impression_log(world, PopularityRecommender(), log.head(3))
    with pytest.raises(ValueError, match="rank must be"):
        impression_truth(world, log.head(3).assign(rank=0))
    encoders = CTRFeatures(4).fit(events[events.timestamp < start], world.items, world.users)
    with pytest.raises(ValueError, match="leak"):
        impression_features(log, events, start + pd.Timedelta(days=1), encoders)
