"""The predict job's batch plans (ops.predict_batches): which versions scored a batch, and its counts.

A batch re-run after a crash or a stop must score with the versions its first attempt used, so that
no batch is ever scored by two versions. Only a run's first batch can be such a re-run: it takes its
plan, or the versions of the predictions this checkpoint committed for it, and writes its plan
before its predictions (its rows may take the MERGE, which leaves no transaction id to find). A
later batch writes its plan after its predictions when they are appended (the append's transaction
id is what a re-run finds), before them when they take the MERGE.
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Callable

from jobs.delta_io import utc
from tickcast.engine.arrow_frames import arrow_rows
from tickcast.lake.follow import table as rs_table
from tickcast.lake.write import append_once
from jobs.predict_models import ModelResolver, Slot
from tickcast import lake, schemas, tables
from tickcast.settings import Settings

QUERY = "predict"
PLAN = QUERY + "-plan"        # the app id (with the query's id) of the batch plans' idempotent appends
log = logging.getLogger("tickcast.predict")


@dataclass(frozen=True)
class Plan:
    """The versions a batch is scored with."""
    batch_id: int
    slots: list[Slot]
    rerun: bool          # the run's first batch: it may re-run one that ran before a crash or a stop
    written: bool        # its plan is in ops.predict_batches already (a re-run of a planned batch)


def counts_of(scored) -> Counter:
    """A scored batch's (Arrow) rows counted by (feature version, warm-up) (pure)."""
    return Counter(zip(scored["feature_version"].to_pylist(), scored["warmup"].to_pylist()))


def plan_rows(slots: list[Slot], counts: dict, batch_id: int, now_ms: int, last_version: dict[int, str]) -> list[tuple]:
    """ops.predict_batches rows (pure): per horizon, the version and what happened to the batch's rows;
    `last_version`: the version each horizon was scored with before (for `switched_from`)."""
    rows = []
    n_all = sum(counts.values())
    warm = sum(n for (fv, w), n in counts.items() if w)
    for sl in slots:
        refused = sum(n for (fv, w), n in counts.items() if not w and fv != sl.feature_version)
        prev = last_version.get(sl.horizon)
        rows.append((batch_id, sl.horizon, sl.name, sl.version, sl.feature_version, n_all,
                     n_all - warm - refused, refused, warm,
                     prev if prev is not None and prev != sl.version else None, now_ms))
        if refused:
            log.warning("predict: batch %d: %d rows of another feature version refused by %s v%s",
                        batch_id, refused, sl.name, sl.version)
    return rows


class BatchPlans:
    """Opens a batch's plan (its versions) and writes it at the point that keeps re-runs exact.

    `app_id(name)`: the query's idempotent-append id for `name` (`delta_io.QuerySink.app_id`).
    """

    def __init__(self, s: Settings, models: ModelResolver, app_id: Callable[[str], str]):
        self.s, self.models, self.app_id = s, models, app_id
        self.last_version: dict[int, str] = {}

    def open(self, batch_id: int, rerun: bool) -> Plan:
        """The batch's versions: a re-run's earlier ones if it has any, else the registry's now."""
        if rerun:
            planned = self._planned(batch_id)
            if planned:
                return Plan(batch_id, planned, True, True)
            scored = self._scored_with(batch_id)
            if scored:
                return Plan(batch_id, scored, True, False)
        return Plan(batch_id, self.models.resolve(), rerun, False)

    def commit(self, plan: Plan, counts: dict, now_ms: int, appends: bool, insert: Callable[[], object]) -> None:
        """`insert()` the batch's predictions with its plan written before or after them.

        `appends`: whether the predictions take the idempotent append (else the MERGE).
        """
        rows = plan_rows(plan.slots, counts, plan.batch_id, now_ms, self.last_version)
        for sl in plan.slots:
            self.last_version[sl.horizon] = sl.version
        # The plan goes first whenever the rows will take the MERGE, which leaves no transaction id
        # for a re-run to find: a crash between the MERGE and a later plan, then a moved alias,
        # would add a second version's rows. An append (the live case) leaves its id; its plan after.
        plan_first = (plan.rerun and not plan.written) or (not plan.rerun and not appends)
        if plan_first:
            self.write(rows, plan.batch_id)
        insert()
        if not plan.rerun and not plan_first:
            self.write(rows, plan.batch_id)

    def write(self, rows: list[tuple], batch_id: int) -> None:
        """Append the plan rows once per batch (keyed by the query's id and the batch id)."""
        names = schemas.PREDICT_BATCHES.names
        rows = [dict(zip(names, r[:-1] + (utc(r[-1]),))) for r in rows]
        append_once(arrow_rows(rows, schemas.PREDICT_BATCHES.spark_type()), tables.PREDICT_BATCHES.path(self.s),
                    self.app_id(PLAN), batch_id)

    def _planned(self, batch_id: int) -> list[Slot] | None:
        """The plan this checkpoint wrote for the batch, if any (a re-run after a crash or a stop)."""
        return self._committed(tables.PREDICT_BATCHES, PLAN, batch_id, "planned_at")

    def _scored_with(self, batch_id: int) -> list[Slot] | None:
        """The versions of the batch's predictions if this checkpoint appended them (its plan was not)."""
        return self._committed(tables.PREDICTIONS, QUERY, batch_id, "prediction_time")

    def _committed(self, table, app: str, batch_id: int, when: str) -> list[Slot] | None:
        """The versions in the rows this checkpoint committed to `table` for the batch, if it did.

        Rows are appended under an id of this query (kept in its checkpoint), so rows left by an
        earlier checkpoint with the same batch id (the checkpoint was started afresh) are not taken;
        of the rows with the batch id, this checkpoint's are the latest by `when`.
        """
        if not lake.exists(table, self.s):
            return None
        v = rs_table(table.path(self.s)).transaction_version(self.app_id(app))
        if v is None or v < batch_id:
            return None
        columns = ["horizon", "model_version"]
        t = lake.read(table, self.s, columns=columns + [when], filters=[("batch_id", "=", batch_id)]).to_pandas()
        t = t[t[when] == t[when].max()].drop_duplicates(columns)
        return [sl for r in t.to_dict("records")
                if (sl := self.models.slot(int(r["horizon"]), r["model_version"]))] or None
