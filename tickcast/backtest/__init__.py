"""`tickcast backtest`: the model lifecycle replayed over history, period by period.

For each period (every `--retrain-every`) the training code (`prepare`, `decide`) runs on the
sliding window before the period's start only, the same gate decides (against the champion the
replay is serving), and the period is scored with the model the live rule would serve: a promoted
candidate replaces the champion, a refused one leaves it serving, and with no champion yet nothing
is served. Modules: `pure` (schedule, strategy, gate record), `replay` (the loop), `scores`
(intervals), `output` (report, gold.backtest, MLflow).
"""
from __future__ import annotations

import io

from tickcast.backtest.output import markdown
from tickcast.backtest.replay import BacktestConfig, BacktestError, Replay, data_range, run, schedule
from tickcast.backtest.scores import summarise
from tickcast.settings import Settings
from tickcast.timeunits import DAY_MS, HOUR_MS
from tickcast.training.config import iso

__all__ = ["BacktestConfig", "BacktestError", "Replay", "backtest", "data_range", "markdown", "run",
           "schedule", "summarise"]


def _span(ms: int) -> str:
    return f"{ms / DAY_MS:g}d" if ms % DAY_MS == 0 else f"{ms / HOUR_MS:g}h"


def backtest(s: Settings, cfg: BacktestConfig, echo=print, record: bool = True) -> dict:
    """Replay, score, and (with `record`) log an MLflow run and append its rows to gold.backtest.

    Returns the result: `config`, `periods`, `overall`, `seconds`, `run_id`, and the replay's `rows`.
    """
    from tickcast.backtest import output

    rep = run(s, cfg, echo)
    summary = summarise(rep, cfg.horizon, cfg.threshold, cfg.fee_bps, cfg.train.bootstrap_reps, cfg.train.seed)
    result = {"config": {"horizon": cfg.horizon, "start": iso(rep.start_ms), "end": iso(rep.end_ms),
                         "window": _span(cfg.window_ms), "retrain_every": f"{cfg.every_months}mo" if cfg.every_months else _span(cfg.every_ms),
                         "candidates": ",".join(cfg.train.families), "symbols": ",".join(rep.symbols),
                         "fee_bps": cfg.fee_bps, "threshold": cfg.threshold, "serve": cfg.serve, "folds": cfg.train.folds,
                         "bootstrap_reps": cfg.train.bootstrap_reps, "seed": cfg.train.seed,
                         "feature_version": rep.feature_version},
              **summary, "seconds": rep.seconds, "run_id": None}
    report = markdown(result)
    if record:
        with output.start_run(s, f"backtest h{cfg.horizon} {result['config']['start'][:10]}") as run_:
            rows = output.table_rows(result, run_.info.run_id, output.now_ms())
            buf = io.StringIO()
            rows.to_pandas().to_csv(buf, index=False)
            output.log_run(result, report, buf.getvalue())
            output.write_table(s, rows)
            result["run_id"] = run_.info.run_id
    result["report"] = report
    result["rows"] = rep.rows
    return result
