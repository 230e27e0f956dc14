"""Prometheus metrics of the service, aggregated over gunicorn workers (multiprocess mode).

prometheus_client switches to multiprocess mode by itself when PROMETHEUS_MULTIPROC_DIR is set
before it is imported (`tickcast serve` sets and wipes it); the gunicorn config marks a dead
worker's files (`child_exit`). Without it (the Flask test client) the process registry is used.
"""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import REGISTRY, multiprocess

from prometheus_client.values import ValueClass

MULTIPROCESS = "MultiProcessValue" in getattr(ValueClass, "__qualname__", "")

# Buckets for a service whose one-row answer takes ~0.3 ms inside the worker.
LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

REQUEST_SECONDS = Histogram("tickcast_http_request_duration_seconds",
                            "Request latency inside the worker, by route template, method and status",
                            ["route", "method", "status"], buckets=LATENCY_BUCKETS)
PREDICTIONS = Counter("tickcast_predictions", "Rows predicted, by model and version", ["model", "version"])
MODEL_LOAD_SECONDS = Histogram("tickcast_model_load_seconds", "Time to load a champion's LiteRT artefact",
                               ["model"], buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5))
MODEL_LOAD_FAILURES = Counter("tickcast_model_load_failures", "Champions that could not be loaded", ["model"])
FEATURE_STALENESS = Gauge("tickcast_feature_staleness_seconds",
                          "Seconds since the bar of the newest feature row served closed, by symbol",
                          ["symbol"], multiprocess_mode="livemax")

# ops.lost_offsets as the registry watcher published it (serving.feed), set by the worker answering
# /metrics just before it answers: the value set last wins ("livemostrecent"; a worker that has not
# answered a scrape for a while holds an older count, which must not win as "max" or add up as "sum").
LOST_OFFSETS = Gauge("tickcast_lost_offsets",
                     "Kafka offsets deleted by retention before ingest read them (ops.lost_offsets), "
                     "by topic and partition", ["topic", "partition"], multiprocess_mode="livemostrecent")


def set_lost_offsets(lost) -> None:
    """(topic, partition, lost) triples -> the gauge (set just before an exposition)."""
    for topic, partition, n in lost:
        LOST_OFFSETS.labels(topic, str(partition)).set(n)


def exposition() -> tuple[bytes, str]:
    """The metrics text, summed over every worker in multiprocess mode."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST
