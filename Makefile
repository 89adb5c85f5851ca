# ComputeShare developer entry points. `make demo` and `make test` set up what is missing
# (virtualenv, Python packages, the anvil node from npm) and are safe to run again.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
ANALYSIS_VENV := .venv-analysis
ANALYSIS_STAMP := $(ANALYSIS_VENV)/.installed

# ape-foundry looks anvil up on PATH: use the one shipped inside the npm package.
export PATH := $(CURDIR)/node_modules/.bin:$(BIN):$(PATH)
export HYPOTHESIS_PROFILE ?= ci

.PHONY: setup demo test lint analyze fuzz bench abi clean

setup: $(PY_STAMP) $(NODE_STAMP)

$(PY_STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
		{ echo "Python 3.11 is required (found $$($(PYTHON) --version))"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	touch $@

# `npm install`, not `npm ci`: npm 11 locks only this platform's optional anvil binary.
$(NODE_STAMP): package.json
	npm install --no-audit --no-fund --loglevel=error
	anvil --version >/dev/null
	touch $@

$(ANALYSIS_STAMP): constraints-analysis.txt
	test -x $(ANALYSIS_VENV)/bin/python || $(PYTHON) -m venv $(ANALYSIS_VENV)
	$(ANALYSIS_VENV)/bin/python -m pip install --quiet -r constraints-analysis.txt
	touch $@

demo: setup
	ape run demo

test: setup lint analyze
	ape test tests -p no:warnings

lint: setup
	ruff check .
	ruff format --check .

# vyper-guard on every contract; fails on a finding not fixed or justified in the code.
analyze: setup $(ANALYSIS_STAMP)
	python -m computeshare.analysis

fuzz: setup
	HYPOTHESIS_PROFILE=deep ape test tests -p no:warnings -k "properties or stateful"

bench: setup
	ape run bench_token
	ape run bench_staking
	ape run bench_escrow
	ape run bench_governance
	ape run bench_sandbox
	ape run bench_agent

abi: setup
	ape run export_abi

clean:
	rm -rf $(VENV) $(ANALYSIS_VENV) node_modules .build .hypothesis .pytest_cache
