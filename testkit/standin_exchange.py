"""A stand-in for Binance spot on 127.0.0.1: WebSocket streams and REST from real recordings.

    python -m testkit.standin_exchange --port 18080 --recordings F [F ...] [--klines F ...]
                                       [--synthetic-symbols 400 --rate 20000] [--lifetime 60] ...

It speaks the exchange's protocol (`/ws/<stream>`, `/stream?streams=a/b`, SUBSCRIBE,
`/api/v3/{ping,time,exchangeInfo,aggTrades,trades,historicalTrades,klines}`) and behaves like it
where it hurts a client:
  * trades are released on a clock (`--rate` events/s over all symbols, recorded order); a trade
    released while a client is disconnected reaches it only over REST;
  * it drops connections mid-stream, sends `serverShutdown` and closes a little later, refuses
    reconnects for a while after a drop, and hard-closes every connection at `--lifetime`;
  * it disconnects a client that sends more than 5 messages/s, and one that does not answer a ping;
  * REST weight is counted per IP and minute (X-MBX-USED-WEIGHT-1M); over the limit it answers 429
    with Retry-After, and 418 to a client that asks again before Retry-After has passed;
  * it sends garbage frames (`--garbage-every N` released events), each with a unique number.
Every rule a client breaks is counted in `violations` at `GET /_standin/stats`. Tests and the
benchmark drive it with `POST /_standin/control?action=resume|pause|drop|shutdown|force429&n=N`.

Synthetic symbols (`--synthetic-symbols N`, e.g. for the benchmark) are named `SYN<i>USDT`, carry
a Zipf-like share of the rate, and are generated on the fly; they are labelled synthetic and never
written anywhere but the test topic.
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import random
import sys
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from aiohttp import WSMsgType, web

from jobs.backfill import symbol_of
from tickcast.sources.public_data import open_bytes, read_file

ID = {"trade": "t", "aggTrade": "a"}
IN_FLIGHT_GRACE = 0.25   # s after a 429 during which a request was already on its way
MAX_PER_TICK = 1000   # events released per clock tick at most
SYN_KEEP = 20_000   # synthetic events kept per symbol for REST (older ones are trimmed)
WEIGHTS = {"ping": 1, "time": 1, "exchangeInfo": 20, "aggTrades": 4, "trades": 25, "historicalTrades": 25,
           "klines": 2}


@dataclass
class Config:
    recordings: list[Path] = field(default_factory=list)
    klines: list[Path] = field(default_factory=list)
    synthetic_symbols: int = 0
    synthetic_kind: str = "trade"
    rate: float = 1000.0              # events released per second, all symbols
    paused: bool = False              # start with the clock stopped (POST action=resume)
    lifetime: float = 86400.0         # hard close of every connection at this age
    ping_interval: float = 20.0
    pong_timeout: float = 60.0
    refuse_seconds: float = 0.0       # after a drop, WS handshakes are refused (503) this long
    shutdown_grace: float = 3.0       # serverShutdown -> close
    garbage_every: int = 0            # a garbage frame to every connection every N released events
    max_messages_per_s: int = 5
    max_connections_per_5min: int = 300
    max_streams: int = 1024
    rest_weight_limit: int = 6000
    ban_seconds: float = 5.0          # 418 Retry-After for a client that ignored a 429
    drop_every: float = 0.0           # seconds; 0 = only on demand
    shutdown_every: float = 0.0
    tick: float = 0.01


@dataclass
class Conn:
    n: int
    ws: web.WebSocketResponse
    request: web.Request
    ip: str
    streams: set[str]
    combined: bool
    opened: float
    msg_times: deque = field(default_factory=deque)
    ping_payload: bytes | None = None
    ping_sent: float = 0.0
    closing: bool = False
    tasks: list = field(default_factory=list)


def _load_recordings(paths: list[Path]) -> dict[tuple[str, str], list[dict]]:
    series: dict[tuple[str, str], dict[int, dict]] = defaultdict(dict)
    for p in paths:
        for rec in read_file(Path(p)):
            if rec.value is None:
                continue
            try:
                ev = json.loads(rec.value)
            except ValueError:
                continue
            if isinstance(ev, dict) and ev.get("e") in ID and isinstance(ev.get(ID[ev["e"]]), int):
                series[(ev["s"], ev["e"])][ev[ID[ev["e"]]]] = ev
    return {k: [v[i] for i in sorted(v)] for k, v in series.items()}


def _load_klines(paths: list[Path]) -> dict[str, list[list]]:
    out: dict[str, dict[int, list]] = defaultdict(dict)
    for p in paths:
        sym = symbol_of(Path(p))
        with open_bytes(Path(p)) as f:
            for line in f:
                x = line.decode().strip().split(",")
                if len(x) < 12 or not x[0].isdigit():
                    continue
                ot, ct = int(x[0]), int(x[6])
                if ot >= 10**14:
                    ot, ct = ot // 1000, ct // 1000
                out[sym][ot] = [ot, x[1], x[2], x[3], x[4], x[5], ct, x[7], int(x[8]), x[9], x[10], x[11]]
    return {k: [v[t] for t in sorted(v)] for k, v in out.items()}


class Exchange:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.series = _load_recordings(cfg.recordings)
        self.klines = _load_klines(cfg.klines)
        self.rng = random.Random(7)
        # Release order: every recorded event by trade time (ties by key order, then id).
        timeline = sorted(((ev["T"], k, i) for k, evs in self.series.items() for i, ev in enumerate(evs)),
                          key=lambda x: (x[0], x[1], x[2]))
        self.timeline = [(k, i) for _, k, i in timeline]
        self.pos = 0
        self.released: dict[tuple[str, str], int] = {k: 0 for k in self.series}
        self.frames: dict[tuple[str, str], list[str]] = {k: [] for k in self.series}
        self.first_id = {k: evs[0][ID[k[1]]] for k, evs in self.series.items() if evs}
        # Synthetic symbols: own series grown on the fly.
        self.syn_keys: list[tuple[str, str]] = []
        self.syn_weights: list[float] = []
        for i in range(cfg.synthetic_symbols):
            k = (f"SYN{i:03d}USDT", cfg.synthetic_kind)
            self.syn_keys.append(k)
            self.syn_weights.append(1.0 / (i + 1) ** 1.1)
            self.series[k] = []
            self.released[k] = 0
            self.frames[k] = []
            self.first_id[k] = 1_000_000 * (i + 1)
        tot = sum(self.syn_weights) or 1.0
        self.syn_cum = []
        acc = 0.0
        for w in self.syn_weights:
            acc += w / tot
            self.syn_cum.append(acc)
        self.syn_price = {k: 100.0 + 10 * i for i, k in enumerate(self.syn_keys)}
        self.trimmed: Counter = Counter()
        t0_rec = min((evs[0]["T"] for evs in self.series.values() if evs), default=None)
        self.t_offset_ms = (t0_rec - int(time.time() * 1000)) if t0_rec is not None and not self.syn_keys else 0
        self.running = not cfg.paused
        self.conns: dict[int, Conn] = {}
        self.by_stream: dict[str, set[int]] = defaultdict(set)
        self.n_conns = 0
        self.stats = Counter()
        self.violations = Counter()
        self.connect_times: dict[str, deque] = defaultdict(deque)
        self.refuse_until = 0.0
        self.rest_window: dict[str, tuple[int, int]] = {}
        self.banned_until: dict[str, float] = {}
        self.ban_issued: dict[str, float] = {}
        self.force_429 = 0
        self.garbage_n = 0
        self.since_garbage = 0
        self._acc = 0.0

    # ---- time ----
    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.t_offset_ms

    # ---- release clock ----
    def total(self) -> int:
        return len(self.timeline)

    def done(self) -> bool:
        return not self.syn_keys and self.pos >= len(self.timeline)

    async def clock(self) -> None:
        last = time.monotonic()
        last_drop = last_shutdown = last
        while True:
            await asyncio.sleep(self.cfg.tick)
            now = time.monotonic()
            dt, last = now - last, now
            if self.cfg.drop_every and now - last_drop >= self.cfg.drop_every:
                last_drop = now
                self.drop()
            if self.cfg.shutdown_every and now - last_shutdown >= self.cfg.shutdown_every:
                last_shutdown = now
                self.shutdown()
            if not self.running:
                continue
            # At most MAX_PER_TICK a tick: past what this process can send, the rate is what it managed
            # (stats show it), and the loop stays free to answer REST and control requests.
            self._acc = min(self._acc + dt * self.cfg.rate, MAX_PER_TICK)
            n = int(self._acc)
            self._acc -= n
            if n:
                await self.release(n)

    def _syn_event(self, k: tuple[str, str]) -> dict:
        sym, kind = k
        ident = self.first_id[k] + self.released[k]
        px = self.syn_price[k] = max(0.01, self.syn_price[k] * (1 + self.rng.gauss(0, 2e-4)))
        T = self.now_ms()
        p, q = f"{px:.2f}", f"{self.rng.uniform(0.001, 2):.5f}"
        m = self.rng.random() < 0.5
        if kind == "aggTrade":
            return {"e": "aggTrade", "E": T, "s": sym, "a": ident, "p": p, "q": q, "f": ident * 2, "l": ident * 2 + 1,
                    "T": T, "m": m, "M": True}
        return {"e": "trade", "E": T, "s": sym, "t": ident, "p": p, "q": q, "T": T, "m": m, "M": True}

    async def release(self, n: int) -> None:
        out: dict[int, list[str]] = defaultdict(list)
        for _ in range(n):
            if self.syn_keys:
                k = self.syn_keys[bisect.bisect_left(self.syn_cum, self.rng.random())
                                  if self.syn_cum[-1] > 0 else 0]
                ev = self._syn_event(k)
                kept = self.series[k]
                kept.append(ev)
                if len(kept) > 2 * SYN_KEEP:      # memory stays bounded on long benchmark runs
                    del kept[:SYN_KEEP]
                    self.trimmed[k] += SYN_KEEP
            else:
                if self.pos >= len(self.timeline):
                    break
                k, _ = self.timeline[self.pos]
                self.pos += 1
                ev = self.series[k][self.released[k]]
            self.released[k] += 1
            self.stats["released"] += 1
            body = json.dumps(ev, separators=(",", ":"))
            stream = f"{k[0].lower()}@{k[1]}"
            for cid in self.by_stream.get(stream, ()):
                c = self.conns[cid]
                out[cid].append(f'{{"stream":"{stream}","data":{body}}}' if c.combined else body)
            if self.cfg.garbage_every:
                self.since_garbage += 1
                if self.since_garbage >= self.cfg.garbage_every:
                    self.since_garbage = 0
                    for cid in self.conns:
                        out[cid].append(self._garbage(self.conns[cid]))
        for cid, frames in out.items():
            c = self.conns.get(cid)
            if c is None or c.closing or c.ws.closed:
                continue
            try:
                for fr in frames:
                    if isinstance(fr, bytes):
                        await c.ws.send_bytes(fr)
                    else:
                        await c.ws.send_str(fr)
                    if isinstance(fr, bytes) or "garbage #" in fr:
                        self.stats["garbage_sent"] += 1
                    else:
                        self.stats["frames_sent"] += 1
            except (ConnectionError, RuntimeError):
                pass

    def _garbage(self, c: Conn):
        self.garbage_n += 1
        n = self.garbage_n
        stream = next(iter(c.streams), "btcusdt@trade")
        kind = n % 3
        if kind == 0:
            return f"garbage #{n}: not json {{"
        if kind == 1:
            return b"\xff\xfe\x00 garbage #" + str(n).encode()
        return ('{"stream":"' + stream + '","data":{"e":"trade","E":1,"s":"' + stream.split("@")[0].upper()
                + f'","p":"1.0","q":"1.0","T":1,"m":true,"note":"garbage #{n}"}}}}')

    # ---- misbehaviour on demand ----
    def _kill(self, c: Conn, why: str) -> None:
        if c.closing:
            return
        c.closing = True
        self.stats[why] += 1
        tr = c.request.transport
        if tr is not None:
            tr.abort()          # no close frame: what a dropped TCP connection looks like

    def drop(self, n: int | None = None) -> int:
        victims = list(self.conns.values())[: n or None]
        for c in victims:
            self._kill(c, "dropped")
        # Only a real drop opens the refusal window: a drop asked while the client is between
        # connections (the tests retry it every 0.1 s then) must not extend it for ever.
        if victims and self.cfg.refuse_seconds:
            self.refuse_until = time.monotonic() + self.cfg.refuse_seconds
        return len(victims)

    def shutdown(self) -> int:
        now = self.now_ms()
        victims = [c for c in self.conns.values() if not c.closing]
        for c in victims:
            self.stats["shutdown_sent"] += 1
            asyncio.ensure_future(self._shutdown(c, now))
        return len(victims)

    async def _shutdown(self, c: Conn, now: int) -> None:
        try:
            await c.ws.send_str(json.dumps({"e": "serverShutdown", "E": now}, separators=(",", ":")))
        except (ConnectionError, RuntimeError):
            return
        await asyncio.sleep(self.cfg.shutdown_grace)
        if c.n in self.conns and not c.closing:
            self._kill(c, "closed_after_shutdown")

    # ---- WebSocket ----
    def _refuse(self, ip: str) -> web.Response | None:
        now = time.monotonic()
        q = self.connect_times[ip]
        q.append(now)
        while q and q[0] < now - 300:
            q.popleft()
        self.stats["connect_attempts"] += 1
        if len(q) > self.cfg.max_connections_per_5min:
            self.violations["too_many_connections"] += 1
            return web.json_response({"code": -1003, "msg": "Too many connections"}, status=429)
        if now < self.refuse_until:
            self.stats["refused"] += 1
            return web.Response(status=503, text="reconnect refused (stand-in: recovering)")
        return None

    async def ws_single(self, request: web.Request):
        return await self._ws(request, [request.match_info["stream"]], combined=False)

    async def ws_combined(self, request: web.Request):
        streams = [x for x in request.query.get("streams", "").split("/") if x]
        return await self._ws(request, streams, combined=True)

    async def _ws(self, request: web.Request, streams: list[str], combined: bool):
        ip = request.remote or "?"
        refusal = self._refuse(ip)
        if refusal is not None:
            return refusal
        if len(streams) > self.cfg.max_streams:
            self.violations["too_many_streams"] += 1
            return web.json_response({"code": -1, "msg": "too many streams"}, status=400)
        ws = web.WebSocketResponse(autoping=False, heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        self.n_conns += 1
        c = Conn(self.n_conns, ws, request, ip, {self._norm(s) for s in streams}, combined, time.monotonic())
        self.conns[c.n] = c
        for s in c.streams:
            self.by_stream[s].add(c.n)
        self.stats["connections"] += 1
        c.tasks = [asyncio.ensure_future(self._lifetime(c)), asyncio.ensure_future(self._pinger(c))]
        try:
            while True:
                msg = await ws.receive()
                if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
                if self._too_fast(c):
                    self.violations["too_many_messages"] += 1
                    c.closing = True
                    await ws.close(code=1008, message=b"Too many messages")
                    break
                if msg.type is WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type is WSMsgType.PONG:
                    if c.ping_payload is not None and msg.data != c.ping_payload:
                        self.violations["pong_payload_mismatch"] += 1
                    c.ping_payload = None
                    self.stats["pongs"] += 1
                elif msg.type is WSMsgType.TEXT:
                    await self._control(c, msg.data)
        finally:
            for t in c.tasks:
                t.cancel()
            self.conns.pop(c.n, None)
            for s in c.streams:
                self.by_stream[s].discard(c.n)
        return ws

    @staticmethod
    def _norm(stream: str) -> str:
        sym, _, kind = stream.partition("@")
        return f"{sym.lower()}@{kind}"

    def _too_fast(self, c: Conn) -> bool:
        now = time.monotonic()
        c.msg_times.append(now)
        while c.msg_times and c.msg_times[0] <= now - 1.0:
            c.msg_times.popleft()
        return len(c.msg_times) > self.cfg.max_messages_per_s

    async def _control(self, c: Conn, text: str) -> None:
        try:
            m = json.loads(text)
            method, params, ident = m.get("method"), m.get("params") or [], m.get("id")
        except (ValueError, AttributeError):
            self.stats["bad_control"] += 1
            await c.ws.send_str(json.dumps({"error": {"code": 3, "msg": "Invalid JSON"}, "id": None}))
            return
        if method == "SUBSCRIBE":
            new = {self._norm(s) for s in params}
            if len(c.streams | new) > self.cfg.max_streams:
                self.violations["too_many_streams"] += 1
                await c.ws.close(code=1008, message=b"too many streams")
                return
            for s in new:
                c.streams.add(s)
                self.by_stream[s].add(c.n)
            self.stats["subscribe"] += 1
            await c.ws.send_str(json.dumps({"result": None, "id": ident}))
        elif method == "UNSUBSCRIBE":
            for s in params:
                c.streams.discard(self._norm(s))
                self.by_stream[self._norm(s)].discard(c.n)
            await c.ws.send_str(json.dumps({"result": None, "id": ident}))
        elif method == "LIST_SUBSCRIPTIONS":
            await c.ws.send_str(json.dumps({"result": sorted(c.streams), "id": ident}))
        else:
            self.stats["bad_control"] += 1
            await c.ws.send_str(json.dumps({"error": {"code": 2, "msg": "Invalid request"}, "id": ident}))

    async def _lifetime(self, c: Conn) -> None:
        await asyncio.sleep(self.cfg.lifetime)
        self._kill(c, "lifetime_closes")

    async def _pinger(self, c: Conn) -> None:
        while True:
            await asyncio.sleep(self.cfg.ping_interval)
            if c.ping_payload is not None and time.monotonic() - c.ping_sent > self.cfg.pong_timeout:
                self.violations["no_pong"] += 1
                self._kill(c, "closed_no_pong")
                return
            if c.ping_payload is None:
                c.ping_payload = str(self.now_ms()).encode()
                c.ping_sent = time.monotonic()
                try:
                    await c.ws.ping(c.ping_payload)
                    self.stats["pings"] += 1
                except (ConnectionError, RuntimeError):
                    return

    # ---- REST ----
    def _weigh(self, request: web.Request, weight: int) -> web.Response | None:
        ip = request.remote or "?"
        now = time.time()
        w = int(now // 60)
        win, used = self.rest_window.get(ip, (w, 0))
        if win != w:
            used = 0
        self.stats["rest_requests"] += 1
        if now < self.banned_until.get(ip, 0.0):
            if now - self.ban_issued.get(ip, 0.0) < IN_FLIGHT_GRACE:
                # Sent before the client could have seen the 429: another 429, not held against it.
                self.stats["429_in_flight"] += 1
                return web.json_response({"code": -1003, "msg": "Too many requests (stand-in)"}, status=429,
                                         headers={"Retry-After": str(max(1, round(self.banned_until[ip] - now))),
                                                  "X-MBX-USED-WEIGHT-1M": str(used)})
            self.violations["ignored_retry_after"] += 1
            self.banned_until[ip] = now + self.cfg.ban_seconds
            return web.json_response({"code": -1003, "msg": "IP banned (stand-in)"}, status=418,
                                     headers={"Retry-After": str(int(self.cfg.ban_seconds)),
                                              "X-MBX-USED-WEIGHT-1M": str(used)})
        if self.force_429 > 0:
            self.force_429 -= 1
            self.stats["forced_429"] += 1
            self.banned_until[ip] = now + 1.0
            self.ban_issued[ip] = now
            return web.json_response({"code": -1003, "msg": "Too many requests (stand-in)"}, status=429,
                                     headers={"Retry-After": "1", "X-MBX-USED-WEIGHT-1M": str(used)})
        used += weight
        self.rest_window[ip] = (w, used)
        if used > self.cfg.rest_weight_limit:
            self.violations["rest_weight_exceeded"] += 1
            retry = int((w + 1) * 60 - now) + 1
            self.banned_until[ip] = now + retry
            self.ban_issued[ip] = now
            return web.json_response({"code": -1003, "msg": "Too much request weight used"}, status=429,
                                     headers={"Retry-After": str(retry), "X-MBX-USED-WEIGHT-1M": str(used)})
        request["used_weight"] = used
        return None

    def _json(self, request, body, status=200):
        return web.json_response(body, status=status, dumps=lambda o: json.dumps(o, separators=(",", ":")),
                                 headers={"X-MBX-USED-WEIGHT-1M": str(request.get("used_weight", 0))})

    async def rest(self, request: web.Request):
        ep = request.match_info["endpoint"]
        if ep not in WEIGHTS:
            return web.json_response({"code": -1, "msg": "unknown endpoint"}, status=404)
        q = request.query
        weight = WEIGHTS[ep]
        denied = self._weigh(request, weight)
        if denied is not None:
            return denied
        if ep == "ping":
            return self._json(request, {})
        if ep == "time":
            return self._json(request, {"serverTime": self.now_ms()})
        if ep == "exchangeInfo":
            syms = sorted({k[0] for k in self.series} | set(self.klines))
            return self._json(request, {"timezone": "UTC", "serverTime": self.now_ms(), "symbols": [
                {"symbol": s, "status": "TRADING", "baseAsset": s[:-4], "quoteAsset": s[-4:]} for s in syms]})
        sym = q.get("symbol", "").upper()
        try:
            limit = min(int(q.get("limit", "500")), 1000)
        except ValueError:
            return self._json(request, {"code": -1100, "msg": "bad limit"}, 400)
        if ep == "klines":
            rows = self.klines.get(sym)
            if rows is None:
                return self._json(request, {"code": -1121, "msg": "Invalid symbol."}, 400)
            lo = int(q.get("startTime", "0"))
            hi = int(q.get("endTime", str(2**62)))
            now = self.now_ms()
            out = [r for r in rows if lo <= r[0] <= hi and r[6] < now][:limit]
            return self._json(request, out)
        kind = "aggTrade" if ep == "aggTrades" else "trade"
        k = (sym, kind)
        if k not in self.series:
            return self._json(request, {"code": -1121, "msg": "Invalid symbol."}, 400)
        cut = self.trimmed[k]
        n = self.released[k] - cut
        evs = self.series[k]
        first = self.first_id[k] + cut
        if "fromId" in q and ep != "trades":
            i = max(0, int(q["fromId"]) - first)
            sel = evs[i:min(n, i + limit)]
        else:
            sel = evs[max(0, n - limit):n]
        self.stats[f"rest_{ep}_rows"] += len(sel)
        if kind == "aggTrade":
            out = [{"a": e["a"], "p": e["p"], "q": e["q"], "f": e["f"], "l": e["l"], "T": e["T"], "m": e["m"],
                    "M": e.get("M", True)} for e in sel]
        else:
            out = [{"id": e["t"], "price": e["p"], "qty": e["q"],
                    "quoteQty": str((Decimal(e["p"]) * Decimal(e["q"])).normalize()), "time": e["T"],
                    "isBuyerMaker": e["m"], "isBestMatch": e.get("M", True)} for e in sel]
        return self._json(request, out)

    # ---- test control ----
    async def stats_view(self, request: web.Request):
        return web.json_response({
            "violations": dict(self.violations), "counters": dict(self.stats),
            "released": {f"{k[0]}@{k[1]}": n for k, n in self.released.items() if n},
            "last_ids": {f"{k[0]}@{k[1]}": self.first_id[k] + n - 1 for k, n in self.released.items() if n},
            "first_ids": {f"{k[0]}@{k[1]}": self.first_id[k] for k in self.released},
            "total": self.total(), "position": self.stats["released"], "done": self.done(),
            "running": self.running, "open_connections": len(self.conns),
            "open_streams": sorted({s for c in self.conns.values() for s in c.streams}),
            "garbage_numbers": self.garbage_n,
        })

    async def control(self, request: web.Request):
        a = request.query.get("action", "")
        n = int(request.query.get("n", "0") or 0)
        if a == "resume":
            self.running = True
        elif a == "pause":
            self.running = False
        elif a == "drop":
            n = self.drop(n or None)
        elif a == "shutdown":
            n = self.shutdown()
        elif a == "force429":
            self.force_429 += max(n, 1)
        elif a == "rate":
            self.cfg.rate = float(request.query["value"])
        else:
            return web.json_response({"error": f"unknown action {a!r}"}, status=400)
        return web.json_response({"ok": True, "action": a, "n": n})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ws/{stream}", self.ws_single)
        app.router.add_get("/stream", self.ws_combined)
        app.router.add_get("/api/v3/{endpoint}", self.rest)
        app.router.add_get("/_standin/stats", self.stats_view)
        app.router.add_post("/_standin/control", self.control)

        async def start_clock(_app):
            _app["clock"] = asyncio.ensure_future(self.clock())

        async def stop_clock(_app):
            _app["clock"].cancel()

        app.on_startup.append(start_clock)
        app.on_cleanup.append(stop_clock)
        return app


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Config]:
    p = argparse.ArgumentParser(prog="python -m testkit.standin_exchange", description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--recordings", nargs="*", type=Path, default=[], help="WS recordings / trade CSVs to serve")
    p.add_argument("--klines", nargs="*", type=Path, default=[], help="1m kline files for /api/v3/klines")
    p.add_argument("--synthetic-symbols", type=int, default=0)
    p.add_argument("--synthetic-kind", choices=["trade", "aggTrade"], default="trade")
    p.add_argument("--rate", type=float, default=1000.0, help="events/s released, all symbols")
    p.add_argument("--paused", action="store_true", help="start with the clock stopped (POST action=resume)")
    p.add_argument("--lifetime", type=float, default=86400.0, help="hard close of a connection at this age (s)")
    p.add_argument("--ping-interval", type=float, default=20.0)
    p.add_argument("--pong-timeout", type=float, default=60.0)
    p.add_argument("--refuse-seconds", type=float, default=0.0)
    p.add_argument("--shutdown-grace", type=float, default=3.0)
    p.add_argument("--garbage-every", type=int, default=0)
    p.add_argument("--rest-weight-limit", type=int, default=6000)
    p.add_argument("--max-connections-per-5min", type=int, default=300)
    p.add_argument("--ban-seconds", type=float, default=5.0)
    p.add_argument("--drop-every", type=float, default=0.0)
    p.add_argument("--shutdown-every", type=float, default=0.0)
    a = p.parse_args(argv)
    cfg = Config(recordings=a.recordings, klines=a.klines, synthetic_symbols=a.synthetic_symbols,
                 synthetic_kind=a.synthetic_kind, rate=a.rate, paused=a.paused, lifetime=a.lifetime,
                 ping_interval=a.ping_interval, pong_timeout=a.pong_timeout, refuse_seconds=a.refuse_seconds,
                 shutdown_grace=a.shutdown_grace, garbage_every=a.garbage_every,
                 rest_weight_limit=a.rest_weight_limit, max_connections_per_5min=a.max_connections_per_5min,
                 ban_seconds=a.ban_seconds, drop_every=a.drop_every, shutdown_every=a.shutdown_every)
    return a, cfg


def main(argv: list[str] | None = None) -> None:
    a, cfg = parse_args(argv)
    ex = Exchange(cfg)
    print(f"standin: {sum(len(v) for v in ex.series.values())} recorded events in {len(ex.series)} series, "
          f"{len(ex.klines)} kline series; listening on http://{a.host}:{a.port}", flush=True)
    web.run_app(ex.app(), host=a.host, port=a.port, print=None, access_log=None, handle_signals=True)


if __name__ == "__main__":
    main(sys.argv[1:])
