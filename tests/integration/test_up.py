"""`tickcast up` end to end: from nothing to predictions and outcomes, Ctrl-C, and a second `up` that resumes.

Real everything: the test's broker, `tickcast up` as a user runs it (a subprocess with the
simulator), its bootstrap training into a fresh MLflow store, Spark, Delta.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from testkit.promtool import check_metrics
from tickcast import data_loss, lake, metrics, schemas, tables

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rows(t, s) -> int:
    try:
        return len(lake.read(t, s, columns=[t.schema.names[0]])) if lake.exists(t, s) else 0
    except Exception:  # being created: not yet
        return 0


def start_up(s, log):
    return subprocess.Popen([sys.executable, "-m", "tickcast.cli", "up", "--source", "simulate", "--rate", "50"],
                            env=s.child_env(), cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)


def wait_for(proc, cond, timeout: float, what: str, log_path) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            pytest.fail(f"`tickcast up` exited ({proc.returncode}) before {what}:\n"
                        + log_path.read_text(errors="replace")[-3000:])
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"no {what} after {timeout:.0f} s:\n" + log_path.read_text(errors="replace")[-3000:])
        time.sleep(2)


def ctrl_c(proc, log_path) -> str:
    """SIGINT as a terminal's Ctrl-C; `up` must stop everything and exit 0 on its own."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        code = proc.wait(120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("`tickcast up` did not stop within 120 s of Ctrl-C")
    out = log_path.read_text(errors="replace")
    assert code == 0, out[-3000:]
    pid = int(re.findall(r"producer: simulate \(pid (\d+)", out)[-1])     # this run's (a log holds earlier runs)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)            # the producer was stopped with the pipeline
    return out


def scrape(s) -> tuple[bytes, dict[tuple, float]]:
    """The stack's /metrics: the text and its samples, read by prometheus_client's own parser."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://127.0.0.1:{s.metrics_port}/metrics", timeout=10) as r:
        text = r.read()
    return text, {(x.name, tuple(sorted(x.labels.items()))): x.value
                  for f in text_string_to_metric_families(text.decode()) for x in f.samples}


def by_label(samples: dict, name: str, label: str) -> dict[str, float]:
    return {dict(k[1])[label]: v for k, v in samples.items() if k[0] == name}


def newest_minute_of_commit(path, at: float) -> tuple[float, float]:
    """(commit time, newest window start + 60 s) of the Delta commit made within 1 s of `at`, from
    the table's log: commitInfo.timestamp and the added files' statistics (max window_start)."""
    best = None
    for f in sorted((Path(path) / "_delta_log").glob("*.json")):
        ts, ends = None, []
        for line in f.read_text().splitlines():
            a = json.loads(line)
            if "commitInfo" in a:
                ts = a["commitInfo"]["timestamp"] / 1000.0
            elif "add" in a:
                st = json.loads(a["add"].get("stats") or "{}")
                v = (a["add"].get("partitionValues") or {}).get("window_start") or st.get("maxValues", {}).get(
                    "window_start")
                if v is not None:
                    w = pd.Timestamp(v)
                    ends.append((w if w.tzinfo else w.tz_localize("UTC")).timestamp() + 60.0)
        if ts is not None and ends and abs(ts - at) <= 1.0 and (best is None or abs(ts - at) < abs(best[0] - at)):
            best = (ts, max(ends))
    assert best is not None, f"no commit of {path} within 1 s of {at}"
    return best


def unique(t, s, key) -> int:
    df = lake.read(t, s, columns=list(key)).to_pandas()
    assert not df.duplicated(list(key)).any(), f"{t.name} has a duplicate key"
    return len(df)


def test_up_from_nothing_to_outcomes_then_ctrl_c_and_resume(lane, tmp_path):
    s = dataclasses.replace(lane, mlflow_uri=f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}", horizons=(1,))
    log_path = tmp_path / "up.log"

    with open(log_path, "ab") as log:
        proc = start_up(s, log)
        # Bootstrap (simulated history with the planted signal, features, training in a child), then
        # the streams: the first live predictions, then their outcomes once the next minute closed.
        wait_for(proc, lambda: rows(tables.PREDICTIONS, s) > 0, 900, "prediction", log_path)
        _, early = scrape(s)
        wait_for(proc, lambda: rows(tables.OUTCOMES, s) > 0, 900, "outcome", log_path)
        # The stack's /metrics as ticks flow: every query's counters rise past their early reading.
        def risen():
            late = scrape(s)[1]
            return all(by_label(late, n, "query").get(q, 0) > by_label(early, n, "query").get(q, 0)
                       for q in ("ingest", "bars", "features", "predict", "outcomes")
                       for n in ("tickcast_stream_input_rows_total", "tickcast_stream_batches_total"))
        wait_for(proc, risen, 240, "every query's counters rising on /metrics", log_path)
        text, late = scrape(s)
        check_metrics(text)
        commits = by_label(late, "tickcast_stage_commit_timestamp_seconds", "stage")
        fresh = by_label(late, "tickcast_stage_freshness_seconds", "stage")
        lost = {(dict(k[1])["topic"], int(dict(k[1])["partition"])): v for k, v in late.items()
                if k[0] == "tickcast_lost_offsets"}
        first = ctrl_c(proc, log_path)
    assert f"metrics: http://127.0.0.1:{s.metrics_port}/metrics" in first
    # Freshness per stage equals its Delta commit: the commit's time minus its newest minute's end.
    assert set(fresh) == {"bars", "features", "predictions"}, fresh
    for stage, table in (("bars", tables.BARS), ("features", tables.FEATURES), ("predictions", tables.PREDICTIONS)):
        ts, end = newest_minute_of_commit(table.path(s), commits[stage])
        assert abs(commits[stage] - ts) <= 1.0 and abs(fresh[stage] - (ts - end)) <= 1.0, (stage, commits, fresh, ts, end)
    # The lost-offsets gauge is ops.lost_offsets, partition by partition (0 where nothing was lost).
    table_lost = data_loss.lost_offsets(s)
    assert {k for k in lost if k[0] == s.topic} == {(s.topic, p) for p in range(s.topic_partitions)}, lost
    assert all(lost[k] == table_lost.get(k, 0) for k in lost), (lost, table_lost)
    assert set(late_served := by_label(late, "tickcast_model_version", "horizon")) == {"1"}, late_served
    # Every metric is there but those that may not be measured yet (lag at no input rate, live scores
    # before enough outcomes).
    maybe = {"tickcast_stream_kafka_lag_seconds", "tickcast_live_hit_ratio", "tickcast_live_brier_score",
             "tickcast_live_outcomes"}
    assert set(metrics.NAMES) - maybe <= {k[0] for k in late}, set(metrics.NAMES) - {k[0] for k in late}
    assert "producer: simulate" in first and "models: training horizon(s) 1" in first
    # Training registers every candidate family; the champion is one of those versions.
    champ = re.search(r"tickcast-h1 v(\d+) -> champion", first)
    assert champ, first[-3000:]
    assert late_served["1"] == int(champ.group(1))
    assert "stopping: producer, streams" in first

    ticks1 = unique(tables.TICKS, s, schemas.TICKS_KEY)
    unique(tables.BARS, s, schemas.BARS_KEY)
    unique(tables.PREDICTIONS, s, schemas.PREDICTIONS_KEY)
    unique(tables.OUTCOMES, s, schemas.OUTCOMES_KEY)
    preds = lake.read(tables.PREDICTIONS, s).to_pandas()
    live = preds[preds["symbol"].str.endswith("-SIMSIG") & (preds["prediction_time"] > preds["window_start"])]
    assert len(live) and set(live["model_version"]) == {champ.group(1)} and set(live["horizon"]) == {1}
    assert live["prob_up"].between(0, 1).all()
    # Every query's executed batches are in the progress history, rows included (not only idle triggers).
    prog = lake.read(tables.STREAM_PROGRESS, s, columns=["query_name", "run_id", "batch_id", "num_input_rows"]
                     ).to_pandas()
    assert not prog.duplicated(["run_id", "batch_id"]).any()
    with_rows = prog[prog["num_input_rows"] > 0].groupby("query_name").size()
    assert set(with_rows.index) == {"ingest", "bars", "features", "predict", "outcomes"}, with_rows

    # A second `up` resumes: the models are there (no training), new ticks land, nothing is duplicated.
    with open(log_path, "ab") as log:
        proc = start_up(s, log)
        wait_for(proc, lambda: rows(tables.TICKS, s) > ticks1 + 500, 300, "new ticks", log_path)
        second = ctrl_c(proc, log_path)[len(first):]
    assert "models: training" not in second
    ticks2 = unique(tables.TICKS, s, schemas.TICKS_KEY)
    assert ticks2 > ticks1 + 500
    unique(tables.BARS, s, schemas.BARS_KEY)
    unique(tables.PREDICTIONS, s, schemas.PREDICTIONS_KEY)
    assert rows(tables.QUARANTINE, s) == 0
