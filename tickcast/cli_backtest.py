"""`tickcast backtest`: the model lifecycle replayed over the history in the lake (tickcast/backtest)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import click

from tickcast import cli_common
from tickcast.timeunits import DAY_MS, HOUR_MS, MINUTE_MS

_SPAN = re.compile(r"^(\d+(?:\.\d+)?)([mhd])$")
_MONTHS = re.compile(r"^(\d+)mo$")


def span_ms(value: str, name: str) -> int:
    """`90d`, `12h`, `30m` -> milliseconds (whole minutes)."""
    m = _SPAN.match(value.strip())
    if not m or float(m[1]) <= 0:
        raise click.BadParameter(f"expected a duration such as 90d, 12h or 30m, got {value!r}", param_hint=name)
    ms = int(float(m[1]) * {"m": MINUTE_MS, "h": HOUR_MS, "d": DAY_MS}[m[2]])
    if ms % MINUTE_MS:
        raise click.BadParameter(f"{value!r} is not a whole number of minutes", param_hint=name)
    return ms


@click.command(help="Replay the model lifecycle over the history in silver.features and silver.bars_1m: every "
                    "period, retrain on the window before it (the training code and gate), serve what the live rule "
                    "would serve, and score the period against the naive baselines and a plain long/flat strategy "
                    "after fees. Results: the printed report, an MLflow run (experiment tickcast-backtest) and "
                    "gold.backtest. Registers no model.")
@click.option("--horizon", type=click.IntRange(1, 1440), default=5, show_default=True, help="minutes ahead")
@click.option("--start", default=None, help="first period's start, ISO UTC [default: the data's start + --window]")
@click.option("--end", default=None, help="end of the last period, ISO UTC [default: the newest feature row]")
@click.option("--window", default="90d", show_default=True, help="sliding training window before each period")
@click.option("--retrain-every", "every", default="7d", show_default=True,
              help="period length (retrain cadence): 7d, 12h, 30m, or calendar months as 1mo")
@click.option("--candidates", default="linear,mlp,conv", show_default=True,
              help="comma-separated candidate families (linear, mlp, conv)")
@click.option("--fee-bps", type=click.FloatRange(0, 1000), default=10.0, show_default=True,
              help="fee per change of position (Binance spot taker: 10)")
@click.option("--threshold", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="the strategy is long when the served P(up) is above this")
@click.option("--serve", "serve_rule", type=click.Choice(["gate", "newest"]), default="gate", show_default=True,
              help="gate: a champion serves until the gate promotes another (the live rule); newest: every "
                   "retrain's best candidate serves, promoted or not (what serving without a gate would give)")
@click.option("--symbols", default=None, help="comma-separated [default: every symbol in silver.features]")
@click.option("--folds", type=click.IntRange(2, 20), default=4, show_default=True, help="walk-forward folds per retrain")
@click.option("--epochs", type=click.IntRange(1, 500), default=30, show_default=True, help="MLP epochs at most")
@click.option("--conv-epochs", type=click.IntRange(1, 500), default=20, show_default=True, help="Conv1D epochs at most")
@click.option("--bootstrap-reps", type=click.IntRange(100, 10000), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--no-record", is_flag=True, help="print only: no MLflow run, no gold.backtest rows")
@click.option("--report", "report_path", type=click.Path(path_type=Path), default=None,
              help="also write the result (JSON) here")
def backtest(horizon, start, end, window, every, candidates, fee_bps, threshold, serve_rule, symbols, folds, epochs, conv_epochs,
             bootstrap_reps, seed, no_record, report_path) -> None:
    from tickcast import backtest as bt  # deferred: heavy (pandas, TensorFlow)
    from tickcast import modeling, training

    s = cli_common.settings(quiet_tensorflow=True)
    families = cli_common.symbols(candidates) or training.CANDIDATES
    unknown = set(families) - set(training.CANDIDATES)
    if unknown:
        raise click.BadParameter(f"unknown candidate(s) {', '.join(sorted(unknown))}; "
                                 f"known: {', '.join(training.CANDIDATES)}", param_hint="--candidates")
    tcfg = training.TrainConfig(horizon=horizon, symbols=cli_common.symbols(symbols), folds=folds,
                                bootstrap_reps=bootstrap_reps, seed=seed, families=families,
                                mlp=modeling.MlpConfig(epochs=epochs, seed=seed),
                                conv=modeling.ConvConfig(epochs=conv_epochs, seed=seed))
    months = _MONTHS.match(every.strip())
    if months and int(months[1]) < 1:
        raise click.BadParameter("at least 1mo", param_hint="--retrain-every")
    cfg = bt.BacktestConfig(horizon=horizon, start_ms=cli_common.time_ms(start), end_ms=cli_common.time_ms(end),
                            window_ms=span_ms(window, "--window"), every_months=int(months[1]) if months else 0,
                            every_ms=span_ms(every, "--retrain-every") if not months else DAY_MS,
                            fee_bps=fee_bps, threshold=threshold, serve=serve_rule, train=tcfg)
    try:
        result = bt.backtest(s, cfg, echo=click.echo, record=not no_record)
    except training.TrainingError as e:
        raise click.ClickException(str(e)) from None
    click.echo(result["report"])
    if result["run_id"]:
        click.echo(f"backtest: MLflow run {result['run_id']} (experiment tickcast-backtest); "
                   f"{len(result['periods'])} rows in gold.backtest")
    if report_path:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        out = {k: v for k, v in result.items() if k != "rows"}
        report_path.write_text(json.dumps(out, indent=1, default=str))


def register(cli: click.Group) -> None:
    cli.add_command(backtest)
