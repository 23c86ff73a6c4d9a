"""Long-term dynamics: fatigue from repeated slates lowers the chance of coming back, purchases and
discoveries raise it; the environment reads the simulator's probabilities and leaves the world alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recsys_utils.data.world import generate
from recsys_utils.simulation.long_term import (
    GreedyPolicy,
    LongTermConfig,
    LongTermEnv,
    ThompsonPolicy,
    return_probability,
    run_episode,
    summarise_runs,
)
from recsys_utils.simulation.simulator import Simulator


def _env(n=2000, a=8, k=2, attract=0.3, buy=0.0, config=None, leaves=None):
    p_click = np.full((n, a, k), attract) / np.log2(np.arange(2, k + 2))[None, None, :]
    leaf = np.zeros((n, a), dtype=int) if leaves is None else leaves
    return LongTermEnv(p_click, buy * p_click, leaf, -np.arange(a, dtype=float)[None].repeat(n, 0), config)


class Alternate:
    """Shows candidates (0, 1), then (2, 3), then (0, 1), ...: never repeats the previous slate."""

    def act(self, state, rng):
        first = 2 * (state.t % 2)
        return np.tile([first, first + 1], (len(state.active), 1))


def test_return_probability_by_hand_and_its_direction():
    cfg = LongTermConfig(base_return=1.0, fatigue_weight=2.0, delight_weight=0.5)
    assert return_probability(0.0, 0.0, cfg) == pytest.approx(1 / (1 + np.exp(-1.0)))
    assert return_probability(1.0, 2.0, cfg) == pytest.approx(1 / (1 + np.exp(-(1.0 + 1.0 - 2.0))))
    fatigue = np.linspace(0, 3, 7)
    assert (np.diff(return_probability(fatigue, 0.0, cfg)) < 0).all()
    assert (np.diff(return_probability(0.0, fatigue, cfg)) > 0).all()
    with pytest.raises(ValueError, match="memory"):
        LongTermConfig(memory=1.0)


def test_repeating_the_same_slate_makes_users_leave():
    env = _env()
    same = run_episode(env, GreedyPolicy(env.scores, env.k), horizon=8, seed=1)
    varied = run_episode(env, Alternate(), horizon=8, seed=1)
    # the click probabilities are identical, so only the fatigue differs
    assert same["retained"].mean() < varied["retained"].mean() - 0.2, (same.mean(), varied.mean())
    assert same["visits"].mean() < varied["visits"].mean()
    # the exact return probability after one repeated slate: fatigue = 1 (then m * 1 + 1, ...)
    state = env.reset()
    rng = np.random.default_rng(0)
    state, _, _ = env.step(state, np.tile([0, 1], (env.n_users, 1)), rng)
    state, _, _ = env.step(state, np.tile([0, 1], (env.n_users, 1)), rng)
    cfg = env.config
    assert np.allclose(state.fatigue[state.active], cfg.memory * 0.0 + 1.0)


def test_purchases_and_discoveries_bring_users_back():
    leaves = np.tile(np.arange(8), (2000, 1))
    no_buy = run_episode(_env(buy=0.0, leaves=leaves), Alternate(), horizon=6, seed=2)
    buy = run_episode(_env(buy=1.0, leaves=leaves), Alternate(), horizon=6, seed=2)
    assert buy["retained"].mean() > no_buy["retained"].mean() + 0.03
    # without any delight weight, purchases change nothing
    flat = LongTermConfig(delight_weight=0.0)
    a = run_episode(_env(buy=0.0, config=flat), Alternate(), horizon=6, seed=2)
    b = run_episode(_env(buy=1.0, config=flat), Alternate(), horizon=6, seed=2)
    assert a["visits"].sum() == b["visits"].sum()


def test_bad_slates_are_named_and_runs_are_seeded():
    env = _env(n=10)
    with pytest.raises(ValueError, match="twice"):
        env.step(env.reset(), np.zeros((10, 2), dtype=int), np.random.default_rng(0))
    with pytest.raises(ValueError, match="slates must be"):
        env.step(env.reset(), np.zeros((10, 3), dtype=int), np.random.default_rng(0))
    first = run_episode(env, ThompsonPolicy(env.scores, env.k), horizon=5, seed=4)
    again = run_episode(env, ThompsonPolicy(env.scores, env.k), horizon=5, seed=4)
    pd.testing.assert_frame_equal(first, again)
    table = summarise_runs({"greedy": [run_episode(env, GreedyPolicy(env.scores, 2), 5, seed=s) for s in range(3)]})
    row = table.loc["greedy"]
    assert row["return_ci_low"] <= row["return"] <= row["return_ci_high"]


def test_environment_reads_the_simulator_and_leaves_it_unchanged():
    world = generate(n_users=200, n_items=150, n_weeks=2, seed=5)
    sim = Simulator(world, seed=0)
    users = world.users["user_id"].to_numpy()[:6]
    candidates = np.tile(world.items["item_id"].to_numpy()[:4], (6, 1))
    frame = pd.DataFrame({"user_id": np.repeat(users, 4), "item_id": candidates.ravel(), "rank": 1})
    before = sim.expected(frame)["p_click"].to_numpy()
    env = LongTermEnv.from_simulator(sim, users, candidates, np.zeros((6, 4)), k=2)
    np.testing.assert_allclose(env.p_click[:, :, 0].ravel(), before)
    np.testing.assert_allclose(env.p_click[:, :, 1], env.p_click[:, :, 0] / np.log2(3))
    np.testing.assert_allclose(sim.expected(frame)["p_click"].to_numpy(), before)
