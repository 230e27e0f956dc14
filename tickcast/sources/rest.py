"""Binance spot REST within the weight budget: GETs honouring Retry-After, trade pages, REST rows as
the bare WebSocket events, reachability and the symbol list."""
from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections import Counter
from typing import Callable

from tickcast.settings import Settings
from tickcast.sources.limits import REST_PAGE, WEIGHTS, Backoff, WeightBudget, retry_after_seconds

log = logging.getLogger("tickcast.live")


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



class RestError(RuntimeError):
    pass


class Rest:
    """Binance REST GETs within the weight budget, honouring Retry-After on 429 and 418.

    `metrics`, when given, has a `rest_weight` gauge and a `rest_bans` counter labelled by status
    (the live producer's `LiveMetrics`).
    """

    def __init__(self, base_url: str, budget: WeightBudget, session, metrics=None,
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
