"""The workload catalogue: deterministic results, bounded inputs, a sandbox that holds."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from computeshare.workloads import WorkloadError, decode_spec, encode_spec, execute


def test_sha256_chain_is_iterated_sha256():
    digest = b"seed"
    for _ in range(1_000):
        digest = hashlib.sha256(digest).digest()
    assert execute(encode_spec("sha256-chain", {"seed": "seed", "rounds": 1_000})) == digest


def test_matrix_power_equals_exact_integer_arithmetic():
    payload = {"seed": 11, "n": 5, "power": 7, "modulus": 2**31 - 1}
    got = np.frombuffer(execute(encode_spec("matrix-power", payload)), dtype="<i8").reshape(5, 5)
    rng = np.random.default_rng(11)
    base = [[int(x) for x in row] for row in rng.integers(0, 2**31 - 1, size=(5, 5))]
    want = [[int(i == j) for j in range(5)] for i in range(5)]
    for _ in range(7):
        want = [
            [sum(want[i][k] * base[k][j] for k in range(5)) % (2**31 - 1) for j in range(5)]
            for i in range(5)
        ]
    assert got.tolist() == want


def test_python_function_runs_in_a_separate_interpreter():
    source = "def f(n, m):\n    return [i * m for i in range(n)]"
    spec = encode_spec("python", {"source": source, "function": "f", "args": [4, 3]})
    assert json.loads(execute(spec)) == [0, 3, 6, 9]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("import os\ndef f():\n    return os.getcwd()", "__import__ not found"),
        ("def f():\n    return open('/etc/passwd').read()", "name 'open' is not defined"),
        ("def f():\n    while True:\n        pass", "resource limit|timed out"),
        ("def f():\n    return 'x' * 10**10", "MemoryError|resource limit"),
    ],
)
def test_python_sandbox_refuses_escapes_and_runaway_code(source, message):
    spec = encode_spec("python", {"source": source, "function": "f", "args": []})
    with pytest.raises(WorkloadError, match=message):
        execute(spec)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (b"not json", "not a workload spec"),
        (b'{"workload": "mine-bitcoin", "input": {}}', "unknown workload"),
        (encode_spec("sha256-chain", {"seed": "x", "rounds": 10**9}), "rounds"),
        (encode_spec("matrix-power", {"seed": 1, "n": 1_000, "power": 2, "modulus": 7}), "'n'"),
        (encode_spec("python", {"source": "x", "function": "1f", "args": []}), "identifier"),
    ],
)
def test_bad_specs_are_refused_with_a_reason(spec, message):
    with pytest.raises(WorkloadError, match=message):
        execute(spec)


def test_spec_round_trip_is_canonical():
    spec = encode_spec("sha256-chain", {"rounds": 3, "seed": "a"})
    assert spec == encode_spec("sha256-chain", {"seed": "a", "rounds": 3})
    assert decode_spec(spec) == ("sha256-chain", {"seed": "a", "rounds": 3})
