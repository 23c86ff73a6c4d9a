import numpy as np
import pandas as pd
import pytest

from recsys_utils.data.world import generate
from recsys_utils.simulation.simulator import Simulator


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
