"""Off-policy estimators against brute force: exact expectations by enumerating every possible log of a
tiny problem with known propensities, per-log values against plain loops, IPS unbiased over many
simulated slate logs, DR's two limits, exact Plackett-Luce marginals and the simulator-backed log."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from recsys_utils.data.world import generate
from recsys_utils.evaluation.off_policy import (
    direct_method,
    doubly_robust,
    effective_sample_size,
    importance_weights,
    ips,
    plackett_luce_marginals,
    policy_divergence,
    sample_plackett_luce,
    snips,
    top_k_marginals,
)
from recsys_utils.simulation.logged_feedback import (
    SlateProblem,
    estimate,
    fit_reward_model,
    log_feedback,
    make_slate_problem,
    simulate_logs,
    true_value,
)
from recsys_utils.simulation.simulator import Simulator

# a tiny contextual bandit: 2 contexts, 3 actions, Bernoulli rewards
P_X = np.array([0.4, 0.6])
LOGGING = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
TARGET = np.array([[0.1, 0.1, 0.8], [0.7, 0.2, 0.1]])
MEAN = np.array([[0.2, 0.5, 0.9], [0.6, 0.1, 0.3]])
Q_HAT = np.array([[0.3, 0.3, 0.3], [0.5, 0.2, 0.2]])  # a wrong reward model


def _outcomes():
    """Every (x, a, r) of one visit with its probability."""
    for x, a, r in itertools.product(range(2), range(3), range(2)):
        yield (x, a, r), P_X[x] * LOGGING[x, a] * (MEAN[x, a] if r else 1 - MEAN[x, a])


def _arrays(log):
    x, a, r = (np.array(v) for v in zip(*log, strict=True))
    return x, a, r.astype(float), TARGET[x, a], LOGGING[x, a], Q_HAT[x, a], (TARGET * Q_HAT).sum(axis=1)[x]


def _loop_estimates(log, clip=None):
    """The four estimators written out visit by visit (an independent implementation)."""
    dm = ips_sum = dr = weight_sum = 0.0
    for x, a, r in log:
        w = TARGET[x, a] / LOGGING[x, a]
        w = min(w, clip) if clip is not None else w
        model = sum(TARGET[x, b] * Q_HAT[x, b] for b in range(3))
        dm += model
        ips_sum += w * r
        weight_sum += w
        dr += model + w * (r - Q_HAT[x, a])
    n = len(log)
    return {"dm": dm / n, "ips": ips_sum / n, "snips": ips_sum / weight_sum, "dr": dr / n}


def _package_estimates(log, clip=None):
    x, a, r, pe, p0, q_logged, q_target = _arrays(log)
    return {"dm": direct_method(q_target), "ips": ips(r, pe, p0, clip), "snips": snips(r, pe, p0, clip),
            "dr": doubly_robust(r, pe, p0, q_logged, q_target, clip)}


@pytest.mark.parametrize("clip", [None, 2.0])
def test_estimators_match_brute_force_over_every_log_of_two_visits(clip):
    truth = float((P_X[:, None] * TARGET * MEAN).sum())
    model_value = float((P_X[:, None] * TARGET * Q_HAT).sum())
    w = TARGET / LOGGING if clip is None else np.minimum(TARGET / LOGGING, clip)
    clipped_truth = float((P_X[:, None] * LOGGING * w * MEAN).sum())
    expected = dict.fromkeys(("dm", "ips", "snips", "dr"), 0.0)
    for (first, p1), (second, p2) in itertools.product(list(_outcomes()), repeat=2):
        log = [first, second]
        got, loop = _package_estimates(log, clip), _loop_estimates(log, clip)
        for key in expected:
            assert got[key] == pytest.approx(loop[key], abs=1e-12), key
            expected[key] += p1 * p2 * got[key]
    assert expected["dm"] == pytest.approx(model_value, abs=1e-12)  # DM: the model's value, not the truth
    assert abs(model_value - truth) > 0.05
    assert expected["ips"] == pytest.approx(clipped_truth, abs=1e-12)  # IPS: unbiased (clipping: known bias)
    if clip is None:
        assert expected["ips"] == pytest.approx(truth, abs=1e-12)
        assert expected["dr"] == pytest.approx(truth, abs=1e-12)  # DR: unbiased whatever the model
        assert abs(expected["snips"] - truth) > 1e-4  # SNIPS: biased at n = 2 (consistent only)
    else:
        assert clipped_truth < truth - 0.01


def test_doubly_robust_reduces_to_ips_and_to_dm():
    rng = np.random.default_rng(0)
    r = rng.random((50, 3)) < 0.3
    p0, pe = rng.uniform(0.1, 1.0, (50, 3)), rng.uniform(0.0, 1.0, (50, 3))
    q_logged, q_target = rng.random((50, 3)), rng.random((50, 3))
    assert doubly_robust(r, pe, p0, np.zeros_like(q_logged), np.zeros_like(q_target)) == pytest.approx(ips(r, pe, p0))
    assert doubly_robust(r, p0, p0, q_logged, q_target) == pytest.approx(
        direct_method(q_target) + (r - q_logged).sum(axis=1).mean())
    # weights one and a model that is right on the logged actions: DR is DM exactly
    assert doubly_robust(r, p0, p0, r.astype(float), q_target) == pytest.approx(direct_method(q_target))
    assert snips(r, p0, p0) == pytest.approx(ips(r, p0, p0))


def test_effective_sample_size_and_weights():
    assert effective_sample_size(np.ones(40)) == pytest.approx(40)
    assert effective_sample_size(np.r_[5.0, np.zeros(39)]) == pytest.approx(1)
    assert effective_sample_size(np.array([1.0, 3.0])) == pytest.approx(16 / 10)
    np.testing.assert_allclose(importance_weights([0.5, 0.9], [0.25, 0.3], clip=2.5), [2.0, 2.5])
    with pytest.raises(ValueError, match="logging_prob"):
        ips([1.0], [0.5], [0.0])
    with pytest.raises(ValueError, match="shape"):
        ips([1.0, 0.0], [0.5], [0.5, 0.5])
    with pytest.raises(ValueError, match="NaN"):
        snips([np.nan], [0.5], [0.5])


def test_plackett_luce_marginals_match_enumeration_of_every_slate():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(3, 5))
    k = 3
    got = plackett_luce_marginals(scores, k, temperature=0.7)
    w = np.exp(scores / 0.7)
    want = np.zeros_like(got)
    for slate in itertools.permutations(range(5), k):
        left = w.sum(axis=1).copy()
        prob = np.ones(3)
        for item in slate:
            prob *= w[:, item] / left
            left -= w[:, item]
        for position, item in enumerate(slate):
            want[:, item, position] += prob
    np.testing.assert_allclose(got, want, atol=1e-12)
    draws = sample_plackett_luce(np.repeat(scores[:1], 40_000, axis=0), k, rng, temperature=0.7)
    freq = np.stack([np.bincount(draws[:, j], minlength=5) / len(draws) for j in range(k)], axis=1)
    np.testing.assert_allclose(freq, got[0], atol=0.015)
    assert policy_divergence(got, got) == pytest.approx(0.0)
    assert policy_divergence(top_k_marginals(scores, k), got) > 0.5
    with pytest.raises(ValueError, match="prefixes"):
        plackett_luce_marginals(np.zeros((1, 40)), 5)


def _synthetic_problem(seed: int = 0) -> SlateProblem:
    rng = np.random.default_rng(seed)
    n, a, k = 30, 6, 3
    scores = rng.normal(size=(n, a))
    attract = 1 / (1 + np.exp(1.0 - 1.5 * scores - rng.normal(0, 0.3, (2, n, a))))  # the score matters, smoothly
    p_click = attract[..., None] / np.log2(np.arange(2, k + 2))[None, None, None, :]
    return SlateProblem(np.arange(n), np.arange(n * a).reshape(n, a), scores,
                        pd.date_range("2024-01-01", periods=2), p_click, 0.2 * p_click)


def test_ips_is_unbiased_over_many_simulated_slate_logs():
    problem = _synthetic_problem()
    target = plackett_luce_marginals(-problem.scores, problem.k, temperature=0.5)  # far from the logging policy
    truth = true_value(problem, target)
    logs = simulate_logs(problem, n_visits=200, n_logs=400, temperature=1.0, seed=3)
    values = {name: [] for name in ("dm", "ips", "snips", "dr")}
    for log in logs:
        for name, value in estimate(log, target, fit_reward_model(problem, log, n_bins=2)).items():
            values[name].append(value)
    ips_values = np.array(values["ips"])
    standard_error = ips_values.std() / np.sqrt(len(ips_values))
    assert abs(ips_values.mean() - truth) < 4 * standard_error, (ips_values.mean(), truth, standard_error)
    assert abs(np.mean(values["dr"]) - truth) < 4 * np.std(values["dr"]) / np.sqrt(len(logs))
    # the coarse reward model misses the truth: DM's bias is many of its standard errors
    dm = np.array(values["dm"])
    assert abs(dm.mean() - truth) > 5 * dm.std() / np.sqrt(len(dm))
    logging_value = true_value(problem, plackett_luce_marginals(problem.scores, problem.k))
    clicks = np.mean([log.clicked.sum(axis=1).mean() for log in logs])
    assert clicks == pytest.approx(logging_value, rel=0.03)


def test_log_from_the_simulator_has_the_shop_log_shape_and_right_propensities():
    world = generate(n_users=200, n_items=150, n_weeks=2, seed=5)
    sim = Simulator(world, seed=0)
    rng = np.random.default_rng(0)
    users = world.users["user_id"].to_numpy()[:20]
    candidates = np.stack([rng.choice(world.items["item_id"].to_numpy(), 5, replace=False) for _ in users])
    days = pd.date_range(world.end - pd.Timedelta(days=3), periods=2, freq="D")
    problem = make_slate_problem(sim, users, candidates, rng.normal(size=(20, 5)), days, k=3)
    feedback = log_feedback(problem, sim, n_visits=300, temperature=0.8, seed=1)
    frame = feedback.frame
    assert list(frame.columns) == ["visit_id", "timestamp", "user_id", "rank", "item_id", "propensity",
                                   "slate_propensity", "clicked", "purchased"]
    assert len(frame) == 900 and not frame.duplicated(["visit_id", "item_id"]).any()
    marginals = plackett_luce_marginals(problem.scores, 3, 0.8)
    np.testing.assert_allclose(feedback.propensity, marginals[feedback.user[:, None], feedback.actions, np.arange(3)])
    assert (frame["slate_propensity"] <= frame["propensity"] + 1e-12).all()
    expected = sim.expected(frame[["user_id", "item_id", "rank"]], at=None)  # the same table the log drew from
    assert expected["p_click"].notna().all() and (frame["purchased"] <= frame["clicked"]).all()
    assert true_value(problem, top_k_marginals(problem.p_click[0, :, :, 0], 3)) > true_value(problem, marginals)
