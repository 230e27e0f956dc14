"""The newest `silver.features` row of every symbol, kept current from the Delta log (delta-rs).

It runs in the registry watcher (`FeedWriter`, below), never in a worker: pyarrow, delta-rs
and pandas would cost each worker ~200 MiB.

The first read takes only the files whose newest bar is within `FIRST_READ_SPAN_MS` of the table's
newest (file statistics); after that only the files new since the last version are read
(`tickcast.lake.follow`, the one incremental reader: milliseconds, against most of a second for a
filtered full read of a week in small files: docs/performance.md#delta-incremental-read). A table
rewritten (compaction, overwrite) is read again.
At most one refresh per `min_interval` seconds: a bar closes once a minute.
"""
from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from pathlib import Path
from urllib.parse import unquote

import numpy as np

from serving.feed import FEED, Row
from tickcast import data_loss, features, lake, tables
from tickcast.lake import follow
from tickcast.settings import Settings

log = logging.getLogger("tickcast.serving.latest")

FIRST_READ_SPAN_MS = 24 * 3600 * 1000
KEY_COLS = ["symbol", "feature_version", "window_start"]


class LatestRows:
    def __init__(self, s: Settings, min_interval: float = 1.0):
        self.s, self.min_interval = s, min_interval
        self.feature_cols = list(features.COLUMNS)  # the summary features and the history columns
        self.uri = lake.uri(tables.FEATURES, s)
        self._follower = follow.Follower(self.uri, stats=("window_start",))
        self._rows: dict[tuple[str, str], Row] = {}
        self._checked = -1e18
        self._lock = threading.Lock()
        self.version: int | None = None
        self.error: str | None = None
        self.files_read = 0            # for tests: files read since start

    def get(self, symbol: str, feature_version: str) -> Row | None:
        self.maybe_refresh()
        return self._rows.get((symbol, feature_version))

    def items(self):
        """((symbol, feature_version), Row) of every key held."""
        return list(self._rows.items())

    def symbols(self) -> list[str]:
        return sorted({k[0] for k in self._rows})

    def maybe_refresh(self) -> None:
        if time.monotonic() - self._checked >= self.min_interval and self._lock.acquire(blocking=False):
            try:      # one thread refreshes; the others answer from what is held
                self._refresh_locked()
            finally:
                self._lock.release()

    def refresh(self) -> None:
        with self._lock:
            self._refresh_locked()

    def _refresh_locked(self) -> None:
        self._checked = time.monotonic()
        try:
            self._refresh()
            self.error = None
        except Exception as e:     # keep the rows held; /ready reports it
            self.error = f"{tables.FEATURES.name}: {type(e).__name__}: {e}"
            log.warning("%s", self.error)

    def _refresh(self) -> None:
        if self.version is None and not self._follower.exists():
            raise FileNotFoundError(f"no Delta table at {self.uri} (run the features job)")
        change = self._follower.poll()
        if change is None:
            return
        adds = _newest_bars(change.added)
        if change.reread:                       # first read, or files removed: only files with recent bars
            self._rows = {}
            top = max((m for m in adds.values() if m is not None), default=None)
            if top is not None:
                adds = {p: m for p, m in adds.items() if m is None or m >= top - FIRST_READ_SPAN_MS}
        self._read(list(adds))
        self.version = change.version

    def _read(self, paths: list[str]):
        """The new files' rows, newest per key only, read in batches (a worker's memory stays small)."""
        if not paths:
            return None
        import pyarrow as pa

        cols = KEY_COLS + self.feature_cols
        self.files_read += len(paths)
        if "://" not in self.uri:      # local: the parquet files directly (no pyarrow.dataset: ~50 MiB less)
            import pyarrow.parquet as pq

            def batches():
                for p in paths:
                    with pq.ParquetFile(os.path.join(self.uri, unquote(p))) as f:
                        yield from f.iter_batches(batch_size=2048, columns=cols)
        else:
            wanted = set(paths)
            ds = self._follower.table().to_pyarrow_dataset()

            def batches():
                for f in ds.get_fragments():
                    if any(f.path.endswith(unquote(p)) for p in wanted):
                        yield from f.to_batches(columns=cols, batch_size=2048)
        for b in batches():
            self._merge(pa.Table.from_batches([b]))
        return None

    def _merge(self, t) -> None:
        if t is None or t.num_rows == 0:
            return
        import pyarrow.compute as pc

        ms = lake.to_ms(t.column("window_start"))
        sym = t.column("symbol").to_pylist()
        fv = t.column("feature_version").to_pylist()
        best: dict[tuple[str, str], int] = {}
        for i in np.argsort(ms, kind="stable"):
            best[(sym[i], fv[i])] = int(i)          # the newest row of each key wins
        take = [i for k, i in best.items() if k not in self._rows or self._rows[k].window_start_ms <= ms[i]]
        if not take:
            return
        sub = t.take(take).select(self.feature_cols)
        cols = {c: pc.cast(sub.column(c), "double").to_pylist() for c in self.feature_cols}
        for j, i in enumerate(take):
            self._rows[(sym[i], fv[i])] = Row(sym[i], fv[i], int(ms[i]), {c: cols[c][j] for c in self.feature_cols})


def _newest_bars(adds) -> dict[str, int | None]:
    """Add rows (`follow.live_files`) -> {path: its newest window_start in epoch ms (None without statistics)}."""
    paths = adds.column("path").to_pylist()
    if "max.window_start" not in adds.column_names:
        return {p: None for p in paths}
    col = adds.column("max.window_start")
    mx, valid = lake.to_ms(col.fill_null(0)), col.is_valid().to_pylist()
    return {p: (int(m) if ok else None) for p, m, ok in zip(paths, mx, valid)}


class FeedWriter:
    """The watcher's side: `LatestRows` kept current, the lost offsets, published to feed.json."""

    def __init__(self, s, folder: Path, lost_every: float | None = None):
        self.s, self.path = s, Path(folder) / FEED
        self.latest = LatestRows(s, min_interval=0.0)
        self.wanted: dict[str, list[str]] = {}
        self.lost_every = s.serve_reload_seconds if lost_every is None else lost_every
        self._lost: list = []
        self._lost_error: str | None = None
        self._lost_at = -1e18
        self._published_at = -1e18
        self._lock = threading.Lock()
        self.seq = 0

    def maybe_publish(self, wanted: dict[str, list[str]] | None = None) -> None:
        """Publish if `serve_feed_seconds` passed, or at once when the champions need other columns."""
        if (wanted is not None and wanted != self.wanted) or \
                time.monotonic() - self._published_at >= self.s.serve_feed_seconds:
            self.publish(wanted)

    def publish(self, wanted: dict[str, list[str]] | None = None) -> dict:
        with self._lock:
            if wanted is not None:
                self.wanted = wanted
            self._published_at = time.monotonic()
            self.latest.refresh()
            self._read_lost()
            versions = {}
            for fv, cols in self.wanted.items():
                rows = {}
                for (sym, rfv), r in self.latest.items():
                    if rfv == fv:
                        rows[sym] = [r.window_start_ms] + [_finite(r.values.get(c)) for c in cols]
                versions[fv] = {"columns": cols, "rows": rows}
            self.seq += 1
            doc = {"seq": self.seq, "published_at": time.time(), "pid": os.getpid(), "error": self.latest.error,
                   "table_version": self.latest.version, "symbols": self.latest.symbols(), "versions": versions,
                   "lost_offsets": self._lost, "lost_offsets_error": self._lost_error}
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{FEED}.{os.getpid()}.{threading.get_ident()}")
            tmp.write_text(json.dumps(doc, allow_nan=False))
            os.replace(tmp, self.path)
            return doc

    def _read_lost(self) -> None:
        if time.monotonic() - self._lost_at < self.lost_every:
            return
        self._lost_at = time.monotonic()
        try:
            lost = data_loss.lost_offsets(self.s)
        except Exception as e:     # a table being written: keep the last counts, say why
            self._lost_error = f"ops.lost_offsets: {type(e).__name__}: {e}"
            return
        self._lost = [[t, int(p), int(n)] for (t, p), n in sorted(lost.items())]
        self._lost_error = None


def _finite(v):
    return v if v is not None and math.isfinite(v) else None
