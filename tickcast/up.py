"""`tickcast up`: the whole local pipeline in one command; Ctrl-C stops everything cleanly."""
from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import click

from tickcast import kafka_broker
from tickcast.settings import Settings

JOBS = ["ingest"]  # later issues add bars, features, predict, outcomes


def _producer_cmd(source: str, files: list[Path], rate: float, symbols: str) -> list[str]:
    cmd = [sys.executable, "-m", "tickcast.cli", "produce", "--source", source]
    if source == "replay":
        for f in files:
            cmd += ["--file", str(f)]
    else:
        cmd += ["--rate", str(rate), "--symbols", symbols]
    return cmd


def run_up(s: Settings, source: str, files: list[Path], rate: float, symbols: str) -> None:
    from jobs.runner import run

    if source == "auto":
        # The live source arrives with its own issue; until then auto means the simulator.
        click.secho("tickcast up: no live Binance source yet -> using the SIMULATOR "
                    "(synthetic symbols end in -SIM)", fg="yellow", bold=True)
        source = "simulate"
    if source == "live":
        raise click.ClickException("the live source is not built yet; use --source simulate or replay")
    if source == "replay" and not files:
        raise click.UsageError("--source replay needs --file")
    try:
        started_broker = kafka_broker._read_pid(s) is None
        click.echo(kafka_broker.start(s).describe())
    except kafka_broker.BrokerError as e:
        raise click.ClickException(str(e)) from None
    log_dir = s.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    plog = open(log_dir / "producer.log", "ab")
    producer = subprocess.Popen(_producer_cmd(source, files, rate, symbols), stdout=plog, stderr=subprocess.STDOUT,
                                env=s.child_env(), start_new_session=True)
    click.echo(f"producer: {source} (pid {producer.pid}, log {log_dir / 'producer.log'})")
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    t0 = time.monotonic()

    def line(last: dict) -> None:
        parts = [f"{time.monotonic() - t0:6.0f}s"]
        for name, p in last.items():
            src = (p.get("sources") or [{}])[0]
            lag = (src.get("metrics") or {}).get("maxOffsetsBehindLatest", "-")
            parts.append(f"{name}: {p.get('inputRowsPerSecond') or 0:7.1f} ticks/s in, batch "
                         f"{(p.get('durationMs') or {}).get('triggerExecution', 0):5d} ms, lag {lag}")
        click.echo("\r" + " | ".join(parts) + "   ", nl=False)

    try:
        run(JOBS, s, available_now=False, on_progress=line, stop_event=stop)
    finally:
        click.echo("\nstopping: producer, streams" + (", broker" if started_broker else ""))
        producer.send_signal(signal.SIGINT)
        try:
            producer.wait(30)
        except subprocess.TimeoutExpired:
            producer.kill()
        if started_broker:
            kafka_broker.stop(s)
