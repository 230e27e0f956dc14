"""The ML commands of the CLI: `tickcast train`, `tickcast models [promote|rollback]` (`simulate-history`
writes bars with the jobs' code: jobs/commands.py)."""
from __future__ import annotations

import json
from pathlib import Path

import click

from tickcast import cli_common


@click.command(help="Train candidate models per horizon from silver.features: walk-forward against the naive "
                    "baselines, each logged and registered in MLflow; the best one becomes `champion` only if it "
                    "passes the gate. Prints the report (also kept as the run's evaluation/report.md).")
@click.option("--horizon", "horizons", type=click.IntRange(1, 1440), multiple=True, default=(5,), show_default=True,
              help="minutes ahead (repeat for several)")
@click.option("--symbols", default=None, help="comma-separated [default: every symbol in silver.features]")
@click.option("--end", "end", default=None, help="use data up to this UTC time only (ISO), e.g. to train on a prefix")
@click.option("--start", "start", default=None, help="use data from this UTC time on only (ISO): a window with --end")
@click.option("--folds", type=click.IntRange(2, 20), default=4, show_default=True)
@click.option("--epochs", type=click.IntRange(1, 500), default=30, show_default=True, help="MLP epochs at most")
@click.option("--conv-epochs", type=click.IntRange(1, 500), default=20, show_default=True, help="Conv1D epochs at most")
@click.option("--candidates", default=",".join(("linear", "mlp", "conv")), show_default=True,
              help="comma-separated candidate families (linear, mlp, conv)")
@click.option("--bootstrap-reps", type=click.IntRange(100, 10000), default=1000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--shuffle-labels", is_flag=True, help="negative control: shuffle the labels (never promoted)")
@click.option("--report", "report_path", type=click.Path(path_type=Path), default=None,
              help="also write the evaluation report (JSON) here")
def train(horizons, symbols, end, start, folds, epochs, conv_epochs, candidates, bootstrap_reps, seed, shuffle_labels,
          report_path) -> None:
    from tickcast import modeling, training  # deferred: heavy (pandas, TensorFlow when training)

    s = cli_common.settings(quiet_tensorflow=True)
    reports = []
    for h in horizons:
        cfg = training.TrainConfig(horizon=h, symbols=cli_common.symbols(symbols), end_ms=cli_common.time_ms(end),
                                   start_ms=cli_common.time_ms(start), folds=folds,
                                   bootstrap_reps=bootstrap_reps, seed=seed, shuffle_labels=shuffle_labels,
                                   families=cli_common.symbols(candidates) or training.CANDIDATES,
                                   mlp=modeling.MlpConfig(epochs=epochs, seed=seed),
                                   conv=modeling.ConvConfig(epochs=conv_epochs, seed=seed))
        unknown = set(cfg.families) - set(training.CANDIDATES)
        if unknown:
            raise click.BadParameter(f"unknown candidate(s) {', '.join(sorted(unknown))}; "
                                     f"known: {', '.join(training.CANDIDATES)}", param_hint="--candidates")
        try:
            rep = training.train(s, cfg, echo=click.echo)
        except training.TrainingError as e:
            raise click.ClickException(str(e)) from None
        click.echo(training.markdown(rep))
        click.secho(f"{rep['model']} v{rep['version']} -> {rep['alias']} ({rep['gate']['reason']}); "
                    f"{rep['seconds']} s", fg="green" if rep["alias"] == "champion" else "yellow")
        reports.append(rep)
    if report_path:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(reports if len(reports) > 1 else reports[0], indent=1, default=str))


@click.group(invoke_without_command=True, help="Registered models: versions, aliases and scores.")
@click.option("--horizon", type=int, default=None, help="only tickcast-h<HORIZON>")
@click.pass_context
def models(ctx, horizon) -> None:
    if ctx.invoked_subcommand:
        return
    from tickcast import model_io  # deferred: heavy (mlflow)

    client = model_io.configure(cli_common.settings(quiet_tensorflow=True))
    names = [model_io.model_name(horizon)] if horizon else model_io.registered_names(client)
    if not names:
        click.echo("no registered models yet: run `tickcast train`")
        return
    click.echo(f"{'model':<14} {'version':>7}  {'aliases':<20} {'brier':>9} {'accuracy':>8}  {'training end':<22} gate")
    for n in names:
        for v in model_io.versions(client, n):
            click.echo(f"{n:<14} {v['version']:>7}  {','.join(v['aliases']) or '-':<20} {v['brier'] or '-':>9} "
                       f"{v['accuracy'] or '-':>8}  {v['training_end'] or '-':<22} {v['gate'] or '-'}")


@models.command("promote", help="Give `champion` to VERSION explicitly (bypasses the gate; the reason is kept).")
@click.argument("version")
@click.option("--horizon", type=int, required=True)
@click.option("--reason", required=True, help="why, kept as a tag on the version")
def promote(version, horizon, reason) -> None:
    from tickcast import model_io  # deferred: heavy (mlflow)

    client = model_io.configure(cli_common.settings(quiet_tensorflow=True))
    name = model_io.model_name(horizon)
    mv = model_io.resolve(client, name, version)
    if mv is None:
        raise click.ClickException(f"{name} has no version {version}")
    state = (mv.tags or {}).get(model_io.REGISTRATION, model_io.COMPLETE)
    if state != model_io.COMPLETE:
        raise click.ClickException(f"{name} v{version} is {state}: its training run stopped before registering all "
                                   "its candidates, so it is never served")
    model_io.set_alias(client, name, model_io.CHAMPION, str(mv.version), f"manual promote: {reason}")
    _event(horizon, name, str(mv.version), "manual_promotion", f"manual promote: {reason}")
    click.echo(f"{name}: champion -> v{mv.version}")


def _event(horizon: int, name: str, version: str, event: str, reason: str, numbers: dict | None = None) -> None:
    from tickcast import model_events as events

    events.record(cli_common.settings(), horizon=horizon, model_name=name, version=version, event=event,
                  reason=reason, numbers=numbers, source="models-cli")


@models.command("rollback", help="Give `champion` back to the previous champion.")
@click.option("--horizon", type=int, required=True)
@click.option("--reason", required=True)
def rollback(horizon, reason) -> None:
    from tickcast import model_io  # deferred: heavy (mlflow)

    client = model_io.configure(cli_common.settings(quiet_tensorflow=True))
    try:
        cur, prev = model_io.rollback(client, model_io.model_name(horizon), reason)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    _event(horizon, model_io.model_name(horizon), prev, "rollback", f"rollback from v{cur}: {reason}",
           {"from_version": cur, "to_version": prev})
    click.echo(f"{model_io.model_name(horizon)}: champion v{cur} -> v{prev}")


@click.command(help="The retrainer: judge each champion's live outcomes against the naive baselines (demoting "
                    "it on decay or age), and retrain each horizon every TICKCAST_RETRAIN_EVERY on the last "
                    "TICKCAST_TRAIN_WINDOW of silver.features through the gate. `tickcast up` runs it at low "
                    "priority; every decision is a row of ops.model_events.")
@click.option("--once", is_flag=True, help="one pass (checks, and the retrains that are due), then exit")
@click.option("--force", is_flag=True, help="with --once: retrain every horizon now, due or not")
@click.option("--check-seconds", type=click.FloatRange(1, 86400), default=60.0, show_default=True,
              help="how often the champions are judged and the cadence is checked")
@click.option("--candidates", default=",".join(("linear", "mlp", "conv")), show_default=True,
              help="comma-separated candidate families (linear, mlp, conv)")
def retrain(once, force, check_seconds, candidates) -> None:
    import signal
    import threading

    from tickcast import model_io
    from tickcast.lifecycle import loop
    from tickcast.lifecycle import retrain as one

    s = cli_common.settings(quiet_tensorflow=True)
    families = cli_common.symbols(candidates)
    echo = click.echo
    if once:
        if force:
            for h in s.horizons:
                one.retrain(s, h, families, echo)
        else:
            loop.cycle(s, model_io.configure(s), echo, families)
        return
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    click.echo(f"retrainer: every {s.retrain_every} on the last {s.train_window}, decay window {s.decay_window} "
               f"(>= {s.decay_min_outcomes} outcomes), max age {s.model_max_age}; horizons "
               f"{', '.join(map(str, s.horizons))}")
    loop.run(s, stop, echo, check_seconds, families)


def register(cli: click.Group) -> None:
    for cmd in (train, models, retrain):
        cli.add_command(cmd)
