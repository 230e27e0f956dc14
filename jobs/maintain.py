"""Batch job `maintain`: OPTIMIZE (compact small files) and VACUUM every registered Delta table.

`spark-submit jobs/main.py --job maintain [--vacuum-hours 168] [--vacuum-only TABLE,...]`.

Streaming writers leave many small files (one or more per micro-batch); OPTIMIZE rewrites them
into few large ones and VACUUM deletes the files no snapshot younger than the retention still
needs. OPTIMIZE is a writer: run it on a table only while no other writer is committing to it
(CONTRACTS.md: one writer at a time per table). `--vacuum-only` names tables that have a live
writer elsewhere (a running stream): they are vacuumed, which commits nothing when vacuum logging
is off, and left to compact themselves.
"""
from __future__ import annotations

import argparse
import re
import sys

from tickcast import tables
from tickcast.settings import Settings
from tickcast.spark import session

DEFAULT_VACUUM_HOURS = 168.0          # Delta's own default retention: 7 days
_NAME = re.compile(r"^(bronze|silver|gold|ops)\.[a-z_][a-z0-9_]*$")


def _num_files(spark, path: str) -> int:
    return int(spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()["numFiles"])


def run(spark, settings: Settings, vacuum_hours: float = DEFAULT_VACUUM_HOURS,
        vacuum_only: frozenset[str] | set[str] = frozenset(), names: list[str] | None = None,
        allow_short_retention: bool = False) -> list[dict]:
    """OPTIMIZE and VACUUM every registered table that exists; skip absent ones.

    Args:
        spark: a session with the Delta extensions (tickcast.spark.session).
        settings: where the lake is.
        vacuum_hours: keep files a snapshot of the last this-many hours still needs.
        vacuum_only: table names to VACUUM without OPTIMIZE (they have a live writer).
        names: the tables to maintain (default: every table in tickcast.tables.ALL).
        allow_short_retention: permit vacuum_hours below Delta's 168 h safety check (tests,
            or a lake with no reader or writer running).

    Returns:
        One dict per table: name, path, status (`absent` or `maintained`), files before and
        after, whether it was optimized, and the retention used.
    """
    from delta.tables import DeltaTable

    if vacuum_hours < 0:
        raise ValueError(f"vacuum_hours must be >= 0, got {vacuum_hours}")
    if vacuum_hours < DEFAULT_VACUUM_HOURS and not allow_short_retention:
        raise ValueError(f"vacuum_hours {vacuum_hours} is below Delta's safe retention of "
                         f"{DEFAULT_VACUUM_HOURS:g} h: a running reader or writer could lose files")
    wanted = list(tables.ALL) if names is None else names
    unknown = [n for n in wanted if n not in tables.ALL]
    if unknown:
        raise ValueError(f"unknown table(s): {', '.join(unknown)}; known: {', '.join(sorted(tables.ALL))}")
    check_key = "spark.databricks.delta.retentionDurationCheck.enabled"
    check_before = spark.conf.get(check_key, "true")
    report = []
    try:
        if allow_short_retention:
            spark.conf.set(check_key, "false")
        for name in wanted:
            path = tables.ALL[name].path(settings)
            row = {"table": name, "path": path, "status": "absent", "optimized": False,
                   "files_before": None, "files_after": None, "vacuum_hours": vacuum_hours}
            if not DeltaTable.isDeltaTable(spark, path):
                print(f"maintain: {name}: absent ({path}), skipped", flush=True)
                report.append(row)
                continue
            dt = DeltaTable.forPath(spark, path)
            row["files_before"] = _num_files(spark, path)
            if name not in vacuum_only:
                dt.optimize().executeCompaction()
                row["optimized"] = True
            dt.vacuum(vacuum_hours)
            row["files_after"] = _num_files(spark, path)
            row["status"] = "maintained"
            what = "OPTIMIZE + VACUUM" if row["optimized"] else "VACUUM only (live writer)"
            print(f"maintain: {name}: {what}, files {row['files_before']} -> {row['files_after']}, "
                  f"retention {vacuum_hours:g} h", flush=True)
            report.append(row)
    finally:
        spark.conf.set(check_key, check_before)
    return report


def main(argv: list[str], settings: Settings) -> int:
    """Entry from jobs/main.py (`--job maintain`): parse this job's options, run, return an exit code."""
    ap = argparse.ArgumentParser(prog="jobs/main.py --job maintain", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vacuum-hours", type=float, default=DEFAULT_VACUUM_HOURS,
                    help="retention of unreferenced files in hours (default %(default)g)")
    ap.add_argument("--vacuum-only", default="",
                    help="comma-separated tables with a live writer: VACUUM them, do not OPTIMIZE; "
                         "names not registered (yet) are ignored")
    ap.add_argument("--tables", default="", help="comma-separated tables to maintain (default: all registered)")
    args = ap.parse_args(argv)
    lists = {}
    for opt in ("vacuum_only", "tables"):
        items = [t.strip() for t in getattr(args, opt).split(",") if t.strip()]
        bad = [t for t in items if not _NAME.match(t)]
        if bad:
            print(f"maintain: --{opt.replace('_', '-')}: not a layer.table name: {', '.join(bad)}", file=sys.stderr)
            return 2
        lists[opt] = items
    ignored = [t for t in lists["vacuum_only"] if t not in tables.ALL]
    if ignored:
        print(f"maintain: --vacuum-only: not registered, ignored: {', '.join(ignored)}", flush=True)
    spark = session(settings, app="tickcast-maintain")
    try:
        run(spark, settings, vacuum_hours=args.vacuum_hours, vacuum_only=frozenset(lists["vacuum_only"]),
            names=lists["tables"] or None)
    except ValueError as e:
        print(f"maintain: {e}", file=sys.stderr)
        return 2
    return 0
