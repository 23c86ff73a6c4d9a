"""Drift and alerting: PSI by hand, Prometheus histogram quantiles against the samples, alert rules and delays."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from recsys_utils.pipeline.monitoring import (
    AlertRule,
    alarm_delay,
    alarms,
    histogram_quantile,
    prometheus_histogram,
    psi,
)


def test_psi_matches_a_hand_computed_case_and_is_zero_on_identical_samples():
    reference = np.arange(100.0)  # 10 quantile bins of 10 values each
    current = np.r_[np.arange(50.0), np.full(50, 95.0)]  # half in the first 5 bins, half in the last
    e = np.full(10, 0.1)
    a = np.r_[np.full(5, 0.1), np.full(4, 1e-4), 0.5]
    assert psi(reference, current) == pytest.approx(float(np.sum((a - e) * np.log(a / e))))
    assert psi(reference, reference) == pytest.approx(0.0)
    rng = np.random.default_rng(0)
    same, shifted = rng.normal(size=5000), rng.normal(0.5, 1, size=5000)
    assert psi(rng.normal(size=5000), same) < 0.02 < 0.1 < psi(same, shifted)
    with pytest.raises(ValueError, match="finite"):
        psi([np.nan], [1.0])


def test_histogram_quantile_from_prometheus_buckets_brackets_the_true_quantile():
    registry = CollectorRegistry()
    buckets = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
    hist = Histogram("lat_seconds", "latency", ["endpoint"], buckets=buckets, registry=registry)
    values = np.random.default_rng(1).lognormal(np.log(0.004), 0.6, size=2000)
    for v in values:
        hist.labels(endpoint="/recommend").observe(v)
    bounds, counts = prometheus_histogram(generate_latest(registry).decode(), "lat_seconds", {"endpoint": "/recommend"})
    assert math.isinf(bounds[-1]) and counts[-1] == 2000
    for q in (0.5, 0.95, 0.99):
        estimate, truth = histogram_quantile(q, bounds, counts), np.quantile(values, q)
        b = np.searchsorted(buckets, truth)
        low, high = (0.0 if b == 0 else buckets[b - 1]), (buckets[b] if b < len(buckets) else buckets[-1])
        assert low <= estimate <= high, (q, estimate, truth)
    # hand case: 10 in (0, 1], 30 in (1, 2]: the median (rank 20) lies a third into the second bucket
    assert histogram_quantile(0.5, [1, 2, math.inf], [10, 40, 40]) == pytest.approx(1 + 10 / 30)
    assert histogram_quantile(0.99, [1, 2, math.inf], [10, 40, 50]) == 2.0  # in the +inf bucket
    with pytest.raises(ValueError, match="inf"):
        histogram_quantile(0.5, [1, 2], [1, 2])


def test_alert_rules_delay_and_false_alarms():
    ctr = [0.10, 0.11, 0.09, 0.10, 0.105, 0.095, 0.06, 0.05, 0.05]
    daily = pd.DataFrame({"ctr": ctr, "psi": [0.01, 0.02, 0.01, 0.3, 0.02, 0.01, 0.5, 0.6, 0.7]},
                         index=range(1, 10))
    drop = AlertRule("ctr", "drop", threshold=3.0)
    assert list(drop.fires(daily, reference_days=4)) == [False] * 6 + [True] * 3
    persistent = AlertRule("psi", "above", 0.25, for_days=2)
    assert list(persistent.fires(daily, 4)) == [False] * 7 + [True] * 2
    table = alarms(daily, [drop, AlertRule("psi", "above", 0.25)], reference_days=4)
    assert alarm_delay(table["any"], change_day=7) == (1.0, 1)  # fires the day of the change; one false alarm (day 4)
    assert alarm_delay(table["ctr:drop"], change_day=7) == (1.0, 0)
    assert math.isnan(alarm_delay(pd.Series(False, index=range(1, 10)), 5)[0])
    with pytest.raises(ValueError, match="kind"):
        AlertRule("ctr", "sideways", 1.0)
    with pytest.raises(KeyError, match="no column"):
        AlertRule("clicks", "above", 1.0).fires(daily, 3)
