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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
import pyarrow.fs as pfs
from deltalake import DeltaTable, QueryBuilder
from deltalake.fs import DeltaStorageHandler

from dashboard import delta_log, snapshot
from tickcast import lake, tables
from tickcast.settings import Settings
from tickcast.tables import Table

log = logging.getLogger("tickcast.dashboard")

MINUTE_MS = 60_000
DAY_MS = 86_400_000
NEWEST = 0                   # a span that holds only the newest rows (callers that need file metadata)
# A first read of many small files waits on opening them, not on the 2 cores: more partitions than
# cores keep more opens in flight (a week of 561 files: 145 ms against 200-256 ms with the default).
DATAFUSION = {"datafusion.execution.target_partitions": "8"}
FEW_FILES = 32               # up to this many files a first read opens them directly (pyarrow)
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
    where: tuple[str, str] | None = None  # (column, value): only rows where column == value are kept

    def expression(self):
        """`where` as a pyarrow expression (None: every row)."""

        return None if self.where is None else pds.field(self.where[0]) == self.where[1]

    def sql(self, lo_us: int | None = None, hi_us: int | None = None) -> str:
        """The delta-rs (DataFusion) query of a load: the columns, `where`, and optional time bounds
        `lo_us <= time_col < hi_us` in epoch microseconds (they prune files by their statistics)."""
        conds = []
        if self.where is not None:
            col, value = self.where
            conds.append(f""""{col}" = '{value.replace("'", "''")}'""")
        if lo_us is not None:
            conds.append(f'"{self.time_col}" >= to_timestamp_micros({int(lo_us)})')
        if hi_us is not None:
            conds.append(f'"{self.time_col}" < to_timestamp_micros({int(hi_us)})')
        cols = ", ".join(f'"{c}"' for c in self.columns)
        return f"SELECT {cols} FROM t" + (" WHERE " + " AND ".join(conds) if conds else "")


def _float_decimals(t):
    """Decimal columns as float64: the figures plot doubles, and kernels on doubles are fast."""

    for i, f in enumerate(t.schema):
        if pa.types.is_decimal(f.type):
            t = t.set_column(i, f.name, t.column(i).cast(pa.float64()))
    return t


class FileReader:
    """Reads chosen data files of a Delta table (by their log paths) as pyarrow, in the table's schema.

    A local or standard object-store URI gets pyarrow's native file system; anything else
    delta-rs's own storage handler (slower: it calls back into Python).
    """

    def __init__(self, schema: pa.Schema, uri: str):
        self.schema = schema
        self.format = pds.ParquetFileFormat(
            default_fragment_scan_options=pds.ParquetFragmentScanOptions(pre_buffer=True))
        try:
            raw, root = pfs.FileSystem.from_uri(uri)
            self.fs = pfs.SubTreeFileSystem(root, raw)
        except Exception:
            self.fs = pfs.PyFileSystem(DeltaStorageHandler(uri))

    def read(self, paths: list[str], columns: list[str], where=None):
        ds = pds.dataset(paths, schema=self.schema, format=self.format, filesystem=self.fs)
        return _float_decimals(ds.to_table(columns=columns, filter=where))


@dataclass
class TableCache:
    """One table's selected columns (and filter), brought up to date by `refresh()`.

    Attributes after a refresh: `data` (pyarrow Table), `version` (None: no table yet), `files`
    (the live add actions: path, modification_time, num_records and min/max of `time_col`),
    `last_read` (the file paths the last refresh read), `full_loads` (how many full reads),
    `restored` (the version taken from a saved cache in `cache_dir`, if one was; snapshot.py).
    """

    spec: Spec
    settings: Settings
    version: int | None = None
    data: object = None
    files: pd.DataFrame | None = None
    last_read: list[str] = field(default_factory=list)
    full_loads: int = 0
    lower: object = None                 # the oldest time held (pandas Timestamp); None: every row
    error: str | None = None
    incremental: bool = True             # False: a full scan at every refresh (the benchmark's reference)
    cache_dir: str = ""                  # where `save()` keeps the rows across restarts ("": nowhere)
    restored: int | None = None
    _saved: int | None = None            # the version last saved
    _dt: object = None
    _paths: frozenset = frozenset()
    _files: FileReader | None = None
    _schema: object = None
    _frame: pd.DataFrame | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def uri(self) -> str:
        return lake.uri(self.spec.table, self.settings)

    def refresh(self, span_ms: int | None = None) -> int | None:
        """Bring the cache up to the table's newest version; returns that version (None: no table).

        `span_ms`: the rows a caller needs, back from the table's newest time (by the files'
        statistics); None: every row. The cache reads no older rows than a caller asked for so far,
        so a first page that shows an hour reads an hour, and a wider range later reads only the
        rows it adds. A failed read (a table being created, an object store hiccup) keeps the
        previous rows and sets `error`; the next refresh tries again.
        """
        with self._lock:
            try:
                self._refresh(span_ms)
                self.error = None
            except Exception as e:  # shown in the page; never a crashed callback
                log.warning("%s: refresh failed: %s", self.spec.table.name, e)
                self.error = f"{type(e).__name__}: {e}"
            return self.version

    def _refresh(self, span_ms: int | None) -> None:
        self.last_read = []
        if not self.incremental:
            self._dt, span_ms = None, None
        if self._dt is None and (self.files is None or not self.incremental):
            if not (self.incremental and self.cache_dir and self._restore()):
                if not DeltaTable.is_deltatable(self.uri):
                    return
                self._dt = DeltaTable(self.uri)
                self._full_load(span_ms=span_ms)
                return
        if self._next_commit_exists():
            self._update()
        self._extend(span_ms)

    def _appended(self) -> tuple[int, pd.DataFrame] | None:
        """The next commits, from the log's JSON, when they only appended: (their last version,
        their add rows); None when any did more, or cannot be read (delta-rs answers then)."""
        version, parts = self.version, []
        while True:
            try:
                with self._files.fs.open_input_stream(delta_log.commit_path(version + 1)) as f:
                    text = f.read().decode()
            except FileNotFoundError:
                break
            except Exception:    # a store that cannot read it here: delta-rs
                return None
            adds = delta_log.appended_files(text, self.spec.time_col)
            if adds is None:
                return None
            parts.append(adds)
            version += 1
        if not parts:
            return None
        adds = pd.concat(parts, ignore_index=True)
        if self.files is not None:
            adds = adds.astype({c: self.files[c].dtype for c in adds.columns if c in self.files}, copy=False)
        return version, adds

    def _update(self) -> None:
        """The commits since the cached version: new files read alone, or a reload after removes."""
        appended = self._appended() if self.files is not None else None
        if appended is not None and not (paths := set(appended[1]["path"])) & self._paths:
            version, adds = appended
            rows = self._read(sorted(paths)) if paths else None      # a commit may add nothing (a txn only)
            self._paths, self.version = self._paths | paths, version
            self.files = pd.concat([self.files, adds], ignore_index=True)
            self._add_rows(rows)
            return
        dt = self._table()
        dt.update_incremental()
        if dt.version() == self.version:
            return
        adds = self._add_actions()
        paths = frozenset(adds["path"])
        if not self._paths <= paths or pa.schema(dt.schema().to_arrow()) != self._schema:
            self._full_load(adds, lower=self.lower, everything=self.lower is None)
            return
        new = sorted(paths - self._paths)
        rows = self._read(new) if new else None
        self._paths, self.files, self.version = paths, adds, dt.version()
        self._add_rows(rows)

    def _add_rows(self, rows) -> None:
        """New files' rows (from `lower` on) appended to the held ones."""
        if rows is not None and self.lower is not None and rows.num_rows:
            rows = rows.filter(pc.greater_equal(rows[self.spec.time_col], self.lower.to_pydatetime()))
        if rows is not None and rows.num_rows:
            merged = pa.concat_tables([self.data, rows])
            if merged.column(0).num_chunks > MAX_CHUNKS:
                merged = merged.combine_chunks()
            self._set(merged)

    def _extend(self, span_ms: int | None) -> None:
        """Older rows read when a caller needs more than the cache holds (`lower` moves back)."""
        if self.lower is None or self.data is None:
            return
        want = self._lower(self.files, span_ms)
        if want is not None and want >= self.lower:
            return

        older = self._query(want, self.lower)
        self.last_read = ["(older rows)"]
        self.lower = want
        self._set(pa.concat_tables([older, self.data]) if older.num_rows else self.data)

    def _next_commit_exists(self) -> bool:
        """One stat of the next commit file (a HEAD on an object store) instead of listing the log."""

        try:
            info = self._files.fs.get_file_info(f"_delta_log/{self.version + 1:020d}.json")
        except Exception:   # a store that cannot answer a stat: let delta-rs list the log
            return True
        return info.type != pfs.FileType.NotFound

    def _table(self):
        """delta-rs's table, opened on first need (a cache restored from disk may never need it)."""
        if self._dt is None:
            self._dt = DeltaTable(self.uri)
        return self._dt

    def _restore(self) -> bool:
        """Take the rows saved by an earlier process (snapshot.py) if they are of this very table:
        the commit they were read at must still be the same bytes. True if taken."""
        snap = snapshot.load(self.cache_dir, snapshot.key(self.uri, self.spec))
        if snap is None:
            return False
        files = FileReader(snap.schema, self.uri)
        try:
            with files.fs.open_input_stream(delta_log.commit_path(snap.version)) as f:
                if snapshot.commit_sha(f.read()) != snap.commit_sha:
                    return False
        except Exception:   # the commit is gone (the table re-created, its log cleaned): read the table
            return False
        self._files, self._schema = files, snap.schema
        self.files, self.version, self._paths = snap.files, snap.version, frozenset(snap.files["path"])
        self.lower, self.restored, self._saved = snap.lower, snap.version, snap.version
        self._set(snap.data)
        return True

    def save(self) -> bool:
        """Write the held rows to `cache_dir` if they changed since the last save (True if written)."""
        with self._lock:
            if not self.cache_dir or not self.incremental or self.data is None or self.version == self._saved:
                return False
            snap = (self.version, self.lower, self._schema, self.data, self.files)
        version = snap[0]
        with self._files.fs.open_input_stream(delta_log.commit_path(version)) as f:
            sha = snapshot.commit_sha(f.read())
        snapshot.save(self.cache_dir, snapshot.key(self.uri, self.spec),
                      snapshot.Snapshot(version, sha, *snap[1:]))
        self._saved = version
        return True

    def _add_actions(self) -> pd.DataFrame:
        t = pa.table(self._table().get_add_actions(flatten=True))
        keep = ["path", "modification_time", "num_records"]
        tc = self.spec.time_col
        if tc:
            keep += [c for c in (f"min.{tc}", f"max.{tc}") if c in t.column_names]
        df = t.select(keep).to_pandas()
        df["modification_time"] = pd.to_datetime(df["modification_time"], unit="ms", utc=True)
        return df

    def _full_load(self, adds: pd.DataFrame | None = None, span_ms: int | None = None,
                   lower=None, everything: bool = False) -> None:
        """The live files' rows from `lower` on (or from the table's newest time minus `span_ms`),
        read by delta-rs's own engine.

        DataFusion reads the files in parallel in Rust and prunes them by their statistics: a week
        of 561 small files takes ~0.2 s, where building a pyarrow dataset of them alone takes
        ~0.6 s (docs/dashboard.md).
        """
        self._open_files()
        adds = self._add_actions() if adds is None else adds
        self.files, self.version, self._paths = adds, self._table().version(), frozenset(adds["path"])
        self.lower = None if everything else (lower if lower is not None else self._lower(adds, span_ms))
        self._set(self._query(self.lower, None))
        tc = f"max.{self.spec.time_col}"
        self.last_read = list(adds["path"] if self.lower is None or tc not in adds
                              else adds.loc[adds[tc].isna() | (adds[tc] >= self.lower), "path"])
        self.full_loads += 1

    def _query(self, lo, hi):
        """Rows with lo <= time < hi (None: unbounded) through DataFusion, sorted by time."""

        def us(t):
            return None if t is None else t.value // 1_000

        tc = f"max.{self.spec.time_col}"
        if lo is not None and hi is None and self.files is not None and tc in self.files:
            # A narrow span (the header's, a freshness check's) needs a few files: reading them alone
            # skips DataFusion's planning over every file's statistics (~50 ms on a week of files).
            few = self.files.loc[self.files[tc].isna() | (self.files[tc] >= lo), "path"]
            if len(few) <= FEW_FILES:
                t = self._files.read(list(few), list(self.spec.columns), self.spec.expression())
                t = t.filter(pc.greater_equal(t[self.spec.time_col], lo.to_pydatetime()))
                return t.sort_by(self.spec.time_col) if t.num_rows else t
        dt = self._table()
        if dt.version() != self.version:   # appends were read from the log (_appended): catch up
            dt.load_as_version(self.version)
        reader = QueryBuilder(DATAFUSION).register("t", dt).execute(self.spec.sql(us(lo), us(hi)))
        t = pa.table(reader.read_all())
        # DataFusion answers in view types (string_view); the rest of the cache holds the table's own.
        t = _float_decimals(t.cast(pa.schema([self._schema.field(c) for c in t.column_names])))
        return t.sort_by(self.spec.time_col) if self.spec.time_col and t.num_rows else t

    def _set(self, t) -> None:
        self.data = self._trim(t)
        self._frame = None

    def _lower(self, adds: pd.DataFrame, span_ms: int | None):
        """The oldest time to hold: newest - span (and newest - keep_ms), by the files' statistics;
        None: every row (no span asked, or files without statistics)."""
        tc, keep = self.spec.time_col, self.spec.keep_ms
        col = f"max.{tc}" if tc else None
        if col is None or col not in adds or not len(adds) or adds[col].isna().any():
            return None
        spans = [ms for ms in (span_ms, keep) if ms is not None]
        return adds[col].max() - pd.Timedelta(milliseconds=min(spans)) if spans else None

    def _open_files(self) -> None:
        self._schema = pa.schema(self._table().schema().to_arrow())
        self._files = FileReader(self._schema, self.uri)

    def _read(self, paths: list[str]):
        """Rows of the given (new) files only."""
        self.last_read = list(paths)
        t = self._files.read(paths, list(self.spec.columns), self.spec.expression())
        return t.cast(self.data.schema) if self.data is not None and t.schema != self.data.schema else t

    def _trim(self, t):
        """Rows older than (newest - keep_ms) dropped, as a full read with that bound would."""

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
        return [] if self.data is None else sorted(v for v in pc.unique(self.data[col]).to_pylist() if v is not None)

    def max(self, col: str, where=None):
        """The column's max over the held rows (matching `where`) as pandas' scalar; None if none."""

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


def full_read(spec: Spec, s: Settings, lower=None):
    """What a cache of `spec` must hold: a full read with the same columns, filter and span (and
    rows from `lower` on, a cache's `lower`)."""

    ds = DeltaTable(lake.uri(spec.table, s)).to_pyarrow_dataset()
    t = _float_decimals(ds.to_table(columns=list(spec.columns), filter=spec.expression()))
    if spec.keep_ms is not None and spec.time_col and t.num_rows:
        hi = pc.max(t[spec.time_col])
        t = t.filter(pc.greater_equal(t[spec.time_col],
                                      pc.subtract(hi, pd.Timedelta(milliseconds=spec.keep_ms).to_pytimedelta())))
    if lower is not None and t.num_rows:
        t = t.filter(pc.greater_equal(t[spec.time_col], lower.to_pydatetime()))
    return t


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
    "progress": Spec(tables.STREAM_PROGRESS, ("query_name", "timestamp", "num_input_rows", "input_rows_per_second",
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
