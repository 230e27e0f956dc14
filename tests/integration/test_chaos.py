"""Nothing lost, nothing duplicated: the whole pipeline under seeded crashes, an outage and bad records.

Real components only. ~200,000 simulated trades with every class of bad record of
`test_ingest.BAD` mixed in are replayed by the real producer (`tickcast produce --source replay`,
paced) through the real broker into the streaming jobs ingest, bars, features and predict, run
by `tickcast job ...` as a Spark driver process of its own; predict scores with the shared
pipeline's TensorFlow champion (MLflow). Meanwhile a seeded schedule:
- SIGKILLs the driver's process group 10 times: at random moments of its life, and at least three
  times at aimed write points through the test-only hooks of `testkit.faults` (after a sink's
  Delta commit before the checkpoint's commit, inside a MERGE, inside a driver-side append);
- stops the broker for 20-25 s and starts it again (a driver and the producer keep running);
- SIGKILLs the producer and starts it again: the new one replays the whole file (faster), so every
  record it had sent is in the topic twice.
Then the jobs drain (available-now, in this process) and every table is compared with the source,
value for value, and read through both Spark and delta-rs.

The topic has one partition: the records keep the producer's trade-time order across symbols, so
no trade reaches bronze later than the bars' watermark (with several partitions a replay sent
faster than real time can put one partition's trades more than the watermark behind another's:
event-time semantics, not a fault). The seed (`--chaos-seed`, default 24) fixes the data and the
schedule and is printed; the moments the faults land at depend on the machine's speed.
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
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO
from testkit import faults
from tests.expected_features import expected
from tests.integration.test_ingest import BAD
from tickcast import lake, tables
from tickcast.timeunits import MINUTE_MS as MIN

pytestmark = [pytest.mark.kafka, pytest.mark.spark]

START_MS = 1_790_000_000_000 // MIN * MIN + 7 * MIN  # after the shared champion's training end
MINUTES = 150                 # > features.WINDOW (120): the last half hour is scored
RATE = 18.0                   # trades/s over 2 symbols, scaled per seed to TRADES in all
TRADES = 210_000
BAD_EVERY = 800               # about one bad record per 800 trades (~250 in all)
SPEED = 60                    # first replay: 150 minutes of trade time in ~150 s
SPEED_AGAIN = 240             # the restarted producer: the whole file again in ~40 s
MAX_OFFSETS = 25_000          # records per ingest batch: a restart's backlog in steps, each kept once committed
DRIVER_KILLS = 10
AIMED = ("after-commit", "mid-merge", "mid-append")
AIM_TIMEOUT = 60.0            # an aimed run whose point is not reached this long after it got to work is killed anyway
START_TIMEOUT = 240.0         # a driver that plans no batch in this long is killed anyway (counted as random)
CHAOS_BUDGET = 900.0          # seconds for the faults' phase before the test gives up


@dataclasses.dataclass
class Source:
    path: Path
    good: list[bytes]               # the trades, as published
    bad: list[tuple[bytes, str]]    # (value as published, expected reason) of each bad line, in order


def _source(tmp_path: Path, seed: int) -> Source:
    """The replay file: simulated trades with BAD's records spread among them at seeded places."""
    from tickcast.sources.simulator import SimConfig, encode_events, simulate_batches
    from tickcast import events

    def config(rate: float) -> SimConfig:
        return SimConfig(symbols=("BTCUSDT", "ETHUSDT"), rate=rate, seed=seed, start_ms=START_MS)

    # The simulator's activity varies with the seed: scale the rate so that every seed gives ~TRADES.
    probe = simulate_batches(config(RATE))
    n = sum(len(next(probe)) for _ in range(MINUTES))
    stream = simulate_batches(config(RATE * TRADES / n))
    rng = random.Random(seed)
    # One line each; the producer forwards every one (re-compacting those that parse as trade events).
    sendable = [(events.from_recording_line(v).value, why) for v, why in BAD if v.strip() and b"\n" not in v]
    lines, good, bad = [], [], []
    for _ in range(MINUTES):
        for _sym, _t, value in encode_events(next(stream)):
            lines.append(value)
            good.append(value)
            if rng.randrange(BAD_EVERY) == 0:
                raw, why = sendable[len(bad) % len(sendable)]
                lines.append(raw)
                bad.append((raw, why))
    path = tmp_path / "chaos.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return Source(path, good, bad)


def _schedule(rng: random.Random) -> dict:
    """The seeded faults: driver lifetimes and aims, the broker outage and the producer kill."""
    first_aim = rng.randint(1, 3)
    lifetimes = [round(rng.uniform(1.0, 20.0), 1) for _ in range(DRIVER_KILLS)]
    broker_at = round(rng.uniform(15.0, 35.0), 1)
    broker_for = round(rng.uniform(20.0, 25.0), 1)
    # From the producer's own start: its replay lasts ~MINUTES s, so a kill within 90 s always finds it
    # running, however slowly the first driver gets to work on a loaded machine.
    producer_at = round(rng.uniform(45.0, 90.0), 1)
    return {"first_aim": first_aim, "lifetimes": lifetimes, "broker_at": broker_at, "broker_for": broker_for,
            "producer_at": producer_at}


def _describe(plan: dict) -> str:
    return (f"driver SIGKILLs {DRIVER_KILLS} at {plan['lifetimes']} s after the run got to work, aimed at "
            f"{' -> '.join(AIMED)} from run {plan['first_aim']} on; broker stop at {plan['broker_at']} s "
            f"for {plan['broker_for']} s (from the first batch) and producer SIGKILL {plan['producer_at']} s after its start, then "
            "a restart each")


def _tickcast(args: list[str], env: dict, log: Path) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("tickcast")
    with open(log, "wb") as out:
        return subprocess.Popen([str(exe), *args], env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def _working_since(root: Path, since: float) -> bool:
    """Whether any query under the checkpoint root planned or committed a batch (offsets/N,
    commits/N) since `since` (epoch s): the driver is at work, past its start-up (which takes tens
    of seconds on a loaded machine)."""
    for d in (*root.glob("*/offsets"), *root.glob("*/*/offsets"), *root.glob("*/commits"), *root.glob("*/*/commits")):
        with os.scandir(d) as it:
            if any(e.name.isdigit() and e.stat().st_mtime >= since for e in it):
                return True
    return False


def _kill(proc: subprocess.Popen | None) -> bool:
    """SIGKILL the process's whole group (the driver's JVM and Python workers with it); whether it
    was still running (a kill of a process that had exited is no fault injected)."""
    if proc is None or proc.poll() is not None:
        return False
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    return proc.wait(30) == -signal.SIGKILL


def _run_faults(s, broker, src: Source, plan: dict, logs: Path) -> tuple[Counter, list[str]]:
    """Run the producer and the drivers while the schedule's faults hit them; returns what was injected."""
    from tickcast import kafka_broker

    env = s.child_env()
    injected: Counter = Counter()
    events: list[str] = []
    t0 = time.monotonic()
    now = lambda: time.monotonic() - t0  # noqa: E731

    def note(what: str) -> None:
        events.append(f"{now():6.1f}s {what}")
        print(f"chaos {events[-1]}", flush=True)

    producers = [_tickcast(["produce", "--source", "replay", "--file", str(src.path), "--speed", str(SPEED)],
                           env, logs / "producer-1.log")]
    state = {"broker_down_until": None, "t_work": None, "outages": []}   # outages: [stopped, started] (now())
    pending = {"broker", "producer"}

    def since_work() -> float:
        return -1.0 if state["t_work"] is None else time.monotonic() - state["t_work"]

    def tick() -> None:
        """The broker and producer faults, due by the clock from the first driver's first batch (so
        that they hit while a driver works)."""
        if "broker" in pending and since_work() >= plan["broker_at"]:
            pending.discard("broker")
            kafka_broker.stop(broker)
            state["broker_down_until"] = now() + plan["broker_for"]
            state["outages"].append([now(), None])
            note("broker stopped")
        if state["broker_down_until"] is not None and now() >= state["broker_down_until"]:
            kafka_broker.start(broker)
            state["broker_down_until"] = None
            state["outages"][-1][1] = now()
            injected[f"broker stop {plan['broker_for']} s + restart"] += 1
            note("broker started again")
        if "producer" in pending and now() >= plan["producer_at"]:
            pending.discard("producer")
            assert _kill(producers[-1]), "the producer had exited before its SIGKILL: no fault injected"
            producers.append(_tickcast(["produce", "--source", "replay", "--file", str(src.path),
                                        "--speed", str(SPEED_AGAIN)], env, logs / "producer-2.log"))
            injected["producer SIGKILL + restart"] += 1
            note("producer SIGKILLed and started again")

    aims = list(AIMED)
    kills = runs = self_exits = 0
    drv = None
    try:
        while kills < DRIVER_KILLS:
            assert now() < CHAOS_BUDGET, f"the faults' phase ran over {CHAOS_BUDGET:.0f} s: {events}"
            while state["broker_down_until"] is not None:     # a driver started now would only wait
                time.sleep(0.2)
                tick()
            # A run: random, or aimed at the next point (forced when the runs left are only enough for the aims).
            aim = aims[0] if aims and (runs >= plan["first_aim"] or DRIVER_KILLS - kills <= len(aims)) else ""
            runs += 1
            log = logs / f"driver-{runs}.log"
            drv = _tickcast(["job", "ingest", "bars", "features", "predict"],
                            faults.child_env(env, aim), log)
            life = AIM_TIMEOUT if aim else plan["lifetimes"][kills]
            note(f"driver run {runs} started" + (f", aimed at {aim}" if aim else f", to be killed {life} s into its work"))
            born, born_t, working = time.time(), now(), None
            while drv.poll() is None:
                time.sleep(0.2)
                tick()
                if working is None and _working_since(Path(s.checkpoint_uri), born):
                    working = time.monotonic()
                    state["t_work"] = state["t_work"] or working
                    note(f"driver run {runs} at work")
                if (working is not None and time.monotonic() - working >= life) or time.time() - born > START_TIMEOUT:
                    break
            text = log.read_text(errors="replace")
            if drv.poll() is None:
                assert _kill(drv), "the driver exited as it was killed"
                kills += 1
                injected["driver SIGKILL at a random moment"] += 1
                note(f"driver run {runs} SIGKILLed" + (f" ({aim} not reached in {life:.0f} s)" if aim else ""))
            elif aim and drv.returncode == -signal.SIGKILL and faults.message(aim) in text \
                    and (aim != "mid-merge" or faults.INSIDE in text):       # the MERGE had not returned
                kills += 1
                aims.pop(0)
                injected[f"driver SIGKILL at {aim}"] += 1
                note(f"driver run {runs} SIGKILLed itself at {aim}")
            else:
                # It stopped by itself: tolerated only when the broker was away during its run (or
                # had come back less than a minute before it stopped); any other exit is a bug.
                self_exits += 1
                out_t = now()
                assert any(a <= out_t and (b is None or born_t <= b + 60) for a, b in state["outages"]), \
                    f"driver run {runs} exited by itself ({drv.returncode}) with the broker up:\n{text[-3000:]}"
                note(f"driver run {runs} exited by itself ({drv.returncode}): {text[-600:]!r}")
                assert self_exits <= 6, f"the driver keeps exiting by itself; last log:\n{text[-3000:]}"
                time.sleep(1.0)
        while pending or state["broker_down_until"] is not None:   # (only if the kills came first)
            time.sleep(0.2)
            tick()
        rc = producers[-1].wait(300)
        assert rc == 0, (logs / "producer-2.log").read_text()[-2000:]
        note("producer finished: " + (logs / "producer-2.log").read_text().strip().splitlines()[-1])
    finally:
        _kill(drv)
        for p in producers:
            _kill(p)
        if not kafka_broker.reachable(broker.kafka_bootstrap):
            kafka_broker.start(broker)
    return injected, events


def _topic(s) -> dict[int, bytes]:
    """Every record of the (one-partition) topic: offset -> value."""
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": f"chaos-{uuid.uuid4().hex[:8]}",
                  "enable.auto.commit": False, "log_level": 3})
    out: dict[int, bytes] = {}
    try:
        parts = c.list_topics(s.topic, timeout=10).topics[s.topic].partitions
        assert list(parts) == [0]
        lo, hi = c.get_watermark_offsets(TopicPartition(s.topic, 0), timeout=10)
        c.assign([TopicPartition(s.topic, 0, lo)])
        while len(out) < hi - lo:
            for m in c.consume(10_000, timeout=5):
                assert m.error() is None, m.error()
                out[m.offset()] = m.value() or b""
    finally:
        c.close()
    return out


def _expected_bars(trades: pd.DataFrame) -> pd.DataFrame:
    """One row per (symbol, minute) of the source trades, aggregated by pandas with exact decimals."""
    t = trades.assign(minute=trades["T"] // MIN * MIN, pd_=trades["p"].map(Decimal), qd=trades["q"].map(Decimal))
    t["quote"] = t["pd_"] * t["qd"]
    t["buy_q"] = t["qd"].where(~t["m"], Decimal(0))
    t["sell_q"] = t["qd"].where(t["m"], Decimal(0))
    t = t.sort_values(["s", "minute", "T", "t"])
    g = t.groupby(["s", "minute"])
    exp = g.agg(open=("pd_", "first"), high=("pd_", "max"), low=("pd_", "min"), close=("pd_", "last"),
                volume=("qd", "sum"), quote_volume=("quote", "sum"), trade_count=("t", "size"),
                taker_buy_volume=("buy_q", "sum"), taker_sell_volume=("sell_q", "sum"),
                first_trade_id=("t", "min"), last_trade_id=("t", "max"))
    exp["vwap"] = [float(q / v) for q, v in zip(exp["quote_volume"], exp["volume"])]
    exp["imbalance"] = [float((b - s_) / v) for b, s_, v in
                        zip(exp["taker_buy_volume"], exp["taker_sell_volume"], exp["volume"])]
    return exp


def _same_through_both_engines(spark, table, s) -> None:
    """The table read by Spark equals the table read by delta-rs, every column, row by row."""
    rs = lake.read(table, s)
    sp = spark.read.format("delta").load(table.path(s)).toArrow()
    assert sp.num_rows == rs.num_rows, (table.name, sp.num_rows, rs.num_rows)
    sp = sp.select(rs.schema.names).cast(rs.schema)
    order = [(k, "ascending") for k in table.key]
    sp, rs = sp.sort_by(order), rs.sort_by(order)
    for name in rs.schema.names:
        assert sp[name].equals(rs[name]), (table.name, name)


def test_chaos_nothing_lost_nothing_duplicated(spark, own_broker, pipeline, tmp_path, request):
    from jobs.runner import run
    from tickcast import data_loss, features, kafka_broker, model_io, modeling

    t_start = time.monotonic()
    seed = request.config.getoption("--chaos-seed")
    # A broker of its own: the outage below never stops the broker other tests share.
    broker = own_broker
    s = dataclasses.replace(own_broker, topic=f"{own_broker.topic}-chaos", topic_partitions=1, max_offsets_per_trigger=MAX_OFFSETS,
                            mlflow_uri=pipeline.settings.mlflow_uri, horizons=(pipeline.horizon,))
    kafka_broker.ensure_topic(s)
    src = _source(tmp_path, seed)
    plan = _schedule(random.Random(seed))
    reasons = Counter(why for _, why in src.bad)
    print(f"\nchaos seed {seed} (replay with --chaos-seed {seed}): {len(src.good)} trades, {len(src.bad)} bad "
          f"records of {len(reasons)} kinds; {_describe(plan)}", flush=True)
    assert len(src.good) >= 200_000 and len(reasons) >= 15
    logs = tmp_path / "logs"
    logs.mkdir()

    injected, _ = _run_faults(s, broker, src, plan, logs)
    assert sum(v for k, v in injected.items() if k.startswith("driver SIGKILL")) == DRIVER_KILLS, injected
    for point in AIMED:
        assert injected[f"driver SIGKILL at {point}"] == 1, (point, injected)
    t_faults = time.monotonic() - t_start

    # The stream drains: each job available-now, in order, in this process's Spark session.
    for job in ("ingest", "bars", "features", "predict"):
        run([job], s, available_now=True, spark=spark)
    t_drain = time.monotonic() - t_start

    trades = pd.DataFrame([json.loads(v) for v in src.good])
    topic = _topic(s)
    n_sent = Counter(topic.values())

    # --- bronze.ticks equals the source, row for row and value for value ---
    bt = lake.read(tables.TICKS, s)
    bronze = bt.to_pandas()
    for c in ("trade_time", "event_time", "kafka_timestamp"):
        bronze[c] = lake.to_ms(bt[c])
    assert not bronze.duplicated(list(tables.TICKS.key)).any(), "a trade twice in bronze"
    got = bronze.set_index(["symbol", "id"]).sort_index()
    exp = trades.set_index(["s", "t"]).sort_index()
    lost = len(exp.index.difference(got.index))
    assert lost == 0 and len(got) == len(exp), f"bronze {len(got)} rows, source {len(exp)}: {lost} lost"
    assert (got.index == exp.index).all()
    assert (got["event_kind"] == "trade").all() and (got["source"] == "replay").all()
    assert (got["first_trade_id"].to_numpy() == got.index.get_level_values(1)).all()
    assert (got["last_trade_id"].to_numpy() == got.index.get_level_values(1)).all()
    assert (got["price"] == exp["p"].map(Decimal)).all()
    assert (got["quantity"] == exp["q"].map(Decimal)).all()
    assert (got["quote_quantity"] == exp["p"].map(Decimal) * exp["q"].map(Decimal)).all()
    assert (got["trade_time"].to_numpy() == exp["T"].to_numpy()).all()
    assert (got["event_time"].to_numpy() == exp["E"].to_numpy()).all()
    assert (got["is_buyer_maker"].to_numpy() == exp["m"].to_numpy()).all()
    assert (pd.to_datetime(got["date"]).to_numpy() == pd.to_datetime(exp["T"], unit="ms").dt.floor("D").to_numpy()).all()
    # Its Kafka coordinates name a record of the topic that holds exactly this trade.
    published = dict(zip(zip(trades["s"], trades["t"]), src.good))
    assert all(topic[o] == published[k] for k, o in zip(got.index, got["kafka_offset"])), "wrong coordinates"
    assert (got["kafka_partition"] == 0).all()

    # --- quarantine: exactly the topic's bad records, by Kafka coordinates, each once, with its reason ---
    good_values = set(src.good)
    topic_bad = {o: v for o, v in topic.items() if v not in good_values}
    expected_reason = dict(src.bad)
    assert set(topic_bad.values()) <= set(expected_reason), "the topic holds a record the source does not"
    qt = lake.read(tables.QUARANTINE, s).to_pandas()
    assert not qt.duplicated(list(tables.QUARANTINE.key)).any(), "a bad record quarantined twice"
    assert (qt["kafka_topic"] == s.topic).all() and (qt["kafka_partition"] == 0).all()
    q = qt.set_index("kafka_offset")
    assert set(q.index) == set(topic_bad), (len(q), len(topic_bad))
    for o, v in topic_bad.items():
        assert bytes(q.at[o, "raw_value"] or b"") == v, o
        assert expected_reason[v] in q.at[o, "reason"], (v[:60], q.at[o, "reason"], expected_reason[v])
    # Every bad line of the file reached the topic (the restarted producer sent them all again).
    assert Counter(topic_bad.values()) >= Counter(v for v, _ in src.bad)

    # --- bars equal a pandas aggregation of the source ---
    bt = lake.read(tables.BARS, s)
    bars = bt.to_pandas()
    bars["minute"] = lake.to_ms(bt["window_start"])
    assert not bars.duplicated(["symbol", "minute"]).any(), "a bar twice"
    b = bars.set_index(["symbol", "minute"]).sort_index()
    eb = _expected_bars(trades)
    assert set(b.index) <= set(eb.index), "a bar the source has no trade for"
    missing = sorted(set(eb.index) - set(b.index))
    # Only each symbol's newest minutes may still be open (no later trade moved the watermark past them).
    newest_bar = bars.groupby("symbol")["minute"].max()
    assert all(m > newest_bar[sym] for sym, m in missing) and len(missing) <= 3 * len(newest_bar), missing
    e = eb.loc[b.index]
    for col in ("open", "high", "low", "close", "volume", "quote_volume", "taker_buy_volume", "taker_sell_volume"):
        assert (b[col] == e[col]).all(), col
    for col in ("trade_count", "first_trade_id", "last_trade_id"):
        assert (b[col].to_numpy() == e[col].to_numpy()).all(), col
    assert np.allclose(b["vwap"], e["vwap"], rtol=1e-12) and np.allclose(b["imbalance"], e["imbalance"], atol=1e-12)

    # --- features and predictions unique on their keys; predictions equal the champion called directly ---
    ft = lake.read(tables.FEATURES, s)
    feats = ft.to_pandas()
    feats["minute"] = lake.to_ms(ft["window_start"])
    assert not feats.duplicated(list(tables.FEATURES.key)).any(), "a feature row twice"
    assert sorted(zip(feats["symbol"], feats["minute"])) == sorted(b.index), "features are not one per bar"
    # Every feature value equals tests/expected_features' pandas computation over the source's bars.
    src_bars = e.reset_index().rename(columns={"s": "symbol", "minute": "window_ms"})
    src_bars = src_bars[["symbol", "window_ms"]].assign(
        **{c: src_bars[c].astype(float) for c in ("close", "volume", "quote_volume", "trade_count", "imbalance", "vwap")})
    exp_feats = expected(src_bars).sort_values(["symbol", "window_ms"]).reset_index(drop=True)
    got_feats = feats.sort_values(["symbol", "minute"]).reset_index(drop=True)
    assert (got_feats["minute"].to_numpy() == exp_feats["window_ms"].to_numpy()).all()
    for name in features.FEATURES:
        np.testing.assert_allclose(got_feats[name].to_numpy(float), exp_feats[name].to_numpy(float), rtol=0, atol=1e-9,
                                   err_msg=name)
    pt = lake.read(tables.PREDICTIONS, s)
    preds = pt.to_pandas()
    preds["window_ms"] = lake.to_ms(pt["window_start"])
    assert not preds.duplicated(list(tables.PREDICTIONS.key)).any(), "a prediction twice"
    name = model_io.model_name(pipeline.horizon)
    version = str(model_io.resolve(model_io.configure(s), name, model_io.CHAMPION).version)
    loaded = model_io.load(s, name, version)
    # The champion called on the independently computed features (not on the table under test).
    rows = exp_feats.assign(warmup=got_feats["warmup"].to_numpy())
    rows = rows[~rows["warmup"]].sort_values(["symbol", "window_ms"]).reset_index(drop=True)
    assert len(rows) >= 40
    p, r = loaded.predictor()(rows[loaded.features].to_numpy(float))
    base = modeling.baseline_predictions(loaded.meta["baselines"], rows["ret_1"].to_numpy())
    mine = preds.sort_values(["symbol", "window_ms"]).reset_index(drop=True)
    assert len(mine) == len(rows), (len(mine), len(rows))
    assert (mine["symbol"] == rows["symbol"]).all() and (mine["window_ms"] == rows["window_ms"]).all()
    assert (mine["model_version"] == version).all()
    assert np.allclose(mine["prob_up"], p, atol=1e-6) and np.allclose(mine["pred_return"], r, atol=1e-7)
    for k, v in base.items():
        assert np.allclose(mine[k], v, atol=1e-9), k

    # --- and no offset was lost to retention (what `up`'s status line and the metric report) ---
    assert data_loss.lost_offsets(s) == {} and data_loss.describe(data_loss.lost_offsets(s)) == "lost 0"

    # --- every table reads the same through Spark and delta-rs ---
    for table in (tables.TICKS, tables.QUARANTINE, tables.BARS, tables.FEATURES, tables.PREDICTIONS):
        _same_through_both_engines(spark, table, s)

    # The restarted producer sent again every record the first had sent: the topic holds duplicates
    # (which bronze, above, does not).
    again = sum(1 for c in n_sent.values() if c > 1)
    assert again > 0 and len(topic) > len(src.good) + len(src.bad), (again, len(topic))
    faults = sum(injected.values())
    dup = len(bronze) - len(set(zip(bronze["symbol"], bronze["id"])))
    print(f"chaos seed {seed}: faults injected {faults} ({', '.join(f'{k} {v}' for k, v in sorted(injected.items()))}); "
          f"rows {len(trades)} trades + {len(topic_bad)} bad records of {len(topic)} in the topic "
          f"({again} values sent more than once); bronze {len(bronze)}, "
          f"quarantine {len(qt)}, bars {len(bars)}, features {len(feats)}, predictions {len(preds)}; "
          f"lost {lost}, duplicated {dup}; faults {t_faults:.0f} s, drained at {t_drain:.0f} s, "
          f"{time.monotonic() - t_start:.0f} s in all", flush=True)
