"""Graders of notebook 16 (serving and personalisation): MMR re-ranking, a LinUCB step, decayed
popularity and the Laplace mechanism, each against the package's own implementation."""

from __future__ import annotations

import numpy as np

from recsys_utils.course.graders.registry import grader
from recsys_utils.pipeline.privacy import laplace_counts
from recsys_utils.pipeline.realtime import DecayedPopularity
from recsys_utils.pipeline.rerank import mmr
from recsys_utils.simulation.bandits import LinUCB


def _as_items(value, name: str) -> np.ndarray:
    assert value is not None, f"{name} returned None"
    return np.asarray(value).astype(np.int64)


@grader("16.1")
def mmr_rerank(learner) -> str:
    """``learner(candidates, scores, item_vectors, k, trade_off)`` for one user equals
    :func:`recsys_utils.pipeline.rerank.mmr` on a batch of one."""
    rng = np.random.default_rng(10)
    vectors = rng.normal(size=(40, 6))
    vectors[:20] += 2.0 * rng.normal(size=6)  # a cluster of similar items, so diversity matters
    cases = 0
    for trade_off in (1.0, 0.7, 0.4):
        for _ in range(8):
            candidates = rng.permutation(40)[:15]
            n_valid = int(rng.integers(5, 16))
            candidates[n_valid:] = -1
            scores = np.where(candidates >= 0, rng.gamma(2.0, 2.0, 15), 0.0)
            order = np.argsort(-scores, kind="stable")
            candidates, scores = candidates[order], scores[order]
            k = 8
            expected = mmr(candidates[None], scores[None], vectors, k, trade_off)[0]
            got = _as_items(learner(candidates.copy(), scores.copy(), vectors.copy(), k, trade_off), "mmr_rerank")
            assert got.shape == (k,), f"return k={k} items (pad with -1), got shape {got.shape}"
            assert np.array_equal(got, expected), (
                f"trade_off={trade_off}, {n_valid} valid candidates: expected {expected.tolist()}, got {got.tolist()} "
                "(rel = scores min-max scaled over the valid candidates; penalty = the MAX cosine similarity to "
                "the items picked so far; ties go to the earlier candidate)")
            cases += 1
    return f"{cases} lists (three trade-offs, pads) equal recsys_utils.pipeline.rerank.mmr"


@grader("16.2")
def linucb(learner_choose, learner_update) -> str:
    """``learner_choose(A, b, contexts, alpha)`` and ``learner_update(A, b, contexts, arms, rewards)``
    follow :class:`recsys_utils.simulation.bandits.LinUCB` through several rounds."""
    rng = np.random.default_rng(2)
    n_arms, d = 4, 3
    for alpha in (0.0, 1.0, 3.0):
        policy = LinUCB(n_arms, d, alpha=alpha, ridge=1.0, seed=0)
        a, b = policy.a.copy(), policy.b.copy()
        for step in range(5):
            contexts = np.column_stack([np.ones(30), rng.random(30) < 0.2, rng.gamma(1.0, 1.0, 30)]).astype(float)
            expected = policy.choose(contexts)
            got = _as_items(learner_choose(a.copy(), b.copy(), contexts.copy(), alpha), "linucb_choose")
            assert got.shape == expected.shape, f"one arm per context row: shape {expected.shape}, got {got.shape}"
            assert np.array_equal(got, expected), (
                f"alpha={alpha}, round {step}: arms differ from LinUCB's on {int((got != expected).sum())} rows "
                "(score = x . theta_a + alpha * sqrt(x^T A_a^-1 x) with theta_a = A_a^-1 b_a)")
            rewards = rng.poisson(1.0 + expected).astype(float)
            policy.update(contexts, expected, rewards)
            result = learner_update(a.copy(), b.copy(), contexts.copy(), expected.copy(), rewards.copy())
            assert result is not None and len(result) == 2, "linucb_update must return (A, b)"
            a, b = (np.asarray(r, dtype=np.float64) for r in result)
            np.testing.assert_allclose(a, policy.a, rtol=1e-9, atol=1e-9,
                                       err_msg=f"alpha={alpha}, round {step}: A differs (A_a += sum of x x^T)")
            np.testing.assert_allclose(b, policy.b, rtol=1e-9, atol=1e-9,
                                       err_msg=f"alpha={alpha}, round {step}: b differs (b_a += sum of r x)")
    return "arms and ridge statistics equal recsys_utils.simulation.bandits.LinUCB for 3 alphas x 5 rounds"


@grader("16.3")
def decayed_update(learner) -> str:
    """Batches fed through ``learner(counts, clock, items, seconds, half_life_hours)`` give the counts of
    :class:`recsys_utils.pipeline.realtime.DecayedPopularity`."""
    rng = np.random.default_rng(5)
    n_items = 25
    for half_life in (1.0, 24.0):
        package = DecayedPopularity(n_items, half_life_hours=half_life)
        counts, clock, now = np.zeros(n_items), None, 0.0
        for batch in range(6):
            seconds = np.sort(now + rng.uniform(0, 3 * 3600 * half_life, 40))
            items = rng.integers(0, n_items, 40)
            now = float(seconds.max()) + rng.uniform(0, 3600)
            package.update(items, seconds)
            result = learner(counts.copy(), clock, items.copy(), seconds.copy(), half_life)
            assert result is not None and len(result) == 2, "decayed_update must return (counts, clock)"
            counts, clock = np.asarray(result[0], dtype=np.float64), result[1]
            assert clock is not None and abs(float(clock) - package.clock) < 1e-6, (
                f"the clock must move to the batch's latest event time {package.clock}, got {clock}")
            np.testing.assert_allclose(counts, package.counts, rtol=1e-9, atol=1e-12,
                                       err_msg=f"half-life {half_life} h, batch {batch}: counts differ "
                                               "(factor 2^(-dt / h) with h in seconds)")
    return "six batches at two half-lives equal recsys_utils.pipeline.realtime.DecayedPopularity"


@grader("16.4")
def laplace_release(learner) -> str:
    """``learner(counts, epsilon, sensitivity, seed)`` equals :func:`recsys_utils.pipeline.privacy.laplace_counts`
    and its noise has the Laplace mechanism's scale Δ/ε."""
    counts = np.random.default_rng(1).poisson(30.0, 5000).astype(float)
    for epsilon, sensitivity, seed in ((1.0, 1.0, 0), (0.1, 10.0, 3), (5.0, 2.0, 7)):
        got = learner(counts.copy(), epsilon, sensitivity, seed)
        assert got is not None, "laplace_release returned None"
        got = np.asarray(got, dtype=np.float64)
        expected = laplace_counts(counts, epsilon, sensitivity=sensitivity, seed=seed)
        assert got.shape == counts.shape, f"one noisy count per count: shape {counts.shape}, got {got.shape}"
        assert got.min() >= 0, "clip the noisy counts at 0 (post-processing keeps the guarantee)"
        scale = sensitivity / epsilon
        inside = (counts > 5 * scale) & (got > 0)
        if inside.sum() > 100:  # mean |noise| of Laplace(b) is b
            measured = float(np.abs(got[inside] - counts[inside]).mean())
            assert 0.8 * scale < measured < 1.2 * scale, (
                f"epsilon={epsilon}, sensitivity={sensitivity}: the noise's mean size is {measured:.3f}, "
                f"a Laplace mechanism's is sensitivity / epsilon = {scale:.3f}")
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12,
                                   err_msg=f"epsilon={epsilon}, seed={seed}: differs from laplace_counts "
                                           "(draw with np.random.default_rng(seed).laplace(0, scale, shape))")
    return "three (ε, Δ, seed) settings equal recsys_utils.pipeline.privacy.laplace_counts; noise scale Δ/ε"
