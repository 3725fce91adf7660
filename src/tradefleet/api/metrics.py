"""Prometheus metrics of one API app, in its own registry (many apps may live in one process)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

UNMATCHED_ROUTE = "<unmatched>"  # unknown paths share one label: clients must not create series at will

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ApiMetrics:
    """Request latency, requests and errors by route template, method and status; requests in flight."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        labels = ("method", "route", "status")
        self.latency = Histogram(
            "tradefleet_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template, method and status.",
            labels,
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter("tradefleet_http_requests", "HTTP requests answered.", labels, registry=self.registry)
        self.errors = Counter(
            "tradefleet_http_errors",
            "HTTP requests answered with a 4xx or 5xx status.",
            labels,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "tradefleet_http_requests_in_flight", "HTTP requests being answered.", registry=self.registry
        )
        self.audit_failures = Counter(
            "tradefleet_audit_write_failures",
            "State-changing requests whose audit log row could not be written (the request itself stood).",
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one answered request."""
        values = (method, route, str(status))
        self.latency.labels(*values).observe(seconds)
        self.requests.labels(*values).inc()
        if status >= 400:
            self.errors.labels(*values).inc()

    def render(self) -> bytes:
        """Return the text exposition of every metric of this app."""
        return generate_latest(self.registry)
