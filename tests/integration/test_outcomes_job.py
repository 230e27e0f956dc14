"""Job `outcomes` on real Spark + Delta and real BTCUSDT klines (../shared): every outcome equals a hand
computation from the CSV itself, at the edge of the horizon, past it (pending) and across gaps;
predictions written after their bars; a restart from the checkpoint and a kill -9 add nothing twice;
gold.model_scores equals an independent pandas computation."""
from __future__ import annotations

import csv
import gzip
import math
import random
from datetime import datetime, timedelta, timezone

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from tickcast import lake, schemas, tables
from tickcast.timeunits import MINUTE_MS as M

pytestmark = pytest.mark.spark
KLINES = "klines_1m/BTCUSDT-1m-2024-01.csv.gz"
GAPS = set(range(100, 105)) | {200}          # minutes (row indices) removed from the bars
TRAINING_END_MIN = 50                        # rows at or before minute 50 are inside the training data


def read_csv(path, n: int) -> list[list[str]]:
    with gzip.open(path, "rt") as f:
        return [r for _, r in zip(range(n), csv.reader(f))]


def write_klines(path, rows):
    with gzip.open(path, "wt") as f:
        f.writelines(",".join(r) + "\n" for r in rows)
    return path


class Market:
    """The kept minutes of each symbol, straight from the CSV (the independent side of the comparison)."""

    def __init__(self, rows: list[list[str]]):
        self.rows = rows
        self.t0 = int(rows[0][0])
        self.kept: dict[str, dict[int, float]] = {}

    def add(self, spark, s, tmp_path, *spans: tuple[str, int, int]) -> None:
        """Backfill minutes [lo, hi) except the gaps as `symbol`'s bars, for each (symbol, lo, hi), in one insert."""
        from jobs.backfill import backfill

        files = []
        for symbol, lo, hi in spans:
            idx = [i for i in range(lo, hi) if i not in GAPS]
            files.append(write_klines(tmp_path / f"{symbol}-1m-{lo}-{hi}.csv.gz", [self.rows[i] for i in idx]))
            self.kept.setdefault(symbol, {}).update({i: float(self.rows[i][4]) for i in idx})
        backfill(spark, s, files)

    def latest(self, symbol: str) -> int:
        return max(self.kept[symbol])

    def close(self, i: int) -> float:
        return float(self.rows[i][4])

    def expected(self, p: dict) -> dict | None:
        """The outcome of prediction `p` by hand, or None while its target bar is unknown."""
        kept = self.kept[p["symbol"]]
        ws, h = p["_m"], p["horizon"]
        if ws + h > max(kept):
            return None
        after = [m for m in range(ws + 1, ws + h + 1) if m in kept]
        rc = kept[after[-1]] if after else p["close"]          # the close carries over missing minutes
        r = math.log(rc / p["close"])

        def hit(q):
            return None if q is None or r == 0 else (q > 0.5) == (r > 0)

        target_close_ms = self.t0 + (ws + h + 1) * M
        return {"realized_close": rc, "realized_return": r, "missing_minutes": h - len(after),
                "hit": hit(p["prob_up"]), "climatology_hit": hit(p["climatology_prob_up"]),
                "momentum_hit": hit(p["momentum_prob_up"]), "after_training_end": ws > TRAINING_END_MIN,
                "made_before_outcome": p["_pt_us"] < target_close_ms * 1000}


def ts(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


def ts_us(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=us)


class Predictions:
    """Hand-made gold.predictions rows (the predict job is not needed to test outcomes)."""

    def __init__(self, market: Market, seed: int = 7):
        self.m = market
        self.rng = random.Random(seed)
        self.rows: list[dict] = []
        self.keys: set[tuple] = set()

    def make(self, symbol: str, minute: int, h: int, version: str = "1", late_ms: int | None = None) -> dict | None:
        """A prediction row, or None when that key exists already (the table is unique on it)."""
        t0, rng = self.m.t0, self.rng
        if (symbol, minute, h, version) in self.keys:
            return None
        self.keys.add((symbol, minute, h, version))
        pt = t0 + (minute + 1) * M + 2_000 if late_ms is None else t0 + (minute + h + 1) * M + late_ms
        p = {"symbol": symbol, "horizon": h, "model_name": f"tickcast-h{h}", "model_version": version,
             "feature_version": "fv1", "prob_up": rng.choice([rng.uniform(0.05, 0.95), 0.5]),
             "pred_return": rng.gauss(0, 1e-3), "close": self.m.close(minute),
             "climatology_prob_up": 0.52, "momentum_prob_up": None if rng.random() < 0.15 else rng.uniform(0.3, 0.7),
             "momentum_return": rng.gauss(0, 1e-4), "batch_id": 0, "_m": minute,
             "_pt_us": pt * 1000 + rng.randrange(1000)}     # sub-millisecond part must survive
        self.rows.append(p)
        return p

    def many(self, specs) -> list[dict]:
        return [p for p in (self.make(*a, **k) for a, k in specs) if p is not None]

    def write(self, spark, s, rows: list[dict]) -> None:
        from tickcast.lake.write import ensure_table

        t0 = self.m.t0
        data = [(p["symbol"], ts(t0 + p["_m"] * M), p["horizon"], ts(t0 + (p["_m"] + p["horizon"]) * M),
                 p["model_name"], p["model_version"], p["feature_version"], p["prob_up"], p["pred_return"],
                 p["close"], ts(t0 + TRAINING_END_MIN * M), p["climatology_prob_up"], p["momentum_prob_up"],
                 p["momentum_return"], ts_us(p["_pt_us"]), p["batch_id"]) for p in rows]
        path = ensure_table(spark, tables.PREDICTIONS, s)
        spark.createDataFrame(data, schemas.PREDICTIONS.spark_type()).write.format("delta").mode("append").save(path)

    def batch(self, symbol: str, lo: int, hi: int, version: str = "1") -> list[dict]:
        """Predictions at minutes [lo, hi) of `symbol`: every horizon every few minutes, some made late,
        and the edge: target == the last bar (realized) and one minute past it (pending)."""
        specs = []
        for i, minute in enumerate(range(lo, hi, 3)):
            late = {0: None, 1: None, 2: None, 3: -1, 4: 0}[i % 5]   # 1 ms before / exactly at the outcome
            specs.append(((symbol, minute, (1, 5, 15)[i % 3], version, late), {}))
        last = hi - 1
        for h in (1, 5, 15):
            specs.append(((symbol, last - h, h, version), {}))          # target == the last bar
            specs.append(((symbol, last - h + 1, h, version), {}))      # one minute past: pending
        return self.many(specs)

    def across_gaps(self, symbol: str) -> list[dict]:
        return self.many(((symbol, m, h), {}) for m, h in ((99, 1), (99, 5), (99, 15), (97, 5), (97, 15), (95, 1),
                                                           (195, 5), (199, 1), (199, 15), (196, 5)))


def outcomes_frame(s) -> pd.DataFrame:
    t = lake.read(tables.OUTCOMES, s)
    df = t.to_pandas()
    for c in ("window_start", "target_time", "outcome_time"):
        df[c] = lake.to_ms(t[c])
    df["prediction_time"] = pc.cast(pc.cast(t["prediction_time"], pa.timestamp("us", tz="UTC")), pa.int64()).to_numpy()
    return df


def check_outcomes(s, market: Market, preds: Predictions) -> pd.DataFrame:
    got = outcomes_frame(s)
    assert not got.duplicated(list(schemas.OUTCOMES_KEY)).any(), "an outcome was written twice"
    by_key = {(r["symbol"], r["window_start"], r["horizon"], r["model_name"], r["model_version"]): r
              for r in got.to_dict("records")}
    n_expected = 0
    for p in preds.rows:
        key = (p["symbol"], market.t0 + p["_m"] * M, p["horizon"], p["model_name"], p["model_version"])
        exp = market.expected(p)
        if exp is None:
            assert key not in by_key, f"realized before its target bar exists: {key}"
            continue
        n_expected += 1
        assert key in by_key, f"missing outcome {key} (target minute {p['_m'] + p['horizon']})"
        row = by_key[key]
        assert row["realized_close"] == exp["realized_close"], key
        assert row["realized_return"] == pytest.approx(exp["realized_return"], rel=1e-13, abs=1e-16), key
        for c in ("missing_minutes", "after_training_end", "made_before_outcome"):
            assert row[c] == exp[c], (key, c)
        for c in ("hit", "climatology_hit", "momentum_hit"):
            assert (None if pd.isna(row[c]) else bool(row[c])) == exp[c], (key, c)
        assert row["target_time"] == key[1] + p["horizon"] * M and row["close"] == p["close"]
        assert row["prob_up"] == p["prob_up"] and row["prediction_time"] == p["_pt_us"]
        assert row["pred_return"] == p["pred_return"] and row["momentum_return"] == p["momentum_return"]
    assert len(got) == n_expected
    # NULL baselines stay NULL (not NaN) through pandas and back.
    nulls = lake.read(tables.OUTCOMES, s, columns=["momentum_prob_up", "momentum_hit"])
    assert nulls["momentum_prob_up"].null_count == sum(1 for p in preds.rows if p["momentum_prob_up"] is None
                                                       and market.expected(p) is not None) > 0
    assert nulls["momentum_hit"].null_count == sum(1 for p in preds.rows if (e := market.expected(p)) is not None
                                                   and e["momentum_hit"] is None)
    return got


def expected_scores(outcomes: pd.DataFrame, latest_ms: int) -> dict[tuple, dict]:
    """gold.model_scores by hand from the outcome rows (plain pandas, not jobs.outcomes)."""
    out = {}
    o = outcomes.assign(symbol_all="*")
    for window, width in (("1h", 60 * M), ("24h", 24 * 60 * M)):
        inside = o[(o["target_time"] > latest_ms - 24 * 60 * M) & (o["target_time"] <= latest_ms)]
        for symcol in ("symbol", "symbol_all"):
            for (name, version, h, sym), g in inside.groupby(["model_name", "model_version", "horizon", symcol]):
                c = g[g["after_training_end"] & g["made_before_outcome"] & (g["target_time"] > latest_ms - width)]
                d = c[c["realized_return"] != 0]
                y = (d["realized_return"] > 0).astype(float)
                clipped = d["prob_up"].clip(1e-7, 1 - 1e-7)
                mom = d[d["momentum_prob_up"].notna()]
                ym = (mom["realized_return"] > 0).astype(float)
                out[(name, version, h, sym, window)] = {
                    "n": len(c),
                    "brier": ((clipped - y) ** 2).mean() if len(d) else None,
                    "accuracy": ((d["prob_up"] > 0.5) == (y > 0)).mean() if len(d) else None,
                    "mae": (c["pred_return"] - c["realized_return"]).abs().mean() if len(c) else None,
                    "climatology_brier": ((d["climatology_prob_up"] - y) ** 2).mean() if len(d) else None,
                    "climatology_accuracy": ((d["climatology_prob_up"] > 0.5) == (y > 0)).mean() if len(d) else None,
                    "momentum_brier": ((mom["momentum_prob_up"] - ym) ** 2).mean() if len(mom) else None,
                    "momentum_accuracy": ((mom["momentum_prob_up"] > 0.5) == (ym > 0)).mean() if len(mom) else None,
                }
    return out


def check_scores(s, outcomes: pd.DataFrame, latest_ms: int) -> pd.DataFrame:
    t = lake.read(tables.MODEL_SCORES, s)
    sc = t.to_pandas()
    assert not sc.duplicated(list(schemas.MODEL_SCORES_KEY)).any(), "a batch's scores were appended twice"
    last = sc[sc["batch_id"] == sc["batch_id"].max()]
    want = expected_scores(outcomes, latest_ms)
    got = {(r["model_name"], r["model_version"], r["horizon"], r["symbol"], r["window"]): r
           for r in last.to_dict("records")}
    assert set(got) == set(want) and len(got) > 0
    for k, w in want.items():
        for c, v in w.items():
            if v is None:
                assert pd.isna(got[k][c]), (k, c)
            else:
                assert got[k][c] == pytest.approx(v, rel=1e-9, abs=1e-15), (k, c)
    assert any(r["n"] > 0 and r["window"] == "1h" for r in got.values())
    return sc


def run_outcomes(spark, s):
    from jobs.runner import run

    return run(["outcomes"], s, available_now=True, spark=spark)


def test_outcomes_equal_hand_computation_at_the_edge_across_gaps_and_after_a_restart(spark, lake_lane, shared_data,
                                                                                    tmp_path, monkeypatch):
    s = lake_lane
    market = Market(read_csv(shared_data / KLINES, 400))
    preds = Predictions(market)
    market.add(spark, s, tmp_path, ("BTCUSDT", 0, 250), ("ETHUSDT", 0, 150))   # ETH: the same prices, shorter
    first = (preds.batch("BTCUSDT", 0, 250) + preds.batch("ETHUSDT", 0, 150) + preds.across_gaps("BTCUSDT")
             + preds.across_gaps("ETHUSDT"))                 # ETH's minutes 195..: pending (no bar there yet)
    # A second version of one model on the same bars.
    first += preds.many((("BTCUSDT", m, 5, "2"), {}) for m in range(60, 240, 11))
    preds.write(spark, s, first)

    run_outcomes(spark, s)
    got1 = check_outcomes(s, market, preds)
    assert got1["missing_minutes"].max() == 5 and (got1["realized_return"] == 0).sum() >= 4
    assert got1["hit"].isna().sum() >= 4 and got1["made_before_outcome"].sum() < len(got1)
    edge = got1[(got1["symbol"] == "BTCUSDT") & (got1["target_time"] == market.t0 + 249 * M)]
    assert sorted(edge["horizon"]) == [1, 5, 15]
    assert got1["outcome_time"].nunique() == 1               # one literal time per batch
    check_scores(s, got1, market.t0 + 249 * M)

    # More bars, then predictions written AFTER their bars (old minutes, a new version) and new ones.
    market.add(spark, s, tmp_path, ("BTCUSDT", 250, 400), ("ETHUSDT", 150, 300))
    second = (preds.batch("BTCUSDT", 250, 400) + preds.batch("ETHUSDT", 150, 300)
              + preds.many((("BTCUSDT", m, 15, "3"), {}) for m in range(2, 240, 13)))
    preds.write(spark, s, second)
    import jobs.outcomes

    monkeypatch.setattr(jobs.outcomes, "DRIVER_ROWS", 0)     # this time the backlog path (Python workers)
    run_outcomes(spark, s)                                   # a restart from the checkpoint
    monkeypatch.undo()
    got2 = check_outcomes(s, market, preds)
    assert len(got2) > len(got1)
    before = got2.merge(got1[list(schemas.OUTCOMES_KEY) + ["outcome_time"]], on=list(schemas.OUTCOMES_KEY),
                        suffixes=("", "_1"))
    assert len(before) == len(got1) and (before["outcome_time"] == before["outcome_time_1"]).all()
    assert (got2["model_version"] == "3").sum() == 19       # realized at once, though their bars were old
    sc = check_scores(s, got2, market.t0 + 399 * M)
    assert sc["batch_id"].nunique() == 2

    # Nothing new: a run that finds no new bars writes nothing.
    run_outcomes(spark, s)
    assert len(outcomes_frame(s)) == len(got2)
    assert len(lake.read(tables.MODEL_SCORES, s)) == len(sc)


def test_kill_minus_9_during_outcomes_then_restart_exact_and_unique(spark, lake_lane, shared_data, tmp_path):
    import dataclasses
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from tests.conftest import REPO
    from testkit.wait import until

    s = dataclasses.replace(lake_lane, trigger_seconds=0.5, outcomes_trigger_seconds=0.5)
    market = Market(read_csv(shared_data / KLINES, 400))
    preds = Predictions(market, seed=11)
    market.add(spark, s, tmp_path, ("BTCUSDT", 0, 200))
    preds.write(spark, s, preds.batch("BTCUSDT", 0, 200) + preds.across_gaps("BTCUSDT"))

    proc = subprocess.Popen([sys.executable, str(REPO / "jobs" / "main.py"), "--job", "outcomes"],
                            env=s.child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    cp = Path(tables.checkpoint(s, "outcomes"))

    def wait_for(path: Path, what: str, timeout: float = 240) -> None:
        until(path.exists, timeout, what, proc=proc, interval=0.05)

    try:
        wait_for(cp / "commits" / "0", "first committed batch")
        # Predictions first: the bars' commit is what starts the second batch.
        preds.write(spark, s, preds.batch("BTCUSDT", 200, 400))
        market.add(spark, s, tmp_path, ("BTCUSDT", 200, 400))
        wait_for(cp / "offsets" / "1", "second batch")       # planned: kill it while it runs
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    assert not (cp / "commits" / "1").exists(), "kill must land inside the second batch"
    mid = outcomes_frame(s)
    assert not mid.duplicated(list(schemas.OUTCOMES_KEY)).any()

    run_outcomes(spark, s)
    got = check_outcomes(s, market, preds)
    assert got["target_time"].max() == market.t0 + 399 * M and len(got) >= len(mid)
    sc = check_scores(s, got, market.t0 + 399 * M)
    assert set(sc["batch_id"]) == {0, 1}


def test_within_one_run_a_batch_scans_only_what_can_still_be_pending(spark, lake_lane, shared_data, tmp_path):
    """After its first batch, the writer reads only predictions not due before or scored since then;
    predictions written after their bars (scored late) are still realized."""
    import time

    from pyspark.sql import functions as F

    from tickcast.lake.write import ensure_table
    from jobs.outcomes import OutcomeWriter, candidates

    s = lake_lane
    market = Market(read_csv(shared_data / KLINES, 300))
    preds = Predictions(market, seed=3)
    market.add(spark, s, tmp_path, ("BTCUSDT", 0, 150))
    preds.write(spark, s, preds.batch("BTCUSDT", 0, 150))
    for t in (tables.OUTCOMES, tables.MODEL_SCORES):     # what the job's start() creates
        ensure_table(spark, t, s)
    writer = OutcomeWriter(s)
    writer.bind("test-query")                            # what start_sink does with the query's id

    def bars(lo: int):
        return (spark.read.format("delta").load(tables.BARS.path(s))
                .where(F.col("window_start") >= F.timestamp_millis(F.lit(market.t0 + lo * M)))
                .select("symbol", "window_start"))

    writer(bars(0), 0)
    got1 = check_outcomes(s, market, preds)
    market.add(spark, s, tmp_path, ("BTCUSDT", 150, 300))
    late = preds.many((("BTCUSDT", m, 5, "7"), {}) for m in range(3, 140, 9))   # old minutes, scored just now
    now_us = int(time.time() * 1e6)
    for p in late:
        p["_pt_us"] = now_us
    preds.write(spark, s, late + preds.batch("BTCUSDT", 150, 300))
    writer(bars(150), 1)
    got2 = check_outcomes(s, market, preds)
    assert (got2["model_version"] == "7").sum() == len(late) > 10
    assert len(got2) > len(got1) + len(late)
    # The bound at work: of everything in gold.predictions, the next batch would look at the late ones
    # (scored within the margin) and those not due yet only.
    pred = spark.read.format("delta").load(tables.PREDICTIONS.path(s))
    pending = len(preds.rows) - len(got2)
    assert pred.where(candidates(*writer.done_upto)).count() == len(late) + pending
