"""Job `features`: silver.bars_1m (stream) -> silver.features, rolling features kept in Spark state.

Per symbol, `applyInPandasWithState` keeps the last `features.WINDOW` minutes of the symbol's
current segment; each micro-batch's new bars are applied to that state by `features.advance`, the
same pure function a batch recomputation and serving use. Bars older than a symbol's state (for
example klines backfilled after the stream had passed them) are counted in ops.late_bars, not
applied. Rows are inserted once on (symbol, window_start, feature_version) (`delta_io.InsertOnce`:
an idempotent append for a live batch, an insert-only MERGE otherwise), so a re-run batch after a
crash adds nothing twice.
"""
from __future__ import annotations

import datetime as dt

from jobs.delta_io import InsertOnce, QuerySink, read_stream, spans_of, start_sink
from tickcast.lake.write import append_once, ensure_table
from tickcast import features, lake, schemas, tables
from tickcast.engine.zipimport_cache import cheap_import_invalidation
from tickcast.settings import Settings

QUERY = "features"
# The minutes kept per symbol travel as one float64 matrix in bytes: Spark 4.0 cannot pickle an
# array-typed state column back to Python (`couldn't introspect javabean` once state exists).
STATE_DDL = "seg_start bigint, buf_start bigint, buf binary"
# What the stateful step emits: a feature row (kind = 'feature') or a late bar (kind = 'late').
OUT_COLS = ("kind",) + features.META + features.COLUMNS


def _out_ddl() -> str:
    types = {"kind": "string", "symbol": "string", "window_ms": "bigint", "feature_version": "string",
             "close": "double", "minutes_in_segment": "int", "warmup": "boolean"}
    return ", ".join(f"{c} {types.get(c, 'double')}" for c in OUT_COLS)


def select_inputs(bars):
    """silver.bars_1m -> the float columns the feature math takes (pure transform)."""
    from pyspark.sql import functions as F

    return bars.select(
        "symbol", F.unix_millis("window_start").alias("window_ms"),
        *[F.col(c).cast("double").alias(c) for c in ("close", "volume", "quote_volume", "trade_count")],
        F.coalesce(F.col("imbalance"), F.lit(0.0)).alias("imbalance"),
        F.coalesce(F.col("vwap"), F.col("close").cast("double")).alias("vwap"))


def step(key, frames, state):
    """The per-symbol stateful step (runs in a Python worker)."""
    import numpy as np
    import pandas as pd

    cheap_import_invalidation()
    (symbol,) = key
    st = features.State()
    if state.exists:
        seg_start, buf_start, buf = state.get
        m = np.frombuffer(bytes(buf), dtype="<f8").reshape(len(features.RAW), -1)
        st = features.State(int(seg_start), int(buf_start), {c: m[i].copy() for i, c in enumerate(features.RAW)})
    bars = pd.concat(list(frames), ignore_index=True)
    st, rows, late = features.advance(st, bars, symbol)
    if not st.empty:
        m = np.stack([st.buf[c] for c in features.RAW]).astype("<f8")
        state.update((st.seg_start, st.buf_start, m.tobytes()))
    rows.insert(0, "kind", "feature")
    if len(late):
        lr = features.empty_rows().reindex(range(len(late)))
        lr["symbol"], lr["window_ms"] = symbol, late["window_ms"].to_numpy()
        lr["feature_version"], lr["close"] = features.feature_version(), late["close"].to_numpy()
        lr["minutes_in_segment"], lr["warmup"] = 0, True
        lr.insert(0, "kind", "late")
        rows = pd.concat([rows, lr], ignore_index=True)
    rows["minutes_in_segment"] = rows["minutes_in_segment"].astype("int32")
    rows["warmup"] = rows["warmup"].astype(bool)
    if len(rows):   # nothing to emit: yield nothing (an empty frame makes pandas warn at every batch)
        yield rows[list(OUT_COLS)]


def to_rows(out):
    """Stateful output rows (Arrow) -> silver.features columns (pure transform)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    feat = out.filter(pc.equal(out["kind"], "feature"))
    return pa.table({c: feat["window_ms"].cast(pa.timestamp("ms", tz="UTC")) if c == "window_start" else feat[c]
                     for c in schemas.FEATURES.names})


def late_rows(out, batch_id: int, now):
    """Stateful output rows (Arrow) -> ops.late_bars rows of the late bars among them (pure transform)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    late = out.filter(pc.equal(out["kind"], "late"))
    n = late.num_rows
    return pa.table({"query_name": pa.array([QUERY] * n, pa.string()), "symbol": late["symbol"],
                     "window_start": late["window_ms"].cast(pa.timestamp("ms", tz="UTC")),
                     "batch_id": pa.array([batch_id] * n, pa.int64()),
                     "noticed_at": pa.array([now] * n, pa.timestamp("us", tz="UTC"))})


class FeatureWriter(QuerySink):
    """foreachBatch sink: the feature rows inserted once; late bars appended idempotently."""

    def __init__(self, s: Settings):
        super().__init__()
        self.s = s
        self.insert = InsertOnce(tables.FEATURES, s, schemas.FEATURES_KEY)

    def __call__(self, batch, batch_id: int) -> None:
        # One action, so the stateful step runs once for the batch; its few rows come to the
        # driver as Arrow and go to the table from there (a persist, an aggregate over it and the
        # insert's read were three Spark jobs, ~0.3 s of a live batch).
        out = batch.toArrow()
        feat, late = to_rows(out), late_rows(out, batch_id, dt.datetime.now(dt.timezone.utc))
        if feat.num_rows:
            spans = spans_of(feat["symbol"].to_pylist(), lake.to_ms(feat["window_start"]))
            self.insert(feat, spans, self.app_id(QUERY), batch_id, spark=batch.sparkSession)
        if late.num_rows:
            append_once(late, tables.LATE_BARS.path(self.s), self.app_id(QUERY + "-late"), batch_id)


def start(spark, s: Settings, available_now: bool = False):
    """Start the features query on the silver.bars_1m stream; returns the StreamingQuery."""
    from pyspark.sql.streaming.state import GroupStateTimeout

    for t in (tables.BARS, tables.FEATURES, tables.LATE_BARS):
        ensure_table(spark, t, s)
    out = (select_inputs(read_stream(spark, tables.BARS, s)).groupBy("symbol")
           .applyInPandasWithState(step, _out_ddl(), STATE_DDL, "append", GroupStateTimeout.NoTimeout))
    # Bars come once a minute and an idle poll of the bars table is cheap; a short trigger keeps
    # the wait for it off the bar -> prediction path (TICKCAST_MINUTE_TRIGGER_SECONDS).
    return start_sink(out, QUERY, FeatureWriter(s), s, available_now, trigger_seconds=s.minute_trigger_seconds)
