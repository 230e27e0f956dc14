"""The one incremental reader of a Delta table (delta-rs, no JVM): what each new version added.

The service's watcher (`serving/latest.py`), the dashboard's caches (`dashboard/data.py`) and the
jobs' driver-side reads and appends (`table`, `query`) follow live tables that gain a commit a
second to a minute. A `Follower` remembers the version and the live files it has seen; `poll()`
answers with the files added since, read from the next commits' JSON when they are plain appends
(ADR 0013: ~1 ms), else from delta-rs's `update_incremental()` and the live add actions (1.4 ms
with nothing new, a few ms after an append; a full read of a week of small files is ~0.7 s,
docs/performance.md). When a file seen before is gone (compaction, overwrite, a MERGE that
rewrote files), the answer says to read everything again.
"""
from __future__ import annotations

from dataclasses import dataclass

from tickcast.lake import log as delta_log
from tickcast.lake import rs_uri


@dataclass(frozen=True)
class Change:
    """What a `poll()` found.

    `added`: the add rows (`live_files` shape) of the files new since the last poll; when `reread`,
    every live file. `live`: every live file when delta-rs was asked, None when the change was read
    from the log alone (plain appends: the live set is the previous one plus `added`). `reread`:
    the first poll, or a file seen before is gone: nothing read before stands.
    """
    version: int
    added: object
    live: object
    reread: bool


def filesystem(uri: str):
    """A pyarrow file system rooted at the table: pyarrow's native one for a local or standard
    object-store URI, else delta-rs's storage handler (slower: it calls back into Python)."""
    import pyarrow.fs as pfs

    try:
        raw, root = pfs.FileSystem.from_uri(uri)
        return pfs.SubTreeFileSystem(root, raw)
    except Exception:
        from deltalake.fs import DeltaStorageHandler

        return pfs.PyFileSystem(DeltaStorageHandler(uri))


class Follower:
    """A Delta table followed from version to version.

    Args:
        uri: the table as delta-rs names it (`tickcast.lake.uri`).
        stats: time columns whose per-file `min.`/`max.` statistics the add rows carry.
        from_log: read plain appends from the commits' JSON (else always ask delta-rs).
    """

    def __init__(self, uri: str, stats: tuple[str, ...] = (), from_log: bool = True):
        self.uri, self.stats, self.from_log = uri, tuple(stats), from_log
        self.version: int | None = None          # the version the caller has seen
        self.paths: frozenset = frozenset()      # the live files at `version`
        self._dt = None
        self._fs = None

    def exists(self) -> bool:
        from deltalake import DeltaTable

        return self._dt is not None or DeltaTable.is_deltatable(self.uri)

    @property
    def fs(self):
        if self._fs is None:
            self._fs = filesystem(self.uri)
        return self._fs

    def newest(self):
        """delta-rs's DeltaTable, opened on first need, brought up to the table's newest version."""
        from deltalake import DeltaTable

        if self._dt is None:
            self._dt = DeltaTable(self.uri)
        else:
            self._dt.update_incremental()
        return self._dt

    def table(self):
        """delta-rs's DeltaTable at the version seen (appends read from the log left it behind)."""
        from deltalake import DeltaTable

        if self._dt is None:
            self._dt = DeltaTable(self.uri, version=self.version)
        elif self.version is not None and self._dt.version() != self.version:
            self._dt.load_as_version(self.version)
        return self._dt

    def seen(self, version: int, paths) -> None:
        """Start from a state the caller kept (a saved cache): `version` and its live files."""
        self.version, self.paths = version, frozenset(paths)

    def forget(self) -> None:
        """Start over: the next poll lists every live file."""
        self.version, self.paths, self._dt = None, frozenset(), None

    def commit_bytes(self, version: int) -> bytes:
        """The raw commit file of `version` (FileNotFoundError when gone)."""
        with self.fs.open_input_stream(delta_log.commit_path(version)) as f:
            return f.read()

    def poll(self) -> Change | None:
        """The change since the version seen; None when there is none."""
        if self.version is not None and self.from_log:
            if not self._next_commit_exists():
                return None
            appended = self._appended()
            if appended is not None:
                version, added = appended
                paths = set(added.column("path").to_pylist())
                if not paths & self.paths:
                    self.version, self.paths = version, self.paths | paths
                    return Change(version, added, None, False)
        dt = self.newest()
        if dt.version() == self.version:
            return None
        import pyarrow.compute as pc

        live = live_files(dt, self.stats)
        paths = frozenset(live.column("path").to_pylist())
        reread = self.version is None or not self.paths <= paths
        added = live if reread else live.filter(pc.invert(pc.is_in(live.column("path"),
                                                                   value_set=_strings(self.paths))))
        self.version, self.paths = dt.version(), paths
        return Change(self.version, added, live, reread)

    def _next_commit_exists(self) -> bool:
        """One stat of the next commit file (a HEAD on an object store) instead of listing the log."""
        import pyarrow.fs as pfs

        try:
            info = self.fs.get_file_info(delta_log.commit_path(self.version + 1))
        except Exception:   # a store that cannot answer a stat: let delta-rs list the log
            return True
        return info.type != pfs.FileType.NotFound

    def _appended(self):
        """The next commits, from the log's JSON, when they only appended: (their last version,
        their add rows); None when any did more, or cannot be read (delta-rs answers then)."""
        import pyarrow as pa

        version, parts = self.version, []
        while True:
            try:
                text = self.commit_bytes(version + 1).decode()
            except FileNotFoundError:
                break
            except Exception:    # a store that cannot read it here: delta-rs
                return None
            adds = delta_log.appended_files(text, self.stats)
            if adds is None:
                return None
            parts.append(adds)
            version += 1
        if not parts:
            return None
        return version, pa.concat_tables(parts)


def live_files(dt, stats: tuple[str, ...] = ()):
    """A DeltaTable's live add actions as pyarrow: path, modification_time (epoch ms), num_records,
    and `min.`/`max.` of the `stats` columns where the files have statistics."""
    import pyarrow as pa

    # Through the Arrow C stream, not pa.table(): that one asks pandas whether it was given a
    # DataFrame, which imports pandas into the process (~50 MiB in the service's watcher).
    t = pa.RecordBatchReader.from_stream(dt.get_add_actions(flatten=True)).read_all()
    keep = ["path", "modification_time", "num_records"]
    keep += [f"{side}.{c}" for c in stats for side in ("min", "max") if f"{side}.{c}" in t.column_names]
    t = t.select(keep)
    if t.schema.field("modification_time").type != pa.int64():
        t = t.set_column(1, "modification_time", t.column("modification_time").cast(pa.int64()))
    for c in t.column_names[3:]:
        if pa.types.is_timestamp(t.schema.field(c).type):
            i = t.column_names.index(c)
            t = t.set_column(i, c, t.column(c).cast(pa.timestamp("us", tz="UTC")))
    return t


def _strings(paths):
    import pyarrow as pa

    return pa.array(sorted(paths), pa.string())


# ---- the jobs' driver-side reads: one follower per table and process -------------------------------
_followers: dict[str, Follower] = {}


def table(path: str):
    """The Delta table at `path` as a delta-rs DeltaTable: one per process, brought up to date."""
    uri = rs_uri(path)
    f = _followers.get(uri)
    if f is None:
        f = _followers[uri] = Follower(uri, from_log=False)
    return f.newest()


def query(path: str, sql: str):
    """A SQL query (DataFusion, through delta-rs) over the table at `path`, named `t`; a pyarrow Table.

    Delta's file statistics prune the files, so a minute of bronze reads in ~25 ms where Spark
    plans, skips and reads it in ~0.6 s (measured on a day of live bronze, 4k files). Strings
    come back as plain strings (DataFusion returns string views, which Spark does not take).
    """
    import pyarrow as pa
    from deltalake import QueryBuilder

    t = pa.table(QueryBuilder().register("t", table(path)).execute(sql).read_all())
    return t.cast(pa.schema([pa.field(f.name, pa.string()) if f.type == pa.string_view() else f for f in t.schema]))
