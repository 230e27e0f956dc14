"""`tickcast bench predict`: TensorFlow inference inside Spark, against a row-at-a-time UDF and the ceiling.

Runs in a data directory of its own (`<data_dir>/bench/predict-*`, deleted at the end): a model is
trained there on simulated history (the planted signal), then the same feature rows are scored
(printed, and written to `<out>/predict.json`):
  (a) production path: the predict job's own `predict_batch_udf` (one model load per Python worker,
      TensorFlow on whole Arrow batches), `rows` rows, rows/s of the second pass (the first loads);
  (b) a row-at-a-time Python UDF on the same model (cached per worker too, so only the per-row call
      differs), on `row_udf_rows` rows;
  (c) the ceiling: the model called directly on the whole matrix in one process;
and the ratios (a)/(b) (target >= 100) and (a)/(c).
"""
from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

from jobs.runner import run
from tickcast.settings import Settings
from tickcast.spark import session
from tickcast.timeunits import MINUTE_MS


def predict_bench(s: Settings, rows: int, row_udf_rows: int, out: Path) -> dict:
    import numpy as np
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType

    from jobs import predict, sim_history  # deferred: heavy (imports pyspark, numpy)
    from jobs.scoring import Scorer  # deferred: heavy (imports pyspark, numpy)
    from tickcast.sources.simulator import SimConfig  # deferred: heavy (imports pandas, pyarrow, numpy)
    from tickcast import model_io, training  # deferred: heavy (imports mlflow)
    from bench.measure import machine, report

    out.mkdir(parents=True, exist_ok=True)
    (s.data_dir / "bench").mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="predict-", dir=s.data_dir / "bench"))
    try:
        ls = dataclasses.replace(s, lake_uri=str(root / "delta"), checkpoint_uri=str(root / "checkpoints"),
                                 mlflow_uri=f"sqlite:///{root / 'mlflow' / 'mlflow.db'}", horizons=(1,))
        spark = session(ls, app="tickcast-bench-predict", extra={"spark.ui.enabled": "false"})
        spark.sparkContext.setLogLevel("ERROR")
        t0 = time.monotonic()
        end = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS
        sim_history.run(spark, ls, SimConfig(("BTCUSDT", "ETHUSDT"), 1.0, 7, end - 3000 * MINUTE_MS, True,
                                             signal_kind="interaction", signal_strength=0.6), 3000)
        run(["features"], ls, available_now=True, spark=spark)
        rep = training.train(ls, training.TrainConfig(horizon=1, bootstrap_reps=200), echo=lambda *_: None)
        print(f"model {rep['model']} v{rep['version']} trained in {time.monotonic() - t0:.0f}s", flush=True)
        loaded = model_io.load(ls, rep["model"], rep["version"])
        names = loaded.features
        slot = predict.Slot(1, rep["model"], rep["version"], loaded.meta)
        df = spark.range(rows).select(*[F.randn(seed=i).alias(n) for i, n in enumerate(names)]).cache()
        df.count()

        scorer = Scorer(ls, spark)
        scored = df.select(scorer.udf(slot)(F.array(*names)).alias("p"))
        passes = []
        for _ in range(2):
            t = time.monotonic()
            scored.agg(F.sum("p.prob_up")).collect()
            passes.append(time.monotonic() - t)
        prod = rows / passes[-1]
        print(f"(a) predict_batch_udf: {prod:,.0f} rows/s (first pass {passes[0]:.1f}s incl. loads, "
              f"{sum(scorer.loads.value.values())} load(s))", flush=True)

        model_ref = (rep["model"], rep["version"])

        def one_row(*x):
            g = globals()
            if g.get("_bench_model_ref") != model_ref:        # once per worker, like (a)
                ls.quiet_tensorflow()
                g["_bench_predict"] = model_io.load(ls, *model_ref).predictor()
                g["_bench_model_ref"] = model_ref
            return float(g["_bench_predict"](np.asarray([x], dtype="float32"))[0][0])

        row_udf = F.udf(one_row, DoubleType())
        small = df.limit(row_udf_rows).cache()
        small.count()
        small.select(row_udf(*names).alias("p")).limit(50).agg(F.sum("p")).collect()   # warm the workers
        t = time.monotonic()
        small.select(row_udf(*names).alias("p")).agg(F.sum("p")).collect()
        row_rate = row_udf_rows / (time.monotonic() - t)
        print(f"(b) row-at-a-time UDF: {row_rate:,.0f} rows/s", flush=True)

        X = np.asarray(df.toPandas().to_numpy(), dtype="float32")
        pred = loaded.predictor()
        pred(X[:1000])
        t = time.monotonic()
        pred(X)
        direct = rows / (time.monotonic() - t)
        print(f"(c) direct, one process: {direct:,.0f} rows/s", flush=True)
        r = {"rows": rows, "row_udf_rows": row_udf_rows, "features": len(names), "model": f"{rep['model']} v{rep['version']}",
             "production_rows_per_s": round(prod, 1), "first_pass_s": round(passes[0], 2),
             "model_loads": sum(scorer.loads.value.values()), "row_udf_rows_per_s": round(row_rate, 1),
             "direct_rows_per_s": round(direct, 1), "speedup_vs_row_udf": round(prod / row_rate, 1),
             "share_of_direct": round(prod / direct, 3), "target_speedup": 100, "machine": machine(spark)}
        rows_out = [("(a) production (predict_batch_udf)", f"{prod:,.0f} rows/s",
                     f"{rows:,} rows x {len(names)} features, {sum(scorer.loads.value.values())} model load(s)"),
                    ("(b) row-at-a-time Python UDF", f"{row_rate:,.0f} rows/s", f"{row_udf_rows:,} rows"),
                    ("(c) direct, one process", f"{direct:,.0f} rows/s", "tf.function on the whole matrix"),
                    ("(a)/(b)", f"{prod / row_rate:,.0f}x", "target >= 100x"),
                    ("(a)/(c)", f"{prod / direct:.2f}", "Arrow transfer to the workers is the bound")]
        report(r, out, "predict", rows_out, "notes:",
               ["freshness (bar end -> prediction) and the whole stack's memory/CPU are not measured here yet"])
        spark.stop()
        return r
    finally:
        shutil.rmtree(root, ignore_errors=True)
