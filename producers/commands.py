"""`tickcast produce`: registered into the CLI through the `tickcast.commands` entry point, so the
core never imports the producers."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from producers.publisher import Publisher
from producers.sources import replay_records, simulate_records
from tickcast import cli_common
from tickcast.kafka_broker import BrokerError, require_reachable
from tickcast.settings import Settings


def _speed(value: str) -> float | None:
    if value == "max":
        return None
    try:
        v = float(value)
    except ValueError:
        raise click.BadParameter(f"expected a number or 'max', got {value!r}") from None
    if v <= 0:
        raise click.BadParameter("must be > 0")
    return v


def _start_prices(items: tuple[str, ...]) -> dict[str, float]:
    """`--start-price BTCUSDT=58512.3` values as {base: price} (a -SIM/-SIMSIG name is taken as its base)."""
    from tickcast.sources.simulator import sim_base  # deferred: heavy (imports numpy, pandas)

    out = {}
    for item in items:
        name, sep, price = item.partition("=")
        try:
            value = float(price)
        except ValueError:
            value = None
        if not sep or not name.strip() or value is None:
            raise click.BadParameter(f"expected SYMBOL=PRICE, got {item!r}", param_hint="--start-price")
        out[sim_base(name.strip().upper())] = value
    return out


@click.command(help="Publish trades to the raw topic from a source (replay files, the simulator).")
@click.option("--source", type=click.Choice(["replay", "simulate", "live"]), required=True)
@click.option("--file", "files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="replay: a Binance trades/aggTrades CSV or a WebSocket recording (plain, .gz, .zip); repeatable")
@click.option("--symbol", help="replay: the symbol of CSV files whose name does not carry it")
@click.option("--loops", type=int, default=1, show_default=True, help="replay: times to go over the files")
@click.option("--speed", default=None, help="N = N x real time, 'max' = as fast as possible "
              "[default: 1 for replay and simulate]")
@click.option("--symbols", default="BTCUSDT,ETHUSDT", show_default=True,
              help="simulate: base symbols; live: symbols to subscribe, or ALL-USDT (every trading USDT pair)")
@click.option("--stream", "stream_kind", type=click.Choice(["trade", "aggTrade"]), default="trade", show_default=True,
              help="live: the Binance stream per symbol")
@click.option("--rate", type=float, default=50.0, show_default=True, help="simulate: mean trades/s, all symbols")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--count", type=int, default=None, help="simulate: stop after this many trades")
@click.option("--duration", type=float, default=None, help="simulate: stop after this many seconds of trade time")
@click.option("--plant-signal", is_flag=True, help="simulate: plant the documented weak predictable component "
              "(symbols get the -SIMSIG suffix); see docs/simulator.md")
@click.option("--signal-kind", type=click.Choice(["linear", "interaction"]), default="linear", show_default=True,
              help="simulate --plant-signal: which predictable component")
@click.option("--signal-strength", type=float, default=0.15, show_default=True)
@click.option("--start-price", "start_prices", multiple=True, metavar="SYMBOL=PRICE",
              help="simulate: where a base symbol's price starts (default: its profile's); repeatable")
def produce(source, files, symbol, loops, speed, symbols, stream_kind, rate, seed, count, duration,
            plant_signal, signal_kind, signal_strength, start_prices) -> None:
    s = cli_common.settings()
    pace = _speed(speed or "1")
    if source == "live":
        _produce_live(s, symbols, stream_kind)
        return
    if source == "replay":
        if not files:
            raise click.UsageError("--source replay needs at least one --file")
        records = replay_records(files, symbol, loops)
    else:
        if rate <= 0:
            raise click.BadParameter("must be > 0", param_hint="--rate")
        bases = [x.strip().upper() for x in symbols.split(",") if x.strip()]
        try:
            records = simulate_records(bases, rate, seed, count, duration, plant_signal, backdate=pace is None,
                                       signal_kind=signal_kind, signal_strength=signal_strength,
                                       start_prices=_start_prices(start_prices))
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--symbols/--start-price") from None
    try:
        pub = Publisher(s, source)
    except BrokerError as e:
        raise click.ClickException(str(e)) from None
    try:
        pub.publish(records, speed=pace)
    except KeyboardInterrupt:
        click.echo("interrupted: flushing what was queued", err=True)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    finally:
        counts = pub.close()
        click.echo(counts.describe())
    if counts.failed:
        sys.exit(1)


def _produce_live(s: Settings, symbols: str, kind: str) -> None:
    import signal
    import threading

    from producers.live import LiveOptions, LiveProducer  # deferred: asyncio, +30 ms per CLI start
    from tickcast.sources.rest import usdt_symbols

    if symbols.strip().upper() == "ALL-USDT":
        try:
            syms = usdt_symbols(s)
        except Exception as e:  # unreachable exchange, bad answer
            raise click.ClickException(f"exchangeInfo from {s.binance_rest_url} failed: {e}") from None
    else:
        syms = [x.strip().upper() for x in symbols.split(",") if x.strip()]
    try:
        require_reachable(s)
    except BrokerError as e:
        raise click.ClickException(str(e)) from None
    prod = LiveProducer(s, LiveOptions(symbols=syms, kind=kind, lifetime_s=s.binance_ws_lifetime_seconds))
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    click.echo(f"live: {len(syms)} symbols x {kind} from {s.binance_ws_url} "
               f"({len(prod.groups)} connection(s)); metrics on "
               + (f":{s.producer_metrics_port}/metrics" if s.producer_metrics_port else "nothing (port 0)"), err=True)
    counts = prod.run(stop, on_recovered=lambda rec: click.echo(
        "live: recovered from the topic: " + (", ".join(f"{k[0]} {k[1]} {v}" for k, v in sorted(rec.items()))
                                              or "nothing (fresh start)"), err=True))
    click.echo(prod.describe())
    click.echo(counts.describe())
    if counts.failed:
        sys.exit(1)


def register(cli: click.Group) -> None:
    cli.add_command(produce)
