# ComputeShare developer entry points. `make demo` and `make test` set up what is missing
# (virtualenv, Python packages, the anvil node from npm) and are safe to run again.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# The TypeScript package's own dependencies (viem, typescript), for tests/test_typed_abi.py.
SDK_STAMP := sdk/ts/node_modules/.installed
ANALYSIS_VENV := .venv-analysis
# Test processes, each with its own anvil (pytest-xdist; a test file is the unit): twice the
# CPUs, as the tests spend half their time waiting on nodes, subprocesses and timeouts (at
# two workers on 2 cores they kept 1.07 cores busy).
TEST_WORKERS ?= $(shell echo $$((2 * $$(nproc))))
ANALYSIS_STAMP := $(ANALYSIS_VENV)/.installed

# ape-foundry looks anvil up on PATH: use the one shipped inside the npm package.
export PATH := $(CURDIR)/node_modules/.bin:$(BIN):$(PATH)
export HYPOTHESIS_PROFILE ?= ci

.PHONY: bench-index bench-burst bench-long parallel setup demo test lint analyze fuzz bench abi clean examples

# One line per step: a first install takes minutes, and says what it is waiting for.
setup: $(PY_STAMP) $(NODE_STAMP) $(SDK_STAMP)
	@echo "setup: ready (Python packages in $(VENV), anvil in node_modules, viem in sdk/ts)"

$(PY_STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || \
		{ echo "Python 3.11 is required (found $$($(PYTHON) --version))"; exit 1; }
	@test -x $(BIN)/python || { echo "setup: creating the virtualenv $(VENV)"; \
		$(PYTHON) -m venv $(VENV); }
	@echo "setup: upgrading pip"
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "setup: installing the Python packages pinned in constraints.txt (minutes the first time)"
	@$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	@touch $@

# `npm ci`: installs exactly what package-lock.json pins and never writes it, whatever the
# npm version (the lock names every platform's optional anvil binary: tests/test_setup.py).
$(NODE_STAMP): package.json package-lock.json
	@echo "setup: installing anvil from npm into node_modules"
	@npm ci --no-audit --no-fund --loglevel=error
	@echo "setup: $$(anvil --version | head -n 1)"
	@touch $@

$(SDK_STAMP): sdk/ts/package.json sdk/ts/package-lock.json
	@echo "setup: installing sdk/ts's pinned npm packages (viem, typescript)"
	@cd sdk/ts && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(ANALYSIS_STAMP): constraints-analysis.txt
	test -x $(ANALYSIS_VENV)/bin/python || $(PYTHON) -m venv $(ANALYSIS_VENV)
	$(ANALYSIS_VENV)/bin/python -m pip install --quiet -r constraints-analysis.txt
	touch $@

demo: setup
	ape run demo

# The WASI example programs (C, Rust, zlib's minigzip) as examples/build/*.wasm, built with
# Debian's clang (wasm32-wasi) and rustc.
examples:
	examples/build.sh

# --no-loadscope-reorder keeps conftest's slowest-first order (xdist would otherwise start the
# files with the most tests first, leaving the one-test state machines to run alone at the end).
# The contracts are compiled once first: on a clean clone each test process would otherwise
# compile them all itself, at once: four small test files took 140 s from a clean clone,
# against 21 s to compile once and then 51 s.
test: setup lint analyze
	ape compile
	ape test tests -p no:warnings -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

lint: setup
	ruff check .
	ruff format --check .

# vyper-guard on every contract; fails on a finding not fixed or justified in the code.
analyze: setup $(ANALYSIS_STAMP)
	python -m devtools.analysis

fuzz: setup
	HYPOTHESIS_PROFILE=deep ape test tests -p no:warnings -k "properties or stateful"

bench: setup
	ape run bench_token
	ape run bench_staking
	ape run bench_escrow
	ape run bench_governance
	ape run bench_sandbox
	ape run bench_metering
	ape run bench_native
	ape run bench_wasi
	ape run bench_cas
	ape run bench_trees
	ape run bench_agent
	$(MAKE) bench-index
	$(MAKE) bench-burst
	$(MAKE) bench-long

# The 10,000-job market needs an anvil without ape's --steps-tracing (every opcode of
# every transaction kept in memory: 24 GB, then the OOM killer): a plain one of its own.
bench-index: setup
	@port=$$($(BIN)/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
	anvil --port $$port --silent & node=$$!; \
	trap 'kill $$node' EXIT; sleep 2; \
	ape run bench_index --network http://127.0.0.1:$$port

# A burst of k = 1 jobs against three provider agents (separate processes): post-to-result
# latency against jobs posted one by one; a plain anvil of its own, as for bench-index.
# BENCH_BURST_JOBS (default 200) sets the burst's size.
bench-burst: setup
	@port=$$($(BIN)/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
	anvil --port $$port --silent & node=$$!; \
	trap 'kill $$node' EXIT; sleep 2; \
	ape run bench_burst --network http://127.0.0.1:$$port

# One k = 1 job of BENCH_LONG_SECONDS (default 600) of compute through a real agent process,
# verified on chain, settled and paid; a plain anvil of its own, as for bench-burst.
bench-long: setup
	@port=$$($(BIN)/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
	anvil --port $$port --silent & node=$$!; \
	trap 'kill $$node' EXIT; sleep 2; \
	ape run bench_long --network http://127.0.0.1:$$port

# Storage conflicts between the N transactions of one block, per market operation (for
# parallel EVMs); starts and stops a plain anvil of its own. `make parallel N=20`.
parallel: N ?= 100
parallel: setup
	python -m devtools.parallel --n $(N)

abi: setup
	ape run export_abi

clean:
	rm -rf $(VENV) $(ANALYSIS_VENV) node_modules .build .hypothesis .pytest_cache
