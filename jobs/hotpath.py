"""Job `hotpath`: the live path in one hop, Kafka -> bronze.ticks -> silver.bars_1m -> silver.features
-> gold.predictions, in the ingest query's micro-batch (docs/adr/0014-one-hop-hot-path.md).

The ingest query (same name and checkpoint as job `ingest`) with a sink that, once the batch's
ticks are committed to bronze, closes the minutes they made final (`bars.BarWriter.close`), turns
those bars into feature rows with each symbol's state held in the driver (`live_features`), scores
them with the champions' LiteRT artefacts (`live_predict`), and commits bars, features and
predictions in that order, each with its own idempotent write (txnAppId/txnVersion: the query's id
and the batch id; an insert-only MERGE where rows are not all new). A crash between two commits
re-runs the batch: what was committed is skipped or merged away, and what was not is written then;
rows a re-run cannot recompute (bars committed, features not) are found in the tables at the run's
first batch (`FeatureBook.start`, `LivePredictor.owed`). No stream polls a Delta table on the way.

The separate jobs `ingest`, `bars`, `features` and `predict` stay: they recompute history (available-now)
and are the stages one by one. They write the same tables, so they never run beside this one.
"""
from __future__ import annotations

import datetime as dt

from jobs import ingest
from jobs.bars import BarWriter
from jobs.delta_io import InsertOnce, spans_of, start_sink
from jobs.live_features import FeatureBook, bar_inputs
from jobs.live_predict import LivePredictor
from tickcast import lake, schemas, tables
from tickcast.lake.write import append_once, ensure_table
from tickcast.settings import Settings

QUERY = ingest.QUERY          # the ingest query, with the rest of the live path in its sink
APP_FEATURES, APP_LATE = "hotpath-features", "hotpath-late"


def feature_table(rows):
    """`features.advance` rows (pandas) -> silver.features rows as Arrow (pure)."""
    import pyarrow as pa

    t = pa.Table.from_pandas(rows, preserve_index=False)
    ws = t["window_ms"].cast(pa.int64()).cast(pa.timestamp("ms", tz="UTC")).cast(pa.timestamp("us", tz="UTC"))
    return pa.table({c: ws if c == "window_start" else t[c] for c in schemas.FEATURES.names})


def late_table(late, batch_id: int, now):
    """Late bars (pandas: symbol, window_ms) -> ops.late_bars rows (pure)."""
    import pyarrow as pa

    n = len(late)
    return pa.table({"query_name": pa.array([QUERY] * n, pa.string()),
                     "symbol": pa.array(late["symbol"].astype(str).tolist(), pa.string()),
                     "window_start": pa.array(late["window_ms"].astype("int64").tolist(), pa.int64())
                     .cast(pa.timestamp("ms", tz="UTC")),
                     "batch_id": pa.array([batch_id] * n, pa.int64()),
                     "noticed_at": pa.array([now] * n, pa.timestamp("us", tz="UTC"))})


class HotPathWriter(ingest.TickWriter):
    """foreachBatch sink: ingest, then bars -> features -> predictions of the minutes made final."""

    def __init__(self, s: Settings):
        super().__init__(s)
        self.keep_ticks = True
        self.bars = BarWriter(s, query=QUERY)
        self.book = FeatureBook(s)
        self.predictor = LivePredictor(s, self.app_id)
        self.features = InsertOnce(tables.FEATURES, s, schemas.FEATURES_KEY)
        self.first_batch: int | None = None

    def bind(self, query_id: str) -> None:
        super().bind(query_id)
        self.bars.bind(query_id)

    def __call__(self, batch, batch_id: int) -> dict:
        out = super().__call__(batch, batch_id)
        spark = batch.sparkSession
        first = self.first_batch is None
        if first:
            self.first_batch = batch_id
        # Before this batch's bars: the bars already in the table still owed a feature row.
        owed = self.book.start() if first else None
        closed = self.bars.close(spark, self.batch_ticks, batch_id) if self.batch_ticks is not None else []
        inputs = bar_inputs(closed)
        if owed is not None and len(owed):
            import pandas as pd

            inputs = pd.concat([owed, inputs], ignore_index=True)
        self.advance(spark, inputs, batch_id, first)
        out["bars_closed"] = len(closed)
        return out

    def advance(self, spark, inputs, batch_id: int, first: bool) -> None:
        """Bars (`bars_frame` rows) -> feature rows, inserted once -> predictions, inserted once."""
        owed = self.predictor.owed() if first else None
        rows, late = self.book.advance(inputs) if len(inputs) else (None, None)
        feats = feature_table(rows) if rows is not None and len(rows) else None
        if feats is not None:
            spans = spans_of(feats["symbol"].to_pylist(), lake.to_ms(feats["window_start"]))
            self.features(feats, spans, self.app_id(APP_FEATURES), batch_id, spark=spark)
        if late is not None and len(late):
            append_once(late_table(late, batch_id, dt.datetime.now(dt.timezone.utc)), tables.LATE_BARS.path(self.s),
                        self.app_id(APP_LATE), batch_id)
        score = _concat(owed, feats)
        self.predictor.commit(spark, score, batch_id, rerun=first)


def _concat(a, b):
    """Two Arrow tables of silver.features rows, either None (the owed rows first, each key once)."""
    import pyarrow as pa

    parts = [t.select(schemas.FEATURES.names).cast(schemas.FEATURES.arrow_type())
             for t in (a, b) if t is not None and t.num_rows]
    if not parts:
        return None
    t = pa.concat_tables(parts)
    if len(parts) == 1:
        return t
    keys = list(zip(t["symbol"].to_pylist(), lake.to_ms(t["window_start"])))
    seen, keep = set(), []
    for i, k in enumerate(keys):
        keep.append(k not in seen)
        seen.add(k)
    return t.filter(pa.array(keep))


def start(spark, s: Settings, available_now: bool = False):
    """Start the hot path (the ingest query with the live path in its sink); returns the StreamingQuery."""
    for t in (tables.TICKS, tables.QUARANTINE, tables.LOST_OFFSETS, tables.BARS, tables.FEATURES, tables.LATE_BARS,
              tables.PREDICTIONS, tables.PREDICT_BATCHES, tables.DRIFT):
        ensure_table(spark, t, s)
    return start_sink(ingest.read_topic(spark, s), QUERY, HotPathWriter(s), s, available_now,
                      phase_seconds=s.ingest_phase_seconds)
