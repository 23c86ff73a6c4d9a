"""Prometheus metrics of the recommendation service: one ``CollectorRegistry`` per app.

Exposed at ``GET /metrics`` in the Prometheus text format (``prometheus_client``): request counts
by endpoint and status, latency histograms, errors, the served model's version and the fallback
rate (the share of recommendations answered without the personalised pipeline). A registry per
app (not the library's global one) lets several apps, e.g. in tests, live in one process.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: latency buckets in seconds: fine below 10 ms, where a healthy request lands
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1,
                   0.25, 0.5, 1.0, 2.5)

#: where a recommendation list came from: the pipeline, a folded-in session, decayed popularity
SOURCES = ("pipeline", "session", "popularity")


class ServiceMetrics:
    """The service's counters, histograms and gauges, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("recsys_requests", "HTTP requests by endpoint and status code",
                                ["endpoint", "method", "status"], registry=r)
        self.latency = Histogram("recsys_request_latency_seconds", "time from request to response, by endpoint",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.errors = Counter("recsys_errors", "answers with status >= 400, by endpoint and class (client/server)",
                              ["endpoint", "kind"], registry=r)
        self.recommendations = Counter("recsys_recommendations", "recommendation lists served, by source",
                                       ["source"], registry=r)
        self.fallback_ratio = Gauge("recsys_fallback_ratio", "share of lists not served by the personalised "
                                    "pipeline (unknown users) since start", registry=r)
        self.events = Counter("recsys_events", "feedback events accepted by POST /events", ["event"], registry=r)
        self.model_info = Gauge("recsys_model_info", "the served model: 1 for the current version",
                                ["version", "run"], registry=r)
        self.model_loaded = Gauge("recsys_model_loaded_timestamp_seconds", "when the served model was loaded",
                                  registry=r)
        self.reloads = Counter("recsys_model_reloads", "model reloads by outcome", ["outcome"], registry=r)
        for source in SOURCES:
            self.recommendations.labels(source=source)
        self._served = dict.fromkeys(SOURCES, 0)

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request (and its error class) and its latency."""
        self.requests.labels(endpoint=endpoint, method=method, status=str(status)).inc()
        self.latency.labels(endpoint=endpoint).observe(seconds)
        if status >= 400:
            self.errors.labels(endpoint=endpoint, kind="server" if status >= 500 else "client").inc()

    def served(self, source: str) -> None:
        """Count one list from ``source`` and update the fallback ratio."""
        self.recommendations.labels(source=source).inc()
        self._served[source] += 1
        total = sum(self._served.values())
        self.fallback_ratio.set((total - self._served["pipeline"]) / total)

    def set_model(self, version: str, run: str, loaded_at: float) -> None:
        """Name the served model (the previous version's series is removed)."""
        self.model_info.clear()
        self.model_info.labels(version=version, run=run).set(1)
        self.model_loaded.set(loaded_at)

    def text(self) -> bytes:
        return generate_latest(self.registry)
