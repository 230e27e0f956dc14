"""The local stack: `tickcast up` runs broker, producer, streaming jobs, service and dashboard together.

An entry-point layer on top of the components (it imports jobs and producers and starts the others as
child processes); the core never imports it. Registered through the `tickcast.commands` entry point.
"""

# The streaming jobs `up` runs, in order (here, not in stack.up, so `tickcast --help` loads no numpy).
JOBS = ["ingest", "bars", "features", "predict", "outcomes"]
