"""The retrainer process (`tickcast retrain`, a child of `up` at low priority): decay and age checks
every `check_seconds`, a retrain of each horizon every TICKCAST_RETRAIN_EVERY.

The cadence counts from the horizon's last training attempt in ops.model_events (a restart does not
retrain at once), so `up`'s first training at start-up is the first period's; except that a horizon
last trained on fewer candidate families than the retrainer fits (`up`'s quick bootstrap model, the
linear family alone) is due at once, so every family gets its turn through the gate minutes after
the first prediction instead of a TICKCAST_RETRAIN_EVERY later.
"""
from __future__ import annotations

import threading
import time

from tickcast import model_events as events
from tickcast.lifecycle import decay, retrain
from tickcast.settings import Settings


def partial(attempt: dict | None, families) -> bool:
    """Was this training attempt (model_events.last_attempt) on fewer families than `families`? (pure)

    Only a finished training says which families it fitted; a failed retrain does not count, so a
    full retrain that fails waits for the usual cadence rather than being attempted every pass.
    """
    if attempt is None or attempt["event"] not in (events.PROMOTION, events.REFUSAL):
        return False
    fitted = attempt["numbers"].get("candidates")
    return bool(fitted) and not set(families) <= set(fitted)


def due(s: Settings, horizon: int, now_ms: int, client=None, families=None) -> bool:
    """A retrain is due RETRAIN_EVERY after the last attempt (or, before any event, the newest
    registration), and at once after a training on fewer than `families` (default: every candidate)."""
    from tickcast.training.config import CANDIDATES

    attempt = events.last_attempt(s, horizon)
    if partial(attempt, families or CANDIDATES):
        return True
    last = None if attempt is None else attempt["at_ms"]
    if last is None and client is not None:
        from tickcast import model_io

        vs = client.search_model_versions(f"name='{model_io.model_name(horizon)}'")
        last = max((int(v.creation_timestamp) for v in vs), default=None)
    return last is None or now_ms - last >= s.retrain_every_s * 1000


def cycle(s: Settings, client, echo=print, families=None, now_ms: int | None = None) -> dict[int, dict]:
    """One pass over the horizons: judge each champion, then retrain the horizons that are due."""
    out: dict[int, dict] = {}
    for h in s.horizons:
        step: dict = {}
        try:
            step["decay"] = decay.check(s, h, client, echo) if client is not None else None
        except Exception as e:   # outcomes being written, MLflow away: judge again next pass
            echo(f"lifecycle: decay check of h{h} failed: {type(e).__name__}: {e}")
            step["decay_error"] = str(e)
        try:
            is_due = due(s, h, int(time.time() * 1000) if now_ms is None else now_ms, client, families)
        except Exception as e:   # MLflow away while looking: attempt it, the failure becomes an event
            echo(f"lifecycle: cadence of h{h}: {type(e).__name__}: {e}")
            is_due = True
        if is_due:
            step["retrain"] = retrain.retrain(s, h, families, echo)
        out[h] = step
    return out


def run(s: Settings, stop: threading.Event, echo=print, check_seconds: float = 60.0, families=None) -> None:
    """Until `stop`: sweep unfinished registrations once, then a `cycle` every `check_seconds`.

    With MLflow unreachable the decay checks wait, and a due retrain is attempted (and fails, as an event).
    """
    from tickcast import model_io

    swept = False
    while not stop.is_set():
        client = None
        try:
            client = model_io.configure(s)
            if not swept:
                retrain.sweep_unfinished(s, client, echo)
                swept = True
        except Exception as e:
            echo(f"lifecycle: MLflow at {s.mlflow_uri}: {type(e).__name__}: {e}")
        cycle(s, client, echo, families)
        stop.wait(check_seconds)
