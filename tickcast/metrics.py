"""The streaming stack's Prometheus metrics: every name defined here once, in one registry.

The Spark driver (`tickcast up` locally, `jobs/main.py` on Kubernetes) updates them where it already
holds the value: the runner's progress collection (rows, rates, batch duration, Kafka lag), the
sinks' commits (freshness, quarantine, lost offsets), the predict job's model lookup (the version
served per horizon) and the outcomes job's rolling scores. `serve` exposes them on `/metrics`. The
alert rules and the Grafana board (`tickcast.monitoring`) name metrics only through this module.
"""
from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge

from tickcast import tables

REGISTRY = CollectorRegistry(auto_describe=True)

# Per streaming query (label `query`: ingest, bars, features, predict, outcomes).
INPUT_ROWS = Counter("tickcast_stream_input_rows", "Rows read by a streaming query's executed batches",
                     ["query"], registry=REGISTRY)
BATCHES = Counter("tickcast_stream_batches", "Micro-batches a streaming query executed", ["query"],
                  registry=REGISTRY)
INPUT_RATE = Gauge("tickcast_stream_input_rows_per_second", "Input rows per second of the query's latest trigger",
                   ["query"], registry=REGISTRY)
PROCESSED_RATE = Gauge("tickcast_stream_processed_rows_per_second",
                       "Rows processed per second of the query's latest trigger", ["query"], registry=REGISTRY)
BATCH_SECONDS = Gauge("tickcast_stream_batch_duration_seconds", "Duration of the query's latest executed batch",
                      ["query"], registry=REGISTRY)
LAG_MESSAGES = Gauge("tickcast_stream_kafka_lag_messages",
                     "Kafka records between the query's processed offsets and the topic's latest", ["query"],
                     registry=REGISTRY)
LAG_SECONDS = Gauge("tickcast_stream_kafka_lag_seconds",
                    "Kafka lag at the query's input rate (lag messages / input rows per second; 0 when none)",
                    ["query"], registry=REGISTRY)

# Per stage (label `stage`): a minute's bar end -> the commit of its rows in the stage's table.
STAGES = {tables.BARS.name: "bars", tables.FEATURES.name: "features", tables.PREDICTIONS.name: "predictions"}
FRESHNESS = Gauge("tickcast_stage_freshness_seconds",
                  "Newest minute's bar end -> the commit of its rows in the stage's table", ["stage"],
                  registry=REGISTRY)
COMMIT_TIME = Gauge("tickcast_stage_commit_timestamp_seconds",
                    "Unix time of the stage's latest streaming commit (the one FRESHNESS measures)", ["stage"],
                    registry=REGISTRY)

QUARANTINED = Counter("tickcast_quarantined_rows", "Kafka records ingest put in bronze.quarantine",
                      registry=REGISTRY)
LOST_OFFSETS = Gauge("tickcast_lost_offsets",
                     "Kafka offsets deleted by retention before ingest read them (ops.lost_offsets), "
                     "by topic and partition", ["topic", "partition"], registry=REGISTRY)

# Per horizon (label `horizon`, minutes): the model the predict job scores with, and its live scores.
MODEL_VERSION = Gauge("tickcast_model_version", "Registered version the predict job scores the horizon with",
                      ["horizon"], registry=REGISTRY)
MODEL_TRAINING_END = Gauge("tickcast_model_training_end_timestamp_seconds",
                           "Unix time of the end of the served version's training data", ["horizon"],
                           registry=REGISTRY)
PREDICTORS = ("model", "climatology", "momentum")   # label `predictor`: the served version and the baselines
WINDOWS = ("1h", "24h")                              # label `window`: gold.model_scores' windows
LIVE_HIT = Gauge("tickcast_live_hit_ratio", "Live share of correct up/down calls over the window (all symbols)",
                 ["horizon", "predictor", "window"], registry=REGISTRY)
LIVE_BRIER = Gauge("tickcast_live_brier_score", "Live Brier score of P(up) over the window (all symbols)",
                   ["horizon", "predictor", "window"], registry=REGISTRY)
LIVE_OUTCOMES = Gauge("tickcast_live_outcomes", "Realised outcomes the live scores count over the window",
                      ["horizon", "window"], registry=REGISTRY)

# Every exported family name, as Prometheus sees it (a counter's samples end in _total).
def _exported(metric) -> str:
    d = metric.describe()[0]
    return d.name + ("_total" if d.type == "counter" else "")


NAMES = {_exported(m): m for m in (
    INPUT_ROWS, BATCHES, INPUT_RATE, PROCESSED_RATE, BATCH_SECONDS, LAG_MESSAGES, LAG_SECONDS, FRESHNESS,
    COMMIT_TIME, QUARANTINED, LOST_OFFSETS, MODEL_VERSION, MODEL_TRAINING_END, LIVE_HIT, LIVE_BRIER,
    LIVE_OUTCOMES)}


def lag_seconds(lag: int | None, rate: float | None) -> float | None:
    """Kafka lag in seconds: the backlog at the input rate (pure; None when there is no rate to divide by)."""
    if lag is None:
        return None
    if lag == 0:
        return 0.0
    return lag / rate if rate and rate > 0 else None


def observe_batch(p: dict) -> None:
    """An executed batch's progress event (Spark's JSON, as a dict): counters and batch duration."""
    q = p.get("name") or p["id"]
    INPUT_ROWS.labels(q).inc(int(p.get("numInputRows") or 0))
    BATCHES.labels(q).inc()
    dur = p.get("batchDuration") or (p.get("durationMs") or {}).get("triggerExecution")
    if dur is not None:
        BATCH_SECONDS.labels(q).set(int(dur) / 1000.0)


def observe_latest(p: dict, lag: int | None) -> None:
    """A query's latest progress event (idle triggers included): rates and Kafka lag."""
    q = p.get("name") or p["id"]
    rate = float(p.get("inputRowsPerSecond") or 0.0)
    INPUT_RATE.labels(q).set(rate)
    PROCESSED_RATE.labels(q).set(float(p.get("processedRowsPerSecond") or 0.0))
    if lag is not None:
        LAG_MESSAGES.labels(q).set(lag)
        secs = lag_seconds(lag, rate)
        if secs is not None:
            LAG_SECONDS.labels(q).set(secs)


def committed(table: str, newest_window_start_ms: int, at: float | None = None) -> None:
    """A streaming commit of a stage's table whose newest minute starts at `newest_window_start_ms`."""
    stage = STAGES.get(table)
    if stage is None:
        return
    at = time.time() if at is None else at
    FRESHNESS.labels(stage).set(at - (newest_window_start_ms / 1000.0 + 60.0))
    COMMIT_TIME.labels(stage).set(at)


def set_lost_offsets(lost: dict) -> None:
    """(topic, partition) -> offsets lost so far (ops.lost_offsets' totals)."""
    for (topic, partition), n in lost.items():
        LOST_OFFSETS.labels(topic, str(partition)).set(n)


def add_lost_offsets(lost: dict) -> None:
    """(topic, partition) -> offsets a batch lost, added to the totals."""
    for (topic, partition), n in lost.items():
        LOST_OFFSETS.labels(topic, str(partition)).inc(n)


def set_models(served: list[tuple[int, str, int]]) -> None:
    """(horizon, version, training end epoch ms) of every horizon scored; horizons not given are dropped."""
    MODEL_VERSION.clear()
    MODEL_TRAINING_END.clear()
    for horizon, version, training_end_ms in served:
        MODEL_VERSION.labels(str(horizon)).set(int(version))
        MODEL_TRAINING_END.labels(str(horizon)).set(int(training_end_ms) / 1000.0)


def set_live_scores(horizon: int, window: str, n: int, scores: dict[str, tuple[float | None, float | None]]) -> None:
    """A horizon's live scores over `window`: n outcomes, predictor -> (hit ratio, Brier) (None: not measured)."""
    h = str(horizon)
    LIVE_OUTCOMES.labels(h, window).set(n)
    for predictor, (hit, brier) in scores.items():
        for gauge, v in ((LIVE_HIT, hit), (LIVE_BRIER, brier)):
            if v is None:
                try:
                    gauge.remove(h, predictor, window)
                except KeyError:
                    pass
            else:
                gauge.labels(h, predictor, window).set(v)


def exposition() -> bytes:
    """The metrics text (Prometheus' text format)."""
    from prometheus_client import generate_latest

    return generate_latest(REGISTRY)


class MetricsServer:
    """The loopback `/metrics` endpoint (prometheus_client's WSGI server on a daemon thread)."""

    def __init__(self, host: str, port: int):
        from prometheus_client import start_http_server

        self.server, self.thread = start_http_server(port, addr=host, registry=REGISTRY)
        self.url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
