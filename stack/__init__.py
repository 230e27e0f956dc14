"""The local stack: `tickcast up` runs broker, producer, streaming jobs, service and dashboard together.

An entry-point layer on top of the components (it imports jobs and producers and starts the others as
child processes); the core never imports it. Registered through the `tickcast.commands` entry point.
"""

# The streaming jobs `up` runs by default, in order (here, not in stack.up, so `tickcast --help` loads no
# numpy): the one-hop hot path (Kafka -> bronze, bars, features, predictions) and outcomes.
JOBS = ["hotpath", "outcomes"]
# Every streaming job `up --jobs` accepts: the separate stages instead of the hot path, for example
# `--jobs ingest,bars` (jobs.runner refuses hotpath beside the stages it replaces).
STREAMS = ["hotpath", "ingest", "bars", "features", "predict", "outcomes"]
