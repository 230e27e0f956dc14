"""The files a Delta commit added, read from the table's log directly (docs/adr/0013-dashboard-reads-appends-from-the-delta-log.md).

A live table gains one commit a minute, each adding a file. delta-rs's `update_incremental()` plus
`get_add_actions()` cost 25-35 ms per table and refresh on a week of commits; the commit's own JSON
(one small file) names the added file and its statistics in ~1 ms. Anything but a plain append
(a remove, new metadata or protocol, a deletion vector, partition values) answers None, and the
caller asks delta-rs as before.
"""
from __future__ import annotations

import json
from urllib.parse import unquote

import pandas as pd

# Actions a plain append may carry besides its adds (a Spark streaming append writes txn).
APPEND_ONLY = frozenset({"add", "commitInfo", "txn"})


def commit_path(version: int) -> str:
    return f"_delta_log/{version:020d}.json"


def appended_files(text: str, time_col: str | None) -> pd.DataFrame | None:
    """The add actions of one commit's JSON lines as rows of `TableCache.files` (path,
    modification_time, num_records, and min./max. of `time_col` from the statistics); None unless
    the commit only appends unpartitioned files without deletion vectors."""
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
        stats = json.loads(add.get("stats") or "{}")
        row = {"path": unquote(add["path"]), "modification_time": add["modificationTime"],
               "num_records": stats.get("numRecords")}
        if time_col:
            row[f"min.{time_col}"] = (stats.get("minValues") or {}).get(time_col)
            row[f"max.{time_col}"] = (stats.get("maxValues") or {}).get(time_col)
        rows.append(row)
    cols = ["path", "modification_time", "num_records"] + ([f"min.{time_col}", f"max.{time_col}"] if time_col else [])
    df = pd.DataFrame(rows, columns=cols)
    df["modification_time"] = pd.to_datetime(df["modification_time"], unit="ms", utc=True)
    for c in cols[3:]:
        df[c] = pd.to_datetime(df[c], utc=True, format="ISO8601")
    return df
