"""`tickcast bench first-prediction`: seconds from `tickcast up` on a fresh data directory to its
first served prediction, as a user meets it after set-up.

It runs `tickcast up --source simulate` (its own broker, MLflow store and ports, nothing in the data
directory) as a subprocess and polls the service's latest-row route, `GET /v1/predict/<symbol>?horizon=H`,
every 0.25 s for each horizon until it answers 200; `up`'s output is timestamped as it arrives, so
the report also says where the time went (broker, Spark, simulated history, training, the service's
reload). Then, unless `--seconds 0`, it waits up to `--seconds` for the retrainer's first full
retrain (every candidate family, through the gate) per horizon, which the quick bootstrap model
stands in for. Printed, and written to `<out>/first-prediction.json`.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench.bars import _load, _say
from bench.measure import private_settings, report
from testkit.net import free_port
from tickcast import model_events
from tickcast.settings import Settings

TARGET_S = 90.0
TOPIC = "bench-first-ticks"
SYMBOL = "BTCUSDT-SIMSIG"     # `up`'s first simulated symbol, with the planted signal
POLL_S = 0.25
# `up`'s lines that mark a phase (the first match of each), in the order they come.
MILESTONES = {"broker": r"^kafka: ", "producer": r"^producer: ", "service": r"^service: http",
              "history": r"^models: no champion .* training on", "training": r"^models: training horizon",
              "champion": r"-> champion \(quick bootstrap", "refused": r"-> challenger \(quick bootstrap",
              "retrainer": r"^retrainer: every"}
METHOD = ("`tickcast up --source simulate` on a fresh data directory (its own broker on free ports, MLflow "
          "store, service and dashboard) as a subprocess; t=0 at its launch; the first 200 of "
          f"`GET /v1/predict/{SYMBOL}?horizon=H` polled every {POLL_S} s per horizon; milestones are the times "
          "`up`'s lines arrived on its stdout pipe; the full retrain from ops.model_events (a promotion or "
          "refusal whose `candidates` are every family)")


def _get(url: str) -> tuple[int, dict | None]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, None
    except (urllib.error.URLError, OSError, ValueError):
        return 0, None


def _full_retrains(ls: Settings, since_ms: int) -> dict[int, dict]:
    """Per horizon, the first training after `since_ms` that fitted every family (the retrainer's)."""
    from tickcast.training.config import CANDIDATES

    out = {}
    try:
        for r in model_events.newest(ls, limit=50):
            n = r["numbers"] or {}
            if (r["event"] in (model_events.PROMOTION, model_events.REFUSAL) and set(n.get("candidates") or ())
                    >= set(CANDIDATES)):
                out[r["horizon"]] = r          # newest first: the last one kept is the first
    except Exception:   # the table being created or written: not yet
        return {}
    return {h: r for h, r in out.items() if _epoch(r["event_time"]) >= since_ms / 1000}


def first_prediction_bench(s: Settings, full_wait_s: float, out: Path, timeout_s: float = 900.0) -> dict:
    """Run `up` on a fresh data directory until its first served prediction (and the first full
    retrain, up to `full_wait_s`); print and return the numbers."""
    import shutil

    out = Path(out)
    root, ls = private_settings(s, out, "first-", "first", TOPIC, serve_port=free_port(), dashboard_port=free_port(),
                                metrics_port=free_port(), producer_metrics_port=free_port())
    r: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "target_s": TARGET_S, "method": METHOD,
               "load": {"start": _load()}, "horizons": list(ls.horizons)}
    say = _say(time.monotonic())
    log = root / "up.log"
    cmd = [sys.executable, "-m", "tickcast.cli", "up", "--source", "simulate"]
    say(f"`tickcast up --source simulate` on a fresh data directory {root}")
    t0 = time.monotonic()
    launch_ms = int(time.time() * 1000)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            env=ls.child_env(), cwd=Path(__file__).resolve().parents[1], start_new_session=True)
    os.set_blocking(proc.stdout.fileno(), False)
    text, seen, first, answer = "", {}, {}, {}
    try:
        with open(log, "w") as f:
            def pump() -> None:
                nonlocal text
                while True:
                    try:
                        chunk = os.read(proc.stdout.fileno(), 65536)
                    except BlockingIOError:
                        return
                    if not chunk:
                        return
                    now = round(time.monotonic() - t0, 2)
                    for line in chunk.decode(errors="replace").splitlines():
                        f.write(f"[{now:7.2f}] {line}\n")
                        for k, pat in MILESTONES.items():
                            if k not in seen and re.search(pat, line):
                                seen[k] = now
                                say(f"{k}: {line[:150]}")
                    text += chunk.decode(errors="replace")

            base = f"http://127.0.0.1:{ls.serve_port}/v1/predict/{SYMBOL}?horizon="
            full: dict = {}
            # Until the first prediction; then, for up to `full_wait_s`, the other horizons' first
            # answers and the first full retrains (a horizon whose quick model the gate refused
            # answers only after one).
            while True:
                pump()
                if proc.poll() is not None:
                    raise RuntimeError(f"`up` exited early (code {proc.returncode}); see {log}:\n{text[-3000:]}")
                now = time.monotonic() - t0
                if not first and now > timeout_s:
                    raise RuntimeError(f"no served prediction within {timeout_s:.0f} s; see {log}")
                if first and (now > min(first.values()) + full_wait_s
                              or (len(first) == len(ls.horizons) and len(full) == len(ls.horizons))):
                    break
                for h in ls.horizons:
                    if h not in first:
                        code, body = _get(base + str(h))
                        if code == 200:
                            first[h] = round(time.monotonic() - t0, 2)
                            answer[h] = body
                            say(f"first served prediction, horizon {h}: {first[h]} s ({body.get('model_name')} "
                                f"v{body.get('model_version')}, P(up)={body.get('prob_up'):.3f})")
                if first and full_wait_s > 0 and len(full) < len(ls.horizons) and int(now) % 5 == 0:
                    full = _full_retrains(ls, launch_ms)
                time.sleep(POLL_S)
            pump()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)       # a Ctrl-C: `up` stops every child it started
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    r["first_prediction_s"] = min(first.values())
    r["per_horizon_s"] = {str(h): v for h, v in first.items()}
    r["served"] = {str(h): {k: b.get(k) for k in ("model_name", "model_version", "prob_up", "window_start",
                                                  "staleness_seconds")} for h, b in answer.items()}
    r["milestones_s"] = seen
    r["full_retrain"] = {str(h): {"event": e["event"], "version": e["model_version"],
                                  "after_launch_s": round(_epoch(e["event_time"]) - launch_ms / 1000, 1),
                                  "reason": e["reason"][:300]} for h, e in full.items()}
    r["load"]["end"] = _load()
    r["ok"] = r["first_prediction_s"] <= TARGET_S
    rows = [("load average", f"{r['load']['start']} at start, {r['load']['end']} at end", ""),
            ("first served prediction", f"{r['first_prediction_s']:.1f} s",
             f"target <= {TARGET_S:g} s: {'ok' if r['ok'] else 'MISSED'}")]
    rows += [(f"    horizon {h}", f"{v:.1f} s", f"v{answer[h].get('model_version')}") for h, v in first.items()]
    r["gate"] = {k: re.search(MILESTONES[k], text, re.M) is not None for k in ("champion", "refused")}
    rows += [(f"    {k}", f"{v:.1f} s", "line seen") for k, v in seen.items()]
    rows += [(f"full retrain h{h}", f"{v['after_launch_s']:.0f} s", f"{v['event']} v{v['version']}")
             for h, v in r["full_retrain"].items()]
    notes = [f"horizon {h}: no full retrain within {full_wait_s:.0f} s after the first prediction"
             for h in ls.horizons if str(h) not in r["full_retrain"] and full_wait_s > 0]
    notes += [f"horizon {h}: nothing served within {full_wait_s:.0f} s after the first prediction (its quick model "
              "was refused by the gate: served after a retrain passes)" for h in ls.horizons if h not in first]
    report(r, out, "first-prediction", rows, "notes:", notes or ["-"])
    shutil.rmtree(root, ignore_errors=True)
    return r


def _epoch(iso_z: str) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(iso_z.replace("Z", "+00:00")).timestamp()
