"""`tickcast backfill --klines A B` (files after one flag, as a shell glob gives them) and `tickcast sql`
answering through delta-rs by default, equal to Spark SQL on the same table."""
from __future__ import annotations

import dataclasses
import gzip
import io
import json
import subprocess
import sys

import pandas as pd
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.spark
TICKCAST = [sys.executable, "-m", "tickcast.cli"]
DAYS = ("2024-08-08", "2024-08-09")


def run(args, s, timeout=300):
    r = subprocess.run([*TICKCAST, *args], env=s.child_env(), capture_output=True, text=True, timeout=timeout,
                       cwd=REPO)
    return r


@pytest.fixture(scope="module")
def klines_lake(base_settings, shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("sqlcli")
    s = dataclasses.replace(base_settings, lake_uri=str(root / "delta"), checkpoint_uri=str(root / "cp"))
    files = [str(shared_data / "klines_1m" / f"BTCUSDT-1m-{d}.csv.gz") for d in DAYS]
    r = run(["backfill", "--klines", *files], s)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "read 2880 klines, inserted 2880" in r.stdout, r.stdout
    # The repeated flag is the same thing: nothing new.
    r = run(["backfill", "--klines", files[0], "--klines", files[1]], s)
    assert r.returncode == 0 and "inserted 0, already present 2880" in r.stdout, r.stdout + r.stderr[-2000:]
    return s, files


def _closes(files) -> pd.DataFrame:
    """Each file's minutes and closes as Binance wrote them."""
    rows = []
    for f in files:
        for line in gzip.open(f, "rt"):
            c = line.strip().split(",")
            if c[0].isdigit():
                rows.append((int(c[0]), float(c[4])))
    return pd.DataFrame(rows, columns=["open_ms", "close"])


def test_sql_by_delta_rs_equals_spark_and_binance(klines_lake, spark):
    from tickcast.cli import sql_frame

    s, files = klines_lake
    q = ("SELECT date_trunc('hour', window_start) AS hour, count(*) AS n, max(high) AS high, sum(volume) AS volume "
         "FROM silver.bars_1m WHERE symbol = 'BTCUSDT' GROUP BY 1 ORDER BY 1")
    r = run(["sql", q, "--format", "json", "--limit", "100"], s)
    assert r.returncode == 0, r.stderr[-2000:]
    got = pd.DataFrame([json.loads(x) for x in r.stdout.splitlines()])
    assert len(got) == 48 and (got["n"] == 60).all()
    ref = sql_frame(q, s, "spark", 100)
    assert [float(x) for x in got["high"]] == [float(x) for x in ref["high"]]
    assert [float(x) for x in got["volume"]] == [float(x) for x in ref["volume"]]
    # The last close, by both engines, is Binance's own.
    binance = _closes(files).sort_values("open_ms").iloc[-1]["close"]
    r = run(["sql", "SELECT close FROM silver.bars_1m ORDER BY window_start DESC", "--limit", "1", "--format", "csv"],
            s)
    assert r.returncode == 0 and pd.read_csv(io.StringIO(r.stdout))["close"].iloc[0] == binance, r.stdout


def test_sql_names_unknown_tables_and_columns(klines_lake):
    s, _ = klines_lake
    r = run(["sql", "SELECT * FROM silver.nope"], s)
    assert r.returncode == 1 and "no table silver.nope" in r.stderr and "Traceback" not in r.stderr
    r = run(["sql", "SELECT nope FROM silver.bars_1m"], s)
    assert r.returncode == 1 and "nope" in r.stderr and "Traceback" not in r.stderr
    r = run(["sql", "SELECT symbol, count(*) AS n FROM silver.bars_1m GROUP BY symbol"], s)
    assert r.returncode == 0 and "BTCUSDT" in r.stdout and "2880" in r.stdout and "(1 row)" in r.stdout, r.stdout
