"""The pipeline's health against the alert thresholds (TICKCAST_ALERT_*), as plain data (pure).

The header turns red while any check is crossed; the pipeline page draws the same thresholds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

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
