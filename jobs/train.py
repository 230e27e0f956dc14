"""Batch job `train` (`spark-submit jobs/main.py --job train --horizon 5 ...`): the same command as
`tickcast train`, for the ScheduledSparkApplication. Training reads the Delta tables with delta-rs
and needs no Spark executors; running it as a Spark job keeps one image and one scheduler."""
from __future__ import annotations

from tickcast.cli_ml import train


def main(argv: list[str], s) -> int:
    import click

    try:
        train.main(args=argv, prog_name="train", standalone_mode=False)
    except click.ClickException as e:
        e.show()
        return e.exit_code
    return 0
