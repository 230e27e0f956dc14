"""Each streaming query runs its Spark jobs in the FAIR pool of its name, as tickcast/resources says."""
from __future__ import annotations

import dataclasses
import time
import xml.etree.ElementTree as ET

import pytest

from tickcast.spark import FAIR_POOLS

pytestmark = pytest.mark.spark


def test_a_query_runs_its_batches_in_its_own_pool_and_the_hot_path_has_a_minimum_share(spark, base_settings,
                                                                                        tmp_path):
    from jobs.delta_io import start_sink
    from jobs.runner import job_starters

    pools = {p.get("name"): p for p in ET.parse(FAIR_POOLS).getroot()}
    assert set(pools) == set(job_starters())          # a pool for every job, no stray names
    assert {n for n, p in pools.items() if int(p.findtext("minShare")) >= 1} == {"ingest", "bars", "features",
                                                                                 "predict"}
    assert spark.conf.get("spark.scheduler.mode") == "FAIR"
    assert spark.sparkContext._jsc.sc().getPoolForName("bars").isDefined()

    s = dataclasses.replace(base_settings, checkpoint_uri=str(tmp_path / "checkpoints"))
    seen: list[tuple[str | None, int]] = []

    def sink(df, batch_id):
        # The pool the batch's own Spark jobs are submitted in, and one such job.
        seen.append((df.sparkSession.sparkContext.getLocalProperty("spark.scheduler.pool"), df.count()))

    q = start_sink(spark.readStream.format("rate").option("rowsPerSecond", 20).load(), "bars", sink, s,
                   available_now=False, trigger_seconds=0.5)
    try:
        deadline = time.monotonic() + 60
        while len(seen) < 3 and time.monotonic() < deadline and q.exception() is None:
            time.sleep(0.2)
    finally:
        q.stop()
    assert q.exception() is None
    assert len(seen) >= 3 and {p for p, _ in seen} == {"bars"}
    # The starting thread is left as it was: a later query or job is not put in this pool.
    assert spark.sparkContext.getLocalProperty("spark.scheduler.pool") is None
