"""Logged bandit feedback from the simulator: slates shown by a softmax logging policy, with known
propensities, and the true value of any other slate policy.

A :class:`SlateProblem` fixes the visitors, each visitor's candidates (say the top ``A`` of a
production model), the production scores and the simulated days, and asks the
:class:`~recsys_utils.simulation.simulator.Simulator` once for the exact click and purchase
probability of every (visitor, candidate, position, day). Then:

* :func:`log_feedback` -- the shop's log: visitors arrive uniformly over users and days, the logging
  policy draws a slate of ``k`` candidates from ``softmax(score / τ)`` without replacement
  (Plackett-Luce), the simulator's :meth:`~Simulator.respond` draws the clicks and purchases, and
  every row keeps its propensity (the marginal probability of that item at that position, and the
  probability of the whole slate);
* :func:`simulate_logs` -- many such logs at once, drawn from the same exact probabilities
  (for bias, variance and error over repeated logs);
* :func:`true_value` -- what a policy given by its per-position marginals earns, exactly:
  ``mean over users and days of Σ_{a,k} π(a at k | x) P(click | x, a, k)``;
* :func:`fit_reward_model` and :func:`estimate` -- a deliberately coarse reward model (click rate by
  production-score bin and position) and the four estimators of
  :mod:`recsys_utils.evaluation.off_policy` on one log.

References: L. Li, W. Chu, J. Langford, X. Wang (2011). *Unbiased offline evaluation of
contextual-bandit-based news article recommendation algorithms*. WSDM; Y. Saito et al. (2021).
*Open Bandit Dataset and Pipeline*. NeurIPS Datasets (the log's shape).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import ITEM, RANK, USER
from recsys_utils.evaluation.off_policy import (
    direct_method,
    doubly_robust,
    ips,
    plackett_luce_marginals,
    sample_plackett_luce,
    snips,
    softmax,
)

ESTIMATORS = ("dm", "ips", "snips", "dr")


@dataclass
class SlateProblem:
    """Visitors, candidates and the simulator's exact probabilities, ``(days, users, candidates, k)``."""

    user_ids: np.ndarray
    candidates: np.ndarray  # (users, A) item ids
    scores: np.ndarray  # (users, A) the production model's scores
    days: pd.DatetimeIndex
    p_click: np.ndarray  # (days, users, A, k)
    p_purchase: np.ndarray  # (days, users, A, k)

    @property
    def k(self) -> int:
        return self.p_click.shape[-1]

    @property
    def n_users(self) -> int:
        return len(self.user_ids)


@dataclass
class LoggedFeedback:
    """One log: per visit ``user`` (row of the problem), ``day``, the slate ``actions`` (candidate
    indices, visits x k), marginal ``propensity`` of each shown item at its position, ``clicked`` and
    ``purchased`` (0/1 floats). ``frame`` is the shop-log view (one row per shown item) when built."""

    user: np.ndarray
    day: np.ndarray
    actions: np.ndarray
    propensity: np.ndarray
    clicked: np.ndarray
    purchased: np.ndarray
    frame: pd.DataFrame | None = None

    def __len__(self) -> int:
        return len(self.user)


def make_slate_problem(simulator, user_ids, candidates, scores, days, k: int) -> SlateProblem:
    """Ask ``simulator.expected`` for every (visitor, candidate, position 1..k) on every day."""
    candidates = np.asarray(candidates)
    scores = np.asarray(scores, dtype=np.float64)
    user_ids = np.asarray(user_ids)
    if candidates.ndim != 2 or candidates.shape != scores.shape or len(user_ids) != len(candidates):
        raise ValueError(f"make_slate_problem: candidates {candidates.shape} and scores {scores.shape} must be "
                         f"(users, candidates) for the {len(user_ids)} user_ids")
    if not 1 <= k <= candidates.shape[1]:
        raise ValueError(f"make_slate_problem: k must be in 1..{candidates.shape[1]} (the candidates), got {k}")
    n, a = candidates.shape
    days = pd.DatetimeIndex(days)
    frame = pd.DataFrame({USER: np.repeat(user_ids, a * k), ITEM: np.repeat(candidates.ravel(), k),
                          RANK: np.tile(np.arange(1, k + 1), n * a)})
    clicks, buys = [], []
    for day in days:
        out = simulator.expected(frame, at=day)
        clicks.append(out["p_click"].to_numpy().reshape(n, a, k))
        buys.append(out["p_purchase"].to_numpy().reshape(n, a, k))
    return SlateProblem(user_ids, candidates, scores, days, np.stack(clicks), np.stack(buys))


def true_value(problem: SlateProblem, marginals: np.ndarray, reward: str = "click") -> float:
    """Exact expected reward per visit (clicks or purchases on the slate) of a policy with these
    per-position ``marginals`` (users, A, k), visitors uniform over users and days."""
    table = {"click": problem.p_click, "purchase": problem.p_purchase}
    if reward not in table:
        raise ValueError(f"true_value: reward must be 'click' or 'purchase', got {reward!r}")
    marginals = np.asarray(marginals, dtype=np.float64)
    if marginals.shape != problem.p_click.shape[1:]:
        raise ValueError(f"true_value: marginals have shape {marginals.shape}, expected {problem.p_click.shape[1:]}")
    return float(np.einsum("dnak,nak->", table[reward], marginals) / (len(problem.days) * problem.n_users))


def _draw_visits(problem: SlateProblem, n_visits: int, temperature: float, rng: np.random.Generator,
                 size: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if n_visits < 1:
        raise ValueError(f"n_visits must be >= 1, got {n_visits}")
    users = rng.integers(0, problem.n_users, size=(*size, n_visits))
    days = rng.integers(0, len(problem.days), size=(*size, n_visits))
    slates = sample_plackett_luce(problem.scores[users], problem.k, rng, temperature)
    return users, days, slates


def log_feedback(problem: SlateProblem, simulator, n_visits: int, temperature: float = 1.0,
                 seed: int = 0) -> LoggedFeedback:
    """The logging policy's log: ``n_visits`` slates from ``softmax(scores / temperature)``, answered by
    ``simulator.respond`` day by day. ``frame`` has one row per shown item: ``visit_id, timestamp,
    user_id, rank, item_id, propensity, slate_propensity, clicked, purchased``."""
    rng = np.random.default_rng(seed)
    users, days, slates = _draw_visits(problem, n_visits, temperature, rng)
    marginals = plackett_luce_marginals(problem.scores, problem.k, temperature)
    k = problem.k
    positions = np.arange(k)[None, :]
    propensity = marginals[users[:, None], slates, positions]
    probs = softmax(problem.scores[users], temperature)
    chosen = np.take_along_axis(probs, slates, axis=1)
    remaining = 1.0 - np.concatenate([np.zeros((n_visits, 1)), np.cumsum(chosen, axis=1)[:, :-1]], axis=1)
    frame = pd.DataFrame({
        "visit_id": np.repeat(np.arange(n_visits), k),
        "timestamp": problem.days[np.repeat(days, k)],
        USER: problem.user_ids[np.repeat(users, k)],
        RANK: np.tile(np.arange(1, k + 1), n_visits),
        ITEM: problem.candidates[users[:, None], slates].ravel(),
        "propensity": propensity.ravel(),
        "slate_propensity": np.repeat(np.prod(chosen / remaining, axis=1), k),
    })
    clicked = np.zeros(len(frame), dtype=bool)
    purchased = np.zeros(len(frame), dtype=bool)
    for d, day in enumerate(problem.days):
        rows = np.flatnonzero(np.repeat(days, k) == d)
        if rows.size:
            out = simulator.respond(frame.iloc[rows][[USER, ITEM, RANK]], at=day)
            clicked[rows] = out["clicked"].to_numpy()
            purchased[rows] = out["purchased"].to_numpy()
    frame["clicked"], frame["purchased"] = clicked, purchased
    return LoggedFeedback(users, days, slates, propensity, clicked.reshape(n_visits, k).astype(np.float64),
                          purchased.reshape(n_visits, k).astype(np.float64), frame)


def simulate_logs(problem: SlateProblem, n_visits: int, n_logs: int, temperature: float = 1.0,
                  seed: int = 0) -> list[LoggedFeedback]:
    """``n_logs`` independent logs of the same logging policy, drawn at once from the simulator's exact
    click probabilities (the same law as :func:`log_feedback`, without the per-row frame)."""
    if n_logs < 1:
        raise ValueError(f"simulate_logs: n_logs must be >= 1, got {n_logs}")
    rng = np.random.default_rng(seed)
    users, days, slates = _draw_visits(problem, n_visits, temperature, rng, size=(n_logs,))
    positions = np.arange(problem.k)
    marginals = plackett_luce_marginals(problem.scores, problem.k, temperature)
    propensity = marginals[users[..., None], slates, positions]
    p_click = problem.p_click[days[..., None], users[..., None], slates, positions]
    p_buy = problem.p_purchase[days[..., None], users[..., None], slates, positions]
    clicked = rng.random(p_click.shape) < p_click
    given_click = np.divide(p_buy, p_click, out=np.zeros_like(p_buy), where=p_click > 0)
    purchased = clicked & (rng.random(p_click.shape) < given_click)
    return [LoggedFeedback(users[r], days[r], slates[r], propensity[r], clicked[r].astype(np.float64),
                           purchased[r].astype(np.float64)) for r in range(n_logs)]


def fit_reward_model(problem: SlateProblem, feedback: LoggedFeedback, n_bins: int = 4) -> np.ndarray:
    """A coarse click model from the log: the click rate by (production-score quantile bin, position).

    Returns ``q̂`` of shape (users, A, k). It ignores everything about the user and the item except the
    production score: misspecified on purpose, as most reward models are (empty cells fall back to the
    position's rate).
    """
    if n_bins < 1:
        raise ValueError(f"fit_reward_model: n_bins must be >= 1, got {n_bins}")
    edges = np.quantile(problem.scores, np.linspace(0, 1, n_bins + 1)[1:-1])
    bins = np.searchsorted(edges, problem.scores)  # (users, A)
    k = problem.k
    cell = bins[feedback.user[:, None], feedback.actions] * k + np.arange(k)[None, :]
    shown = np.bincount(cell.ravel(), minlength=n_bins * k).reshape(n_bins, k)
    clicks = np.bincount(cell.ravel(), weights=feedback.clicked.ravel(), minlength=n_bins * k).reshape(n_bins, k)
    by_position = clicks.sum(axis=0) / np.maximum(shown.sum(axis=0), 1)
    rate = np.where(shown > 0, clicks / np.maximum(shown, 1), by_position[None, :])
    return rate[bins]  # (users, A, k)


def estimate(feedback: LoggedFeedback, target_marginals: np.ndarray, reward_hat: np.ndarray,
             clip: float | None = None) -> dict[str, float]:
    """DM, IPS, SNIPS and DR estimates of a target policy's clicks per visit from one log.

    ``target_marginals`` and ``reward_hat`` are (users, A, k); ``clip`` caps the weights of IPS, SNIPS and DR.
    """
    positions = np.arange(feedback.actions.shape[1])[None, :]
    rows = feedback.user[:, None]
    target = target_marginals[rows, feedback.actions, positions]
    q_logged = reward_hat[rows, feedback.actions, positions]
    q_target = np.einsum("vak,vak->vk", target_marginals[feedback.user], reward_hat[feedback.user])
    r, p0 = feedback.clicked, feedback.propensity
    return {"dm": direct_method(q_target), "ips": ips(r, target, p0, clip), "snips": snips(r, target, p0, clip),
            "dr": doubly_robust(r, target, p0, q_logged, q_target, clip)}


__all__ = ["ESTIMATORS", "LoggedFeedback", "SlateProblem", "estimate", "fit_reward_model", "log_feedback",
           "make_slate_problem", "simulate_logs", "true_value"]
