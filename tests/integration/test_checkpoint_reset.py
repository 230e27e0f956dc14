"""A deleted or rolled-back checkpoint never duplicates or drops a row in any sink.

Simulated trades go through the real broker and every streaming job (ingest, bars, features,
predict with the shared pipeline's champion, outcomes) into a lake twice: a reference lake that
reads everything in one go, and a lake whose jobs first read part of the data, then lose every
checkpoint (`rm -r`) before the rest arrives, then have each checkpoint rolled back by its newest
batch (offsets and commit deleted: the batch runs again). Each sink's table must equal the
reference's, row for row and value for value (columns that say when a row was written excepted),
and be unique on its key.
"""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tickcast import lake, schemas, tables
from tickcast.timeunits import MINUTE_MS as MIN

pytestmark = [pytest.mark.kafka, pytest.mark.spark]

START_MS = 1_790_000_000_000 // MIN * MIN + 3 * MIN     # after the shared champion's training end
MINUTES = 150                 # > features.WINDOW: the last ~30 minutes are scored and realized
FIRST_PART = 125              # minutes read before the checkpoints are lost
JOBS = ("ingest", "bars", "features", "predict", "outcomes")
# Columns that record when (or in which batch) a row was written: they differ between runs by nature.
WRITTEN = {"ingest_time", "created_at", "prediction_time", "outcome_time", "batch_id", "computed_at",
           "made_before_outcome"}
SINKS = (tables.TICKS, tables.QUARANTINE, tables.BARS, tables.FEATURES, tables.PREDICTIONS, tables.OUTCOMES)


def _publish(s, minutes) -> int:
    from producers.publisher import Publisher

    pub = Publisher(s, "simulate")
    n = 0
    for batch in minutes:
        for sym, _t, value in batch:
            pub.send(value, sym.encode())
            n += 1
    pub.send(b'{"e":"trade","s":"BTCUSDT-SIM","t":"bad"}', b"BTCUSDT-SIM")     # one for quarantine
    assert pub.close().failed == 0
    return n + 1


def _frame(table, s) -> pd.DataFrame:
    t = lake.read(table, s)
    keep = [c for c in t.schema.names if c not in WRITTEN]
    if table is tables.TICKS:
        keep = [c for c in keep if not c.startswith("kafka_")]   # the two lakes read the same records
    df = t.select(keep).to_pandas()
    key = [k for k in table.key]
    assert not df.duplicated(key).any(), f"{table.name}: a key twice"
    return df.sort_values(key).reset_index(drop=True)


def _roll_back_newest_batch(checkpoint: Path) -> int | None:
    """Forget the checkpoint's newest batch (its offsets and commit): the next run runs it again."""
    commits = sorted(int(p.name) for p in (checkpoint / "commits").glob("[0-9]*")) \
        if (checkpoint / "commits").is_dir() else None
    if not commits:
        return None
    last = commits[-1]
    for d in ("commits", "offsets"):
        (checkpoint / d / str(last)).unlink()
        (checkpoint / d / f".{last}.crc").unlink(missing_ok=True)     # the local file system's checksum
    return last


def test_deleted_or_rolled_back_checkpoints_neither_duplicate_nor_drop(spark, lane, pipeline, tmp_path):
    from jobs import bars as bars_job
    from jobs.runner import run
    from tickcast.sources.simulator import SimConfig, encode_events, simulate_batches

    s = dataclasses.replace(lane, mlflow_uri=pipeline.settings.mlflow_uri, horizons=(pipeline.horizon,))
    ref = dataclasses.replace(s, lake_uri=str(tmp_path / "ref" / "delta"),
                              checkpoint_uri=str(tmp_path / "ref" / "checkpoints"))
    stream = simulate_batches(SimConfig(symbols=("BTCUSDT", "ETHUSDT"), rate=2.0, seed=5, start_ms=START_MS))
    minutes = [encode_events(next(stream)) for _ in range(MINUTES)]

    def run_all(settings):
        for job in JOBS:
            run([job], settings, available_now=True, spark=spark)

    def checkpoints(settings) -> list[Path]:
        return [Path(bars_job.checkpoint(settings)) if j == "bars" else Path(tables.checkpoint(settings, j))
                for j in JOBS]

    _publish(s, minutes[:FIRST_PART])
    run_all(s)
    assert len(lake.read(tables.PREDICTIONS, s, columns=["symbol"])) > 0, "nothing scored before the reset"
    for cp in checkpoints(s):                              # every checkpoint lost
        assert cp.is_dir(), cp
        shutil.rmtree(cp)
    _publish(s, minutes[FIRST_PART:])
    run_all(s)
    rolled = {cp.name: _roll_back_newest_batch(cp) for cp in checkpoints(s)}
    assert all(v is not None for v in rolled.values()), rolled
    # Every input is complete now: the five re-run batches can run at once, in one runner.
    run(list(JOBS), s, available_now=True, spark=spark)

    run_all(ref)                                           # the reference: everything in one go
    for table in SINKS:
        got, want = _frame(table, s), _frame(table, ref)
        assert len(want) > 0, table.name
        pd.testing.assert_frame_equal(got, want, check_exact=True, obj=table.name)
    # gold.model_scores is a log of each batch's rolling scores: a new checkpoint's batches (ids from
    # 0 again) score again, a re-run batch does not. No batch's rows twice, and the newest scores
    # (over the same outcomes, up to the same latest bar) equal the reference's.
    def newest_scores(settings) -> pd.DataFrame:
        df = lake.read(tables.MODEL_SCORES, settings).to_pandas()
        assert not df.duplicated(["computed_at", *schemas.MODEL_SCORES_KEY]).any(), "gold.model_scores: a batch twice"
        key = ["model_name", "model_version", "horizon", "symbol", "window"]
        last = df[df["computed_at"] == df["computed_at"].max()]
        return last.drop(columns=["computed_at", "batch_id"]).sort_values(key).reset_index(drop=True)

    pd.testing.assert_frame_equal(newest_scores(s), newest_scores(ref), check_exact=True, obj=tables.MODEL_SCORES.name)
