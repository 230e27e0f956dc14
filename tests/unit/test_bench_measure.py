"""bench/measure.py, the benchmarks' shared measuring helpers: the pure parts."""
import json

import numpy as np

from bench import measure


def test_pct_is_numpys_linear_percentile():
    v = [5.0, 1.0, 3.0, 10.0, 2.5]
    for p in (0, 10, 50, 95, 100):
        assert measure.pct(v, p) == np.percentile(v, p)
    assert measure.pct([], 50) != measure.pct([], 50)        # NaN


def test_batch_summary_counts_only_batches_with_rows():
    progress = [{"numInputRows": 0, "durationMs": {"triggerExecution": 5}},
                {"numInputRows": 10, "durationMs": {"triggerExecution": 100, "addBatch": 80}},
                {"numInputRows": 4, "durationMs": {"triggerExecution": 60, "addBatch": 30}}]
    assert measure.batch_summary(progress) == {
        "batches": 2, "rows_per_batch": [10, 4], "trigger_ms_per_batch": [100, 60],
        "duration_ms_total": {"triggerExecution": 160, "addBatch": 110}}


def test_report_writes_the_json_and_prints_the_table(tmp_path, capsys):
    r = {"x": 1}
    path = measure.report(r, tmp_path, "demo", [("rate", "12 rows/s", "note"), ("p95", "3 ms", "")], "why", ["a"])
    assert json.loads(path.read_text()) == {"x": 1, "json": str(path.resolve())}
    out = capsys.readouterr().out
    assert "tickcast bench demo" in out and "rate  12 rows/s  note" in out and "  a" in out
