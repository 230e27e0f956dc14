"""`tickcast bench live`: the live producer's throughput and added latency, stand-in -> producer -> Kafka.

Everything runs on a broker, a topic and a stand-in exchange of the bench's own (free ports, a
temporary folder under `<data_dir>/bench/`, deleted at the end).

The goal is one producer process for every Binance spot USDT pair at peak rates. ASSUMED (not
measured here, there is no internet): about 400 USDT pairs trading, and an aggregate peak of
20,000 trade events/s over all of them (a busy hour is ~10x the daily mean; BTCUSDT alone peaks
at a few thousand trades/s). The stand-in generates that many synthetic symbols (`SYN<i>USDT`,
a Zipf-like share of the rate each) so the numbers are about the producer, not about the data.

Measured (units in the printed table and in `<out>/live.json`):
  (a) reference: `Publisher` alone over events encoded beforehand, as fast as possible (msgs/s),
      and paced at the peak rate: produce() -> Kafka ack latency p50/p99 (every 10th record);
  (b) peak: the stand-in releases the assumed peak rate for `--seconds`; the producer's acked
      msgs/s over the window, whether it kept up (every released event in the topic), frame arrival
      (after the WebSocket read) -> Kafka ack p50/p99 (every 10th event), CPU of producer / stand-in;
  (c) ceiling: the stand-in asked for 4x the peak; what the producer sustains and which side limits.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from producers.live import LiveOptions, LiveProducer
from producers.publisher import Publisher
from tickcast import kafka_broker
from tickcast.settings import Settings
from testkit.net import free_port

SYMBOLS = 400
PEAK_RATE = 20_000
REFERENCE_RECORDS = 200_000
METHOD = {
    "reference_max": "Publisher.send over pre-encoded synthetic trade events (400 symbols), first send -> close() returned",
    "reference_paced": "same records paced at the peak rate in 10 ms steps; latency = Kafka ack callback - time just "
                       "before produce(), every 10th record",
    "live": "stand-in (own process, combined streams, 400 synthetic symbols) -> LiveProducer (this process) -> Kafka; "
            "msgs/s = acknowledged records in the measured window / window; latency = ack callback - time the "
            "frame came out of the WebSocket read, every 10th live event",
}



def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def _records(n: int, symbols: int) -> list[tuple[bytes, bytes]]:
    import random

    rng = random.Random(0)
    w = [1.0 / (i + 1) ** 1.1 for i in range(symbols)]
    syms = [f"SYN{i:03d}USDT" for i in range(symbols)]
    picks = rng.choices(range(symbols), weights=w, k=n)
    now = int(time.time() * 1000)
    out = []
    for j, i in enumerate(picks):
        ev = {"e": "trade", "E": now, "s": syms[i], "t": j, "p": f"{100 + i:.2f}", "q": "0.12345",
              "T": now, "m": j % 2 == 0, "M": True}
        out.append((json.dumps(ev, separators=(",", ":")).encode(), syms[i].encode()))
    return out


def reference(s: Settings, rate: float, seconds: float) -> dict:
    recs = _records(REFERENCE_RECORDS, SYMBOLS)
    pub = Publisher(s, "simulate")
    t0 = time.monotonic()
    for v, k in recs:
        pub.send(v, k)
        pub.poll(0)
    c = pub.close(120)
    dt = time.monotonic() - t0
    out = {"max": {"sent": c.sent, "failed": c.failed, "seconds": round(dt, 2), "msgs_per_s": round(c.sent / dt)}}

    pub = Publisher(s, "simulate")
    lat: list[float] = []
    stop = threading.Event()
    poller = threading.Thread(target=lambda: [pub.poll(0.05) for _ in iter(stop.is_set, True)], daemon=True)
    poller.start()
    n, t0 = 0, time.perf_counter()
    end = t0 + seconds
    while time.perf_counter() < end:
        due = int((time.perf_counter() - t0) * rate)
        while n < due:
            v, k = recs[n % len(recs)]
            if n % 10 == 0:
                t_send = time.perf_counter()
                pub.send(v, k, on_delivery=lambda err, _m, t=t_send: err is None and lat.append(
                    time.perf_counter() - t))
            else:
                pub.send(v, k)
            n += 1
        time.sleep(0.01)
    stop.set()
    poller.join(5)
    c = pub.close(120)
    out["paced"] = {"rate": rate, "sent": c.sent, "failed": c.failed, "msgs_per_s": round(n / seconds),
                    "latency_samples": len(lat), "p50_ms": round(pct(lat, 50) * 1000, 2),
                    "p99_ms": round(pct(lat, 99) * 1000, 2), "max_ms": round(max(lat) * 1000, 2) if lat else None}
    return out


class _Standin:
    def __init__(self, port: int, rate: float):
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "testkit.standin_exchange", "--port", str(port),
                                      "--paused", "--synthetic-symbols", str(SYMBOLS), "--rate", str(rate)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                self.stats()
                return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("the stand-in did not start")
                time.sleep(0.1)

    def stats(self) -> dict:
        with urllib.request.urlopen(f"{self.url}/_standin/stats", timeout=60) as r:
            return json.loads(r.read())

    def control(self, action: str, **kw) -> None:
        q = "&".join([f"action={action}"] + [f"{k}={v}" for k, v in kw.items()])
        urllib.request.urlopen(urllib.request.Request(f"{self.url}/_standin/control?{q}", method="POST"),
                               timeout=60).read()

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _cpu(pid: int) -> float:
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


def live_run(s: Settings, rate: float, seconds: float, warmup: float = 3.0) -> dict:
    """The stand-in at `rate` events/s for `seconds` (after a warm-up), the producer in this process."""
    port = free_port()
    ex = _Standin(port, rate)
    ls = dataclasses.replace(s, binance_ws_url=f"ws://127.0.0.1:{port}", binance_rest_url=ex.url,
                             producer_metrics_port=0)
    prod = LiveProducer(ls, LiveOptions(symbols=[f"SYN{i:03d}USDT" for i in range(SYMBOLS)], recover=False,
                                        latency_sample_every=10, keep_latencies=True))
    stop = threading.Event()
    box: dict = {}
    th = threading.Thread(target=lambda: box.update(counts=prod.run(stop, serve_metrics=False)), daemon=True)
    th.start()
    try:
        if not prod.connected.wait(30):
            raise RuntimeError("the producer did not connect")
        ex.control("resume")
        time.sleep(warmup)
        st0, c0, sc0 = ex.stats(), _cpu(os.getpid()), _cpu(ex.proc.pid)
        sent0, lat0, t0 = prod._pub.counts.sent, len(prod.latencies), time.monotonic()
        time.sleep(seconds)
        st1, c1, sc1 = ex.stats(), _cpu(os.getpid()), _cpu(ex.proc.pid)
        sent1, lat1, t1 = prod._pub.counts.sent, len(prod.latencies), time.monotonic()
        ex.control("pause")
        released = ex.stats()["position"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and prod.published["live"] + prod.published["gapfill"] < released:
            time.sleep(0.2)
        drained_s = round(time.monotonic() - t1, 2)
    finally:
        stop.set()
        th.join(120)
        ex.close()
    counts = box.get("counts")
    dt = t1 - t0
    lat = prod.latencies[lat0:lat1]
    published = prod.published["live"] + prod.published["gapfill"]
    return {
        "rate_asked": rate, "seconds": round(dt, 2),
        "released_per_s": round((st1["position"] - st0["position"]) / dt),
        "acked_per_s": round((sent1 - sent0) / dt),
        "released_total": released, "published_total": published,
        "acked_total": counts.sent if counts else None, "failed": counts.failed if counts else None,
        # Kept up: acknowledged as fast as released during the window (not only after the pause).
        "kept_up": (sent1 - sent0) >= 0.97 * (st1["position"] - st0["position"]),
        "all_published_after_pause": published >= released and (counts is not None and counts.sent >= released),
        "catch_up_after_pause_s": drained_s,
        "gapfilled": sum(prod.gapfilled.values()), "reconnects": prod.stats["reconnects"],
        "duplicates": prod.seq.duplicates, "violations": st1["violations"],
        "latency_samples": len(lat), "p50_ms": round(pct(lat, 50) * 1000, 2),
        "p99_ms": round(pct(lat, 99) * 1000, 2), "max_ms": round(max(lat) * 1000, 2) if lat else None,
        "producer_cores": round((c1 - c0) / dt, 2), "standin_cores": round((sc1 - sc0) / dt, 2),
        "producer_cpu_us_per_msg": round((c1 - c0) / max(sent1 - sent0, 1) * 1e6, 1),
        "loadavg_1m_after": round(os.getloadavg()[0], 2),
        "symbols_seen": len(prod.seq.keys),
    }


def live_bench(s: Settings, seconds: float, peak_rate: float, out: Path) -> dict:
    from bench.measure import machine

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (s.data_dir / "bench").mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="live-", dir=s.data_dir / "bench"))
    bs = dataclasses.replace(s, data_dir=root, lake_uri=str(root / "delta"), checkpoint_uri=str(root / "ckpt"),
                             kafka_bootstrap=f"127.0.0.1:{free_port()}", kafka_controller_port=free_port(),
                             topic="bench-live-ref")
    r: dict = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "method": METHOD,
               "assumption": {"usdt_pairs": SYMBOLS, "peak_trades_per_s": peak_rate,
                              "note": "assumed, not measured: ~400 Binance spot USDT pairs, aggregate peak "
                                      f"{peak_rate:,.0f} trade events/s"}}
    t_all = time.monotonic()
    say = lambda msg: print(f"[{time.monotonic() - t_all:6.1f}s] {msg}", flush=True)  # noqa: E731
    try:
        say(f"broker on {bs.kafka_bootstrap}, data in {root}")
        kafka_broker.start(bs)
        kafka_broker.ensure_topic(bs)
        r["machine"] = machine()
        say(f"(a) reference: Publisher alone, {REFERENCE_RECORDS:,} pre-encoded events, then paced at {peak_rate:,.0f}/s")
        r["reference"] = reference(bs, peak_rate, min(seconds, 15))
        say(f"(b) live at the assumed peak: {peak_rate:,.0f} events/s over {SYMBOLS} symbols for {seconds:.0f} s")
        ls = dataclasses.replace(bs, topic="bench-live-peak")
        kafka_broker.ensure_topic(ls)
        r["peak"] = live_run(ls, peak_rate, seconds)
        say(f"(c) ceiling: the stand-in asked for {4 * peak_rate:,.0f} events/s")
        cs = dataclasses.replace(bs, topic="bench-live-ceiling")
        kafka_broker.ensure_topic(cs)
        r["ceiling"] = live_run(cs, 4 * peak_rate, min(seconds, 15))
    finally:
        try:
            kafka_broker.stop(bs)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    c = r["ceiling"]
    ncpu = r["machine"]["cpu_count"]
    busy = c["producer_cores"] + c["standin_cores"]
    limiter = ("the stand-in (it released less than asked: "
               f"{c['released_per_s']:,}/s of {c['rate_asked']:,.0f}/s at {c['standin_cores']} cores)"
               if c["released_per_s"] < 0.9 * c["rate_asked"] else "the producer")
    if c["loadavg_1m_after"] > ncpu:
        limiter += (f"; the machine was oversubscribed (load {c['loadavg_1m_after']} on {ncpu} CPUs, producer + "
                    f"stand-in got {busy:.2f} cores): CPU per message is the portable number")
    r["limits"] = {
        "peak": f"producer {r['peak']['producer_cores']} cores, stand-in {r['peak']['standin_cores']} cores, "
                f"kept up: {r['peak']['kept_up']}",
        "ceiling": f"limited by {limiter}; producer {c['producer_cores']} cores "
                   f"(one Python thread parses and sequences every frame; librdkafka sends in its own threads)",
        "latency": "linger.ms=20 of the shared producer config dominates both the reference and the live p50",
    }
    r["json"] = str(out / "live.json")
    (out / "live.json").write_text(json.dumps(r, indent=2, default=str))
    _print(r)
    return r


def _print(r: dict) -> None:
    ref, p, c = r["reference"], r["peak"], r["ceiling"]
    m = r["machine"]
    rows = [
        ("machine", f"{m['cpu_count']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, librdkafka {m['librdkafka']}"),
        ("assumption", f"{r['assumption']['usdt_pairs']} USDT pairs, peak {r['assumption']['peak_trades_per_s']:,.0f} "
                       "trades/s (assumed)"),
        ("(a) Publisher alone, max", f"{ref['max']['msgs_per_s']:>10,} msgs/s"),
        ("    paced at peak: ack p50/p99", f"{ref['paced']['p50_ms']:>10} / {ref['paced']['p99_ms']} ms "
                                           f"({ref['paced']['latency_samples']:,} samples)"),
        ("(b) live at peak", f"{p['acked_per_s']:>10,} msgs/s acked (released {p['released_per_s']:,}/s), "
                             f"kept up: {p['kept_up']}"),
        ("    frame -> ack p50/p99", f"{p['p50_ms']:>10} / {p['p99_ms']} ms ({p['latency_samples']:,} samples); "
                                     f"added vs reference p50 {p['p50_ms'] - ref['paced']['p50_ms']:+.2f} ms, "
                                     f"p99 {p['p99_ms'] - ref['paced']['p99_ms']:+.2f} ms"),
        ("    CPU", f"producer {p['producer_cores']} cores ({p['producer_cpu_us_per_msg']} us/msg -> one core "
                  f"~{1e6 / max(p['producer_cpu_us_per_msg'], 0.1):,.0f} msgs/s), stand-in {p['standin_cores']} cores; "
                  f"load average {p['loadavg_1m_after']} on {m['cpu_count']} CPUs"),
        ("(c) live, asked 4x peak", f"{c['acked_per_s']:>10,} msgs/s acked (released {c['released_per_s']:,}/s), "
                                    f"kept up: {c['kept_up']}, p50/p99 {c['p50_ms']} / {c['p99_ms']} ms"),
        ("    CPU", f"producer {c['producer_cores']} cores ({c['producer_cpu_us_per_msg']} us/msg), stand-in "
                  f"{c['standin_cores']} cores; load average {c['loadavg_1m_after']}"),
    ]
    w = max(len(a) for a, _ in rows)
    print("\ntickcast bench live\n" + "-" * 100)
    for a, b in rows:
        print(f"{a:<{w}}  {b}")
    print("-" * 100)
    for k, v in r["limits"].items():
        print(f"  {k:<8} {v}")
    print(f"\nwritten: {r['json']}")
