"""GET /metrics: Prometheus text from prometheus_client, one registry per app (not the process-global one)."""

from __future__ import annotations


class ServeMetrics:
    def __init__(self, max_batch: int) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("zoo_requests", "POST /v1/predict requests by HTTP status", ["status"],
                                registry=self.registry)
        self.latency = Histogram("zoo_request_seconds", "POST /v1/predict time from request to answer",
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=self.registry)
        buckets = sorted({1, 2, 4, 8, 16, 32, 64, 128, max_batch})
        self.batch_size = Histogram("zoo_batch_size", "images per model call", buckets=buckets, registry=self.registry)
        self.queue_depth = Gauge("zoo_queue_depth", "images waiting for the model", registry=self.registry)

    def text(self) -> str:
        from prometheus_client import generate_latest

        return generate_latest(self.registry).decode()
