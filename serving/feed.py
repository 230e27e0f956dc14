"""The newest feature row per symbol (and the lost Kafka offsets), handed from the watcher to the workers.

Reading Delta costs a worker ~200 MiB (pyarrow's and delta-rs's pools, and the pandas pyarrow
imports), so one process reads it: the registry watcher (`serving.latest.FeedWriter`, every
`serve_feed_seconds`) keeps `serving.latest.LatestRows` current and writes `feed.json` beside
state.json atomically (a temporary file, then `os.replace`): for each feature version a champion
uses, its columns and each symbol's newest row, plus whether `silver.features` was readable and
the offsets in `ops.lost_offsets`. A worker (`Feed`, this module: json and numpy only) stats the
file at most every 50 ms and parses it only when it changed. Staleness is computed at request
time from the bar's close.
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FEED = "feed.json"


@dataclass(frozen=True)
class Row:
    symbol: str
    feature_version: str
    window_start_ms: int
    values: dict[str, float | None]        # feature -> value (None where null)

    def vector(self, names: list[str]) -> np.ndarray:
        """The row in `names` order as float32 (NaN where a value is null or not published)."""
        v = self.values
        return np.array([[np.nan if v.get(n) is None else v[n] for n in names]], dtype=np.float32)


def wanted(state: dict | None) -> dict[str, list[str]]:
    """{feature_version: columns} the champions in a registry state need (what the feed publishes)."""
    out: dict[str, set[str]] = {}
    for m in ((state or {}).get("models") or {}).values():
        champ = m.get("champion")
        if champ and m.get("folder") and m.get("features"):
            out.setdefault(m.get("feature_version") or champ.get("feature_version"), set()).update(m["features"])
    return {fv: sorted(cols) for fv, cols in out.items() if fv}


@dataclass(frozen=True)
class FeedSnapshot:
    """What one feed.json said."""
    rows: dict[tuple[str, str], Row] = field(default_factory=dict)
    all_symbols: tuple[str, ...] = ()
    error: str | None = "feature feed not published yet (the registry watcher reads silver.features)"
    published_at: float = 0.0
    lost_offsets: tuple[tuple[str, int, int], ...] = ()     # (topic, partition, lost)

    def get(self, symbol: str, feature_version: str) -> Row | None:
        return self.rows.get((symbol, feature_version))

    def symbols(self) -> list[str]:
        return list(self.all_symbols)


def parse(doc: dict) -> FeedSnapshot:
    rows = {}
    for fv, block in doc.get("versions", {}).items():
        cols = block["columns"]
        for sym, vals in block["rows"].items():
            rows[(sym, fv)] = Row(sym, fv, int(vals[0]), dict(zip(cols, vals[1:])))
    return FeedSnapshot(rows, tuple(doc.get("symbols", ())), doc.get("error"), float(doc.get("published_at", 0)),
                        tuple((t, int(p), int(n)) for t, p, n in doc.get("lost_offsets", ())))


class Feed:
    """A worker's view of feed.json: re-parsed only when the file changed.

    `before_read`, when given (the Flask test client: no watcher), publishes the feed in this
    process first. `max_age`: a feed older than this is an error (the watcher stopped publishing).
    """

    def __init__(self, folder: Path, max_age: float, before_read=None, stat_every: float = 0.0):
        self.path = Path(folder) / FEED
        self.max_age, self._before = max_age, before_read
        self.stat_every, self._statted = stat_every, -1e18
        self._key: tuple | None = None
        self._snap = FeedSnapshot()
        self._lock = threading.Lock()

    def snapshot(self) -> FeedSnapshot:
        if self._before is not None:
            self._before()
        now = time.monotonic()
        if now - self._statted < self.stat_every:
            return self._snap
        self._statted = now
        try:
            st = os.stat(self.path)
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            key = None
        if key != self._key:
            with self._lock:
                if key != self._key:
                    self._load(key)
        return self._snap

    def _load(self, key) -> None:
        if key is None:
            self._snap, self._key = FeedSnapshot(), None
            return
        try:
            with open(self.path, "rb") as f:
                doc = json.loads(f.read())
        except FileNotFoundError:
            return
        except ValueError as e:    # never half-written (os.replace), but say so rather than fail a request
            self._snap = FeedSnapshot(error=f"{FEED}: {e}")
        else:
            self._snap = parse(doc)
        self._key = key

    def problem(self) -> str | None:
        """Why the newest rows cannot be trusted (None: fine): the table unreadable, or the feed old."""
        snap = self.snapshot()
        if snap.error:
            return snap.error
        age = time.time() - snap.published_at
        if age > self.max_age:
            return (f"feature feed last published {age:.0f} s ago (over {self.max_age:.0f} s): "
                    "the registry watcher is stuck or gone")
        return None


def max_age(feed_seconds: float) -> float:
    """How old a feed may get before the service is not ready (slow disks and a loaded machine included)."""
    return max(30.0, 10 * feed_seconds)
