"""`tickcast up`: registered into the CLI through the `tickcast.commands` entry point."""
from __future__ import annotations

from pathlib import Path

import click

from stack import JOBS, STREAMS
from tickcast import cli_common


@click.command(help="The whole local pipeline: broker, producer and streaming jobs; Ctrl-C stops it all.")
@click.option("--source", type=click.Choice(["auto", "replay", "simulate", "live"]), default="auto", show_default=True)
@click.option("--file", "files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rate", type=float, default=50.0, show_default=True)
@click.option("--symbols", default="BTCUSDT,ETHUSDT", show_default=True)
@click.option("--jobs", "jobs", default=None, help="comma-separated streaming jobs [default: hotpath,outcomes]; "
                                                   "the separate stages: ingest,bars,features,predict,outcomes")
@click.option("--no-components", is_flag=True, help="do not start the prediction service and the dashboard")
@click.option("--verbose", is_flag=True, help="show Spark, JVM, TensorFlow and MLflow output here, not only in "
                                              "$TICKCAST_DATA_DIR/logs/")
@click.option("--status-every", type=click.FloatRange(min=0.5), default=10.0, show_default=True,
              help="seconds between status lines when stdout is not a terminal")
def up(source, files, rate, symbols, jobs, no_components, verbose, status_every) -> None:
    chosen = [j.strip() for j in jobs.split(",") if j.strip()] if jobs else list(JOBS)
    unknown = [j for j in chosen if j not in STREAMS]
    if unknown:
        raise click.BadParameter(f"unknown job(s) {', '.join(unknown)}; known: {', '.join(STREAMS)}",
                                 param_hint="--jobs")
    from jobs.runner import HOTPATH_REPLACES

    if "hotpath" in chosen and (both := [j for j in chosen if j in HOTPATH_REPLACES]):
        raise click.BadParameter(f"hotpath writes what {', '.join(both)} write(s): one or the other", param_hint="--jobs")
    s = cli_common.settings()
    from stack.up import run_up  # deferred: heavy (numpy, rich; `tickcast --help` loads neither)

    run_up(s, source, list(files), rate, symbols, chosen, verbose=verbose, status_every=status_every,
           components=not no_components)


def register(cli: click.Group) -> None:
    cli.add_command(up)
