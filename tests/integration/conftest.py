"""One pipeline per test run for the read side (serving, dashboard): the pipeline's own jobs write
its tables and a real MLflow store holds a champion.

Simulated history with the planted interaction signal (docs/simulator.md) -> silver.bars_1m through
the bars job's transforms -> the features job -> walk-forward training and the gate (champion) ->
the predict and outcomes jobs, each available-now, in a lake and MLflow store of its own, kept
between runs while the code that builds it is unchanged.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO
from testkit.lakes import cached, code_key, own_lake
from tickcast.settings import Settings
from tickcast.timeunits import MINUTE_MS as MIN
PIPELINE_END_MS = 1_790_000_000_000 // MIN * MIN   # 2026-09-21: a fixed end for the simulated history
PIPELINE_MINUTES = 12_000                           # what the gate needs to promote the planted edge
PIPELINE_SYMBOLS = ("BTCUSDT", "ETHUSDT")


@dataclass(frozen=True)
class Pipeline:
    settings: Settings          # lake, checkpoints and MLflow store of this pipeline
    horizon: int                # the one horizon trained (tickcast-h<horizon> has a champion)
    report: dict                # training's report for that horizon
    symbols: tuple[str, ...]    # as stored (the simulator's -SIMSIG suffix)


PIPELINE_CACHE = REPO / ".cache" / "test-pipeline"


@pytest.fixture(scope="session")
def pipeline(request, base_settings) -> Pipeline:
    """The shared read-side pipeline, READ ONLY (fork it with testkit.lakes.fork to change anything).

    Built once per version of the code that builds it (the core, jobs, producers, this file, the
    pins) under .cache/test-pipeline/ and reused by later runs: a clean checkout (CI) builds it.
    """
    horizon = 1
    key = code_key(REPO, ("tickcast", "jobs", "producers"),
                   (Path(__file__), REPO / "requirements.txt", REPO / "constraints.txt"))

    def build(root: Path) -> None:
        from jobs import sim_history
        from jobs.runner import run
        from tickcast.sources.simulator import SimConfig
        from tickcast import training

        spark = request.getfixturevalue("spark")      # only to build: a reused pipeline needs no Spark
        s = dataclasses.replace(own_lake(base_settings, root), horizons=(horizon,))
        cfg = SimConfig(symbols=PIPELINE_SYMBOLS, rate=1.0, seed=7, start_ms=PIPELINE_END_MS - PIPELINE_MINUTES * MIN,
                        plant_signal=True, signal_kind="interaction", signal_strength=0.45)
        sim_history.run(spark, s, cfg, PIPELINE_MINUTES)
        run(["features"], s, available_now=True, spark=spark)
        # Linear and MLP only (the Conv1D family is trained in test_training): the interaction signal
        # needs the MLP, and this fixture is on the critical path of every read-side test.
        report = training.train(s, training.TrainConfig(horizon=horizon, bootstrap_reps=400,
                                                        families=("linear", "mlp")), echo=lambda *_: None)
        assert report["alias"] == "champion", f"the shared pipeline needs a champion: {report['gate']}"
        # One after the other: an available-now query bounds its input when it starts (outcomes
        # started beside predict would find no prediction yet).
        run(["predict"], s, available_now=True, spark=spark)
        run(["outcomes"], s, available_now=True, spark=spark)
        (root / "report.json").write_text(json.dumps(report, default=lambda v: v.item()))   # numpy scalars

    root = cached(PIPELINE_CACHE / key, build)
    s = dataclasses.replace(own_lake(base_settings, root), horizons=(horizon,))
    report = json.loads((root / "report.json").read_text())
    return Pipeline(s, horizon, report, tuple(sorted(report["symbols"])))
