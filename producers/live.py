"""Live Binance source: combined WebSocket streams -> the raw topic, with REST gap-fill.

Guarantee: per (symbol, kind) the topic gets trade ids in strictly increasing, contiguous order,
each id once. Live frames pass through a per-key sequencer: the next id is published at once; an
id past a gap waits (briefly, since during a rotation the other connection may still deliver the
missing ones) and then the gap is fetched over REST (`tickcast-source: gapfill`) before the
waiting live events are drained. After a reconnect, keys that stay quiet are swept over REST; on
a restart the last published ids are read back from the topic itself (a pod has no local disk).

Binance's rules (spot WebSocket streams and REST limits), each enforced here by a small pure class
so the unit tests can check it without a network:
  * at most 1,024 streams per connection (more connections beyond that);
  * at most 5 incoming messages per second per connection (pong and SUBSCRIBE count): `Spacing`;
  * at most 300 connection attempts per 5 minutes per IP: `SlidingWindow`;
  * a connection is cut after 24 h: it is rotated before `TICKCAST_BINANCE_WS_LIFETIME_SECONDS`,
    and on a `serverShutdown` event, by opening the next one first (overlap, then switch);
  * reconnects back off exponentially with jitter: `Backoff`;
  * REST weight per minute (X-MBX-USED-WEIGHT-1M), 429/418 with Retry-After: `WeightBudget`.
"""
from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

from producers.publisher import Publisher
from tickcast import events
from tickcast.settings import Settings

log = logging.getLogger("tickcast.live")

KINDS = ("trade", "aggTrade")
ID_FIELD = {"trade": "t", "aggTrade": "a"}
MAX_STREAMS_PER_CONNECTION = 1024
URL_STREAMS = 100                 # streams named in the URL; the rest by SUBSCRIBE (URL length)
SUBSCRIBE_BATCH = 100             # streams per SUBSCRIBE message
CONTROL_MESSAGES_PER_S = 4.0      # Binance cuts at 5 incoming messages/s per connection
CONNECTS_PER_WINDOW = 250         # Binance: 300 connection attempts per 5 minutes per IP
CONNECT_WINDOW_S = 300.0
REST_PAGE = 1000                  # aggTrades / historicalTrades limit per request
# Request weights of Binance spot REST (GET /api/v3/...).
WEIGHTS = {"aggTrades": 4, "historicalTrades": 25, "trades": 25, "klines": 2, "ping": 1, "time": 1,
           "exchangeInfo": 20}
ROTATE_MARGIN_S = 0.0             # the lifetime setting is already the rotation age


# ---- pure pieces --------------------------------------------------------------------------------
class Backoff:
    """Exponential backoff with 'equal jitter': delay n is in [d/2, d], d = min(cap, base * 2**n)."""

    def __init__(self, base: float = 1.0, cap: float = 60.0, rng: random.Random | None = None):
        self.base, self.cap, self.n = base, cap, 0
        self.rng = rng or random.Random()

    def next(self) -> float:
        d = min(self.cap, self.base * (2 ** self.n))
        self.n = min(self.n + 1, 30)
        return d / 2 + self.rng.uniform(0, d / 2)

    def reset(self) -> None:
        self.n = 0


class Spacing:
    """At most `rate` messages per second, as a minimum gap between sends (never a burst)."""

    def __init__(self, rate: float = CONTROL_MESSAGES_PER_S):
        self.gap = 1.0 / rate
        self.next_at = 0.0

    def reserve(self, now: float) -> float:
        """Reserve the next slot; returns how long to wait before sending."""
        at = max(now, self.next_at)
        self.next_at = at + self.gap
        return at - now


class SlidingWindow:
    """At most `limit` events in any `window` seconds (connection attempts per IP)."""

    def __init__(self, limit: int = CONNECTS_PER_WINDOW, window: float = CONNECT_WINDOW_S):
        self.limit, self.window = limit, window
        self.times: deque[float] = deque()

    def delay(self, now: float) -> float:
        while self.times and self.times[0] <= now - self.window:
            self.times.popleft()
        if len(self.times) < self.limit:
            return 0.0
        return self.times[0] + self.window - now

    def record(self, now: float) -> None:
        self.times.append(now)


class WeightBudget:
    """REST weight per calendar minute, trusting the exchange's X-MBX-USED-WEIGHT-1M, and bans.

    `now` is wall-clock seconds (Binance counts weight per minute of its clock).
    """

    def __init__(self, per_minute: int):
        self.limit = per_minute
        self.window = -1
        self.used = 0
        self.banned_until = 0.0
        self.bans = 0

    def _roll(self, now: float) -> None:
        w = int(now // 60)
        if w != self.window:
            self.window, self.used = w, 0

    def wait(self, weight: int, now: float) -> float:
        """Seconds to wait before a request of `weight` fits (0 = send now)."""
        if now < self.banned_until:
            return self.banned_until - now
        self._roll(now)
        if self.used + weight > self.limit:
            return (self.window + 1) * 60 - now + 0.05
        return 0.0

    def spend(self, weight: int, now: float) -> None:
        self._roll(now)
        self.used += weight

    def observe(self, header: str | None, now: float) -> None:
        """The exchange's count for this minute (other clients on the IP included) wins if higher."""
        if header is None:
            return
        try:
            v = int(header)
        except ValueError:
            return
        self._roll(now)
        self.used = max(self.used, v)

    def ban(self, retry_after: float, now: float) -> None:
        self.banned_until = max(self.banned_until, now + max(retry_after, 0.0))
        self.bans += 1


def retry_after_seconds(header: str | None, default: float) -> float:
    try:
        return max(0.0, float(header)) if header is not None else default
    except ValueError:
        return default


def stream_name(symbol: str, kind: str) -> str:
    return f"{symbol.lower()}@{kind}"


def chunk_streams(streams: list[str], per_connection: int = MAX_STREAMS_PER_CONNECTION) -> list[list[str]]:
    if not 1 <= per_connection <= MAX_STREAMS_PER_CONNECTION:
        raise ValueError(f"streams per connection must be in 1..{MAX_STREAMS_PER_CONNECTION}")
    return [streams[i:i + per_connection] for i in range(0, len(streams), per_connection)]


def agg_row_to_event(row: dict, symbol: str) -> dict:
    """A REST aggTrades row -> the bare WS aggTrade event (E = T: REST has no event time)."""
    return {"e": "aggTrade", "E": row["T"], "s": symbol, "a": row["a"], "p": row["p"], "q": row["q"],
            "f": row["f"], "l": row["l"], "T": row["T"], "m": row["m"], "M": row.get("M", True)}


def trade_row_to_event(row: dict, symbol: str) -> dict:
    """A REST trades/historicalTrades row -> the bare WS trade event (E = T)."""
    return {"e": "trade", "E": row["time"], "s": symbol, "t": row["id"], "p": row["price"], "q": row["qty"],
            "T": row["time"], "m": row["isBuyerMaker"], "M": row.get("isBestMatch", True)}


def rest_row_id(row: dict, kind: str) -> int:
    return row["a"] if kind == "aggTrade" else row["id"]


@dataclass
class Frame:
    """One WebSocket frame, classified."""
    what: str                     # trade | forward | skip | shutdown | control
    value: bytes | None = None    # what to publish (trade / forward)
    symbol: str | None = None
    kind: str | None = None
    id: int | None = None
    event_ms: int | None = None
    trade_ms: int | None = None
    detail: str | None = None


_WRAP = '{"stream":"'


def classify(text: str | bytes) -> Frame:
    """A frame as received -> what to do with it (pure; the hot path of the producer).

    The combined-stream wrapper is removed. Binance sends compact JSON, so the bare event is the
    `data` slice of the frame itself (same bytes as the exchange's); otherwise it is re-encoded.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError:
            return Frame("forward", value=text)
    try:
        obj = json.loads(text)
    except ValueError:
        return Frame("forward", value=text.encode())
    if not isinstance(obj, dict):
        return Frame("forward", value=text.encode())
    data = obj
    raw = None
    if "stream" in obj and "data" in obj:
        data = obj["data"]
        if not isinstance(data, dict):
            return Frame("forward", value=events.compact(data) if data is not None else text.encode())
        if text.startswith(_WRAP):
            i = text.find('","data":', len(_WRAP))
            if i > 0 and text.endswith("}}") and " " not in text:
                raw = text[i + 9:-1]
    elif "result" in obj and "id" in obj or "error" in obj and "id" in obj:
        return Frame("control", detail=text)
    e = data.get("e")
    if e in events.TRADE_EVENTS:
        sym, ident = data.get("s"), data.get(ID_FIELD[e])
        if isinstance(sym, str) and sym and isinstance(ident, int) and not isinstance(ident, bool):
            value = raw.encode() if raw is not None else (
                text.encode() if data is obj and " " not in text else events.compact(data))
            E, T = data.get("E"), data.get("T")
            return Frame("trade", value=value, symbol=sym, kind=e, id=ident,
                         event_ms=E if isinstance(E, int) else None, trade_ms=T if isinstance(T, int) else None)
        # A trade without a usable id or symbol: forwarded (bare), ingest quarantines it.
        return Frame("forward", value=events.compact(data))
    if e == "serverShutdown":
        return Frame("shutdown", detail=text)
    rec = events.from_object(data, raw.encode() if raw is not None else events.compact(data))
    if rec.value is None:
        return Frame("skip", detail=rec.skipped)
    return Frame("forward", value=rec.value)


@dataclass
class KeyState:
    last: int | None = None
    pending: dict[int, tuple[bytes, float]] = field(default_factory=dict)
    filling: bool = False
    last_live_at: float = 0.0     # monotonic time of the last live frame for this key


class Sequencer:
    """Per (symbol, kind): publish ids strictly in order, each once; hold ids that follow a gap.

    `emit(key, id, value, source, arrival)` publishes. Pure: no I/O, no clock (arrival is passed in).
    """

    def __init__(self, emit: Callable[[tuple[str, str], int, bytes, str, float], None]):
        self.emit = emit
        self.keys: dict[tuple[str, str], KeyState] = {}
        self.duplicates = 0
        self.lost = 0             # ids the exchange could not give back (REST history jumped)

    def state(self, key) -> KeyState:
        st = self.keys.get(key)
        if st is None:
            st = self.keys[key] = KeyState()
        return st

    def live(self, key, ident: int, value: bytes, arrival: float) -> bool:
        """A live event; True when it is held behind a gap (the caller should arrange a fill)."""
        st = self.state(key)
        st.last_live_at = arrival
        last = st.last
        if last is not None and ident <= last or ident in st.pending:
            self.duplicates += 1
            return False
        if last is None or ident == last + 1:
            self.emit(key, ident, value, "live", arrival)
            st.last = ident
            if st.pending:
                self._drain(key, st)
            return False
        st.pending[ident] = (value, arrival)
        return True

    def gap_from(self, key) -> int | None:
        """The first missing id when events wait behind a gap, else None."""
        st = self.keys.get(key)
        if st is None or not st.pending or st.last is None:
            return None
        return st.last + 1 if min(st.pending) > st.last + 1 else None

    def rest(self, key, ident: int, value: bytes, arrival: float) -> bool:
        """A trade fetched over REST; published (gapfill) only if it is the next id."""
        st = self.state(key)
        if st.last is not None and ident <= st.last:
            return False
        if st.last is not None and ident > st.last + 1:
            # The exchange's history itself jumps (cannot be recovered): say so, count it, go on.
            self.lost += ident - st.last - 1
            log.error("%s %s: ids %d..%d are missing from the exchange's history too", key[0], key[1],
                      st.last + 1, ident - 1)
        st.pending.pop(ident, None)
        self.emit(key, ident, value, "gapfill", arrival)
        st.last = ident
        if st.pending:
            self._drain(key, st)
        return True

    def _drain(self, key, st: KeyState) -> None:
        while st.last + 1 in st.pending:
            nxt = st.last + 1
            value, arrival = st.pending.pop(nxt)
            self.emit(key, nxt, value, "live", arrival)
            st.last = nxt


# ---- metrics ------------------------------------------------------------------------------------
class LiveMetrics:
    """Prometheus metrics of the live producer (own registry: several producers per test process)."""

    def __init__(self):
        from prometheus_client import CollectorRegistry, Counter as PCounter, Gauge, Histogram

        self.registry = r = CollectorRegistry()
        self.messages = PCounter("tickcast_live_messages", "trade events published, by symbol, kind and source "
                                 "(rate() = messages/s per symbol)", ["symbol", "kind", "source"], registry=r)
        self.gapfilled = PCounter("tickcast_live_gapfilled_trades", "trades fetched over REST and published",
                                  ["symbol", "kind"], registry=r)
        self.reconnects = PCounter("tickcast_live_reconnects", "connections re-opened, by reason", ["reason"],
                                   registry=r)
        self.rotations = PCounter("tickcast_live_rotations", "planned connection rotations (lifetime, "
                                  "serverShutdown)", ["reason"], registry=r)
        self.duplicates = PCounter("tickcast_live_duplicates_dropped", "live events dropped as already published",
                                   registry=r)
        self.forwarded = PCounter("tickcast_live_forwarded_unparsed", "frames that are not trades, forwarded "
                                  "for ingest to quarantine", registry=r)
        self.skipped = PCounter("tickcast_live_skipped", "known non-trade events skipped", ["kind"], registry=r)
        self.last_trade = Gauge("tickcast_live_last_trade_time_seconds", "trade time of the last published trade",
                                ["symbol", "kind"], registry=r)
        self.lag = Gauge("tickcast_live_lag_seconds", "arrival time minus exchange event time of the last live event",
                         ["symbol", "kind"], registry=r)
        self.connections = Gauge("tickcast_live_connections", "open WebSocket connections", registry=r)
        self.rest_weight = Gauge("tickcast_live_rest_weight_used", "REST weight used this minute "
                                 "(X-MBX-USED-WEIGHT-1M)", registry=r)
        self.rest_bans = PCounter("tickcast_live_rest_retry_after", "429/418 answers honoured", ["status"],
                                  registry=r)
        self.ack_latency = Histogram("tickcast_live_ack_latency_seconds", "frame arrival -> Kafka ack (sampled)",
                                     buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5),
                                     registry=r)
        self.sent = Gauge("tickcast_live_kafka_acknowledged", "records acknowledged by Kafka", registry=r)
        self.failed = Gauge("tickcast_live_kafka_failed", "records Kafka could not take", registry=r)

    def serve(self, port: int, host: str = "127.0.0.1") -> None:
        from prometheus_client import start_http_server

        # Loopback unless TICKCAST_PRODUCER_METRICS_HOST says otherwise (the k8s ConfigMap does).
        start_http_server(port, addr=host, registry=self.registry)


# ---- REST ---------------------------------------------------------------------------------------
class RestError(RuntimeError):
    pass


class Rest:
    """Binance REST GETs within the weight budget, honouring Retry-After on 429 and 418."""

    def __init__(self, base_url: str, budget: WeightBudget, session, metrics: LiveMetrics | None = None,
                 clock: Callable[[], float] = time.time, attempts: int = 8):
        self.base, self.budget, self.session, self.metrics = base_url.rstrip("/"), budget, session, metrics
        self.clock, self.attempts = clock, attempts
        self.requests = 0
        self.status = Counter()

    async def get(self, endpoint: str, params: dict | None = None, timeout: float = 10.0):
        import aiohttp

        weight = WEIGHTS.get(endpoint, 1)
        backoff = Backoff(0.2, 10.0)
        failures = 0
        while True:
            wait = self.budget.wait(weight, self.clock())
            if wait > 0:
                await asyncio.sleep(wait)
                continue
            self.budget.spend(weight, self.clock())
            self.requests += 1
            try:
                async with self.session.get(f"{self.base}/api/v3/{endpoint}", params=params,
                                            timeout=aiohttp.ClientTimeout(total=timeout)) as r:
                    self.status[r.status] += 1
                    self.budget.observe(r.headers.get("X-MBX-USED-WEIGHT-1M"), self.clock())
                    if self.metrics:
                        self.metrics.rest_weight.set(self.budget.used)
                    if r.status in (429, 418):
                        ra = retry_after_seconds(r.headers.get("Retry-After"), 60.0 if r.status == 418 else 5.0)
                        self.budget.ban(ra, self.clock())
                        if self.metrics:
                            self.metrics.rest_bans.labels(str(r.status)).inc()
                        log.warning("REST %s: %d, waiting Retry-After %.1f s", endpoint, r.status, ra)
                        continue
                    if r.status >= 500:
                        raise RestError(f"{endpoint}: HTTP {r.status}")
                    if r.status >= 400:
                        raise RestError(f"{endpoint} {params}: HTTP {r.status}: {(await r.text())[:200]}")
                    return await r.json(content_type=None)
            except (aiohttp.ClientError, asyncio.TimeoutError, RestError) as e:
                failures += 1
                if failures >= self.attempts or isinstance(e, RestError) and "HTTP 4" in str(e):
                    raise RestError(f"{endpoint}: {e}") from e
                await asyncio.sleep(backoff.next())

    async def trades_from(self, symbol: str, kind: str, from_id: int, limit: int = REST_PAGE) -> list[dict]:
        endpoint = "aggTrades" if kind == "aggTrade" else "historicalTrades"
        rows = await self.get(endpoint, {"symbol": symbol, "fromId": str(from_id), "limit": str(limit)})
        return rows if isinstance(rows, list) else []


async def klines_pages(rest: Rest, symbol: str, start_ms: int, end_ms: int):
    """Closed 1m klines with open time in [start_ms, end_ms), oldest first, one page (<= 1000) at a time."""
    t = start_ms
    while t < end_ms:
        rows = await rest.get("klines", {"symbol": symbol, "interval": "1m", "startTime": str(t),
                                         "endTime": str(end_ms - 1), "limit": "1000"})
        if not rows:
            return
        page = [r for r in rows if int(r[0]) < end_ms]
        if page:
            yield page
        nxt = int(rows[-1][0]) + 60_000
        if nxt <= t:
            return
        t = nxt


async def fetch_klines(rest: Rest, symbol: str, start_ms: int, end_ms: int) -> list[list]:
    """Closed 1m klines with open time in [start_ms, end_ms), oldest first, page by page."""
    return [r async for page in klines_pages(rest, symbol, start_ms, end_ms) for r in page]


async def _klines_for(base_url: str, weight_per_minute: int, symbols: list[str], lookback_hours: float) -> dict:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        rest = Rest(base_url, WeightBudget(weight_per_minute), session)
        now_ms = int((await rest.get("time"))["serverTime"])
        end_ms = now_ms // 60_000 * 60_000           # only minutes that are closed at the exchange
        start_ms = end_ms - int(lookback_hours * 3600_000)
        return {sym: await fetch_klines(rest, sym, start_ms, end_ms) for sym in symbols}


def rest_klines(s: Settings, symbols: list[str], lookback_hours: float) -> dict[str, list[list]]:
    """Recent closed 1m klines per symbol from `TICKCAST_BINANCE_REST_URL` (the exchange's clock)."""
    return asyncio.run(_klines_for(s.binance_rest_url, s.binance_rest_weight_per_minute, symbols, lookback_hours))


class KlinesClient:
    """Synchronous pages of klines for a backfill that writes as it goes (and so can resume).

    One private event loop and aiohttp session; every request goes through `Rest`, so the weight
    budget (TICKCAST_BINANCE_REST_WEIGHT_PER_MINUTE, the exchange's X-MBX-USED-WEIGHT-1M) and
    Retry-After on 429/418 apply. Use as a context manager.
    """

    def __init__(self, s: Settings):
        self.s = s
        self.loop = asyncio.new_event_loop()
        self.budget = WeightBudget(s.binance_rest_weight_per_minute)

        async def open_session():
            import aiohttp

            return aiohttp.ClientSession()

        self.session = self.loop.run_until_complete(open_session())
        self.rest = Rest(s.binance_rest_url, self.budget, self.session)

    def __enter__(self) -> "KlinesClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if not self.loop.is_closed():
            self.loop.run_until_complete(self.session.close())
            self.loop.close()

    def closed_minute_ms(self) -> int:
        """The start of the current (open) minute by the exchange's clock: klines before it are closed."""
        now_ms = int(self.loop.run_until_complete(self.rest.get("time"))["serverTime"])
        return now_ms // 60_000 * 60_000

    def pages(self, symbol: str, start_ms: int, end_ms: int) -> Iterator[list[list]]:
        agen = klines_pages(self.rest, symbol, start_ms, end_ms)
        while True:
            try:
                yield self.loop.run_until_complete(agen.__anext__())
            except StopAsyncIteration:
                return


def rest_reachable(s: Settings, timeout: float = 3.0) -> bool:
    """True when `/api/v3/ping` answers 200 within `timeout` seconds (DNS included: a thread bounds it)."""
    import urllib.request

    ok = threading.Event()

    def probe():
        try:
            with urllib.request.urlopen(f"{s.binance_rest_url}/api/v3/ping", timeout=timeout) as r:
                if r.status == 200:
                    ok.set()
        except Exception:  # DNS, refused, timeout, TLS: all mean "not reachable from here"
            pass

    th = threading.Thread(target=probe, daemon=True)
    th.start()
    th.join(timeout)
    return ok.is_set()


def usdt_symbols(s: Settings) -> list[str]:
    """Every spot symbol quoted in USDT that is TRADING (exchangeInfo)."""
    import urllib.request

    with urllib.request.urlopen(f"{s.binance_rest_url}/api/v3/exchangeInfo", timeout=15) as r:
        info = json.loads(r.read())
    return sorted(x["symbol"] for x in info.get("symbols", [])
                  if x.get("quoteAsset") == "USDT" and x.get("status") == "TRADING")


# ---- recovery from the topic --------------------------------------------------------------------
def recover_last_ids(s: Settings, keys: Iterable[tuple[str, str]], chunk: int = 2000,
                     max_scan_per_partition: int = 2_000_000) -> dict[tuple[str, str], int]:
    """The last id this source published per (symbol, kind), read back from the topic's tail.

    Each partition is read backwards in growing chunks until every wanted key has been seen or the
    partition (or `max_scan_per_partition`) is exhausted. Only `live` and `gapfill` records count
    (a replay of old files is not what this producer published). A key not found means nothing to
    fill: its first live event starts it, and cannot repeat an id already in the topic, since ids rise.
    """
    from confluent_kafka import Consumer, TopicPartition

    wanted = set(keys)
    found: dict[tuple[str, str], int] = {}
    c = Consumer({"bootstrap.servers": s.kafka_bootstrap, "group.id": "tickcast-live-recovery",
                  "enable.auto.commit": False, "enable.partition.eof": False, "log_level": 3,
                  "fetch.wait.max.ms": 50})
    try:
        md = c.list_topics(s.topic, timeout=15)
        t = md.topics.get(s.topic)
        if t is None or t.error is not None:
            return found
        for p in sorted(t.partitions):
            lo, hi = c.get_watermark_offsets(TopicPartition(s.topic, p), timeout=15)
            end, size, scanned = hi, chunk, 0
            here: dict[tuple[str, str], int] = {}
            while end > lo and scanned < max_scan_per_partition and not wanted <= (found.keys() | here.keys()):
                start = max(lo, end - size)
                c.assign([TopicPartition(s.topic, p, start)])
                pos = start
                idle = 0
                while pos < end and idle < 20:
                    msgs = c.consume(1000, timeout=0.5)
                    if not msgs:
                        idle += 1
                        continue
                    for m in msgs:
                        if m.error() is not None:
                            continue
                        pos = m.offset() + 1
                        if m.offset() >= end:
                            break
                        k = _key_of(m)
                        if k is not None and k[0] in wanted:
                            here[k[0]] = max(here.get(k[0], -1), k[1])
                scanned += end - start
                end, size = start, size * 2
            for k, v in here.items():
                found[k] = max(found.get(k, -1), v)
    finally:
        c.close()
    return found


def _key_of(m) -> tuple[tuple[str, str], int] | None:
    hdrs = dict(m.headers() or [])
    if hdrs.get("tickcast-source") not in (b"live", b"gapfill"):
        return None
    try:
        d = json.loads(m.value())
    except (ValueError, TypeError):
        return None
    if not isinstance(d, dict):
        return None
    e = d.get("e")
    if e not in ID_FIELD:
        return None
    i, sym = d.get(ID_FIELD[e]), d.get("s")
    if isinstance(i, int) and isinstance(sym, str):
        return (sym, e), i
    return None


# ---- the producer -------------------------------------------------------------------------------
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
