"""`tickcast bench features`: features throughput (stream and batch) and training time on months of bars.

Runs in a data directory of its own (`<data_dir>/bench/features-*`, deleted at the end). Measured
(printed, and written to `<out>/features.json`):
  (a) stream: `jobs.runner.run(["features"], available_now=True)` over the backfilled bars (the
      production path: Delta source, applyInPandasWithState, insert-only merge), bars/s;
  (b) batch: `features.compute` over the same bars read with delta-rs, in one process, bars/s: the
      reference for (a), measured in the same run; the two results are compared value by value;
  (c) training: `tickcast train` for each horizon (walk-forward, 4 folds, MLP + 3 baselines, the
      registered refit), wall seconds and the walk-forward table.
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


def lane(s: Settings, root: Path) -> Settings:
    return dataclasses.replace(s, lake_uri=str(root / "delta"), checkpoint_uri=str(root / "checkpoints"),
                               mlflow_uri=f"sqlite:///{root / 'mlflow' / 'mlflow.db'}")


def features_bench(s: Settings, klines: list[Path], horizons: list[int], out: Path, reps: int = 1000) -> dict:
    import numpy as np

    from jobs.backfill import backfill  # deferred: heavy (imports numpy)
    from tickcast import features, training  # deferred: heavy (imports pandas, pyarrow, numpy)
    from bench.measure import machine, report
    from bench.bars import write_klines  # deferred: heavy (imports numpy)

    out.mkdir(parents=True, exist_ok=True)
    (s.data_dir / "bench").mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="features-", dir=s.data_dir / "bench"))
    try:
        ls = lane(s, root)
        spark = session(ls, app="tickcast-bench-features", extra={"spark.ui.enabled": "false"})
        spark.sparkContext.setLogLevel("ERROR")
        files = list(klines) or write_klines(root / "klines")
        t0 = time.monotonic()
        bf = backfill(spark, ls, files)
        backfill_s = time.monotonic() - t0
        print(f"backfilled {bf['inserted']} bars in {backfill_s:.1f}s", flush=True)

        t0 = time.monotonic()
        run(["features"], ls, available_now=True, spark=spark)
        stream_s = time.monotonic() - t0
        t0 = time.monotonic()
        bars = training.read_bars(ls)
        read_s = time.monotonic() - t0
        t0 = time.monotonic()
        batch = features.compute(bars)
        batch_s = time.monotonic() - t0
        table = training.read_features(ls, features.feature_version()).sort_values(["symbol", "window_ms"])
        diff = float(np.nanmax(np.abs(table[list(features.FEATURES)].to_numpy()
                                      - batch[list(features.FEATURES)].to_numpy())))
        n = len(bars)
        r = {"bars": n, "files": [str(f) for f in files], "backfill_s": round(backfill_s, 2),
             "stream": {"seconds": round(stream_s, 2), "bars_per_s": round(n / stream_s, 1)},
             "batch": {"seconds": round(batch_s, 2), "read_seconds": round(read_s, 2),
                       "bars_per_s": round(n / batch_s, 1)},
             "stream_vs_batch": {"ratio": round(batch_s / stream_s, 3), "max_abs_diff": diff,
                                 "rows_equal": len(table) == len(batch)},
             "training": [], "machine": machine(spark)}
        print(f"stream {n / stream_s:,.0f} bars/s, batch {n / batch_s:,.0f} bars/s, max |diff| {diff:.2e}", flush=True)
        for h in horizons:
            t0 = time.monotonic()
            rep = training.train(ls, training.TrainConfig(horizon=h, bootstrap_reps=reps), echo=lambda *_: None)
            secs = time.monotonic() - t0
            r["training"].append({"horizon": h, "seconds": round(secs, 1), "rows": rep["rows"],
                                  "tested_rows": rep["tested_rows"], "alias": rep["alias"], "gate": rep["gate"],
                                  "overall": rep["overall"], "comparisons": rep["comparisons"],
                                  "markdown": training.markdown(rep)})
            print(training.markdown(rep), flush=True)
        rows = [("bars", f"{n:,}", f"{len(files)} kline file(s)"),
                ("(a) stream features", f"{n / stream_s:,.0f} bars/s", f"{stream_s:.1f} s, availableNow, production path"),
                ("(b) batch features", f"{n / batch_s:,.0f} bars/s", f"{batch_s:.1f} s in one process (+{read_s:.1f} s delta-rs read)"),
                ("stream = batch", f"max |diff| {diff:.1e}", f"{len(table):,} vs {len(batch):,} rows")]
        for t in r["training"]:
            m = t["overall"]["mlp"]
            rows.append((f"(c) train h={t['horizon']}", f"{t['seconds']:.0f} s",
                         f"{t['rows']:,} rows, MLP Brier {m['brier']['value']:.5f}, acc {m['accuracy']['value']:.4f} "
                         f"-> {t['alias']}"))
        report(r, out, "features", rows, "notes:",
               ["(a)/(b): the stream pays for Spark (Delta source, Arrow to Python workers, state store, MERGE); "
                "(b) is the same numpy code in one process"])
        spark.stop()
        return r
    finally:
        shutil.rmtree(root, ignore_errors=True)
