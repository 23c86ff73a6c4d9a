"""Graders of notebook 15 (off-policy evaluation and RL): clipped IPS, self-normalised IPS, doubly robust,
the effective sample size and the top-K corrected REINFORCE loss, each against the package."""

from __future__ import annotations

import numpy as np
import torch

from recsys_utils.course.graders.answers import as_array
from recsys_utils.course.graders.registry import grader
from recsys_utils.evaluation.off_policy import doubly_robust, effective_sample_size, ips, snips
from recsys_utils.simulation.rl import topk_reinforce_loss


def _log(seed: int, n: int = 200) -> dict[str, np.ndarray]:
    """A random one-action log: rewards, target and logging propensities, reward-model values."""
    rng = np.random.default_rng(seed)
    logging = rng.uniform(0.02, 0.9, n)
    return {"rewards": (rng.random(n) < 0.3).astype(np.float64), "target": rng.uniform(0.0, 1.0, n),
            "logging": logging, "q_logged": rng.uniform(0.0, 0.6, n), "q_target": rng.uniform(0.0, 0.6, n)}


def _scalar(value, name: str) -> float:
    out = as_array(value, name)
    assert out.size == 1, f"{name} must return one number (the estimate), got an array of shape {out.shape}"
    return float(out.reshape(()))


@grader("15.1")
def clipped_ips(learner) -> str:
    """``learner(rewards, target_prob, logging_prob, clip)`` equals the package's ``ips``."""
    for seed, clip in [(0, None), (1, 5.0), (2, 1.5)]:
        log = _log(seed)
        want = ips(log["rewards"], log["target"], log["logging"], clip)
        got = _scalar(learner(log["rewards"].copy(), log["target"].copy(), log["logging"].copy(), clip), "ips_estimate")
        assert abs(got - want) < 1e-9, (
            f"with clip={clip} you get {got:.6f}, the package {want:.6f}: the weight is target / logging, capped "
            "at clip when clip is not None, and the estimate is the MEAN of weight x reward over all visits")
    return "clipped IPS equals recsys_utils.evaluation.off_policy.ips on three logs"


@grader("15.2")
def self_normalised_ips(learner) -> str:
    """``learner(rewards, target_prob, logging_prob)`` equals the package's ``snips``."""
    for seed in (3, 4):
        log = _log(seed)
        want = snips(log["rewards"], log["target"], log["logging"])
        got = _scalar(learner(log["rewards"].copy(), log["target"].copy(), log["logging"].copy()), "snips_estimate")
        assert abs(got - want) < 1e-9, (
            f"you get {got:.6f}, the package {want:.6f}: divide the SUM of weight x reward by the SUM of the weights "
            "(not by the number of visits)")
    return "SNIPS equals recsys_utils.evaluation.off_policy.snips on two logs"


@grader("15.3")
def doubly_robust_estimate(learner) -> str:
    """``learner(rewards, target_prob, logging_prob, logged_reward_hat, target_reward_hat)`` equals
    ``doubly_robust``."""
    for seed in (5, 6):
        log = _log(seed)
        args = (log["rewards"], log["target"], log["logging"], log["q_logged"], log["q_target"])
        want = doubly_robust(*args)
        got = _scalar(learner(*(a.copy() for a in args)), "dr_estimate")
        assert abs(got - want) < 1e-9, (
            f"you get {got:.6f}, the package {want:.6f}: DR is the mean of  target_reward_hat + weight x (reward - "
            "logged_reward_hat)  (the model's value plus the weighted residual at the logged action)")
    return "doubly robust equals recsys_utils.evaluation.off_policy.doubly_robust on two logs"


@grader("15.4")
def ess(learner) -> str:
    """``learner(weights)`` equals the package's ``effective_sample_size``."""
    rng = np.random.default_rng(7)
    for weights in (np.ones(30), rng.lognormal(0, 1.5, 100), np.r_[4.0, np.zeros(9)]):
        want = effective_sample_size(weights)
        got = _scalar(learner(weights.copy()), "effective_sample_size")
        assert abs(got - want) < 1e-9, (
            f"for {len(weights)} weights you get {got:.4f}, the package {want:.4f}: (sum of w)^2 / (sum of w^2)")
    return "the effective sample size equals the package's on equal, skewed and degenerate weights"


@grader("15.5")
def topk_loss(learner) -> str:
    """``learner(logits, actions, advantages, k)`` equals ``topk_reinforce_loss`` (on-policy) in value and gradient."""
    torch.manual_seed(0)
    logits = torch.randn(6, 8, dtype=torch.float64)
    actions = torch.stack([torch.randperm(8)[:3] for _ in range(6)])
    advantages = torch.randn(6, dtype=torch.float64)
    want_x = logits.clone().requires_grad_(True)
    want = topk_reinforce_loss(want_x, actions, advantages, 3)
    want.backward()
    got_x = logits.clone().requires_grad_(True)
    got = learner(got_x, actions.clone(), advantages.clone(), 3)
    assert isinstance(got, torch.Tensor) and got.numel() == 1, "topk_loss must return a scalar torch tensor"
    assert abs(got.item() - want.item()) < 1e-9, (
        f"the loss is {got.item():.6f}, the package's {want.item():.6f}: -mean over rows of the sum over the slate "
        "of lambda_K(a) * advantage * log pi(a|s), with lambda_K = K (1 - pi(a))^(K-1)")
    got.backward()
    assert got_x.grad is not None and torch.allclose(got_x.grad, want_x.grad, atol=1e-9), (
        "the value is right but the gradient is not: lambda_K must be a constant (detach pi before computing it)")
    return "the top-K REINFORCE loss equals the package's in value and gradient"
