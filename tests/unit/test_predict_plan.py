"""predict_plan.plan_rows and features.late_rows: the pure parts of two sinks (no JVM)."""
import datetime as dt

import pyarrow as pa

from jobs.features import late_rows
from jobs.predict_models import Slot
from jobs.predict_plan import counts_of, plan_rows

UTC = dt.timezone.utc


def test_plan_rows_count_each_horizons_rows_and_name_the_version_it_switched_from():
    scored = pa.table({"feature_version": ["fv1", "fv1", "fv1", "fv0", "fv1"],
                       "warmup": [True, False, False, False, False]})
    slots = [Slot(1, "tickcast-h1", "4", {"feature_version": "fv1"}),
             Slot(5, "tickcast-h5", "2", {"feature_version": "fv0"})]
    rows = plan_rows(slots, counts_of(scored), batch_id=9, now_ms=123, last_version={1: "3", 5: "2"})
    # (batch, horizon, name, version, feature version, input, scored, refused, warm-up, switched from, at)
    assert rows == [(9, 1, "tickcast-h1", "4", "fv1", 5, 3, 1, 1, "3", 123),
                    (9, 5, "tickcast-h5", "2", "fv0", 5, 1, 3, 1, None, 123)]


def test_plan_rows_of_a_first_version_switch_from_nothing():
    scored = pa.table({"feature_version": ["fv1"], "warmup": [False]})
    rows = plan_rows([Slot(1, "tickcast-h1", "1", {"feature_version": "fv1"})], counts_of(scored), 0, 5, {})
    assert rows == [(0, 1, "tickcast-h1", "1", "fv1", 1, 1, 0, 0, None, 5)]


def test_late_rows_keep_only_the_late_bars_with_their_minute_and_batch():
    out = pa.table({"kind": ["feature", "late", "late"], "symbol": ["BTC", "ETH", "BTC"],
                    "window_ms": pa.array([60_000, 120_000, 180_000], pa.int64())})
    now = dt.datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    got = late_rows(out, 7, now).to_pylist()
    assert got == [
        {"query_name": "features", "symbol": "ETH", "window_start": dt.datetime(1970, 1, 1, 0, 2, tzinfo=UTC),
         "batch_id": 7, "noticed_at": now},
        {"query_name": "features", "symbol": "BTC", "window_start": dt.datetime(1970, 1, 1, 0, 3, tzinfo=UTC),
         "batch_id": 7, "noticed_at": now},
    ]
