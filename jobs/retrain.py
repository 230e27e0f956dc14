"""Batch job `retrain` (`spark-submit jobs/main.py --job retrain`): one pass of the retrainer (`tickcast
retrain --once`) for the ScheduledSparkApplication: every horizon in TICKCAST_HORIZONS is judged on
live decay and age, and retrained on the last TICKCAST_TRAIN_WINDOW when TICKCAST_RETRAIN_EVERY has
passed since its last attempt (ops.model_events), through the same gate as `up`'s retrainer."""
from __future__ import annotations

from tickcast.cli_ml import retrain


def main(argv: list[str], s) -> int:
    import click

    try:
        retrain.main(args=["--once", *argv], prog_name="retrain", standalone_mode=False)
    except click.ClickException as e:
        e.show()
        return e.exit_code
    return 0
