"""Online A/B tests on a simulator: assignment, exact exposure, repeated trials, agreement."""

import numpy as np
import pandas as pd
import pytest
from helpers import FixedScores
from scipy import stats

from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.simulation.abtest import (
    Exposure,
    analytical_power,
    exposure,
    offline_online_agreement,
    required_sample_size,
    run_ab_test,
    simulate_trials,
    split_users,
    true_effect,
)


class TableSimulator:
    """p_click of (user, item) from a matrix, halved per rank; p_purchase = p_click / 4."""

    def __init__(self, p, seed=0):
        self.p = np.asarray(p)
        self.rng = np.random.default_rng(seed)

    def expected(self, recs, at=None):
        out = recs.copy()
        out["p_click"] = self.p[recs.user_id.to_numpy(), recs.item_id.to_numpy()] / recs["rank"].to_numpy()
        out["p_purchase"] = out["p_click"] / 4
        return out

    def respond(self, recs, at=None):
        out = self.expected(recs, at)
        out["clicked"] = self.rng.random(len(out)) < out["p_click"]
        out["purchased"] = out["clicked"] & (self.rng.random(len(out)) < 0.25)
        return out


def world(n_users=200, n_items=8, seed=0):
    rng = np.random.default_rng(seed)
    train = Interactions.from_frame(pd.DataFrame({"user_id": [0], "item_id": [0]}),
                                    IdIndex(range(n_users), "user_id"), IdIndex(range(n_items), "item_id"))
    p = rng.uniform(0.0, 0.6, size=(n_users, n_items))
    return train, p


def test_split_users_exact_and_seeded():
    arms = split_users(np.arange(101), shares=(0.3, 0.7), seed=4)
    assert np.bincount(arms).tolist() == [30, 71]
    np.testing.assert_array_equal(arms, split_users(np.arange(101), shares=(0.3, 0.7), seed=4))
    assert not np.array_equal(arms, split_users(np.arange(101), shares=(0.3, 0.7), seed=5))
    with pytest.raises(ValueError, match="duplicates"):
        split_users([1, 1, 2])
    with pytest.raises(ValueError, match="summing to 1"):
        split_users([1, 2, 3], shares=(0.5, 0.6))


def test_exposure_places_exact_probabilities():
    train, p = world()
    model = FixedScores(p).fit(train)  # recommends each user's items by p, no seen filter for users > 0
    exp = exposure(TableSimulator(p), model, np.arange(5, 10), k=3)
    for row, user in enumerate(range(5, 10)):
        best = np.sort(p[user])[::-1][:3]
        np.testing.assert_allclose(exp.p_click[row], best / np.arange(1, 4))
    np.testing.assert_allclose(exp.p_purchase, exp.p_click / 4)
    assert exp.true_ctr() == pytest.approx(exp.p_click.mean())


def test_true_sd_is_the_law_of_total_variance():
    p = np.array([[0.5, 0.1], [0.2, 0.0], [0.9, 0.9]])
    exp = Exposure("m", np.arange(3), p, p / 2)
    # enumerate: each user equally likely, clicks = sum of two independent Bernoullis
    values, probs = [], []
    for row in p:
        for a in (0, 1):
            for b in (0, 1):
                values.append(a + b)
                probs.append((row[0] if a else 1 - row[0]) * (row[1] if b else 1 - row[1]) / 3)
    values, probs = np.array(values), np.array(probs)
    mean = (values * probs).sum()
    assert exp.true_mean() == pytest.approx(mean)
    assert exp.true_sd() == pytest.approx(np.sqrt(((values - mean) ** 2 * probs).sum()))


def test_aa_false_positive_rate_and_ab_power():
    rng = np.random.default_rng(1)
    p_a = rng.beta(1, 8, size=(600, 5))
    control = Exposure("a", np.arange(600), p_a, p_a / 5)
    aa = simulate_trials(control, None, n_per_arm=300, n_trials=3000, seed=2)
    assert abs(aa.rejection_rate - 0.05) < 0.015
    assert aa.standard_error() == pytest.approx(np.sqrt(aa.rejection_rate * (1 - aa.rejection_rate) / 3000))
    treatment = Exposure("b", np.arange(600), np.clip(p_a * 1.25, 0, 1), p_a / 5)
    n = required_sample_size(control, treatment, power=0.7)
    assert analytical_power(control, treatment, n) == pytest.approx(0.7, abs=0.01)
    trials = simulate_trials(control, treatment, n_per_arm=min(n, 300), n_trials=2000, seed=3)
    predicted = analytical_power(control, treatment, min(n, 300))
    assert abs(trials.rejection_rate - predicted) < 0.04
    effect = true_effect(control, treatment)
    assert abs(trials.delta.mean() - effect["delta"]) < 4 * trials.delta.std() / np.sqrt(2000)


def test_run_ab_test_counts_and_direction():
    train, p = world(n_users=400)
    good, bad = FixedScores(p).fit(train), FixedScores(-p).fit(train)
    result = run_ab_test(TableSimulator(p, seed=1), {"bad": bad, "good": good}, np.arange(400), k=3, seed=0)
    assert result.arms["users"].tolist() == [200, 200]
    assert result.arms["impressions"].tolist() == [600, 600]
    assert result.arms["clicks"].sum() == result.per_user["clicks"].sum()
    assert result.delta > 0 and result.significant and result.winner == "good"
    assert result.ci_low < result.delta < result.ci_high
    with pytest.raises(ValueError, match="exactly two"):
        run_ab_test(TableSimulator(p), {"good": good}, np.arange(400))
    with pytest.raises(ValueError, match="metric"):
        run_ab_test(TableSimulator(p), {"bad": bad, "good": good}, np.arange(400), metric="revenue")


def test_offline_online_agreement():
    offline = {"a": 0.1, "b": 0.2, "c": 0.3, "d": 0.25}
    online = {"a": 1.0, "b": 3.0, "c": 2.0, "d": 4.0}
    tau = stats.kendalltau(list(offline.values()), list(online.values())).statistic
    assert offline_online_agreement(offline, online) == pytest.approx((tau + 1) / 2)
    assert offline_online_agreement({"a": 1, "b": 2}, {"b": 5, "a": 4}) == 1.0
    assert offline_online_agreement({"a": 1, "b": 1}, {"a": 4, "b": 5}) == 0.5
    with pytest.raises(ValueError, match="models differ"):
        offline_online_agreement({"a": 1, "b": 2}, {"a": 1, "c": 2})


def test_simulate_trials_bad_input():
    exp = Exposure("a", np.arange(10), np.full((10, 2), 0.1), np.full((10, 2), 0.01))
    with pytest.raises(ValueError, match="n_per_arm"):
        simulate_trials(exp, n_per_arm=6)
    with pytest.raises(ValueError, match="test must be"):
        simulate_trials(exp, test="session")
    other = Exposure("b", np.arange(1, 11), exp.p_click, exp.p_purchase)
    with pytest.raises(ValueError, match="different users"):
        simulate_trials(exp, other)
