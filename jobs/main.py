"""spark-submit entry for every job: `spark-submit jobs/main.py --job NAME [--available-now]`."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

# spark-submit runs this file directly; make the repo's packages importable without an install.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tickcast.settings import SettingsError, load  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--job", required=True, action="append", help="job name (repeat to run several in one driver)")
    ap.add_argument("--available-now", action="store_true", help="process what is there, then stop")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        s = load()
    except SettingsError as e:
        print(f"tickcast: bad setting: {e}", file=sys.stderr)
        return 2
    from jobs.runner import run
    from tickcast.kafka_broker import BrokerError, require_reachable

    if "ingest" in args.job:
        try:
            require_reachable(s)
        except BrokerError as e:
            print(f"tickcast: {e}", file=sys.stderr)
            return 3
    run(args.job, s, available_now=args.available_now)
    return 0


if __name__ == "__main__":
    sys.exit(main())
