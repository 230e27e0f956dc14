"""Bar completeness and kind choice (pure, no JVM)."""
from jobs.bar_rows import Prev, mark_complete


def bar(ms, first, last, kind="trade", gapless=True, sym="BTCUSDT"):
    return {"symbol": sym, "window_ms": ms, "first_trade_id": first, "last_trade_id": last,
            "event_kind": kind, "gapless": gapless}


def test_first_minute_is_incomplete_then_contiguous_minutes_are_complete():
    prev: dict = {}
    out = mark_complete([bar(120_000, 11, 20), bar(60_000, 1, 10), bar(240_000, 21, 30)], prev)
    # The minute at 180 000 had no trades: 240 000 still follows 120 000 without a gap.
    assert [(b["window_ms"], b["is_complete"]) for b in out] == [(60_000, False), (120_000, True), (240_000, True)]
    assert prev["BTCUSDT"] == Prev(240_000, 30) and "gapless" not in out[0]


def test_gaps_inside_or_before_a_minute_make_it_incomplete():
    prev = {"BTCUSDT": Prev(0, 10)}
    out = mark_complete([bar(60_000, 12, 20), bar(120_000, 21, 30, gapless=False), bar(180_000, 31, 40)], prev)
    assert [b["is_complete"] for b in out] == [False, False, True]


def test_trade_bar_preferred_over_agg_trade_bar_and_prev_without_ids():
    out = mark_complete([bar(60_000, 5, 9, kind="aggTrade"), bar(60_000, 1, 10)], {"BTCUSDT": Prev(0, None)})
    assert len(out) == 1 and out[0]["event_kind"] == "trade" and out[0]["is_complete"] is False


def test_a_minute_closes_once_the_watermark_reaches_its_end():
    from jobs.bar_rows import closed_through

    m = 1723161300000                                   # 23:55:00
    assert closed_through(m + 5_000, 5) == m            # 23:55:05 -> 23:55:00: 23:54 closed, 23:55 open
    assert closed_through(m + 4_999, 5) == m - 60_000   # a millisecond short: 23:54 still open
    assert closed_through(m + 64_999, 5) == m
    assert closed_through(m + 65_000, 5) == m + 60_000
    assert closed_through(m + 5_000, 0) == m and closed_through(m, 0) == m


def test_a_sinks_counts_join_its_batchs_progress_row_once():
    from jobs import progress

    progress.note("bars", 7, rows_dropped_by_watermark=3)
    row = progress.with_notes({"query_name": "bars", "batch_id": 7, "rows_dropped_by_watermark": 1})
    assert row["rows_dropped_by_watermark"] == 4
    again = progress.with_notes({"query_name": "bars", "batch_id": 7, "rows_dropped_by_watermark": 0})
    assert again["rows_dropped_by_watermark"] == 0
    other = progress.with_notes({"query_name": "ingest", "batch_id": 8, "rows_dropped_by_watermark": 0})
    assert other["rows_dropped_by_watermark"] == 0


def test_id_run_makes_a_minute_final_only_when_every_id_up_to_a_later_minute_is_seen():
    from jobs.bar_rows import IdRun

    m = 1723161300000                                   # 23:55:00
    r = IdRun()
    r.add(100, 150, m + 30_000)
    assert r.final_before() is None                     # no base yet: nothing closed in this run
    r.closed(120)                                       # the watermark closed a minute ending at id 120
    assert (r.through, r.through_ms) == (150, m + 30_000)
    assert r.final_before() == m                        # 23:55 holds id 150: still open
    r.add(155, 160, m + 61_000)                         # ids 151-154 missing: 23:55 stays open
    assert r.final_before() == m and r.islands == [(155, 160, m + 61_000)]
    r.add(151, 154, m + 59_000)                         # the gap filled, out of order
    assert (r.through, r.final_before(), r.islands) == (160, m + 60_000, [])
    r.add(140, 158, m + 50_000)                         # ids already counted change nothing
    assert (r.through, r.through_ms) == (160, m + 61_000)


def test_id_run_islands_merge_and_a_close_jumps_a_gap():
    from jobs.bar_rows import IdRun

    r = IdRun()
    r.add(10, 12, 1_000)
    r.add(20, 25, 3_000)
    r.add(13, 15, 2_000)                                # adjacent to the first: one island 10-15
    assert r.islands == [(10, 15, 2_000), (20, 25, 3_000)]
    r.closed(17)                                        # ids 16-17 never came, their minute closed by the watermark
    assert (r.through, r.through_ms) == (17, None) and r.final_before() is None
    r.add(18, 19, 2_500)                                # bridges to the second island
    assert (r.through, r.through_ms, r.islands) == (25, 3_000, [])
    r.closed(21)                                        # a close below `through` keeps it
    assert (r.through, r.through_ms) == (25, 3_000)


def _ticks(rows):
    """(symbol, kind, id, trade ms, ingest µs) rows -> bars.tick_frame's input, as Arrow."""
    import pyarrow as pa

    sym, kind, ids, t, cut = zip(*rows)
    return pa.table({"symbol": list(sym), "event_kind": list(kind), "id": pa.array(ids, pa.int64()),
                     "trade_time": pa.array([x * 1000 for x in t], pa.timestamp("us", tz="UTC")),
                     "ingest_time": pa.array(cut, pa.timestamp("us", tz="UTC"))})


def test_batch_groups_bounds_last_id_time_cut_and_late_ticks():
    from jobs.bar_rows import batch_groups, tick_frame

    t = tick_frame(_ticks([
        ("ETH", "trade", 7, 119_000, 5), ("BTC", "trade", 12, 61_000, 9), ("BTC", "trade", 10, 59_500, 9),
        ("BTC", "trade", 11, 62_000, 8),            # the highest id's time is 61 000, not the latest time
        ("BTC", "aggTrade", 3, 30_000, 2), ("ETH", "trade", 9, 125_000, 7)]))
    # BTC closed through 60 000: its tick at 59 500 (both kinds) is late; ETH falls back to the floor.
    got = batch_groups(t, {"BTC": 60_000, "ETH": None}, floor=120_000)
    assert got == [
        {"symbol": "BTC", "event_kind": "aggTrade", "lo": 3, "hi": 3, "n": 1, "hi_ms": 30_000, "t_max": 30_000,
         "cut": 2, "late": 1},
        {"symbol": "BTC", "event_kind": "trade", "lo": 10, "hi": 12, "n": 3, "hi_ms": 61_000, "t_max": 62_000,
         "cut": 9, "late": 1},
        {"symbol": "ETH", "event_kind": "trade", "lo": 7, "hi": 9, "n": 2, "hi_ms": 125_000, "t_max": 125_000,
         "cut": 7, "late": 1},
    ]
    # No boundary at all: nothing is late.
    assert [g["late"] for g in batch_groups(t, {}, None)] == [0, 0, 0]
    assert batch_groups(t.iloc[:0], {}, None) == []


def test_id_islands_split_at_gaps_per_symbol_and_kind():
    from jobs.bar_rows import id_islands, tick_frame

    t = tick_frame(_ticks([("BTC", "trade", i, 1000 * i, 0) for i in (5, 1, 2, 3, 7, 8)]
                          + [("BTC", "aggTrade", 2, 50, 0), ("ETH", "trade", 4, 40, 0), ("ETH", "trade", 4, 40, 0)]))
    assert id_islands(t) == [("BTC", "aggTrade", 2, 2, 50), ("BTC", "trade", 1, 3, 3000), ("BTC", "trade", 5, 5, 5000),
                             ("BTC", "trade", 7, 8, 8000), ("ETH", "trade", 4, 4, 40)]
