"""Every schema, declared once and rendered as a Spark StructType, a DDL string, an Arrow schema or pandas dtypes.

No pyspark import at module level: `spark_type()` imports it when called.
"""
from __future__ import annotations

from dataclasses import dataclass

PRICE = "decimal(24,8)"       # contract: price and quantity as DECIMAL(24,8)
QUOTE = "decimal(38,16)"      # price x quantity kept exact (8 + 8 decimals)


@dataclass(frozen=True)
class Col:
    name: str
    type: str                  # Spark SQL type name: string, bigint, int, boolean, timestamp, date, binary, double, decimal(p,s)
    nullable: bool = True
    doc: str = ""


@dataclass(frozen=True)
class Schema:
    cols: tuple[Col, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.cols]

    def ddl(self) -> str:
        return ", ".join(f"`{c.name}` {c.type}{'' if c.nullable else ' NOT NULL'}" for c in self.cols)

    def spark_type(self):
        from pyspark.sql.types import StructType

        return StructType.fromDDL(", ".join(f"`{c.name}` {c.type}" for c in self.cols))

    def table_type(self):
        """The Spark StructType a Delta table is created with: `spark_type()` plus each column's
        NOT NULL, so that Delta itself refuses a row with a NULL key or time (any engine's write).
        `spark_type()` stays all-nullable: parsers and DataFrames built from it may hold NULLs
        before validation decides."""
        from pyspark.sql.types import StructField, StructType

        return StructType([StructField(f.name, f.dataType, c.nullable)
                           for f, c in zip(self.spark_type().fields, self.cols)])

    def arrow_type(self, declared_nulls: bool = False):
        """The pyarrow schema Spark's `toArrow` gives for `spark_type()` (every field nullable, as
        there), without a JVM: Spark parses DDL in its JVM, which driver-side Arrow code need not start.
        `declared_nulls`: NOT NULL where declared, so that a table created from it refuses a NULL there."""
        import re

        import pyarrow as pa

        m = {"string": pa.string(), "bigint": pa.int64(), "int": pa.int32(), "boolean": pa.bool_(),
             "double": pa.float64(), "timestamp": pa.timestamp("us", tz="UTC"), "date": pa.date32(),
             "binary": pa.binary()}

        def one(t: str):
            if dec := re.fullmatch(r"decimal\((\d+),\s*(\d+)\)", t):
                return pa.decimal128(int(dec[1]), int(dec[2]))
            return m[t]

        return pa.schema([pa.field(c.name, one(c.type), c.nullable or not declared_nulls) for c in self.cols])

    def pandas_dtypes(self) -> dict[str, str]:
        m = {"string": "string", "bigint": "Int64", "int": "Int32", "boolean": "boolean", "double": "float64",
             "timestamp": "datetime64[us, UTC]", "date": "object", "binary": "object"}
        return {c.name: m.get(c.type, "object") for c in self.cols}


# The fields of a Binance `trade` / `aggTrade` event as it sits in the topic. Everything is read
# as a string first so that ingest can say precisely which field has the wrong type.
EVENT_FIELDS: tuple[str, ...] = ("e", "E", "s", "t", "a", "p", "q", "f", "l", "T", "m", "M")
RAW_EVENT = Schema(tuple(Col(f, "string") for f in EVENT_FIELDS))
# Spark resolves struct fields case-insensitively (`e`/`E`, `t`/`T`, `m`/`M` would collide), so the
# parsed struct is cast positionally to these names; messages still say the Binance key.
EVENT_ALIASES: dict[str, str] = {
    "e": "ev_type", "E": "ev_time", "s": "ev_symbol", "t": "ev_trade_id", "a": "ev_agg_id", "p": "ev_price",
    "q": "ev_qty", "f": "ev_first_id", "l": "ev_last_id", "T": "ev_trade_time", "m": "ev_maker", "M": "ev_best",
}
RAW_EVENT_ALIASED = Schema(tuple(Col(EVENT_ALIASES[f], "string") for f in EVENT_FIELDS))
# The same fields with the types a well-formed event has, plus the parser's flag for any field that
# did not convert: ingest parses every value this way first (strings for numbers cost the JSON
# parser a copy per field) and falls back to RAW_EVENT only for values it flags.
EVENT_TYPES: dict[str, str] = {"e": "string", "E": "bigint", "s": "string", "t": "bigint", "a": "bigint",
                               "p": "string", "q": "string", "f": "bigint", "l": "bigint", "T": "bigint",
                               "m": "boolean", "M": "boolean"}
CORRUPT = "ev_corrupt"
TYPED_EVENT = Schema(tuple(Col(f, EVENT_TYPES[f]) for f in EVENT_FIELDS) + (Col(CORRUPT, "string"),))
TYPED_EVENT_ALIASED = Schema(tuple(Col(EVENT_ALIASES[f], EVENT_TYPES[f]) for f in EVENT_FIELDS)
                             + (Col(CORRUPT, "string"),))

TRADE_KINDS = ("trade", "aggTrade")

TICKS = Schema((
    Col("symbol", "string", False, "exchange symbol, e.g. BTCUSDT (synthetic ones end in -SIM)"),
    Col("event_kind", "string", False, "trade or aggTrade (their id series overlap)"),
    Col("id", "bigint", False, "trade id (t) or aggregate trade id (a)"),
    Col("first_trade_id", "bigint", False, "f for aggTrade, = id for trade"),
    Col("last_trade_id", "bigint", False, "l for aggTrade, = id for trade"),
    Col("price", PRICE, False),
    Col("quantity", PRICE, False),
    Col("quote_quantity", QUOTE, False, "price x quantity, exact"),
    Col("trade_time", "timestamp", False, "T"),
    Col("event_time", "timestamp", False, "E (= T where the source has none)"),
    Col("is_buyer_maker", "boolean", False, "m: true means the aggressor sold"),
    Col("source", "string", True, "tickcast-source header: live, gapfill, replay, simulate"),
    Col("kafka_partition", "int", False),
    Col("kafka_offset", "bigint", False),
    Col("kafka_timestamp", "timestamp", False),
    Col("ingest_time", "timestamp", False, "when the micro-batch that wrote the row started"),
    Col("date", "date", False, "UTC date of trade_time (partition column)"),
))
TICKS_KEY = ("symbol", "event_kind", "id")

QUARANTINE = Schema((
    Col("raw_value", "binary", True, "the Kafka value exactly as received"),
    Col("raw_key", "binary", True),
    Col("reason", "string", False),
    Col("source", "string", True),
    Col("kafka_topic", "string", False),
    Col("kafka_partition", "int", False),
    Col("kafka_offset", "bigint", False),
    Col("kafka_timestamp", "timestamp", False),
    Col("ingest_time", "timestamp", False),
))
QUARANTINE_KEY = ("kafka_topic", "kafka_partition", "kafka_offset")

VOLUME = "decimal(38,8)"      # sums of quantities (8 decimals, like the klines files)
QUOTE_VOLUME = "decimal(38,16)"  # sums of exact price x quantity

BARS = Schema((
    Col("symbol", "string", False),
    Col("window_start", "timestamp", False, "minute start (UTC), by trade time"),
    Col("window_end", "timestamp", False),
    Col("open", PRICE, False, "first trade by (trade time, id)"),
    Col("high", PRICE, False),
    Col("low", PRICE, False),
    Col("close", PRICE, False, "last trade by (trade time, id)"),
    Col("volume", VOLUME, False),
    Col("quote_volume", QUOTE_VOLUME, False),
    Col("vwap", "double", True, "quote volume / volume"),
    Col("trade_count", "bigint", False, "trades (for aggTrades: the sum of last - first + 1)"),
    Col("taker_buy_volume", VOLUME, False, "volume of trades whose aggressor bought (m = false)"),
    Col("taker_buy_quote_volume", QUOTE_VOLUME, False),
    Col("taker_sell_volume", VOLUME, False),
    Col("imbalance", "double", True, "(taker buy - taker sell) / volume, in [-1, 1]"),
    Col("first_trade_id", "bigint", True),
    Col("last_trade_id", "bigint", True),
    Col("source", "string", False, "ticks (built from bronze.ticks) or klines (backfilled)"),
    Col("event_kind", "string", True, "for source = ticks: trade or aggTrade"),
    Col("is_complete", "boolean", False,
        "no gap in trade ids inside the minute or since the previous bar; false for a stream's first minute"),
    Col("created_at", "timestamp", False),
))
BARS_KEY = ("symbol", "window_start")

STREAM_PROGRESS = Schema((
    Col("query_name", "string", False),
    Col("query_id", "string", False),
    Col("run_id", "string", False),
    Col("batch_id", "bigint", False),
    Col("timestamp", "timestamp", False, "micro-batch trigger time"),
    Col("num_input_rows", "bigint"),
    Col("input_rows_per_second", "double"),
    Col("processed_rows_per_second", "double"),
    Col("batch_duration_ms", "bigint"),
    Col("trigger_execution_ms", "bigint"),
    Col("start_offset", "string", True, "JSON of the source's start offsets"),
    Col("end_offset", "string", True),
    Col("latest_offset", "string", True),
    Col("lag", "bigint", True, "records between the end offsets and the latest offsets"),
    Col("rows_dropped_by_watermark", "bigint", True, "late rows a stateful query left out (e.g. late trades)"),
    Col("progress_json", "string", True, "the full StreamingQueryProgress"),
))


def _features_schema() -> Schema:
    from tickcast import features   # the feature list is defined once, with the feature math

    return Schema((
        Col("symbol", "string", False),
        Col("window_start", "timestamp", False, "the bar's minute"),
        Col("feature_version", "string", False, "hash of the feature specification"),
        Col("close", "double", False, "the bar's close (carried for labels and serving)"),
        Col("minutes_in_segment", "int", False, "minutes since the symbol's data resumed after a long gap"),
        Col("warmup", "boolean", False, "fewer minutes of history than the look-back: features are padded"),
        *(Col(name, "double", True, doc) for name, doc in features.SPEC + features.HISTORY_SPEC),
    ))


FEATURES = _features_schema()
FEATURES_KEY = ("symbol", "window_start", "feature_version")

LATE_BARS = Schema((
    Col("query_name", "string", False),
    Col("symbol", "string", False),
    Col("window_start", "timestamp", False, "the bar that arrived older than its symbol's state"),
    Col("batch_id", "bigint", False),
    Col("noticed_at", "timestamp", False),
))
LATE_BARS_KEY = ("query_name", "symbol", "window_start", "batch_id")

PREDICTIONS = Schema((
    Col("symbol", "string", False),
    Col("window_start", "timestamp", False, "the bar the prediction was made at (its features' minute)"),
    Col("horizon", "int", False, "minutes ahead"),
    Col("target_time", "timestamp", False, "window_start + horizon: the bar whose close realizes the prediction"),
    Col("model_name", "string", False),
    Col("model_version", "string", False),
    Col("feature_version", "string", False),
    Col("prob_up", "double", False, "probability that the log return over the horizon is > 0"),
    Col("pred_return", "double", False, "predicted log return over the horizon"),
    Col("close", "double", False, "the close at window_start, the base of the return"),
    Col("training_end", "timestamp", False, "end of the model's training data (its last label)"),
    Col("climatology_prob_up", "double", True, "baseline: the training up-rate"),
    Col("momentum_prob_up", "double", True, "baseline: one-feature logistic model on the last return"),
    Col("momentum_return", "double", True, "baseline: linear model on the last return"),
    Col("prediction_time", "timestamp", False, "when the micro-batch that scored the row started"),
    Col("batch_id", "bigint", False),
))
PREDICTIONS_KEY = ("symbol", "window_start", "horizon", "model_name", "model_version")

PREDICT_BATCHES = Schema((
    Col("batch_id", "bigint", False),
    Col("horizon", "int", False),
    Col("model_name", "string", False),
    Col("model_version", "string", False, "the version this batch was (and on a re-run is again) scored with"),
    Col("feature_version", "string", False),
    Col("input_rows", "bigint", True),
    Col("scored", "bigint", True),
    Col("refused_feature_version", "bigint", True, "rows whose feature version differs from the model's"),
    Col("skipped_warmup", "bigint", True, "rows inside a warm-up, not scored"),
    Col("switched_from", "string", True, "the previous batch's version when the alias moved"),
    Col("planned_at", "timestamp", False),
))
PREDICT_BATCHES_KEY = ("batch_id", "horizon")

OUTCOMES = Schema((
    *PREDICTIONS.cols,
    Col("realized_close", "double", False, "close of the last bar at or before target_time"),
    Col("realized_return", "double", False, "log(realized_close / close)"),
    Col("missing_minutes", "int", False, "minutes in (window_start, target_time] without a bar (carried close)"),
    Col("hit", "boolean", True, "direction right (prob_up > 0.5 vs return > 0); null for a zero return"),
    Col("climatology_hit", "boolean", True),
    Col("momentum_hit", "boolean", True),
    Col("after_training_end", "boolean", False, "the prediction's bar is after the model's training data"),
    Col("made_before_outcome", "boolean", False, "prediction_time before the target bar closed"),
    Col("outcome_time", "timestamp", False),
))
OUTCOMES_KEY = PREDICTIONS_KEY

MODEL_SCORES = Schema((
    Col("computed_at", "timestamp", False),
    Col("batch_id", "bigint", False),
    Col("model_name", "string", False),
    Col("model_version", "string", False),
    Col("horizon", "int", False),
    Col("symbol", "string", False, "a symbol, or * for all together"),
    Col("window", "string", False,
        "1h or 24h of target times up to the batch's latest bar (bar time, not computed_at: replays score too)"),
    Col("n", "bigint", False, "predictions counted: after the training end, made before the outcome"),
    Col("brier", "double", True),
    Col("accuracy", "double", True),
    Col("mae", "double", True),
    Col("climatology_brier", "double", True),
    Col("momentum_brier", "double", True),
    Col("climatology_accuracy", "double", True),
    Col("momentum_accuracy", "double", True),
))
MODEL_SCORES_KEY = ("batch_id", "model_name", "model_version", "horizon", "symbol", "window")

DRIFT = Schema((
    Col("computed_at", "timestamp", False),
    Col("batch_id", "bigint", False),
    Col("model_name", "string", False),
    Col("model_version", "string", False),
    Col("feature", "string", False),
    Col("n", "bigint", False, "live rows in the window"),
    Col("window_start", "timestamp", True, "oldest live row compared"),
    Col("psi", "double", True, "population stability index against the training deciles"),
    Col("ks", "double", True, "Kolmogorov-Smirnov statistic against the training sample"),
    Col("ks_pvalue", "double", True),
    Col("drifted", "boolean", False, "psi above TICKCAST_DRIFT_PSI_THRESHOLD"),
))
DRIFT_KEY = ("batch_id", "model_name", "model_version", "feature")

LOST_OFFSETS = Schema((
    Col("query_name", "string", False),
    Col("topic", "string", False),
    Col("partition", "int", False),
    Col("batch_id", "bigint", False),
    Col("from_offset", "bigint", False, "the batch's planned start offset in the partition"),
    Col("to_offset", "bigint", False, "its planned end offset (exclusive)"),
    Col("read_rows", "bigint", False, "records the batch actually read from the partition"),
    Col("lost", "bigint", False, "offsets in the range that were gone (deleted by retention) when read"),
    Col("noticed_at", "timestamp", False),
))
LOST_OFFSETS_KEY = ("query_name", "topic", "partition", "from_offset")


def _interval_cols(prefix: str, what: str) -> tuple[Col, ...]:
    return (Col(prefix, "double", True, what), Col(f"{prefix}_lo", "double", True, "95% block-bootstrap interval"),
            Col(f"{prefix}_hi", "double", True))


BACKTEST = Schema((
    Col("run_id", "string", False, "the backtest's MLflow run"),
    Col("horizon", "int", False),
    Col("period", "int", False, "0, 1, ... in time order"),
    Col("period_start", "timestamp", False, "the retrain time: the model trains on data before it only"),
    Col("period_end", "timestamp", False, "exclusive"),
    Col("computed_at", "timestamp", False),
    Col("symbols", "string", False, "comma-separated"),
    Col("train_start", "timestamp", False, "the sliding window's start"),
    Col("gate", "string", False, "promoted, not promoted or failed (the retrain could not run)"),
    Col("gate_reason", "string", True),
    Col("candidate_version", "string", True, "the period's best candidate (backtest numbering, never registered)"),
    Col("candidate_family", "string", True),
    Col("candidate_beat_baselines", "boolean", True, "its Brier in this period below both baselines'"),
    Col("served_version", "string", True, "the champion the live rule would serve; null: nothing served"),
    Col("served_family", "string", True),
    Col("served_training_end", "timestamp", True, "every scored row of the period is after it"),
    Col("rows", "bigint", False, "labelled feature rows of the period"),
    Col("served_rows", "bigint", False),
    *_interval_cols("accuracy", "the served model's direction accuracy"),
    *_interval_cols("brier", "the served model's Brier score"),
    *_interval_cols("climatology_accuracy", "on the same rows"),
    *_interval_cols("climatology_brier", "on the same rows"),
    *_interval_cols("momentum_accuracy", "on the same rows"),
    *_interval_cols("momentum_brier", "on the same rows"),
    *_interval_cols("strategy_return", "long when P(up) > threshold, flat otherwise, after fees (simple return)"),
    *_interval_cols("strategy_gross_return", "the same before fees"),
    Col("strategy_fees", "double", False, "what the fees cost (share of capital)"),
    Col("position_changes", "bigint", False),
    Col("exposure", "double", False, "share of minutes long"),
    Col("buy_hold_return", "double", False, "holding throughout, one fee in and one out over the whole run"),
    Col("fee_bps", "double", False),
    Col("threshold", "double", False),
))
BACKTEST_KEY = ("run_id", "horizon", "period")
MODEL_EVENTS = Schema((
    Col("event_time", "timestamp", False, "when it happened (wall clock)"),
    Col("horizon", "int", False),
    Col("model_name", "string", False),
    Col("model_version", "string", True, "the version concerned; NULL for a retrain that registered none"),
    Col("event", "string", False,
        "promotion, refusal, demotion, expiry, failed_retrain, abandoned, manual_promotion or rollback"),
    Col("reason", "string", False, "in words"),
    Col("numbers", "string", True, "the numbers behind it, as a JSON object"),
    Col("source", "string", False, "who wrote the row: train, retrainer, models-cli"),
))
MODEL_EVENTS_KEY = ("event_time", "model_name", "event")
