"""The `tickcast` command line: the local platform, jobs and SQL; components (producers, serving,
dashboard, benchmarks) add their commands through the `tickcast.commands` entry points."""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click

from tickcast.lock import LockHeld, hold_writer_lock
from tickcast.settings import Settings, SettingsError, load


def _settings() -> Settings:
    try:
        return load()
    except SettingsError as e:
        raise click.ClickException(f"bad setting: {e}") from None


@click.group(help=__doc__)
def cli() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")


# ---- kafka --------------------------------------------------------------------------------------
@cli.group(help="The local single-node Kafka broker (KRaft) under the data directory.")
def kafka() -> None:
    pass


@kafka.command("start")
def kafka_start() -> None:
    from tickcast import kafka_broker

    s = _settings()
    try:
        st = kafka_broker.start(s)
    except kafka_broker.BrokerError as e:
        raise click.ClickException(str(e)) from None
    click.echo(st.describe())


@kafka.command("stop")
def kafka_stop() -> None:
    from tickcast import kafka_broker

    click.echo("kafka: stopped" if kafka_broker.stop(_settings()) else "kafka: was not running")


@kafka.command("status")
def kafka_status() -> None:
    from tickcast import kafka_broker

    st = kafka_broker.status(_settings())
    click.echo(st.describe())
    if not st.reachable:
        sys.exit(1)


# ---- jobs ---------------------------------------------------------------------------------------
@cli.command(help="Run a streaming job in a local Spark driver (same code as spark-submit jobs/main.py).")
@click.argument("names", nargs=-1, required=True)
@click.option("--available-now", is_flag=True, help="process everything available, then stop")
def job(names, available_now) -> None:
    from jobs.runner import run
    from tickcast.kafka_broker import BrokerError, require_reachable

    s = _settings()
    if "ingest" in names:
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


# ---- backfill -----------------------------------------------------------------------------------
@cli.command(help="Load Binance 1m klines into silver.bars_1m (source = klines) from files or the REST API; "
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
    from jobs.backfill import backfill as run_backfill
    from tickcast.spark import session

    s = _settings()
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
    from jobs.backfill import rest_backfill as run_rest_backfill
    from tickcast.spark import session

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


# ---- sql ----------------------------------------------------------------------------------------
def sql_frame(query: str, s: Settings, engine: str, limit: int):
    """Run `query` over the tables (`layer.table` names) with delta-rs's DataFusion or Spark SQL.

    Returns a pandas DataFrame of at most `limit` rows.
    """
    from tickcast.tables import resolve_sql

    if engine == "spark":
        from tickcast.spark import session

        spark = session(s, app="tickcast-sql", extra={"spark.ui.enabled": "false"})
        try:
            return spark.sql(resolve_sql(query, s)).limit(limit).toPandas()
        except Exception as e:  # AnalysisException / ParseException: Spark's message, not a trace
            raise click.ClickException(str(e).splitlines()[0]) from None
    import pyarrow as pa
    from deltalake import DeltaTable, QueryBuilder
    from deltalake.exceptions import TableNotFoundError

    from tickcast import lake, tables

    qb = QueryBuilder()
    for name in tables.referenced(query):
        if name not in tables.ALL:
            raise click.ClickException(f"no table {name}; known: {', '.join(sorted(tables.ALL))}")
        t = tables.ALL[name]
        try:
            qb.register(f'"{name}"', DeltaTable(lake.uri(t, s)))
        except TableNotFoundError:
            raise click.ClickException(f"{name} does not exist yet (at {t.path(s)}): "
                                       "run the pipeline (tickcast up) or its job first") from None
    try:
        reader = qb.execute(tables.quote_names(query))
        batches, n = [], 0
        for batch in reader:   # stop reading once `limit` rows are in: no full result for a LIMIT-less query
            rb = pa.record_batch(batch)
            batches.append(rb)
            n += rb.num_rows
            if n >= limit:
                break
        schema = pa.schema(reader.schema) if not batches else batches[0].schema
        return pa.Table.from_batches(batches, schema=schema).slice(0, limit).to_pandas()
    except Exception as e:  # DataFusion's planning/execution errors: its message, not a trace
        raise click.ClickException(str(e).strip().splitlines()[0]) from None


@cli.command(help="Run SQL over the tables: `layer.table` names (bronze.ticks, ...) map to their Delta tables. "
                  "The default engine is delta-rs (DataFusion, no JVM: answers in about a second).")
@click.argument("query")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="rows shown at most")
@click.option("--engine", type=click.Choice(["delta-rs", "spark"]), default="delta-rs", show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
def sql(query, limit, engine, fmt) -> None:
    df = sql_frame(query, _settings(), engine, limit)
    if fmt == "csv":
        click.echo(df.to_csv(index=False), nl=False)
    elif fmt == "json":
        click.echo(df.to_json(orient="records", lines=True, date_format="iso", date_unit="ms",
                              default_handler=str), nl=False)
    else:
        import pandas as pd

        with pd.option_context("display.max_columns", None, "display.width", 250, "display.max_colwidth", 60):
            click.echo(df.to_string(index=False) if len(df) else f"(no rows; columns: {', '.join(df.columns)})")
        click.echo(f"({len(df)} row{'s' if len(df) != 1 else ''}{', limited' if len(df) == limit else ''})")


# ---- up -----------------------------------------------------------------------------------------
@cli.command(help="The whole local pipeline: broker, producer and streaming jobs; Ctrl-C stops it all.")
@click.option("--source", type=click.Choice(["auto", "replay", "simulate", "live"]), default="auto", show_default=True)
@click.option("--file", "files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--rate", type=float, default=50.0, show_default=True)
@click.option("--symbols", default="BTCUSDT,ETHUSDT", show_default=True)
@click.option("--jobs", "jobs", default=None, help="comma-separated streaming jobs [default: all of them, in order]")
@click.option("--no-components", is_flag=True, help="do not start the prediction service and the dashboard")
@click.option("--verbose", is_flag=True, help="show Spark, JVM, TensorFlow and MLflow output here, not only in "
                                              "$TICKCAST_DATA_DIR/logs/")
@click.option("--status-every", type=click.FloatRange(min=0.5), default=10.0, show_default=True,
              help="seconds between status lines when stdout is not a terminal")
def up(source, files, rate, symbols, jobs, no_components, verbose, status_every) -> None:
    from tickcast.up import JOBS, run_up

    chosen = [j.strip() for j in jobs.split(",") if j.strip()] if jobs else list(JOBS)
    unknown = [j for j in chosen if j not in JOBS]
    if unknown:
        raise click.BadParameter(f"unknown job(s) {', '.join(unknown)}; known: {', '.join(JOBS)}", param_hint="--jobs")
    run_up(_settings(), source, list(files), rate, symbols, chosen, verbose=verbose, status_every=status_every,
           components=not no_components)


from tickcast.cli_ml import register as _register_ml  # noqa: E402  (train, models, simulate-history)

_register_ml(cli)


def _register_components(group: click.Group) -> None:
    """Components (serving, dashboard) add their own commands through the `tickcast.commands` entry
    points (each a `register(cli)` function), so this root never imports them."""
    from importlib.metadata import entry_points

    for ep in entry_points(group="tickcast.commands"):
        try:
            ep.load()(group)
        except ImportError as e:  # a component whose dependencies are missing must not break the others
            logging.getLogger(__name__).warning("tickcast: commands of %s not loaded: %s", ep.name, e)


_register_components(cli)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except SettingsError as e:
        click.echo(f"Error: bad setting: {e}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
