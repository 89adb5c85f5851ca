"""The workload catalogue: deterministic results, strict specs, catalogue modules that match
their reference implementations."""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import struct
import threading

import numpy as np
import pytest

from computeshare.metering import COST_TABLE_VERSION
from computeshare.sandbox import MAX_FUEL, STATUS_OK, STATUS_TRAP, RunResult
from computeshare.workloads import (
    MATRIX_OP_FUEL,
    MAX_SPEC_BYTES,
    SHA256_ROUND_FUEL,
    ModuleRef,
    WorkloadError,
    catalogue_module,
    decode_spec,
    encode_spec,
    execute,
    pack_u64,
    resolve_module,
    wasm_spec,
)
from devtools import reference


def test_sha256_chain_is_iterated_sha256():
    digest = b"seed"
    for _ in range(1_000):
        digest = hashlib.sha256(digest).digest()
    result = execute(encode_spec("sha256-chain", {"seed": "seed", "rounds": 1_000}))
    assert result == RunResult(STATUS_OK, 1_000 * SHA256_ROUND_FUEL, digest)


def test_matrix_power_equals_exact_integer_arithmetic():
    payload = {"seed": 11, "n": 5, "power": 7, "modulus": 2**31 - 1}
    result = execute(encode_spec("matrix-power", payload))
    assert result.fuel == 5**3 * 7 * MATRIX_OP_FUEL
    got = np.frombuffer(result.output, dtype="<i8").reshape(5, 5)
    rng = np.random.default_rng(11)
    base = [[int(x) for x in row] for row in rng.integers(0, 2**31 - 1, size=(5, 5))]
    want = [[int(i == j) for j in range(5)] for i in range(5)]
    for _ in range(7):
        want = [
            [sum(want[i][k] * base[k][j] for k in range(5)) % (2**31 - 1) for j in range(5)]
            for i in range(5)
        ]
    assert got.tolist() == want


def test_wasm_hash_chain_matches_its_reference():
    result = execute(wasm_spec("hash-chain", pack_u64(5_000) + b"computeshare", fuel=10**8))
    assert (result.status, result.output) == (
        STATUS_OK,
        reference.hash_chain(5_000, b"computeshare"),
    )
    assert 0 < result.fuel < 10**8


def test_wasm_monte_carlo_matches_its_reference_and_estimates_pi():
    result = execute(wasm_spec("monte-carlo", pack_u64(42, 20_000), fuel=10**8))
    assert result.output == reference.monte_carlo(42, 20_000)
    inside, samples = struct.unpack("<QQ", result.output)
    assert abs(4 * inside / samples - 3.14159) < 0.05


def test_wasm_matmul_matches_its_reference():
    result = execute(wasm_spec("matmul", struct.pack("<IQ", 6, 7), fuel=10**8))
    assert result.output == reference.matmul(6, 7)
    assert execute(wasm_spec("matmul", struct.pack("<IQ", 3, 0), fuel=10**8)).output == (
        reference.matmul(3, 0)
    ), "the seed 0 is replaced by 1 in both"


def test_a_trap_is_a_result_with_the_output_so_far():
    result = execute(wasm_spec("checked-div", struct.pack("<II", 7, 0), fuel=10**7))
    assert (result.status, result.output) == (STATUS_TRAP, b"dividing\n")
    assert result.fuel > 0
    fine = execute(wasm_spec("checked-div", struct.pack("<II", 7, 2), fuel=10**7))
    assert (fine.status, fine.output) == (STATUS_OK, b"dividing\n" + struct.pack("<I", 3))


def test_digest_covers_status_fuel_and_output():
    base = RunResult(STATUS_OK, 10, b"x")
    others = [RunResult(STATUS_TRAP, 10, b"x"), RunResult(STATUS_OK, 11, b"x"), RunResult(0, 10)]
    assert len({base.digest(), *(other.digest() for other in others)}) == 4


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (b"not json", "not a workload spec"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[" * 10_000 + b"]" * 10_000, "larger than|is \\d+ bytes"),
        (b"[" * 100 + b"]" * 100, "nests deeper"),
        (b'{"workload": [], "input": {}}', "unknown workload"),
        (b'{"workload": "mine-bitcoin", "input": {}}', "unknown workload"),
        (b'{"workload": "sha256-chain", "input": {"seed": "\\ud800", "rounds": 1}}', "surrogate"),
        (b'{"workload": "sha256-chain", "input": {"sead": "hello", "rounds": 1}}', "seed"),
        (b'{"workload": "sha256-chain", "input": {"seed": "a", "rounds": true}}', "rounds"),
        (b'{"workload": "sha256-chain", "input": {"seed": "a", "rounds": 1.0}}', "rounds"),
        (b'{"workload": "sha256-chain", "input": {"seed": "a", "rounds": NaN}}', "NaN"),
        (b'{"workload": "sha256-chain", "input": {"seed": 1, "seed": 2}}', "repeats"),
        (b'{"workload": "sha256-chain", "input": [], "extra": 1}', "a spec is"),
        (
            b'{"workload": "sha256-chain", "input": {"seed": "a", "rounds": 1}, "encrypt_to": ""}',
            "not a secp256k1",
        ),
        (
            b'{"workload": "sha256-chain", "input": {"seed": "a", "rounds": 1}, "encrypt_to": 0}',
            "not a secp256k1",
        ),
        (
            b'{"workload": "sha256-chain", "input": {"seed": "a", "rounds": 1}, '
            b'"encrypt_to": "02"}',
            "not a secp256k1 public key",
        ),
        (b'{"workload": "sha256-chain", "input": {"seed": "x", "rounds": 10000000000}}', "rounds"),
        (
            b'{"workload": "matrix-power", "input": '
            b'{"seed": 1, "n": 1000, "power": 2, "modulus": 7}}',
            "'n'",
        ),
        (
            b'{"workload": "sha256-chain", "input": {"seed": "x", "rounds": 1'
            + b"0" * 5000
            + b"}}",
            "is \\d+ bytes",
        ),
    ],
)
def test_bad_specs_are_refused_with_a_reason(spec, message):
    with pytest.raises(WorkloadError, match=message):
        decode_spec(spec)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"module": {"sha256": "00" * 32}, "fuel": 0}, "fuel"),
        ({"module": {"sha256": "00" * 32}, "fuel": MAX_FUEL + 1}, "fuel"),
        ({"module": {"sha256": "zz"}, "fuel": 1}, "sha256"),
        ({"module": {"sha256": "00" * 32, "inline": "AAAA"}, "fuel": 1}, "does not hash"),
        ({"module": {"sha256": "00" * 32, "inline": "%%%"}, "fuel": 1}, "base64"),
        ({"module": {"sha256": "00" * 32, "uri": "file:///etc/passwd"}, "fuel": 1}, "uri"),
        ({"module": {"sha256": "00" * 32}, "fuel": 1, "stdin": "!"}, "base64"),
        ({"module": {"sha256": "00" * 32}, "fuel": 1, "env": {}}, "env"),
    ],
)
def test_bad_wasm_inputs_are_refused(payload, message):
    with pytest.raises(WorkloadError, match=message):
        encode_spec("wasm", {**payload, "cost_table": COST_TABLE_VERSION})


def test_client_side_check_refuses_a_typo_before_posting():
    with pytest.raises(WorkloadError, match="seed"):
        encode_spec("sha256-chain", {"sead": "hello", "rounds": 10})


def test_spec_round_trip_is_canonical():
    spec = encode_spec("sha256-chain", {"rounds": 3, "seed": "a"})
    assert spec == encode_spec("sha256-chain", {"seed": "a", "rounds": 3})
    job = decode_spec(spec)
    assert (job.workload, job.input.seed, job.input.rounds, job.fuel) == (
        "sha256-chain",
        "a",
        3,
        3 * SHA256_ROUND_FUEL,
    )


def test_inline_module_fits_the_on_chain_spec_bound():
    spec = wasm_spec(b"\x00asm\x01\x00\x00\x00" + bytes(2_000), fuel=1)
    assert len(spec) <= MAX_SPEC_BYTES
    module = json.loads(spec)["input"]["module"]
    assert base64.b64decode(module["inline"])[:4] == b"\x00asm"
    with pytest.raises(WorkloadError, match=r"inline|bytes"):
        wasm_spec(bytes(4_000), fuel=1)


@pytest.fixture
def module_server():
    """Serves files from a dict over HTTP on loopback: {path: bytes}."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield files, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_module_by_uri_must_match_its_hash_and_is_cached(module_server, tmp_path):
    files, base = module_server
    module = catalogue_module("monte-carlo") + b"\x00"  # another module: not in the catalogue
    files["/good.wasm"], files["/bad.wasm"] = module, module + b"x"
    digest = hashlib.sha256(module).hexdigest()
    good = ModuleRef(sha256=digest, uri=f"{base}/good.wasm")
    with pytest.raises(WorkloadError, match="fetching modules is off"):
        resolve_module(good, tmp_path, fetch=False)
    assert resolve_module(good, tmp_path) == module
    assert (tmp_path / f"{digest}.wasm").read_bytes() == module
    del files["/good.wasm"]
    assert resolve_module(good, tmp_path, fetch=False) == module, "served from the cache"
    bad = ModuleRef(sha256=hashlib.sha256(b"other").hexdigest(), uri=f"{base}/bad.wasm")
    with pytest.raises(WorkloadError, match="does not hash"):
        resolve_module(bad, tmp_path)
    missing = ModuleRef(sha256=hashlib.sha256(b"gone").hexdigest(), uri=f"{base}/gone.wasm")
    with pytest.raises(WorkloadError, match="module fetch failed"):
        resolve_module(missing, tmp_path)


def test_a_wasm_spec_commits_to_the_cost_table_its_fuel_is_counted_in():
    """The fuel of a wasm spec is counted in one version of the metering's cost table: the
    spec names it, and a provider metering with another refuses the spec (so replicas never
    meter one job with two tables)."""
    spec = wasm_spec("monte-carlo", pack_u64(1, 10), fuel=10**6)
    assert decode_spec(spec).input.cost_table == COST_TABLE_VERSION
    ref = {"sha256": "00" * 32}
    for version in (COST_TABLE_VERSION - 1, COST_TABLE_VERSION + 1):
        with pytest.raises(WorkloadError, match="cost_table"):
            encode_spec("wasm", {"module": ref, "fuel": 1, "cost_table": version})
        raw = json.dumps(
            {"workload": "wasm", "input": {"module": ref, "fuel": 1, "cost_table": version}}
        ).encode()
        with pytest.raises(WorkloadError, match="cost_table"):
            decode_spec(raw)
    with pytest.raises(WorkloadError, match="cost_table"):
        encode_spec("wasm", {"module": ref, "fuel": 1})
