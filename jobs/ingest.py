"""Job `ingest`: Kafka topic `ticks` -> bronze.ticks (typed, unique per trade) + bronze.quarantine.

Exactly once: the Kafka offsets live in the checkpoint; each micro-batch inserts only trades whose
(symbol, event kind, id) is not in the table yet (an insert-only Delta MERGE), and quarantine rows
are appended with Delta's idempotent-write options keyed by the batch id. A batch re-run after a
crash, or a replay of the same file, therefore adds nothing twice.
"""
from __future__ import annotations

import logging

from tickcast import schemas, tables
from tickcast.settings import Settings

log = logging.getLogger("tickcast.ingest")
QUERY = "ingest"

_INT = r"^-?[0-9]{1,19}$"
# Up to 16 integer digits and 8 decimals (trailing zeros beyond the 8th are exact, so allowed).
_DEC = r"^[0-9]{1,16}(\.[0-9]{0,8}0*)?$"
_SYMBOL = r"^[A-Z0-9][A-Z0-9_\-]{0,31}$"
MIN_TRADE_MS = 1_262_304_000_000          # 2010-01-01: earlier means a unit or garbage error
MAX_PRICE = 10**10                        # keeps price x quantity exact in decimal(38,16)
MAX_QTY = 10**11

_REQUIRED = {
    "trade": ("s", "t", "p", "q", "T", "m"),
    "aggTrade": ("s", "a", "p", "q", "f", "l", "T", "m"),
}


def read_topic(spark, s: Settings):
    """The raw trade topic as a stream, from the earliest offset on a fresh checkpoint."""
    reader = (spark.readStream.format("kafka")
              .option("kafka.bootstrap.servers", s.kafka_bootstrap)
              .option("subscribe", s.topic)
              .option("startingOffsets", "earliest")
              .option("includeHeaders", "true")
              # Data deleted by retention before ingest saw it is reported, not fatal.
              .option("failOnDataLoss", "false"))
    if s.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", s.max_offsets_per_trigger)
    return reader.load()


def _reason(s: Settings):
    """A Column: why a raw Kafka record cannot become a tick (NULL when it can)."""
    from pyspark.sql import functions as F

    v, j = F.col("value"), F.col("j")

    def field(name):
        return j[schemas.EVENT_ALIASES[name]]

    e = field("e")

    def missing(names):
        return F.concat_ws(", ", *[F.when(field(n).isNull(), F.lit(n)) for n in names])

    id_field = F.when(e == "trade", field("t")).otherwise(field("a"))
    miss = F.when(e == "trade", missing(_REQUIRED["trade"])).otherwise(missing(_REQUIRED["aggTrade"]))
    int_fields = ("t", "T", "E") + ("a", "f", "l")
    rules = [
        (v.isNull() | (F.length(v) == 0), F.lit("empty value")),
        (F.length(v) > s.max_event_bytes,
         F.format_string(f"oversized value (%d bytes > {s.max_event_bytes})", F.length(v))),
        (e.isNull(),
         F.when(F.expr("try_parse_json(cast(value as string))").isNull(), F.lit("malformed JSON"))
          .when(~F.ltrim(F.col("value").cast("string")).startswith("{"), F.lit("JSON value is not an object"))
          .otherwise(F.lit("missing field: e (event type)"))),
        (~e.isin(*schemas.TRADE_KINDS), F.concat(F.lit("unknown event type: "), F.substring(e, 1, 64))),
        (miss != "", F.concat(F.lit("missing field: "), miss)),
        (F.trim(field("s")) == "", F.lit("empty symbol")),
        (~field("s").rlike(_SYMBOL), F.concat(F.lit("invalid symbol: "), F.substring(field("s"), 1, 64))),
    ]
    for name in int_fields:
        rules.append((field(name).isNotNull() & ~field(name).rlike(_INT),
                      F.concat(F.lit(f"field {name} is not an integer: "), F.substring(field(name), 1, 64))))
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
    T = field("T").try_cast("bigint")
    now_ms = F.unix_millis(F.current_timestamp())
    rules += [
        (field("t").try_cast("bigint") < 0, F.lit("negative trade id")),
        (field("a").try_cast("bigint") < 0, F.lit("negative aggregate trade id")),
        ((e == "aggTrade") & (field("f").try_cast("bigint") > field("l").try_cast("bigint")),
         F.lit("first trade id after last trade id")),
        (id_field.isNull(), F.lit("missing trade id")),
        (T < MIN_TRADE_MS, F.concat(F.lit("trade time before 2010 (not epoch ms?): "), field("T"))),
        (T > now_ms + s.max_future_skew_seconds * 1000,
         F.format_string("trade time %.0f s in the future", (T - now_ms) / 1000.0)),
    ]
    return F.coalesce(*[F.when(cond, msg) for cond, msg in rules])


def parse(raw, s: Settings):
    """Raw Kafka rows -> the columns of bronze.ticks and bronze.quarantine, plus `reason`.

    Pure DataFrame transform (no I/O): `reason` is NULL for a good trade.
    """
    from pyspark.sql import functions as F

    j = (F.from_json(F.col("value").cast("string"), schemas.RAW_EVENT.spark_type())
         .cast(schemas.RAW_EVENT_ALIASED.spark_type()))
    df = raw.select(
        "key", "value", "topic", "partition", "offset", "timestamp",
        F.expr("get(filter(headers, h -> h.key = 'tickcast-source'), 0).value").cast("string").alias("source"),
        F.when(F.length("value") <= s.max_event_bytes, j).alias("j"),
    ).withColumn("reason", _reason(s))
    def f(name):
        return F.col("j")[schemas.EVENT_ALIASES[name]]

    def big(name):
        return f(name).try_cast("bigint")

    e = f("e")
    price = f("p").try_cast(schemas.PRICE)
    qty = f("q").try_cast(schemas.PRICE)
    T = big("T")
    trade_time = F.timestamp_millis(T)
    return df.select(
        f("s").alias("symbol"),
        e.alias("event_kind"),
        F.when(e == "trade", big("t")).otherwise(big("a")).alias("id"),
        F.when(e == "trade", big("t")).otherwise(big("f")).alias("first_trade_id"),
        F.when(e == "trade", big("t")).otherwise(big("l")).alias("last_trade_id"),
        price.alias("price"),
        qty.alias("quantity"),
        (price.try_cast("decimal(18,8)") * qty.try_cast("decimal(19,8)")).try_cast(schemas.QUOTE).alias("quote_quantity"),
        trade_time.alias("trade_time"),
        F.timestamp_millis(F.coalesce(big("E"), T)).alias("event_time"),
        (f("m") == "true").alias("is_buyer_maker"),
        "source",
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.current_timestamp().alias("ingest_time"),
        F.to_date(trade_time).alias("date"),
        F.col("value").alias("raw_value"),
        F.col("key").alias("raw_key"),
        F.col("topic").alias("kafka_topic"),
        "reason",
    )


def good(parsed):
    return parsed.where("reason IS NULL").select(*schemas.TICKS.names)


def quarantined(parsed):
    return parsed.where("reason IS NOT NULL").select(*schemas.QUARANTINE.names)


def merge_condition(bounds: list[tuple[str, str, int, int]], dates: list) -> str:
    """The MERGE condition: the key, plus literal bounds so Delta skips files outside this batch.

    Args:
        bounds: (symbol, event kind, min id, max id) per group in the batch.
        dates: the distinct trade dates in the batch.
    """
    cond = ["t.symbol = s.symbol", "t.event_kind = s.event_kind", "t.id = s.id", "t.date = s.date"]
    if dates:
        cond.append("t.date IN (" + ", ".join(f"DATE'{d.isoformat()}'" for d in dates) + ")")
    if bounds and len(bounds) <= 64:
        ranges = [f"(t.symbol = '{sym}' AND t.event_kind = '{kind}' AND t.id BETWEEN {lo} AND {hi})"
                  for sym, kind, lo, hi in bounds]
        cond.append("(" + " OR ".join(ranges) + ")")
    return " AND ".join(cond)


def write_batch(batch, batch_id: int, s: Settings) -> dict:
    """foreachBatch body: quarantine (idempotent append) and ticks (insert-only merge)."""
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from jobs.delta_io import append_once

    spark = batch.sparkSession
    # Parse once: the cache is filled by the one aggregate below, which also yields the counts and
    # the per-symbol id bounds that let the MERGE skip every file outside this batch.
    parsed = parse(batch, s).persist()
    try:
        stats = (parsed.groupBy(F.col("reason").isNull().alias("ok"), "symbol", "event_kind")
                 .agg(F.min("id"), F.max("id"), F.count(F.lit(1)), F.collect_set("date")).collect())
        n_bad = sum(r[5] for r in stats if not r[0])
        good_stats = [r for r in stats if r[0]]
        n_good = sum(r[5] for r in good_stats)
        if n_bad:
            append_once(quarantined(parsed), tables.QUARANTINE.path(s), f"{QUERY}-quarantine", batch_id)
        if n_good:
            bounds = [(r[1], r[2], r[3], r[4]) for r in good_stats]
            dates = sorted({d for r in good_stats for d in r[6]})
            ticks = good(parsed).dropDuplicates(list(schemas.TICKS_KEY))
            (DeltaTable.forPath(spark, tables.TICKS.path(s)).alias("t")
             .merge(ticks.alias("s"), merge_condition(bounds, dates))
             .whenNotMatchedInsertAll()
             .execute())
        return {"batch_id": batch_id, "ticks": n_good, "quarantined": n_bad}
    finally:
        parsed.unpersist()


def start(spark, s: Settings, available_now: bool = False):
    """Start the ingest query; returns the StreamingQuery."""
    from jobs.delta_io import ensure_table

    for t in (tables.TICKS, tables.QUARANTINE):
        ensure_table(spark, t, s)
    writer = (read_topic(spark, s).writeStream.queryName(QUERY)
              .foreachBatch(lambda df, bid: write_batch(df, bid, s))
              .option("checkpointLocation", tables.checkpoint(s, QUERY)))
    writer = writer.trigger(availableNow=True) if available_now else \
        writer.trigger(processingTime=f"{s.trigger_seconds} seconds")
    return writer.start()
