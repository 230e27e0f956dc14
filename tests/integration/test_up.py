"""`tickcast up` end to end: from nothing to predictions and outcomes, Ctrl-C, and a second `up` that resumes.

Real everything: the test's broker, `tickcast up` as a user runs it (a subprocess with the
simulator), its bootstrap training into a fresh MLflow store, Spark, Delta.
"""
from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from tickcast import lake, schemas, tables

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
    pid = int(re.search(r"producer: simulate \(pid (\d+)", out).group(1))
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)            # the producer was stopped with the pipeline
    return out


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
        wait_for(proc, lambda: rows(tables.OUTCOMES, s) > 0, 900, "outcome", log_path)
        first = ctrl_c(proc, log_path)
    assert "producer: simulate" in first and "models: training horizon(s) 1" in first
    # Training registers every candidate family; the champion is one of those versions.
    champ = re.search(r"tickcast-h1 v(\d+) -> champion", first)
    assert champ, first[-3000:]
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
