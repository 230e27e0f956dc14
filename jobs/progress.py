"""Every streaming query's progress, kept as history in ops.stream_progress."""
from __future__ import annotations

import json
import logging
from datetime import datetime

from tickcast.engine.arrow_frames import arrow_rows
from tickcast.engine.progress_json import last_progress, recent_progress  # noqa: F401 (re-exported)
from tickcast.lake.write import ensure_table, rs_append
from tickcast import metrics, tables
from tickcast.settings import Settings

log = logging.getLogger("tickcast.progress")

# Figures a foreachBatch sink counts itself (the bars job's late trades), by (query name, batch id),
# added to that batch's ops.stream_progress row: the sink runs before Spark reports the batch.
_NOTES: dict[tuple[str, int], dict[str, int]] = {}
_MAX_NOTES = 1000


def note(query: str, batch_id: int, **counts: int) -> None:
    """Record counts for a batch's progress row (kept for the last `_MAX_NOTES` batches)."""
    _NOTES[(query, int(batch_id))] = counts
    while len(_NOTES) > _MAX_NOTES:
        _NOTES.pop(next(iter(_NOTES)))


def with_notes(row: dict) -> dict:
    """The row with the counts its sink noted added in."""
    for k, v in _NOTES.pop((row["query_name"], row["batch_id"]), {}).items():
        row[k] = (row.get(k) or 0) + v
    return row


def _offsets(o):
    if o is None or o == "":
        return None
    return o if isinstance(o, dict) else json.loads(o)


def lag(source: dict) -> int | None:
    """Records between the end offsets of the batch and the latest offsets of a Kafka source."""
    end, latest = _offsets(source.get("endOffset")), _offsets(source.get("latestOffset"))
    if not isinstance(end, dict) or not isinstance(latest, dict):
        return None
    total = 0
    for topic, parts in latest.items():
        for part, off in parts.items():
            total += max(0, int(off) - int(end.get(topic, {}).get(part, 0)))
    return total


def executed(p: dict) -> bool:
    """Whether the event reports a batch that ran (pure).

    A trigger that finds no new data still reports progress (every 10 s), under the id of the
    batch that has *not* run yet; recording it would hide that batch when it does run.
    """
    return "addBatch" in (p.get("durationMs") or {})


def to_row(p: dict) -> dict:
    """One progress event -> one ops.stream_progress row (pure)."""
    src = (p.get("sources") or [{}])[0]
    dur = p.get("durationMs") or {}
    js = lambda o: None if o is None else (o if isinstance(o, str) else json.dumps(o))  # noqa: E731
    return {
        "query_name": p.get("name") or "",
        "query_id": p["id"],
        "run_id": p["runId"],
        "batch_id": int(p["batchId"]),
        "timestamp": datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00")),
        "num_input_rows": int(p.get("numInputRows") or 0),
        "input_rows_per_second": float(p.get("inputRowsPerSecond") or 0.0),
        "processed_rows_per_second": float(p.get("processedRowsPerSecond") or 0.0),
        "batch_duration_ms": int(p.get("batchDuration") or dur.get("triggerExecution") or 0),
        "trigger_execution_ms": int(dur.get("triggerExecution") or 0),
        "start_offset": js(src.get("startOffset")),
        "end_offset": js(src.get("endOffset")),
        "latest_offset": js(src.get("latestOffset")),
        "lag": lag(src),
        "rows_dropped_by_watermark": sum(int(op.get("numRowsDroppedByWatermark") or 0)
                                         for op in p.get("stateOperators") or []),
        "progress_json": json.dumps(p),
    }


def new_events(last: dict, recent, seen: set, max_batch: dict) -> list[dict]:
    """The executed batches not recorded yet, given a query's latest event (updates `seen`, `max_batch`).

    `recent()` gives the query's recent events; it is only called when batches may have been
    missed (a run's first event, or a batch id that skips), since each is a JSON round trip.
    """
    run, batch = last["runId"], int(last["batchId"])
    if (run, batch) in seen or not executed(last):
        return []
    prev = max_batch.get(run)
    events = [last] if prev is not None and batch <= prev + 1 else recent()
    out = []
    for e in events:
        k = (e["runId"], int(e["batchId"]))
        if k not in seen and executed(e):
            seen.add(k)
            max_batch[k[0]] = max(k[1], max_batch.get(k[0], -1))
            out.append(e)
    return out


class ProgressRecorder:
    """Collects new progress events of running queries and appends them to ops.stream_progress.

    The same events feed the stack's Prometheus metrics (tickcast.metrics): read as one JSON string
    per query and poll, not through a StreamingQueryListener, which costs more (docs/adr/0006).
    """

    def __init__(self, spark, s: Settings):
        self.spark = spark
        self.path = ensure_table(spark, tables.STREAM_PROGRESS, s)
        self._seen: set[tuple[str, int]] = set()
        self._max_batch: dict[str, int] = {}   # run id -> highest batch id recorded
        self._pending: list[dict] = []
        self.last: dict[str, dict] = {}

    def collect(self, queries) -> None:
        """Record the progress events that are new since the last call.

        Reads `lastProgress` (one event per query); only when batches may have been missed since
        the last call (a run's first event, or a batch id that skips) does it read `recentProgress`
        (up to 100 events, each a JSON round trip: polling it every 0.5 s cost ~0.3 cores).
        """
        for q in queries:
            d = last_progress(q)
            if d is None:
                continue
            self.last[d.get("name") or d["id"]] = d
            metrics.observe_latest(d, lag((d.get("sources") or [{}])[0]))
            for e in new_events(d, lambda: recent_progress(q), self._seen, self._max_batch):
                metrics.observe_batch(e)
                self._pending.append(with_notes(to_row(e)))

    def flush(self) -> int:
        if not self._pending:
            return 0
        rows, self._pending = self._pending, []
        rs_append(arrow_rows(rows, tables.STREAM_PROGRESS.schema.spark_type()), self.path)
        return len(rows)
