"""One writer per table: `tickcast backfill` while a `bars` job runs on the same data directory is
refused (naming the running job and the lock file) and writes nothing, so no (symbol, window_start)
can be inserted twice; once the job has stopped, the same backfill inserts only what is missing."""
from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tickcast import lake, tables
from tickcast.lock import read_holder

pytestmark = pytest.mark.spark
TICKCAST = str(Path(sys.executable).with_name("tickcast"))
DAYS = ("2024-08-08", "2024-08-09")


def _bars(s):
    t = lake.read(tables.BARS, s, columns=["symbol", "window_start", "source", "close"])
    df = t.to_pandas()
    df["window_ms"] = lake.to_ms(t["window_start"])
    return df


def test_backfill_while_bars_runs_is_refused_and_writes_nothing(spark, base_settings, shared_data, tmp_path):
    d = tmp_path / "data"
    # A data directory of its own: the test process may hold the shared one's lock (and a job it
    # starts is then let in as its child), which is not the case under test.
    s = dataclasses.replace(base_settings, data_dir=d, lake_uri=str(d / "delta"), checkpoint_uri=str(d / "cp"))
    env = s.child_env()
    files = [str(shared_data / "klines_1m" / f"BTCUSDT-1m-{day}.csv.gz") for day in DAYS]

    def backfill(*paths):
        return subprocess.run([TICKCAST, "backfill", "--klines", *paths], env=env, capture_output=True, text=True,
                              timeout=300, cwd=REPO)

    from jobs.backfill import backfill as load_klines

    assert load_klines(spark, s, [files[0]])["inserted"] == 1440      # the first day, in this process
    before = _bars(s)
    assert len(before) == 1440

    job = subprocess.Popen([TICKCAST, "job", "bars"], env=env, cwd=REPO, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        lock = d / "writer.lock"
        deadline = time.monotonic() + 120
        while read_holder(lock)[0] != job.pid:
            assert job.poll() is None, job.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the bars job never took the writer lock"
            time.sleep(0.2)
        assert read_holder(lock) == (job.pid, "tickcast job bars")
        # Both days: the first overlaps the table, the second is new. Neither may go in now.
        r = backfill(*files)
        assert r.returncode != 0, r.stdout
        assert (f"process {job.pid} (tickcast job bars) is already writing to this data directory; "
                f"it holds {lock}") in r.stderr, r.stderr[-2000:]
        assert "inserted" not in r.stdout
        assert job.poll() is None, "the refused backfill must not disturb the running job"
    finally:
        if job.poll() is None:
            os.killpg(job.pid, signal.SIGTERM)       # a clean stop: the job lets its batch finish
            try:
                job.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(job.pid, signal.SIGKILL)
                job.wait(30)
    after = _bars(s)
    assert len(after) == len(before) and not after.duplicated(["symbol", "window_ms"]).any()
    assert after.sort_values("window_ms")["close"].tolist() == before.sort_values("window_ms")["close"].tolist()

    # The job gone (and its lock with it), the backfill runs and inserts only the missing day.
    r = backfill(*files)
    assert r.returncode == 0 and "inserted 1440, already present 1440" in r.stdout, r.stdout + r.stderr[-2000:]
    final = _bars(s)
    assert len(final) == 2880 and not final.duplicated(["symbol", "window_ms"]).any()
    assert (final["source"] == "klines").all()
