"""`ops.model_events`: one row per promotion, refusal, demotion, expiry, failed retrain and manual move.

Writers: `tickcast train` (and the bootstrap's first training), the retrainer and `tickcast models
promote|rollback`. They are separate processes, so this table is the one exception to "one writer per
table": every writer only appends (blind appends never conflict in Delta), through delta-rs, whose
commit is an atomic put-if-absent of the next log entry (a local rename that refuses to overwrite; on
S3 a conditional put, which MinIO and S3 support), retried on a lost race. Nothing ever updates or
deletes a row.
"""
from __future__ import annotations

import json
import time
from datetime import datetime, timezone

from tickcast import lake, tables
from tickcast.lake import write
from tickcast.settings import Settings

PROMOTION, REFUSAL, DEMOTION, EXPIRY = "promotion", "refusal", "demotion", "expiry"
FAILED_RETRAIN, ABANDONED = "failed_retrain", "abandoned"
MANUAL_PROMOTION, ROLLBACK = "manual_promotion", "rollback"
EVENTS = (PROMOTION, REFUSAL, DEMOTION, EXPIRY, FAILED_RETRAIN, ABANDONED, MANUAL_PROMOTION, ROLLBACK)
# A training attempt, finished or not: what the retrainer's cadence counts from.
ATTEMPTS = (PROMOTION, REFUSAL, FAILED_RETRAIN)


def record(s: Settings, *, horizon: int, model_name: str, version: str | None, event: str, reason: str,
           numbers: dict | None = None, source: str, at_ms: int | None = None) -> dict:
    """Append one event; returns the row. Retries a commit that lost a race with another appender."""
    import pyarrow as pa

    if event not in EVENTS:
        raise ValueError(f"unknown model event {event!r}; known: {', '.join(EVENTS)}")
    at_ms = int(time.time() * 1000) if at_ms is None else int(at_ms)
    row = {"event_time": datetime.fromtimestamp(at_ms / 1000, tz=timezone.utc), "horizon": int(horizon),
           "model_name": model_name, "model_version": None if version is None else str(version), "event": event,
           "reason": reason or event, "numbers": json.dumps(numbers, default=str) if numbers is not None else None,
           "source": source}
    write.append_small(pa.Table.from_pylist([row], schema=tables.MODEL_EVENTS.schema.arrow_type(declared_nulls=True)), lake.uri(tables.MODEL_EVENTS, s))
    return row


def read(s: Settings, horizon: int | None = None):
    """Every event (of one horizon) as a pandas frame, newest first; empty before the first."""
    import pandas as pd

    if not lake.exists(tables.MODEL_EVENTS, s):
        return pd.DataFrame(columns=tables.MODEL_EVENTS.schema.names)
    df = lake.read(tables.MODEL_EVENTS, s,
                   filters=None if horizon is None else [("horizon", "=", int(horizon))]).to_pandas()
    return df.sort_values("event_time", ascending=False, kind="stable").reset_index(drop=True)


def newest(s: Settings, limit: int = 10, horizon: int | None = None) -> list[dict]:
    """The newest events as JSON-ready dicts (times ISO 8601 UTC, numbers parsed)."""
    df = read(s, horizon).head(limit)
    out = []
    for r in df.to_dict("records"):
        r["event_time"] = r["event_time"].isoformat().replace("+00:00", "Z")
        r["numbers"] = json.loads(r["numbers"]) if isinstance(r["numbers"], str) else None
        r["horizon"] = int(r["horizon"])
        out.append(r)
    return out


def last_attempt(s: Settings, horizon: int) -> dict | None:
    """The horizon's newest training attempt (a promotion, refusal or failed retrain): its `event`,
    `at_ms` (epoch ms) and `numbers` (parsed; {} when none); None if never."""
    df = read(s, horizon)
    df = df[df["event"].isin(ATTEMPTS)]
    if df.empty:
        return None
    r = df.iloc[0]
    numbers = json.loads(r["numbers"]) if isinstance(r["numbers"], str) else None
    return {"event": r["event"], "at_ms": int(r["event_time"].timestamp() * 1000), "numbers": numbers or {}}


def last_attempt_ms(s: Settings, horizon: int) -> int | None:
    """When the horizon was last trained (or a retrain failed), epoch ms; None if never."""
    a = last_attempt(s, horizon)
    return None if a is None else a["at_ms"]
