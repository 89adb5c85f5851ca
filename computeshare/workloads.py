"""The workload catalogue: real, deterministic computations that replicas can agree on.

A job spec is canonical JSON, `{"workload": <name>, "input": {...}}`, posted on-chain as the
job's spec bytes. `execute(spec)` returns the result bytes; the provider commits to and
reveals `result_hash(result)`. Every workload is deterministic across machines (integer
arithmetic only), and bounded so a spec cannot make a provider run forever.
"""

from __future__ import annotations

import hashlib
import json
import resource
import subprocess
import sys
from collections.abc import Callable

import numpy as np
from eth_utils import keccak


class WorkloadError(ValueError):
    """The spec names no known workload, or its input is malformed or out of bounds."""


MAX_ROUNDS = 5_000_000
MAX_MATRIX = 128
MAX_POWER = 32
PY_CPU_SECONDS = 2
PY_MEMORY_BYTES = 256 * 1024 * 1024
PY_MAX_SOURCE = 2_000


def encode_spec(workload: str, payload: dict) -> bytes:
    """The canonical spec bytes for `workload` with input `payload`."""
    if workload not in WORKLOADS:
        raise WorkloadError(f"unknown workload {workload!r}; known: {', '.join(WORKLOADS)}")
    return json.dumps({"workload": workload, "input": payload}, sort_keys=True).encode()


def decode_spec(spec: bytes) -> tuple[str, dict]:
    try:
        data = json.loads(bytes(spec).decode())
        workload, payload = data["workload"], data["input"]
    except (ValueError, KeyError, TypeError) as error:
        raise WorkloadError(f"not a workload spec: {error}") from None
    if workload not in WORKLOADS or not isinstance(payload, dict):
        raise WorkloadError(f"unknown workload {workload!r}")
    return workload, payload


def execute(spec: bytes) -> bytes:
    """Runs the workload a spec names; returns its result bytes."""
    workload, payload = decode_spec(spec)
    return WORKLOADS[workload](payload)


def result_hash(result: bytes) -> bytes:
    return keccak(result)


def _int(payload: dict, name: str, low: int, high: int) -> int:
    value = payload.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise WorkloadError(f"input {name!r} must be an integer in [{low}, {high}]")
    return value


def sha256_chain(payload: dict) -> bytes:
    """`rounds` iterated SHA-256 over the UTF-8 `seed`: a proof-of-work-like hashing chain."""
    seed = payload.get("seed")
    if not isinstance(seed, str):
        raise WorkloadError("input 'seed' must be a string")
    digest = seed.encode()
    for _ in range(_int(payload, "rounds", 1, MAX_ROUNDS)):
        digest = hashlib.sha256(digest).digest()
    return digest


def matrix_power(payload: dict) -> bytes:
    """A seeded random n x n integer matrix raised to `power` modulo `modulus` (NumPy, int64:
    entries stay below 2**31 so products never overflow; exact on every machine)."""
    n = _int(payload, "n", 1, MAX_MATRIX)
    power = _int(payload, "power", 1, MAX_POWER)
    modulus = _int(payload, "modulus", 2, 2**31 - 1)
    rng = np.random.default_rng(_int(payload, "seed", 0, 2**63 - 1))
    base = rng.integers(0, modulus, size=(n, n), dtype=np.int64)
    result = np.identity(n, dtype=np.int64)
    for _ in range(power):
        # Each product is reduced before summing: a sum stays below n * modulus < 2**63.
        result = (result[:, :, None] * base[None, :, :] % modulus).sum(axis=1) % modulus
    return result.astype("<i8").tobytes()


_SANDBOX = """
import json, sys
source, function, args = json.loads(sys.stdin.read())
scope = {"__builtins__": {n: __builtins__.__dict__[n] for n in (
    "abs", "all", "any", "bool", "dict", "divmod", "enumerate", "filter", "float", "int",
    "len", "list", "map", "max", "min", "pow", "range", "reversed", "round", "set",
    "sorted", "str", "sum", "tuple", "zip", "ValueError")}}
exec(compile(source, "<job>", "exec"), scope)
print(json.dumps(scope[function](*args), sort_keys=True))
"""


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (PY_CPU_SECONDS, PY_CPU_SECONDS))
    resource.setrlimit(resource.RLIMIT_AS, (PY_MEMORY_BYTES, PY_MEMORY_BYTES))
    resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))


def python_function(payload: dict) -> bytes:
    """Calls `function(*args)` defined in `source`, in a separate interpreter (isolated
    mode, empty environment, a handful of builtins, no imports) under CPU, memory and
    file limits. The result is its JSON encoding."""
    source, function, args = payload.get("source"), payload.get("function"), payload.get("args")
    if not isinstance(source, str) or len(source) > PY_MAX_SOURCE:
        raise WorkloadError(f"input 'source' must be a string of at most {PY_MAX_SOURCE} chars")
    if not isinstance(function, str) or not function.isidentifier():
        raise WorkloadError("input 'function' must be an identifier")
    if not isinstance(args, list):
        raise WorkloadError("input 'args' must be a list")
    try:
        done = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _SANDBOX],
            input=json.dumps([source, function, args]),
            capture_output=True,
            text=True,
            env={},
            preexec_fn=_limit,
            timeout=PY_CPU_SECONDS * 3,
        )
    except subprocess.TimeoutExpired:
        raise WorkloadError("python workload timed out") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["killed by a resource limit"])[-1]
        raise WorkloadError(f"python workload failed: {last}")
    return done.stdout.strip().encode()


WORKLOADS: dict[str, Callable[[dict], bytes]] = {
    "sha256-chain": sha256_chain,
    "matrix-power": matrix_power,
    "python": python_function,
}
