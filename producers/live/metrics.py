"""Prometheus metrics of the live producer."""
from __future__ import annotations



class LiveMetrics:
    """Prometheus metrics of the live producer (own registry: several producers per test process)."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter as PCounter, Gauge, Histogram

        self.registry = r = CollectorRegistry()
        self.messages = PCounter("tickcast_live_messages", "trade events published, by symbol, kind and source "
                                 "(rate() = messages/s per symbol)", ["symbol", "kind", "source"], registry=r)
        self.gapfilled = PCounter("tickcast_live_gapfilled_trades", "trades fetched over REST and published",
                                  ["symbol", "kind"], registry=r)
        self.reconnects = PCounter("tickcast_live_reconnects", "connections re-opened, by reason", ["reason"],
                                   registry=r)
        self.rotations = PCounter("tickcast_live_rotations", "planned connection rotations (lifetime, "
                                  "serverShutdown)", ["reason"], registry=r)
        self.duplicates = PCounter("tickcast_live_duplicates_dropped", "live events dropped as already published",
                                   registry=r)
        self.forwarded = PCounter("tickcast_live_forwarded_unparsed", "frames that are not trades, forwarded "
                                  "for ingest to quarantine", registry=r)
        self.skipped = PCounter("tickcast_live_skipped", "known non-trade events skipped", ["kind"], registry=r)
        self.last_trade = Gauge("tickcast_live_last_trade_time_seconds", "trade time of the last published trade",
                                ["symbol", "kind"], registry=r)
        self.lag = Gauge("tickcast_live_lag_seconds", "arrival time minus exchange event time of the last live event",
                         ["symbol", "kind"], registry=r)
        self.connections = Gauge("tickcast_live_connections", "open WebSocket connections", registry=r)
        self.rest_weight = Gauge("tickcast_live_rest_weight_used", "REST weight used this minute "
                                 "(X-MBX-USED-WEIGHT-1M)", registry=r)
        self.rest_bans = PCounter("tickcast_live_rest_retry_after", "429/418 answers honoured", ["status"],
                                  registry=r)
        self.ack_latency = Histogram("tickcast_live_ack_latency_seconds", "frame arrival -> Kafka ack (sampled)",
                                     buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5),
                                     registry=r)
        self.sent = Gauge("tickcast_live_kafka_acknowledged", "records acknowledged by Kafka", registry=r)
        self.failed = Gauge("tickcast_live_kafka_failed", "records Kafka could not take", registry=r)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        from prometheus_client import start_http_server

        # Loopback unless TICKCAST_PRODUCER_METRICS_HOST says otherwise (the k8s ConfigMap does).
        start_http_server(port, addr=host, registry=self.registry)
