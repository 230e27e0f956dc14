"""The dashboard's incremental Delta cache: appends read only the new files, OPTIMIZE reloads, and
the rows held always equal a full read (delta-rs writes; no JVM)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pytest

from dashboard import data, table_cache
from tickcast import schemas, tables

from tickcast.timeunits import MINUTE_MS as MIN
T0 = 1_780_000_000_000 // MIN * MIN


def bar_rows(symbols, start_ms: int, minutes: int, seed: int = 0) -> pa.Table:
    """silver.bars_1m rows (the table's Arrow schema) for `minutes` from `start_ms`."""
    rng = np.random.default_rng(seed + start_ms // MIN)
    n = len(symbols) * minutes
    ws = np.repeat(start_ms + np.arange(minutes) * MIN, len(symbols))
    sym = np.tile(np.array(symbols), minutes)
    close = 100 + rng.normal(size=n).cumsum()
    cols = {
        "symbol": sym, "window_start": ws * 1000, "window_end": (ws + MIN) * 1000,
        "open": close + 0.5, "high": close + 1, "low": close - 1, "close": close,
        "volume": rng.uniform(1, 5, n), "quote_volume": rng.uniform(100, 500, n), "vwap": close,
        "trade_count": rng.integers(1, 100, n), "taker_buy_volume": np.ones(n), "taker_buy_quote_volume": np.ones(n),
        "taker_sell_volume": np.ones(n), "imbalance": np.zeros(n), "first_trade_id": np.arange(n),
        "last_trade_id": np.arange(n), "source": ["ticks"] * n, "event_kind": ["trade"] * n,
        "is_complete": np.ones(n, bool), "created_at": ws * 1000,
    }
    schema = schemas.BARS.arrow_type()
    arrays = []
    for f in schema:
        v = cols[f.name]
        if pa.types.is_decimal(f.type):
            arrays.append(pa.array(np.round(np.asarray(v, float), 8).astype(str)).cast(f.type))
        elif pa.types.is_timestamp(f.type):
            arrays.append(pa.array(np.asarray(v, "int64")).cast(f.type))
        else:
            arrays.append(pa.array(v).cast(f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


@pytest.fixture
def settings(tmp_path):
    from tickcast.settings import load

    return load({"TICKCAST_DATA_DIR": str(tmp_path)})


def write(s, t: pa.Table) -> None:
    from deltalake import write_deltalake

    write_deltalake(tables.BARS.path(s), t, mode="append")


def added_paths(s) -> set[str]:
    from deltalake import DeltaTable

    return set(pa.table(DeltaTable(tables.BARS.path(s)).get_add_actions(flatten=True))["path"].to_pylist())


def sorted_rows(t: pa.Table) -> pa.Table:
    return t.sort_by([("symbol", "ascending"), ("window_start", "ascending")])


def test_missing_table_is_empty_not_an_error(settings):
    c = table_cache.TableCache(data.SPECS["bars"], settings)
    assert c.refresh() is None and c.error is None
    assert list(c.frame().columns) == list(data.SPECS["bars"].columns) and c.frame().empty


def test_appends_read_only_new_files_and_optimize_reloads(settings):
    spec = data.SPECS["bars"]
    syms = ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    for k in range(6):                      # six small appends, as the live pipeline writes them
        write(settings, bar_rows(syms, T0 + k * MIN, 1))
    c = table_cache.TableCache(spec, settings)
    assert c.refresh() == 5 and c.full_loads == 1
    assert sorted_rows(c.data).equals(sorted_rows(table_cache.full_read(spec, settings)))
    assert c.data.num_rows == 18

    # Nothing new: nothing read, same rows.
    assert c.refresh() == 5 and c.last_read == [] and c.full_loads == 1

    # One append: only its file is read.
    before = added_paths(settings)
    write(settings, bar_rows(syms, T0 + 6 * MIN, 1))
    new = added_paths(settings) - before
    assert c.refresh() == 6 and set(c.last_read) == new and len(new) == 1 and c.full_loads == 1
    full = table_cache.full_read(spec, settings)
    assert sorted_rows(c.data).equals(sorted_rows(full)) and full.num_rows == 21
    assert c.frame()["close"].iloc[-1] == pytest.approx(float(bar_rows(syms, T0 + 6 * MIN, 1)["close"][-1].as_py()))

    # Several appends between two refreshes: exactly their files.
    before = added_paths(settings)
    for k in (7, 8):
        write(settings, bar_rows(syms, T0 + k * MIN, 1))
    assert c.refresh() == 8 and set(c.last_read) == added_paths(settings) - before and c.full_loads == 1
    assert sorted_rows(c.data).equals(sorted_rows(table_cache.full_read(spec, settings)))

    # OPTIMIZE removes the small files: a full reload, same rows.
    from deltalake import DeltaTable

    DeltaTable(tables.BARS.path(settings)).optimize.compact()
    v = c.refresh()
    assert v == 9 and c.full_loads == 2 and set(c.last_read) == added_paths(settings) and len(c.last_read) == 1
    assert sorted_rows(c.data).equals(sorted_rows(table_cache.full_read(spec, settings)))
    assert c.data.num_rows == 27

    # And appends after the compaction are incremental again.
    write(settings, bar_rows(syms, T0 + 9 * MIN, 1))
    assert c.refresh() == 10 and len(c.last_read) == 1 and c.full_loads == 2
    assert sorted_rows(c.data).equals(sorted_rows(table_cache.full_read(spec, settings)))


def test_appends_come_from_the_log_and_match_delta_rs(settings):
    """Plain appends are read from the commits' JSON (tickcast/lake/log.py), not by moving
    delta-rs's snapshot; the file list then equals delta-rs's own, and a later read that needs the
    snapshot (a wider span) catches it up first."""
    from deltalake import DeltaTable

    spec = data.SPECS["bars"]
    syms = ["BTCUSDT", "ETHUSDT"]
    for k in range(4):
        write(settings, bar_rows(syms, T0 + k * MIN, 1))
    c = table_cache.TableCache(spec, settings)
    assert c.refresh(span_ms=MIN) == 3 and c.data.num_rows == 4            # the newest two minutes
    for k in (4, 5):
        write(settings, bar_rows(syms, T0 + k * MIN, 1))
    assert c.refresh(span_ms=MIN) == 5 and len(c.last_read) == 2
    assert c.follower._dt.version() == 3                                            # delta-rs not asked
    theirs = pa.table(DeltaTable(tables.BARS.path(settings)).get_add_actions(flatten=True)).to_pandas()
    mine = c.files.sort_values("path").reset_index(drop=True)
    theirs = theirs.sort_values("path").reset_index(drop=True)
    assert mine["path"].tolist() == theirs["path"].tolist()
    assert mine["num_records"].tolist() == theirs["num_records"].tolist()
    assert (mine["max.window_start"] == theirs["max.window_start"]).all()
    assert (mine["min.window_start"] == theirs["min.window_start"]).all()
    assert sorted_rows(c.data).equals(sorted_rows(table_cache.full_read(spec, settings, lower=c.lower)))
    c.refresh()                                                            # every row: a query of older rows
    assert c.follower._dt.version() == 5 and c.full_loads == 1
    assert sorted_rows(c.data).equals(sorted_rows(table_cache.full_read(spec, settings))) and c.data.num_rows == 12


def test_only_plain_appends_are_read_from_the_log():
    from tickcast.lake import log as delta_log

    add = {"add": {"path": "part-1%20x.parquet", "modificationTime": 1_780_000_000_000, "partitionValues": {},
                   "stats": '{"numRecords": 3, "minValues": {"window_start": "2026-06-01T10:00:00.000Z"},'
                            ' "maxValues": {"window_start": "2026-06-01T10:02:00.000Z"}}'}}
    info = {"commitInfo": {"operation": "WRITE"}}
    lines = lambda *xs: "\n".join(__import__("json").dumps(x) for x in xs)  # noqa: E731
    rows = delta_log.appended_files(lines(info, add), ("window_start",)).to_pandas()
    assert rows["path"].tolist() == ["part-1 x.parquet"] and rows["num_records"].tolist() == [3]
    assert rows["max.window_start"].iloc[0] == __import__("pandas").Timestamp("2026-06-01T10:02:00Z")
    assert rows["min.window_start"].iloc[0] == __import__("pandas").Timestamp("2026-06-01T10:00:00Z")
    assert rows["modification_time"].iloc[0] == 1_780_000_000_000
    for other in ({"remove": {"path": "p"}}, {"metaData": {}}, {"protocol": {}},
                  {"add": {**add["add"], "deletionVector": {"storageType": "u"}}},
                  {"add": {**add["add"], "partitionValues": {"date": "2026-06-01"}}}):
        assert delta_log.appended_files(lines(info, add, other), ("window_start",)) is None, other


def test_a_kept_span_prunes_files_and_equals_a_full_read_with_that_bound(settings):
    spec = dataclasses.replace(data.SPECS["bars"], keep_ms=3 * MIN)
    for k in range(8):
        write(settings, bar_rows(["BTCUSDT"], T0 + k * MIN, 1))
    c = table_cache.TableCache(spec, settings)
    c.refresh()
    # Files whose newest row is older than newest - 3 min are not even opened.
    assert len(c.last_read) == 4
    assert sorted_rows(c.data).equals(sorted_rows(table_cache.full_read(spec, settings)))
    assert c.data.num_rows == 4
    write(settings, bar_rows(["BTCUSDT"], T0 + 8 * MIN, 1))
    c.refresh()
    assert sorted_rows(c.data).equals(sorted_rows(table_cache.full_read(spec, settings))) and c.data.num_rows == 4


def test_a_row_filter_holds_only_matching_rows(settings):
    spec = dataclasses.replace(data.SPECS["bars"], where=("symbol", "ETHUSDT"))
    write(settings, bar_rows(["BTCUSDT", "ETHUSDT"], T0, 5))
    c = table_cache.TableCache(spec, settings)
    c.refresh()
    assert set(c.data["symbol"].to_pylist()) == {"ETHUSDT"} and c.data.num_rows == 5
    write(settings, bar_rows(["BTCUSDT", "ETHUSDT"], T0 + 5 * MIN, 2))
    c.refresh()
    assert sorted_rows(c.data).equals(sorted_rows(table_cache.full_read(spec, settings))) and c.data.num_rows == 7


def test_a_span_reads_only_its_rows_then_widens_to_a_full_read(settings):
    spec = data.SPECS["bars"]
    for k in range(10):
        write(settings, bar_rows(["BTCUSDT", "ETHUSDT"], T0 + k * MIN, 1))
    c = table_cache.TableCache(spec, settings)
    c.refresh(span_ms=2 * MIN)                       # a first page that shows the last 2 minutes
    newest = c.max("window_start")
    assert c.lower == newest - data.pd.Timedelta(minutes=2)
    assert len(c.last_read) == 3 and c.data.num_rows == 6
    assert sorted_rows(c.data).equals(sorted_rows(table_cache.full_read(spec, settings, c.lower)))
    write(settings, bar_rows(["BTCUSDT", "ETHUSDT"], T0 + 10 * MIN, 1))
    write(settings, bar_rows(["SOLUSDT"], T0, 1))    # a late row older than the span: not held
    c.refresh(span_ms=2 * MIN)
    assert c.data.num_rows == 8 and c.full_loads == 1
    assert sorted_rows(c.data).equals(sorted_rows(table_cache.full_read(spec, settings, c.lower)))
    c.refresh(span_ms=5 * MIN)                       # a wider range: only the older rows are read
    assert c.full_loads == 1 and c.data.num_rows == 12
    assert sorted_rows(c.data).equals(sorted_rows(table_cache.full_read(spec, settings, c.lower)))
    c.refresh()                                      # every row, the late one included
    assert c.lower is None and c.full_loads == 1
    full = table_cache.full_read(spec, settings)
    assert sorted_rows(c.data).equals(sorted_rows(full)) and full.num_rows == 23


def test_a_saved_cache_restarts_reading_only_what_changed(settings, tmp_path):
    """A cache saved by one process (dashboard/snapshot.py) is what a new one starts from: no file
    read for the saved version, only new files after appends, a full reload after OPTIMIZE, and
    the rows always equal a full read."""
    from deltalake import DeltaTable

    spec, syms, folder = data.SPECS["bars"], ["BTCUSDT", "ETHUSDT"], str(tmp_path / "cache")
    for k in range(4):
        write(settings, bar_rows(syms, T0 + k * MIN, 1))
    first = table_cache.TableCache(spec, settings, cache_dir=folder)
    assert first.refresh(span_ms=2 * MIN) == 3 and first.save() and not first.save()   # unchanged: not rewritten

    # A new process: the saved rows, no file read, delta-rs not even opened.
    c = table_cache.TableCache(spec, settings, cache_dir=folder)
    assert c.refresh(span_ms=2 * MIN) == 3 and c.restored == 3 and c.full_loads == 0 and c.last_read == []
    assert c.follower._dt is None and c.lower == first.lower
    assert sorted_rows(c.data).equals(sorted_rows(first.data))
    assert sorted_rows(c.data).equals(sorted_rows(table_cache.full_read(spec, settings, lower=c.lower)))

    # Appends while it was down: only their files are read.
    before = added_paths(settings)
    for k in (4, 5):
        write(settings, bar_rows(syms, T0 + k * MIN, 1))
    c = table_cache.TableCache(spec, settings, cache_dir=folder)
    assert c.refresh(span_ms=2 * MIN) == 5 and c.restored == 3 and c.full_loads == 0
    assert set(c.last_read) == added_paths(settings) - before
    assert sorted_rows(c.data).equals(sorted_rows(table_cache.full_read(spec, settings, lower=c.lower)))
    # A wider span than was saved reads the older rows (and equals a full read).
    c.refresh()
    assert c.lower is None and sorted_rows(c.data).equals(sorted_rows(table_cache.full_read(spec, settings)))
    assert c.save()

    # OPTIMIZE while it was down: the saved file list is stale, a full reload.
    DeltaTable(tables.BARS.path(settings)).optimize.compact()
    c = table_cache.TableCache(spec, settings, cache_dir=folder)
    assert c.refresh() == 6 and c.restored == 5 and c.full_loads == 1 and len(c.last_read) == 1
    assert sorted_rows(c.data).equals(sorted_rows(table_cache.full_read(spec, settings))) and c.data.num_rows == 12


def test_a_saved_cache_of_another_table_at_the_same_path_is_ignored(settings, tmp_path):
    import shutil

    spec, folder = data.SPECS["bars"], str(tmp_path / "cache")
    for k in range(3):
        write(settings, bar_rows(["BTCUSDT"], T0 + k * MIN, 1))
    first = table_cache.TableCache(spec, settings, cache_dir=folder)
    first.refresh()
    assert first.save()
    # The table re-created with other rows and as many commits: same version, another commit.
    shutil.rmtree(tables.BARS.path(settings))
    for k in range(3):
        write(settings, bar_rows(["ETHUSDT"], T0 + k * MIN, 1, seed=7))
    c = table_cache.TableCache(spec, settings, cache_dir=folder)
    assert c.refresh() == 2 and c.restored is None and c.full_loads == 1
    assert c.unique("symbol") == ["ETHUSDT"]
    assert sorted_rows(c.data).equals(sorted_rows(table_cache.full_read(spec, settings)))

    # A damaged snapshot is ignored too (read the table instead), and a missing table stays empty.
    from dashboard import snapshot

    # A save killed half-way (its files left behind, the pointer not replaced) leaves the last
    # whole copy in place; the next save clears the leftovers.
    leftover = tmp_path / "cache" / snapshot.key(c.uri, spec) / "v9-1.rows.arrow.1.tmp"
    leftover.write_bytes(b"ARROW1 half")
    assert c.save()
    assert not leftover.exists()
    restored = table_cache.TableCache(spec, settings, cache_dir=folder)
    assert restored.refresh() == 2 and restored.restored == 2 and restored.full_loads == 0
    pointer = tmp_path / "cache" / snapshot.key(c.uri, spec) / "current.json"
    pointer.write_text("{not json")
    c = table_cache.TableCache(spec, settings, cache_dir=folder)
    assert c.refresh() == 2 and c.restored is None and c.full_loads == 1
    shutil.rmtree(tables.BARS.path(settings))
    c = table_cache.TableCache(spec, settings, cache_dir=folder)
    assert c.refresh() is None and c.data is None and c.error is None
