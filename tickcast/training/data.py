"""The rows a training run learns from: feature and bar reads (bounded by the config's window), the
symbol choice, the leakage guard and the history check."""
from __future__ import annotations

import numpy as np
import pandas as pd

from tickcast import evaluation, features, lake, tables
from tickcast.settings import Settings
from tickcast.training.config import LeakageError, TrainConfig, TrainingError, iso
from tickcast.timeunits import MINUTE_MS


def _window(df: pd.DataFrame, start_ms: int | None, end_ms: int | None) -> pd.DataFrame:
    if start_ms is not None:
        df = df[df["window_ms"] >= start_ms]
    if end_ms is not None:
        df = df[df["window_ms"] <= end_ms]
    return df


def read_features(s: Settings, version: str, symbols=None, end_ms: int | None = None,
                  start_ms: int | None = None) -> pd.DataFrame:
    if not lake.exists(tables.FEATURES, s):
        raise TrainingError(f"{tables.FEATURES.name} does not exist yet: run `tickcast job features --available-now`")
    filters = [("feature_version", "=", version)]
    if symbols:
        filters.append(("symbol", "in", list(symbols)))
    t = lake.read(tables.FEATURES, s, filters=filters)
    df = t.drop(["window_start"]).to_pandas()
    df.insert(1, "window_ms", lake.to_ms(t["window_start"]))
    return _window(df, start_ms, end_ms)


def read_bars(s: Settings, symbols=None, end_ms: int | None = None, start_ms: int | None = None) -> pd.DataFrame:
    """Bars as the float inputs of the feature math (symbol, window_ms, RAW columns)."""
    import pyarrow as pa

    if not lake.exists(tables.BARS, s):
        raise TrainingError(f"{tables.BARS.name} does not exist yet: backfill klines or run the bars job")
    filters = [("symbol", "in", list(symbols))] if symbols else None
    t = lake.read(tables.BARS, s, columns=["symbol", "window_start", *features.RAW], filters=filters)
    df = pd.DataFrame({"symbol": t["symbol"].to_numpy(zero_copy_only=False),
                       "window_ms": lake.to_ms(t["window_start"])})
    for c in features.RAW:
        df[c] = t[c].cast(pa.float64()).to_numpy(zero_copy_only=False)
    df["vwap"] = df["vwap"].fillna(df["close"])
    df["imbalance"] = df["imbalance"].fillna(0.0)
    return _window(df, start_ms, end_ms).sort_values(["symbol", "window_ms"], kind="stable").reset_index(drop=True)


def choose_symbols(available: list[str], asked) -> list[str]:
    """The symbols to train on: as asked, or all; real and simulated data never mix silently."""
    if asked:
        missing = sorted(set(asked) - set(available))
        if missing:
            raise TrainingError(f"no feature rows for symbol(s) {', '.join(missing)}; have {', '.join(available)}")
        return sorted(asked)
    synthetic = [x for x in available if "-SIM" in x]
    if synthetic and len(synthetic) < len(available):
        raise TrainingError("silver.features holds both real and simulated symbols; pass --symbols to choose")
    return sorted(available)


# ---------------------------------------------------------------- leakage guard

def leakage_guard(rows: pd.DataFrame, bars: pd.DataFrame, samples: int, seed: int = 0,
                  compute=features.compute, lookback_minutes: int = 3 * 1440) -> dict:
    """Recompute sampled feature rows from bars truncated at their own minute; refuse if any differs.

    A feature that looks ahead (a `shift(-1)`, a centred window, a full-sample normalisation)
    changes when the future is cut off, so it cannot pass.
    """
    if len(rows) == 0:
        return {"checked": 0}
    rng = np.random.default_rng(seed)
    pick = rows.iloc[np.sort(rng.choice(len(rows), size=min(samples, len(rows)), replace=False))]
    worst, bad = 0.0, []
    for _, r in pick.iterrows():
        b = bars[(bars["symbol"] == r["symbol"]) & (bars["window_ms"] <= r["window_ms"])
                 & (bars["window_ms"] > r["window_ms"] - lookback_minutes * MINUTE_MS)]
        again = compute(b)
        again = again[again["window_ms"] == r["window_ms"]]
        # Every computed column but the row's identity: the features, and anything a variant adds.
        names = [c for c in again.columns if c not in features.META and c in rows.columns]
        if again.empty:
            bad.append((r["symbol"], int(r["window_ms"]), "row not reproducible from bars up to its minute"))
            continue
        a = again.iloc[0][names].to_numpy(float)
        t = r[names].to_numpy(float)
        same = np.isclose(a, t, rtol=0, atol=1e-9) | (np.isnan(a) & np.isnan(t))
        if not same.all():
            cols = [n for n, ok in zip(names, same) if not ok]
            bad.append((r["symbol"], int(r["window_ms"]), f"differs in {', '.join(cols)}"))
        with np.errstate(invalid="ignore"):
            worst = max(worst, float(np.nanmax(np.abs(a - t), initial=0.0)))
    if bad:
        first = "; ".join(f"{sym} {iso(ms)}: {why}" for sym, ms, why in bad[:3])
        raise LeakageError(f"leakage guard: {len(bad)} of {len(pick)} sampled feature rows change when the "
                           f"bars after their minute are removed ({first}); refusing to train")
    return {"checked": len(pick), "max_abs_diff": worst}


# ---------------------------------------------------------------- walk-forward evaluation

WEEKLY = ("dow_sin", "dow_cos")

def needed_minutes(cfg: TrainConfig) -> int:
    """Minutes of labelled history a walk-forward needs: every test block `min_blocks_per_fold`
    bootstrap blocks long (fewer, and its intervals say nothing), after the training-only share."""
    return int(np.ceil(cfg.min_blocks_per_fold * evaluation.block_length(cfg.horizon) * cfg.folds / (1 - cfg.initial)))


def enough_history(data: pd.DataFrame, cfg: TrainConfig) -> None:
    """Refuse plainly when there is too little labelled history for the horizon."""
    span = (int(data["window_ms"].max()) - int(data["window_ms"].min())) // MINUTE_MS + 1 if len(data) else 0
    need = needed_minutes(cfg)
    if len(data) < 1000 or span < need:
        raise TrainingError(
            f"too little history for horizon {cfg.horizon} min: {len(data)} labelled rows over {span / 1440:.1f} days; "
            f"need at least {need / 1440:.1f} days ({cfg.folds} walk-forward test blocks of "
            f"{cfg.min_blocks_per_fold} x {evaluation.block_length(cfg.horizon)} min after the first "
            f"{cfg.initial:.0%}). Backfill more klines: `tickcast backfill --rest` (TICKCAST_BACKFILL_LOOKBACK_HOURS) "
            "or `tickcast backfill --klines FILE...`")
