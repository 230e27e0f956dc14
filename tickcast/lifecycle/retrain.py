"""One retrain of one horizon on the sliding window, through the same gate as `tickcast train`.

The window is the last TICKCAST_TRAIN_WINDOW of silver.features, ending at its newest row. A retrain
that fails (MLflow unreachable, too little history, any error) registers nothing new that could be
served and moves no alias: the current champion keeps serving, and the failure is an
ops.model_events row. A run killed between registrations leaves versions tagged
`registration=unfinished`; they never get an alias, and `sweep_unfinished` marks them abandoned.
"""
from __future__ import annotations

from tickcast import model_events as events
from tickcast.lifecycle.decay import newest_feature_ms
from tickcast.settings import Settings
from tickcast.timeunits import MINUTE_MS


def window(s: Settings, newest_ms: int) -> tuple[int, int]:
    """(start, end) epoch ms of the training window (both inclusive): TRAIN_WINDOW of minutes to the newest row."""
    return newest_ms - int(s.train_window_s * 1000) + MINUTE_MS, newest_ms


def retrain(s: Settings, horizon: int, families=None, echo=print, **cfg_overrides) -> dict:
    """Train `horizon` on the window and apply the gate; never raises.

    Returns the training report (a promotion or refusal event is written by training itself), or
    `{"failed": reason}` after writing a failed_retrain event.
    """
    from tickcast import model_io, training

    name = model_io.model_name(horizon)
    try:
        newest = newest_feature_ms(s)
        if newest is None:
            raise training.TrainingError("silver.features has no rows yet")
        start, end = window(s, newest)
        cfg = training.TrainConfig(horizon=horizon, start_ms=start, end_ms=end,
                                   families=tuple(families or training.CANDIDATES), **cfg_overrides)
        echo(f"retrain: {name} on {training.iso(start)} .. {training.iso(end)} ({s.train_window})")
        return training.train(s, cfg, echo=echo, source="retrainer")
    except Exception as e:      # anything: the champion must keep serving, and the failure be seen
        reason = f"retrain failed, the champion is unchanged: {type(e).__name__}: {e}"
        echo(f"retrain: {name}: {reason}")
        try:
            events.record(s, horizon=horizon, model_name=name, version=None, event=events.FAILED_RETRAIN,
                          reason=reason[:5000], numbers={"error": type(e).__name__, "train_window": s.train_window},
                          source="retrainer")
        except Exception as e2:
            echo(f"retrain: could not append to ops.model_events either: {type(e2).__name__}: {e2}")
        return {"failed": reason}


def sweep_unfinished(s: Settings, client, echo=print) -> list[tuple[str, str]]:
    """Mark versions a killed training left unfinished as abandoned (tag + event); returns (name, version)s.

    Call it only when no training runs (the retrainer at its start, before its first retrain)."""
    from tickcast import model_io

    done = []
    for h in s.horizons:
        name = model_io.model_name(h)
        for v in model_io.unfinished(client, name):
            reason = ("registered by a training run that stopped before registering all its candidates "
                      "(killed or crashed): never served")
            client.set_model_version_tag(name, v, model_io.REGISTRATION, model_io.ABANDONED)
            events.record(s, horizon=h, model_name=name, version=v, event=events.ABANDONED, reason=reason,
                          source="retrainer")
            echo(f"retrain: {name} v{v} abandoned ({reason})")
            done.append((name, v))
    return done
