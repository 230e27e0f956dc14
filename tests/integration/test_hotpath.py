"""The one-hop hot path (job `hotpath`) against the real broker, Spark, Delta and MLflow.

(a) On the shared tick recording, after real klines history: its bars equal Binance's klines value
    for value, and its bars, feature rows and predictions equal the separate jobs' on the same input.
(b) Its driver killed after the bars commit and after the features commit (testkit.faults hooks):
    after the restarts every table holds each key once, and every prediction equals the champion's
    served artefact called directly on independently computed features.
(c) A trade that arrives after its minute closed is left out and counted.
"""
from __future__ import annotations

import csv
import dataclasses
import gzip
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO
from tests.integration.conftest import PIPELINE_END_MS
from tests.integration.test_bars import FIELDS, KLINES, klines
from tests.integration.test_ingest import WS, publish_files
from testkit import faults
from testkit.lakes import fork, own_lake
from tickcast import lake, tables
from tickcast.timeunits import MINUTE_MS as MIN

pytestmark = [pytest.mark.kafka, pytest.mark.spark]

RECORDING_START = 1723161240000          # 2024-08-08 23:54, the recording's first (partial) minute
FIRST_COMPLETE = RECORDING_START + MIN


def _run(spark, s, *names):
    from jobs.runner import run

    for n in names:
        run([n], s, available_now=True, spark=spark)


def _history(tmp_path: Path, shared_data: Path) -> Path:
    """The day's klines before the recording starts, as a kline file (the history features need)."""
    out = tmp_path / "BTCUSDT-1m-history.csv.gz"
    with gzip.open(shared_data / KLINES.format("2024-08-08"), "rt") as f, gzip.open(out, "wt", newline="") as g:
        csv.writer(g).writerows(r for r in csv.reader(f) if int(r[0]) < RECORDING_START)
    return out


def _table(s, table, drop=()) -> pd.DataFrame:
    t = lake.read(table, s)
    df = t.to_pandas()
    df["window_start"] = lake.to_ms(t["window_start"])
    return df.drop(columns=list(drop)).sort_values(list(table.key)).reset_index(drop=True)


def test_hot_path_equals_klines_and_the_separate_jobs(spark, lane, pipeline, shared_data, tmp_path):
    from jobs.backfill import backfill

    history = _history(tmp_path, shared_data)
    publish_files(lane, [shared_data / WS.format(8), shared_data / WS.format(9)])
    worlds = {}
    for name in ("hot", "separate"):
        s = dataclasses.replace(fork(pipeline.settings, tmp_path / name), topic=lane.topic,
                                data_dir=tmp_path / name / "data", horizons=(pipeline.horizon,))
        backfill(spark, s, [history], "BTCUSDT")
        worlds[name] = s
    hot, sep = worlds["hot"], worlds["separate"]
    _run(spark, hot, "features", "hotpath")                  # the history's features (as `up`'s bootstrap), then live
    _run(spark, sep, "ingest", "bars", "features", "predict")

    bars = _table(hot, tables.BARS, drop=("created_at",))
    ref = klines(shared_data / KLINES.format("2024-08-08")) | klines(shared_data / KLINES.format("2024-08-09"))
    ticks = bars[bars["source"] == "ticks"].set_index("window_start")
    assert list(ticks.index) == [RECORDING_START + i * MIN for i in range(11)]   # the last minute never closed
    for m in ticks.index[1:]:
        b = ticks.loc[m]
        assert bool(b["is_complete"]), m
        for name, col in FIELDS.items():
            want = int(ref[m][col]) if name == "trade_count" else Decimal(ref[m][col])
            assert b[name] == want, (m, name, b[name], ref[m][col])
    pd.testing.assert_frame_equal(bars, _table(sep, tables.BARS, drop=("created_at",)))

    feats, feats_sep = _table(hot, tables.FEATURES), _table(sep, tables.FEATURES)
    assert len(feats) == len(bars) and not feats.duplicated(list(tables.FEATURES.key)).any()
    assert (feats[["symbol", "window_start"]] == bars[["symbol", "window_start"]]).all().all()
    assert (feats[["symbol", "window_start", "feature_version", "minutes_in_segment", "warmup"]]
            == feats_sep[["symbol", "window_start", "feature_version", "minutes_in_segment", "warmup"]]).all().all()
    assert not feats[feats["window_start"] >= RECORDING_START]["warmup"].any()
    num = [c for c in feats.columns if feats[c].dtype == float]
    np.testing.assert_allclose(feats[num].to_numpy(), feats_sep[num].to_numpy(), rtol=1e-12, atol=1e-12)

    key = list(tables.PREDICTIONS.key)
    preds = _table(hot, tables.PREDICTIONS, drop=("prediction_time", "batch_id"))
    preds_sep = _table(sep, tables.PREDICTIONS, drop=("prediction_time", "batch_id"))
    assert len(preds) == int((~feats["warmup"]).sum()) > 1000 and not preds.duplicated(key).any()
    assert (preds[key] == preds_sep[key]).all().all()
    assert (preds[["feature_version", "training_end", "target_time"]]
            == preds_sep[["feature_version", "training_end", "target_time"]]).all().all()
    # The hot path scores with the LiteRT artefact the service serves, the predict job with Keras:
    # registration checks the two agree to rtol 1e-5 (tickcast.model_io.export_litert).
    np.testing.assert_allclose(preds["prob_up"], preds_sep["prob_up"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(preds["pred_return"], preds_sep["pred_return"], rtol=1e-5, atol=1e-7)
    for c in ("close", "climatology_prob_up", "momentum_prob_up", "momentum_return"):
        np.testing.assert_allclose(preds[c], preds_sep[c], rtol=1e-12, atol=1e-12, err_msg=c)


def _driver(s, log: Path, point: str = "") -> subprocess.CompletedProcess:
    """`tickcast job hotpath --available-now` as a process of its own, killing itself at `point`."""
    exe = Path(sys.executable).with_name("tickcast")
    with open(log, "wb") as out:
        return subprocess.run([str(exe), "job", "hotpath", "--available-now"], cwd=REPO, stdout=out,
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=600,
                              env=faults.child_env(s.child_env(), point), start_new_session=True)


def test_a_killed_hot_path_loses_and_duplicates_nothing(lane, pipeline, tmp_path):
    import json

    from producers.publisher import Publisher
    from tests.integration.test_chaos import _expected_bars
    from tickcast import features, model_io
    from tickcast.litert import LiteModel
    from tickcast.sources.simulator import SimConfig, encode_events, simulate_batches

    s = dataclasses.replace(fork(pipeline.settings, tmp_path / "w", (tables.BARS, tables.FEATURES, tables.PREDICTIONS)),
                            topic=lane.topic, data_dir=tmp_path / "data", horizons=(pipeline.horizon,),
                            max_offsets_per_trigger=600)
    cfg = SimConfig(symbols=("BTCUSDT", "ETHUSDT"), rate=4.0, seed=11, start_ms=PIPELINE_END_MS, plant_signal=True,
                    signal_kind="interaction", signal_strength=0.6)
    stream, pub, sent = simulate_batches(cfg), Publisher(s, "simulate"), []
    for _ in range(8):
        for sym, _t, value in encode_events(next(stream)):
            pub.send(value, sym.encode())
            sent.append(json.loads(value))
    pub.close()

    for i, point in enumerate(("after-bars-commit", "after-features-commit", "")):
        log = tmp_path / f"driver-{i}.log"
        done = _driver(s, log, point)
        text = log.read_text(errors="replace")
        if point:
            assert done.returncode == -signal.SIGKILL and faults.message(point) in text, text[-3000:]
        else:
            assert done.returncode == 0, text[-3000:]

    trades = pd.DataFrame(sent)
    bars = _table(s, tables.BARS).set_index(["symbol", "window_start"])
    assert not bars.index.duplicated().any()
    new = bars[bars.index.get_level_values(1) >= PIPELINE_END_MS]
    exp = _expected_bars(trades)
    assert len(new) >= 12 and set(new.index) <= set(exp.index)
    for col in ("open", "high", "low", "close", "volume", "quote_volume", "trade_count"):
        assert (new[col].to_numpy() == exp.loc[new.index, col].to_numpy()).all(), col

    feats = _table(s, tables.FEATURES)
    assert not feats.duplicated(list(tables.FEATURES.key)).any()
    assert sorted(zip(feats["symbol"], feats["window_start"])) == sorted(bars.index), "not one feature row per bar"
    expected = features.compute(features.bars_frame(_table(s, tables.BARS))).sort_values(["symbol", "window_ms"])
    expected = expected[expected["window_ms"] >= PIPELINE_END_MS].reset_index(drop=True)
    got = feats[feats["window_start"] >= PIPELINE_END_MS].reset_index(drop=True)
    assert (got["window_start"].to_numpy() == expected["window_ms"].to_numpy()).all() and not got["warmup"].any()
    np.testing.assert_allclose(got[list(features.COLUMNS)].to_numpy(), expected[list(features.COLUMNS)].to_numpy(),
                               rtol=1e-12, atol=1e-12)

    preds = _table(s, tables.PREDICTIONS)
    assert not preds.duplicated(list(tables.PREDICTIONS.key)).any()
    mine = preds[preds["window_start"] >= PIPELINE_END_MS].reset_index(drop=True)
    assert list(zip(mine["symbol"], mine["window_start"])) == list(zip(expected["symbol"], expected["window_ms"]))
    client = model_io.configure(s)
    name = model_io.model_name(pipeline.horizon)
    version = str(model_io.resolve(client, name, model_io.CHAMPION).version)
    champion = LiteModel.open(model_io.materialize(client, name, version, tmp_path / "served"), name, version)
    p, r = champion.predict(expected[champion.features].to_numpy(float))
    assert (mine["model_version"] == version).all()
    np.testing.assert_allclose(mine["prob_up"], p, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(mine["pred_return"], r, rtol=1e-6, atol=1e-8)


def test_a_late_trade_is_left_out_and_counted(spark, lane, shared_data, tmp_path):
    from producers.publisher import Publisher
    from jobs.runner import run
    from tickcast import events

    s = dataclasses.replace(own_lake(lane, tmp_path), data_dir=tmp_path / "data")
    publish_files(s, [shared_data / WS.format(8), shared_data / WS.format(9)])
    run(["hotpath"], s, available_now=True, spark=spark)
    before = _table(s, tables.BARS)
    feats = _table(s, tables.FEATURES)
    late = {"e": "trade", "E": 1723161365000, "s": "BTCUSDT", "t": 1, "p": "99999.00000000",
            "q": "5.00000000", "T": 1723161365000, "m": False, "M": True}   # 23:56:05, minutes late
    pub = Publisher(s, "replay")
    pub.send(events.compact(late), b"BTCUSDT")
    pub.close()
    last = run(["hotpath"], s, available_now=True, spark=spark)
    assert lake.read(tables.TICKS, s, filters=[("id", "=", 1)]).num_rows == 1          # kept in bronze
    pd.testing.assert_frame_equal(_table(s, tables.BARS), before)
    pd.testing.assert_frame_equal(_table(s, tables.FEATURES), feats)
    dropped = spark.read.format("delta").load(tables.STREAM_PROGRESS.path(s)).where(
        f"run_id = '{last['ingest']['runId']}'").agg({"rows_dropped_by_watermark": "sum"}).first()[0]
    assert dropped == 1
