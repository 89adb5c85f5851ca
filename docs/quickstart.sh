#!/usr/bin/env bash
# From a fresh clone to a paid job with the CLI alone, on a local node. The README shows this
# file as it is, and tests/test_quickstart.py runs it: run it from the checkout's root after
# `make setup`. PORT and AGENT_PORT choose other ports; WORK keeps the agent's files.
set -euo pipefail
export PATH="$PWD/.venv/bin:$PWD/node_modules/.bin:$PATH"  # what `make setup` installed
PORT=${PORT:-8545} AGENT_PORT=${AGENT_PORT:-8700} WORK=${WORK:-$(mktemp -d)}
anvil --port "$PORT" --silent &                 # a local node, chain id 31337
trap 'kill $(jobs -p) 2>/dev/null' EXIT         # stops the node and the agent at the end
until curl -s "http://127.0.0.1:$PORT" >/dev/null; do sleep 0.2; done

# Every command below reads these: no --network or --account on each line.
export COMPUTESHARE_NETWORK="http://127.0.0.1:$PORT" COMPUTESHARE_ACCOUNT=TEST::0
ape run deploy --network "$COMPUTESHARE_NETWORK" --account TEST::0   # TEST::0 holds the supply
computeshare token transfer 0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65 10000   # TEST::4
computeshare token transfer 0x90F79bf6EB2c4f870365E785982E1f101E93b906 10000   # TEST::3

# TEST::4 provides: it bonds stake, registers a device and runs the agent that serves it.
export COMPUTESHARE_ACCOUNT=TEST::4
computeshare provider stake 5000
computeshare provider register --gpus 0 --uri "http://127.0.0.1:$AGENT_PORT"
computeshare agent --journal "$WORK/agent.json" --serve "127.0.0.1:$AGENT_PORT" \
    >"$WORK/agent.log" 2>&1 &

# TEST::3 is a client: it posts a job (`job 0x...` is the last line) and fetches the result
# once the agent has submitted it, checked against the digest on chain.
export COMPUTESHARE_ACCOUNT=TEST::3
JOB=$(computeshare client post --workload sha256-chain --input '{"seed": "a", "rounds": 1000}' \
    --price 10 | tail -n 1 | cut -d' ' -f2)
computeshare client status "$JOB"
until computeshare client result "$JOB" 2>/dev/null; do sleep 1; done

# The result is paid once its challenge window (a day) has passed. A local node's clock can
# be moved instead of waited for; the agent then settles the job.
for call in '"evm_increaseTime", "params": [86401]' '"evm_mine", "params": []'; do
    curl -s -H 'content-type: application/json' -d "{\"jsonrpc\": \"2.0\", \"id\": 1, \"method\": $call}" \
        "$COMPUTESHARE_NETWORK" >/dev/null
done
computeshare client status "$JOB" --watch --timeout 120
