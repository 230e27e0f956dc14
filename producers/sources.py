"""Tick sources as iterables of records: file replay and the simulator (live arrives with its issue)."""
from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Iterable, Iterator

from tickcast.sources import public_data as replay
from tickcast import events
from tickcast.timeunits import MINUTE_MS


def replay_records(paths: Iterable[Path], symbol: str | None = None, loops: int = 1) -> Iterator[events.Record]:
    """The records of each file in order, `loops` times over (for soak and load runs)."""
    for _ in range(loops):
        for p in paths:
            yield from replay.read_file(Path(p), symbol)


def simulate_records(symbols: list[str], rate: float, seed: int = 0, count: int | None = None,
                     duration_s: float | None = None, plant_signal: bool = False,
                     start_ms: int | None = None, backdate: bool = False, signal_kind: str = "linear",
                     signal_strength: float = 0.15, start_prices: dict[str, float] | None = None
                     ) -> Iterator[events.Record]:
    """Simulated trades; `backdate` ends the stream near now so max-speed runs never look future-dated."""
    from tickcast.sources.simulator import SimConfig, encode_events, simulate_batches  # deferred: heavy (imports numpy, pandas)

    if start_ms is None:
        start_ms = int(time.time() * 1000)
        if backdate:
            span = (count / rate) if count else (duration_s or 0)
            start_ms -= int(span * 1000) + MINUTE_MS
    cfg = SimConfig(symbols=tuple(symbols), rate=rate, seed=seed, start_ms=start_ms, plant_signal=plant_signal,
                    signal_kind=signal_kind, signal_strength=signal_strength, start_prices=dict(start_prices or {}))
    end_ms = start_ms + int(duration_s * 1000) if duration_s else None
    def gen() -> Iterator[events.Record]:
        for batch in simulate_batches(cfg):
            for sym, t_ms, value in encode_events(batch):
                if end_ms is not None and t_ms >= end_ms:
                    return
                yield events.Record(value=value, key=sym.encode(), trade_time_ms=t_ms)
    it = gen()
    return itertools.islice(it, count) if count else it
