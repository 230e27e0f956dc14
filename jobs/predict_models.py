"""Which registered model versions the predict job scores with: one `Slot` per horizon.

`ModelResolver.resolve()` looks each horizon's model `tickcast-h<H>` up at TICKCAST_MODEL_REF (default
the `champion` alias): one registry lookup per batch, so an alias move is picked up at the next batch
without a restart. It never waits: while no horizon has a model the runner holds the query back
(`waiting_for`, jobs/runner.py), so no batch is taken, and a batch that finds none any more raises
`NoModel` (the batch commits nothing; the runner starts the query again once a model is back).
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from tickcast import metrics
from tickcast.settings import Settings

log = logging.getLogger("tickcast.predict")
SAY_EVERY_SECONDS = 30.0      # how often a missing model is said again


class NoModel(RuntimeError):
    """No horizon has a model at the configured ref: the batch cannot be scored."""


@dataclass(frozen=True)
class Slot:
    """What one horizon is scored with in one batch."""
    horizon: int
    name: str
    version: str
    meta: dict

    @property
    def feature_version(self) -> str:
        return self.meta["feature_version"]


class ModelResolver:
    """Registry lookups of the predict job (one MLflow client, reference distributions cached)."""

    def __init__(self, s: Settings):
        self.s = s
        self._client = None
        self._refs: dict[tuple[str, str], dict] = {}
        self._said_missing = float("-inf")

    def client(self):
        from tickcast import model_io  # deferred: heavy (imports mlflow)

        if self._client is None:
            self._client = model_io.configure(self.s)
        return self._client

    def slot(self, horizon: int, ref: str) -> Slot | None:
        """The horizon's model at `ref` (an alias or a version number); None if there is none."""
        from tickcast import model_io  # deferred: heavy (imports mlflow)

        name = model_io.model_name(horizon)
        mv = model_io.resolve(self.client(), name, ref)
        if mv is None:
            return None
        if "meta" not in (mv.tags or {}):
            log.warning("predict: %s v%s has no `meta` tag (registered by an older tickcast); not scoring with it",
                        name, mv.version)
            return None
        return Slot(horizon, name, str(mv.version), json.loads(mv.tags["meta"]))

    def _lookup(self) -> tuple[list[Slot], list[str]]:
        slots = {h: self.slot(h, self.s.model_ref) for h in self.s.horizons}
        return [sl for sl in slots.values() if sl is not None], [f"tickcast-h{h}" for h, sl in slots.items() if sl is None]

    def resolve(self) -> list[Slot]:
        """The horizons' models now. Horizons without one are skipped (and said so) until theirs
        appears; with none at all, `NoModel`."""
        found, missing = self._lookup()
        metrics.set_models([(sl.horizon, sl.version, int(sl.meta["training_end_ms"])) for sl in found])
        if not found:
            raise NoModel(f"predict: no {self.s.model_ref} of {', '.join(missing)} (run `tickcast train`)")
        now = time.monotonic()
        if missing and now - self._said_missing >= SAY_EVERY_SECONDS:
            print(f"predict: no {self.s.model_ref} of {', '.join(missing)} yet: those horizons are not scored",
                  flush=True)
            self._said_missing = now
        return found

    def waiting_for(self) -> str | None:
        """What the job waits for before it may start (None: a horizon has a model)."""
        found, missing = self._lookup()
        if found:
            return None
        return f"a {self.s.model_ref} of {', '.join(missing)} (run `tickcast train`)"

    def reference(self, sl: Slot) -> dict:
        """The version's training reference distribution (downloaded once per version)."""
        import mlflow

        key = (sl.name, sl.version)
        if key not in self._refs:
            self.client()
            path = mlflow.artifacts.download_artifacts(f"models:/{sl.name}/{sl.version}")
            self._refs[key] = json.loads((Path(path) / "artifacts" / "reference.json").read_text())
        return self._refs[key]
