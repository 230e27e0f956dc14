"""ingest's two-speed parse: the typed fast path gives exactly what the all-strings path gives.

Real Spark, no broker: Kafka-shaped rows built in the test. Every value is parsed both ways (the
production `parse_all` and the reference `parse_columns(s, fast=False)`, which sends every row
through the text parse and its precise reasons), and the two outputs must be equal row for
row, column for column, over good events and over thousands of damaged ones.
"""
from __future__ import annotations

import datetime as dt
import json
import random

import pytest

from tests.integration.test_ingest import BAD

NOW = dt.datetime(2024, 8, 9, 12, 0, tzinfo=dt.timezone.utc)
T_MS = int(NOW.timestamp() * 1000) - 60_000

TRADE = {"e": "trade", "E": T_MS + 1, "s": "BTCUSDT", "t": 3_700_000_000, "p": "61234.56000000",
         "q": "0.00123000", "T": T_MS, "m": True, "M": True}
AGG = {"e": "aggTrade", "E": T_MS + 1, "s": "ETHUSDT", "a": 900_000, "p": "2612.10", "q": "1.5",
       "f": 1_000_000, "l": 1_000_004, "T": T_MS, "m": False, "M": True}
# What a field may be replaced by: the right type, the wrong type, edge values, nothing at all.
DROP = object()
VALUES = [DROP, None, 0, -1, 1, 7, 2**63 - 1, 2**63, -(2**63), 1.5, 1e3, "7", "-7", "abc", "", " 7", "true",
          True, False, "1.0", "0.00000001", "0.000000001", "1e5", "-1.0", "0", "99999999999", {}, [],
          {"x": 1}, [1, 2], "BTCUSDT", "btcusdt", "trade", "aggTrade", T_MS, str(T_MS), 4102444800000,
          1262303999999, "61234.12345678", "61234.123456780000", 10**10, "10000000000"]


def damaged(rng: random.Random, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        ev = dict(rng.choice([TRADE, AGG]))
        for _ in range(rng.choice([1, 1, 1, 2, 3])):
            k = rng.choice(list(ev) + ["x"])
            v = rng.choice(VALUES)
            if v is DROP:
                ev.pop(k, None)
            else:
                ev[k] = v
        out.append(json.dumps(ev, separators=(",", ":")).encode())
    return out


def good_events(n: int) -> list[bytes]:
    out = []
    for i in range(n):
        ev = dict(TRADE if i % 2 else AGG)
        key = "t" if i % 2 else "a"
        ev[key] = ev[key] + i
        if i % 5 == 0:
            ev.pop("E")      # optional: event time falls back to trade time
        if i % 7 == 0:
            ev.pop("M")
        out.append(json.dumps(ev, separators=(",", ":")).encode())
    return out


def kafka_frame(spark, values: list[bytes]):
    import pyarrow as pa

    n = len(values)
    hdr = pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))
    t = pa.table({
        "key": pa.array([b"K"] * n, pa.binary()), "value": pa.array(values, pa.binary()),
        "topic": pa.array(["ticks"] * n), "partition": pa.array([0] * n, pa.int32()),
        "offset": pa.array(range(n), pa.int64()), "timestamp": pa.array([NOW] * n, pa.timestamp("us", tz="UTC")),
        "timestampType": pa.array([0] * n, pa.int32()),
        "headers": pa.array([[{"key": "tickcast-source", "value": b"replay"}]] * n, hdr)})
    return spark.createDataFrame(t)


def rows(df) -> dict[int, dict]:
    return {r["kafka_offset"]: r.asDict() for r in df.collect()}


@pytest.fixture(scope="module")
def frames(spark, base_settings):
    from jobs import ingest

    values = good_events(400) + [b for b, _ in BAD] + damaged(random.Random(7), 4000)
    raw = kafka_frame(spark, values)
    fast = ingest.parse_all(raw, base_settings, NOW, ingest.parse_columns(base_settings))
    ref = ingest.parse_all(raw, base_settings, NOW, ingest.parse_columns(base_settings, fast=False))
    return values, raw, rows(fast), rows(ref)


def test_fast_parse_equals_the_string_parse_on_every_row(frames):
    values, _, fast, ref = frames
    assert len(fast) == len(ref) == len(values)
    diff = [(values[o][:120], fast[o], ref[o]) for o in ref if fast[o] != ref[o]]
    assert not diff, diff[:3]
    reasons = [r["reason"] for r in ref.values()]
    good = sum(r is None for r in reasons)
    # The damage must reach both outcomes, and many kinds of reason, or the comparison proves little.
    assert 400 < good < len(values) - 1000
    assert len({r.split(":")[0] for r in reasons if r}) >= 15


def test_good_events_take_the_fast_path_and_keep_their_values(frames, spark, base_settings):
    from jobs import ingest

    values, raw, fast, _ = frames
    flags = {r["kafka_offset"]: not r["retry"] for r in
             ingest.parse(raw, base_settings, NOW).select("kafka_offset", "retry").collect()}
    assert all(flags[o] for o in range(400))                       # every good event
    # A complete, well-typed event fails only value rules on the fast path; the rest are re-parsed.
    value_rules = ("non-positive", "in the future", "empty symbol", "is not a decimal", "before 2010", "negative", "event time")
    for i, (raw_value, why) in enumerate(BAD):
        typed_ok = any(k in why for k in value_rules) and b'"t":"' not in raw_value and b'"m":"' not in raw_value
        assert flags[400 + i] == typed_ok, (raw_value[:80], why)
    r = fast[1]                                                     # a trade, with E
    assert (r["symbol"], r["event_kind"], r["id"], r["first_trade_id"], r["last_trade_id"]) == \
        ("BTCUSDT", "trade", 3_700_000_001, 3_700_000_001, 3_700_000_001)
    assert str(r["price"]) == "61234.56000000" and str(r["quantity"]) == "0.00123000"
    assert str(r["quote_quantity"]) == "75.3185088000000000"
    assert int(r["trade_time"].timestamp() * 1000) == T_MS and int(r["event_time"].timestamp() * 1000) == T_MS + 1
    assert r["is_buyer_maker"] is True and r["source"] == "replay" and r["reason"] is None
    a = fast[0]                                                     # an aggTrade without E
    assert (a["event_kind"], a["id"], a["first_trade_id"], a["last_trade_id"]) == ("aggTrade", 900_000, 1_000_000,
                                                                                   1_000_004)
    assert a["event_time"] == a["trade_time"] and a["is_buyer_maker"] is False
