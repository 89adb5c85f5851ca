# ComputeShare developer entry points. `make demo` and `make test` set up what is missing
# (virtualenv, Python packages, the anvil node from npm) and are safe to run again.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed

# ape-foundry looks anvil up on PATH: use the one shipped inside the npm package.
export PATH := $(CURDIR)/node_modules/.bin:$(BIN):$(PATH)
export HYPOTHESIS_PROFILE ?= ci

.PHONY: setup demo test lint fuzz bench abi clean

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

demo: setup
	ape run demo

test: setup lint
	ape test tests -p no:warnings

lint: setup
	ruff check .
	ruff format --check .

fuzz: setup
	HYPOTHESIS_PROFILE=deep ape test tests -p no:warnings -k "properties or stateful"

bench: setup
	ape run bench_token
	ape run bench_staking
	ape run bench_escrow
	ape run bench_governance

abi: setup
	ape run export_abi

clean:
	rm -rf $(VENV) node_modules .build .hypothesis .pytest_cache
