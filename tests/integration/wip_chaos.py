"""Nothing lost, nothing duplicated: the whole pipeline under seeded crashes, an outage and bad records.

Real components only: the replay producer (`tickcast produce`) and the streaming jobs
(`tickcast job ingest bars features predict`) run as processes of their own against the real
broker; Delta tables, a TensorFlow champion in MLflow (the shared `pipeline` fixture's). While
~200,000 simulated trades with every class of bad record from `test_ingest.BAD` mixed in are
replayed, the faults of a seeded schedule hit them: SIGKILLs of the Spark driver's process group
at random moments and at aimed write points (TICKCAST_TEST_KILL_AT), a 20 s broker stop, a
producer SIGKILL and restart (which replays the file again: every trade twice in the topic).
After the stream drains, every table is compared with the source, value for value.

Seed: CHAOS_SEED below (printed with the schedule, so that a failure can be replayed).
"""
from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO
from tests.integration.test_ingest import BAD
from tickcast import lake, tables

pytestmark = [pytest.mark.kafka, pytest.mark.spark]

CHAOS_SEED = 24
MIN = 60_000
MINUTES = 150                 # > features.WINDOW (120): the last half hour is scored
RATE = 22.5                   # trades/s over 2 symbols: 150 min x 60 x 22.5 = ~202,500 trades
SPEED = 90                    # replay pace: 150 minutes of trade time in ~100 s
DRIVER_KILLS = 10
AIMED = ("after-commit", "mid-merge", "mid-append")


def _source(tmp_path, seed: int):
    """The replay file (trades with bad records mixed in), its good lines, the bad count and kinds."""
    from producers.simulate import SimConfig, encode_events, simulate_batches

    start = (int(time.time() * 1000) // MIN - MINUTES - 5) * MIN       # in the past: not "in the future"
    cfg = SimConfig(symbols=("BTCUSDT", "ETHUSDT"), rate=RATE, seed=seed, start_ms=start)
    stream = simulate_batches(cfg)
    rng = random.Random(seed)
    lines, good, bad = [], [], []
    sendable = [v for v, _ in BAD if v.strip() and b"\n" not in v]
    for _ in range(MINUTES):
        for sym, t, value in encode_events(next(stream)):
            lines.append(value)
            good.append(value)
            if rng.random() < 0.0012:
                b = sendable[len(bad) % len(sendable)]
                lines.append(b)
                bad.append(b)
    path = tmp_path / "chaos.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path, good, len(bad), len({b for b in bad})


def _popen(cmd, env, log):
    return subprocess.Popen([sys.executable, "-m", "tickcast.cli", *cmd], env=env, cwd=REPO, stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def _kill(proc) -> None:
    if proc is not None and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(30)


def _schedule(rng: random.Random) -> list[tuple[str, str | None, float]]:
    """(fault, aimed point, seconds the driver runs before its SIGKILL) in order.

    The mid-MERGE kill follows the after-commit one: the batch that committed its rows but not its
    checkpoint runs again, and its rows (already in the tables) go through the MERGE. The broker
    stop and the producer kill come early, while the paced replay is still sending.
    """
    k = rng.randint(2, 6)
    aimed = {k: "after-commit", k + 1: "mid-merge",
             rng.choice([i for i in range(DRIVER_KILLS) if i not in (k, k + 1)]): "mid-append"}
    out = [("driver", aimed.get(i), round(rng.uniform(10.0, 25.0), 1)) for i in range(DRIVER_KILLS)]
    out.insert(rng.randint(1, 2), ("broker", None, 20.0))
    out.insert(rng.randint(3, 4), ("producer", None, 0.0))
    return out


def test_chaos_nothing_lost_nothing_duplicated(spark, broker, lane, pipeline, tmp_path):
    from confluent_kafka import Consumer, TopicPartition

    from jobs.runner import run
    from tickcast import features, kafka_broker, model_io, training

    t_start = time.monotonic()
    seed = CHAOS_SEED
    s = dataclasses.replace(lane, mlflow_uri=pipeline.settings.mlflow_uri, horizons=(pipeline.horizon,))
    path, good_lines, n_bad, n_bad_kinds = _source(tmp_path, seed)
    trades = pd.DataFrame([json.loads(v) for v in good_lines])
    rng = random.Random(seed)
    plan = _schedule(rng)
    print(f"\nchaos seed {seed}: {len(trades)} trades, {n_bad} bad records ({n_bad_kinds} kinds); faults: "
          + ", ".join(f"{f}{'@' + p if p else ''}{'+%gs' % d if d else ''}" for f, p, d in plan), flush=True)
    assert len(trades) >= 200_000 and n_bad_kinds >= 15

    logs = tmp_path / "logs"
    logs.mkdir()
    env = s.child_env()
    n_runs = Counter()

    def producer(paced: bool):
        n_runs["producer"] += 1
        cmd = ["produce", "--source", "replay", "--file", str(path)] + (["--speed", str(SPEED)] if paced else [])
        return _popen(cmd, env, open(logs / f"producer-{n_runs['producer']}.log", "wb"))

    def driver(point: str | None):
        n_runs["driver"] += 1
        e = dict(env, TICKCAST_TEST_KILL_AT=point or "")
        log = logs / f"driver-{n_runs['driver']}.log"
        return _popen(["job", "ingest", "bars", "features", "predict"], e, open(log, "wb")), log

    injected = Counter()
    prod = producer(paced=True)
    drv = None
    try:
        for fault, point, seconds in plan:
            if fault == "producer":
                time.sleep(rng.uniform(1.0, 5.0))
                _kill(prod)
                injected["producer SIGKILL"] += 1
                prod = producer(paced=False)        # replays the whole file again: every trade twice
                continue
            if fault == "broker":
                kafka_broker.stop(broker)
                time.sleep(seconds)
                kafka_broker.start(broker)
                injected["broker stop 20 s"] += 1
                continue
            for _attempt in range(3):
                drv, log = driver(point)
                deadline = time.monotonic() + (60.0 if point else seconds)
                while time.monotonic() < deadline and drv.poll() is None:
                    time.sleep(0.2)
                text = lambda: log.read_text(errors="replace")  # noqa: E731
                if point and drv.poll() == -signal.SIGKILL and f"TICKCAST_TEST_KILL_AT={point}" in text():
                    injected[f"driver SIGKILL at {point}"] += 1
                    break
                if drv.poll() is None:
                    _kill(drv)
                    injected["driver SIGKILL at a random moment"] += 1
                    break
                # It stopped by itself (e.g. the broker was away): a restart, not a fault; run again.
                injected["driver exit (restarted)"] += 1
                print(f"driver run {n_runs['driver']} exited {drv.returncode}: {text()[-1500:]}", flush=True)
        # The producer finishes (the restarted one sends at full speed).
        assert prod.wait(300) == 0, (logs / f"producer-{n_runs['producer']}.log").read_text()[-2000:]
    finally:
        _kill(drv)
        _kill(prod)
        if not kafka_broker.reachable(broker.kafka_bootstrap):
            kafka_broker.start(broker)
    assert sum(v for k, v in injected.items() if k.startswith("driver SIGKILL")) == DRIVER_KILLS, injected
    assert sum(v for k, v in injected.items() if k.startswith("driver SIGKILL at")) >= len(AIMED), injected

    # Drain: each job available-now, in order, in this process's Spark session.
    for job in ("ingest", "bars", "features", "predict"):
        run([job], s, available_now=True, spark=spark)

    # --- bronze.ticks equals the source, row for row and value for value ---
    bronze = lake.read(tables.TICKS, s).to_pandas()
    assert not bronze.duplicated(["symbol", "event_kind", "id"]).any(), "a trade twice in bronze"
    src = trades.set_index(["s", "t"]).sort_index()
    got = bronze.set_index(["symbol", "id"]).sort_index()
    assert len(got) == len(src), f"bronze {len(got)} rows, source {len(src)}"
    assert (got.index == src.index).all()
    assert (got["price"].map(Decimal) == src["p"].map(Decimal)).all()
    assert (got["quantity"].map(Decimal) == src["q"].map(Decimal)).all()
    assert (got["trade_time"].astype("int64") // 1000 == src["T"].to_numpy()).all()
    assert (got["event_time"].astype("int64") // 1000 == src["E"].to_numpy()).all()
    assert (got["is_buyer_maker"].to_numpy() == src["m"].to_numpy()).all()

    # --- quarantine: exactly the topic's bad records, by Kafka coordinates, each once, with a reason ---
    from tickcast import events

    good_values = {events.compact(json.loads(v)) for v in good_lines}
    c = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": "chaos-check", "enable.auto.commit": False,
                  "log_level": 3})
    topic_bad = {}
    n_topic = 0
    try:
        for p in c.list_topics(s.topic, timeout=10).topics[s.topic].partitions:
            lo, hi = c.get_watermark_offsets(TopicPartition(s.topic, p), timeout=10)
            c.assign([TopicPartition(s.topic, p, lo)])
            pos = lo
            while pos < hi:
                for m in c.consume(5000, timeout=2):
                    if m.error() is None:
                        n_topic += 1
                        pos = m.offset() + 1
                        if m.value() not in good_values:
                            topic_bad[(p, m.offset())] = m.value()
    finally:
        c.close()
    q = lake.read(tables.QUARANTINE, s).to_pandas()
    assert not q.duplicated(["kafka_partition", "kafka_offset"]).any(), "a bad record quarantined twice"
    qset = {(int(r.kafka_partition), int(r.kafka_offset)): r for r in q.itertuples()}
    assert set(qset) == set(topic_bad), (len(qset), len(topic_bad))
    assert all(bytes(qset[k].raw_value or b"") == v for k, v in topic_bad.items())
    assert q["reason"].notna().all() and (q["reason"] != "").all()

    # --- bars equal a pandas aggregation of the source ---
    bars = lake.read(tables.BARS, s).to_pandas()
    assert not bars.duplicated(["symbol", "window_start"]).any()
    t = trades.assign(minute=trades["T"] // MIN * MIN, pd_=trades["p"].map(Decimal), qd=trades["q"].map(Decimal))
    t = t.sort_values(["s", "minute", "T", "t"])
    exp = t.groupby(["s", "minute"]).agg(open=("pd_", "first"), high=("pd_", "max"), low=("pd_", "min"),
                                          close=("pd_", "last"), volume=("qd", "sum"), n=("t", "size"),
                                          first=("t", "min"), last=("t", "max"))
    bars["minute"] = bars["window_start"].astype("int64") // 1000
    b = bars.set_index(["symbol", "minute"]).sort_index()
    assert set(b.index) <= set(exp.index)
    missing = sorted(set(exp.index) - set(b.index))
    # Only each symbol's newest minutes may still be open (the watermark has not passed them).
    last = exp.reset_index().groupby("s")["minute"].max()
    assert all(m >= last[sym] - 2 * MIN for sym, m in missing), missing[:5]
    e = exp.loc[b.index]
    for col in ("open", "high", "low", "close", "volume"):
        assert (b[col].map(Decimal) == e[col]).all(), col
    assert (b["trade_count"].to_numpy() == e["n"].to_numpy()).all()
    assert (b["first_trade_id"].to_numpy() == e["first"].to_numpy()).all()

    # --- features and predictions unique on their keys; predictions equal the champion called directly ---
    feats = lake.read(tables.FEATURES, s).to_pandas()
    assert not feats.duplicated(list(tables.FEATURES.key)).any()
    assert len(feats) == len(bars)
    preds = lake.read(tables.PREDICTIONS, s).to_pandas()
    assert not preds.duplicated(list(tables.PREDICTIONS.key)).any()
    version = model_io.resolve(model_io.configure(s), f"tickcast-h{pipeline.horizon}", "champion").version
    loaded = model_io.load(s, f"tickcast-h{pipeline.horizon}", str(version))
    rows = training.read_features(s, features.feature_version())
    rows = rows[~rows["warmup"]].sort_values(["symbol", "window_ms"]).reset_index(drop=True)
    assert len(rows) > 40
    p, r = loaded.predictor()(rows[loaded.features].to_numpy(float))
    direct = rows[["symbol", "window_ms"]].assign(prob_up=p, pred_return=r)
    preds["window_ms"] = preds["window_start"].astype("int64") // 1000
    mine = preds.sort_values(["symbol", "window_ms"]).reset_index(drop=True)
    assert len(mine) == len(direct)
    assert (mine[["symbol", "window_ms"]].to_numpy() == direct[["symbol", "window_ms"]].to_numpy()).all()
    assert np.allclose(mine["prob_up"], direct["prob_up"], atol=1e-6)
    assert np.allclose(mine["pred_return"], direct["pred_return"], atol=1e-7)
    assert (mine["model_version"] == str(version)).all()

    # --- every table reads the same through Spark and delta-rs ---
    for table in (tables.TICKS, tables.QUARANTINE, tables.BARS, tables.FEATURES, tables.PREDICTIONS):
        sp = spark.read.format("delta").load(table.path(s))
        rs = lake.read(table, s)
        assert sp.count() == rs.num_rows, table.name
        key = list(table.key)
        sk = sorted(tuple(x) for x in sp.select(*key).collect())
        rk = sorted(zip(*(rs[k].to_pylist() for k in key)))
        assert sk == rk, table.name

    faults = sum(injected.values())
    print(f"chaos seed {seed}: faults {faults} ({', '.join(f'{k} {v}' for k, v in sorted(injected.items()))}); "
          f"rows {len(trades)} trades + {len(topic_bad)} bad of {n_topic} records; lost 0, duplicated 0; "
          f"{time.monotonic() - t_start:.0f} s")

