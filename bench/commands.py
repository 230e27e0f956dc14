"""`tickcast bench NAME`: registered into the CLI through the `tickcast.commands` entry point, so the
core never imports the benchmarks. Each prints its numbers and writes bench-results/NAME.json."""
from __future__ import annotations

from pathlib import Path

import click

from bench.features import features_bench
from bench.predict import predict_bench
from bench.progress import progress_bench
from tickcast import cli_common

BENCHES = ["ingest", "bars", "live", "features", "predict", "stack", "serve", "dashboard", "progress", "scrape",
           "first-prediction"]


@click.command(help="Benchmarks that print their numbers and write them as JSON (bench-results/).")
@click.argument("name", type=click.Choice(BENCHES))
@click.option("--ticks", type=int, default=None, help="simulated ticks [default: 3,000,000 for ingest, 1,000,000 for bars]")
@click.option("--latency-seconds", type=float, default=60.0, show_default=True, help="ingest: the latency run")
@click.option("--klines", "klines", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="bars: a Binance 1m kline file to backfill, repeatable [default: 6 synthetic months]; "
                   "dashboard: a month of klines for the week data set [default: synthetic]")
@click.option("--idle-seconds", type=float, default=300.0, show_default=True,
              help="bars: how long the local pipeline runs at ~50 ticks/s (the first 60 s are warm-up)")
@click.option("--seconds", type=float, default=None,
              help="live: the measured window at peak [default: 30]; stack: the measured span after the first "
                   "prediction [default: 300]; serve: seconds of load per route; progress: seconds per way "
                   "and round [default: 40]; scrape: seconds per phase [default: 30]; first-prediction: how long "
                   "to wait after the first prediction for the first full retrain, 0 for not at all [default: 600]")
@click.option("--peak-rate", type=float, default=20_000.0, show_default=True,
              help="live: assumed peak trade events/s of every Binance spot USDT pair together")
@click.option("--horizons", default="1,5,15", show_default=True, help="features: the training horizons to time")
@click.option("--out", type=click.Path(path_type=Path), default=Path("bench-results"), show_default=True)
def bench(name, ticks, latency_seconds, klines, idle_seconds, seconds, peak_rate, horizons, out) -> None:
    s = cli_common.settings(quiet_tensorflow=True)
    if klines and name not in ("bars", "features", "dashboard"):
        raise click.UsageError("--klines applies to `bench bars`, `features` and `dashboard` only")
    if name == "ingest":
        from bench.ingest import ingest_bench  # deferred: heavy (imports numpy)

        ingest_bench(s, 3_000_000 if ticks is None else ticks, latency_seconds, out)
    elif name == "bars":
        from bench.bars import IDLE_WARMUP_S, bars_bench  # deferred: heavy (imports numpy)

        if idle_seconds <= IDLE_WARMUP_S:
            raise click.BadParameter(f"must be > {IDLE_WARMUP_S:.0f} (the warm-up)", param_hint="--idle-seconds")
        bars_bench(s, 1_000_000 if ticks is None else ticks, list(klines), idle_seconds, out)
    elif name == "live":
        from bench.live import live_bench  # deferred: asyncio, +30 ms per CLI start

        live_bench(s, 30.0 if seconds is None else seconds, peak_rate, out)
    elif name == "features":
        features_bench(s, list(klines), [int(h) for h in horizons.split(",") if h.strip()], out)
    elif name == "predict":
        predict_bench(s, 200_000 if ticks is None else ticks, 3_000, out)
    elif name == "stack":
        from bench.stack import stack_bench  # deferred: heavy (imports numpy)

        stack_bench(s, 300.0 if seconds is None else seconds, out)
    elif name == "first-prediction":
        from bench.first_prediction import first_prediction_bench  # deferred: starts nothing until called

        first_prediction_bench(s, 600.0 if seconds is None else seconds, out)
    elif name == "scrape":
        from bench.scrape import scrape_bench  # deferred: starts nothing until called

        scrape_bench(s, 30.0 if seconds is None else seconds, 3, 1.0, out)
    elif name == "progress":
        progress_bench(s, 40.0 if seconds is None else seconds, 3, 200, out)
    elif name == "serve":
        from bench.serve import run  # deferred: its gunicorn_conf loads the settings at import

        run(s, seconds, out)
    else:
        from bench.dashboard import run  # deferred: heavy (imports pandas, pyarrow, numpy)

        run(s, seconds, out, klines[0] if klines else None)


def register(cli: click.Group) -> None:
    cli.add_command(bench)
