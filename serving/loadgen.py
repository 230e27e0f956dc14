"""A bounded HTTP load generator for the service: N processes, one connection each, closed loop.

`python -m serving.loadgen --url U [--body JSON] --seconds S --procs N --out F.json` writes every
response as [start (epoch s), latency s, status, X-Model-Version] (tests) and a summary (benchmark
fallback when wrk is not installed). Runs in its own processes so the load does not share the
service's interpreter.
"""
from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing as mp
import time
from urllib.parse import urlsplit


def _worker(url: str, body: bytes | None, seconds: float, t0: float, q) -> None:
    u = urlsplit(url)
    path = u.path + (f"?{u.query}" if u.query else "")
    method = "POST" if body is not None else "GET"
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    rows = []
    while time.time() < t0 + seconds:
        s = time.perf_counter()
        start = time.time()
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            r.read()
            rows.append([start, time.perf_counter() - s, r.status, r.getheader("X-Model-Version")])
            if r.getheader("Connection", "").lower() == "close":
                conn.close()
        except (OSError, http.client.HTTPException) as e:
            rows.append([start, time.perf_counter() - s, 0, type(e).__name__])
            conn.close()
    q.put(rows)


def run(url: str, body: bytes | None, seconds: float, procs: int) -> list[list]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    t0 = time.time() + 0.5
    ps = [ctx.Process(target=_worker, args=(url, body, seconds, t0, q), daemon=True) for _ in range(procs)]
    for p in ps:
        p.start()
    rows = [r for _ in ps for r in q.get(timeout=seconds + 60)]
    for p in ps:
        p.join(10)
    return sorted(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--body")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rows = run(a.url, a.body.encode() if a.body else None, a.seconds, a.procs)
    with open(a.out, "w") as f:
        json.dump(rows, f)


if __name__ == "__main__":
    main()
