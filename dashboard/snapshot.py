"""The dashboard's read caches saved on disk, so that a restarted dashboard reads only what changed
(docs/dashboard.md, "Saved caches").

A week of small files costs an empty process ~0.3 s of reading per table (three tables behind the
market page's week: ~1 s). A saved cache is the rows a `TableCache` held at a table version, with
that version's file list: loading it takes milliseconds, and the cache then catches up from the
Delta log as it does at every refresh (new files read alone; a remove, new metadata or a different
table at the same path reloads in full). It is a cache, never a source: any doubt and it is ignored.

Layout: `<dir>/<key>/current.json` names the version's two Arrow IPC files (the rows, the file
list) beside it; writes go to new files and `current.json` is replaced last (`os.replace`), so a
reader sees the old snapshot or the new one, never half of one.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

log = logging.getLogger("tickcast.dashboard")
FORMAT = 1      # bump when what a snapshot holds changes meaning: older ones are then ignored


@dataclass(frozen=True)
class Snapshot:
    """A cache's rows at a table version, and what is needed to trust and extend them."""

    version: int
    commit_sha: str            # sha256 of the version's commit JSON: a table re-created at the path differs
    lower: pd.Timestamp | None  # the oldest time the rows hold (None: every row)
    schema: pa.Schema          # the table's schema (to read new files in it)
    data: pa.Table
    files: pd.DataFrame        # the live add actions at `version` (TableCache.files)


def commit_sha(text: bytes) -> str:
    return hashlib.sha256(text).hexdigest()


def key(uri: str, spec) -> str:
    """A folder name per table and cache spec: a changed spec (or code format) never reads an old one."""
    digest = hashlib.sha256(repr((FORMAT, uri, spec)).encode()).hexdigest()[:16]
    return f"{spec.table.name}-{digest}"


def save(root: str | Path, name: str, snap: Snapshot) -> Path:
    """Write `snap` under `root/name`; returns the pointer file. Older snapshots there are removed."""
    folder = Path(root) / name
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"v{snap.version}-{os.getpid()}"
    data, files = folder / f"{stem}.rows.arrow", folder / f"{stem}.files.arrow"
    _write_ipc(data, snap.data)
    _write_ipc(files, pa.Table.from_pandas(snap.files, preserve_index=False))
    pointer = {"format": FORMAT, "version": snap.version, "commit_sha": snap.commit_sha,
               "lower": None if snap.lower is None else snap.lower.isoformat(),
               "schema": base64.b64encode(snap.schema.serialize().to_pybytes()).decode(),
               "rows": data.name, "files": files.name}
    tmp = folder / f"current.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(pointer))
    os.replace(tmp, folder / "current.json")
    # Older copies, and the half-written files of a save that was killed (another pid's .tmp).
    for old in [*folder.glob("*.arrow"), *folder.glob("*.tmp")]:
        if old.name not in (data.name, files.name) and not old.name.endswith(f".{os.getpid()}.tmp"):
            old.unlink(missing_ok=True)
    return folder / "current.json"


def load(root: str | Path, name: str) -> Snapshot | None:
    """The snapshot under `root/name`, or None (none saved, another format, unreadable)."""
    folder = Path(root) / name
    try:
        pointer = json.loads((folder / "current.json").read_text())
        if pointer.get("format") != FORMAT:
            return None
        data = pa.ipc.open_file(pa.memory_map(str(folder / pointer["rows"]))).read_all()
        files = pa.ipc.open_file(pa.memory_map(str(folder / pointer["files"]))).read_all().to_pandas()
        schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(pointer["schema"])))
        lower = None if pointer["lower"] is None else pd.Timestamp(pointer["lower"])
        return Snapshot(int(pointer["version"]), pointer["commit_sha"], lower, schema, data, files)
    except FileNotFoundError:
        return None
    except Exception as e:  # a damaged or foreign file: read the table instead
        log.warning("dashboard cache %s ignored: %s", folder, e)
        return None


def _write_ipc(path: Path, table: pa.Table) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    os.replace(tmp, path)
