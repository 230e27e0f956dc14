"""`tickcast bench scrape`: what scraping the stack's /metrics costs the stack, in cores.

It runs `tickcast up --source simulate --rate 50` (all five jobs, the service and the dashboard, on a
broker and a data directory of its own) and, once the first prediction is committed and a settle
time has passed, alternates phases of `seconds` each, in both orders over `rounds` rounds: nobody
scrapes (the reference), then a scraper GETs /metrics every `interval` seconds. The stack's CPU
(every process of `up`'s tree and the broker, psutil) is measured per phase; the cost is the paired
difference, scraped minus unscraped, averaged over the rounds. Printed and written to
`<out>/scrape.json`.
"""
from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil

from bench.bars import _load, _say
from bench.measure import private_settings, report
from bench.stack import ready_after_first_prediction
from tickcast import kafka_broker
from tickcast.settings import Settings
from testkit.net import free_port

RATE = 50.0
TOPIC = "bench-scrape-ticks"
TARGET_CORES = 0.02
SETTLE_S = 30.0
METHOD = ("`tickcast up --source simulate --rate 50` as a subprocess on the bench's broker; from 30 s after the "
          "first prediction, phases of equal length alternate (none, scraped / scraped, none per round); a "
          "phase's cores = CPU seconds (user+system) of every process of up's tree and the broker / wall; "
          "cost = mean over rounds of (scraped - none)")


def _cpu(pids: list[int]) -> float:
    total, seen = 0.0, set()
    for pid in pids:
        try:
            p = psutil.Process(pid)
            procs = [p, *p.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for q in procs:
            if q.pid in seen:
                continue
            seen.add(q.pid)
            try:
                t = q.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
    return total


def _phase(pids: list[int], seconds: float, url: str | None, interval: float) -> dict:
    """One phase: the stack's cores over `seconds`, scraping `url` every `interval` s if given."""
    t0, c0 = time.monotonic(), _cpu(pids)
    scrapes, sizes, latencies = 0, [], []
    nxt = t0
    while time.monotonic() - t0 < seconds:
        if url is not None and time.monotonic() >= nxt:
            s0 = time.perf_counter()
            with urllib.request.urlopen(url, timeout=10) as r:
                sizes.append(len(r.read()))
            latencies.append(time.perf_counter() - s0)
            scrapes += 1
            nxt += interval
        time.sleep(0.05)
    wall = time.monotonic() - t0
    out = {"cores": (_cpu(pids) - c0) / wall, "wall_s": round(wall, 1), "scrapes": scrapes}
    if scrapes:
        out["bytes"] = int(statistics.median(sizes))
        out["latency_ms_p50"] = round(1000 * statistics.median(latencies), 2)
    return out


def scrape_bench(s: Settings, seconds: float, rounds: int, interval: float, out: Path, keep: bool = False) -> dict:
    """Run the bench on a private broker and data dir; print and return the numbers."""
    out = Path(out)
    root, bs = private_settings(s, out, "scrape-", "scrape", TOPIC, metrics_port=free_port(),
                                serve_port=free_port(), dashboard_port=free_port())
    url = f"http://127.0.0.1:{bs.metrics_port}/metrics"
    r: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "method": METHOD, "target_cores": TARGET_CORES,
               "seconds_per_phase": seconds, "rounds": rounds, "interval_s": interval, "load": {"start": _load()}}
    say = _say(time.monotonic())
    broker_pid, proc = None, None
    try:
        broker_pid = kafka_broker.start(bs).pid
        say(f"`tickcast up` at ~{RATE:.0f} ticks/s on {bs.kafka_bootstrap}, data in {root}")
        log = open(root / "up.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "tickcast.cli", "up", "--source", "simulate", "--rate", str(RATE)],
                                env=bs.child_env(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        ready, deadline = ready_after_first_prediction(SETTLE_S), time.monotonic() + 1200
        while not ready(bs):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"`up` never predicted (see {root / 'up.log'})")
            time.sleep(2)
        pids = [proc.pid, broker_pid]
        phases = []
        for i in range(rounds):
            order = ("none", "scraped") if i % 2 == 0 else ("scraped", "none")
            got = {}
            for way in order:
                got[way] = _phase(pids, seconds, url if way == "scraped" else None, interval)
                say(f"round {i + 1} {way}: {got[way]['cores']:.3f} cores")
            phases.append(got)
        diffs = [p["scraped"]["cores"] - p["none"]["cores"] for p in phases]
        cost = statistics.mean(diffs)
        scraped = [p["scraped"] for p in phases]
        r.update({
            "phases": phases, "cost_cores": round(cost, 4), "cost_cores_per_round": [round(d, 4) for d in diffs],
            "cores_none_mean": round(statistics.mean(p["none"]["cores"] for p in phases), 3),
            "cores_scraped_mean": round(statistics.mean(p["cores"] for p in scraped), 3),
            "exposition_bytes": scraped[0].get("bytes"), "scrape_latency_ms_p50": scraped[0].get("latency_ms_p50"),
            "ok": cost <= TARGET_CORES,
        })
        r["load"]["end"] = _load()
        rows = [("load average", f"{r['load']['start']} at start, {r['load']['end']} at end", ""),
                ("stack, nobody scraping", f"{r['cores_none_mean']:.3f} cores", f"mean of {rounds} phases of {seconds:g} s"),
                (f"stack, scraped every {interval:g} s", f"{r['cores_scraped_mean']:.3f} cores", ""),
                ("cost of scraping", f"{cost:+.4f} cores", f"per round {r['cost_cores_per_round']}; target <= "
                 f"{TARGET_CORES}: {'ok' if r['ok'] else 'MISSED'}"),
                ("one scrape", f"{r['exposition_bytes']} bytes, p50 {r['scrape_latency_ms_p50']} ms", "")]
        report(r, out, "scrape", rows, "method:", [METHOD])
        return r
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if broker_pid:
            kafka_broker.stop(bs)
        if not keep:
            shutil.rmtree(root, ignore_errors=True)
