# The two commands a newcomer needs. Each installs what it needs first (idempotent, local .venv).
.PHONY: demo test bench ui setup

setup:
	./scripts/bootstrap.sh

demo: setup
	.venv/bin/am-distill demo

test: setup
	./scripts/run_tests.sh

ui: setup
	.venv/bin/am-distill ui

bench: setup
	.venv/bin/python -m benchmarks
