"""The last ids a live producer published, read back from the topic's tail at a restart (a pod has no
local disk)."""
from __future__ import annotations

import json
import logging
from typing import Iterable

from producers.live.frames import ID_FIELD
from tickcast.settings import Settings

log = logging.getLogger("tickcast.live")


def recover_last_ids(s: Settings, keys: Iterable[tuple[str, str]], chunk: int = 2000,
                     max_scan_per_partition: int = 2_000_000) -> dict[tuple[str, str], int]:
    """The last id this source published per (symbol, kind), read back from the topic's tail.

    Each partition is read backwards in growing chunks until every wanted key has been seen or the
    partition (or `max_scan_per_partition`) is exhausted. Only `live` and `gapfill` records count
    (a replay of old files is not what this producer published). A key not found means nothing to
    fill: its first live event starts it, and cannot repeat an id already in the topic, since ids rise.
    """
    from confluent_kafka import Consumer, TopicPartition

    wanted = set(keys)
    found: dict[tuple[str, str], int] = {}
    c = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": "tickcast-live-recovery",
                  "enable.auto.commit": False, "enable.partition.eof": False, "log_level": 3,
                  "fetch.wait.max.ms": 50})
    try:
        md = c.list_topics(s.topic, timeout=15)
        t = md.topics.get(s.topic)
        if t is None or t.error is not None:
            return found
        for p in sorted(t.partitions):
            lo, hi = c.get_watermark_offsets(TopicPartition(s.topic, p), timeout=15)
            end, size, scanned = hi, chunk, 0
            here: dict[tuple[str, str], int] = {}
            while end > lo and scanned < max_scan_per_partition and not wanted <= (found.keys() | here.keys()):
                start = max(lo, end - size)
                c.assign([TopicPartition(s.topic, p, start)])
                pos = start
                idle = 0
                while pos < end and idle < 20:
                    msgs = c.consume(1000, timeout=0.5)
                    if not msgs:
                        idle += 1
                        continue
                    for m in msgs:
                        if m.error() is not None:
                            continue
                        pos = m.offset() + 1
                        if m.offset() >= end:
                            break
                        k = _key_of(m)
                        if k is not None and k[0] in wanted:
                            here[k[0]] = max(here.get(k[0], -1), k[1])
                scanned += end - start
                end, size = start, size * 2
            for k, v in here.items():
                found[k] = max(found.get(k, -1), v)
    finally:
        c.close()
    return found


def _key_of(m) -> tuple[tuple[str, str], int] | None:
    hdrs = dict(m.headers() or [])
    if hdrs.get("tickcast-source") not in (b"live", b"gapfill"):
        return None
    try:
        d = json.loads(m.value())
    except (ValueError, TypeError):
        return None
    if not isinstance(d, dict):
        return None
    e = d.get("e")
    if e not in ID_FIELD:
        return None
    i, sym = d.get(ID_FIELD[e]), d.get("s")
    if isinstance(i, int) and isinstance(sym, str):
        return (sym, e), i
    return None
