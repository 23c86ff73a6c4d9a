"""Exploration: bandit policies choosing which recall channel serves each user, on the simulator.

Each round (a simulated day) a batch of users arrives; a policy picks one arm (channel) per user;
the user sees that channel's list and the simulator draws clicks; the policy learns from the
batch. :func:`run_bandit` returns rewards and regret against the oracle that knows each user's
expected reward of every arm. Policies act on whole batches (no loop per user).

References: R. S. Sutton, A. G. Barto (2018). *Reinforcement Learning*, ch. 2 (ε-greedy);
W. R. Thompson (1933); O. Chapelle, L. Li (2011). *An Empirical Evaluation of Thompson Sampling*;
L. Li, W. Chu, J. Langford, R. E. Schapire (2010). *A contextual-bandit approach to personalized
news article recommendation* (LinUCB). WWW.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


class Policy:
    """Chooses an arm for each user of a batch and learns from the rewards."""

    name = "policy"

    def __init__(self, n_arms: int, seed: int = 0) -> None:
        self.n_arms = n_arms
        self.rng = np.random.default_rng(seed)
        self.pulls = np.zeros(n_arms)
        self.total = np.zeros(n_arms)

    @property
    def means(self) -> np.ndarray:
        return np.divide(self.total, self.pulls, out=np.zeros(self.n_arms), where=self.pulls > 0)

    def choose(self, contexts: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def update(self, contexts: np.ndarray, arms: np.ndarray, rewards: np.ndarray) -> None:
        self.pulls += np.bincount(arms, minlength=self.n_arms)
        self.total += np.bincount(arms, weights=rewards, minlength=self.n_arms)

    def _untried_first(self, n: int) -> np.ndarray | None:
        untried = np.flatnonzero(self.pulls == 0)
        if untried.size:
            return untried[np.arange(n) % untried.size]
        return None


class Greedy(Policy):
    """Try each arm once, then always pick the best empirical mean (no exploration)."""

    name = "greedy"

    def choose(self, contexts: np.ndarray) -> np.ndarray:
        first = self._untried_first(len(contexts))
        if first is not None:
            return first
        return np.full(len(contexts), int(self.means.argmax()))


class EpsilonGreedy(Policy):
    """With probability ε a random arm, otherwise the best empirical mean."""

    def __init__(self, n_arms: int, epsilon: float = 0.1, seed: int = 0) -> None:
        super().__init__(n_arms, seed)
        self.epsilon = epsilon
        self.name = f"epsilon_greedy_{epsilon:g}"

    def choose(self, contexts: np.ndarray) -> np.ndarray:
        first = self._untried_first(len(contexts))
        if first is not None:
            return first
        n = len(contexts)
        explore = self.rng.random(n) < self.epsilon
        return np.where(explore, self.rng.integers(0, self.n_arms, n), int(self.means.argmax()))


class ThompsonSampling(Policy):
    """Gaussian Thompson sampling on each arm's mean reward (rewards are click counts, not 0/1).

    Each user draws a mean per arm from N(mean, σ²/(pulls + 1)) and takes the arm with the highest
    draw; σ² is the pooled reward variance.
    """

    name = "thompson"

    def __init__(self, n_arms: int, seed: int = 0) -> None:
        super().__init__(n_arms, seed)
        self.square = np.zeros(n_arms)

    def update(self, contexts: np.ndarray, arms: np.ndarray, rewards: np.ndarray) -> None:
        super().update(contexts, arms, rewards)
        self.square += np.bincount(arms, weights=rewards**2, minlength=self.n_arms)

    def choose(self, contexts: np.ndarray) -> np.ndarray:
        n = len(contexts)
        pulls = self.pulls.sum()
        variance = (self.square.sum() / pulls - (self.total.sum() / pulls) ** 2) if pulls > 1 else 1.0
        scale = np.sqrt(max(variance, 1e-6) / (self.pulls + 1.0))
        draws = self.rng.normal(self.means, scale, size=(n, self.n_arms))
        return draws.argmax(axis=1)


class LinUCB(Policy):
    """Disjoint LinUCB: a ridge regression of reward on the user's context per arm, plus an
    upper-confidence bonus ``α·sqrt(xᵀA⁻¹x)``; personalised, unlike the context-free policies."""

    def __init__(self, n_arms: int, n_features: int, alpha: float = 0.5, ridge: float = 1.0, seed: int = 0) -> None:
        super().__init__(n_arms, seed)
        self.alpha = alpha
        self.name = f"linucb_{alpha:g}"
        self.a = np.repeat(ridge * np.eye(n_features)[None], n_arms, axis=0)
        self.b = np.zeros((n_arms, n_features))

    def choose(self, contexts: np.ndarray) -> np.ndarray:
        inverse = np.linalg.inv(self.a)  # (arms, d, d)
        theta = np.einsum("aij,aj->ai", inverse, self.b)
        mean = contexts @ theta.T  # (n, arms)
        width = np.sqrt(np.einsum("nd,aij,nj->na", contexts, inverse, contexts, optimize=True).clip(min=0))
        return (mean + self.alpha * width).argmax(axis=1)

    def update(self, contexts: np.ndarray, arms: np.ndarray, rewards: np.ndarray) -> None:
        super().update(contexts, arms, rewards)
        for arm in range(self.n_arms):  # loop over arms (a handful), not users
            chosen = arms == arm
            x = contexts[chosen]
            self.a[arm] += x.T @ x
            self.b[arm] += x.T @ rewards[chosen]


@dataclass
class BanditRun:
    """Per-round results of one policy."""

    policy: str
    rounds: pd.DataFrame  # round, users, reward, expected, oracle, regret

    @property
    def total_reward(self) -> float:
        return float(self.rounds["reward"].sum())

    @property
    def cumulative_regret(self) -> float:
        return float(self.rounds["regret"].sum())


def run_bandit(policy: Policy, expected: np.ndarray, contexts: np.ndarray, n_rounds: int, batch_size: int,
               seed: int = 0) -> BanditRun:
    """Play ``policy`` for ``n_rounds`` batches of users drawn at random (the same draws for every policy
    given ``seed``).

    ``expected[u, a]`` is user ``u``'s expected reward (e.g. clicks) under arm ``a`` from the
    simulator; observed rewards are Poisson draws around it. Regret is the oracle's expected reward
    (best arm per user) minus the expected reward of the chosen arms.
    """
    n_users, n_arms = expected.shape
    if policy.n_arms != n_arms:
        raise ValueError(f"run_bandit: policy has {policy.n_arms} arms, expected has {n_arms}")
    arrivals = np.random.default_rng(seed)
    noise = np.random.default_rng(seed + 1)
    rows = []
    best = expected.max(axis=1)
    for step in range(n_rounds):
        users = arrivals.integers(0, n_users, batch_size)
        arms = np.asarray(policy.choose(contexts[users]), dtype=np.int64)
        mean = expected[users, arms]
        rewards = noise.poisson(mean).astype(np.float64)
        policy.update(contexts[users], arms, rewards)
        rows.append((step, batch_size, rewards.sum(), mean.sum(), best[users].sum()))
    frame = pd.DataFrame(rows, columns=["round", "users", "reward", "expected", "oracle"])
    frame["regret"] = frame["oracle"] - frame["expected"]
    return BanditRun(policy.name, frame)
