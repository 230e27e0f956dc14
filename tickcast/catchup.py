"""Whether the stack is still catching up after its streams started, and what it waits for (pure).

After `up` bootstraps (simulated or backfilled history, a first model), the streams start on a
backlog: the ticks produced meanwhile, the history's features to predict, and no live minute closed
yet. Alerts measured then (bar age, lag, batch durations) describe the start, not a fault, so the
dashboard's header and `up`'s panel say "catching up" instead of a red alert. Catching up ends for
good at the first prediction of a minute that ended after the streams started (it stays there), or
CATCH_UP_LIMIT_S after the start: a stack that has not caught up by then is alerted on as usual.
"""
from __future__ import annotations

from dataclasses import dataclass

CATCH_UP_LIMIT_S = 600.0     # docs/dashboard.md: a fresh `up` predicts its first live minute in ~2 min


@dataclass(frozen=True)
class CatchUp:
    catching_up: bool
    waiting_for: tuple[str, ...] = ()      # in words, most important first

    def describe(self) -> str:
        return "catching up: waiting for " + ", ".join(self.waiting_for) if self.catching_up else ""


def judge(now_s: float, started_s: float | None, newest_bar_end_s: float | None,
          newest_prediction_end_s: float | None, lag: str = "", limit_s: float = CATCH_UP_LIMIT_S) -> CatchUp:
    """Is the stack catching up? (pure; all times epoch seconds)

    Args:
        started_s: when the streams (their current runs) started; None when no stream is known to run.
        newest_bar_end_s / newest_prediction_end_s: the end of the newest minute with a bar / a prediction.
        lag: the backlog in words (e.g. "ingest 1,200 msgs behind"), shown while catching up; "" for none.
    Returns:
        catching up (with what it waits for) until a minute that ended after `started_s` has a
        prediction, for at most `limit_s` after `started_s`.
    """
    if started_s is None or now_s - started_s > limit_s:
        return CatchUp(False)
    if newest_prediction_end_s is not None and newest_prediction_end_s > started_s:
        return CatchUp(False)
    live_bar = newest_bar_end_s is not None and newest_bar_end_s > started_s
    waiting = ["the first live minute's prediction" if live_bar else "the first live minute's bar"]
    if lag:
        waiting.append(f"the backlog ({lag})")
    return CatchUp(True, tuple(waiting))
