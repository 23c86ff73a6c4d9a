"""Is model B really better than model A? Paired offline tests and the statistics of A/B tests.

Offline, both models are scored on the *same* users, so the right tools are paired: the paired
bootstrap of the mean per-user difference (Efron & Tibshirani 1993, ch. 13-16), the paired
t-test and the Wilcoxon signed-rank test (Smucker, Allan & Carterette 2007 compare them for
IR evaluation). Online, the arms hold *different* users, so the tests are two-sample: a
two-proportion z-test for a share of users (converted or not) and a Welch test for a mean per
user (clicks, purchases). Power and sample size use the usual normal approximations
(Chow, Shao & Wang, *Sample Size Calculations in Clinical Research*, 2008, ch. 3-4;
Kohavi, Tang & Xu, *Trustworthy Online Controlled Experiments*, 2020, ch. 17).

Every two-sample function accepts arrays and broadcasts, so thousands of simulated trials are
tested in one call (see :mod:`recsys_utils.simulation.abtest`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = [
    "BootstrapResult",
    "SignificanceResult",
    "mean_difference_test",
    "paired_bootstrap",
    "paired_ttest",
    "power_two_means",
    "power_two_proportions",
    "sample_size_two_means",
    "sample_size_two_proportions",
    "two_proportion_ztest",
    "wilcoxon_test",
]

ALTERNATIVES = ("two-sided", "larger", "smaller")


# --------------------------------------------------------------------------------------------
# checks
# --------------------------------------------------------------------------------------------


def _paired(a, b, where: str) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    if a.size != b.size:
        raise ValueError(f"{where}: paired samples need equal lengths, got {a.size} and {b.size}")
    if a.size < 2:
        raise ValueError(f"{where}: need at least 2 paired values, got {a.size}")
    bad = ~(np.isfinite(a) & np.isfinite(b))
    if bad.any():
        raise ValueError(f"{where}: non-finite value in pair {int(np.flatnonzero(bad)[0])}")
    return a, b


def _check_alpha(alpha: float, name: str = "alpha") -> float:
    if not 0 < alpha < 1:
        raise ValueError(f"{name} must lie in (0, 1), got {alpha}")
    return float(alpha)


def _check_alternative(alternative: str) -> str:
    if alternative not in ALTERNATIVES:
        raise ValueError(f"alternative must be one of {ALTERNATIVES}, got {alternative!r}")
    return alternative


def _z_p_value(z, alternative: str):
    """p-value of a standard normal statistic (``larger``: H1 says the statistic is positive)."""
    if alternative == "two-sided":
        return 2.0 * stats.norm.sf(np.abs(z))
    if alternative == "larger":
        return stats.norm.sf(z)
    return stats.norm.cdf(z)


# --------------------------------------------------------------------------------------------
# paired (offline) comparisons
# --------------------------------------------------------------------------------------------


@dataclass
class BootstrapResult:
    """Paired bootstrap of ``mean(b - a)``: the observed difference, its CI and the replicates."""

    difference: float
    low: float
    high: float
    confidence: float
    p_value: float
    replicates: np.ndarray
    n: int

    @property
    def significant(self) -> bool:
        """Does the interval exclude 0?"""
        return not (self.low <= 0.0 <= self.high)

    def __repr__(self) -> str:
        return (f"BootstrapResult(diff={self.difference:.5f}, {self.confidence:.0%} CI "
                f"[{self.low:.5f}, {self.high:.5f}], p={self.p_value:.4f}, n={self.n}, "
                f"B={self.replicates.size})")


def paired_bootstrap(a, b, n_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0,
                     chunk_cells: int = 1 << 24) -> BootstrapResult:
    """Percentile bootstrap CI of the mean paired difference ``mean(b - a)``.

    Users are resampled with replacement, keeping each user's pair together (the pairing is what
    makes a small difference between two models measurable). The resampling is vectorised: a
    ``(B_chunk, n)`` matrix of random indices per chunk, each row's mean taken at once, so no
    Python loop runs per replicate. ``p_value`` is the two-sided bootstrap p-value
    ``2 min(P*(d <= 0), P*(d >= 0))`` (capped at 1). Efron & Tibshirani (1993), ch. 13 and 16.
    """
    a, b = _paired(a, b, "paired_bootstrap")
    if not 0 < confidence < 1:
        raise ValueError(f"paired_bootstrap: confidence must lie in (0, 1), got {confidence}")
    if n_resamples < 100:
        raise ValueError(f"paired_bootstrap: n_resamples must be >= 100, got {n_resamples}")
    diff = b - a
    n = diff.size
    rng = np.random.default_rng(seed)
    per_chunk = max(1, chunk_cells // n)
    replicates = np.empty(n_resamples, dtype=np.float64)
    for start in range(0, n_resamples, per_chunk):
        stop = min(start + per_chunk, n_resamples)
        index = rng.integers(0, n, size=(stop - start, n))
        replicates[start:stop] = diff[index].mean(axis=1)
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(replicates, [tail, 1.0 - tail])
    p_value = min(1.0, 2.0 * min((replicates <= 0).mean(), (replicates >= 0).mean()))
    return BootstrapResult(float(diff.mean()), float(low), float(high), float(confidence),
                           float(p_value), replicates, n)


@dataclass
class SignificanceResult:
    """A test's statistic and p-value, with the observed difference it concerns."""

    name: str
    statistic: float
    p_value: float
    difference: float
    n: int

    def reject(self, alpha: float = 0.05) -> bool:
        return bool(self.p_value < _check_alpha(alpha))


def paired_ttest(a, b, alternative: str = "two-sided") -> SignificanceResult:
    """Paired t-test of ``mean(b - a) = 0`` (``scipy.stats.ttest_rel(b, a)``)."""
    a, b = _paired(a, b, "paired_ttest")
    alternative = _check_alternative(alternative)
    scipy_alt = {"two-sided": "two-sided", "larger": "greater", "smaller": "less"}[alternative]
    if np.all(b - a == (b - a)[0]):
        raise ValueError("paired_ttest: every paired difference is equal; the t statistic is undefined")
    result = stats.ttest_rel(b, a, alternative=scipy_alt)
    return SignificanceResult("paired t-test", float(result.statistic), float(result.pvalue), float((b - a).mean()),
                      a.size)


def wilcoxon_test(a, b, alternative: str = "two-sided") -> SignificanceResult:
    """Wilcoxon signed-rank test of the paired differences ``b - a`` (zero differences dropped).

    Per-user ranking metrics are mostly zeros and ties, so the test works on the users where the
    two models differ (``zero_method="wilcox"``, the normal approximation with tie correction).
    """
    a, b = _paired(a, b, "wilcoxon_test")
    alternative = _check_alternative(alternative)
    scipy_alt = {"two-sided": "two-sided", "larger": "greater", "smaller": "less"}[alternative]
    if np.all(b == a):
        raise ValueError("wilcoxon_test: the two samples are identical; nothing to test")
    result = stats.wilcoxon(b, a, zero_method="wilcox", alternative=scipy_alt, method="approx")
    return SignificanceResult("Wilcoxon signed-rank", float(result.statistic), float(result.pvalue),
                      float((b - a).mean()), a.size)


# --------------------------------------------------------------------------------------------
# two-sample (online) tests, vectorised over trials
# --------------------------------------------------------------------------------------------


def two_proportion_ztest(successes_a, n_a, successes_b, n_b, alternative: str = "two-sided"
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Pooled two-proportion z-test of ``p_b - p_a``; returns ``(z, p_value)``; broadcasts.

    ``z = (p̂_b - p̂_a) / sqrt(p̂ (1 - p̂) (1/n_a + 1/n_b))`` with the pooled ``p̂``. When both
    arms are all successes or all failures the difference is 0 and ``z = 0``, ``p = 1``.
    """
    alternative = _check_alternative(alternative)
    s_a, s_b = np.asarray(successes_a, dtype=np.float64), np.asarray(successes_b, dtype=np.float64)
    n_a, n_b = np.asarray(n_a, dtype=np.float64), np.asarray(n_b, dtype=np.float64)
    if (n_a <= 0).any() or (n_b <= 0).any():
        raise ValueError("two_proportion_ztest: group sizes must be positive")
    if (s_a < 0).any() or (s_b < 0).any() or (s_a > n_a).any() or (s_b > n_b).any():
        raise ValueError("two_proportion_ztest: successes must lie between 0 and the group size")
    pooled = (s_a + s_b) / (n_a + n_b)
    se = np.sqrt(pooled * (1.0 - pooled) * (1.0 / n_a + 1.0 / n_b))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(se > 0, (s_b / n_b - s_a / n_a) / np.where(se > 0, se, 1.0), 0.0)
    p = _z_p_value(z, alternative)
    if np.ndim(z) == 0:
        return float(z), float(p)
    return z, p


def mean_difference_test(mean_a, var_a, n_a, mean_b, var_b, n_b, alternative: str = "two-sided"
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Welch's z-test of ``mean_b - mean_a`` from summary statistics; returns ``(z, p_value)``.

    ``var_*`` are the sample variances (``ddof=1``). With the thousands of users of an A/B test
    the t distribution is the normal one, so the normal tail is used; pass arrays to test many
    trials at once. Zero standard error gives ``z = 0``, ``p = 1``.
    """
    alternative = _check_alternative(alternative)
    mean_a, mean_b = np.asarray(mean_a, dtype=np.float64), np.asarray(mean_b, dtype=np.float64)
    var_a, var_b = np.asarray(var_a, dtype=np.float64), np.asarray(var_b, dtype=np.float64)
    n_a, n_b = np.asarray(n_a, dtype=np.float64), np.asarray(n_b, dtype=np.float64)
    if (n_a < 2).any() or (n_b < 2).any():
        raise ValueError("mean_difference_test: each group needs at least 2 users")
    if (var_a < 0).any() or (var_b < 0).any():
        raise ValueError("mean_difference_test: variances must be >= 0")
    se = np.sqrt(var_a / n_a + var_b / n_b)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(se > 0, (mean_b - mean_a) / np.where(se > 0, se, 1.0), 0.0)
    p = _z_p_value(z, alternative)
    if np.ndim(z) == 0:
        return float(z), float(p)
    return z, p


# --------------------------------------------------------------------------------------------
# power and sample size
# --------------------------------------------------------------------------------------------


def _z_alpha(alpha: float, alternative: str) -> float:
    alpha = _check_alpha(alpha)
    return stats.norm.isf(alpha / 2.0 if _check_alternative(alternative) == "two-sided" else alpha)


def _power_from(effect: float, se_null: float, se_alt: float, alpha: float, alternative: str) -> float:
    """P(reject) when the statistic's numerator is N(effect, se_alt²) and the test uses se_null."""
    z_crit = _z_alpha(alpha, alternative)
    if alternative == "larger":
        return float(stats.norm.sf((z_crit * se_null - effect) / se_alt))
    if alternative == "smaller":
        return float(stats.norm.cdf((-z_crit * se_null - effect) / se_alt))
    return float(stats.norm.sf((z_crit * se_null - effect) / se_alt)
                 + stats.norm.cdf((-z_crit * se_null - effect) / se_alt))


def _check_proportions(p_a: float, p_b: float) -> None:
    for name, p in (("p_a", p_a), ("p_b", p_b)):
        if not 0 < p < 1:
            raise ValueError(f"{name} must lie in (0, 1), got {p}")


def power_two_proportions(p_a: float, p_b: float, n_per_arm: float, alpha: float = 0.05,
                          alternative: str = "two-sided") -> float:
    """Power of the pooled two-proportion z-test with ``n_per_arm`` users in each arm.

    Under H1 the difference ``p_b - p_a`` has standard error ``sqrt((p_a q_a + p_b q_b) / n)``;
    the test rejects when it exceeds ``z_{1-α/2}`` pooled standard errors
    ``sqrt(2 p̄ q̄ / n)`` (Chow, Shao & Wang 2008, sec. 4.2; both tails counted when two-sided).
    """
    _check_proportions(p_a, p_b)
    if n_per_arm <= 0:
        raise ValueError(f"n_per_arm must be positive, got {n_per_arm}")
    pooled = (p_a + p_b) / 2.0
    se_null = math.sqrt(2.0 * pooled * (1.0 - pooled) / n_per_arm)
    se_alt = math.sqrt((p_a * (1 - p_a) + p_b * (1 - p_b)) / n_per_arm)
    return _power_from(p_b - p_a, se_null, se_alt, alpha, alternative)


def sample_size_two_proportions(p_a: float, p_b: float, alpha: float = 0.05, power: float = 0.8,
                                alternative: str = "two-sided") -> int:
    """Users per arm for the two-proportion z-test to detect ``p_b - p_a`` with ``power``.

    ``n = (z_{1-α/2} sqrt(2 p̄ q̄) + z_{power} sqrt(p_a q_a + p_b q_b))² / (p_b - p_a)²``,
    rounded up (Chow, Shao & Wang 2008, eq. 4.2.2 without continuity correction).
    """
    _check_proportions(p_a, p_b)
    _check_alpha(power, "power")
    if p_a == p_b:
        raise ValueError("sample_size_two_proportions: p_a == p_b, no sample size detects no effect")
    pooled = (p_a + p_b) / 2.0
    z_a, z_b = _z_alpha(alpha, alternative), stats.norm.ppf(power)
    numerator = z_a * math.sqrt(2 * pooled * (1 - pooled)) + z_b * math.sqrt(p_a * (1 - p_a) + p_b * (1 - p_b))
    return int(math.ceil(numerator ** 2 / (p_b - p_a) ** 2))


def _check_sd(sd_a: float, sd_b: float | None) -> tuple[float, float]:
    sd_b = sd_a if sd_b is None else sd_b
    if sd_a <= 0 or sd_b <= 0:
        raise ValueError(f"standard deviations must be positive, got {sd_a} and {sd_b}")
    return float(sd_a), float(sd_b)


def power_two_means(delta: float, sd_a: float, n_per_arm: float, alpha: float = 0.05,
                    sd_b: float | None = None, alternative: str = "two-sided") -> float:
    """Power of the (Welch) z-test of a difference ``delta`` in means with ``n_per_arm`` per arm.

    ``se = sqrt((sd_a² + sd_b²) / n)``; power ``= Φ(δ/se - z_{1-α/2}) + Φ(-δ/se - z_{1-α/2})``
    for a two-sided test (Chow, Shao & Wang 2008, sec. 3.2).
    """
    sd_a, sd_b = _check_sd(sd_a, sd_b)
    if n_per_arm <= 0:
        raise ValueError(f"n_per_arm must be positive, got {n_per_arm}")
    se = math.sqrt((sd_a ** 2 + sd_b ** 2) / n_per_arm)
    return _power_from(delta, se, se, alpha, alternative)


def sample_size_two_means(delta: float, sd_a: float, alpha: float = 0.05, power: float = 0.8,
                          sd_b: float | None = None, alternative: str = "two-sided") -> int:
    """Users per arm to detect a difference ``delta`` in means: ``(z_α + z_β)² (sd_a² + sd_b²) / δ²``.

    With equal spreads this is the classic ``2 (z_{1-α/2} + z_{1-β})² σ² / δ²``; e.g. δ = 0.5σ at
    α = 0.05 and 80 % power needs 63 per arm.
    """
    sd_a, sd_b = _check_sd(sd_a, sd_b)
    _check_alpha(power, "power")
    if delta == 0:
        raise ValueError("sample_size_two_means: delta == 0, no sample size detects no effect")
    z_a, z_b = _z_alpha(alpha, alternative), stats.norm.ppf(power)
    return int(math.ceil((z_a + z_b) ** 2 * (sd_a ** 2 + sd_b ** 2) / delta ** 2))
