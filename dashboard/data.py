"""The dashboard's reads: Delta tables through delta-rs (no JVM), kept up to date incrementally.

One `TableCache` (table_cache.py) per table and process holds the columns the pages need (`SPECS`);
`Lake` refreshes them together. When only files were added (appends, the live pipeline's way) a
refresh reads just those files; when any file was removed (OPTIMIZE, VACUUM of a rewrite, a MERGE
that rewrote files) it reloads the table. Either way the held rows are what a full read of the
same columns (and filter) would give.

MLflow metadata (`Models`) is read in a background thread with a deadline, so an unreachable
tracking server shows as a message, never as a page that hangs.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pandas as pd
import pyarrow as pa
from deltalake import DeltaTable

from dashboard.table_cache import FileReader, Spec, TableCache
from tickcast import lake, tables
from tickcast.settings import Settings
from tickcast.timeunits import DAY_MS

log = logging.getLogger("tickcast.dashboard")

NEWEST = 0                   # a span that holds only the newest rows (callers that need file metadata)

# What the pages read. Stream progress can grow by a row a second per query: kept for 8 days.
SPECS: dict[str, Spec] = {
    "bars": Spec(tables.BARS, ("symbol", "window_start", "open", "high", "low", "close", "volume", "trade_count",
                               "source", "is_complete"), "window_start"),
    "features": Spec(tables.FEATURES, ("symbol", "window_start"), "window_start"),
    "predictions": Spec(tables.PREDICTIONS, ("symbol", "window_start", "horizon", "model_name", "model_version",
                                             "prob_up", "prediction_time"), "window_start"),
    "outcomes": Spec(tables.OUTCOMES, ("symbol", "window_start", "target_time", "horizon", "model_name",
                                       "model_version", "prob_up", "realized_return", "hit", "climatology_prob_up",
                                       "momentum_prob_up", "climatology_hit", "momentum_hit",
                                       "after_training_end", "made_before_outcome"), "target_time"),
    "scores": Spec(tables.MODEL_SCORES, ("computed_at", "model_name", "model_version", "horizon", "symbol", "window",
                                         "n", "brier", "accuracy", "climatology_brier", "momentum_brier",
                                         "climatology_accuracy", "momentum_accuracy"), "computed_at"),
    "drift": Spec(tables.DRIFT, ("computed_at", "batch_id", "model_name", "model_version", "feature", "n", "psi",
                                 "ks", "drifted"), "computed_at"),
    "model_events": Spec(tables.MODEL_EVENTS, ("event_time", "horizon", "model_name", "model_version", "event",
                                               "reason", "numbers", "source"), "event_time"),
    "progress": Spec(tables.STREAM_PROGRESS, ("query_name", "run_id", "timestamp", "num_input_rows", "input_rows_per_second",
                                              "processed_rows_per_second", "batch_duration_ms", "lag",
                                              "rows_dropped_by_watermark"), "timestamp", keep_ms=8 * DAY_MS),
    "quarantine": Spec(tables.QUARANTINE, ("reason", "raw_value", "source", "kafka_partition", "kafka_offset",
                                           "ingest_time"), "ingest_time"),
    "late_bars": Spec(tables.LATE_BARS, ("query_name", "symbol", "window_start", "noticed_at"), "window_start"),
    "gapfill": Spec(tables.TICKS, ("symbol", "trade_time", "source"), "trade_time", where=("source", "gapfill")),
}


class Lake:
    """The process's caches, one per table the pages read; `refresh(names)` returns their versions."""

    def __init__(self, s: Settings, specs: dict[str, Spec] | None = None, full_scan: bool = False):
        self.settings = s
        self.caches = {k: TableCache(v, s, incremental=not full_scan, cache_dir=s.dashboard_cache_dir)
                       for k, v in (specs or SPECS).items()}
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="dashboard-lake")

    def refresh(self, *names: str, span_ms: int | None = None) -> tuple:
        """Refresh the named caches (holding at least `span_ms` back from each table's newest time;
        None: every row); a tuple of their versions (compare to skip unchanged work).

        Several caches refresh at once: delta-rs opens logs and reads files without the GIL, so a
        page's first load waits for its slowest table, not for their sum.
        """
        return tuple(self.refresh_spans(dict.fromkeys(names, span_ms)).values())

    def refresh_spans(self, spans: dict[str, int | None]) -> dict[str, int | None]:
        """`refresh` of several caches at once, each with its own span; their versions by name."""
        names = list(spans)
        if len(names) == 1:
            return {names[0]: self.caches[names[0]].refresh(spans[names[0]])}
        return dict(zip(names, self._pool.map(lambda n: self.caches[n].refresh(spans[n]), names)))

    def frame(self, name: str) -> pd.DataFrame:
        return self.caches[name].frame()

    def save(self) -> list[str]:
        """Save every cache that changed since its last save (snapshot.py); the names saved."""
        saved = []
        for name, cache in self.caches.items():
            try:
                if cache.save():
                    saved.append(name)
            except Exception as e:   # a full disk, a table being re-created: the next save tries again
                log.warning("%s: cache not saved: %s", cache.spec.table.name, e)
        return saved

    def __getitem__(self, name: str) -> TableCache:
        return self.caches[name]

    def errors(self, *names: str) -> list[str]:
        return [f"{self.caches[n].spec.table.name}: {self.caches[n].error}" for n in names if self.caches[n].error]


def newest_source(s: Settings) -> str | None:
    """The `tickcast-source` of the newest bronze.ticks file's rows (live, gapfill, replay, simulate).

    Reads one column of one file: the ticks table is the largest, and only its newest file matters.
    """

    uri = lake.uri(tables.TICKS, s)
    if not DeltaTable.is_deltatable(uri):
        return None
    dt = DeltaTable(uri)
    adds = pa.table(dt.get_add_actions(flatten=True)).select(["path", "modification_time"]).to_pandas()
    if adds.empty:
        return None
    newest = adds.sort_values("modification_time")["path"].iloc[-1]
    vals = [v for v in FileReader(pa.schema(dt.schema().to_arrow()), uri).read([newest], ["source"])["source"].to_pylist()
            if v]
    return max(set(vals), key=vals.count) if vals else None


# ---------------------------------------------------------------- MLflow metadata

@dataclass
class ModelInfo:
    """What the pages show of one horizon's registered model."""

    horizon: int
    name: str
    versions: list[dict]                 # model_io.versions rows (newest first) + gate_reason, report_md
    champion: str | None
    error: str | None = None             # MLflow unreachable / no registered model, in words


class Models:
    """MLflow metadata per horizon, re-read at most every `ttl` seconds, in a thread with a deadline."""

    def __init__(self, s: Settings, ttl: float = 30.0, deadline: float = 3.0):
        self.s, self.ttl, self.deadline = s, ttl, deadline
        self._at = 0.0
        self._info: dict[int, ModelInfo] | None = None
        self._error: str | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._reports: dict[str, str] = {}   # run id -> walk-forward report (markdown); immutable

    @property
    def loaded_at(self) -> float:
        """When the metadata held was read (changes when a re-read finishes)."""
        return self._at

    def get(self, wait: float | None = None) -> tuple[dict[int, ModelInfo] | None, str | None]:
        """(info per horizon or None, error or None). Starts a background read when stale and waits
        at most `wait` seconds (default: the deadline) for it."""
        with self._lock:
            stale = time.monotonic() - self._at > self.ttl
            if stale and (self._thread is None or not self._thread.is_alive()):
                self._thread = threading.Thread(target=self._load, daemon=True, name="dashboard-mlflow")
                self._started = time.monotonic()
                self._thread.start()
            t = self._thread
        if t is not None and t.is_alive() and self._info is None:
            left = max(0.0, self.deadline - (time.monotonic() - self._started))
            t.join(left if wait is None else wait)
            if t.is_alive() and self._info is None:
                if time.monotonic() - self._started < self.deadline - 0.05:
                    return None, None            # still loading
                return None, (f"MLflow at {self.s.mlflow_uri} did not answer within {self.deadline:g} s "
                              "(unreachable?); model metadata will appear when it does")
        return self._info, self._error

    def _load(self) -> None:
        try:
            info = self._read()
            self._info, self._error = info, None
        except Exception as e:
            log.warning("mlflow: %s", e)
            self._error = f"MLflow at {self.s.mlflow_uri} failed: {type(e).__name__}: {str(e)[:300]}"
        finally:
            self._at = time.monotonic()

    def _read(self) -> dict[int, ModelInfo]:
        from tickcast import model_io  # deferred: heavy (imports mlflow)

        # The deadline is for the tracking server, not for importing its client: on a machine busy
        # starting the whole stack the import alone took over 3 s, and the header said "unreachable".
        self._started = time.monotonic()
        client = model_io.configure(self.s)
        out = {}
        for h in self.s.horizons:
            name = model_io.model_name(h)
            vs = model_io.versions(client, name)
            for v in vs:
                tags = client.get_model_version(name, v["version"]).tags or {}
                v["gate_reason"] = tags.get("gate_reason", "")
                v["champion_reason"] = tags.get("champion_reason", "")
                v["family"] = tags.get("family", "")
                # Training logs the walk-forward report in its parent run, named by the version's tag.
                v["report_md"] = self._report(tags.get("run_id") or v.get("run_id"))
            champ = next((v["version"] for v in vs if model_io.CHAMPION in v["aliases"]), None)
            out[h] = ModelInfo(h, name, vs, champ, None if vs else f"no registered model {name}: run `tickcast train`")
        return out

    def _report(self, run_id: str | None) -> str:
        if not run_id:
            return ""
        if run_id not in self._reports:
            import mlflow

            try:
                self._reports[run_id] = mlflow.artifacts.load_text(f"runs:/{run_id}/evaluation/report.md")
            except Exception as e:   # an older run without the report
                self._reports[run_id] = f"(no walk-forward report: {type(e).__name__})"
        return self._reports[run_id]
