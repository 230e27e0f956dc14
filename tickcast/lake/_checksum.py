"""A Delta version checksum (`<version>.crc`) for each commit delta-rs makes from a Spark driver (ADR 0004; private to `tickcast.lake.write`).

Why: a Spark reader of a Delta table (the streams of features, predict and outcomes) that finds a
new version without a checksum file rebuilds its protocol and metadata with a Spark job over the
log since the last checkpoint: ~200 ms per new version on an idle machine, 0.4-0.6 s while the
stack runs, once per hop of the bar -> feature -> prediction path. Spark writes the checksum when
it commits itself; delta-rs does not write one. With it, the reader's snapshot update took 8 ms
(measured after 30 delta-rs appends). The file is optional in the Delta protocol ("Version
Checksum File"): protocol, metadata, the number and total size of the live files.

The protocol and metadata are Spark's own serialization of them, read once per table and process
from a Spark snapshot, then carried forward: every commit file since (other writers' too) is
scanned for a protocol or metaData action, which replaces them. The file count and size come from
delta-rs's state once, then are carried forward the same way: each `add` adds its file and size,
each `remove` takes them away (bronze.ticks gains a file a second: listing every live file at each
commit would grow with the table). Local tables only; anything unexpected leaves the
version without a checksum (the reader then rebuilds, as it would anyway), never a wrong one.
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

log = logging.getLogger("tickcast.lake")


@dataclass
class Known:
    """A table's protocol and metadata actions (as JSON objects) as of `version`, and its live files'
    count and total size when known (None: to be taken from delta-rs's state)."""
    version: int
    protocol: dict
    metadata: dict
    num_files: int | None = None
    size_bytes: int | None = None


_known: dict[str, Known] = {}      # local table path -> what the last checksum of this process used
_written: dict[str, str] = {}      # local table path -> the checksum file this process wrote last


def checksum(known: Known, num_files: int, size_bytes: int) -> dict:
    """The checksum file's content (pure)."""
    return {"tableSizeBytes": int(size_bytes), "numFiles": int(num_files), "numMetadata": 1, "numProtocol": 1,
            "metadata": known.metadata, "protocol": known.protocol}


def carry(known: Known, version: int, commit_lines: list[str]) -> Known:
    """`known` moved forward over one commit file's lines (pure): its protocol or metaData action
    replaces the one known; its `add` and `remove` actions change the file count and size (both
    become unknown at a `remove` without a size, which the protocol allows)."""
    protocol, metadata = known.protocol, known.metadata
    files, size = known.num_files, known.size_bytes
    actions = [json.loads(line) for line in commit_lines if line.strip()]
    op = next((a["commitInfo"].get("operation") for a in actions if "commitInfo" in a), None)
    added = [a["add"]["path"] for a in actions if "add" in a]
    removed = {a["remove"]["path"] for a in actions if "remove" in a}
    # An `add` of a path that is already live replaces it (the protocol's reconciliation): counting
    # it again would be wrong, and only the live set can tell. Operations that write fresh files
    # (or remove the path in the same commit, as a deletion-vector update does) are carried; any
    # other commit with an `add` makes the count unknown, to be read from delta-rs's state.
    if added and (op not in FRESH_FILE_OPERATIONS or len(set(added)) != len(added)
                  or any(p in removed for p in added if op in ("WRITE", "STREAMING UPDATE"))):
        files = size = None
    for action in actions:
        protocol = action.get("protocol", protocol)
        metadata = action.get("metaData", metadata)
        if files is None:
            continue
        if "add" in action:
            files, size = files + 1, size + int(action["add"]["size"])
        elif "remove" in action:
            gone = action["remove"].get("size")
            files, size = (files - 1, size - int(gone)) if gone is not None else (None, None)
    return Known(version, protocol, metadata, files, size if files is not None else None)


# Commit operations (commitInfo.operation, Spark's and delta-rs's names) whose `add`s are new files.
FRESH_FILE_OPERATIONS = frozenset({
    "WRITE", "STREAMING UPDATE", "MERGE", "OPTIMIZE", "DELETE", "UPDATE", "CREATE TABLE", "TRUNCATE",
})


def _local(path: str) -> str | None:
    if path.startswith("file://"):
        return path[len("file://"):]
    return None if "://" in path else path


def _from_spark(path: str) -> Known | None:
    from pyspark.sql import SparkSession

    spark = SparkSession.getActiveSession()
    if spark is None:
        return None
    jvm = spark.sparkContext._jvm
    none = jvm.scala.Option.empty()
    snap = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path).update(False, none, none)
    return Known(int(snap.version()), json.loads(snap.protocol().json())["protocol"],
                 json.loads(snap.metadata().json())["metaData"])


def write_after_append(path: str, table) -> bool:
    """Write the checksum of `table`'s current version (a delta-rs DeltaTable just committed to by
    this process); returns whether it did."""
    local = _local(path)
    if local is None:
        return False
    logdir = os.path.join(local, "_delta_log")
    version = table.version()
    target = os.path.join(logdir, f"{version:020d}.crc")
    try:
        known = _known.get(local)
        if known is None or known.version >= version:
            known = _from_spark(local)
            if known is None or known.version > version:
                return False
        for v in range(known.version + 1, version + 1):
            with open(os.path.join(logdir, f"{v:020d}.json")) as f:
                known = carry(known, v, f.read().splitlines())
        if known.num_files is None:
            import dataclasses

            import pyarrow as pa
            import pyarrow.compute as pc

            adds = pa.table(table.get_add_actions(flatten=True))
            known = dataclasses.replace(known, num_files=adds.num_rows,
                                        size_bytes=pc.sum(adds["size_bytes"]).as_py() or 0)
        _known[local] = known
        if os.path.exists(target):
            return False
        body = checksum(known, known.num_files, known.size_bytes)
        tmp = os.path.join(logdir, f".{version:020d}.crc.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            json.dump(body, f)
        os.replace(tmp, target)
        _drop_previous(local, target)
        return True
    except Exception as e:      # an optimisation only: a reader without it rebuilds as before
        _known.pop(local, None)
        log.warning("no checksum for %s v%d: %s", path, version, e)
        return False


def _drop_previous(local: str, target: str) -> None:
    """Delete the checksum this process wrote before `target` for the table: a reader updates to the
    newest version and only reads that one's, while every file in `_delta_log` lengthens the folder
    listing of each snapshot update (bronze commits once a second). Delta reads a missing checksum
    as none. Checksums written by others (Spark's) are left alone."""
    previous, _written[local] = _written.get(local), target
    if previous and previous != target:
        try:
            os.remove(previous)
        except FileNotFoundError:
            pass
