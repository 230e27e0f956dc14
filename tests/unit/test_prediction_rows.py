"""predict.prediction_rows: the scored batch's Arrow rows -> gold.predictions rows (pure, no JVM)."""
import datetime as dt

import pyarrow as pa

from jobs.predict import Slot, prediction_rows
from tickcast import schemas

UTC = dt.timezone.utc


def out(p, r):
    return {"prob_up": p, "pred_return": r, "climatology_prob_up": 0.5, "momentum_prob_up": p / 2,
            "momentum_return": r / 2}


def test_each_slot_keeps_only_its_scored_rows_with_its_version_and_target_time():
    t0 = dt.datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
    scored = pa.table({
        "symbol": ["BTC", "BTC", "ETH"],
        "window_start": pa.array([t0, t0 + dt.timedelta(minutes=1), t0], pa.timestamp("us", tz="UTC")),
        "feature_version": ["fv1", "fv1", "fv0"],
        "warmup": [True, False, False],
        "close": [100.0, 101.0, 10.0],
        "_out0": [out(0.1, -1.0), out(0.6, 0.01), out(0.9, 9.0)],
        "_out1": [out(0.2, -2.0), out(0.7, 0.02), out(0.8, 8.0)],
    })
    slots = [Slot(1, "tickcast-h1", "3", {"feature_version": "fv1", "training_end_ms": 0}),
             Slot(5, "tickcast-h5", "7", {"feature_version": "fv1", "training_end_ms": 60_000})]
    got = prediction_rows(scored, slots, batch_id=42, now_ms=1_000).to_pylist()
    # The warm-up row and the other feature version's row are not predicted, by either slot.
    assert [(r["horizon"], r["model_name"], r["model_version"], r["prob_up"], r["pred_return"]) for r in got] == [
        (1, "tickcast-h1", "3", 0.6, 0.01), (5, "tickcast-h5", "7", 0.7, 0.02)]
    ws = t0 + dt.timedelta(minutes=1)
    assert [r["target_time"] for r in got] == [ws + dt.timedelta(minutes=1), ws + dt.timedelta(minutes=5)]
    assert [r["training_end"] for r in got] == [dt.datetime(1970, 1, 1, tzinfo=UTC),
                                                dt.datetime(1970, 1, 1, 0, 1, tzinfo=UTC)]
    r = got[1]
    assert (r["symbol"], r["window_start"], r["close"], r["feature_version"], r["batch_id"]) == ("BTC", ws, 101.0, "fv1", 42)
    assert (r["climatology_prob_up"], r["momentum_prob_up"], r["momentum_return"]) == (0.5, 0.35, 0.01)
    assert r["prediction_time"] == dt.datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)
    assert [f.name for f in prediction_rows(scored, slots, 42, 1_000).schema] == list(schemas.PREDICTIONS.names)


def test_no_slot_scores_nothing():
    scored = pa.table({"symbol": pa.array([], pa.string())})
    assert prediction_rows(scored, [], 0, 0).num_rows == 0


def test_arrow_type_renders_every_declared_type():
    from tickcast.schemas import Col, Schema

    sch = Schema((Col("a", "string"), Col("b", "bigint"), Col("c", "int"), Col("d", "boolean"), Col("e", "double"),
                  Col("f", "timestamp"), Col("g", "date"), Col("h", "binary"), Col("i", "decimal(24,8)"),
                  Col("j", "decimal(38, 16)")))
    assert sch.arrow_type() == pa.schema([
        ("a", pa.string()), ("b", pa.int64()), ("c", pa.int32()), ("d", pa.bool_()), ("e", pa.float64()),
        ("f", pa.timestamp("us", tz="UTC")), ("g", pa.date32()), ("h", pa.binary()), ("i", pa.decimal128(24, 8)),
        ("j", pa.decimal128(38, 16))])
