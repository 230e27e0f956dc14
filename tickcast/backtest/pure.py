"""The backtest's pure logic: the period schedule, which model serves a period, the plain strategy's
returns after fees, whether the gate was right, and the strategy's verdict in words (numpy only)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tickcast.timeunits import MINUTE_MS


@dataclass(frozen=True)
class Period:
    number: int
    start_ms: int           # the retrain happens here, with data up to this time only
    end_ms: int             # exclusive: the next period's start (or the backtest's end)


def periods(start_ms: int, end_ms: int, every_ms: int) -> list[Period]:
    """Consecutive periods of `every_ms` from `start_ms`; the last one is cut at `end_ms`.

    Starts are whole minutes (bars are minutes); an empty range or a non-positive step is an error.
    """
    if every_ms < MINUTE_MS or every_ms % MINUTE_MS:
        raise ValueError(f"the retrain period must be a whole number of minutes, got {every_ms} ms")
    start_ms = -(-start_ms // MINUTE_MS) * MINUTE_MS
    if end_ms <= start_ms:
        raise ValueError("the backtest range is empty: its end is not after its start")
    edges = list(range(start_ms, end_ms, every_ms)) + [end_ms]
    return [Period(i, a, b) for i, (a, b) in enumerate(zip(edges[:-1], edges[1:]))]


def month_periods(start_ms: int, end_ms: int, months: int = 1) -> list[Period]:
    """Calendar periods of `months` months (UTC) from `start_ms`; the last one is cut at `end_ms`."""
    from datetime import datetime, timezone

    if months < 1:
        raise ValueError(f"the retrain period must be at least one month, got {months}")
    start_ms = -(-start_ms // MINUTE_MS) * MINUTE_MS
    if end_ms <= start_ms:
        raise ValueError("the backtest range is empty: its end is not after its start")
    t0 = datetime.fromtimestamp(start_ms / 1000, tz=timezone.utc)
    edges, k = [start_ms], 1
    while edges[-1] < end_ms:
        m = t0.month - 1 + k * months
        day = min(t0.day, 28)   # the 29th-31st do not exist in every month: such starts land on the 28th
        edges.append(min(end_ms, int(t0.replace(year=t0.year + m // 12, month=m % 12 + 1, day=day).timestamp() * 1000)))
        k += 1
    return [Period(i, a, b) for i, (a, b) in enumerate(zip(edges[:-1], edges[1:]))]


def serve(current, candidate, promoted: bool):
    """The live rule: a promoted candidate replaces the champion; otherwise the champion (or
    nothing, when there is none yet) keeps serving."""
    return candidate if promoted else current


def label_end_ms(period_start_ms: int) -> int:
    """The newest bar a retrain at `period_start_ms` may read: the one that closed at the period's start.

    Labels need `horizon` later bars that exist, so no training label reaches past the period's start.
    """
    return period_start_ms - MINUTE_MS


# ---------------------------------------------------------------- the plain strategy

@dataclass(frozen=True)
class Strategy:
    position: np.ndarray      # 0/1 held over each minute (from its close to the next close)
    gross: np.ndarray         # log return earned per minute before fees
    fees: np.ndarray          # log cost per minute (fee on every change of position, incl. the final exit)
    changes: int

    @property
    def net(self) -> np.ndarray:
        return self.gross - self.fees


def strategy(prob_up: np.ndarray, minute_return: np.ndarray, threshold: float, fee_bps: float) -> Strategy:
    """Long over a minute when P(up) at its bar is above `threshold`, flat otherwise (and flat when
    nothing is served: NaN); a fee of `fee_bps` on every change of position, and on the exit after
    the last minute. One symbol, minutes in time order.

    Args:
        prob_up: the served model's P(up) per minute (NaN where no model serves).
        minute_return: log return from the minute's close to the next minute's close.
    """
    p = np.asarray(prob_up, float)
    r = np.asarray(minute_return, float)
    pos = np.where(np.isnan(p), 0.0, (p > threshold).astype(float))
    prev = np.concatenate([[0.0], pos[:-1]])
    change = np.abs(pos - prev)
    if len(pos):
        change[-1] += pos[-1]                          # closing out at the end is a change too
    cost = -np.log1p(-fee_bps / 1e4)
    return Strategy(pos, pos * np.nan_to_num(r), change * cost, int(change.sum()))


def buy_and_hold(minute_return: np.ndarray, fee_bps: float) -> np.ndarray:
    """Per-minute log return of holding throughout: the market, one fee in and one out."""
    r = np.nan_to_num(np.asarray(minute_return, float)).copy()
    if len(r):
        cost = -np.log1p(-fee_bps / 1e4)
        r[0] -= cost
        r[-1] -= cost
    return r


def strategy_verdict(net: dict, gross: dict, buy_hold: float, fees: float, changes: int) -> str:
    """The strategy's result in words. `net`, `gross`: {"value", "lo", "hi"} simple returns."""
    if changes == 0:
        return "the strategy never took a position: it earned what staying flat earns (0)"
    if gross["lo"] <= 0 <= gross["hi"]:
        head = (f"before fees the strategy earned {gross['value']:+.2%} [{gross['lo']:+.2%}, {gross['hi']:+.2%}], "
                f"not distinguishable from zero; after {changes} changes of position it only loses the fees "
                f"({-fees:+.2%}): net {net['value']:+.2%}")
    elif gross["lo"] > 0:
        head = (f"before fees the strategy earned {gross['value']:+.2%} [{gross['lo']:+.2%}, {gross['hi']:+.2%}]; "
                f"fees of {changes} changes cost {fees:.2%}: net {net['value']:+.2%}")
    else:
        head = (f"the strategy lost {gross['value']:+.2%} [{gross['lo']:+.2%}, {gross['hi']:+.2%}] before fees and "
                f"{fees:.2%} in fees: net {net['value']:+.2%}")
    cmp = "above" if net["value"] > buy_hold else "below"
    return f"{head}; {cmp} buy-and-hold ({buy_hold:+.2%}) and {'above' if net['value'] > 0 else 'below'} flat (0)"


# ---------------------------------------------------------------- was the gate right?

def beat_baselines(brier: float, baseline_briers: dict[str, float]) -> bool | None:
    """A model beat the naive baselines on a period's rows when its Brier is below each of theirs
    (None when there are no rows to tell)."""
    vals = [brier, *baseline_briers.values()]
    if any(v is None or not np.isfinite(v) for v in vals):
        return None
    return all(brier < b for b in baseline_briers.values())


def gate_tally(decisions: list[tuple[bool, bool | None]]) -> dict:
    """(promoted, beat the baselines in the next period) per retrain -> counts and the share right.

    The gate was right when it promoted a model that then beat the baselines, or refused one that
    then did not; retrains whose next period had no rows to judge are left out.
    """
    t = {"promoted_beat": 0, "promoted_lost": 0, "refused_would_have_beaten": 0, "refused_rightly": 0,
         "undecided": 0}
    for promoted, beat in decisions:
        if beat is None:
            t["undecided"] += 1
        elif promoted:
            t["promoted_beat" if beat else "promoted_lost"] += 1
        else:
            t["refused_would_have_beaten" if beat else "refused_rightly"] += 1
    judged = len(decisions) - t["undecided"]
    right = t["promoted_beat"] + t["refused_rightly"]
    t.update(judged=judged, right=right, right_share=(right / judged) if judged else None)
    return t
