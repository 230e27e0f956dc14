"""Table names (`layer.table`), their schemas, keys and where they live under the lake root."""
from __future__ import annotations

import re
from dataclasses import dataclass

from tickcast import schemas
from tickcast.settings import Settings


@dataclass(frozen=True)
class Table:
    name: str                       # "bronze.ticks"
    schema: schemas.Schema
    key: tuple[str, ...]
    partition_by: tuple[str, ...] = ()

    @property
    def layer(self) -> str:
        return self.name.split(".")[0]

    @property
    def short(self) -> str:
        return self.name.split(".")[1]

    def path(self, s: Settings) -> str:
        return f"{s.lake_uri}/{self.layer}/{self.short}"


TICKS = Table("bronze.ticks", schemas.TICKS, schemas.TICKS_KEY, ("date",))
QUARANTINE = Table("bronze.quarantine", schemas.QUARANTINE, schemas.QUARANTINE_KEY)
BARS = Table("silver.bars_1m", schemas.BARS, schemas.BARS_KEY)
STREAM_PROGRESS = Table("ops.stream_progress", schemas.STREAM_PROGRESS, ("query_id", "run_id", "batch_id"))
FEATURES = Table("silver.features", schemas.FEATURES, schemas.FEATURES_KEY)
LATE_BARS = Table("ops.late_bars", schemas.LATE_BARS, schemas.LATE_BARS_KEY)
PREDICTIONS = Table("gold.predictions", schemas.PREDICTIONS, schemas.PREDICTIONS_KEY)
PREDICT_BATCHES = Table("ops.predict_batches", schemas.PREDICT_BATCHES, schemas.PREDICT_BATCHES_KEY)
OUTCOMES = Table("gold.outcomes", schemas.OUTCOMES, schemas.OUTCOMES_KEY)
MODEL_SCORES = Table("gold.model_scores", schemas.MODEL_SCORES, schemas.MODEL_SCORES_KEY)
DRIFT = Table("gold.drift", schemas.DRIFT, schemas.DRIFT_KEY)
LOST_OFFSETS = Table("ops.lost_offsets", schemas.LOST_OFFSETS, schemas.LOST_OFFSETS_KEY)
BACKTEST = Table("gold.backtest", schemas.BACKTEST, schemas.BACKTEST_KEY)
# Appended by delta-rs from several processes (tickcast/model_events.py says why that is safe).
MODEL_EVENTS = Table("ops.model_events", schemas.MODEL_EVENTS, schemas.MODEL_EVENTS_KEY)

ALL: dict[str, Table] = {t.name: t for t in (TICKS, QUARANTINE, BARS, STREAM_PROGRESS, FEATURES, LATE_BARS,
                                             PREDICTIONS, PREDICT_BATCHES, OUTCOMES, MODEL_SCORES, DRIFT,
                                             LOST_OFFSETS, BACKTEST, MODEL_EVENTS)}

_NAME = re.compile(r"\b(bronze|silver|gold|ops)\.([a-z_][a-z0-9_]*)\b")


def checkpoint(s: Settings, query: str) -> str:
    """One checkpoint folder per streaming query."""
    return f"{s.checkpoint_uri}/{query}"


def resolve_sql(sql: str, s: Settings) -> str:
    """Map `layer.table` names in a SQL text to `delta.`<path>`` so users can query by name."""
    return _NAME.sub(lambda m: f"delta.`{s.lake_uri}/{m.group(1)}/{m.group(2)}`", sql)


def referenced(sql: str) -> list[str]:
    """The `layer.table` names a SQL text uses, in order of first use."""
    return list(dict.fromkeys(f"{m.group(1)}.{m.group(2)}" for m in _NAME.finditer(sql)))


def quote_names(sql: str) -> str:
    """`layer.table` -> `"layer.table"`: one identifier for engines (DataFusion) that read the dot as a schema."""
    return _NAME.sub(lambda m: f'"{m.group(1)}.{m.group(2)}"', sql)
