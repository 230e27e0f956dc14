"""The champions a worker serves, swapped without stopping a request in flight.

`ModelCache.get()` stats the registry's state.json (at most every `stat_every`, 50 ms) and, when the watcher rewrote it, loads
a new champion's LiteRT artefact before swapping the reference; a request holds the `Served` it
got, so a swap never fails it. Without a watcher (the Flask test client) it asks MLflow itself
every `serve_reload_seconds`.
"""
from __future__ import annotations

import functools
import logging
import operator
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from serving import metrics
from serving import registry
from tickcast.litert import LiteModel

log = logging.getLogger("tickcast.serving.models")


@dataclass(frozen=True)
class Served:
    horizon: int
    name: str
    version: str
    model: LiteModel

    def __post_init__(self):     # once per champion, not per request: names, headers, the metric's child
        feats = self.model.features
        get = operator.itemgetter(*feats)
        setattr_ = functools.partial(object.__setattr__, self)
        setattr_("features", feats)
        setattr_("feature_set", frozenset(feats))
        setattr_("row_values", get if len(feats) > 1 else (lambda row: (get(row),)))
        setattr_("feature_version", self.model.meta["feature_version"])
        setattr_("headers", (("X-Model-Version", self.version), ("X-Model-Name", self.name)))
        setattr_("predictions", metrics.PREDICTIONS.labels(self.name, self.version))


@dataclass(frozen=True)
class Snapshot:
    """What one state.json said, with the loaded champions."""
    state: dict | None
    served: dict[int, Served]
    errors: dict[int, str]           # horizons registered but not servable, with the reason

    def horizons(self) -> list[int]:
        return sorted({*self.served, *self.errors})


class ModelCache:
    def __init__(self, folder: Path, reload_seconds: float, sync=None, stat_every: float = 0.0):
        """`sync`: a callable that refreshes state.json in this process (no watcher), or None.
        `stat_every`: look at state.json at most this often (a stat is 2-8 µs, a request ~200)."""
        self.folder, self.reload_seconds, self._sync = Path(folder), reload_seconds, sync
        self.stat_every, self._statted = stat_every, -1e18
        self._snap = Snapshot(None, {}, {})
        self._mtime = -1
        self._checked = -1e18
        self._lock = threading.Lock()
        self.sync_error: str | None = None
        self._state_path = self.folder / registry.STATE

    def get(self) -> Snapshot:
        if self._sync is not None:
            if time.monotonic() - self._checked >= self.reload_seconds:
                self.refresh()
        else:
            now = time.monotonic()
            if now - self._statted < self.stat_every:
                return self._snap
            self._statted = now
            try:
                mtime = os.stat(self._state_path).st_mtime_ns
            except FileNotFoundError:
                mtime = 0
            if mtime != self._mtime:
                self.refresh()
        return self._snap

    def refresh(self, force_sync: bool = False) -> Snapshot:
        """Read state.json (after a sync in this process, if it has no watcher) and load what changed."""
        with self._lock:
            if self._sync is not None and (force_sync or time.monotonic() - self._checked >= self.reload_seconds):
                try:
                    self._sync()
                    self.sync_error = None
                except Exception as e:       # keep the loaded champions; /ready says why
                    self.sync_error = f"registry: {type(e).__name__}: {e}"
                    log.error("%s", self.sync_error)
            self._checked = time.monotonic()
            state, mtime = registry.read_state(self.folder)
            if state is None:
                self._mtime = 0
                return self._snap
            if mtime == self._mtime:
                return self._snap
            self._mtime = mtime
            old = self._snap.served
            served, errors = {}, {}
            for h, m in state["models"].items():
                h = int(h)
                champ = m.get("champion")
                prev = old.get(h)
                if champ and m.get("folder"):
                    if prev is not None and prev.version == champ["version"]:
                        served[h] = prev
                        continue
                    t0 = time.perf_counter()
                    try:
                        model = LiteModel.open(Path(m["folder"]), m["name"], champ["version"])
                    except Exception as e:
                        metrics.MODEL_LOAD_FAILURES.labels(m["name"]).inc()
                        errors[h] = f"{m['name']} v{champ['version']} failed to load: {type(e).__name__}: {e}"
                        if prev is not None:       # keep answering with the previous champion
                            served[h] = prev
                        continue
                    metrics.MODEL_LOAD_SECONDS.labels(m["name"]).observe(time.perf_counter() - t0)
                    served[h] = Served(h, m["name"], champ["version"], model)
                    log.info("serving %s v%s", m["name"], champ["version"])
                else:
                    if m.get("error"):
                        errors[h] = m["error"]
                    if m.get("error") and champ:           # champion exists but cannot be loaded
                        metrics.MODEL_LOAD_FAILURES.labels(m["name"]).inc()
                        if prev is not None:
                            served[h] = prev
            self._snap = Snapshot(state, served, errors)
            return self._snap
