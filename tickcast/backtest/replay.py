"""The lifecycle replayed: per period, retrain on the window before it with the training code, gate,
serve what the live rule would serve, and keep every scored row's prediction and outcome."""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tickcast import dataset, features, lake, tables, training
from tickcast.backtest.pure import Period, label_end_ms, month_periods, periods, serve
from tickcast.settings import Settings
from tickcast.timeunits import DAY_MS, MINUTE_MS
from tickcast.training.command import decide, prepare
from tickcast.training.config import TrainConfig, TrainingError, iso


class BacktestError(TrainingError):
    """The backtest cannot run (no data in the range, bad options); the message says why."""


@dataclass(frozen=True)
class BacktestConfig:
    horizon: int
    start_ms: int | None = None              # first period's start [default: the data's start + window]
    end_ms: int | None = None                # exclusive [default: after the newest feature row]
    window_ms: int = 90 * DAY_MS
    every_ms: int = 7 * DAY_MS
    every_months: int = 0                    # calendar months per period instead of every_ms when > 0
    fee_bps: float = 10.0
    threshold: float = 0.5                   # the strategy is long when the served P(up) is above this
    serve: str = "gate"                      # "gate": the live rule; "newest": every retrain's best candidate
                                             # serves, gate or not (FreqAI's rule; a yardstick for the gate)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(horizon=5))


@dataclass
class Model:
    """A model the backtest fitted, shaped like model_io.Loaded for the gate's champion check."""
    version: str
    family: str
    features: list[str]
    feature_version: str
    training_end_ms: int
    fitted: object

    def predictor(self):
        return self.fitted.predict


@dataclass
class Replay:
    periods: list[dict]                      # one record per period (retrain, gate, served model)
    rows: pd.DataFrame                       # every row of the range: period, served P(up), baselines, outcome
    symbols: list[str]
    feature_version: str
    start_ms: int
    end_ms: int
    seconds: float = 0.0


def data_range(s: Settings, version: str, symbols=None) -> tuple[int, int, list[str]]:
    """The first and last feature rows (epoch ms) of `version` and their symbols; BacktestError if none."""
    if not lake.exists(tables.FEATURES, s):
        raise BacktestError(f"{tables.FEATURES.name} does not exist yet: load history with "
                            "`tickcast backfill --klines FILE...`, then `tickcast job features --available-now`")
    filters = [("feature_version", "=", version)] + ([("symbol", "in", list(symbols))] if symbols else [])
    t = lake.read(tables.FEATURES, s, columns=["symbol", "window_start"], filters=filters)
    if t.num_rows == 0:
        raise BacktestError(f"{tables.FEATURES.name} holds no rows of feature version {version}"
                            + (f" for {', '.join(symbols)}" if symbols else "")
                            + ": run `tickcast job features --available-now` after the bars")
    ms = lake.to_ms(t["window_start"])
    return int(ms.min()), int(ms.max()), sorted(set(t["symbol"].to_pylist()))


def schedule(cfg: BacktestConfig, first_ms: int, last_ms: int) -> list[Period]:
    """The periods to replay; BacktestError naming the range that exists when the asked one has no rows."""
    held = f"{tables.FEATURES.name} holds {iso(first_ms)} .. {iso(last_ms)}"
    start = cfg.start_ms if cfg.start_ms is not None else first_ms + cfg.window_ms
    end = cfg.end_ms if cfg.end_ms is not None else last_ms + MINUTE_MS
    if start >= end:
        raise BacktestError(f"no period to replay between {iso(start)} and {iso(end)}: {held}; the first period "
                            f"starts one window ({cfg.window_ms / DAY_MS:g} days) after the data's start by default")
    if end <= first_ms or start > last_ms:
        raise BacktestError(f"no feature rows between {iso(start)} and {iso(end)}: {held}")
    if start - cfg.window_ms > last_ms or start <= first_ms:
        raise BacktestError(f"no history before {iso(start)} to train on: {held}")
    end = min(end, last_ms + MINUTE_MS)
    return month_periods(start, end, cfg.every_months) if cfg.every_months else periods(start, end, cfg.every_ms)


def _scoring_rows(s: Settings, cfg: BacktestConfig, version: str, symbols: list[str], start: int, end: int):
    """Labelled feature rows in [start, end) with each minute's 1-minute forward return (the strategy's)."""
    rows = training.read_features(s, version, symbols, end - MINUTE_MS, start)
    bars = training.read_bars(s, symbols, end + (cfg.horizon + 1) * MINUTE_MS, start)
    data = dataset.join(rows, dataset.labels(bars[["symbol", "window_ms", "close"]], cfg.horizon))
    nxt = bars[["symbol", "window_ms", "close"]].copy()
    nxt["minute_return"] = np.log(nxt.groupby("symbol")["close"].shift(-1) / nxt["close"])
    data = data.merge(nxt[["symbol", "window_ms", "minute_return"]], on=["symbol", "window_ms"], how="left")
    return data.sort_values(["window_ms", "symbol"], kind="stable").reset_index(drop=True)


def _fit_final(prep, family: str, cfg: TrainConfig, number: int):
    """The family refitted on all of the window's rows (what `train` registers), and the baselines."""
    data = prep.data
    y = data["label_return"].to_numpy(float)
    cols = training.inputs(family, data)
    fitted = training.fit(family, data[cols].to_numpy(np.float32), y, cfg)
    summary = training.model_features(data)
    base = training.fit_baselines(data[summary].to_numpy(float), y, summary, cfg)
    end = int(data["window_ms"].max()) + cfg.horizon * MINUTE_MS
    return Model(str(number), family, cols, prep.feature_version, end, fitted), (summary, base)


def run(s: Settings, cfg: BacktestConfig, echo=print) -> Replay:
    """Replay the lifecycle period by period. Registers nothing; writes nothing."""
    t0 = time.monotonic()
    version = features.feature_version()
    first, last, held = data_range(s, version, cfg.train.symbols)
    plan = schedule(cfg, first, last)
    symbols = training.choose_symbols(held, cfg.train.symbols)
    start, end = plan[0].start_ms, plan[-1].end_ms
    echo(f"backtest: h{cfg.horizon}, {len(plan)} periods {iso(start)} .. {iso(end)}, window "
         f"{cfg.window_ms / DAY_MS:g} days, candidates {', '.join(cfg.train.families)}, {', '.join(symbols)}")
    data = _scoring_rows(s, cfg, version, symbols, start, end)
    n = len(data)
    cols = {k: np.full(n, np.nan) for k in ("prob_up", "candidate_prob_up", "climatology_prob_up",
                                             "momentum_prob_up")}
    period_of = np.full(n, -1)
    served_version = np.full(n, None, dtype=object)
    ms = data["window_ms"].to_numpy(np.int64)
    champion, baselines, records = None, None, []
    for p in plan:
        tp = time.monotonic()
        tcfg = dataclasses.replace(cfg.train, symbols=tuple(symbols), start_ms=p.start_ms - cfg.window_ms,
                                   end_ms=label_end_ms(p.start_ms))
        rec = {"period": p.number, "start_ms": p.start_ms, "end_ms": p.end_ms, "train_start_ms": tcfg.start_ms,
               "train_end_ms": tcfg.end_ms, "candidate": None, "promoted": False}
        candidate = None
        try:
            quiet = lambda *_: None  # noqa: E731
            prep = prepare(s, tcfg, quiet)
            t1 = time.monotonic()
            _, report = decide(prep, tcfg, champion, quiet)
            t2 = time.monotonic()
            g = report["gate"]
            candidate, baselines = _fit_final(prep, g["best"], tcfg, p.number + 1)
            fits = {f: round(sum(fr["fit_seconds"].get(f, 0) for fr in report["folds"]), 1) for f in tcfg.families}
            rec.update(candidate=candidate.version, candidate_family=candidate.family, promoted=bool(g["promoted"]),
                       gate="promoted" if g["promoted"] else "not promoted", gate_reason=g["decision"],
                       train_rows=len(prep.data),
                       timings={"prepare": round(t1 - tp, 1), "walk_forward": round(t2 - t1, 1),
                                "walk_forward_fits": fits, "final_fit": round(time.monotonic() - t2, 1)})
        except TrainingError as e:       # too little history, a leak: the live retrain fails the same way
            rec.update(gate="failed", gate_reason=str(e), train_rows=0)
        champion = serve(champion, candidate, rec["promoted"] or (cfg.serve == "newest" and candidate is not None))
        rec["served"] = None if champion is None else champion.version
        rec["served_family"] = None if champion is None else champion.family
        rec["served_training_end_ms"] = None if champion is None else champion.training_end_ms
        sel = (ms >= p.start_ms) & (ms < p.end_ms)
        period_of[sel] = p.number
        if sel.any():
            if champion is not None:
                if ms[sel].min() <= champion.training_end_ms:   # never: the retrain reads bars up to the start only
                    raise AssertionError(f"period {p.number}: a scored row is not after v{champion.version}'s "
                                         f"training end {iso(champion.training_end_ms)}")
                cols["prob_up"][sel] = champion.predictor()(data.loc[sel, champion.features].to_numpy(np.float32))[0]
                served_version[sel] = champion.version
            if candidate is not None:
                cols["candidate_prob_up"][sel] = candidate.predictor()(
                    data.loc[sel, candidate.features].to_numpy(np.float32))[0]
            if baselines is not None:     # refitted at every retrain on its window (kept on a failed one)
                summary, base = baselines
                Xs = data.loc[sel, summary].to_numpy(float)
                for b, fm in base.items():
                    cols[f"{b}_prob_up"][sel] = fm.predict(Xs)[0]
        rec["seconds"] = round(time.monotonic() - tp, 1)
        if "timings" in rec:
            rec["timings"]["scoring"] = round(rec["seconds"] - rec["timings"]["prepare"] - rec["timings"]["walk_forward"]
                                              - rec["timings"]["final_fit"], 1)
        records.append(rec)
        echo(f"backtest: period {p.number + 1}/{len(plan)} {iso(p.start_ms)}: candidate "
             f"{rec.get('candidate_family', '-')} {rec['gate']}; serving "
             f"{'v' + rec['served'] if rec['served'] else 'nothing'}; {int(sel.sum())} rows; {rec['seconds']:.0f} s"
             + (f" ({', '.join(f'{k} {v}' for k, v in rec['timings'].items())})" if "timings" in rec else ""))
    rows = pd.DataFrame({"symbol": data["symbol"].to_numpy(), "window_ms": ms, "period": period_of,
                         "served_version": served_version, "label_return": data["label_return"].to_numpy(float),
                         "minute_return": data["minute_return"].to_numpy(float), **cols})
    return Replay(records, rows, symbols, version, start, end, round(time.monotonic() - t0, 1))
