"""Publish records to the raw trade topic: idempotent, acks=all, paced or as fast as possible.

confluent-kafka (librdkafka) rather than kafka-python: measured ~10x more messages/s here
(see `tickcast bench ingest`), which the simulator's 50k ticks/s needs.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable

from tickcast import events
from tickcast.kafka_broker import require_reachable
from tickcast.settings import Settings

SOURCE_HEADER = "tickcast-source"
SOURCES = ("live", "gapfill", "replay", "simulate")


@dataclass
class Counts:
    sent: int = 0           # acknowledged by the broker
    failed: int = 0         # delivery failed after librdkafka's retries
    skipped: Counter = field(default_factory=Counter)  # known non-trade events, by kind
    queued: int = 0
    seconds: float = 0.0

    def describe(self) -> str:
        skipped = sum(self.skipped.values())
        kinds = ", ".join(f"{k} {v}" for k, v in self.skipped.most_common())
        rate = self.sent / self.seconds if self.seconds else 0.0
        return (f"sent {self.sent}, failed {self.failed}, skipped non-trade {skipped}"
                f"{' (' + kinds + ')' if kinds else ''} in {self.seconds:.1f}s ({rate:,.0f} msgs/s)")


def producer_config(s: Settings) -> dict:
    return {
        "bootstrap.servers": s.kafka_bootstrap,
        "enable.idempotence": True,   # implies acks=all and in-order retries without duplicates
        "acks": "all",
        "linger.ms": 20,
        "batch.num.messages": 10000,
        "batch.size": 1_000_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "message.timeout.ms": 60_000,
        "log_level": 3,  # errors only: start-up notices such as "coordinator load in progress" are not news
    }


class Pacer:
    """When to send each record of a paced replay: trade time `speed` times faster than real time.

    Only a sane trade time paces (`events.Record.trade_time_ms` is None outside 2010-2100), and a
    record more than `max_jump_ms` of trade time ahead of the clock is sent at once without
    moving it: a bad record's time never makes the replay wait (nor overflows `time.sleep`). Two
    records in a row beyond the jump (a real gap in the source) move the clock to them: the gap
    is skipped, not waited for.
    """

    def __init__(self, speed: float, max_jump_ms: int = 60_000, clock=time.monotonic):
        if not speed > 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed, self.max_jump_ms, self.clock = speed, max_jump_ms, clock
        self._anchor: tuple[int, float] | None = None    # (trade ms, wall s) the clock runs from
        self._last = 0                                    # newest trade ms that paced
        self._pending: int | None = None                  # a jump waiting for confirmation

    def delay(self, trade_ms: int | None) -> float:
        """Seconds to wait before sending a record with this trade time (0 for no time)."""
        if trade_ms is None:
            return 0.0
        now = self.clock()
        if self._anchor is None:
            self._anchor, self._last = (trade_ms, now), trade_ms
            return 0.0
        if trade_ms - self._last > self.max_jump_ms:
            if self._pending is not None and abs(trade_ms - self._pending) <= self.max_jump_ms:
                self._anchor, self._last, self._pending = (trade_ms, now), trade_ms, None
            else:
                self._pending = trade_ms
            return 0.0
        self._pending = None
        self._last = max(self._last, trade_ms)
        t0, w0 = self._anchor
        return max(0.0, w0 + (trade_ms - t0) / 1000.0 / self.speed - now)


class Publisher:
    """One Kafka producer for one source; `close()` flushes everything still in flight."""

    def __init__(self, s: Settings, source: str, config: dict | None = None):
        """`config` overrides `producer_config` (the live source never lets a delivery time out)."""
        from confluent_kafka import Producer

        if source not in SOURCES:
            raise ValueError(f"unknown source {source!r}; one of {', '.join(SOURCES)}")
        require_reachable(s)
        self.topic = s.topic
        self.headers = [(SOURCE_HEADER, source.encode())]
        self.counts = Counts()
        self._producer = Producer({**producer_config(s), **(config or {})})
        self._t0 = time.monotonic()

    def _delivered(self, err, _msg) -> None:
        if err is None:
            self.counts.sent += 1
        else:
            self.counts.failed += 1

    def send(self, value: bytes, key: bytes | None, source: str | None = None, on_delivery=None) -> None:
        """Queue one record; `source` overrides the header (live and gapfill share one producer, so one
        partition gets them in publication order); `on_delivery(err, msg)` is called after the count."""
        headers = self.headers if source is None else [(SOURCE_HEADER, source.encode())]
        callback = self._delivered
        if on_delivery is not None:
            def callback(err, msg, _user=on_delivery):
                self._delivered(err, msg)
                _user(err, msg)
        while True:
            try:
                self._producer.produce(self.topic, value=value, key=key, headers=headers,
                                       on_delivery=callback)
                self.counts.queued += 1
                return
            except BufferError:       # local queue full: let deliveries drain, then retry
                self._producer.poll(0.05)

    def publish(self, records: Iterable[events.Record], speed: float | None = None) -> Counts:
        """Send every record; `speed` N replays trade time N x faster than real time, None = max."""
        pacer = Pacer(speed) if speed is not None else None
        n = 0
        for rec in records:
            if rec.value is None:
                self.counts.skipped[rec.skipped or "unknown"] += 1
                continue
            if pacer is not None:
                delay = pacer.delay(rec.trade_time_ms)
                if delay > 0:
                    self._producer.poll(0)
                    time.sleep(delay)
            self.send(rec.value, rec.key)
            n += 1
            if n % 5000 == 0:
                self._producer.poll(0)
        self._producer.poll(0)
        return self.counts

    def poll(self, timeout: float = 0.0) -> int:
        """Serve delivery callbacks (the live source calls it from a thread of its own)."""
        return self._producer.poll(timeout)

    def close(self, timeout: float = 60.0) -> Counts:
        remaining = self._producer.flush(timeout)
        self.counts.failed += remaining
        self.counts.seconds = time.monotonic() - self._t0
        return self.counts
