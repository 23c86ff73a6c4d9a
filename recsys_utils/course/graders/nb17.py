"""Graders of notebook 17 (deployment and monitoring): the population stability index, a percentile from
Prometheus buckets, the service's input validation and a control-chart alert rule."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from recsys_utils.course.graders.registry import grader
from recsys_utils.pipeline.monitoring import AlertRule, histogram_quantile, prometheus_histogram, psi
from recsys_utils.pipeline.serving import Channel, ServingPipeline


@grader("17.1")
def population_stability_index(learner) -> str:
    """``learner(reference, current, bins, eps)`` equals :func:`recsys_utils.pipeline.monitoring.psi`."""
    rng = np.random.default_rng(0)
    cases = [(rng.normal(size=400), rng.normal(0.3, 1.2, size=300), 10),
             (rng.exponential(size=500), rng.exponential(2.0, size=200), 5),
             (np.r_[np.zeros(300), rng.random(100)], rng.random(250), 10),  # ties in the reference merge bins
             (rng.random(200), rng.random(200) * 3 - 1, 4)]  # current values outside the reference's range
    for n, (reference, current, bins) in enumerate(cases):
        expected = psi(reference, current, bins=bins, eps=1e-4)
        got = learner(reference.copy(), current.copy(), bins, 1e-4)
        assert got is not None, "population_stability_index returned None"
        assert np.isfinite(float(got)), f"case {n}: PSI must be finite (floor empty bins' shares at eps)"
        assert math.isclose(float(got), expected, rel_tol=1e-6, abs_tol=1e-9), (
            f"case {n} ({bins} bins): got {float(got):.6f}, expected {expected:.6f}: bins are the reference's "
            "quantiles at 1/bins..(bins-1)/bins (np.unique), shares floored at eps, "
            "PSI = sum((a - e) * ln(a / e))")
    return "PSI equals the package's on 4 samples (quantile bins, ties, values out of range)"


@grader("17.2")
def bucket_quantile(learner) -> str:
    """``learner(q, bounds, cumulative)`` equals :func:`~recsys_utils.pipeline.monitoring.histogram_quantile`
    on the buckets of a real ``prometheus_client`` histogram and on hand cases."""
    registry = CollectorRegistry()
    hist = Histogram("latency_seconds", "request latency", buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05),
                     registry=registry)
    for value in np.random.default_rng(3).lognormal(np.log(0.004), 0.7, size=500):
        hist.observe(value)
    bounds, counts = prometheus_histogram(generate_latest(registry).decode(), "latency_seconds")
    cases = [(q, bounds, counts) for q in (0.1, 0.5, 0.9, 0.95, 0.99)]
    cases += [(0.5, [1.0, 2.0, math.inf], [10.0, 40.0, 40.0]), (0.99, [1.0, 2.0, math.inf], [10.0, 40.0, 50.0]),
              (0.05, [1.0, 2.0, math.inf], [10.0, 40.0, 40.0])]
    for q, b, c in cases:
        expected = histogram_quantile(q, b, c)
        got = learner(q, list(b), list(c))
        assert got is not None, "bucket_quantile returned None"
        assert math.isclose(float(got), expected, rel_tol=1e-9, abs_tol=1e-12), (
            f"q={q}, bounds {list(b)[:4]}...: got {float(got)}, expected {expected}: find the first bucket whose "
            "cumulative count reaches q * total, then interpolate linearly between its lower and upper bound "
            "(the first bucket starts at 0; in the +Inf bucket answer the highest finite bound)")
    return "the quantiles equal PromQL-style histogram_quantile on a real prometheus_client histogram"


def _tiny_model(folder: Path) -> Path:
    """A saved pipeline of 6 users x 8 items (random arrays, a logistic ranker), enough to start the app."""
    rng = np.random.default_rng(0)
    history = sp.csr_matrix(np.eye(6, 8, dtype=np.float32))
    channels = [Channel("popularity", "popularity", {"scores": rng.random(8).astype(np.float32)}),
                Channel("mf", "factors", {"user_factors": rng.normal(size=(6, 2)).astype(np.float32),
                                          "item_factors": rng.normal(size=(8, 2)).astype(np.float32)})]
    pipeline = ServingPipeline(channels, history, np.arange(8) % 3, n_recall=5)
    pipeline.fit_ranker(np.arange(6), sp.csr_matrix(rng.random((6, 8)) < 0.4), kind="logistic")
    return pipeline.save(folder / "tiny.npz")


@grader("17.3")
def validate_recommend(learner) -> str:
    """``learner(params, max_k)`` gives the same status (200 or 422) as the service's ``GET /recommend``."""
    import httpx

    from recsys_utils.pipeline.service import ServiceConfig, create_app, serve_in_thread

    cases = [{"user_id": "3"}, {"user_id": "3", "k": "5"}, {}, {"k": "5"}, {"user_id": "abc"}, {"user_id": "-1"},
             {"user_id": "3", "k": "0"}, {"user_id": "3", "k": "21"}, {"user_id": "3", "k": "20"},
             {"user_id": "3", "k": "-2"}, {"user_id": "3", "k": "two"}, {"user_id": "1" * 25},
             {"user_id": str(2**63 - 1)}, {"user_id": "123456"}, {"user_id": "4", "k": "1"}, {"user_id": ""}]
    with tempfile.TemporaryDirectory() as folder:
        app = create_app(ServiceConfig(model_path=_tiny_model(Path(folder)), max_k=20, max_per_category=None))
        with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=10) as client:
            for params in cases:
                expected = client.get("/recommend", params=params).status_code
                answer = learner(dict(params), 20)
                assert answer is not None, "validate_recommend returned None"
                status = int(answer[0]) if isinstance(answer, tuple) else int(answer)
                assert status == expected, (
                    f"params {params}: you answer {status}, the service {expected} (user_id: a whole number "
                    "0..2**63-1, required, unknown users are fine; k: a whole number 1..max_k, default 10)")
    return f"the same status as the service for {len(cases)} requests, hostile ones included"


@grader("17.4")
def drop_alarms(learner) -> str:
    """``learner(values, reference_days, z, for_days)`` equals ``AlertRule(kind="drop").fires``."""
    rng = np.random.default_rng(5)
    base = 0.08 + 0.004 * rng.standard_normal(14)
    series = [base, np.r_[base[:8], base[8:] - 0.03], np.r_[base[:6], base[6] - 0.05, base[7:9], base[9:] - 0.04]]
    for values in series:
        for reference_days, z, for_days in [(5, 3.0, 1), (5, 2.0, 2), (4, 3.0, 3)]:
            daily = pd.DataFrame({"ctr": values}, index=range(1, len(values) + 1))
            expected = AlertRule("ctr", "drop", z, for_days).fires(daily, reference_days).to_numpy()
            got = learner(values.copy(), reference_days, z, for_days)
            assert got is not None, "drop_alarms returned None"
            got = np.asarray(got, dtype=bool)
            assert got.shape == expected.shape, f"one answer per day: expected shape {expected.shape}, got {got.shape}"
            assert np.array_equal(got, expected), (
                f"reference {reference_days} days, z={z}, for_days={for_days}: expected {expected.astype(int)}, got "
                f"{got.astype(int)}: a day breaches when its value < mean - z * std (sample std, ddof=1) of the "
                "reference days (which never breach); the alarm fires when the last for_days days all breach")
    return "the alarms equal AlertRule('drop') on 9 series x settings"
