"""Binance's rate limits, each enforced by a small pure class the unit tests check without a network:
reconnect backoff, control-message spacing, connection attempts per window, REST weight per minute
(X-MBX-USED-WEIGHT-1M, 429/418 with Retry-After)."""
from __future__ import annotations

import random
from collections import deque

CONTROL_MESSAGES_PER_S = 4.0      # Binance cuts at 5 incoming messages/s per connection
CONNECTS_PER_WINDOW = 250         # Binance: 300 connection attempts per 5 minutes per IP
CONNECT_WINDOW_S = 300.0
REST_PAGE = 1000                  # aggTrades / historicalTrades limit per request
# Request weights of Binance spot REST (GET /api/v3/...).
WEIGHTS = {"aggTrades": 4, "historicalTrades": 25, "trades": 25, "klines": 2, "ping": 1, "time": 1,
           "exchangeInfo": 20}


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
