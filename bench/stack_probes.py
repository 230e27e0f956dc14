"""What `tickcast bench stack` watches beside the stack, in the same run:

- `FloorConsumer`: the floor for the bar stage. A hand-written consumer of the same topic
  (confluent-kafka, a dict per symbol, no Spark) that closes a symbol's minute on its next trade id
  (the trade after the minute's last, in a later minute), as tickcast's hot path does, and appends
  the bar to a Delta table of its own with delta-rs; per bar, the time from the minute's end to
  that commit.
- `ServedProbe`: the service's latest-row route (`GET /v1/predict/<symbol>`) asked every
  `every` seconds; per (symbol, minute), when it first answered with that minute's row.
"""
from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from tickcast.settings import Settings
from tickcast.timeunits import MINUTE_MS


class FloorConsumer(threading.Thread):
    def __init__(self, s: Settings, folder: Path):
        super().__init__(daemon=True, name="bench-floor")
        self.s, self.path = s, str(folder)
        self.stop = threading.Event()
        self.latency: dict[tuple[str, int], float] = {}     # (symbol, window end ms) -> seconds to commit
        self.error: str | None = None

    def run(self) -> None:
        try:
            self._run()
        except Exception as e:    # reported, never fatal to the bench
            self.error = f"{type(e).__name__}: {e}"

    def _run(self) -> None:
        import pyarrow as pa
        from confluent_kafka import Consumer
        from deltalake import write_deltalake

        c = Consumer({"bootstrap.servers": self.s.kafka_bootstrap, "group.id": f"bench-floor-{uuid.uuid4().hex[:8]}",
                      "auto.offset.reset": "latest", "enable.auto.commit": False, "log_level": 3})
        c.subscribe([self.s.topic])
        bars: dict[str, dict] = {}
        try:
            while not self.stop.is_set():
                for m in c.consume(500, timeout=0.05):
                    if m.error() or not m.value():
                        continue
                    try:
                        ev = json.loads(m.value())
                        sym, tid, t, p, q = ev["s"], int(ev["t"]), int(ev["T"]), float(ev["p"]), float(ev["q"])
                    except (ValueError, KeyError, TypeError):
                        continue
                    minute = t - t % MINUTE_MS
                    b = bars.get(sym)
                    if b is not None and minute > b["minute"] and tid == b["last_id"] + 1:
                        write_deltalake(self.path, pa.table({
                            "symbol": [sym], "window_start": [b["minute"]], "open": [b["o"]], "high": [b["h"]],
                            "low": [b["l"]], "close": [b["c"]], "volume": [b["v"]], "trades": [b["n"]]}), mode="append")
                        end = b["minute"] + MINUTE_MS
                        self.latency[(sym, end)] = time.time() - end / 1000.0
                        b = None
                    if b is None or minute > b["minute"]:
                        b = bars[sym] = {"minute": minute, "o": p, "h": p, "l": p, "c": p, "v": 0.0, "n": 0,
                                         "last_id": tid}
                    b["h"], b["l"], b["c"] = max(b["h"], p), min(b["l"], p), p
                    b["v"] += q
                    b["n"] += 1
                    b["last_id"] = max(b["last_id"], tid)
        finally:
            c.close()


class ServedProbe(threading.Thread):
    def __init__(self, base_url: str, symbols: list[str], horizon: int, every: float = 0.05):
        super().__init__(daemon=True, name="bench-served")
        self.base_url, self.symbols, self.horizon, self.every = base_url.rstrip("/"), symbols, horizon, every
        self.stop = threading.Event()
        self.first_seen: dict[tuple[str, str], float] = {}   # (symbol, window_start ISO) -> epoch s
        self.requests = 0

    def run(self) -> None:
        while not self.stop.wait(self.every):
            for sym in self.symbols:
                try:
                    with urllib.request.urlopen(f"{self.base_url}/v1/predict/{sym}?horizon={self.horizon}",
                                                timeout=2) as r:
                        body = json.loads(r.read())
                except Exception:      # not up yet, no champion yet (503), a restart: try again
                    continue
                finally:
                    self.requests += 1
                key = (sym, body.get("window_start"))
                self.first_seen.setdefault(key, time.time())
