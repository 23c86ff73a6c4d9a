"""Monitoring a recommender in production: drift on inputs and outputs, alert rules on online metrics.

* :func:`psi` -- the population stability index between a reference sample and a current one
  (Siddiqi 2006, *Credit Risk Scorecards*; Yurdakul 2018): bins are the reference's quantiles, and
  ``PSI = Σ_b (a_b − e_b) · ln(a_b / e_b)`` over bin shares ``e`` (reference) and ``a`` (current).
  Rule of thumb: < 0.1 stable, 0.1-0.25 a shift worth a look, > 0.25 a real change.
* :func:`histogram_quantile` -- a latency percentile from cumulative Prometheus histogram buckets,
  interpolated linearly inside the bucket as PromQL's ``histogram_quantile`` does.
* :class:`AlertRule` -- a threshold on one daily metric, or a drop below the reference days' mean by
  ``z`` standard deviations (a Shewhart control chart), firing after ``for_days`` consecutive days.
* :func:`alarm_delay` -- days from a known change to the first alarm, and the false alarms before it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd


def psi(reference, current, bins: int = 10, eps: float = 1e-4) -> float:
    """Population stability index of ``current`` against ``reference`` on ``bins`` reference-quantile bins.

    Values outside the reference's range fall in the first or last bin; empty bins get share ``eps``
    (so the logarithm stays finite). Ties in the reference (e.g. many zeros) merge bins.
    """
    reference = np.asarray(reference, dtype=np.float64).ravel()
    current = np.asarray(current, dtype=np.float64).ravel()
    reference, current = reference[np.isfinite(reference)], current[np.isfinite(current)]
    if reference.size == 0 or current.size == 0:
        raise ValueError(f"psi: both samples need finite values, got {reference.size} and {current.size}")
    if bins < 2:
        raise ValueError(f"psi: bins must be >= 2, got {bins}")
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    expected = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=edges.size + 1)
    actual = np.bincount(np.searchsorted(edges, current, side="right"), minlength=edges.size + 1)
    e = np.maximum(expected / reference.size, eps)
    a = np.maximum(actual / current.size, eps)
    return float(np.sum((a - e) * np.log(a / e)))


def histogram_quantile(q: float, upper_bounds: Sequence[float], cumulative_counts: Sequence[float]) -> float:
    """The ``q``-quantile from a Prometheus histogram: bucket upper bounds (the last one ``+inf``) and
    cumulative counts; linear inside the bucket, the lower bound of the first bucket is 0. A quantile
    in the ``+inf`` bucket returns the highest finite bound (as PromQL)."""
    bounds = np.asarray(upper_bounds, dtype=np.float64)
    counts = np.asarray(cumulative_counts, dtype=np.float64)
    if not 0 <= q <= 1:
        raise ValueError(f"histogram_quantile: q must be in [0, 1], got {q}")
    if bounds.shape != counts.shape or bounds.size < 2 or not np.isinf(bounds[-1]):
        raise ValueError("histogram_quantile: need matching bounds and counts, the last bound +inf")
    total = counts[-1]
    if total <= 0:
        return math.nan
    rank = q * total
    b = int(np.searchsorted(counts, rank, side="left"))
    if b == bounds.size - 1:
        return float(bounds[-2])
    lower = 0.0 if b == 0 else bounds[b - 1]
    below = 0.0 if b == 0 else counts[b - 1]
    inside = counts[b] - below
    if inside <= 0:
        return float(bounds[b])
    return float(lower + (bounds[b] - lower) * (rank - below) / inside)


def prometheus_histogram(text: str, name: str, labels: dict[str, str] | None = None) -> tuple[list, list]:
    """Upper bounds and cumulative counts of histogram ``name`` (labels matched) in Prometheus text."""
    from prometheus_client.parser import text_string_to_metric_families

    labels = labels or {}
    pairs = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{name}_bucket" and all(sample.labels.get(k) == v for k, v in labels.items()):
                pairs.append((float(sample.labels["le"]), sample.value))
    if not pairs:
        raise KeyError(f"no histogram {name!r} with labels {labels} in the metrics text")
    pairs.sort()
    return [p[0] for p in pairs], [p[1] for p in pairs]


@dataclass(frozen=True)
class AlertRule:
    """Fires on ``metric`` when ``kind`` says so for ``for_days`` consecutive days:

    * ``"above"`` / ``"below"``: the value is above / below ``threshold``;
    * ``"drop"``: the value is below ``mean − threshold · std`` of the reference days (a control chart;
      ``threshold`` is then the number of standard deviations, ``min_drop`` a relative floor on the gap).
    """

    metric: str
    kind: str
    threshold: float
    for_days: int = 1
    min_drop: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("above", "below", "drop"):
            raise ValueError(f"AlertRule: kind must be 'above', 'below' or 'drop', got {self.kind!r}")
        if self.for_days < 1:
            raise ValueError(f"AlertRule: for_days must be >= 1, got {self.for_days}")

    def breaches(self, daily: pd.DataFrame, reference_days: int) -> pd.Series:
        """Per day, whether the condition holds (before the ``for_days`` persistence)."""
        if self.metric not in daily.columns:
            raise KeyError(f"AlertRule: no column {self.metric!r} in the daily metrics {list(daily.columns)}")
        values = daily[self.metric].astype(float)
        if self.kind == "above":
            return values > self.threshold
        if self.kind == "below":
            return values < self.threshold
        ref = values.iloc[:reference_days]
        gap = max(self.threshold * ref.std(ddof=1), self.min_drop * abs(ref.mean()))
        breach = values < ref.mean() - gap
        breach.iloc[:reference_days] = False  # the reference days define normal
        return breach

    def fires(self, daily: pd.DataFrame, reference_days: int) -> pd.Series:
        """Per day, whether the alert is firing (the condition held for ``for_days`` days in a row)."""
        breach = self.breaches(daily, reference_days).astype(int)
        return breach.rolling(self.for_days, min_periods=self.for_days).sum().fillna(0).ge(self.for_days)


def alarms(daily: pd.DataFrame, rules: Sequence[AlertRule], reference_days: int) -> pd.DataFrame:
    """One boolean column per rule (``metric:kind``) and ``any``."""
    out = pd.DataFrame({f"{r.metric}:{r.kind}": r.fires(daily, reference_days) for r in rules}, index=daily.index)
    out["any"] = out.any(axis=1)
    return out


def alarm_delay(firing: pd.Series, change_day) -> tuple[float, int]:
    """``(days of changed traffic until the first alarm, alarm days before the change)``; NaN if none fires.

    ``firing`` is a boolean Series indexed by day numbers (metrics computed at the end of each day);
    an alarm at the end of ``change_day`` itself counts as 1 day.
    """
    firing = firing.astype(bool)
    before = int(firing[firing.index < change_day].sum())
    after = firing[(firing.index >= change_day) & firing]
    return (float(after.index[0] - change_day + 1) if len(after) else math.nan), before
