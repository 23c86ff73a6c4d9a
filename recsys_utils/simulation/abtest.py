"""Online A/B (and A/A) tests on the marketplace simulator (A/B测试).

An A/B test splits users at random into arms, shows each arm one model's top-k lists and
compares an online metric: clicks per user (CTR = clicks / impressions, since every user sees
k items) or purchases per user. The unit of randomisation is the user, so the test works on
per-user outcomes (a Welch z-test on their means); testing the pooled impressions as if they
were independent ignores that a user's clicks go together and inflates false positives
(Kohavi, Tang & Xu 2020, *Trustworthy Online Controlled Experiments*, ch. 18; Deng et al. 2018,
"Applying the Delta Method in Metric Analytics").

The simulator knows the truth: :meth:`~recsys_utils.simulation.simulator.Simulator.expected` gives
every shown item's exact click and purchase probability. So the lessons can check the
statistics themselves:

- :func:`run_ab_test` runs one experiment the way a company would (random split, each arm's
  model recommends, :meth:`Simulator.respond` draws the outcomes, the test);
- :func:`exposure` computes the exact probabilities once per model and :func:`simulate_trials`
  reuses them to draw thousands of experiments at once as matrices of Bernoulli draws (no refit,
  no Python loop per trial), giving the empirical false-positive rate of A/A tests and the
  empirical power of A/B tests, to compare with α and with the analytical power of
  :mod:`recsys_utils.evaluation.significance` for the true effect (:func:`true_effect`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from recsys_utils.core.vocabulary import ITEM, RANK, USER
from recsys_utils.evaluation.significance import (
    mean_difference_test,
    power_two_means,
    sample_size_two_means,
    two_proportion_ztest,
)

__all__ = [
    "ABTestResult",
    "Exposure",
    "TrialsResult",
    "analytical_power",
    "exposure",
    "offline_online_agreement",
    "required_sample_size",
    "run_ab_test",
    "simulate_trials",
    "split_users",
    "true_effect",
]

METRICS = ("clicks", "purchases")
_CHUNK_CELLS = 1 << 23  # draws materialised at once in simulate_trials


def _check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    return metric


# --------------------------------------------------------------------------------------------
# assignment
# --------------------------------------------------------------------------------------------


def split_users(user_ids, shares=(0.5, 0.5), seed: int = 0) -> np.ndarray:
    """Random arm of each user (0, 1, ...) with the given traffic ``shares`` (seeded).

    Exactly ``round(share * n)`` users per arm (the last arm takes the remainder): a random
    permutation cut at the cumulative shares.
    """
    user_ids = np.asarray(user_ids)
    shares = np.asarray(shares, dtype=np.float64)
    if shares.ndim != 1 or shares.size < 2 or (shares <= 0).any() or not np.isclose(shares.sum(), 1.0):
        raise ValueError(f"split_users: shares must be >= 2 positive numbers summing to 1, got {shares.tolist()}")
    if pd.Index(user_ids).has_duplicates:
        raise ValueError("split_users: user_ids contain duplicates; each user belongs to one arm")
    n = user_ids.size
    cuts = np.round(np.cumsum(shares)[:-1] * n).astype(np.int64)
    arm_of_position = np.searchsorted(cuts, np.arange(n), side="right")
    arms = np.empty(n, dtype=np.int64)
    arms[np.random.default_rng(seed).permutation(n)] = arm_of_position
    return arms


# --------------------------------------------------------------------------------------------
# exact expectations of one model's lists
# --------------------------------------------------------------------------------------------


@dataclass
class Exposure:
    """Exact click and purchase probabilities of the lists one model shows to ``user_ids``.

    ``p_click[u, r]`` / ``p_purchase[u, r]`` belong to the item at rank ``r + 1`` shown to user
    ``u`` (0 for empty slots). Outcomes of different slots are independent given the user.
    """

    model: str
    user_ids: np.ndarray
    p_click: np.ndarray
    p_purchase: np.ndarray

    def probabilities(self, metric: str) -> np.ndarray:
        return self.p_click if _check_metric(metric) == "clicks" else self.p_purchase

    def expected(self, metric: str = "clicks") -> np.ndarray:
        """Expected clicks (or purchases) of each user."""
        return self.probabilities(metric).sum(axis=1)

    def true_mean(self, metric: str = "clicks") -> float:
        """The population mean per user: what an arm's sample mean estimates."""
        return float(self.expected(metric).mean())

    def true_sd(self, metric: str = "clicks") -> float:
        """Population standard deviation of one random user's outcome.

        ``Var(Y) = Var_u(E[Y | u]) + E_u[sum_r p_ur (1 - p_ur)]``: the spread of users' expected
        outcomes plus the Bernoulli noise of their slots (law of total variance).
        """
        p = self.probabilities(metric)
        between = self.expected(metric).var(ddof=0)
        within = (p * (1.0 - p)).sum(axis=1).mean()
        return float(np.sqrt(between + within))

    @property
    def k(self) -> int:
        return int(self.p_click.shape[1])

    def true_ctr(self) -> float:
        """Expected clicks per impression (every user sees ``k`` slots)."""
        return self.true_mean("clicks") / self.k


def exposure(simulator, model, user_ids, k: int = 10, at=None, name: str | None = None) -> Exposure:
    """Exact probabilities of the top-``k`` lists ``model`` shows to ``user_ids`` at time ``at``."""
    user_ids = np.asarray(user_ids)
    recs = model.recommend(user_ids, k=k)
    expected = simulator.expected(recs, at)
    row = pd.Index(user_ids).get_indexer(expected[USER].to_numpy())
    col = expected[RANK].to_numpy() - 1
    p_click = np.zeros((user_ids.size, k))
    p_purchase = np.zeros((user_ids.size, k))
    p_click[row, col] = expected["p_click"].to_numpy()
    p_purchase[row, col] = expected["p_purchase"].to_numpy()
    return Exposure(name or getattr(model, "name", type(model).__name__), user_ids, p_click, p_purchase)


def true_effect(control: Exposure, treatment: Exposure, metric: str = "clicks") -> dict[str, float]:
    """The effect an A/B test of ``treatment`` vs ``control`` estimates, from the exact probabilities.

    Returns ``mean_control``, ``mean_treatment``, ``delta`` (their difference per user),
    ``relative`` (delta / mean_control) and the per-user standard deviations ``sd_control``,
    ``sd_treatment``.
    """
    _check_same_users(control, treatment)
    mean_a, mean_b = control.true_mean(metric), treatment.true_mean(metric)
    return {"mean_control": mean_a, "mean_treatment": mean_b, "delta": mean_b - mean_a,
            "relative": (mean_b - mean_a) / mean_a if mean_a else float("nan"),
            "sd_control": control.true_sd(metric), "sd_treatment": treatment.true_sd(metric)}


def analytical_power(control: Exposure, treatment: Exposure, n_per_arm: int, alpha: float = 0.05,
                     metric: str = "clicks") -> float:
    """Normal-approximation power of the per-user test for the simulator's true effect."""
    effect = true_effect(control, treatment, metric)
    return power_two_means(effect["delta"], effect["sd_control"], n_per_arm, alpha, sd_b=effect["sd_treatment"])


def required_sample_size(control: Exposure, treatment: Exposure, alpha: float = 0.05, power: float = 0.8,
                         metric: str = "clicks") -> int:
    """Users per arm to detect the simulator's true effect with ``power`` at level ``alpha``."""
    effect = true_effect(control, treatment, metric)
    return sample_size_two_means(effect["delta"], effect["sd_control"], alpha, power, sd_b=effect["sd_treatment"])


def _check_same_users(a: Exposure, b: Exposure) -> None:
    if a.user_ids.shape != b.user_ids.shape or not np.array_equal(a.user_ids, b.user_ids):
        raise ValueError(f"exposures {a.model!r} and {b.model!r} cover different users; build both for "
                         "the same user_ids")
    if a.k != b.k:
        raise ValueError(f"exposures {a.model!r} and {b.model!r} have different list lengths ({a.k}, {b.k})")


# --------------------------------------------------------------------------------------------
# one experiment, the way it runs in production
# --------------------------------------------------------------------------------------------


@dataclass
class ABTestResult:
    """One A/B test: per-arm summary, per-user outcomes and the test of treatment vs control."""

    arms: pd.DataFrame
    per_user: pd.DataFrame
    metric: str
    delta: float
    ci_low: float
    ci_high: float
    z: float
    p_value: float
    alpha: float

    @property
    def significant(self) -> bool:
        return bool(self.p_value < self.alpha)

    @property
    def winner(self) -> str | None:
        """The arm with the higher mean when the difference is significant, else ``None``."""
        if not self.significant:
            return None
        return str(self.arms.index[1] if self.delta > 0 else self.arms.index[0])


def run_ab_test(simulator, models: dict, user_ids, k: int = 10, at=None, metric: str = "clicks",
                alpha: float = 0.05, seed: int = 0) -> ABTestResult:
    """Split ``user_ids`` at random between the two ``models`` (control first), show each arm its
    model's top-``k`` lists, draw the responses with ``simulator.respond`` and test the per-user
    ``metric`` (clicks or purchases) with Welch's z-test; the CI is the normal one at ``1 - alpha``.
    """
    _check_metric(metric)
    if len(models) != 2:
        raise ValueError(f"run_ab_test: give exactly two models (control, treatment), got {len(models)}")
    user_ids = np.asarray(user_ids)
    arms = split_users(user_ids, seed=seed)
    frames = []
    for arm, (label, model) in enumerate(models.items()):
        users = user_ids[arms == arm]
        shown = simulator.respond(model.recommend(users, k=k), at)
        outcome = shown.groupby(USER, sort=False).agg(impressions=(ITEM, "size"), clicks=("clicked", "sum"),
                                                      purchases=("purchased", "sum"))
        outcome = outcome.reindex(users, fill_value=0)  # a user shown nothing still counts
        frames.append(outcome.assign(arm=label).rename_axis(USER).reset_index())
    per_user = pd.concat(frames, ignore_index=True)
    labels = list(models)
    per_user["arm"] = pd.Categorical(per_user["arm"], categories=labels)
    grouped = per_user.groupby("arm", observed=False)
    summary = grouped.agg(users=(USER, "size"), impressions=("impressions", "sum"), clicks=("clicks", "sum"),
                          purchases=("purchases", "sum"))
    summary["ctr"] = summary["clicks"] / summary["impressions"]
    summary["clicks_per_user"] = summary["clicks"] / summary["users"]
    summary["purchases_per_user"] = summary["purchases"] / summary["users"]
    mean = grouped[metric].mean()
    var = grouped[metric].var(ddof=1)
    n = summary["users"]
    z, p = mean_difference_test(mean.iloc[0], var.iloc[0], n.iloc[0], mean.iloc[1], var.iloc[1], n.iloc[1])
    delta = float(mean.iloc[1] - mean.iloc[0])
    half = stats.norm.isf(alpha / 2) * float(np.sqrt(var.iloc[0] / n.iloc[0] + var.iloc[1] / n.iloc[1]))
    return ABTestResult(summary, per_user, metric, delta, delta - half, delta + half, float(z), float(p), alpha)


# --------------------------------------------------------------------------------------------
# many experiments at once, from the exact probabilities
# --------------------------------------------------------------------------------------------


@dataclass
class TrialsResult:
    """Outcomes of repeated simulated experiments (one entry per trial)."""

    delta: np.ndarray
    z: np.ndarray
    p_value: np.ndarray
    alpha: float
    n_per_arm: int
    test: str

    @property
    def n_trials(self) -> int:
        return int(self.p_value.size)

    @property
    def rejection_rate(self) -> float:
        """Share of trials with ``p < alpha``: the false-positive rate of A/A trials, the power of A/B ones."""
        return float((self.p_value < self.alpha).mean())

    def standard_error(self, rate: float | None = None) -> float:
        """Binomial Monte-Carlo standard error ``sqrt(r (1 - r) / T)`` of a rejection rate ``r``."""
        rate = self.rejection_rate if rate is None else rate
        return float(np.sqrt(rate * (1.0 - rate) / self.n_trials))


def simulate_trials(control: Exposure, treatment: Exposure | None = None, n_per_arm: int | None = None,
                    n_trials: int = 1000, metric: str = "clicks", alpha: float = 0.05, test: str = "user",
                    seed: int = 0) -> TrialsResult:
    """Repeat an A/B test ``n_trials`` times from exact probabilities, all trials drawn at once.

    Each trial takes a fresh random permutation of the users: the first ``n_per_arm`` form the
    control arm (shown ``control``'s lists), the next ``n_per_arm`` the treatment arm (shown
    ``treatment``'s lists; ``None`` = an A/A test, the same lists). Every shown slot gets one
    uniform draw ``u``: a click if ``u < p_click``, a purchase if ``u < p_purchase`` (a purchase
    implies a click, with ``P(purchase | click) = p_purchase / p_click`` as in
    :meth:`Simulator.respond`). The draws are ``(trials, users, k)`` arrays taken in chunks.

    ``test="user"`` is the correct per-user Welch test; ``test="impression"`` pools impressions
    into a two-proportion z-test as if every impression were independent (``metric`` per
    impression), the common mistake the lessons measure.
    """
    treatment = control if treatment is None else treatment
    _check_same_users(control, treatment)
    _check_metric(metric)
    if test not in ("user", "impression"):
        raise ValueError(f"simulate_trials: test must be 'user' or 'impression', got {test!r}")
    n_users = control.user_ids.size
    n_per_arm = n_users // 2 if n_per_arm is None else int(n_per_arm)
    if n_per_arm < 2 or 2 * n_per_arm > n_users:
        raise ValueError(f"simulate_trials: n_per_arm must be between 2 and {n_users // 2} "
                         f"(half of the {n_users} users), got {n_per_arm}")
    if n_trials < 1:
        raise ValueError(f"simulate_trials: n_trials must be >= 1, got {n_trials}")
    p_a, p_b = control.probabilities(metric), treatment.probabilities(metric)
    k = control.k
    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_CELLS // (2 * n_per_arm * k + n_users))
    deltas, zs, ps = [], [], []
    for start in range(0, n_trials, chunk):
        t = min(chunk, n_trials - start)
        order = np.argsort(rng.random((t, n_users)), axis=1)
        users_a, users_b = order[:, :n_per_arm], order[:, n_per_arm:2 * n_per_arm]
        y_a = (rng.random((t, n_per_arm, k)) < p_a[users_a]).sum(axis=2, dtype=np.float64)
        y_b = (rng.random((t, n_per_arm, k)) < p_b[users_b]).sum(axis=2, dtype=np.float64)
        if test == "user":
            z, p = mean_difference_test(y_a.mean(1), y_a.var(1, ddof=1), n_per_arm,
                                        y_b.mean(1), y_b.var(1, ddof=1), n_per_arm)
        else:
            z, p = two_proportion_ztest(y_a.sum(1), n_per_arm * k, y_b.sum(1), n_per_arm * k)
        deltas.append(y_b.mean(1) - y_a.mean(1))
        zs.append(np.atleast_1d(z))
        ps.append(np.atleast_1d(p))
    return TrialsResult(np.concatenate(deltas), np.concatenate(zs), np.concatenate(ps), alpha, n_per_arm, test)


# --------------------------------------------------------------------------------------------
# offline vs online
# --------------------------------------------------------------------------------------------


def offline_online_agreement(offline, online) -> float:
    """Share of model pairs that the offline and the online metric order the same way.

    ``offline`` and ``online`` are mappings (or Series) from model name to a metric, higher =
    better; pairs tied on either side count half. 1 = the offline metric ranks models exactly as
    the online one does, 0.5 = no better than a coin. (Equal to ``(tau_a + 1) / 2`` without ties.)
    """
    offline, online = pd.Series(offline, dtype=np.float64), pd.Series(online, dtype=np.float64)
    if set(offline.index) != set(online.index):
        raise ValueError(f"offline_online_agreement: models differ: {sorted(map(str, offline.index))} vs "
                         f"{sorted(map(str, online.index))}")
    if len(offline) < 2:
        raise ValueError("offline_online_agreement: need at least two models")
    online = online.reindex(offline.index)
    i, j = np.triu_indices(len(offline), k=1)
    a = np.sign(offline.to_numpy()[i] - offline.to_numpy()[j])
    b = np.sign(online.to_numpy()[i] - online.to_numpy()[j])
    score = np.where((a == 0) | (b == 0), 0.5, (a == b).astype(np.float64))
    return float(score.mean())
