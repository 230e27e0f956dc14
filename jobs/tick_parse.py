"""Ingest's parse: raw Kafka records -> typed trades and the bad ones with their reason (Spark
Columns, built once per JVM by the writer). Every rule of what makes a record bad is here."""
from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from tickcast import events, schemas
from tickcast.engine.arrow_frames import local_frame
from tickcast.settings import Settings

_INT = r"^-?[0-9]{1,19}$"


# Up to 16 integer digits and 8 decimals (trailing zeros beyond the 8th are exact, so allowed).
_DEC = r"^[0-9]{1,16}(\.[0-9]{0,8}0*)?$"


_SYMBOL = r"^[A-Z0-9][A-Z0-9_\-]{0,31}$"


MIN_TRADE_MS = events.MIN_TRADE_MS        # 2010-01-01: earlier means a unit or garbage error


MAX_PRICE = 10**10                        # keeps price x quantity exact in decimal(38,16)


MAX_QTY = 10**11


_REQUIRED = {
    "trade": ("s", "t", "p", "q", "T", "m"),
    "aggTrade": ("s", "a", "p", "q", "f", "l", "T", "m"),
}


def _field(j, name):
    return j[schemas.EVENT_ALIASES[name]]


def _fast(j):
    """A Column: the typed parse `j` holds a complete trade event (every field converted, none missing).

    Such a row can only fail the value rules of `_rules(..., typed=True)`; any other row (garbage,
    a missing field, a number sent as a string...) takes the string parse and its precise reason.
    """
    from pyspark.sql import functions as F

    e = _field(j, "e")

    def present(kind):
        cond = e == kind
        for n in _REQUIRED[kind]:
            cond = cond & _field(j, n).isNotNull()
        return cond

    return F.coalesce(j.isNotNull() & j[schemas.CORRUPT].isNull() & (present("trade") | present("aggTrade")),
                      F.lit(False))


def _rules(s: Settings, j, typed: bool) -> list:
    """(condition, message) pairs, first match wins: why a raw Kafka record cannot become a tick.

    `j` is the parsed event: all strings (`typed=False`, every rule) or the typed parse of a row
    that `_fast` accepted (`typed=True`: the rules a complete, well-typed event can still fail, in
    the same order, so both give the same first reason). Refers to `value` and `batch_time`.
    """
    from pyspark.sql import functions as F

    v = F.col("value")

    def field(name):
        return _field(j, name)

    def big(name):
        return field(name) if typed else field(name).try_cast("bigint")

    e = field("e")
    rules = []
    if not typed:
        def missing(names):
            return F.concat_ws(", ", *[F.when(field(n).isNull(), F.lit(n)) for n in names])

        miss = F.when(e == "trade", missing(_REQUIRED["trade"])).otherwise(missing(_REQUIRED["aggTrade"]))
        rules += [
            (v.isNull() | (F.length(v) == 0), F.lit("empty value")),
            (F.length(v) > s.max_event_bytes,
             F.format_string(f"oversized value (%d bytes > {s.max_event_bytes})", F.length(v))),
            (e.isNull(),
             F.when(F.expr("try_parse_json(cast(value as string))").isNull(), F.lit("malformed JSON"))
              .when(~F.ltrim(F.col("value").cast("string")).startswith("{"), F.lit("JSON value is not an object"))
              .otherwise(F.lit("missing field: e (event type)"))),
            (~e.isin(*schemas.TRADE_KINDS), F.concat(F.lit("unknown event type: "), F.substring(e, 1, 64))),
            (miss != "", F.concat(F.lit("missing field: "), miss)),
        ]
    rules += [
        (F.trim(field("s")) == "", F.lit("empty symbol")),
        (~field("s").rlike(_SYMBOL), F.concat(F.lit("invalid symbol: "), F.substring(field("s"), 1, 64))),
    ]
    if not typed:
        for name in ("t", "T", "E", "a", "f", "l"):
            rules.append((field(name).isNotNull() & ~field(name).rlike(_INT),
                          F.concat(F.lit(f"field {name} is not an integer: "), F.substring(field(name), 1, 64))))
            # 19 digits can exceed the int64 range: try_cast gives NULL, which every later
            # comparison would let through (a NULL trade time or id in bronze).
            rules.append((field(name).isNotNull() & big(name).isNull(),
                          F.concat(F.lit(f"field {name} out of integer range: "), F.substring(field(name), 1, 64))))
        rules += [
            (~field("m").isin("true", "false"),
             F.concat(F.lit("field m is not a boolean: "), F.substring(field("m"), 1, 64))),
            (field("M").isNotNull() & ~field("M").isin("true", "false"),
             F.concat(F.lit("field M is not a boolean: "), F.substring(field("M"), 1, 64))),
        ]
    for name, what, top in (("p", "price", MAX_PRICE), ("q", "quantity", MAX_QTY)):
        num = field(name).try_cast("decimal(38,18)")
        rules += [
            (~field(name).rlike(_DEC),
             F.concat(F.lit(f"field {name} is not a decimal {what} (up to 8 decimals): "),
                      F.substring(field(name), 1, 64))),
            (num <= 0, F.concat(F.lit(f"non-positive {what}: "), field(name))),
            (num >= top, F.concat(F.lit(f"{what} out of range: "), field(name))),
        ]
    T, E = big("T"), big("E")
    now_ms = F.unix_millis("batch_time")
    rules += [
        (big("t") < 0, F.lit("negative trade id")),
        (big("a") < 0, F.lit("negative aggregate trade id")),
        ((e == "aggTrade") & (big("f") < 0), F.lit("negative first trade id")),
        ((e == "aggTrade") & (big("f") > big("l")), F.lit("first trade id after last trade id")),
    ]
    if not typed:
        rules.append((F.when(e == "trade", big("t")).otherwise(big("a")).isNull(), F.lit("missing trade id")))
    rules += [
        (T < MIN_TRADE_MS, F.concat(F.lit("trade time before 2010 (not epoch ms?): "), field("T").cast("string"))),
        (T > now_ms + s.max_future_skew_seconds * 1000,
         F.format_string("trade time %.0f s in the future", (T - now_ms) / 1000.0)),
        # Any long passes as E, and one past timestamp range would fail the whole batch.
        (E < MIN_TRADE_MS, F.concat(F.lit("event time before 2010 (not epoch ms?): "), field("E").cast("string"))),
        (E > now_ms + s.max_future_skew_seconds * 1000,
         F.format_string("event time %.0f s in the future", (E - now_ms) / 1000.0)),
    ]
    return rules


def _values(j, typed: bool) -> dict:
    """The tick's typed values from the parsed event `j` (see `_rules` for `typed`)."""
    from pyspark.sql import functions as F

    def f(name):
        return _field(j, name)

    def big(name):
        return f(name) if typed else f(name).try_cast("bigint")

    e = f("e")
    price = f("p").try_cast(schemas.PRICE)
    qty = f("q").try_cast(schemas.PRICE)
    return {
        "symbol": f("s"),
        "event_kind": e,
        "id": F.when(e == "trade", big("t")).otherwise(big("a")),
        "first_trade_id": F.when(e == "trade", big("t")).otherwise(big("f")),
        "last_trade_id": F.when(e == "trade", big("t")).otherwise(big("l")),
        "price": price,
        "quantity": qty,
        "quote_quantity": (price.try_cast("decimal(18,8)") * qty.try_cast("decimal(19,8)")).try_cast(schemas.QUOTE),
        "trade_ms": big("T"),
        "event_ms": F.coalesce(big("E"), big("T")),
        "is_buyer_maker": f("m") if typed else f("m") == "true",
    }


class ParseColumns(NamedTuple):
    """parse's projections, built once (several hundred py4j calls): the typed pass, the re-parse."""
    typed: tuple
    strings: tuple


def parse(raw, s: Settings, now: dt.datetime, columns: ParseColumns | None = None):
    """Raw Kafka rows -> the columns of bronze.ticks and bronze.quarantine, plus `reason` and `retry`.

    Pure DataFrame transform (no I/O). Every value is parsed with the event's own types
    (`schemas.TYPED_EVENT`): a string schema makes the JSON parser copy each number and boolean
    through a generator (measured: ~30% of from_json's time). A complete, well-typed event gets its
    values and `reason` (NULL for a good trade) here; any other row (garbage, a missing field, a
    wrong type) gets `retry` true, and `settle` parses it again with every field as text, for a
    reason that names the field. Kept apart so that a batch without such rows (nearly all) plans
    and runs only the typed rules: with both in one plan, a live 50-row batch cost ~0.07 s more
    Spark JVM CPU.

    `now` (the micro-batch's start) enters as the one row of a broadcast table, not as a literal
    and not as current_timestamp(): a literal changes the generated code every batch (a fresh
    compile, measured ~0.3 s of a small batch), a non-deterministic time makes Delta's MERGE miss
    the cached batch. `columns` is `parse_columns(s)`, built once by a caller that parses every
    batch.
    """
    from pyspark.sql import functions as F

    columns = columns or parse_columns(s)
    clock = local_frame(raw.sparkSession, [(now,)], "batch_time timestamp")
    return _project(raw.crossJoin(F.broadcast(clock)), columns.typed)


def settle(parsed, s: Settings, columns: ParseColumns | None = None):
    """`parse`'s output with every `retry` row parsed again as text: `retry` is false throughout."""
    columns = columns or parse_columns(s)
    return parsed.where("NOT retry").unionByName(_project(parsed.where("retry"), columns.strings))


def parse_all(raw, s: Settings, now: dt.datetime, columns: ParseColumns | None = None):
    """`parse` then `settle`: every row decided (tests and one-off callers; the job settles only when needed)."""
    columns = columns or parse_columns(s)
    return settle(parse(raw, s, now, columns), s, columns)


def _project(df, steps):
    for step in steps:
        df = df.select(*step)
    return df


def parse_columns(s: Settings, fast: bool = True) -> ParseColumns:
    """The Columns of both passes. `fast=False` makes the typed pass decide nothing, so every row
    is parsed as text: the reference the typed pass is tested against."""
    from pyspark.sql import functions as F

    def event(schema, aliased, options=None):
        j = F.from_json(F.col("value").cast("string"), schema.spark_type(), options or {}).cast(aliased.spark_type())
        # Not parsed at all above the size limit: the text pass reports it.
        return F.when(F.length("value") <= s.max_event_bytes, j)

    kafka = ["key", "value", "topic", "partition", "offset", "timestamp", "batch_time", "source"]

    def outputs(v: dict, retry):
        # Times only for good rows: a bad row's may be out of timestamp range (an error, not a NULL).
        ok_row = F.col("reason").isNull() & ~retry
        keep_raw = F.col("reason").isNotNull() | retry
        trade_time = F.when(ok_row, F.timestamp_millis(v["trade_ms"]))
        return [
            *(v[k].alias(k) for k in ("symbol", "event_kind", "id", "first_trade_id", "last_trade_id",
                                       "price", "quantity", "quote_quantity")),
            trade_time.alias("trade_time"),
            F.when(ok_row, F.timestamp_millis(v["event_ms"])).alias("event_time"),
            v["is_buyer_maker"].alias("is_buyer_maker"),
            "source",
            F.col("partition").alias("kafka_partition"),
            F.col("offset").alias("kafka_offset"),
            F.col("timestamp").alias("kafka_timestamp"),
            F.col("batch_time").alias("ingest_time"),
            F.to_date(trade_time).alias("date"),
            # The raw bytes only where quarantine (or the text pass) needs them: a good row's copy
            # would triple what the writer caches per batch.
            F.when(keep_raw, F.col("value")).alias("raw_value"),
            F.when(keep_raw, F.col("key")).alias("raw_key"),
            F.col("topic").alias("kafka_topic"),
            "reason",
            retry.alias("retry"),
        ]

    # The typed pass.
    source = F.expr("get(filter(headers, h -> h.key = 'tickcast-source'), 0).value").cast("string").alias("source")
    typed = event(schemas.TYPED_EVENT, schemas.TYPED_EVENT_ALIASED, {"columnNameOfCorruptRecord": schemas.CORRUPT})
    jt = F.col("jt")
    is_fast = _fast(jt) if fast else F.lit(False)
    t_reason = F.when(is_fast, F.coalesce(*[F.when(c, m) for c, m in _rules(s, jt, typed=True)]))
    typed_pass = (
        [*kafka[:-1], source, typed.alias("jt")],
        [*kafka, "jt", (~is_fast).alias("retry"), t_reason.alias("reason")],
        outputs(_values(jt, typed=True), F.col("retry")),
    )
    # The text pass, over the typed pass's output rows.
    js = F.col("js")
    back = [F.col("raw_value").alias("value"), F.col("raw_key").alias("key"), F.col("kafka_topic").alias("topic"),
            F.col("kafka_partition").alias("partition"), F.col("kafka_offset").alias("offset"),
            F.col("kafka_timestamp").alias("timestamp"), F.col("ingest_time").alias("batch_time"), "source"]
    s_reason = F.coalesce(*[F.when(c, m) for c, m in _rules(s, js, typed=False)])
    text_pass = (
        back,
        [*kafka, event(schemas.RAW_EVENT, schemas.RAW_EVENT_ALIASED).alias("js")],
        [*kafka, "js", s_reason.alias("reason")],
        outputs(_values(js, typed=False), F.lit(False)),
    )
    return ParseColumns(typed_pass, text_pass)


def good(parsed):
    return parsed.where("reason IS NULL AND NOT retry").select(*schemas.TICKS.names)


def quarantined(parsed):
    return parsed.where("reason IS NOT NULL AND NOT retry").select(*schemas.QUARANTINE.names)
