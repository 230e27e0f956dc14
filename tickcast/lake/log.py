"""The files a Delta commit added, read from the table's log directly (docs/adr/0013-dashboard-reads-appends-from-the-delta-log.md).

A live table gains one commit a minute, each adding a file. delta-rs's `update_incremental()` plus
`get_add_actions()` cost 25-35 ms per table and refresh on a week of commits; the commit's own JSON
(one small file) names the added file and its statistics in ~1 ms. Anything but a plain append
(a remove, new metadata or protocol, a deletion vector, partition values) answers None, and the
caller asks delta-rs instead (`follow.Follower.poll`).
"""
from __future__ import annotations

import datetime as dt
import json
from urllib.parse import unquote

# Actions a plain append may carry besides its adds (a Spark streaming append writes txn).
APPEND_ONLY = frozenset({"add", "commitInfo", "txn"})


def commit_path(version: int) -> str:
    """The commit file of `version`, relative to the table's root."""
    return f"_delta_log/{version:020d}.json"


def appended_files(text: str, stats: tuple[str, ...] = ()):
    """The add actions of one commit's JSON lines as a pyarrow Table in the shape of
    `follow.live_files` (path, modification_time in epoch ms, num_records, and `min.`/`max.` of
    each column in `stats`, as UTC timestamps); None unless the commit only appends unpartitioned
    files without deletion vectors."""
    import pyarrow as pa

    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        action = json.loads(line)
        if not action.keys() <= APPEND_ONLY:
            return None
        add = action.get("add")
        if add is None:
            continue
        if add.get("deletionVector") or add.get("partitionValues"):
            return None
        st = json.loads(add.get("stats") or "{}")
        row = {"path": unquote(add["path"]), "modification_time": add["modificationTime"],
               "num_records": st.get("numRecords")}
        for c in stats:
            row[f"min.{c}"] = (st.get("minValues") or {}).get(c)
            row[f"max.{c}"] = (st.get("maxValues") or {}).get(c)
        rows.append(row)
    cols = {"path": pa.string(), "modification_time": pa.int64(), "num_records": pa.int64()}
    out = pa.table({k: pa.array([r[k] for r in rows], t) for k, t in cols.items()})
    for c in stats:
        for side in ("min", "max"):
            # ISO 8601 with or without fractions, with a Z or an offset (Spark and delta-rs differ).
            ts = [None if v is None else dt.datetime.fromisoformat(v) for v in (r[f"{side}.{c}"] for r in rows)]
            out = out.append_column(f"{side}.{c}", pa.array(ts, pa.timestamp("us", tz="UTC")))
    return out
