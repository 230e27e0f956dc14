"""`tickcast bench stack`: the whole local stack under `tickcast up` at a live rate.

It runs `tickcast up --source simulate --rate 50` (all five jobs, on a broker and a data directory
of its own) as a subprocess, lets it bootstrap its models (simulated history + training: `up`'s
own path), and once the first prediction is committed and a warm-up has passed, measures for
`seconds`:
  - CPU (cores, averaged) and resident memory of every process of the stack, by role, from psutil
    (the sampler of `bench bars`);
  - freshness: for every bar whose minute ended in the measured span, the time from its window end
    to the commit of its prediction rows, and the stages in between (bar, feature, prediction
    commits). Commit times come from the Delta log of each table (the `commitInfo` timestamp of
    the commit that added the row's file), so nothing polls the tables while the stack runs.
Printed, and written to `<out>/stack.json`.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from bench.measure import lane_settings, pct, private_settings, report
from bench.bars import IDLE_TOPIC, IDLE_WARMUP_S, _load, _say, measure_idle
from bench.stack_probes import FloorConsumer, ServedProbe
from tickcast import kafka_broker, lake, tables
from tickcast.settings import Settings

RATE = 50.0
TOPIC = "bench-stack-ticks"
TARGETS = {"freshness_p95_s": 2.0, "rss_gib": 4.0, "cores": 0.6, "served_after_commit_s": 0.5}
METHOD = {
    "stack": "`tickcast up --source simulate --rate 50` (ingest, bars, features, predict, outcomes; models "
             "bootstrapped by `up` itself) as a subprocess on the bench's broker; measured from 60 s after the "
             "first prediction is committed (the JIT compiles most hot code in that minute)",
    "cpu_memory": "psutil: cores = CPU seconds (user+system) of every process of the stack / wall; RSS summed "
                  "over the processes every 2 s (avg and peak)",
    "freshness": "per bar (symbol, minute) whose window end falls in the measured span: the commit time of its "
                 "row in silver.bars_1m, silver.features and gold.predictions, from each table's Delta log "
                 "(commitInfo.timestamp of the commit that added the file holding the row) minus the window end",
}


def commit_times(path: str | Path, keys: list[str]) -> dict[tuple, float]:
    """Row key -> epoch seconds of the commit that first added it, from the table's Delta log.

    Reads `_delta_log/*.json` (the Delta protocol's commit files) and the added Parquet files'
    key columns; fine for a bench-sized local table.
    """
    import pyarrow.parquet as pq

    path = Path(path)
    out: dict[tuple, float] = {}
    for f in sorted((path / "_delta_log").glob("*.json")):
        ts, adds = None, []
        for line in f.read_text().splitlines():
            a = json.loads(line)
            if "commitInfo" in a:
                ts = a["commitInfo"]["timestamp"] / 1000.0
            elif "add" in a and a["add"].get("dataChange", True):
                adds.append(a["add"])
        for add in adds:
            part = add.get("partitionValues") or {}
            cols = [k for k in keys if k not in part]
            t = pq.read_table(path / unquote(add["path"]), columns=cols).to_pydict()
            n = len(t[cols[0]]) if cols else 0
            for i in range(n):
                k = tuple(part[c] if c in part else t[c][i] for c in keys)
                if k not in out or ts < out[k]:
                    out[k] = ts
    return out


def _epoch(x) -> float:
    """A timestamp value read by pyarrow (naive UTC datetime) -> epoch seconds."""
    import datetime as dt

    if isinstance(x, dt.datetime):
        return (x if x.tzinfo else x.replace(tzinfo=dt.timezone.utc)).timestamp()
    return float(x)


def freshness(ls: Settings, since: float, until: float, settle_s: float = 30.0,
              served: dict[tuple[str, float], float] | None = None, floor: dict | None = None) -> dict:
    """Window end -> commit of bar, features and predictions, for bars ending in [since, until - settle_s);
    `served`: (symbol, window start epoch s) -> when the service first answered with it; `floor`:
    (symbol, window end epoch ms) -> the hand-written consumer's seconds from window end to its commit."""
    bars = commit_times(tables.BARS.path(ls), ["symbol", "window_start"])
    feats = commit_times(tables.FEATURES.path(ls), ["symbol", "window_start"])
    preds = commit_times(tables.PREDICTIONS.path(ls), ["symbol", "window_start"])   # first horizon's commit
    rows = []
    for (sym, ws), t_bar in bars.items():
        end = _epoch(ws) + 60.0
        if not (since <= end < until - settle_s):
            continue
        t_feat, t_pred = feats.get((sym, ws)), preds.get((sym, ws))
        t_served = (served or {}).get((sym, round(_epoch(ws))))
        rows.append({"symbol": sym, "window_end": end, "bar": t_bar - end,
                     "features": None if t_feat is None else t_feat - t_bar,
                     "predict": None if t_pred is None or t_feat is None else t_pred - t_feat,
                     "total": None if t_pred is None else t_pred - end,
                     "served": None if t_served is None or t_feat is None else t_served - t_feat})
    done = [r for r in rows if r["total"] is not None]

    def stats(k: str) -> dict:
        v = [r[k] for r in done if r[k] is not None]
        return {"p50": round(pct(v, 50), 2), "p95": round(pct(v, 95), 2), "max": round(max(v), 2)} if v else {}

    out = {"bars": len(rows), "predicted": len(done), "missing_prediction": len(rows) - len(done),
           "total_s": stats("total"), "stages_s": {k: stats(k) for k in ("bar", "features", "predict", "served")},
           "watermark_s": ls.watermark_seconds, "bars_trigger_s": ls.bars_trigger_seconds,
           "trigger_s": ls.trigger_seconds}
    fl = [v for (_, end_ms), v in (floor or {}).items() if since <= end_ms / 1000.0 < until - settle_s]
    out["floor_bar_s"] = {"p50": round(pct(fl, 50), 2), "p95": round(pct(fl, 95), 2), "max": round(max(fl), 2),
                          "bars": len(fl)} if fl else {}
    # A bar committed sooner after its minute than the watermark allows was closed by its trade ids.
    out["closed_before_watermark"] = sum(r["bar"] < ls.watermark_seconds for r in rows)
    # Every bar's stages, so that a tail can be traced to its minute and stage.
    out["per_bar"] = [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
                      for r in sorted(rows, key=lambda r: (r["window_end"], r["symbol"]))]
    if done:
        means = {k: float(np.mean([r[k] for r in done])) for k in ("bar", "features", "predict")}
        out["dominant_stage"] = max(means, key=means.get)
        out["stage_mean_s"] = {k: round(v, 2) for k, v in means.items()}
    return out


def ready_after_first_prediction(settle_s: float):
    """A `ready` check for measure_idle: true `settle_s` after the first prediction row was seen."""
    seen: list[float] = []

    def ready(ls: Settings) -> bool:
        if not seen:
            try:
                if lake.exists(tables.PREDICTIONS, ls) and len(lake.read(tables.PREDICTIONS, ls, columns=["horizon"])):
                    seen.append(time.monotonic())
            except Exception:  # being created or written: not yet
                return False
        return bool(seen) and time.monotonic() - seen[0] >= settle_s

    return ready


def _rows(r: dict) -> list[tuple[str, str, str]]:
    c, f, t = r["stack"], r["freshness"], TARGETS
    ok = lambda cond: "ok" if cond else "MISSED"  # noqa: E731
    tot = f.get("total_s", {})
    rows = [
        ("load average", f"{r['load']['start']} at start, {r['load']['end']} at end", ""),
        ("warm-up", f"{c['warmup_s']:.0f} s", "broker, Spark, model bootstrap (simulated history + training), "
                                              "first prediction"),
        ("CPU", f"{c['cores_total']:.2f} cores", f"avg over {c['measured_s']:.0f} s; target <= {t['cores']:g}: "
                                                  f"{ok(c['cores_total'] <= t['cores'])}"),
        ("    per process", "  ".join(f"{k} {v:.2f}" for k, v in c["cores"].items()), ""),
        ("memory (RSS)", f"{c['rss_peak_gib']:.2f} GiB peak", f"avg {c['rss_avg_gib']:.2f} GiB; target <= "
                                                            f"{t['rss_gib']:g}: {ok(c['rss_peak_gib'] <= t['rss_gib'])}"),
        ("    per process", ", ".join(f"{k} {v['avg_gib']:.2f} (peak {v['peak_gib']:.2f})"
                                      for k, v in c["rss"].items() if v["avg_gib"]), ""),
    ]
    for q, s in c["queries"].items():
        rows.append((f"    {q} batches", f"p50 {s['batch_ms_p50']} ms, p95 {s['batch_ms_p95']} ms", f"{s['batches']} "
                     f"batches ({s['batches_empty']} empty), busy {s['busy_share']:.0%}"))
    rows += [
        ("freshness (window end -> prediction)", f"p50 {tot.get('p50')} s, p95 {tot.get('p95')} s",
         f"{f['predicted']} of {f['bars']} bars predicted; target p95 <= {t['freshness_p95_s']:g} s: "
         f"{ok(bool(tot) and tot['p95'] <= t['freshness_p95_s'])}"),
        ("    closed by trade ids", f"{f['closed_before_watermark']} of {f['bars']} bars",
         f"committed sooner than TICKCAST_WATERMARK_SECONDS={f['watermark_s']} after their minute"),
    ]
    for k, v in f["stages_s"].items():
        rows.append((f"    stage {k}", f"p50 {v.get('p50')} s, p95 {v.get('p95')} s", {
            "bar": "window end -> bar committed (next trade + the hot path's batch)",
            "features": "bar committed -> feature row committed", "predict": "feature committed -> prediction committed",
            "served": f"feature committed -> the service's latest-row route answers with it; target <= "
                      f"{t['served_after_commit_s']:g} s: {ok(bool(v) and v['p95'] <= t['served_after_commit_s'])}",
        }[k]))
    fl = f.get("floor_bar_s") or {}
    rows.append(("    floor: hand-written consumer", f"p50 {fl.get('p50')} s, p95 {fl.get('p95')} s",
                 f"window end -> its bar committed, closed by the next trade id ({fl.get('bars', 0)} bars, same run)"))
    return rows


def _why(r: dict) -> list[str]:
    c, f = r["stack"], r["freshness"]
    out = []
    if f.get("dominant_stage"):
        out.append(f"freshness: the `{f['dominant_stage']}` stage dominates (mean "
                   + ", ".join(f"{k} {v} s" for k, v in f["stage_mean_s"].items()) + ")")
    top = sorted(c["rss"].items(), key=lambda kv: -kv[1]["avg_gib"])[:3]
    out.append("memory: largest " + ", ".join(f"{k} {v['avg_gib']:.2f} GiB" for k, v in top))
    topc = sorted(c["cores"].items(), key=lambda kv: -kv[1])[:3]
    out.append("cpu: largest " + ", ".join(f"{k} {v:.2f}" for k, v in topc) + "; JVM threads: "
               + ", ".join(f"{k} {v:.2f}" for k, v in list(c["spark_jvm_threads_cores"].items())[:4]))
    return out


def stack_bench(s: Settings, seconds: float, out: Path, keep: bool = False) -> dict:
    """Run the stack bench on a private broker and data dir; print and return the numbers."""
    import datetime as dt
    import shutil

    if seconds <= 60:
        raise ValueError("seconds must be > 60 (freshness needs whole minutes)")
    out = Path(out)
    root, bs = private_settings(s, out, "stack-", "stack", TOPIC)
    r: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "targets": TARGETS, "method": METHOD,
               "load": {"start": _load()},
               "settings": {"spark_master": bs.spark_master, "spark_driver_memory": bs.spark_driver_memory,
                            "trigger_seconds": bs.trigger_seconds, "ingest_phase_seconds": bs.ingest_phase_seconds,
                            "bars_trigger_seconds": bs.bars_trigger_seconds,
                            "watermark_seconds": bs.watermark_seconds, "kafka_heap": bs.kafka_heap,
                            "horizons": list(bs.horizons)}}
    say = _say(time.monotonic())
    broker_pid = None
    try:
        say(f"broker on {bs.kafka_bootstrap}, data in {root}")
        broker_pid = kafka_broker.start(bs).pid
        say(f"`tickcast up` at ~{RATE:.0f} ticks/s: bootstrap, first prediction, then {seconds:.0f} s measured")
        import sys

        from tickcast.sources.simulator import sim_symbol

        cmd = [sys.executable, "-m", "tickcast.cli", "up", "--source", "simulate", "--rate", str(RATE)]
        ls = lane_settings(bs, root, "stack", IDLE_TOPIC + "-stack")      # the lane measure_idle runs `up` in
        kafka_broker.ensure_topic(ls)
        floor = FloorConsumer(ls, root / "floor" / "bars_1m")
        served = ServedProbe(f"http://{bs.serve_host}:{bs.serve_port}", [sim_symbol(b, True) for b in ("BTCUSDT", "ETHUSDT")],
                             bs.horizons[0])
        floor.start()
        served.start()
        try:
            c = measure_idle(bs, root, seconds + IDLE_WARMUP_S, broker_pid, cmd=cmd, name="stack", say=say,
                             ready=ready_after_first_prediction(IDLE_WARMUP_S))
        finally:
            floor.stop.set()
            served.stop.set()
        r["stack"] = c
        since = dt.datetime.fromisoformat(c["since"]).timestamp()
        until = dt.datetime.fromisoformat(c["until"]).timestamp()
        seen = {(sym, round(dt.datetime.fromisoformat(ws.replace("Z", "+00:00")).timestamp())): t
                for (sym, ws), t in served.first_seen.items() if ws}
        r["freshness"] = freshness(bs, since, until, served=seen, floor=dict(floor.latency))
        r["probes"] = {"floor_error": floor.error, "served_requests": served.requests,
                       "served_every_s": served.every}
        r["load"]["end"] = _load()
        r["why"] = _why(r)
        r["ok"] = {"freshness": bool(r["freshness"].get("total_s"))
                   and r["freshness"]["total_s"]["p95"] <= TARGETS["freshness_p95_s"],
                   "memory": c["rss_peak_gib"] <= TARGETS["rss_gib"], "cpu": c["cores_total"] <= TARGETS["cores"]}
        report(r, out, "stack", _rows(r), "why:", r["why"], rule=110)
        return r
    finally:
        if broker_pid:
            kafka_broker.stop(bs)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
