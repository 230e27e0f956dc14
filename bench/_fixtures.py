"""A small lake and registered champion for the read-side benchmarks, built by the pipeline's own code
(simulated history with the planted signal -> features job -> training and the gate)."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from jobs.runner import run
from tickcast.settings import Settings
from tickcast.spark import session
from tickcast.timeunits import MINUTE_MS as MIN



def demo_lake(s: Settings, root: Path, minutes: int = 4000, symbols=("BTCUSDT", "ETHUSDT")) -> tuple[Settings, dict]:
    """Settings pointing at `root` (lake, checkpoints, MLflow) holding features and a champion for horizon 1.

    The gate decides on merit; if it does not promote, the benchmark marks the version champion
    itself (tagged so), since it measures serving speed, not the model."""
    from jobs import sim_history  # deferred: heavy (imports numpy)
    from tickcast.sources.simulator import SimConfig  # deferred: heavy (imports pandas, pyarrow, numpy)
    from tickcast import model_io, training  # deferred: heavy (imports mlflow)

    ls = dataclasses.replace(s, data_dir=root, lake_uri=str(root / "delta"), checkpoint_uri=str(root / "checkpoints"),
                             mlflow_uri=f"sqlite:///{root / 'mlflow' / 'mlflow.db'}", horizons=(1,))
    spark = session(ls, app="tickcast-bench-serve", extra={"spark.ui.enabled": "false"})
    spark.sparkContext.setLogLevel("ERROR")
    try:
        end = int(time.time() * 1000) // MIN * MIN
        sim_history.run(spark, ls, SimConfig(tuple(symbols), 1.0, 7, end - minutes * MIN, True,
                                             signal_kind="interaction", signal_strength=0.6), minutes)
        run(["features"], ls, available_now=True, spark=spark)
    finally:
        spark.stop()
    rep = training.train(ls, training.TrainConfig(horizon=1, bootstrap_reps=200), echo=lambda *_: None)
    if rep["alias"] != model_io.CHAMPION:
        client = model_io.configure(ls)
        model_io.set_alias(client, rep["model"], model_io.CHAMPION, rep["version"],
                           "benchmark only: promoted without the gate to measure serving")
    return ls, rep
