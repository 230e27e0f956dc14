"""Closed 1-minute klines over Binance REST: pages for a backfill that writes as it goes, or all at once."""
from __future__ import annotations

import asyncio
from typing import Iterator

from tickcast.settings import Settings
from tickcast.sources.limits import WeightBudget
from tickcast.sources.rest import Rest


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
