"""spark-submit entry for every job: `spark-submit jobs/main.py --job NAME [--available-now]`.

Streaming jobs (jobs.runner.job_starters) can run several in one driver; a batch job (BATCH_JOBS)
runs alone and takes its own options after `--job NAME`.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

# spark-submit runs this file directly; make the repo's packages importable without an install.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.runner import run
from tickcast import metrics
from tickcast.kafka_broker import BrokerError, require_reachable
from tickcast.settings import SettingsError, load  # noqa: E402

# Batch jobs: name -> "module:function"; the function takes (argv: the options after the job's
# own, settings) and returns an exit code.
BATCH_JOBS = {
    "maintain": "jobs.maintain:main",
    "train": "jobs.train:main",
    "retrain": "jobs.retrain:main",
}


def _run_batch(name: str, argv: list[str], s) -> int:
    import importlib

    module, func = BATCH_JOBS[name].split(":")
    return int(getattr(importlib.import_module(module), func)(argv, s) or 0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--job", required=True, action="append", help="job name (repeat to run several in one driver)")
    ap.add_argument("--available-now", action="store_true", help="process what is there, then stop")
    args, rest = ap.parse_known_args(argv)
    batch = [j for j in args.job if j in BATCH_JOBS]
    if batch and len(args.job) > 1:
        ap.error(f"batch job {batch[0]} runs alone")
    if rest and not batch:
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        s = load()
    except SettingsError as e:
        print(f"tickcast: bad setting: {e}", file=sys.stderr)
        return 2
    if batch:
        return _run_batch(batch[0], rest, s)
    if {"ingest", "hotpath"} & set(args.job):   # the jobs that read Kafka
        try:
            require_reachable(s)
        except BrokerError as e:
            print(f"tickcast: {e}", file=sys.stderr)
            return 3
    # The driver's own /metrics (TICKCAST_METRICS_PORT), beside Spark's PrometheusServlet on Kubernetes.
    served = None
    if s.metrics_port and not args.available_now:
        try:
            served = metrics.MetricsServer(s.metrics_host, s.metrics_port)
        except OSError as e:
            print(f"tickcast: bad setting: TICKCAST_METRICS_PORT: cannot listen on {s.metrics_host}:{s.metrics_port} "
                  f"({e.strerror or e})", file=sys.stderr)
            return 2
    try:
        run(args.job, s, available_now=args.available_now)
    finally:
        if served is not None:
            served.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
