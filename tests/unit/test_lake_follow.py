"""tickcast.lake.follow: the one incremental reader; appends from the log equal delta-rs's own view."""
from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake

from tickcast.lake import follow

T0 = dt.datetime(2026, 6, 1, 10, tzinfo=dt.timezone.utc)


def rows(minutes: range) -> pa.Table:
    return pa.table({"symbol": ["BTCUSDT"] * len(minutes),
                     "window_start": pa.array([T0 + dt.timedelta(minutes=m) for m in minutes],
                                              pa.timestamp("us", tz="UTC")),
                     "close": [float(m) for m in minutes]})


def sort(t):
    return t.sort_by("path").select(sorted(t.column_names)).to_pylist()


def test_appends_come_from_the_log_and_equal_delta_rs_then_a_compaction_rereads(tmp_path):
    uri = str(tmp_path / "t")
    write_deltalake(uri, rows(range(0, 2)))
    f = follow.Follower(uri, stats=("window_start",))
    first = f.poll()
    assert first.reread and first.version == 0 and first.added.num_rows == 1
    assert f.poll() is None                                          # nothing new
    write_deltalake(uri, rows(range(2, 4)), mode="append")
    write_deltalake(uri, rows(range(4, 5)), mode="append")
    ch = f.poll()
    assert ch.version == 2 and ch.live is None and not ch.reread     # both commits, from the log only
    assert f._dt.version() == 0                                      # delta-rs not asked
    theirs = follow.live_files(DeltaTable(uri), ("window_start",))
    new = theirs.filter(pc.is_in(theirs["path"], value_set=ch.added["path"]))
    assert sort(ch.added) == sort(new)                          # same paths, counts, statistics
    assert pc.max(ch.added["max.window_start"]).as_py() == T0 + dt.timedelta(minutes=4)
    assert f.table().version() == 2                                  # caught up when asked for
    DeltaTable(uri).optimize.compact()
    ch = f.poll()
    assert ch.reread and ch.version == 3 and ch.live.num_rows == 1 and ch.added.equals(ch.live)


def test_without_the_log_path_delta_rs_names_only_the_new_files(tmp_path):
    uri = str(tmp_path / "t")
    write_deltalake(uri, rows(range(0, 1)))
    f = follow.Follower(uri, from_log=False)
    f.poll()
    write_deltalake(uri, rows(range(1, 2)), mode="append")
    ch = f.poll()
    assert not ch.reread and ch.added.num_rows == 1 and ch.live.num_rows == 2
    assert set(ch.added["path"].to_pylist()) < set(ch.live["path"].to_pylist())


def test_table_and_query_follow_the_newest_version(tmp_path):
    path = str(tmp_path / "t")
    write_deltalake(path, rows(range(0, 2)))
    assert follow.query(path, "SELECT count(*) AS n FROM t").column("n").to_pylist() == [2]
    write_deltalake(path, rows(range(2, 3)), mode="append")
    assert follow.table(path).version() == 1
    got = follow.query(path, "SELECT symbol FROM t")
    assert got.schema.field("symbol").type == pa.string() and got.num_rows == 3
