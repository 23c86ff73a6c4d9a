"""Long-term dynamics on top of the simulator: whether a user comes back depends on how the last visits felt.

Nothing here changes how the world is generated or how :class:`~recsys_utils.simulation.simulator.Simulator`
answers a list: :class:`LongTermEnv` asks the simulator once for the exact click and purchase
probabilities of each user's candidates at each position, and adds a satisfaction state on top,
switched on only by using it (so every other lesson's numbers stay as they were). After each visit:

* **fatigue** ``f ← m·f + repetition``, where repetition is the share of the slate that was already
  shown at the user's previous visit (the same list again and again tires people);
* **delight** ``d ← m·d + b_p·purchases + b_d·discoveries``, where a discovery is a click in a
  category leaf (the world's latent taxonomy) the user had not clicked before in this episode;
* the user **returns** for the next visit with probability ``σ(c + w_d·d - w_f·f)``; one who does not
  return is gone for the rest of the horizon (churn).

The memory ``m`` makes both fade. The reward of a visit is its clicks; the return of a policy is a
user's clicks summed over the horizon, so a policy that buys today's clicks with tomorrow's visits
can lose. :func:`run_episode` plays a policy; :class:`GreedyPolicy` (the myopic ranker) and
:class:`ThompsonPolicy` (a Beta-Bernoulli bandit per user and candidate) are the baselines.

References: J. Zhao et al. (2019). *Deep reinforcement learning for page-wise recommendations*
(user-state simulation); E. Ie et al. (2019). *RecSim: a configurable simulation platform for
recommender systems* (user choice plus a latent satisfaction that drives the session's end);
W. R. Thompson (1933); O. Chapelle, L. Li (2011).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from recsys_utils.core.vocabulary import ITEM, RANK, USER


@dataclass(frozen=True)
class LongTermConfig:
    """Satisfaction knobs: return-logit intercept, weights of delight and fatigue, their memory."""

    base_return: float = 3.0
    fatigue_weight: float = 0.8
    delight_weight: float = 0.6
    purchase_delight: float = 1.0
    discovery_delight: float = 0.5
    memory: float = 0.6

    def __post_init__(self) -> None:
        if not 0.0 <= self.memory < 1.0:
            raise ValueError(f"LongTermConfig: memory must be in [0, 1), got {self.memory!r}")
        for name in ("fatigue_weight", "delight_weight", "purchase_delight", "discovery_delight"):
            if getattr(self, name) < 0:
                raise ValueError(f"LongTermConfig: {name} must be >= 0, got {getattr(self, name)!r}")


def return_probability(fatigue, delight, config: LongTermConfig) -> np.ndarray:
    """P(the user comes back for the next visit) = σ(c + w_d·delight - w_f·fatigue)."""
    logit = (config.base_return + config.delight_weight * np.asarray(delight)
             - config.fatigue_weight * np.asarray(fatigue))
    return 1.0 / (1.0 + np.exp(-logit))


@dataclass
class LongTermState:
    """Per user: ``active``, ``fatigue``, ``delight``; per user and candidate: ``shown_last`` (at the
    previous visit), ``exposures`` (times shown), ``clicks``; ``clicked_leaf`` (users x leaves); ``t`` the visit."""

    active: np.ndarray
    fatigue: np.ndarray
    delight: np.ndarray
    shown_last: np.ndarray
    exposures: np.ndarray
    clicks: np.ndarray
    clicked_leaf: np.ndarray
    t: int = 0


class LongTermEnv:
    """Users, their candidates and the simulator's exact probabilities, plus the satisfaction dynamics.

    ``p_click`` and ``p_purchase`` are (users, A, k); ``leaf`` (users, A) the candidates' category leaves.
    Build it from the simulator with :meth:`from_simulator`.
    """

    def __init__(self, p_click: np.ndarray, p_purchase: np.ndarray, leaf: np.ndarray, scores: np.ndarray,
                 config: LongTermConfig | None = None) -> None:
        self.p_click = np.asarray(p_click, dtype=np.float64)
        self.p_purchase = np.asarray(p_purchase, dtype=np.float64)
        if self.p_click.ndim != 3 or self.p_purchase.shape != self.p_click.shape:
            raise ValueError(f"LongTermEnv: p_click {self.p_click.shape} and p_purchase {self.p_purchase.shape} "
                             "must both be (users, candidates, k)")
        self.leaf = np.unique(np.asarray(leaf), return_inverse=True)[1].reshape(self.p_click.shape[:2])
        self.scores = np.asarray(scores, dtype=np.float64)
        if self.scores.shape != self.p_click.shape[:2]:
            raise ValueError(f"LongTermEnv: scores have shape {self.scores.shape}, expected {self.p_click.shape[:2]}")
        self.config = config or LongTermConfig()
        self.buy_given_click = np.divide(self.p_purchase, self.p_click, out=np.zeros_like(self.p_click),
                                         where=self.p_click > 0)

    @classmethod
    def from_simulator(cls, simulator, user_ids, candidates, scores, k: int, at=None,
                       config: LongTermConfig | None = None) -> LongTermEnv:
        """Exact probabilities of every (user, candidate, position 1..k) at ``at`` from ``simulator.expected``;
        category leaves from the world's latent truth."""
        candidates = np.asarray(candidates)
        n, a = candidates.shape
        frame = pd.DataFrame({USER: np.repeat(np.asarray(user_ids), a * k), ITEM: np.repeat(candidates.ravel(), k),
                              RANK: np.tile(np.arange(1, k + 1), n * a)})
        out = simulator.expected(frame, at=at)
        world = simulator.world
        leaf = world.latent.item_leaf[world.item_positions(candidates.ravel())].reshape(n, a)
        return cls(out["p_click"].to_numpy().reshape(n, a, k), out["p_purchase"].to_numpy().reshape(n, a, k),
                   leaf, scores, config)

    def with_config(self, config: LongTermConfig) -> LongTermEnv:
        """The same users and probabilities under other satisfaction dynamics."""
        out = LongTermEnv.__new__(LongTermEnv)
        out.__dict__.update(self.__dict__)
        out.config = config
        return out

    @property
    def n_users(self) -> int:
        return self.p_click.shape[0]

    @property
    def n_candidates(self) -> int:
        return self.p_click.shape[1]

    @property
    def k(self) -> int:
        return self.p_click.shape[2]

    def reset(self) -> LongTermState:
        n, a = self.n_users, self.n_candidates
        return LongTermState(np.ones(n, dtype=bool), np.zeros(n), np.zeros(n), np.zeros((n, a), dtype=bool),
                             np.zeros((n, a)), np.zeros((n, a)), np.zeros((n, int(self.leaf.max()) + 1), dtype=bool))

    def step(self, state: LongTermState, slates: np.ndarray, rng: np.random.Generator):
        """Show ``slates`` (users x k candidate indices) to the active users; returns the new state, the
        clicks (users x k) and purchases (users x k). Inactive users see nothing and get zeros."""
        slates = np.asarray(slates, dtype=np.int64)
        n, k = self.n_users, self.k
        if slates.shape != (n, k) or (slates < 0).any() or (slates >= self.n_candidates).any():
            raise ValueError(f"LongTermEnv.step: slates must be ({n}, {k}) candidate indices "
                             f"in 0..{self.n_candidates - 1}")
        if (np.diff(np.sort(slates, axis=1), axis=1) == 0).any():
            raise ValueError("LongTermEnv.step: a slate shows the same candidate twice")
        rows = np.arange(n)[:, None]
        p = self.p_click[rows, slates, np.arange(k)[None, :]]
        active = state.active[:, None]
        clicks = (rng.random((n, k)) < p) & active
        buys = clicks & (rng.random((n, k)) < self.buy_given_click[rows, slates, np.arange(k)[None, :]])
        leaves = self.leaf[rows, slates]
        new_leaf = clicks & ~state.clicked_leaf[rows, leaves]
        discoveries = np.zeros(n)
        for j in range(k):  # k positions: count a leaf once even if two of its items were clicked
            first = new_leaf[:, j] & ~(leaves[:, :j] == leaves[:, j:j + 1]).any(axis=1) if j else new_leaf[:, j]
            discoveries += first
        cfg = self.config
        repetition = state.shown_last[rows, slates].mean(axis=1)
        on = state.active
        fatigue = np.where(on, cfg.memory * state.fatigue + repetition, state.fatigue)
        delight = np.where(on, cfg.memory * state.delight + cfg.purchase_delight * buys.sum(axis=1)
                           + cfg.discovery_delight * discoveries, state.delight)
        seen = np.flatnonzero(on)[:, None]
        shown = state.shown_last.copy()
        shown[on] = False
        shown[seen, slates[on]] = True
        exposures = state.exposures.copy()
        exposures[seen, slates[on]] += 1.0  # a slate never repeats a candidate
        clicked = state.clicks.copy()
        clicked[rows, slates] += clicks
        clicked_leaf = state.clicked_leaf.copy()
        clicked_leaf[rows, leaves] |= clicks
        returns = rng.random(n) < return_probability(fatigue, delight, cfg)
        new = LongTermState(on & returns, fatigue, delight, shown, exposures, clicked, clicked_leaf, state.t + 1)
        return new, clicks.astype(np.float64), buys.astype(np.float64)


class GreedyPolicy:
    """The myopic ranker: the top ``k`` candidates by the production scores, at every visit."""

    name = "greedy"

    def __init__(self, scores: np.ndarray, k: int) -> None:
        self.slates = np.argsort(-np.asarray(scores), axis=1, kind="stable")[:, :k]

    def act(self, state: LongTermState, rng: np.random.Generator) -> np.ndarray:
        return self.slates

    def observe(self, state: LongTermState, slates: np.ndarray, clicks: np.ndarray) -> None:
        return None


class ThompsonPolicy:
    """Thompson sampling per (user, candidate): a Beta posterior on the attraction, prior mean
    ``σ(score)`` with ``prior_strength`` pseudo-views; views are weighted by the examination
    ``1/log2(position + 1)`` so that a low position is not held against an item. Myopic: it
    maximises the next visit's clicks and explores only to learn them."""

    name = "thompson"

    def __init__(self, scores: np.ndarray, k: int, prior_strength: float = 4.0) -> None:
        prior = 1.0 / (1.0 + np.exp(-np.asarray(scores, dtype=np.float64)))
        self.alpha = prior_strength * prior
        self.beta = prior_strength * (1.0 - prior)
        self.k = k

    def act(self, state: LongTermState, rng: np.random.Generator) -> np.ndarray:
        draws = rng.beta(self.alpha, self.beta)
        return np.argsort(-draws, axis=1)[:, : self.k]

    def observe(self, state: LongTermState, slates: np.ndarray, clicks: np.ndarray) -> None:
        rows = np.arange(len(slates))[:, None]
        seen = state.active[:, None] * (1.0 / np.log2(np.arange(2, self.k + 2)))[None, :]
        self.alpha[rows, slates] += clicks  # a slate never repeats a candidate
        self.beta[rows, slates] += np.maximum(seen - clicks, 0.0)


def run_episode(env: LongTermEnv, policy, horizon: int, seed: int = 0) -> pd.DataFrame:
    """Play ``policy`` (``act(state, rng)``, optional ``observe(state, slates, clicks)``) for ``horizon``
    visits; one row per user: ``clicks``, ``purchases`` (summed over the horizon), ``visits`` and
    ``retained`` (still coming back after the last visit)."""
    if horizon < 1:
        raise ValueError(f"run_episode: horizon must be >= 1, got {horizon}")
    rng = np.random.default_rng(seed)
    state = env.reset()
    clicks, buys, visits = np.zeros(env.n_users), np.zeros(env.n_users), np.zeros(env.n_users)
    for _ in range(horizon):
        slates = policy.act(state, rng)
        visits += state.active
        new, c, b = env.step(state, slates, rng)
        if hasattr(policy, "observe"):
            policy.observe(state, slates, c)
        clicks += c.sum(axis=1)
        buys += b.sum(axis=1)
        state = new
    return pd.DataFrame({"clicks": clicks, "purchases": buys, "visits": visits, "retained": state.active})


def summarise_runs(runs: dict[str, list[pd.DataFrame]], level: float = 0.95) -> pd.DataFrame:
    """Mean return (clicks per user over the horizon), purchases, visits and retention per policy, with a
    t confidence interval of the return over the runs (seeds)."""
    rows = {}
    for name, frames in runs.items():
        per_seed = pd.DataFrame([f.mean() for f in frames])
        n = len(per_seed)
        mean, sd = per_seed["clicks"].mean(), per_seed["clicks"].std(ddof=1) if n > 1 else 0.0
        half = stats.t.ppf(0.5 + level / 2, n - 1) * sd / np.sqrt(n) if n > 1 else np.nan
        rows[name] = {"return": mean, "return_ci_low": mean - half, "return_ci_high": mean + half,
                      "purchases": per_seed["purchases"].mean(), "visits": per_seed["visits"].mean(),
                      "retention": per_seed["retained"].mean()}
    return pd.DataFrame(rows).T


__all__ = ["GreedyPolicy", "LongTermConfig", "LongTermEnv", "LongTermState", "ThompsonPolicy",
           "return_probability", "run_episode", "summarise_runs"]
