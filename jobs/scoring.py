"""Scoring a batch of feature rows with registered models, in Spark's Python workers.

Scoring is Spark's `predict_batch_udf`: each Python worker loads a version once (counted by an
accumulator) and calls TensorFlow on whole Arrow batches. The naive baselines are scored next to
the model.
"""
from __future__ import annotations

import numpy as np
from pyspark.accumulators import AccumulatorParam

from jobs.predict_models import Slot
from tickcast.engine.columns import Columns
from tickcast.engine.zipimport_cache import cheap_import_invalidation
from tickcast.settings import Settings

OUT_FIELDS = ("prob_up", "pred_return", "climatology_prob_up", "momentum_prob_up", "momentum_return")


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

        from tickcast import model_io, modeling  # deferred: heavy (imports mlflow)

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


class Scorer:
    """A batch's feature rows with each slot's model outputs beside them, as Arrow in the driver.

    `loads`: the model loads of this scorer's UDFs so far, per (worker pid, version) (`loads.value`).
    """

    def __init__(self, s: Settings, spark):
        self.s = s
        self.loads = spark.sparkContext.accumulator({}, PerWorker())
        self.udfs: dict[tuple[str, str], object] = {}
        self._outs = Columns()      # (name, version, position) -> output Column (ADR 0008)

    def udf(self, slot: Slot):
        """The slot's model as a `predict_batch_udf` (one per version)."""
        from pyspark.ml.functions import predict_batch_udf
        from pyspark.sql.types import DoubleType, StructField, StructType

        key = (slot.name, slot.version)
        if key not in self.udfs:
            rt = StructType([StructField(f, DoubleType(), True) for f in OUT_FIELDS])
            self.udfs[key] = predict_batch_udf(make_predict_fn(self.s, slot.name, slot.version, self.loads),
                                               return_type=rt, batch_size=8192,
                                               input_tensor_shapes=[[len(slot.meta["features"])]])
        return self.udfs[key]

    def score(self, batch, slots: list[Slot]):
        """The batch's rows with each slot's model outputs as a struct column `_out<i>`, collected as
        Arrow (one Spark job: collecting the rows first and scoring them in a second job cost a live
        batch ~0.3 s more). Rows a slot does not score (warm-up, another feature version) get zeros
        as input: their outputs are dropped by `predict.prediction_rows`, and no NULL reaches the model."""
        return batch.select("*", *[self._out(sl, i) for i, sl in enumerate(slots)]).toArrow()

    def _out(self, sl: Slot, i: int):
        from pyspark.sql import functions as F

        # Built once per (slot, position) and reused: a Column is an unresolved expression, and its
        # few dozen py4j calls would otherwise be paid at every batch.
        def build():
            names = sl.meta["features"]
            ok = ~F.col("warmup") & (F.col("feature_version") == sl.feature_version)
            x = F.when(ok, F.array(*[F.col(f) for f in names])).otherwise(F.array(*[F.lit(0.0)] * len(names)))
            return self.udf(sl)(x).alias(f"_out{i}")

        return self._outs.get((sl.name, sl.version, i), build)
