"""The shared read-side pipeline: every table the service and dashboard read is written by the jobs."""
from __future__ import annotations

import pytest

from tickcast import lake, model_io, tables

pytestmark = pytest.mark.spark


def test_the_shared_pipeline_writes_every_read_side_table(pipeline):
    s = pipeline.settings
    bars = lake.read(tables.BARS, s, columns=["symbol"]).to_pandas()
    feats = lake.read(tables.FEATURES, s, columns=["symbol"]).to_pandas()
    preds = lake.read(tables.PREDICTIONS, s, columns=["symbol", "model_version"]).to_pandas()
    assert set(bars["symbol"]) == set(pipeline.symbols) == set(preds["symbol"])
    assert len(feats) == len(bars) > 20_000
    # Every prediction is the champion's: the version training registered and promoted.
    assert set(preds["model_version"]) == {pipeline.report["version"]}
    assert str(model_io.resolve(model_io.configure(s), model_io.model_name(pipeline.horizon),
                                model_io.CHAMPION).version) == pipeline.report["version"]
    # Every prediction whose next minute is in the history has its outcome, and the rolling scores exist.
    outcomes = lake.read(tables.OUTCOMES, s, columns=["symbol"]).to_pandas()
    assert 0.99 * len(preds) <= len(outcomes) <= len(preds) and len(outcomes) > 20_000
    assert len(lake.read(tables.MODEL_SCORES, s, columns=["n"])) > 0 and lake.exists(tables.STREAM_PROGRESS, s)
