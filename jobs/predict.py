"""Job `predict`: silver.features (stream) -> gold.predictions, one row per (bar, horizon, model version).

Per micro-batch the driver resolves, for each horizon in TICKCAST_HORIZONS, the registered model
`tickcast-h<H>` at TICKCAST_MODEL_REF (default the `champion` alias): one registry lookup, so an
alias move is picked up at the next batch without a restart. The choice is written to
ops.predict_batches (by a run's first batch before it scores, by later batches once their
predictions are committed), and a batch re-run after a crash takes the versions its first attempt
used (its plan, or its committed predictions), so no batch is ever scored by two versions. Scoring is Spark's `predict_batch_udf`: each Python worker
loads a version once (counted by an accumulator) and calls TensorFlow on whole Arrow batches.
Warm-up rows are skipped and rows of another feature version refused; both are counted. The
naive baselines are scored next to the model, and each batch's live features are compared with
the model's training reference (gold.drift).
"""
from __future__ import annotations

import json
import logging
import time
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np
from pyspark.accumulators import AccumulatorParam

from jobs.delta_io import InsertOnce, QuerySink, spans_of, utc
from tickcast import features, schemas, tables
from tickcast.settings import Settings

QUERY = "predict"
PLAN = QUERY + "-plan"        # the app id (with the query's id) of the batch plans' idempotent appends
log = logging.getLogger("tickcast.predict")
OUT_FIELDS = ("prob_up", "pred_return", "climatology_prob_up", "momentum_prob_up", "momentum_return")
WAIT_LOG_SECONDS = 30.0


@dataclass(frozen=True)
class Slot:
    """What one horizon is scored with in one batch."""
    horizon: int
    name: str
    version: str
    meta: dict

    @property
    def feature_version(self) -> str:
        return self.meta["feature_version"]


class PerWorker(AccumulatorParam):
    """Model loads counted per (Python worker pid, model version): {(pid, version): loads}."""

    def zero(self, value):
        return {}

    def addInPlace(self, a, b):
        for k, n in b.items():
            a[k] = a.get(k, 0) + n
        return a


def make_predict_fn(s: Settings, name: str, version: str, loads=None):
    """The worker-side factory `predict_batch_udf` calls once per Python worker for this version."""

    def make():
        import os

        from tickcast import model_io, modeling
        from tickcast.pyworker import cheap_import_invalidation

        cheap_import_invalidation()
        s.quiet_tensorflow()
        loaded = model_io.load(s, name, version)
        if loads is not None:
            loads.add({(os.getpid(), version): 1})
        predict = loaded.predictor()
        j = loaded.features.index("ret_1")
        base = loaded.meta["baselines"]

        def fn(x: np.ndarray) -> dict[str, np.ndarray]:
            p, r = predict(x)
            return {"prob_up": p, "pred_return": r, **modeling.baseline_predictions(base, x[:, j])}

        return fn

    return make


class PredictWriter(QuerySink):
    """foreachBatch sink: plan (versions, counts) -> score -> insert once -> drift."""

    def __init__(self, s: Settings, spark):
        super().__init__()
        self.s = s
        self.insert = InsertOnce(tables.PREDICTIONS, s, schemas.PREDICTIONS_KEY)
        self.loads = spark.sparkContext.accumulator({}, PerWorker())
        self.udfs: dict[tuple[str, str], object] = {}
        self._outs: dict[tuple[str, str, int], object] = {}     # (name, version, position) -> output Column
        self.last_version: dict[int, str] = {}
        self.live: deque | None = None           # (window_ms, {feature: value}) of the drift window
        self._client = None
        self._refs: dict[tuple[str, str], dict] = {}
        self._said_missing = float("-inf")
        self.first_batch = True

    # -- model resolution ------------------------------------------------------------------------
    def client(self):
        from tickcast import model_io

        if self._client is None:
            self._client = model_io.configure(self.s)
        return self._client

    def _slot(self, horizon: int, ref: str) -> Slot | None:
        from tickcast import model_io

        name = model_io.model_name(horizon)
        mv = model_io.resolve(self.client(), name, ref)
        if mv is None:
            return None
        if "meta" not in (mv.tags or {}):
            log.warning("predict: %s v%s has no `meta` tag (registered by an older tickcast); not scoring with it",
                        name, mv.version)
            return None
        return Slot(horizon, name, str(mv.version), json.loads(mv.tags["meta"]))

    def _resolve_all(self) -> list[Slot]:
        """The horizons' models at the configured ref. While none has one the batch waits (and says
        so); horizons still without one are skipped, and said so, until theirs appears."""
        waited = None
        while True:
            slots = {h: self._slot(h, self.s.model_ref) for h in self.s.horizons}
            missing = [f"tickcast-h{h}" for h, sl in slots.items() if sl is None]
            now = time.monotonic()
            if len(missing) < len(slots):
                if missing and now - self._said_missing >= WAIT_LOG_SECONDS:
                    print(f"predict: no {self.s.model_ref} of {', '.join(missing)} yet: those horizons are not "
                          "scored", flush=True)
                    self._said_missing = now
                return [sl for sl in slots.values() if sl is not None]
            if waited is None or now - waited >= WAIT_LOG_SECONDS:
                log.warning("predict: waiting for %s of %s (run `tickcast train --horizon H`)",
                            self.s.model_ref, ", ".join(missing))
                print(f"predict: waiting for a {self.s.model_ref} of {', '.join(missing)} "
                      "(run `tickcast train`)", flush=True)
                waited = now
            time.sleep(5.0)

    def _committed(self, table, app: str, batch_id: int, when: str, columns: list[str]) -> list[Slot] | None:
        """The versions in the rows this checkpoint committed to `table` for the batch, if it did.

        Rows are appended under an id of this query (kept in its checkpoint), so rows left by an
        earlier checkpoint with the same batch id (the checkpoint was started afresh) are not taken;
        of the rows with the batch id, this checkpoint's are the latest by `when`.
        """
        from jobs.delta_io import rs_table
        from tickcast import lake

        if not lake.exists(table, self.s):
            return None
        v = rs_table(table.path(self.s)).transaction_version(self.app_id(app))
        if v is None or v < batch_id:
            return None
        t = lake.read(table, self.s, columns=columns + [when], filters=[("batch_id", "=", batch_id)]).to_pandas()
        t = t[t[when] == t[when].max()].drop_duplicates(columns)
        return [sl for r in t.to_dict("records") if (sl := self._slot(int(r["horizon"]), r["model_version"]))] or None

    def _planned(self, batch_id: int) -> list[Slot] | None:
        """The plan this checkpoint wrote for the batch, if any (a re-run after a crash or a stop)."""
        return self._committed(tables.PREDICT_BATCHES, PLAN, batch_id, "planned_at", ["horizon", "model_version"])

    def _scored_with(self, batch_id: int) -> list[Slot] | None:
        """The versions of the batch's predictions if this checkpoint appended them (its plan was not)."""
        return self._committed(tables.PREDICTIONS, QUERY, batch_id, "prediction_time", ["horizon", "model_version"])

    def udf(self, slot: Slot):
        from pyspark.ml.functions import predict_batch_udf
        from pyspark.sql.types import DoubleType, StructField, StructType

        key = (slot.name, slot.version)
        if key not in self.udfs:
            rt = StructType([StructField(f, DoubleType(), True) for f in OUT_FIELDS])
            self.udfs[key] = predict_batch_udf(make_predict_fn(self.s, slot.name, slot.version, self.loads),
                                               return_type=rt, batch_size=8192,
                                               input_tensor_shapes=[[len(slot.meta["features"])]])
        return self.udfs[key]

    # -- the batch -------------------------------------------------------------------------------
    def __call__(self, batch, batch_id: int) -> None:
        from tickcast import lake

        now_ms = int(time.time() * 1000)
        # Only a run's first batch can be a re-run of one that ran before a crash or a stop. It
        # takes the versions that run used (its plan, or its committed predictions), and commits
        # its plan before its predictions: its rows may go through the MERGE, which a version
        # chosen anew would not stop from adding a second version's rows. A later batch commits
        # its predictions first (appended under the batch id, which a re-run finds), then its plan.
        first, self.first_batch = self.first_batch, False
        planned = self._planned(batch_id) if first else None
        slots = planned or (self._scored_with(batch_id) if first else None) or self._resolve_all()
        # One Spark job: the batch's feature rows, each model's outputs beside them, to the driver
        # as Arrow (a few rows a minute when live). The counts, the per-symbol bounds, the rows to
        # insert and drift are all read there: collecting the rows first and scoring them in a
        # second job cost a live batch ~0.3 s more.
        scored = self._scored(batch, slots)
        if not scored.num_rows:
            return
        counts = Counter(zip(scored["feature_version"].to_pylist(), scored["warmup"].to_pylist()))
        spans = spans_of(scored["symbol"].to_pylist(), lake.to_ms(scored["window_start"]))
        plan = self._plan_rows(slots, counts, batch_id, now_ms)
        self._remember(slots)
        # The plan goes first whenever the rows will take the MERGE, which leaves no transaction id
        # for a re-run to find: a crash between the MERGE and a later plan, then a moved alias,
        # would add a second version's rows. An append (the live case) leaves its id; its plan after.
        plan_first = (first and not planned) or (not first and not self.insert.appends(spans, batch.sparkSession))
        if plan_first:
            self._write_plan(plan, batch_id)
        self.insert(prediction_rows(scored, slots, batch_id, now_ms), spans, self.app_id(QUERY), batch_id,
                    spark=batch.sparkSession)
        if not first and not plan_first:
            self._write_plan(plan, batch_id)
        self._drift(scored, batch_id, slots, now_ms)

    def _remember(self, slots: list[Slot]) -> None:
        for sl in slots:
            self.last_version[sl.horizon] = sl.version

    def _plan_rows(self, slots: list[Slot], counts: dict, batch_id: int, now_ms: int) -> list[tuple]:
        """ops.predict_batches rows: per horizon, the version and what happened to the batch's rows."""
        rows = []
        n_all = sum(counts.values())
        warm = sum(n for (fv, w), n in counts.items() if w)
        for sl in slots:
            refused = sum(n for (fv, w), n in counts.items() if not w and fv != sl.feature_version)
            prev = self.last_version.get(sl.horizon)
            rows.append((batch_id, sl.horizon, sl.name, sl.version, sl.feature_version, n_all,
                         n_all - warm - refused, refused, warm,
                         prev if prev is not None and prev != sl.version else None, now_ms))
            if refused:
                log.warning("predict: batch %d: %d rows of another feature version refused by %s v%s",
                            batch_id, refused, sl.name, sl.version)
        return rows

    def _write_plan(self, rows: list[tuple], batch_id: int) -> None:
        from jobs.delta_io import append_once, arrow_rows

        names = schemas.PREDICT_BATCHES.names
        rows = [dict(zip(names, r[:-1] + (utc(r[-1]),))) for r in rows]
        append_once(arrow_rows(rows, schemas.PREDICT_BATCHES.spark_type()), tables.PREDICT_BATCHES.path(self.s),
                    self.app_id(PLAN), batch_id)

    def _scored(self, batch, slots: list[Slot]):
        """The batch's rows with each slot's model outputs as a struct column `_out<i>`, collected as
        Arrow. Rows a slot does not score (warm-up, another feature version) get zeros as input:
        their outputs are dropped by `prediction_rows`, and no NULL reaches the model."""
        from pyspark.sql import functions as F

        outs = []
        for i, sl in enumerate(slots):
            # Built once per (slot, position) and reused: a Column is an unresolved expression, and
            # its few dozen py4j calls would otherwise be paid at every batch.
            key = (sl.name, sl.version, i)
            if key not in self._outs:
                names = sl.meta["features"]
                ok = ~F.col("warmup") & (F.col("feature_version") == sl.feature_version)
                x = F.when(ok, F.array(*[F.col(f) for f in names])).otherwise(F.array(*[F.lit(0.0)] * len(names)))
                self._outs[key] = self.udf(sl)(x).alias(f"_out{i}")
            outs.append(self._outs[key])
        return batch.select("*", *outs).toArrow()

    def _drift(self, batch, batch_id: int, slots: list[Slot], now_ms: int) -> None:
        """PSI/KS of the live window's features against each model's training reference; `batch`:
        the batch's rows (Arrow)."""
        import pyarrow.compute as pc

        from jobs.delta_io import append_once, arrow_rows
        from tickcast import drift, lake

        window_ms = int(self.s.drift_window_hours * 3600_000)
        names = list(features.FEATURES)
        fv = features.feature_version()
        if self.live is None:           # (re)start: the window so far, from the table
            self.live = deque()
            if lake.exists(tables.FEATURES, self.s):
                t = lake.read(tables.FEATURES, self.s, columns=["window_start", "warmup", *names],
                              filters=[("feature_version", "=", fv), ("warmup", "=", False)])
                ms = lake.to_ms(t["window_start"])
                keep = ms >= now_ms - window_ms
                m = np.column_stack([t[n].to_numpy(zero_copy_only=False) for n in names])[keep] if len(ms) else \
                    np.empty((0, len(names)))
                for a, row in sorted(zip(ms[keep], m), key=lambda x: x[0]):
                    self.live.append((int(a), row))
        new = batch.filter(pc.and_(pc.invert(batch["warmup"]), pc.equal(batch["feature_version"], fv)))
        if new.num_rows:
            m = np.column_stack([new[n].to_numpy(zero_copy_only=False) for n in names]).astype(float)
            for a, row in sorted(zip(lake.to_ms(new["window_start"]), m), key=lambda x: x[0]):
                self.live.append((int(a), row))
        newest = max((a for a, _ in self.live), default=now_ms)
        while self.live and self.live[0][0] < newest - window_ms:
            self.live.popleft()
        if not self.live:
            return
        m = np.vstack([row for _, row in self.live])
        live = {n: m[:, i] for i, n in enumerate(names)}
        oldest = self.live[0][0]
        rows = []
        done = set()
        for sl in slots:
            if (sl.name, sl.version) in done or sl.feature_version != fv:
                continue
            done.add((sl.name, sl.version))
            ref = self._reference(sl)
            for d in drift.report(ref, live, self.s.drift_psi_threshold):
                rows.append({"computed_at": utc(now_ms), "batch_id": batch_id, "model_name": sl.name,
                             "model_version": sl.version, "feature": d["feature"], "n": int(d["n"]),
                             "window_start": utc(oldest), "psi": _f(d["psi"]), "ks": _f(d["ks"]),
                             "ks_pvalue": _f(d["ks_pvalue"]), "drifted": bool(d["drifted"])})
        if not rows:
            return
        append_once(arrow_rows(rows, schemas.DRIFT.spark_type()), tables.DRIFT.path(self.s),
                    self.app_id(QUERY + "-drift"), batch_id)

    def _reference(self, sl: Slot) -> dict:
        """The version's training reference distribution (downloaded once per version)."""
        import mlflow

        key = (sl.name, sl.version)
        if key not in self._refs:
            self.client()
            path = mlflow.artifacts.download_artifacts(f"models:/{sl.name}/{sl.version}")
            from pathlib import Path

            self._refs[key] = json.loads((Path(path) / "artifacts" / "reference.json").read_text())
        return self._refs[key]


def _f(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def prediction_rows(scored, slots: list[Slot], batch_id: int, now_ms: int):
    """`PredictWriter._scored`'s Arrow rows -> gold.predictions rows, per slot the rows it scores (pure)."""
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


last_writer: PredictWriter | None = None      # the running query's writer: its load counter, for tests


def start(spark, s: Settings, available_now: bool = False):
    """Start the predict query on the silver.features stream; returns the StreamingQuery."""
    from jobs.delta_io import ensure_table, read_stream, start_sink

    for t in (tables.FEATURES, tables.PREDICTIONS, tables.PREDICT_BATCHES, tables.DRIFT):
        ensure_table(spark, t, s)
    global last_writer
    last_writer = PredictWriter(s, spark)
    # Features come once a minute: a short trigger, as for features (TICKCAST_MINUTE_TRIGGER_SECONDS).
    return start_sink(read_stream(spark, tables.FEATURES, s), QUERY, last_writer, s, available_now,
                      trigger_seconds=s.minute_trigger_seconds)
