"""gold.drift: each batch, the live window's features against each model's training reference.

The window is the last TICKCAST_DRIFT_WINDOW_HOURS of scorable feature rows (this feature version,
no warm-up), kept in the driver: read from silver.features once after a (re)start, then advanced by
each predict batch's rows. PSI and KS per feature (`tickcast.drift.report`), appended once per batch.
"""
from __future__ import annotations

from collections import deque
from typing import Callable

import numpy as np

from jobs.delta_io import utc
from tickcast.engine.arrow_frames import arrow_rows
from tickcast.lake.write import append_once
from jobs.predict_models import Slot
from tickcast import drift, features, lake, schemas, tables
from tickcast.settings import Settings
from tickcast.timeunits import HOUR_MS

APP = "predict-drift"         # the app id (with the query's id) of gold.drift's idempotent appends


def drift_rows(window: deque, slots: list[Slot], reference: Callable[[Slot], dict], threshold: float,
               batch_id: int, now_ms: int) -> list[dict]:
    """gold.drift rows of the window (`(window_ms, feature row)` pairs, oldest first) against each
    slot's model of this feature version, one model version once (pure but for `reference`)."""
    if not window:
        return []
    names = list(features.FEATURES)
    fv = features.feature_version()
    m = np.vstack([row for _, row in window])
    live = {n: m[:, i] for i, n in enumerate(names)}
    oldest = window[0][0]
    rows, done = [], set()
    for sl in slots:
        if (sl.name, sl.version) in done or sl.feature_version != fv:
            continue
        done.add((sl.name, sl.version))
        for d in drift.report(reference(sl), live, threshold):
            rows.append({"computed_at": utc(now_ms), "batch_id": batch_id, "model_name": sl.name,
                         "model_version": sl.version, "feature": d["feature"], "n": int(d["n"]),
                         "window_start": utc(oldest), "psi": _finite(d["psi"]), "ks": _finite(d["ks"]),
                         "ks_pvalue": _finite(d["ks_pvalue"]), "drifted": bool(d["drifted"])})
    return rows


def _finite(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def _feature_rows(t) -> list[tuple[int, np.ndarray]]:
    """Arrow rows with window_start and the feature columns -> (window_ms, row) sorted by time (pure)."""
    names = list(features.FEATURES)
    if not t.num_rows:
        return []
    ms = lake.to_ms(t["window_start"])
    m = np.column_stack([t[n].to_numpy(zero_copy_only=False) for n in names]).astype(float)
    return [(int(a), row) for a, row in sorted(zip(ms, m), key=lambda x: x[0])]


class DriftWindow:
    """The live window of one predict query and its gold.drift appends.

    `reference(slot)`: the version's training reference distribution (`ModelResolver.reference`);
    `app_id(name)`: the query's idempotent-append id (`delta_io.QuerySink.app_id`).
    """

    def __init__(self, s: Settings, reference: Callable[[Slot], dict], app_id: Callable[[str], str]):
        self.s, self.reference, self.app_id = s, reference, app_id
        self.window_ms = int(s.drift_window_hours * HOUR_MS)
        self.live: deque | None = None           # (window_ms, feature row) of the window, oldest first

    def update(self, scored, slots: list[Slot], batch_id: int, now_ms: int) -> None:
        """Advance the window by the batch's rows (`scored`, Arrow) and append its drift rows once."""
        import pyarrow.compute as pc

        if self.live is None:
            self.live = deque(self._from_table(now_ms))
        fv = features.feature_version()
        self.live.extend(_feature_rows(scored.filter(pc.and_(pc.invert(scored["warmup"]),
                                                             pc.equal(scored["feature_version"], fv)))))
        newest = max((a for a, _ in self.live), default=now_ms)
        while self.live and self.live[0][0] < newest - self.window_ms:
            self.live.popleft()
        rows = drift_rows(self.live, slots, self.reference, self.s.drift_psi_threshold, batch_id, now_ms)
        if rows:
            append_once(arrow_rows(rows, schemas.DRIFT.spark_type()), tables.DRIFT.path(self.s),
                        self.app_id(APP), batch_id)

    def _from_table(self, now_ms: int) -> list[tuple[int, np.ndarray]]:
        """After a (re)start: the window so far, from silver.features."""
        import pyarrow as pa

        if not lake.exists(tables.FEATURES, self.s):
            return []
        t = lake.read(tables.FEATURES, self.s, columns=["window_start", "warmup", *features.FEATURES],
                      filters=[("feature_version", "=", features.feature_version()), ("warmup", "=", False)])
        return _feature_rows(t.filter(pa.array(lake.to_ms(t["window_start"]) >= now_ms - self.window_ms)))
