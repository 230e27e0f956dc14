"""The pipeline's health against the alert thresholds (TICKCAST_ALERT_*), as plain data (pure).

The header turns red while any check is crossed; the pipeline page draws the same thresholds.
While a live or simulated stack catches up after its streams started (tickcast/catchup.py), it
says "catching up" and what it waits for instead.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from tickcast import catchup
from tickcast.settings import Settings

SOURCE_WORDS = {"live": "LIVE", "gapfill": "LIVE", "replay": "REPLAY", "simulate": "SIMULATED"}


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None        # seconds; None = nothing measured yet
    threshold: float
    crossed: bool
    detail: str = ""

    def describe(self) -> str:
        v = "–" if self.value is None else f"{self.value:,.1f} s"
        return f"{self.name} {v} (alert above {self.threshold:g} s){': ' + self.detail if self.detail else ''}"


def source_word(ticks_source: str | None, bars: pd.DataFrame) -> str:
    """LIVE, REPLAY, SIMULATED (from the newest bronze.ticks rows), else from the bars: simulated
    symbols end in -SIM..., klines are a backfill, bars from ticks no longer in bronze say so;
    NO DATA on a fresh install."""
    if ticks_source in SOURCE_WORDS:
        return SOURCE_WORDS[ticks_source]
    if bars.empty:
        return "NO DATA"
    newest = bars.loc[bars["window_start"].idxmax()]
    if "-SIM" in str(newest["symbol"]):
        return "SIMULATED"
    return "BACKFILL (klines)" if newest["source"] == "klines" else "SOURCE UNKNOWN (no bronze.ticks)"


def latest_per_query(progress: pd.DataFrame) -> pd.DataFrame:
    """Each streaming query's newest ops.stream_progress row (with `figures.progress_series` columns)."""
    if progress.empty:
        return progress
    return progress.sort_values("timestamp").groupby("query_name", sort=True).tail(1)


def checks(s: Settings, now: pd.Timestamp, newest_bar: pd.Timestamp | None, newest_bar_commit: pd.Timestamp | None,
           freshness_s: float | None, latest: pd.DataFrame) -> list[Check]:
    """The four alert checks.

    Args:
        now: wall clock (UTC).
        newest_bar: the newest bar's window start; newest_bar_commit: when the newest bars file was written.
        freshness_s: bar end -> prediction commit of the newest minute with a one-minute file.
        latest: `latest_per_query` of the progress series (batch_seconds, lag_seconds).
    Returns:
        bar age, freshness, lag, batch duration.
    """
    out = []
    if newest_bar is None:
        out.append(Check("bar age", None, s.alert_bar_age_seconds, False, "no bars yet"))
    else:
        age = (now - (newest_bar + pd.Timedelta(minutes=1))).total_seconds()
        written = (now - newest_bar_commit).total_seconds() if newest_bar_commit is not None else age
        # A replay's bars are old by trade time while it runs: stale means no bar written lately either.
        stale = min(age, written)
        out.append(Check("bar age", age, s.alert_bar_age_seconds, stale > s.alert_bar_age_seconds,
                         f"newest bar written {written:,.0f} s ago"))
    out.append(Check("freshness", freshness_s, s.alert_freshness_seconds,
                     freshness_s is not None and freshness_s > s.alert_freshness_seconds,
                     "bar end → prediction commit"))

    def worst(col: str):
        if latest.empty or col not in latest or latest[col].isna().all():
            return None, ""
        i = latest[col].astype(float).idxmax()
        return float(latest.loc[i, col]), str(latest.loc[i, "query_name"])

    lag, q = worst("lag_seconds")
    out.append(Check("Kafka lag", lag, s.alert_lag_seconds, lag is not None and lag > s.alert_lag_seconds, q))
    b, q = worst("batch_seconds")
    out.append(Check("batch duration", b, s.alert_batch_seconds, b is not None and b > s.alert_batch_seconds, q))
    return out


def newest_freshness(f: pd.DataFrame, stage: str = "predictions") -> float | None:
    """The stage's freshness at the newest minute that has it."""
    if f.empty or stage not in f or f[stage].isna().all():
        return None
    v = f.dropna(subset=[stage])[stage].iloc[-1]
    return float(v) if np.isfinite(v) else None


# Sources whose minutes arrive as they happen: a replay's or a backfill's are old by trade time,
# so "a minute that ended after the start" would never come for them.
CATCH_UP_SOURCES = ("LIVE", "SIMULATED")


def streams_started(progress: pd.DataFrame) -> pd.Timestamp | None:
    """When the streams' current runs started: per query, the first row of its newest row's run;
    the newest of those (a query that restarted catches up too; it is caught up as soon as a live
    minute is predicted, so a restart never hides a stalled path for long). None without rows.
    (Rows older than those given are not seen: callers pass a span longer than catchup.CATCH_UP_LIMIT_S.)"""
    if progress.empty or "run_id" not in progress:
        return None
    p = progress.sort_values("timestamp", kind="stable")
    current = p.groupby("query_name", sort=False)["run_id"].last()
    starts = [p.loc[(p["query_name"] == q) & (p["run_id"] == r), "timestamp"].min() for q, r in current.items()]
    return max(starts)


def catching_up(word: str, now: pd.Timestamp, started: pd.Timestamp | None, newest_bar: pd.Timestamp | None,
                newest_prediction: pd.Timestamp | None, checks_: list[Check]) -> catchup.CatchUp:
    """catchup.judge for the header: window starts in, minute ends compared; the lag check as the backlog."""
    if word not in CATCH_UP_SOURCES or started is None:
        return catchup.CatchUp(False)
    end = lambda ts: None if ts is None else (ts + pd.Timedelta(minutes=1)).timestamp()  # noqa: E731
    lag = next((c for c in checks_ if c.name == "Kafka lag" and c.value), None)
    return catchup.judge(now.timestamp(), started.timestamp(), end(newest_bar), end(newest_prediction),
                         "" if lag is None else f"Kafka lag {lag.value:,.0f} s in {lag.detail}")
