"""The dashboard's reads: Delta tables through delta-rs (no JVM), kept up to date incrementally.

One `TableCache` per table and process holds the columns the pages need. A refresh asks the
table's log for new versions (`update_incremental`); when only files were added (appends, the
live pipeline's way) it reads just those files; when any file was removed (OPTIMIZE, VACUUM of a
rewrite, a MERGE that rewrote files) it reloads the table. Either way the held rows are what a
full read of the same columns (and filter) would give. Delta's per-file statistics prune files
on a time bound: a table kept for a span (`keep_ms`) never reads files wholly older than that.

MLflow metadata (`Models`) is read in a background thread with a deadline, so an unreachable
tracking server shows as a message, never as a page that hangs.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import pandas as pd

from tickcast import lake, tables
from tickcast.settings import Settings
from tickcast.tables import Table

log = logging.getLogger("tickcast.dashboard")

MINUTE_MS = 60_000
DAY_MS = 86_400_000
# Concatenated appends leave one chunk per refresh; past this many, one contiguous copy keeps
# compute kernels fast.
MAX_CHUNKS = 64


@dataclass(frozen=True)
class Spec:
    """What a cache holds of a table: columns, an optional row filter and time span."""

    table: Table
    columns: tuple[str, ...]
    time_col: str | None = None          # the column `keep_ms` is measured on (and files are pruned by)
    keep_ms: int | None = None           # keep rows newer than (newest - keep_ms); None = all rows
    where: Callable | None = None        # () -> pyarrow.dataset expression: rows kept


def _float_decimals(t):
    """Decimal columns as float64: the figures plot doubles, and kernels on doubles are fast."""
    import pyarrow as pa

    for i, f in enumerate(t.schema):
        if pa.types.is_decimal(f.type):
            t = t.set_column(i, f.name, t.column(i).cast(pa.float64()))
    return t


@dataclass
class TableCache:
    """One table's selected columns (and filter), brought up to date by `refresh()`.

    Attributes after a refresh: `data` (pyarrow Table), `version` (None: no table yet), `files`
    (the live add actions: path, modification_time, num_records and min/max of `time_col`),
    `last_read` (the file paths the last refresh read), `full_loads` (how many full reads).
    """

    spec: Spec
    settings: Settings
    version: int | None = None
    data: object = None
    files: pd.DataFrame | None = None
    last_read: list[str] = field(default_factory=list)
    full_loads: int = 0
    error: str | None = None
    incremental: bool = True             # False: a full scan at every refresh (the benchmark's reference)
    _dt: object = None
    _paths: frozenset = frozenset()
    _fs: object = None
    _format: object = None
    _schema: object = None
    _delta_schema: object = None
    _frame: pd.DataFrame | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def uri(self) -> str:
        return lake.uri(self.spec.table, self.settings)

    def refresh(self) -> int | None:
        """Bring the cache up to the table's newest version; returns that version (None: no table).

        A failed read (a table being created, an object store hiccup) keeps the previous rows and
        sets `error`; the next refresh tries again.
        """
        with self._lock:
            try:
                self._refresh()
                self.error = None
            except Exception as e:  # shown in the page; never a crashed callback
                log.warning("%s: refresh failed: %s", self.spec.table.name, e)
                self.error = f"{type(e).__name__}: {e}"
            return self.version

    def _refresh(self) -> None:
        from deltalake import DeltaTable

        self.last_read = []
        if not self.incremental:
            self._dt = None
        if self._dt is None:
            if not DeltaTable.is_deltatable(self.uri):
                return
            self._dt = DeltaTable(self.uri)
            self._full_load()
            return
        if not self._next_commit_exists():
            return
        self._dt.update_incremental()
        if self._dt.version() == self.version:
            return
        adds = self._add_actions()
        paths = frozenset(adds["path"])
        if not self._paths <= paths or self._dt.schema().to_arrow() != self._delta_schema:
            self._full_load(adds)
            return
        new = sorted(paths - self._paths)
        rows = self._read(new) if new else None
        self._paths, self.files, self.version = paths, adds, self._dt.version()
        if rows is not None and rows.num_rows:
            import pyarrow as pa

            merged = pa.concat_tables([self.data, rows])
            if merged.column(0).num_chunks > MAX_CHUNKS:
                merged = merged.combine_chunks()
            self.data = self._trim(merged)
            self._frame = None

    def _next_commit_exists(self) -> bool:
        """One stat of the next commit file (a HEAD on an object store) instead of listing the log."""
        import pyarrow.fs as pfs

        try:
            info = self._fs.get_file_info(f"_delta_log/{self.version + 1:020d}.json")
        except Exception:   # a store that cannot answer a stat: let delta-rs list the log
            return True
        return info.type != pfs.FileType.NotFound

    def _add_actions(self) -> pd.DataFrame:
        import pyarrow as pa

        t = pa.table(self._dt.get_add_actions(flatten=True))
        keep = ["path", "modification_time", "num_records"]
        tc = self.spec.time_col
        if tc:
            keep += [c for c in (f"min.{tc}", f"max.{tc}") if c in t.column_names]
        df = t.select(keep).to_pandas()
        df["modification_time"] = pd.to_datetime(df["modification_time"], unit="ms", utc=True)
        return df

    def _full_load(self, adds: pd.DataFrame | None = None) -> None:
        import pyarrow.dataset as pds

        ds = self._dt.to_pyarrow_dataset()
        self._fs, self._format, self._schema = ds.filesystem, ds.format, ds.schema
        self._delta_schema = self._dt.schema().to_arrow()
        adds = self._add_actions() if adds is None else adds
        paths = list(adds["path"])
        bound = self._bound(adds)
        if bound is not None and f"max.{self.spec.time_col}" in adds:
            newest = adds[f"max.{self.spec.time_col}"]
            # Files whose newest row is older than the bound hold nothing to keep (NULL stats: read).
            paths = list(adds.loc[newest.isna() | (newest >= bound), "path"])
        wanted = set(paths)
        frags = [f for f in ds.get_fragments() if f.path in wanted] if len(paths) < len(adds) else None
        sub = ds if frags is None else pds.FileSystemDataset(frags, ds.schema, ds.format, ds.filesystem)
        self.data = self._trim(self._scan(sub))
        self._paths, self.files, self.version = frozenset(adds["path"]), adds, self._dt.version()
        self.last_read = paths
        self.full_loads += 1
        self._frame = None

    def _bound(self, adds: pd.DataFrame):
        tc, keep = self.spec.time_col, self.spec.keep_ms
        col = f"max.{tc}" if tc else None
        if keep is None or col not in adds or adds[col].isna().all():
            return None
        return adds[col].max() - pd.Timedelta(milliseconds=keep)

    def _read(self, paths: list[str]):
        import pyarrow.dataset as pds

        self.last_read = list(paths)
        return self._scan(pds.dataset(paths, schema=self._schema, format=self._format, filesystem=self._fs))

    def _scan(self, ds):
        where = self.spec.where() if self.spec.where else None
        return _float_decimals(ds.to_table(columns=list(self.spec.columns), filter=where))

    def _trim(self, t):
        """Rows older than (newest - keep_ms) dropped, as a full read with that bound would."""
        import pyarrow.compute as pc

        tc, keep = self.spec.time_col, self.spec.keep_ms
        if keep is None or tc is None or t.num_rows == 0:
            return t
        hi = pc.max(t[tc])
        lo = pc.subtract(hi, pd.Timedelta(milliseconds=keep).to_pytimedelta())
        return t.filter(pc.greater_equal(t[tc], lo))

    def rows(self, where=None, columns: list[str] | None = None) -> pd.DataFrame:
        """Held rows matching a pyarrow expression, as pandas (filtered in Arrow: only they convert)."""
        t = self.data
        cols = list(columns or self.spec.columns)
        if t is None:
            return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
        if where is not None:
            t = t.filter(where)
        return t.select(cols).to_pandas()

    def unique(self, col: str) -> list:
        import pyarrow.compute as pc

        return [] if self.data is None else sorted(v for v in pc.unique(self.data[col]).to_pylist() if v is not None)

    def max(self, col: str, where=None):
        """The column's max over the held rows (matching `where`) as pandas' scalar; None if none."""
        import pyarrow.compute as pc

        t = self.data
        if t is None:
            return None
        if where is not None:
            t = t.filter(where)
        v = pc.max(t[col]).as_py() if t.num_rows else None
        return None if v is None else (pd.Timestamp(v) if hasattr(v, "tzinfo") else v)

    def frame(self) -> pd.DataFrame:
        """The held rows as pandas (built once per version). Empty with the spec's columns if no table."""
        with self._lock:
            if self._frame is None:
                if self.data is None:
                    self._frame = pd.DataFrame({c: pd.Series(dtype="object") for c in self.spec.columns})
                else:
                    self._frame = self.data.to_pandas()
            return self._frame


def full_read(spec: Spec, s: Settings):
    """What a cache of `spec` must hold: a full read with the same columns, filter and span."""
    import pyarrow.compute as pc
    from deltalake import DeltaTable

    ds = DeltaTable(lake.uri(spec.table, s)).to_pyarrow_dataset()
    t = _float_decimals(ds.to_table(columns=list(spec.columns), filter=spec.where() if spec.where else None))
    if spec.keep_ms is not None and spec.time_col and t.num_rows:
        hi = pc.max(t[spec.time_col])
        t = t.filter(pc.greater_equal(t[spec.time_col],
                                      pc.subtract(hi, pd.Timedelta(milliseconds=spec.keep_ms).to_pytimedelta())))
    return t


def _gapfill():
    import pyarrow.dataset as pds

    return pds.field("source") == "gapfill"


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
    "progress": Spec(tables.STREAM_PROGRESS, ("query_name", "timestamp", "num_input_rows", "input_rows_per_second",
                                              "processed_rows_per_second", "batch_duration_ms", "lag",
                                              "rows_dropped_by_watermark"), "timestamp", keep_ms=8 * DAY_MS),
    "quarantine": Spec(tables.QUARANTINE, ("reason", "raw_value", "source", "kafka_partition", "kafka_offset",
                                           "ingest_time"), "ingest_time"),
    "late_bars": Spec(tables.LATE_BARS, ("query_name", "symbol", "window_start", "noticed_at"), "window_start"),
    "gapfill": Spec(tables.TICKS, ("symbol", "trade_time", "source"), "trade_time", where=_gapfill),
}


class Lake:
    """The process's caches, one per table the pages read; `refresh(names)` returns their versions."""

    def __init__(self, s: Settings, specs: dict[str, Spec] | None = None, full_scan: bool = False):
        self.settings = s
        self.caches = {k: TableCache(v, s, incremental=not full_scan) for k, v in (specs or SPECS).items()}

    def refresh(self, *names: str) -> tuple:
        """Refresh the named caches; a tuple of their versions (compare to skip unchanged work)."""
        return tuple(self.caches[n].refresh() for n in names)

    def frame(self, name: str) -> pd.DataFrame:
        return self.caches[name].frame()

    def __getitem__(self, name: str) -> TableCache:
        return self.caches[name]

    def errors(self, *names: str) -> list[str]:
        return [f"{self.caches[n].spec.table.name}: {self.caches[n].error}" for n in names if self.caches[n].error]


def newest_source(s: Settings) -> str | None:
    """The `tickcast-source` of the newest bronze.ticks file's rows (live, gapfill, replay, simulate)."""
    from deltalake import DeltaTable
    import pyarrow as pa
    import pyarrow.dataset as pds

    uri = lake.uri(tables.TICKS, s)
    if not DeltaTable.is_deltatable(uri):
        return None
    dt = DeltaTable(uri)
    adds = pa.table(dt.get_add_actions(flatten=True)).select(["path", "modification_time"]).to_pandas()
    if adds.empty:
        return None
    ds = dt.to_pyarrow_dataset()
    newest = adds.sort_values("modification_time")["path"].iloc[-1]
    frags = [f for f in ds.get_fragments() if f.path == newest]
    t = pds.FileSystemDataset(frags, ds.schema, ds.format, ds.filesystem).to_table(columns=["source"])
    vals = [v for v in t["source"].to_pylist() if v]
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
        from tickcast import model_io

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
