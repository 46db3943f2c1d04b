# The two README commands. Each bootstraps .venv itself on a fresh clone.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export LITELLM_LOCAL_MODEL_COST_MAP := True

.PHONY: demo test lint typecheck unit bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/l0 demo

lint: $(STAMP)
	$(BIN)/ruff check src instrumentation tests benchmarks dashboards
	$(BIN)/ruff format --check src instrumentation tests benchmarks dashboards

typecheck: $(STAMP)
	$(BIN)/mypy --strict src/l0 instrumentation/opentelemetry

unit: $(STAMP)
	bash scripts/ensure-prometheus.sh
	$(BIN)/pytest -q

test: lint typecheck unit

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	bash scripts/ensure-valgrind.sh
	bash scripts/ensure-bench-v2.sh
	$(BIN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .venv-bench-v2 .mypy_cache .pytest_cache .ruff_cache
