# The README's commands. Each sets up what it needs first (idempotent, quick the second time).
.PHONY: setup up test test-unit bench clean

setup:
	bash scripts/setup.sh

up: setup
	.venv/bin/tickcast up

test: setup
	.venv/bin/python -m pytest tests

test-unit: setup
	.venv/bin/python -m pytest tests/unit

bench: setup
	.venv/bin/tickcast bench ingest

clean:
	rm -rf .data bench-results
