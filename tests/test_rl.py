"""REINFORCE with the top-K off-policy correction: the loss against a hand-written loop and its gradient,
the state features, and a policy that learns to stop repeating itself where repetition drives users away."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recsys_utils.simulation.long_term import GreedyPolicy, LongTermConfig, LongTermEnv, run_episode
from recsys_utils.simulation.rl import FEATURES, state_features, topk_reinforce_loss, train_reinforce


def _loop_loss(logits, actions, advantages, k, behaviour, cap):
    total = 0.0
    for row in range(len(logits)):
        p = np.exp(logits[row] - logits[row].max())
        p /= p.sum()
        for a, b in zip(actions[row], behaviour[row], strict=True):
            weight = min(p[a] / b, cap)
            total += -weight * k * (1 - p[a]) ** (k - 1) * advantages[row] * np.log(p[a])
    return total / len(logits)


def test_topk_loss_matches_a_loop_and_its_gradient_skips_the_weights():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 6))
    actions = np.stack([rng.choice(6, 3, replace=False) for _ in range(5)])
    advantages = rng.normal(size=5)
    behaviour = rng.uniform(0.02, 0.5, size=(5, 3))
    got = topk_reinforce_loss(torch.tensor(logits), torch.tensor(actions), torch.tensor(advantages), 3,
                              torch.tensor(behaviour), cap=4.0)
    assert got.item() == pytest.approx(_loop_loss(logits, actions, advantages, 3, behaviour, 4.0), rel=1e-10)
    # the gradient is that of Σ c · log π(a) with the weights, λ_K and advantages held constant
    x = torch.tensor(logits, requires_grad=True)
    topk_reinforce_loss(x, torch.tensor(actions), torch.tensor(advantages), 3, torch.tensor(behaviour), 4.0).backward()
    with torch.no_grad():
        pi = torch.softmax(torch.tensor(logits), 1).gather(1, torch.tensor(actions))
        weight = torch.clamp(pi / torch.tensor(behaviour), max=4.0)
        const = weight * 3 * (1 - pi) ** 2 * torch.tensor(advantages)[:, None]
    y = torch.tensor(logits, requires_grad=True)
    (-(const * torch.log_softmax(y, 1).gather(1, torch.tensor(actions))).sum(1).mean()).backward()
    torch.testing.assert_close(x.grad, y.grad)
    # on-policy, K = 1: plain REINFORCE
    plain = topk_reinforce_loss(torch.tensor(logits), torch.tensor(actions[:, :1]), torch.tensor(advantages), 1)
    want = -(torch.log_softmax(torch.tensor(logits), 1).gather(1, torch.tensor(actions[:, :1]))[:, 0]
             * torch.tensor(advantages)).mean()
    assert plain.item() == pytest.approx(want.item())
    with pytest.raises(ValueError, match="same rows"):
        topk_reinforce_loss(torch.zeros(2, 3), torch.zeros(3, 1, dtype=torch.long), torch.zeros(2), 1)


def _punishing_env(n=300, a=6, k=2):
    """Every candidate equally attractive (production scores rank them anyway); repetition costs a lot."""
    p_click = np.full((n, a, k), 0.3) / np.log2(np.arange(2, k + 2))[None, None, :]
    config = LongTermConfig(base_return=2.0, fatigue_weight=3.0, delight_weight=0.0, memory=0.5)
    return LongTermEnv(p_click, 0 * p_click, np.zeros((n, a), dtype=int), -np.arange(a, dtype=float)[None].repeat(n, 0),
                       config)


def test_state_features_describe_the_state():
    env = _punishing_env(n=4)
    state = env.reset()
    state, _, _ = env.step(state, np.tile([0, 1], (4, 1)), np.random.default_rng(0))
    f = state_features(state, env.scores, horizon=5)
    assert f.shape == (4, 6, len(FEATURES)) and f.dtype == np.float32
    np.testing.assert_array_equal(f[:, :, FEATURES.index("shown_last")], np.tile([1, 1, 0, 0, 0, 0], (4, 1)))
    assert np.allclose(f[:, :, FEATURES.index("progress")], 1 / 5)
    assert np.allclose(f[:, :, FEATURES.index("score")].mean(axis=1), 0, atol=1e-6)


def test_reinforce_learns_to_rotate_where_repetition_drives_users_away():
    env = _punishing_env()
    policy, history = train_reinforce(env, horizon=6, epochs=25, lr=0.03, seed=0)
    assert len(history.to_frame()) == 25
    greedy = np.mean([run_episode(env, GreedyPolicy(env.scores, env.k), 6, seed=s)["clicks"].mean() for s in range(3)])
    learned = np.mean([run_episode(env, policy, 6, seed=s)["clicks"].mean() for s in range(3)])
    assert learned > 1.15 * greedy, (learned, greedy)
