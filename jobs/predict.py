"""Job `predict`: silver.features (stream) -> gold.predictions, one row per (bar, horizon, model version).

Per micro-batch: the batch's plan (the versions it is scored with: `predict_plan`, resolved from the
registry by `predict_models`), its feature rows scored by those versions (`scoring`), the
predictions inserted once, the plan written where it keeps a re-run exact, and the live features
compared with each model's training reference (`drift_window`, gold.drift). Warm-up rows are
skipped and rows of another feature version refused; both are counted in the plan. While no horizon
has a model the query is not started (`waiting_for`: the runner holds it back and says so), so no
batch is taken unscored.
"""
from __future__ import annotations

import time

from jobs.delta_io import InsertOnce, QuerySink, read_stream, spans_of, start_sink, utc
from tickcast.lake.write import ensure_table
from jobs.drift_window import DriftWindow
from jobs.predict_models import ModelResolver, Slot
from jobs.predict_plan import QUERY, BatchPlans, counts_of
from jobs.scoring import Scorer
from tickcast import lake, schemas, tables
from tickcast.settings import Settings


class PredictWriter(QuerySink):
    """foreachBatch sink: plan -> score -> insert once (plan before or after) -> drift."""

    def __init__(self, s: Settings, spark):
        super().__init__()
        self.models = ModelResolver(s)
        self.plans = BatchPlans(s, self.models, self.app_id)
        self.scorer = Scorer(s, spark)
        self.insert = InsertOnce(tables.PREDICTIONS, s, schemas.PREDICTIONS_KEY)
        self.drift = DriftWindow(s, self.models.reference, self.app_id)
        self.first_batch = True

    def __call__(self, batch, batch_id: int) -> None:
        now_ms, spark = int(time.time() * 1000), batch.sparkSession
        plan = self.plans.open(batch_id, rerun=self._first())
        scored = self.scorer.score(batch, plan.slots)                 # read + score: one Spark job, Arrow
        if not scored.num_rows:
            return
        rows = prediction_rows(scored, plan.slots, batch_id, now_ms)
        spans = spans_of(scored["symbol"].to_pylist(), lake.to_ms(scored["window_start"]))
        self.plans.commit(plan, counts_of(scored), now_ms, self.insert.appends(spans, spark),
                          lambda: self.insert(rows, spans, self.app_id(QUERY), batch_id, spark=spark))
        self.drift.update(scored, plan.slots, batch_id, now_ms)

    def _first(self) -> bool:
        """Whether this is the run's first batch (only it can re-run one from before a crash or a stop)."""
        first, self.first_batch = self.first_batch, False
        return first


def prediction_rows(scored, slots: list[Slot], batch_id: int, now_ms: int):
    """`Scorer.score`'s Arrow rows -> gold.predictions rows, per slot the rows it scores (pure)."""
    import datetime as dt

    import pyarrow as pa
    import pyarrow.compute as pc

    schema = schemas.PREDICTIONS.arrow_type()
    parts = []
    for i, sl in enumerate(slots):
        t = scored.filter(pc.and_(pc.invert(scored["warmup"]), pc.equal(scored["feature_version"], sl.feature_version)))
        n, out = t.num_rows, t[f"_out{i}"]

        def const(v, name):
            return pa.array([v] * n, schema.field(name).type)

        cols = {
            "symbol": t["symbol"], "window_start": t["window_start"], "horizon": const(sl.horizon, "horizon"),
            "target_time": pc.add(t["window_start"], pa.scalar(dt.timedelta(minutes=sl.horizon), pa.duration("us"))),
            "model_name": const(sl.name, "model_name"), "model_version": const(sl.version, "model_version"),
            "feature_version": t["feature_version"],
            **{f: pc.struct_field(out, f) for f in ("prob_up", "pred_return")},
            "close": t["close"],
            "training_end": const(utc(int(sl.meta["training_end_ms"])), "training_end"),
            **{f: pc.struct_field(out, f) for f in ("climatology_prob_up", "momentum_prob_up", "momentum_return")},
            "prediction_time": const(utc(now_ms), "prediction_time"),
            "batch_id": const(batch_id, "batch_id"),
        }
        parts.append(pa.table({f.name: pc.cast(cols[f.name], f.type) for f in schema}, schema=schema))
    return pa.concat_tables(parts) if parts else schema.empty_table()


def waiting_for(s: Settings):
    """The runner's gate: a function giving what the job waits for before it starts (None: ready)."""
    return ModelResolver(s).waiting_for


def start(spark, s: Settings, available_now: bool = False, writer: PredictWriter | None = None):
    """Start the predict query on the silver.features stream; returns the StreamingQuery.

    `writer`: a new sink for this start, made by a caller that reads its `scorer.loads` (a sink
    serves one query: it knows the query's id and whether a batch is the run's first).
    """
    for t in (tables.FEATURES, tables.PREDICTIONS, tables.PREDICT_BATCHES, tables.DRIFT):
        ensure_table(spark, t, s)
    # Features come once a minute: a short trigger, as for features (TICKCAST_MINUTE_TRIGGER_SECONDS).
    return start_sink(read_stream(spark, tables.FEATURES, s), QUERY, writer or PredictWriter(s, spark), s,
                      available_now, trigger_seconds=s.minute_trigger_seconds)
