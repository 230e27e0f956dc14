"""Pure pieces of the ingest job and progress history (no JVM)."""
import datetime as dt
import json

from jobs.ingest import merge_condition
from jobs.progress import lag, to_row


def test_merge_condition_keys_and_prunes_by_literal_bounds():
    c = merge_condition([("BTCUSDT", "trade", 10, 20)], [dt.date(2024, 8, 8)])
    for part in ("t.symbol = s.symbol", "t.event_kind = s.event_kind", "t.id = s.id",
                 "t.date IN (DATE'2024-08-08')", "t.id BETWEEN 10 AND 20"):
        assert part in c


def test_lag_and_progress_row():
    src = {"startOffset": {"ticks": {"0": 5}}, "endOffset": {"ticks": {"0": 10, "1": 3}},
           "latestOffset": {"ticks": {"0": 15, "1": 3}}}
    assert lag(src) == 5
    p = {"id": "q", "runId": "r", "name": "ingest", "batchId": 3, "timestamp": "2026-11-22T04:09:44.013Z",
         "numInputRows": 7, "inputRowsPerSecond": 1.5, "processedRowsPerSecond": 2.5, "batchDuration": 400,
         "durationMs": {"triggerExecution": 390}, "sources": [src]}
    row = to_row(p)
    assert row["batch_id"] == 3 and row["lag"] == 5 and row["batch_duration_ms"] == 400
    assert json.loads(row["start_offset"]) == {"ticks": {"0": 5}} and json.loads(row["progress_json"]) == p
