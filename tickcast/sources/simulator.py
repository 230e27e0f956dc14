"""Deterministic synthetic Binance-style trades with measurable realism (see docs/simulator.md).

Model, per symbol and per simulated (epoch-aligned) minute t:
  * log-vol h_t = PHI * h_{t-1} + ETA * e_t (stationary sd LOGVOL_SD); sigma_t = vol * exp(h_t);
  * minute return = sigma_t * z_t + jump (prob JUMP_PROB, size JUMP_SCALE * sigma_t * N(0,1))
    + IMPACT * sigma_t * imbalance_t (buys lift the price within the minute)
    + [planted signal only] signal_strength * sigma_t * imbalance_{t-1};
  * taker orders arrive as a Cox process: rate rises with sigma_t and with a per-second gamma
    activity factor; each order prints a geometric burst of trades in the same or next ms;
  * order sides follow a two-state Markov chain around a per-minute flow bias (iid across minutes,
    so with the signal off the imbalance predicts nothing);
  * quantities are log-normal in notional; prices are on the tick grid, buys at the ask, sells at
    the bid (spread one tick), a sweep's later fills at the same or a further level.

Determinism: everything is drawn from numpy Generators seeded by SeedSequence(seed, spawn_key=(
crc32(base name), stream)), so the output depends only on the SimConfig. The minute-level path
(vol, diffusive return, jumps, flow bias) uses its own stream, so it is the same whatever the rate
or the other symbols; only trade-level detail changes when the rate share changes.
"""
from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import pandas as pd
from tickcast.timeunits import MINUTE_MS

TRADE_ID_BASE = 1_000_000
IDS_PER_MS = 10     # id room per millisecond of start time: runs of <= 10k trades/s per symbol never overlap
QTY_DECIMALS = 5


def first_trade_id(start_ms: int) -> int:
    """A symbol's first trade id: TRADE_ID_BASE for a stream starting at time 0, else from its start time.

    A simulator started again later (a second `tickcast up`) must not reuse the ids of the first
    run: bronze.ticks is unique on (symbol, kind, id), and its trades would be taken for replays.
    """
    return TRADE_ID_BASE + start_ms * IDS_PER_MS


# Volatility: AR(1) log-vol per minute. Persistent and wide enough for |r| to stay autocorrelated
# over 10+ minutes, not so wide that the ACF of r itself gets noisy (see docs/simulator.md).
PHI = 0.985
LOGVOL_SD = 0.45
ETA = LOGVOL_SD * math.sqrt(1.0 - PHI * PHI)
# Jumps: a minute has one with prob JUMP_PROB; with the SV they give the fat tails (kurtosis).
JUMP_PROB = 0.01
JUMP_Z = 2.5758293035489004  # P(|N(0,1)| > JUMP_Z) = JUMP_PROB, so the trigger can be a normal draw
JUMP_SCALE = 6.0
# Arrivals: orders/s scale with (sigma/median)^KAPPA (mean-normalised) times a per-second
# Gamma(SECOND_SHAPE) factor (mean 1): activity bursts at the seconds scale.
KAPPA = 1.0
SECOND_SHAPE = 1.0
BURST_MEAN = 1.5        # trades per taker order (geometric, >= 1)
SAME_MS_PROB = 0.8      # next fill of a sweep prints in the same ms, else 1 ms later
LEVEL_STEP_PROB = 0.3   # next fill of a sweep is one tick further, else another maker at the same price
# Sides: with prob SIDE_COPY an order repeats the previous order's side, else it draws buy with
# prob pi_t = 1/(1+exp(-2 x_t)) (so 2 pi_t - 1 = tanh x_t), x_t ~ N(0, FLOW_BIAS_SD^2) iid per
# minute: order flow leans one way for a minute, as real flow does, but that predicts nothing.
SIDE_COPY = 0.1
FLOW_BIAS_SD = 0.7
QTY_LOG_SD = 1.5        # log-normal trade notional; heavy sizes make minute imbalance lumpy
IMPACT = 0.5            # same-minute return per unit imbalance, in units of sigma_t
_MINUTE_DRAWS = 5       # normals per symbol-minute: vol shock, z, jump trigger, jump size, bias
_MINUTE_BLOCK = 256     # minute-level normals drawn this many minutes at a time (speed only)


@dataclass(frozen=True)
class SymbolProfile:
    """Per-symbol scales: start price, median 1-minute log-return sd, relative activity, etc."""
    price: float
    vol: float
    activity: float
    notional: float          # median trade notional (quote currency)
    tick_decimals: int = 2   # tick 0.01


PROFILES = {
    "BTCUSDT": SymbolProfile(60_000.0, 0.0007, 1.0, 150.0),
    "ETHUSDT": SymbolProfile(3_000.0, 0.0009, 0.6, 100.0),
}
DEFAULT_PROFILE = SymbolProfile(100.0, 0.0015, 0.3, 50.0)


SIGNAL_KINDS = ("linear", "interaction")


@dataclass(frozen=True)
class SimConfig:
    """What to simulate; equal configs give byte-identical streams."""
    symbols: tuple[str, ...]          # base names, e.g. ("BTCUSDT", "ETHUSDT")
    rate: float                       # mean trades per second, all symbols together
    seed: int = 0
    start_ms: int = 0                 # trade time (epoch ms) of the start of the simulated stream
    plant_signal: bool = False
    signal_strength: float = 0.15     # drift = strength * sigma_t * imbalance_{t-1} (docs/simulator.md)
    # "linear": drift as above. "interaction": drift = strength * sigma_t * imbalance_{t-1} * sign(R_{t-1}),
    # an edge no linear model on the features can use (so the training gate's promote path can be tested).
    signal_kind: str = "linear"
    # A regime change: from this trade time (epoch ms) on, the planted signal's sign is reversed, so a
    # model trained before it loses its edge after it (the lifecycle's demotion and backtest tests).
    signal_flip_ms: int | None = None
    # (base, price) pairs: where a symbol's price path starts instead of its profile's price, e.g. the
    # newest close in the lake, so that a restarted simulator continues the chart instead of jumping.
    start_prices: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.symbols, list):  # accept a list, keep the config hashable
            object.__setattr__(self, "symbols", tuple(self.symbols))
        if isinstance(self.start_prices, dict):
            object.__setattr__(self, "start_prices", tuple(sorted(self.start_prices.items())))
        if isinstance(self.symbols, str) or not self.symbols:
            raise ValueError("symbols: expected a non-empty tuple of base names")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"symbols: duplicates in {self.symbols!r}")
        if not all(isinstance(s, str) and s and s.isalnum() for s in self.symbols):
            raise ValueError(f"symbols: expected alphanumeric base names, got {self.symbols!r}")
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError(f"rate: must be > 0, got {self.rate}")
        if self.seed < 0:
            raise ValueError(f"seed: must be >= 0, got {self.seed}")
        if self.start_ms < 0:
            raise ValueError(f"start_ms: must be >= 0, got {self.start_ms}")
        if not (self.signal_strength >= 0 and math.isfinite(self.signal_strength)):
            raise ValueError(f"signal_strength: must be >= 0, got {self.signal_strength}")
        if self.signal_kind not in SIGNAL_KINDS:
            raise ValueError(f"signal_kind: expected one of {SIGNAL_KINDS}, got {self.signal_kind!r}")
        if self.signal_flip_ms is not None and (not self.plant_signal or self.signal_flip_ms < 0):
            raise ValueError(f"signal_flip_ms: needs plant_signal and a time >= 0, got {self.signal_flip_ms!r}")
        for base, price in self.start_prices:
            if base not in self.symbols:
                raise ValueError(f"start_prices: {base!r} is not one of the symbols {self.symbols!r}")
            if not (isinstance(price, (int, float)) and price > 0 and math.isfinite(price)):
                raise ValueError(f"start_prices: {base}'s price must be > 0, got {price!r}")

    def start_price(self, base: str) -> float:
        """Where `base`'s price path starts: its `start_prices` entry, else its profile's price."""
        return dict(self.start_prices).get(base, profile(base).price)


def profile(base: str) -> SymbolProfile:
    """A base symbol's scales (its own profile, else the default one)."""
    return PROFILES.get(base, DEFAULT_PROFILE)


def sim_symbol(base: str, plant_signal: bool) -> str:
    """Published name: the suffix labels simulated (and signal-planted) data in the data itself."""
    return f"{base}-SIMSIG" if plant_signal else f"{base}-SIM"


def sim_base(name: str) -> str:
    """The base symbol of a published name (`sim_symbol`'s inverse; other names as they are)."""
    return name.removesuffix("-SIMSIG").removesuffix("-SIM")


@dataclass(frozen=True, eq=False)
class TradeBatch:
    """One simulated minute, all symbols merged and sorted (stably) by trade time."""
    names: tuple[str, ...]    # published symbol names; `symbol` indexes into this
    symbol: np.ndarray        # int16
    trade_id: np.ndarray      # int64, contiguous per symbol across batches
    time_ms: np.ndarray       # int64, non-decreasing
    price: np.ndarray         # float64 on the tick grid
    qty: np.ndarray           # float64, 5 decimals, > 0
    buyer_maker: np.ndarray   # bool; False = taker buy

    def __len__(self) -> int:
        return int(self.time_ms.shape[0])


def _symbol_key(base: str) -> int:
    # crc32, not hash(): str hashes are salted per process and would break determinism.
    return zlib.crc32(base.encode())


def _within(step: np.ndarray, fill: np.ndarray, starts: np.ndarray, order_of: np.ndarray) -> np.ndarray:
    """Running count of `step` within each sweep, not counting the sweep's first fill."""
    cs = np.cumsum(step & (fill > 0))
    return cs - cs[starts][order_of]


class _SymbolSim:
    """Mutable per-symbol state carried from minute to minute."""

    def __init__(self, cfg: SimConfig, base: str, rate_share: float):
        self.p = profile(base)
        key = _symbol_key(base)
        self.minute_rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(key, 0)))
        self.trade_rng = np.random.default_rng(np.random.SeedSequence(cfg.seed, spawn_key=(key, 1)))
        self.orders_per_s = cfg.rate * rate_share / BURST_MEAN
        self.signal = cfg.signal_strength if cfg.plant_signal else 0.0
        self.interaction = cfg.signal_kind == "interaction"
        self.flip_ms = cfg.signal_flip_ms
        self.minute_start_ms = cfg.start_ms - cfg.start_ms % MINUTE_MS
        self.prev_sign = 0.0
        self.scale = 10 ** self.p.tick_decimals
        self.h = LOGVOL_SD * float(self.minute_rng.standard_normal())  # start in the stationary law
        self.logmid = math.log(cfg.start_price(base))
        self.next_id = first_trade_id(cfg.start_ms)
        self.prev_imb = 0.0
        self.last_buy = True
        self._block = np.empty((0, _MINUTE_DRAWS))
        self._row = 0

    def _minute_draws(self) -> np.ndarray:
        if self._row == len(self._block):
            self._block = self.minute_rng.standard_normal((_MINUTE_BLOCK, _MINUTE_DRAWS))
            self._row = 0
        row = self._block[self._row]
        self._row += 1
        return row

    def minute(self, skip_ms: int):
        """Advance one minute; trades before `skip_ms` (into the minute) are not emitted.

        Returns (offset_ms, trade_id, price, qty, buyer_maker) for this symbol, in trade order.
        """
        eps_h, z, jump_trigger, jump_size, bias = self._minute_draws()
        self.h = PHI * self.h + ETA * eps_h
        sigma = self.p.vol * math.exp(self.h)
        ret = sigma * z
        if abs(jump_trigger) > JUMP_Z:
            ret += JUMP_SCALE * sigma * jump_size
        flipped = self.flip_ms is not None and self.minute_start_ms >= self.flip_ms
        self.minute_start_ms += MINUTE_MS
        ret += ((-1.0 if flipped else 1.0) * self.signal * sigma * self.prev_imb
                * (self.prev_sign if self.interaction else 1.0))
        self.prev_sign = math.copysign(1.0, ret) if ret else 0.0
        intensity = math.exp(KAPPA * self.h - 0.5 * (KAPPA * LOGVOL_SD) ** 2)  # mean 1

        rng = self.trade_rng
        per_second = rng.gamma(SECOND_SHAPE, 1.0 / SECOND_SHAPE, 60) * (self.orders_per_s * intensity)
        counts = rng.poisson(per_second)
        n = int(counts.sum())
        order_ms = np.repeat(np.arange(0, MINUTE_MS, 1000, dtype=np.int64), counts)
        order_ms += rng.integers(0, 1000, n)
        order_ms.sort()
        if skip_ms:
            order_ms = order_ms[order_ms >= skip_ms]
            n = len(order_ms)
        if n == 0:
            self.logmid += ret
            self.prev_imb = 0.0
            empty = np.empty(0)
            return (empty.astype(np.int64), empty.astype(np.int64), empty, empty, empty.astype(bool))

        sizes = rng.geometric(1.0 / BURST_MEAN, n)
        m = int(sizes.sum())
        starts = np.cumsum(sizes) - sizes
        order_of = np.repeat(np.arange(n), sizes)
        fill = np.arange(m) - starts[order_of]           # fill index within its sweep
        u = rng.random((2, m))
        t = order_ms[order_of] + _within(u[0] >= SAME_MS_PROB, fill, starts, order_of)
        level = _within(u[1] < LEVEL_STEP_PROB, fill, starts, order_of)
        # The matching engine is serial: a new order's fills cannot predate the last sweep's.
        np.maximum.accumulate(t, out=t)
        np.minimum(t, MINUTE_MS - 1, out=t)  # keep batches in time order

        # Markov sides: each order either copies the previous side or draws afresh around pi_t.
        pi = 1.0 / (1.0 + math.exp(-2.0 * FLOW_BIAS_SD * bias))
        fresh = rng.random(n) < pi
        copy = rng.random(n) < SIDE_COPY
        src = np.maximum.accumulate(np.where(copy, -1, np.arange(n)))
        buy_order = np.where(src >= 0, fresh[np.maximum(src, 0)], self.last_buy)
        self.last_buy = bool(buy_order[-1])
        buy = buy_order[order_of]

        mid0 = math.exp(self.logmid)
        qty = np.exp(rng.standard_normal(m) * QTY_LOG_SD) * (self.p.notional / mid0)
        qty = np.maximum(np.rint(qty * 10**QTY_DECIMALS), 1.0) / 10**QTY_DECIMALS
        signed = np.where(buy, qty, -qty)
        total = float(qty.sum())
        imb = float(signed.sum()) / total

        # Mid moves once per order: a Brownian bridge hitting exactly `ret`, plus impact
        # proportional to the order's signed size (sums to IMPACT * sigma * imbalance).
        noise = rng.standard_normal(n) * (sigma / math.sqrt(n))
        noise += (ret - float(noise.sum())) / n
        noise += (IMPACT * sigma / total) * np.add.reduceat(signed, starts)
        path = self.logmid + np.cumsum(noise)
        self.logmid = float(path[-1])
        self.prev_imb = imb

        bid = np.floor(np.exp(path) * self.scale)[order_of]
        ticks = np.where(buy, bid + 1 + level, bid - level)
        price = np.maximum(ticks, 1.0) / self.scale  # int/scale is the nearest double to the decimal
        ids = np.arange(self.next_id, self.next_id + m, dtype=np.int64)
        self.next_id += m
        return t, ids, price, qty, ~buy


def simulate_batches(cfg: SimConfig) -> Iterator[TradeBatch]:
    """Infinite stream of one-minute batches; minutes are epoch-aligned, the first may be partial."""
    names = tuple(sim_symbol(s, cfg.plant_signal) for s in cfg.symbols)
    weights = [profile(s).activity for s in cfg.symbols]
    sims = [_SymbolSim(cfg, s, w / sum(weights)) for s, w in zip(cfg.symbols, weights)]
    minute_ms = cfg.start_ms - cfg.start_ms % MINUTE_MS
    skip = cfg.start_ms - minute_ms
    while True:
        parts = [sim.minute(skip) for sim in sims]
        skip = 0
        sizes = [len(p[0]) for p in parts]
        offs = np.concatenate([p[0] for p in parts])
        order = np.argsort(offs, kind="stable")  # stable: per-symbol id order survives the merge
        yield TradeBatch(
            names=names,
            symbol=np.repeat(np.arange(len(sims), dtype=np.int16), sizes)[order],
            trade_id=np.concatenate([p[1] for p in parts])[order],
            time_ms=offs[order] + minute_ms,
            price=np.concatenate([p[2] for p in parts])[order],
            qty=np.concatenate([p[3] for p in parts])[order],
            buyer_maker=np.concatenate([p[4] for p in parts])[order],
        )
        minute_ms += MINUTE_MS


def encode_events(batch: TradeBatch) -> list[tuple[str, int, bytes]]:
    """(symbol, time_ms, value) per trade; value is one bare Binance `trade` event, compact JSON."""
    # tolist() once, then one f-string per row: ~10x faster than json.dumps per row.
    syms = np.asarray(batch.names, dtype=object)[batch.symbol].tolist()
    flags = np.where(batch.buyer_maker, "true", "false").tolist()
    return [
        (s, t, f'{{"e":"trade","E":{t},"s":"{s}","t":{i},"p":"{p:.8f}","q":"{q:.8f}",'
               f'"T":{t},"m":{m},"M":true}}'.encode())
        for s, t, i, p, q, m in zip(syms, batch.time_ms.tolist(), batch.trade_id.tolist(),
                                    batch.price.tolist(), batch.qty.tolist(), flags)
    ]


COLUMNS = ("symbol", "trade_id", "time_ms", "price", "qty", "buyer_maker")


def simulate_frame(cfg: SimConfig, minutes: int) -> pd.DataFrame:
    """The first `minutes` batches as one frame (symbol is categorical over the published names)."""
    if minutes < 0:
        raise ValueError(f"minutes: must be >= 0, got {minutes}")
    stream = simulate_batches(cfg)
    batches = [next(stream) for _ in range(minutes)]
    names = tuple(sim_symbol(s, cfg.plant_signal) for s in cfg.symbols)

    def cat(field: str, dtype) -> np.ndarray:
        return np.concatenate([getattr(b, field) for b in batches]) if batches else np.empty(0, dtype)

    return pd.DataFrame({
        "symbol": pd.Categorical.from_codes(cat("symbol", np.int16), categories=list(names)),
        "trade_id": cat("trade_id", np.int64),
        "time_ms": cat("time_ms", np.int64),
        "price": cat("price", np.float64),
        "qty": cat("qty", np.float64),
        "buyer_maker": cat("buyer_maker", bool),
    })


if __name__ == "__main__":
    # Throughput check (not a test: timings are machine-dependent).
    import time

    stream = simulate_batches(SimConfig(("BTCUSDT", "ETHUSDT"), rate=5000.0, seed=1))
    t0 = time.perf_counter()
    batches = [next(stream) for _ in range(20)]
    t1 = time.perf_counter()
    n = sum(len(b) for b in batches)
    for b in batches:
        encode_events(b)
    t2 = time.perf_counter()
    print(f"simulate: {n:,} trades in {t1 - t0:.2f}s ({n / (t1 - t0):,.0f}/s)")
    print(f"encode_events: {n:,} events in {t2 - t1:.2f}s ({n / (t2 - t1):,.0f}/s)")
