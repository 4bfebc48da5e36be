# The two commands a newcomer needs (see README.md):
#   make demo   sets up a virtualenv with the base install and runs the local demo
#   make test   sets up a virtualenv with every extra and runs the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck bench bench-quick synth clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Marker files: re-install only when pyproject.toml changes.
$(VENV)/.base-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.base-installed

DEMO_DIR ?= .driftguard/demo
demo: $(VENV)/.base-installed
	$(BIN)/driftguard demo --dir $(DEMO_DIR)
	$(BIN)/driftguard -c $(DEMO_DIR)/driftguard-demo.yaml report --output $(DEMO_DIR)/report.html
	@echo "Open the report in a browser: $(abspath $(DEMO_DIR)/report.html)"

test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

bench: $(VENV)/.dev-installed
	$(BIN)/python -m bench

bench-quick: $(VENV)/.dev-installed
	$(BIN)/python -m bench --quick

# Offline synth without the CDK CLI (the app synthesizes itself); `npx aws-cdk@2 synth` works too.
CONFIG ?= examples/aws-basic.yaml
synth: $(VENV)/.dev-installed
	CDK_OUTDIR=cdk.out CDK_CONTEXT_JSON='{"config": "$(CONFIG)", "@aws-cdk/aws-iam:minimizePolicies": true}' \
		$(BIN)/python infra/app.py
	@ls cdk.out/*.template.json

clean:
	rm -rf $(VENV) cdk.out .driftguard .pytest_cache
