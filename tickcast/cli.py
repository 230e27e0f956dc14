"""The `tickcast` command line: the local broker, SQL, training and models; components (jobs,
producers, serving, dashboard, the local stack `up`, benchmarks) add their commands through the
`tickcast.commands` entry points."""
from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points

import click

from tickcast import cli_backtest, cli_ml, kafka_broker
from tickcast.cli_common import settings as _settings
from tickcast.settings import Settings, SettingsError
from tickcast.spark import session


@click.group(help=__doc__)
def cli() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")


# ---- kafka --------------------------------------------------------------------------------------
@cli.group(help="The local single-node Kafka broker (KRaft) under the data directory.")
def kafka() -> None:
    pass


@kafka.command("start")
def kafka_start() -> None:
    s = _settings()
    try:
        st = kafka_broker.start(s)
    except kafka_broker.BrokerError as e:
        raise click.ClickException(str(e)) from None
    click.echo(st.describe())


@kafka.command("stop")
def kafka_stop() -> None:
    click.echo("kafka: stopped" if kafka_broker.stop(_settings()) else "kafka: was not running")


@kafka.command("status")
def kafka_status() -> None:
    st = kafka_broker.status(_settings())
    click.echo(st.describe())
    if not st.reachable:
        sys.exit(1)


# ---- sql ----------------------------------------------------------------------------------------
def sql_frame(query: str, s: Settings, engine: str, limit: int):
    """Run `query` over the tables (`layer.table` names) with delta-rs's DataFusion or Spark SQL.

    Returns a pandas DataFrame of at most `limit` rows.
    """
    from tickcast import lake, tables  # deferred: heavy (numpy, pyarrow; `tickcast --help` loads none of them)

    if engine == "spark":
        spark = session(s, app="tickcast-sql", extra={"spark.ui.enabled": "false"})
        try:
            return spark.sql(tables.resolve_sql(query, s)).limit(limit).toPandas()
        except Exception as e:  # AnalysisException / ParseException: Spark's message, not a trace
            raise click.ClickException(str(e).splitlines()[0]) from None
    import pyarrow as pa  # deferred: heavy
    from deltalake import DeltaTable, QueryBuilder  # deferred: heavy
    from deltalake.exceptions import TableNotFoundError

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
        import pandas as pd  # deferred: heavy

        with pd.option_context("display.max_columns", None, "display.width", 250, "display.max_colwidth", 60):
            click.echo(df.to_string(index=False) if len(df) else f"(no rows; columns: {', '.join(df.columns)})")
        click.echo(f"({len(df)} row{'s' if len(df) != 1 else ''}{', limited' if len(df) == limit else ''})")


cli_ml.register(cli)   # train, models
cli_backtest.register(cli)


def _register_components(group: click.Group) -> None:
    """Components add their own commands through the `tickcast.commands` entry points (each a
    `register(cli)` function), so this root never imports them."""
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
