"""`tickcast job`, `tickcast backfill`, `tickcast simulate-history`: the jobs' commands, registered into
the CLI through the `tickcast.commands` entry point (the core never imports the jobs)."""
from __future__ import annotations

import time
from pathlib import Path

import click

from jobs.runner import run
from tickcast import cli_common
from tickcast.kafka_broker import BrokerError, require_reachable
from tickcast.lock import LockHeld, hold_writer_lock
from tickcast.settings import Settings
from tickcast.spark import session
from tickcast.timeunits import MINUTE_MS


@click.command(help="Run a streaming job in a local Spark driver (same code as spark-submit jobs/main.py).")
@click.argument("names", nargs=-1, required=True)
@click.option("--available-now", is_flag=True, help="process everything available, then stop")
def job(names, available_now) -> None:
    s = cli_common.settings()
    if {"ingest", "hotpath"} & set(names):   # the jobs that read Kafka
        try:
            require_reachable(s)
        except BrokerError as e:
            raise click.ClickException(str(e)) from None
    try:
        last = run(list(names), s, available_now=available_now, on_progress=_progress_line)
    except LockHeld as e:
        raise click.ClickException(str(e)) from None
    click.echo("")
    for name, p in last.items():
        click.echo(f"{name}: last batch {p.get('batchId')}, {p.get('numInputRows')} rows")


def _progress_line(last: dict) -> None:
    parts = []
    for name, p in last.items():
        d = p.get("durationMs") or {}
        parts.append(f"{name} b{p.get('batchId')} {p.get('numInputRows')} rows "
                     f"{p.get('processedRowsPerSecond') or 0:,.0f}/s {d.get('triggerExecution', 0)}ms")
    if parts:
        click.echo("\r" + " | ".join(parts) + " " * 8, nl=False)


@click.command(help="Load Binance 1m klines into silver.bars_1m (source = klines) from files or the REST API; "
                    "minutes already there stay.")
@click.option("--klines", "files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="kline files: several after one flag (a shell glob), or the flag repeated")
@click.argument("more_files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--symbol", help="the symbol, when the file names do not carry it")
@click.option("--rest", is_flag=True, help="fetch /api/v3/klines from TICKCAST_BINANCE_REST_URL instead of files")
@click.option("--symbols", default="BTCUSDT,ETHUSDT", show_default=True, help="--rest: the symbols")
@click.option("--lookback-hours", type=float, default=None,
              help="--rest: hours back from the exchange's clock [default: TICKCAST_BACKFILL_LOOKBACK_HOURS]")
def backfill(files, more_files, symbol, rest, symbols, lookback_hours) -> None:
    from jobs.backfill import backfill as run_backfill  # deferred: heavy (numpy)

    s = cli_common.settings()
    if more_files and not files:
        raise click.UsageError("kline files follow --klines (tickcast backfill --klines A.csv.gz B.csv.gz)")
    files = (*files, *more_files)
    try:  # one writer per table: not beside a running `up` or bars job on the same data directory
        hold_writer_lock(s.data_dir, "tickcast backfill")
    except LockHeld as e:
        raise click.ClickException(str(e)) from None
    if bool(files) == bool(rest):
        raise click.UsageError("give --klines FILE... or --rest (one of the two)")
    if rest:
        r, dt = rest_backfill(s, [x.strip().upper() for x in symbols.split(",") if x.strip()],
                              s.backfill_lookback_hours if lookback_hours is None else lookback_hours)
    else:
        spark = session(s, app="tickcast-backfill", extra={"spark.ui.enabled": "false"})
        t0 = time.monotonic()
        try:
            r = run_backfill(spark, s, list(files), symbol)
        except ValueError as e:
            raise click.ClickException(str(e)) from None
        dt = time.monotonic() - t0
    click.echo(f"backfill: read {r['rows_read']} klines, inserted {r['inserted']}, "
               f"already present {r['already_present']} in {dt:.1f}s ({r['rows_read'] / max(dt, 1e-9):,.0f} rows/s)")


def rest_backfill(s: Settings, symbols: list[str], lookback_hours: float, spark=None, echo=click.echo
                  ) -> tuple[dict, float]:
    """Closed 1m klines of the last `lookback_hours` from the REST API -> silver.bars_1m (insert-only,
    resumable: each symbol starts where an earlier run stopped; progress through `echo`)."""
    from jobs.backfill import rest_backfill as run_rest_backfill  # deferred: heavy (numpy)

    if lookback_hours <= 0:
        return {"rows_read": 0, "inserted": 0, "already_present": 0}, 0.0
    t0 = time.monotonic()
    spark = spark or session(s, app="tickcast-backfill", extra={"spark.ui.enabled": "false"})
    try:
        r = run_rest_backfill(spark, s, symbols, lookback_hours, echo=echo)
    except (RuntimeError, OSError) as e:  # the live source's RestError is a RuntimeError
        raise click.ClickException(f"klines from {s.binance_rest_url} failed: {e}") from None
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    return r, time.monotonic() - t0


@click.command("simulate-history", help="Write N minutes of simulated bars (ending now) into silver.bars_1m, "
                                        "built from simulated trades by the bars job's own code.")
@click.option("--minutes", type=click.IntRange(1, 10_000_000), default=12_000, show_default=True)
@click.option("--symbols", default="BTCUSDT,ETHUSDT", show_default=True)
@click.option("--rate", type=float, default=3.0, show_default=True, help="mean trades/s, all symbols")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--plant-signal", is_flag=True, help="plant the documented predictable component (-SIMSIG)")
@click.option("--signal-kind", type=click.Choice(["linear", "interaction"]), default="linear", show_default=True)
@click.option("--signal-strength", type=float, default=0.15, show_default=True)
@click.option("--end", "end", default=None, help="the history's end (ISO UTC) [default: now]")
def simulate_history(minutes, symbols, rate, seed, plant_signal, signal_kind, signal_strength, end) -> None:
    from jobs import sim_history  # deferred: heavy (numpy)
    from tickcast.sources.simulator import SimConfig  # deferred: heavy (pandas)

    s = cli_common.settings(quiet_tensorflow=True)
    end_ms = cli_common.time_ms(end) or int(time.time() * 1000)
    end_ms -= end_ms % MINUTE_MS
    try:
        cfg = SimConfig(symbols=cli_common.symbols(symbols), rate=rate, seed=seed, start_ms=end_ms - minutes * MINUTE_MS,
                        plant_signal=plant_signal, signal_kind=signal_kind, signal_strength=signal_strength)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    spark = session(s, app="tickcast-simulate-history")
    t0 = time.monotonic()
    n = sim_history.run(spark, s, cfg, minutes)
    click.echo(f"simulate-history: {n} bars inserted ({minutes} minutes, {len(cfg.symbols)} symbols) "
               f"in {time.monotonic() - t0:.1f}s")


def register(cli: click.Group) -> None:
    for cmd in (job, backfill, simulate_history):
        cli.add_command(cmd)
