"""The REST klines backfill against the stand-in exchange: 90 days, killed mid-way, restarted."""
from __future__ import annotations

import dataclasses
import gzip
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import REPO, own_lake
from tests.integration.test_live import Standin
from tickcast import lake, tables

pytestmark = pytest.mark.spark

END_MS = 1711929600000              # 2024-04-01T00:00Z
DAYS = 90
CHUNK = 50_000                      # minutes per insert (three Spark MERGEs in all: CI time)
CHILD = """
import sys
from jobs.backfill import rest_backfill
from tickcast.settings import load
from tickcast.spark import session
s = load()
rest_backfill(session(s, app="backfill-child"), s, ["BTCUSDT"], {hours}, end_ms={end}, chunk_minutes={chunk},
              echo=lambda m: print(m, flush=True))
print("finished", flush=True)
"""


def _minutes(files, lo, hi) -> np.ndarray:
    out = []
    for f in files:
        with gzip.open(f, "rt") as fh:
            out += [int(line.split(",", 1)[0]) for line in fh if line[:1].isdigit()]
    m = np.array(sorted(set(out)), np.int64)
    return m[(m >= lo) & (m < hi)]


def test_a_90_day_rest_backfill_killed_and_restarted_has_every_minute_once(spark, base_settings, tmp_path,
                                                                          shared_data):
    from jobs.backfill import rest_backfill

    files = [shared_data / "klines_1m" / f"BTCUSDT-1m-2024-0{m}.csv.gz" for m in (1, 2, 3)]
    ex = Standin("--paused", "--klines", *files)
    try:
        s = dataclasses.replace(ex.settings(own_lake(base_settings, tmp_path)), data_dir=str(tmp_path))
        child = subprocess.Popen([sys.executable, "-c", CHILD.format(hours=DAYS * 24, end=END_MS, chunk=CHUNK)], cwd=REPO,
                                 env=s.child_env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        seen = []
        deadline = time.monotonic() + 240
        for line in child.stdout:                  # killed once its first chunk is in the table
            seen.append(line.strip())
            if any("bars" in x for x in seen) or time.monotonic() > deadline:
                break
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        assert sum("bars" in x for x in seen) == 1 and "finished" not in seen, seen
        assert "50,000 of 129,600 minutes (39%)" in seen[0], seen

        start = END_MS - DAYS * 86_400_000
        before = lake.to_ms(lake.read(tables.BARS, s, columns=["window_start"])["window_start"])
        assert len(before) == CHUNK and before.min() == start

        said = []
        r = rest_backfill(spark, s, ["BTCUSDT"], DAYS * 24, end_ms=END_MS, chunk_minutes=CHUNK, echo=said.append)
        assert said[0].startswith("backfill --rest BTCUSDT: resuming at 2024-02-05T17:20Z (50,000 of 129,600"), said
        assert "100%" in said[-1] and "REST weight" in said[-1]
        # Only the missing minutes were asked for: 79,600 of them, in pages of 1,000.
        assert r["rows_read"] == r["inserted"] == 129_600 - CHUNK and r["requests"] == 80

        got = lake.to_ms(lake.read(tables.BARS, s, columns=["window_start"])["window_start"])
        want = _minutes(files, start, END_MS)
        assert len(want) == 129_600
        np.testing.assert_array_equal(np.sort(got), want)          # every minute, once
        # A third run has nothing left to fetch.
        again = rest_backfill(spark, s, ["BTCUSDT"], DAYS * 24, end_ms=END_MS, echo=lambda *_: None)
        assert again["rows_read"] == 0 and again["requests"] == 0
    finally:
        ex.close()
