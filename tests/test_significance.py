"""Significance: hand cases, scipy.stats as the reference, and Monte-Carlo checks of power."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from recsys_utils.evaluation.significance import (
    mean_difference_test,
    paired_bootstrap,
    paired_ttest,
    power_two_means,
    power_two_proportions,
    sample_size_two_means,
    sample_size_two_proportions,
    two_proportion_ztest,
    wilcoxon_test,
)


def paired_sample(n: int = 400, shift: float = 0.02, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.random(n) * 0.3
    return a, a + shift + rng.normal(0, 0.1, n)


# ---------------------------------------------------------------- paired bootstrap


def test_bootstrap_constant_difference_has_a_degenerate_interval() -> None:
    a = np.arange(10.0)
    result = paired_bootstrap(a, a + 0.5, n_resamples=500)
    assert result.difference == pytest.approx(0.5)
    assert result.low == pytest.approx(0.5) and result.high == pytest.approx(0.5)
    assert result.significant and result.p_value == 0.0


def test_bootstrap_matches_the_normal_theory_interval() -> None:
    a, b = paired_sample(n=2000)
    result = paired_bootstrap(a, b, n_resamples=4000, seed=1)
    diff = b - a
    se = diff.std(ddof=1) / math.sqrt(diff.size)
    assert result.low < result.difference < result.high
    assert result.difference == pytest.approx(diff.mean())
    # the percentile interval of a mean of 2000 values is close to mean +- 1.96 se
    assert result.low == pytest.approx(diff.mean() - 1.96 * se, abs=0.15 * se)
    assert result.high == pytest.approx(diff.mean() + 1.96 * se, abs=0.15 * se)
    assert result.replicates.std() == pytest.approx(se, rel=0.06)


def test_bootstrap_is_seeded_and_chunking_does_not_matter_for_the_statistics() -> None:
    a, b = paired_sample(n=300)
    one = paired_bootstrap(a, b, n_resamples=1000, seed=5)
    two = paired_bootstrap(a, b, n_resamples=1000, seed=5)
    np.testing.assert_array_equal(one.replicates, two.replicates)
    small_chunks = paired_bootstrap(a, b, n_resamples=3000, seed=6, chunk_cells=300 * 7)
    assert small_chunks.replicates.size == 3000
    assert small_chunks.replicates.std() == pytest.approx(one.replicates.std(), rel=0.1)


def test_bootstrap_and_ttest_agree_on_the_decision() -> None:
    for shift, expected in ((0.05, True), (0.0, False)):
        a, b = paired_sample(n=600, shift=shift, seed=2)
        boot = paired_bootstrap(a, b, n_resamples=4000, seed=3)
        assert boot.significant == paired_ttest(a, b).reject(0.05) == expected


def test_bootstrap_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        paired_bootstrap([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="non-finite value in pair 1"):
        paired_bootstrap([1, np.nan, 3], [1, 2, 3])
    with pytest.raises(ValueError, match="confidence"):
        paired_bootstrap([1, 2, 3], [1, 2, 4], confidence=95)


# ---------------------------------------------------------------- paired tests


def test_paired_ttest_hand_case_and_scipy() -> None:
    # differences 1, 2, 3: mean 2, sd 1, t = 2 / (1 / sqrt 3)
    result = paired_ttest([0, 0, 0], [1, 2, 3])
    assert result.statistic == pytest.approx(2 * math.sqrt(3))
    assert result.p_value == pytest.approx(2 * stats.t.sf(2 * math.sqrt(3), 2))
    a, b = paired_sample()
    reference = stats.ttest_rel(b, a)
    result = paired_ttest(a, b)
    assert result.statistic == pytest.approx(reference.statistic)
    assert result.p_value == pytest.approx(reference.pvalue)
    assert paired_ttest(a, b, "larger").p_value == pytest.approx(reference.pvalue / 2)


def test_wilcoxon_matches_scipy() -> None:
    a, b = paired_sample(n=200, seed=4)
    b[:20] = a[:20]  # zero differences are dropped
    reference = stats.wilcoxon(b, a, zero_method="wilcox", method="approx")
    result = wilcoxon_test(a, b)
    assert result.statistic == pytest.approx(reference.statistic)
    assert result.p_value == pytest.approx(reference.pvalue)
    with pytest.raises(ValueError, match="identical"):
        wilcoxon_test(a, a)


# ---------------------------------------------------------------- two-sample tests


def test_two_proportion_ztest_hand_case() -> None:
    # 50/100 vs 60/100: pooled 0.55, se = sqrt(0.55 * 0.45 * 0.02)
    z, p = two_proportion_ztest(50, 100, 60, 100)
    se = math.sqrt(0.55 * 0.45 * 0.02)
    assert z == pytest.approx(0.1 / se)
    assert p == pytest.approx(2 * stats.norm.sf(0.1 / se))
    # chi-square test of the 2x2 table without correction is the same test (z² = chi²)
    chi2, p_chi, _, _ = stats.chi2_contingency([[50, 50], [60, 40]], correction=False)
    assert z ** 2 == pytest.approx(chi2) and p == pytest.approx(p_chi)
    _, p_larger = two_proportion_ztest(50, 100, 60, 100, alternative="larger")
    assert p_larger == pytest.approx(p / 2)


def test_two_proportion_ztest_broadcasts_and_handles_degenerate_arms() -> None:
    z, p = two_proportion_ztest(np.array([50, 0, 100]), 100, np.array([60, 0, 100]), 100)
    assert z.shape == (3,) and z[0] == pytest.approx(two_proportion_ztest(50, 100, 60, 100)[0])
    assert z[1] == z[2] == 0.0 and p[1] == p[2] == 1.0
    with pytest.raises(ValueError, match="between 0 and the group size"):
        two_proportion_ztest(101, 100, 5, 100)


def test_mean_difference_test_matches_welch() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.poisson(0.5, 3000), rng.poisson(0.53, 2500)
    z, p = mean_difference_test(a.mean(), a.var(ddof=1), a.size, b.mean(), b.var(ddof=1), b.size)
    reference = stats.ttest_ind(b, a, equal_var=False)
    assert z == pytest.approx(reference.statistic)
    assert p == pytest.approx(reference.pvalue, rel=0.01)  # normal vs t tail with ~5000 df


# ---------------------------------------------------------------- power and sample size


def test_sample_size_for_means_textbook_case() -> None:
    # delta = 0.5 sigma, alpha 0.05 two-sided, 80 % power: 2 (1.96 + 0.8416)² / 0.25 = 62.8 -> 63
    assert sample_size_two_means(0.5, 1.0) == 63
    assert power_two_means(0.5, 1.0, 63) >= 0.8 > power_two_means(0.5, 1.0, 62)
    assert power_two_means(0.0, 1.0, 100) == pytest.approx(0.05)


def test_sample_size_for_proportions_hand_formula() -> None:
    p_a, p_b = 0.10, 0.12
    z_a, z_b = stats.norm.isf(0.025), stats.norm.ppf(0.8)
    expected = (z_a * math.sqrt(2 * 0.11 * 0.89) + z_b * math.sqrt(0.1 * 0.9 + 0.12 * 0.88)) ** 2 / 0.02 ** 2
    n = sample_size_two_proportions(p_a, p_b)
    assert n == math.ceil(expected)
    assert 3800 < n < 3900  # the usual "about 3,840 per arm" for 10 % -> 12 %
    assert power_two_proportions(p_a, p_b, n) >= 0.8 > power_two_proportions(p_a, p_b, n - 1)
    assert sample_size_two_proportions(p_a, p_b, alternative="larger") < n


def test_power_of_proportions_matches_simulation() -> None:
    rng = np.random.default_rng(11)
    p_a, p_b, n, trials = 0.10, 0.12, 2000, 20000
    z, p = two_proportion_ztest(rng.binomial(n, p_a, trials), n, rng.binomial(n, p_b, trials), n)
    simulated = (p < 0.05).mean()
    analytical = power_two_proportions(p_a, p_b, n)
    assert simulated == pytest.approx(analytical, abs=3 * math.sqrt(analytical * (1 - analytical) / trials) + 0.01)


def test_power_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="p_a"):
        power_two_proportions(0.0, 0.1, 100)
    with pytest.raises(ValueError, match="no effect"):
        sample_size_two_means(0.0, 1.0)
    with pytest.raises(ValueError, match="alternative"):
        power_two_means(0.1, 1.0, 100, alternative="bigger")
