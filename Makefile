# The README's commands. Each sets up what it needs first (idempotent, quick the second time).
.PHONY: setup setup-k8s-tools setup-oip-clients setup-monitoring-tools up lint test test-fast test-unit test-k8s bench clean

setup:
	bash scripts/setup.sh

# The offline checking tools for k8s/ and spark-operator/, in their own .venv-k8s.
setup-k8s-tools:
	bash scripts/setup-k8s-tools.sh

# Stock Open Inference Protocol clients (KServe's, Triton's) for the protocol tests, in their own .venv-oip.
setup-oip-clients:
	bash scripts/setup-oip-clients.sh

# promtool and the Grafana board checker (monitoring/), in .cache/monitoring.
setup-monitoring-tools:
	bash scripts/setup-monitoring-tools.sh

up: setup
	.venv/bin/tickcast up

lint: setup
	.venv/bin/ruff check .
	.venv/bin/lint-imports

test: setup setup-k8s-tools setup-oip-clients setup-monitoring-tools lint
	.venv/bin/python -m pytest tests

# The quick tier (at most 5 minutes): unit tests and the Spark transforms, no broker, no browser.
test-fast: setup lint
	.venv/bin/python -m pytest tests/unit tests/spark

test-unit: setup
	.venv/bin/python -m pytest tests/unit

test-k8s: setup setup-k8s-tools
	.venv/bin/python -m pytest tests/k8s

bench: setup
	.venv/bin/tickcast bench ingest

clean:
	rm -rf .data bench-results
