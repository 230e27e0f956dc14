"""One Delta table's selected columns held in memory and kept current (`TableCache`), through the
core's incremental reader (`tickcast.lake.follow`): new files read alone, a reload after removes.

Delta's per-file statistics prune files on a time bound: a table kept for a span (`keep_ms`) never
reads files wholly older than that. A cache can be saved and restored across restarts (snapshot.py).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pds
from deltalake import DeltaTable, QueryBuilder

from dashboard import snapshot
from tickcast import lake
from tickcast.lake import follow
from tickcast.settings import Settings
from tickcast.tables import Table

log = logging.getLogger("tickcast.dashboard")

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

    The file system is `tickcast.lake.follow.filesystem`'s.
    """

    def __init__(self, schema: pa.Schema, uri: str):
        self.schema = schema
        self.format = pds.ParquetFileFormat(
            default_fragment_scan_options=pds.ParquetFragmentScanOptions(pre_buffer=True))
        self.fs = follow.filesystem(uri)

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
    _follower: follow.Follower | None = None
    _files: FileReader | None = None
    _schema: object = None
    _frame: pd.DataFrame | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def uri(self) -> str:
        return lake.uri(self.spec.table, self.settings)

    @property
    def follower(self) -> follow.Follower:
        """The table's incremental reader (the version and live files this cache holds)."""
        if self._follower is None:
            tc = self.spec.time_col
            self._follower = follow.Follower(self.uri, stats=(tc,) if tc else ())
        return self._follower

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
            self.follower.forget()
            span_ms = None
        if self.follower.version is None:
            restored = self.incremental and self.cache_dir and self.files is None and self._restore()
            if not restored:
                if not self.follower.exists():
                    return
                self._full_load(self.follower.poll(), span_ms=span_ms)
                return
        self._update()
        self._extend(span_ms)

    def _update(self) -> None:
        """The commits since the cached version: new files read alone, or a reload after removes."""
        change = self.follower.poll()
        if change is None:
            return
        added = _files_frame(change.added)
        if change.live is None:          # plain appends, read from the log
            if self.files is not None:
                added = added.astype({c: self.files[c].dtype for c in added.columns if c in self.files}, copy=False)
            paths = sorted(added["path"])
            rows = self._read(paths) if paths else None      # a commit may add nothing (a txn only)
            self.version = change.version
            self.files = pd.concat([self.files, added], ignore_index=True)
            self._add_rows(rows)
            return
        if change.reread or pa.schema(self.follower.table().schema().to_arrow()) != self._schema:
            self._full_load(change, lower=self.lower, everything=self.lower is None)
            return
        new = sorted(added["path"])
        rows = self._read(new) if new else None
        self.files, self.version = _files_frame(change.live), change.version
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

    def _restore(self) -> bool:
        """Take the rows saved by an earlier process (snapshot.py) if they are of this very table:
        the commit they were read at must still be the same bytes. True if taken."""
        snap = snapshot.load(self.cache_dir, snapshot.key(self.uri, self.spec))
        if snap is None:
            return False
        try:
            if snapshot.commit_sha(self.follower.commit_bytes(snap.version)) != snap.commit_sha:
                return False
        except Exception:   # the commit is gone (the table re-created, its log cleaned): read the table
            return False
        self._files, self._schema = FileReader(snap.schema, self.uri), snap.schema
        self.files, self.version = snap.files, snap.version
        self.follower.seen(snap.version, snap.files["path"])
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
        sha = snapshot.commit_sha(self.follower.commit_bytes(version))
        snapshot.save(self.cache_dir, snapshot.key(self.uri, self.spec),
                      snapshot.Snapshot(version, sha, *snap[1:]))
        self._saved = version
        return True

    def _full_load(self, change: follow.Change, span_ms: int | None = None,
                   lower=None, everything: bool = False) -> None:
        """The live files' rows from `lower` on (or from the table's newest time minus `span_ms`),
        read by delta-rs's own engine.

        DataFusion reads the files in parallel in Rust and prunes them by their statistics: a week
        of 561 small files takes ~0.2 s, where building a pyarrow dataset of them alone takes
        ~0.6 s (docs/dashboard.md).
        """
        self._open_files()
        adds = _files_frame(change.live)
        self.files, self.version = adds, change.version
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
        dt = self.follower.table()       # at the cached version (appends read from the log leave it behind)
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
        self._schema = pa.schema(self.follower.table().schema().to_arrow())
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


def _files_frame(adds) -> pd.DataFrame:
    """Add rows (`follow.live_files` shape) as the pandas frame `TableCache.files` holds."""
    df = adds.to_pandas()
    df["modification_time"] = pd.to_datetime(df["modification_time"], unit="ms", utc=True)
    return df


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
