"""The simulator: exact expectations, draws that converge to them, the oracle, seeds and bad input."""

import numpy as np
import pandas as pd
import pytest

from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.data.world import generate
from recsys_utils.evaluation.protocol import evaluate
from recsys_utils.models import PopularityRecommender
from recsys_utils.simulation.simulator import OracleRecommender, Simulator


@pytest.fixture(scope="module")
def world():
    return generate(n_users=400, n_items=300, n_weeks=3, seed=3)


def lists(world, items_per_user, users):
    k = items_per_user.shape[1]
    return pd.DataFrame(
        {
            "user_id": np.repeat(users, k),
            "item_id": items_per_user.ravel(),
            "rank": np.tile(np.arange(1, k + 1), len(users)),
        }
    )


def test_truth_ranked_lists_get_more_clicks_than_random(world):
    users = world.users.user_id.to_numpy()[:200]
    pref = world.preference(users, at=world.end)
    best = world.items.item_id.to_numpy()[np.argsort(-pref, axis=1)[:, :10]]
    rng = np.random.default_rng(0)
    random = world.items.item_id.to_numpy()[np.argsort(rng.random(pref.shape), axis=1)[:, :10]]
    sim = Simulator(world, seed=1)
    good = sim.expected(lists(world, best, users))
    bad = sim.expected(lists(world, random, users))
    assert good.p_click.sum() > 2 * bad.p_click.sum()
    assert (good.p_purchase <= good.p_click).all()


def test_position_bias_and_seeded_draws(world):
    users = world.users.user_id.to_numpy()[:50]
    item = world.items.item_id.to_numpy()[:1]
    top = lists(world, np.repeat(item, 50)[:, None], users)
    low = top.assign(rank=10)
    sim = Simulator(world, seed=2)
    assert (sim.expected(top).p_click > sim.expected(low).p_click).all()
    recs = lists(world, np.tile(world.items.item_id.to_numpy()[:10], (50, 1)), users)
    a = Simulator(world, seed=5).respond(recs)
    b = Simulator(world, seed=5).respond(recs)
    pd.testing.assert_frame_equal(a, b)
    assert (a.purchased <= a.clicked).all()


def test_bad_input(world):
    sim = Simulator(world)
    with pytest.raises(KeyError, match="rank"):
        sim.expected(pd.DataFrame({"user_id": [10001], "item_id": [world.items.item_id.iloc[0]]}))
    with pytest.raises(KeyError, match="unknown user"):
        sim.expected(pd.DataFrame({"user_id": [-5], "item_id": [world.items.item_id.iloc[0]], "rank": [1]}))


def test_click_probability_follows_the_position_bias_exactly(world):
    users = world.users.user_id.to_numpy()[:20]
    launched = world.items.item_id.to_numpy()[(world.items.launch_time <= world.end).to_numpy()][:5]
    pairs = pd.DataFrame({"user_id": np.repeat(users, 5), "item_id": np.tile(launched, 20)})
    ranks = np.arange(1, 11)
    frame = pairs.loc[pairs.index.repeat(10)].assign(rank=np.tile(ranks, len(pairs))).reset_index(drop=True)
    p = Simulator(world).expected(frame).p_click.to_numpy().reshape(len(pairs), 10)
    assert (p[:, 0] > 0).all()
    assert (np.diff(p, axis=1) < 0).all()  # strictly less likely at every lower position
    # examination 1 / log2(rank + 1) times an attractiveness that does not depend on the rank
    np.testing.assert_allclose(p / p[:, :1], np.broadcast_to(1 / np.log2(ranks + 1), p.shape), rtol=1e-12)
    p_purchase = Simulator(world).expected(frame).p_purchase.to_numpy().reshape(len(pairs), 10)
    np.testing.assert_allclose(p_purchase / p, np.broadcast_to(p_purchase[:, :1] / p[:, :1], p.shape), rtol=1e-9)


def test_unlaunched_items_are_never_clicked(world):
    late = world.items[world.items.launch_time > world.start + pd.Timedelta(days=10)].item_id.to_numpy()[:3]
    assert len(late) == 3
    users = world.users.user_id.to_numpy()[:30]
    recs = pd.DataFrame({"user_id": np.repeat(users, 3), "item_id": np.tile(late, 30), "rank": 1})
    early = world.start + pd.Timedelta(days=2)
    out = Simulator(world, seed=0).respond(pd.concat([recs] * 50, ignore_index=True), at=early)
    assert (out.p_click == 0).all() and not out.clicked.any() and not out.purchased.any()
    assert (Simulator(world).expected(recs).p_click > 0).all()  # the same items at the end are clickable


def _z_score(drawn, probabilities):
    """(count - expected) / sd of a sum of independent Bernoulli draws."""
    p = probabilities.to_numpy()
    return (drawn.sum() - p.sum()) / np.sqrt((p * (1 - p)).sum())


def test_respond_converges_to_expected(world):
    users = world.users.user_id.to_numpy()[:50]
    pref = world.preference(users, at=world.end)
    best = world.items.item_id.to_numpy()[np.argsort(-pref, axis=1)[:, :10]]
    recs = lists(world, best, users)
    out = Simulator(world, seed=11).respond(pd.concat([recs] * 200, ignore_index=True))
    # the click count at each position, and all purchases: within 4 standard deviations of the expectation
    for rank, group in out.groupby("rank"):
        assert group.p_click.sum() > 30  # enough expected clicks for the normal approximation
        assert abs(_z_score(group.clicked, group.p_click)) < 4, rank
    assert out.p_purchase.sum() > 30
    assert abs(_z_score(out.purchased, out.p_purchase)) < 4
    # the empirical rate converges: 100,000 impressions pin the click rate to about 0.1 percentage point
    assert out.clicked.mean() == pytest.approx(out.p_click.mean(), abs=4 * np.sqrt(out.p_click.mean() / len(out)))
    assert not (out.purchased & ~out.clicked).any()  # purchases only follow clicks


def test_seeds_drive_the_draws_and_only_the_draws(world):
    users = world.users.user_id.to_numpy()[:100]
    recs = lists(world, np.tile(world.items.item_id.to_numpy()[:10], (100, 1)), users)
    sim = Simulator(world, seed=5)
    first, second = sim.respond(recs), sim.respond(recs)
    other = Simulator(world, seed=6).respond(recs)
    pd.testing.assert_frame_equal(first, Simulator(world, seed=5).respond(recs))
    assert not first.clicked.equals(second.clicked) and not first.clicked.equals(other.clicked)
    pd.testing.assert_frame_equal(first[["p_click", "p_purchase"]], other[["p_click", "p_purchase"]])


def test_oracle_beats_popularity_against_the_truth(world):
    at = world.start + pd.Timedelta(days=14)
    past = world.interactions[world.interactions.timestamp < at]
    rng = np.random.default_rng(0)  # indexes in an order of their own: the oracle must map ids to the world
    users = IdIndex(rng.permutation(world.users.user_id.to_numpy()), "user_id")
    items = IdIndex(rng.permutation(world.items.item_id.to_numpy()), "item_id")
    train = Interactions.from_frame(past, users, items, weight=None)
    # the truth: each user's 20 best unseen items at ``at``
    utility = world.preference(users.ids, items.ids, at=at)
    utility[train.matrix.toarray() > 0] = -np.inf
    best = np.argsort(-utility, axis=1)[:, :20]
    cells = pd.DataFrame({"user_id": np.repeat(users.ids, 20), "item_id": items.ids[best.ravel()]})
    truth = Interactions.from_frame(cells, users, items, weight=None)
    oracle = OracleRecommender(world, at=at).fit(train)
    popularity = PopularityRecommender().fit(train)
    ndcg = {name: evaluate(model, train, truth, k=10, users="all")["ndcg@10"]
            for name, model in (("oracle", oracle), ("popularity", popularity))}
    assert ndcg["oracle"] == pytest.approx(1.0) and ndcg["popularity"] < 0.5, ndcg
    # and in the simulator: the oracle's lists earn more expected clicks
    shown = users.ids[:200]
    clicks = {name: Simulator(world).expected(model.recommend(shown, k=10), at=at).p_click.sum()
              for name, model in (("oracle", oracle), ("popularity", popularity))}
    assert clicks["oracle"] > 1.5 * clicks["popularity"], clicks


def test_bad_recommendation_frames_are_named(world):
    sim = Simulator(world)
    item = world.items.item_id.iloc[0]
    user = world.users.user_id.iloc[0]
    with pytest.raises(KeyError, match=r"lack column\(s\) \['user_id'\]"):
        sim.expected(pd.DataFrame({"item_id": [item], "rank": [1]}))
    with pytest.raises(ValueError, match="ranks start at 1"):
        sim.expected(pd.DataFrame({"user_id": [user], "item_id": [item], "rank": [0]}))
    with pytest.raises(ValueError, match="ranks start at 1"):
        sim.respond(pd.DataFrame({"user_id": [user, user], "item_id": [item, item], "rank": [1, -2]}))
    with pytest.raises(KeyError, match="unknown item"):
        sim.expected(pd.DataFrame({"user_id": [user], "item_id": [-1], "rank": [1]}))


def test_a_missing_rank_is_an_error(world):
    frame = pd.DataFrame({"user_id": [world.users.user_id.iloc[0]], "item_id": [world.items.item_id.iloc[0]],
                          "rank": [np.nan]})
    with pytest.raises(ValueError, match="rank"):
        Simulator(world).expected(frame)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_time_before_any_launch_gives_no_clicks_or_an_error(world):
    frame = pd.DataFrame({"user_id": [world.users.user_id.iloc[0]], "item_id": [world.items.item_id.iloc[0]],
                          "rank": [1]})
    early = world.items.launch_time.min() - pd.Timedelta(days=1)
    try:
        p_click = Simulator(world).expected(frame, at=early).p_click
    except ValueError:
        return
    assert (p_click == 0).all()
