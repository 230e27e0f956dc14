"""The hot path's predict step: feature rows scored in the driver by each horizon's model at
TICKCAST_MODEL_REF (the `champion`), through the LiteRT artefact the service serves, and inserted
once into gold.predictions with the predict job's plan, rows and drift (`jobs.predict_plan`,
`jobs.predict.prediction_rows`, `jobs.drift_window`).

After a (re)start, the feature rows newer than each symbol's newest prediction (a crash between
the features and the predictions commits; on a first start, the history the features job wrote)
are scored in the run's first batch, as the predict job scores every row of its stream.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Callable

import numpy as np

from jobs.delta_io import InsertOnce, spans_of
from jobs.drift_window import DriftWindow
from jobs.live_features import newest_per_symbol
from jobs.predict import prediction_rows
from jobs.predict_models import ModelResolver, NoModel, Slot
from jobs.predict_plan import QUERY, BatchPlans, counts_of
from jobs.scoring import OUT_FIELDS
from tickcast import features, lake, schemas, tables
from tickcast.settings import Settings

log = logging.getLogger("tickcast.hotpath")
SAY_EVERY_SECONDS = 60.0


def model_dir(s: Settings) -> Path:
    """Where the hot path keeps the LiteRT artefacts it scores with (by name/version, immutable)."""
    return Path(s.data_dir) / "hotpath" / "models"


def scored_table(rows, outs: list[dict[str, np.ndarray]]):
    """Feature rows (Arrow) with each slot's outputs as a struct column `_out<i>` (pure): the shape
    `Scorer.score` gives the predict job."""
    import pyarrow as pa

    for i, o in enumerate(outs):
        rows = rows.append_column(f"_out{i}", pa.StructArray.from_arrays(
            [pa.array(np.asarray(o[f], float)) for f in OUT_FIELDS], names=list(OUT_FIELDS)))
    return rows


class LivePredictor:
    """Scores and commits the hot path's feature rows. `app_id(name)`: the query's idempotent-append id."""

    def __init__(self, s: Settings, app_id: Callable[[str], str]):
        self.s, self.app_id = s, app_id
        self.models = ModelResolver(s)
        self.plans = BatchPlans(s, self.models, app_id)
        self.insert = InsertOnce(tables.PREDICTIONS, s, schemas.PREDICTIONS_KEY)
        self.drift = DriftWindow(s, self.models.reference, app_id)
        self._lite: dict[tuple[str, str], object] = {}
        self._said = float("-inf")

    def owed(self):
        """Feature rows (Arrow, silver.features columns) newer than their symbol's newest prediction
        (only rows newer than the oldest of those are read: after a first start, every row)."""
        import datetime as dt

        import pyarrow as pa

        if not lake.exists(tables.FEATURES, self.s):
            return None
        newest: dict[str, int] = {}
        if lake.exists(tables.PREDICTIONS, self.s):
            newest = newest_per_symbol(lake.read(tables.PREDICTIONS, self.s, columns=["symbol", "window_start"]))
        filters = [("feature_version", "=", features.feature_version()), ("warmup", "=", False)]
        if newest:
            lo = dt.datetime.fromtimestamp(min(newest.values()) / 1000, dt.timezone.utc)
            filters.append(("window_start", ">", lo))
        f = lake.read(tables.FEATURES, self.s, filters=filters)
        if not f.num_rows or not newest:
            return f
        ms, syms = lake.to_ms(f["window_start"]), f["symbol"].to_pylist()
        return f.filter(pa.array([m > newest.get(sym, -1) for sym, m in zip(syms, ms)]))

    def model(self, sl: Slot):
        """The slot's LiteRT model (materialized and opened once per version)."""
        from tickcast import model_io  # deferred: heavy (mlflow)
        from tickcast.litert import LiteModel

        key = (sl.name, sl.version)
        if key not in self._lite:
            folder = model_io.materialize(self.models.client(), sl.name, sl.version, model_dir(self.s), warn=log.warning)
            self._lite[key] = LiteModel.open(folder, sl.name, sl.version)
        return self._lite[key]

    def score(self, rows, slots: list[Slot]):
        """Each slot's outputs beside the rows; rows a slot does not score get zeros as input (their
        outputs are dropped by `prediction_rows`), as in the predict job."""
        from tickcast import modeling

        warm = rows["warmup"].to_numpy(zero_copy_only=False)
        fv = np.asarray(rows["feature_version"].to_pylist(), dtype=object)
        outs = []
        for sl in slots:
            m = self.model(sl)
            ok = ~warm & (fv == sl.feature_version)
            X = np.column_stack([rows[c].to_numpy(zero_copy_only=False) for c in m.features]).astype(float)
            X[~ok] = 0.0
            p, r = m.predict(X)
            j = m.features.index("ret_1")
            outs.append({"prob_up": p, "pred_return": r, **modeling.baseline_predictions(m.meta["baselines"], X[:, j])})
        return scored_table(rows, outs)

    def commit(self, spark, rows, batch_id: int, rerun: bool) -> int:
        """Score `rows` (silver.features rows, Arrow) and insert the predictions once; returns how many.

        `rerun`: the run's first batch (it may re-run one a crash interrupted: scored with the
        versions its first attempt planned). Without any model the rows wait (said every minute):
        they are scored by the first batch of a later run, or by the predict job.
        """
        if rows is None or not rows.num_rows:
            return 0
        now_ms = int(time.time() * 1000)
        try:
            plan = self.plans.open(batch_id, rerun=rerun)
        except NoModel as e:
            if time.monotonic() - self._said >= SAY_EVERY_SECONDS:
                print(f"hotpath: {e}: feature rows are written, predictions wait", flush=True)
                self._said = time.monotonic()
            return 0
        scored = self.score(rows, plan.slots)
        out = prediction_rows(scored, plan.slots, batch_id, now_ms)
        spans = spans_of(out["symbol"].to_pylist(), lake.to_ms(out["window_start"])) if out.num_rows else {}

        def insert():
            if out.num_rows:
                self.insert(out, spans, self.app_id(QUERY), batch_id, spark=spark)

        self.plans.commit(plan, counts_of(scored), now_ms, self.insert.appends(spans, spark) if spans else True,
                          insert)
        self.drift.update(scored, plan.slots, batch_id, now_ms)
        return out.num_rows
