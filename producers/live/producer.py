"""The live producer: combined WebSocket streams -> the raw topic, with REST gap-fill and rotation."""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from producers.live.frames import KINDS, MAX_STREAMS_PER_CONNECTION, chunk_streams, classify, stream_name
from producers.live.metrics import LiveMetrics
from producers.live.recovery import recover_last_ids
from producers.live.sequencer import Sequencer
from producers.publisher import Publisher
from tickcast import events
from tickcast.settings import Settings
from tickcast.sources.limits import REST_PAGE, Backoff, SlidingWindow, Spacing, WeightBudget
from tickcast.sources.rest import Rest, RestError, agg_row_to_event, rest_row_id, trade_row_to_event

log = logging.getLogger("tickcast.live")

URL_STREAMS = 100                 # streams named in the URL; the rest by SUBSCRIBE (URL length)
SUBSCRIBE_BATCH = 100             # streams per SUBSCRIBE message
ROTATE_MARGIN_S = 0.0             # the lifetime setting is already the rotation age


@dataclass
class LiveOptions:
    symbols: list[str]
    kind: str = "trade"
    streams_per_connection: int = MAX_STREAMS_PER_CONNECTION
    lifetime_s: float = 82800.0          # rotate at this age
    overlap_max_s: float = 5.0           # how long the old connection stays up waiting for the new one
    gap_grace_s: float = 0.5             # wait for an out-of-order id before fetching the gap
    sweep_after_s: float = 2.0           # after a reconnect, REST-check keys that stayed quiet this long
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    latency_sample_every: int = 10       # every Nth live event gets its arrival -> ack time measured
    silence_s: float = 90.0              # no frame (not even a ping) this long = a dead connection
    drain_s: float = 0.5                 # after the new connection delivers, the old one may still hold frames
    keep_latencies: bool = False         # keep every sampled latency in `latencies` (the benchmark)
    recover: bool = True                 # read the last ids back from the topic at start


class _Conn:
    def __init__(self, n: int, ws, opened: float):
        self.n, self.ws, self.opened = n, ws, opened
        self.task: asyncio.Task | None = None
        self.rotate = asyncio.Event()
        self.ready = asyncio.Event()          # first frame received / subscriptions confirmed
        self.spacing = Spacing()
        self.pending_subscriptions = 0
        self.end_reason = "dropped"


# A live trade that Kafka refused is gone from the stream (the sequencer has moved past its id), and
# the ids after it would land out of order if it were re-sent later. So a delivery never times
# out: while the broker is down, librdkafka keeps every record queued, in order, and retries
# (idempotent: no duplicate); a full local queue (1M records, hours at live rates) blocks `send`,
# and the exchange's connection is then dropped and gap-filled later, like any other outage.
LIVE_PRODUCER_CONFIG = {"message.timeout.ms": 0}


class LiveProducer:
    """Binance combined streams for `symbols` -> Kafka, exactly once per id; run() until stopped."""

    def __init__(self, s: Settings, opts: LiveOptions, publisher=None, metrics: LiveMetrics | None = None):
        if opts.kind not in KINDS:
            raise ValueError(f"stream kind must be one of {KINDS}, got {opts.kind!r}")
        if not opts.symbols:
            raise ValueError("no symbols")
        self.s, self.opts = s, opts
        self.symbols = [x.upper() for x in opts.symbols]
        self.keys = [(sym, opts.kind) for sym in self.symbols]
        self.groups = chunk_streams([stream_name(*k) for k in self.keys], opts.streams_per_connection)
        self.metrics = metrics or LiveMetrics()
        self._pub = publisher
        self.seq = Sequencer(self._emit)
        self.connect_window = SlidingWindow()
        self.budget = WeightBudget(s.binance_rest_weight_per_minute)
        self.stop = threading.Event()
        self.recovered: dict[tuple[str, str], int] = {}
        self.stats = Counter()                # reconnects, rotations, connects, refused, ...
        self.gapfilled = Counter()            # per symbol
        self.published = Counter()            # per source
        self.latencies: list[float] = []      # arrival -> ack, seconds (sampled; only with keep_latencies)
        self._children: dict[tuple[str, str], tuple] = {}
        self._fills: dict[tuple[str, str], asyncio.Task] = {}
        self._gauge_due: dict[tuple[str, str], float] = {}
        self._n = 0
        self._conn_ids = 0
        self.rest: Rest | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.connected = threading.Event()

    # -- publishing --
    def _emit(self, key, ident: int, value: bytes, source: str, arrival: float) -> None:
        sym, kind = key
        ch = self._children.get(key)
        if ch is None:
            m = self.metrics
            ch = self._children[key] = (sym.encode(), m.messages.labels(sym, kind, "live"),
                                        m.messages.labels(sym, kind, "gapfill"), m.gapfilled.labels(sym, kind),
                                        m.last_trade.labels(sym, kind))
        cb = None
        self._n += 1
        if source == "live" and self._n % self.opts.latency_sample_every == 0:
            keep = self.latencies.append if self.opts.keep_latencies else None
            hist = self.metrics.ack_latency

            def cb(err, _msg, t0=arrival):
                if err is None:
                    d = time.perf_counter() - t0
                    hist.observe(d)
                    if keep is not None:
                        keep(d)
        self._pub.send(value, ch[0], source, cb)
        self.published[source] += 1
        if source == "live":
            ch[1].inc()
        else:
            ch[2].inc()
            ch[3].inc()
            self.gapfilled[sym] += 1

    # -- gap-fill --
    def _schedule_fill(self, key, sweep: bool = False, delay: float | None = None) -> None:
        t = self._fills.get(key)
        if t is not None and not t.done():
            return
        self._fills[key] = asyncio.get_running_loop().create_task(
            self._fill(key, sweep, self.opts.gap_grace_s if delay is None else delay))

    async def _fill(self, key, sweep: bool, delay: float) -> None:
        sym, kind = key
        if delay > 0:
            await asyncio.sleep(delay)
        empty = 0
        try:
            while not self.stop.is_set():
                st = self.seq.state(key)
                gap = self.seq.gap_from(key)
                if gap is None and not sweep:
                    return
                if st.last is None:
                    return
                start = st.last + 1 if gap is None else gap
                rows = await self.rest.trades_from(sym, kind, start)
                now = time.perf_counter()
                for row in rows:
                    ev = agg_row_to_event(row, sym) if kind == "aggTrade" else trade_row_to_event(row, sym)
                    self.seq.rest(key, rest_row_id(row, kind), events.compact(ev), now)
                if sweep and len(rows) < REST_PAGE:
                    sweep = False                  # caught up with the exchange's present
                if not rows and self.seq.gap_from(key) is not None:
                    empty += 1                     # the exchange has not got them yet: try again shortly
                    if empty > 40:
                        log.error("%s %s: REST has no trades from id %d; giving up this fill", sym, kind, start)
                        return
                    await asyncio.sleep(0.25)
        except RestError as e:
            log.error("gap-fill %s %s failed: %s (retried on the next gap or reconnect)", sym, kind, e)
        except asyncio.CancelledError:
            raise

    def _sweep_later(self, conn: _Conn, keys: list[tuple[str, str]]) -> None:
        async def sweep():
            await asyncio.sleep(self.opts.sweep_after_s)
            for k in keys:
                st = self.seq.keys.get(k)
                if st is not None and st.last is not None and st.last_live_at < conn.opened:
                    self._schedule_fill(k, sweep=True, delay=0)
        asyncio.get_running_loop().create_task(sweep())

    # -- connections --
    def _url(self, streams: list[str]) -> str:
        return f"{self.s.binance_ws_url}/stream?streams=" + "/".join(streams[:URL_STREAMS])

    async def _open(self, session, streams: list[str], backoff: Backoff, reason: str) -> _Conn | None:
        import aiohttp

        while not self.stop.is_set():
            wait = self.connect_window.delay(time.monotonic())
            if wait > 0:
                log.warning("connection attempts at the per-IP limit: waiting %.1f s", wait)
                await asyncio.sleep(min(wait, 1.0))
                continue
            self.connect_window.record(time.monotonic())
            self.stats["connect_attempts"] += 1
            try:
                ws = await session.ws_connect(self._url(streams), autoping=False, heartbeat=None,
                                              max_msg_size=0, timeout=aiohttp.ClientWSTimeout(ws_close=2.0))
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as e:
                self.stats["connect_failed"] += 1
                d = backoff.next()
                log.warning("connect (%s) failed: %s; retry in %.2f s", reason, e, d)
                await asyncio.sleep(d)
                continue
            self._conn_ids += 1
            conn = _Conn(self._conn_ids, ws, time.perf_counter())
            self.stats["connections"] += 1
            self.metrics.connections.inc()
            conn.task = asyncio.get_running_loop().create_task(self._read(conn, backoff))
            rest = streams[URL_STREAMS:]
            try:
                for i in range(0, len(rest), SUBSCRIBE_BATCH):
                    await asyncio.sleep(conn.spacing.reserve(time.monotonic()))
                    conn.pending_subscriptions += 1
                    await ws.send_str(json.dumps({"method": "SUBSCRIBE", "params": rest[i:i + SUBSCRIBE_BATCH],
                                                  "id": i // SUBSCRIBE_BATCH + 1}))
            except (aiohttp.ClientError, ConnectionError, RuntimeError) as e:
                self.stats["connect_failed"] += 1
                conn.task.cancel()
                d = backoff.next()
                log.warning("subscribe on connection %d failed: %s; retry in %.2f s", conn.n, e, d)
                await asyncio.sleep(d)
                continue
            return conn
        return None

    async def _read(self, conn: _Conn, backoff: Backoff) -> None:
        import aiohttp

        ws = conn.ws
        seq, sched = self.seq, self._schedule_fill
        m = self.metrics
        due = self._gauge_due
        try:
            while True:
                try:
                    msg = await ws.receive(timeout=self.opts.silence_s)
                except asyncio.TimeoutError:
                    # Binance pings every 20 s: this long without a frame is a dead (half-open) connection.
                    conn.end_reason = "silent"
                    log.warning("connection %d: nothing for %.0f s: treating it as dropped", conn.n,
                                self.opts.silence_s)
                    break
                arrival = time.perf_counter()
                t = msg.type
                if t is aiohttp.WSMsgType.TEXT or t is aiohttp.WSMsgType.BINARY:
                    f = classify(msg.data)
                    if f.what == "trade":
                        key = (f.symbol, f.kind)
                        if not conn.ready.is_set() and conn.pending_subscriptions == 0:
                            conn.ready.set()
                            backoff.reset()       # the connection delivers: the next failure starts small
                        if seq.live(key, f.id, f.value, arrival):
                            sched(key)
                        if arrival >= due.get(key, 0.0):      # gauges: at most once a second per key
                            due[key] = arrival + 1.0
                            if f.event_ms is not None:
                                m.lag.labels(f.symbol, f.kind).set(time.time() - f.event_ms / 1000)
                            if f.trade_ms is not None:
                                m.last_trade.labels(f.symbol, f.kind).set(f.trade_ms / 1000)
                    elif f.what == "forward":
                        self._pub.send(f.value, None, "live")
                        self.published["forwarded"] += 1
                        m.forwarded.inc()
                    elif f.what == "skip":
                        m.skipped.labels(f.detail or "unknown").inc()
                    elif f.what == "shutdown":
                        log.warning("connection %d: serverShutdown: rotating", conn.n)
                        self.stats["server_shutdowns"] += 1
                        conn.end_reason = "serverShutdown"
                        conn.rotate.set()
                    else:   # a SUBSCRIBE answer
                        conn.pending_subscriptions = max(0, conn.pending_subscriptions - 1)
                        if conn.pending_subscriptions == 0:
                            conn.ready.set()
                elif t is aiohttp.WSMsgType.PING:
                    # A pong with the same payload, within the per-connection message rate.
                    await asyncio.sleep(conn.spacing.reserve(time.monotonic()))
                    await ws.pong(msg.data)
                    self.stats["pongs"] += 1
                elif t is aiohttp.WSMsgType.PONG:
                    pass
                else:       # CLOSE, CLOSING, CLOSED, ERROR
                    break
        finally:
            m.connections.dec()
            if not ws.closed:
                await ws.close()

    async def _run_group(self, session, n: int, streams: list[str]) -> None:
        backoff = Backoff(self.opts.backoff_base_s, self.opts.backoff_cap_s)
        keys = [(x.split("@")[0].upper(), x.split("@")[1]) for x in streams]
        cur = await self._open(session, streams, backoff, "start")
        if cur is None:
            return
        self._sweep_later(cur, keys)
        self.connected.set()
        while not self.stop.is_set():
            due = cur.opened + self.opts.lifetime_s - ROTATE_MARGIN_S
            rot = asyncio.ensure_future(cur.rotate.wait())
            done, _ = await asyncio.wait({cur.task, rot}, timeout=max(0.0, min(due - time.perf_counter(), 0.5)))
            rot.cancel()
            if self.stop.is_set():
                break
            if cur.task.done():
                reason = cur.end_reason
                self.stats["reconnects"] += 1
                self.metrics.reconnects.labels(reason).inc()
                d = backoff.next()
                log.warning("connection %d ended (%s): reconnecting in %.2f s", cur.n, reason, d)
                await asyncio.sleep(d)
                cur = await self._open(session, streams, backoff, "reconnect")
                if cur is None:
                    break
                self._sweep_later(cur, keys)
                continue
            if cur.rotate.is_set() or time.perf_counter() >= due:
                reason = "serverShutdown" if cur.rotate.is_set() else "lifetime"
                self.stats["rotations"] += 1
                self.metrics.rotations.labels(reason).inc()
                new = await self._open(session, streams, backoff, f"rotate ({reason})")
                if new is None:
                    break
                # Overlap: the old connection keeps delivering until the new one does; ids seen on
                # both are published once (Sequencer), so the switch has no gap and no duplicate.
                try:
                    await asyncio.wait_for(new.ready.wait(), self.opts.overlap_max_s)
                except asyncio.TimeoutError:
                    log.warning("rotation: new connection %d silent for %.1f s; switching anyway",
                                new.n, self.opts.overlap_max_s)
                # Frames the old connection received before the new one opened may still be unread.
                await asyncio.sleep(self.opts.drain_s)
                old, cur = cur, new
                old.end_reason = "rotated"
                old.task.cancel()
                try:
                    await old.task
                except (asyncio.CancelledError, Exception):
                    pass
                if not old.ws.closed:
                    await old.ws.close()
                # No REST sweep here: the two connections overlapped, so nothing was missed.
        for c in (cur,):
            if c.task and not c.task.done():
                c.task.cancel()
                try:
                    await c.task
                except (asyncio.CancelledError, Exception):
                    pass

    async def _supervise(self, session, n: int, streams: list[str]) -> None:
        """A connection group that fails unexpectedly is logged and started again (with backoff)."""
        backoff = Backoff(self.opts.backoff_base_s, self.opts.backoff_cap_s)
        while not self.stop.is_set():
            try:
                await self._run_group(session, n, streams)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                self.stats["group_restarts"] += 1
                self.metrics.reconnects.labels("error").inc()
                log.exception("connection group %d failed; starting it again", n)
                await asyncio.sleep(backoff.next())

    async def _main(self) -> None:
        import aiohttp

        self._loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as session:
            self.rest = Rest(self.s.binance_rest_url, self.budget, session, self.metrics)
            groups = [asyncio.create_task(self._supervise(session, i, g)) for i, g in enumerate(self.groups)]
            while not self.stop.is_set():
                await asyncio.sleep(0.1)
                if all(g.done() for g in groups):
                    break
            for g in groups:
                g.cancel()
            for t in list(self._fills.values()):
                t.cancel()
            await asyncio.gather(*groups, *self._fills.values(), return_exceptions=True)

    def _poll_loop(self) -> None:
        while not self._poll_stop.is_set():
            self._pub.poll(0.05)
            self.metrics.sent.set(self._pub.counts.sent)
            self.metrics.failed.set(self._pub.counts.failed)

    def run(self, stop: threading.Event | None = None, serve_metrics: bool = True,
            on_recovered: Callable[[dict], None] | None = None):
        """Recover, connect, publish until `stop` is set; returns the publisher's counts after a flush."""
        if stop is not None:
            self.stop = stop
        if self._pub is None:
            self._pub = Publisher(self.s, "live", config=LIVE_PRODUCER_CONFIG)
        if serve_metrics and self.s.producer_metrics_port:
            self.metrics.serve(self.s.producer_metrics_port, self.s.producer_metrics_host)
        if self.opts.recover:
            self.recovered = recover_last_ids(self.s, self.keys)
            for k, v in self.recovered.items():
                self.seq.state(k).last = v
            if on_recovered:
                on_recovered(self.recovered)
        self._poll_stop = threading.Event()
        poller = threading.Thread(target=self._poll_loop, name="kafka-poll", daemon=True)
        poller.start()
        try:
            asyncio.run(self._main())
        finally:
            self._poll_stop.set()
            poller.join(5)
            counts = self._pub.close()
            self.metrics.sent.set(counts.sent)
            self.metrics.failed.set(counts.failed)
            self.counts = counts
            self._pub = None          # the Kafka client goes with it (it would retry a stopped broker)
        return counts

    def describe(self) -> str:
        gf = sum(self.gapfilled.values())
        per = ", ".join(f"{k} {v}" for k, v in sorted(self.gapfilled.items())) or "none"
        return (f"live {self.published['live']}, gap-filled {gf} ({per}), forwarded unparsed "
                f"{self.published['forwarded']}, duplicates dropped {self.seq.duplicates}, "
                f"reconnects {self.stats['reconnects']}, rotations {self.stats['rotations']}, "
                f"lost (not in the exchange's history) {self.seq.lost}")
