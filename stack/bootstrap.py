"""First run of `tickcast up`: make sure every horizon has a model to score with.

With no `champion` (or whatever TICKCAST_MODEL_REF names) for a horizon, train one from history:
the bars already in silver.bars_1m when there are enough real ones (backfilled klines), otherwise
a labelled simulator run with the planted signal (symbols `-SIMSIG`, see docs/simulator.md), which
the local simulator then keeps producing, so predictions have something real to find offline.
The model is the quick one (QUICK_FAMILIES) through the usual gate; the retrainer trains every
family next.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jobs import sim_history
from jobs.runner import run
from tickcast import lake, tables
from tickcast.settings import Settings
from tickcast.timeunits import MINUTE_MS

SIM_HISTORY_MINUTES = 4000            # ~2.8 days: enough for the gate to see the planted edge
# The planted edge offline: the `linear` kind (the previous minute's imbalance), which the quick
# linear model can find. The `interaction` kind is invisible to linear models: on it the quick model
# was refused by the gate and nothing was served until the full retrain (docs/performance.md).
# Strength 0.4 keeps the edge well under the gate's leak threshold (docs/simulator.md).
SIM_SIGNAL = dict(plant_signal=True, signal_kind="linear", signal_strength=0.4)
MIN_REAL_BARS = 2500               # per symbol: training's walk-forward needs ~2,400 minutes (docs/training.md)
BOOTSTRAP_REPS = 500
# The first model is the linear family alone: it fits in seconds where the MLP and Conv1D take minutes
# (docs/performance.md), so the first prediction comes soon after `up` starts. It passes the same
# gate; the retrainer's first pass then trains every family at once (tickcast/lifecycle/loop.py).
QUICK_FAMILIES = ("linear",)


def missing_models(s: Settings) -> list[int]:
    from tickcast import model_io  # deferred: heavy (mlflow)

    client = model_io.configure(s)
    return [h for h in s.horizons if model_io.resolve(client, model_io.model_name(h), s.model_ref) is None]


def real_bar_symbols(s: Settings) -> dict[str, int]:
    """Bars per real (not simulated) symbol in silver.bars_1m."""
    if not lake.exists(tables.BARS, s):
        return {}
    t = lake.read(tables.BARS, s, columns=["symbol"]).column("symbol").to_pylist()
    counts: dict[str, int] = {}
    for x in t:
        if "-SIM" not in x:
            counts[x] = counts.get(x, 0) + 1
    return counts


def sim_bars(s: Settings, base_symbols: list[str]) -> dict[str, tuple[int, float]]:
    """Per base symbol with simulated (-SIMSIG) bars in silver.bars_1m: (their count, the newest close)."""
    import pyarrow.compute as pc

    from tickcast.sources.simulator import sim_symbol  # deferred: heavy (pandas)

    names = {sim_symbol(b, True): b for b in base_symbols}
    if not names or not lake.exists(tables.BARS, s):
        return {}
    t = lake.read(tables.BARS, s, columns=["symbol", "window_start", "close"], filters=[("symbol", "in", list(names))])
    out = {}
    for name, base in names.items():
        rows = t.filter(pc.equal(t["symbol"], name))
        if rows.num_rows:
            newest = rows.take([pc.index(rows["window_start"], pc.max(rows["window_start"])).as_py()])
            out[base] = (rows.num_rows, float(newest["close"][0].as_py()))
    return out


def sim_start_prices(s: Settings, base_symbols: list[str]) -> dict[str, float]:
    """Where the simulator should start each base symbol: its newest simulated close in the lake (a
    restart continues the chart), else its profile's price (a first run; the bootstrap history then
    ends there, `ensure_models`)."""
    from tickcast.sources.simulator import profile  # deferred: heavy (pandas)

    have = sim_bars(s, base_symbols)
    return {b: have[b][1] if b in have else profile(b).price for b in base_symbols}


def ensure_models(spark, s: Settings, base_symbols: list[str], echo=print, allow_simulated: bool = True,
                  start_prices: dict[str, float] | None = None) -> dict[int, str]:
    """Train a model for every horizon that has none at the configured ref; returns horizon -> alias given.

    Without real history it trains on simulated bars: those already in the lake when each symbol
    has enough (an earlier run's history and live minutes), else SIM_HISTORY_MINUTES written now,
    ending at `start_prices` (where the live simulator started), so the chart has no jump.
    """
    from tickcast.sources.simulator import SimConfig, sim_symbol  # deferred: heavy (pandas)

    missing = missing_models(s)
    if not missing:
        return {}
    real = {k: v for k, v in real_bar_symbols(s).items() if v >= MIN_REAL_BARS}
    if real:
        symbols = tuple(sorted(real))
    elif not allow_simulated:
        echo(f"models: no {s.model_ref} for horizon(s) {missing} and too little real history to train on; "
             "predictions wait until one is trained (`tickcast train`)")
        return {}
    if real:
        echo(f"models: no {s.model_ref} for horizon(s) {missing}: training on the real bars of {', '.join(symbols)}")
    else:
        symbols = tuple(sim_symbol(b, True) for b in base_symbols)
        have = sim_bars(s, base_symbols)
        if all(have.get(b, (0, 0.0))[0] >= SIM_HISTORY_MINUTES for b in base_symbols):
            echo(f"models: no {s.model_ref} for horizon(s) {missing} and no real history: training on the "
                 f"SIMULATED bars already in silver.bars_1m ({', '.join(symbols)})")
        else:
            end = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS
            echo(f"models: no {s.model_ref} for horizon(s) {missing} and no real history: training on "
                 f"{SIM_HISTORY_MINUTES} minutes of SIMULATED bars with the planted signal ({', '.join(symbols)})")
            cfg = SimConfig(symbols=tuple(base_symbols), rate=1.0, seed=7,
                            start_ms=end - SIM_HISTORY_MINUTES * MINUTE_MS, **SIM_SIGNAL)
            sim_history.run(spark, s, cfg, SIM_HISTORY_MINUTES, end_prices=start_prices)
    run(["features"], s, available_now=True, spark=spark)
    reports = train_in_subprocess(s, missing, symbols, echo)
    given = {}
    for rep in reports:
        h = int(rep["horizon"])
        given[h] = rep["alias"]
        echo(f"models: {rep['model']} v{rep['version']} -> {rep['alias']} (quick bootstrap model, "
             f"{rep['family']}; the gate: {rep['gate']['reason']})")
        if rep["alias"] != s.model_ref:
            echo(f"models: {rep['model']} has no {s.model_ref}: the quick bootstrap model did not pass the gate; "
                 f"predictions for horizon {h} wait for the retrainer's first full retrain (every candidate "
                 f"family, starting now) or a promotion by hand (`tickcast models promote VERSION --horizon {h} "
                 "--reason ...`)")
    return given


def train_in_subprocess(s: Settings, horizons: list[int], symbols: tuple[str, ...], echo=print) -> list[dict]:
    """`tickcast train --candidates linear` (QUICK_FAMILIES) as a child process; returns its reports.

    A child, so TensorFlow and the training data leave memory when it ends: trained in `up`'s own
    process they stayed resident (~0.9 GiB) for as long as the pipeline ran.
    """
    log_dir = s.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "reports.json"
        cmd = [sys.executable, "-m", "tickcast.cli", "train", "--symbols", ",".join(symbols),
               "--bootstrap-reps", str(BOOTSTRAP_REPS), "--candidates", ",".join(QUICK_FAMILIES),
               "--report", str(report)]
        for h in horizons:
            cmd += ["--horizon", str(h)]
        echo(f"models: training horizon(s) {', '.join(map(str, horizons))}, the quick bootstrap model "
             f"({', '.join(QUICK_FAMILIES)}; every family follows in the first retrain) (log {log_dir / 'train.log'})")
        with open(log_dir / "train.log", "ab") as out:
            code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, env=s.child_env())
        if code != 0 or not report.exists():
            raise RuntimeError(f"training failed (exit code {code}); see {log_dir / 'train.log'}")
        reps = json.loads(report.read_text())
    return reps if isinstance(reps, list) else [reps]
