"""Pure pieces of the ingest job and progress history (no JVM)."""
import datetime as dt
import json

from jobs.ingest import merge_condition
from jobs.progress import lag, new_events, to_row


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


def _event(batch: int, ran: bool, rows: int = 0) -> dict:
    dur = {"addBatch": 5, "triggerExecution": 9} if ran else {"latestOffset": 1, "triggerExecution": 1}
    return {"id": "q", "runId": "r", "name": "features", "batchId": batch, "numInputRows": rows, "durationMs": dur}


def test_progress_history_skips_idle_events_and_keeps_the_batch_they_name():
    # An idle trigger reports under the id of the batch that has not run yet: it must not hide it.
    seen, top = set(), {}
    first = new_events(_event(0, True, 5), lambda: [_event(0, True, 5)], seen, top)
    assert [e["batchId"] for e in first] == [0]
    assert new_events(_event(1, False), lambda: [], seen, top) == []
    real = new_events(_event(1, True, 3), lambda: [], seen, top)
    assert [(e["batchId"], e["numInputRows"]) for e in real] == [(1, 3)]
    assert new_events(_event(1, True, 3), lambda: [], seen, top) == []          # polled again: once only
    # A skipped id: the missed batches come from recentProgress, idle events left out.
    missed = [_event(2, True, 1), _event(3, False), _event(3, True, 2), _event(4, True, 4)]
    got = new_events(_event(4, True, 4), lambda: missed, seen, top)
    assert [(e["batchId"], e["numInputRows"]) for e in got] == [(2, 1), (3, 2), (4, 4)]


def test_id_bounds_and_when_a_plain_append_inserts_each_tick_once():
    import pyarrow as pa

    from jobs.ingest import appendable_ids, id_bounds

    ticks = pa.table({"symbol": ["BTC", "BTC", "ETH", "BTC", "ETH"],
                      "event_kind": ["trade", "trade", "trade", "aggTrade", "trade"],
                      "id": [5, 7, 3, 100, 4]})
    b = id_bounds(ticks)
    assert b == {("BTC", "trade"): (5, 7, 2, 2), ("ETH", "trade"): (3, 4, 2, 2), ("BTC", "aggTrade"): (100, 100, 1, 1)}
    assert appendable_ids(b, {})                                    # an empty table
    assert appendable_ids(b, {("BTC", "trade"): 4, ("ETH", "trade"): 2, ("ETH", "aggTrade"): 999})
    assert not appendable_ids(b, {("BTC", "trade"): 5})             # id 5 may be there already
    assert not appendable_ids(b, {("BTC", "aggTrade"): 100})
    dup = pa.table({"symbol": ["BTC", "BTC"], "event_kind": ["trade", "trade"], "id": [9, 9]})
    assert not appendable_ids(id_bounds(dup), {})                   # a repeated id within the batch
    assert id_bounds(ticks.slice(0, 0)) == {} and appendable_ids({}, {("BTC", "trade"): 1})
