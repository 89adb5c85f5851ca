"""The workload catalogue and its spec format: what a job asks a provider to compute.

A job spec is canonical JSON, `{"workload": <name>, "input": {...}}`, posted on-chain as the
job's spec bytes (at most `MAX_SPEC_BYTES`). A client that wants privacy adds
`"encrypt_to": <hex secp256k1 public key>`: providers then serve the output ECIES-encrypted
to that key (`computeshare.results`); replicas still agree on the plaintext's digest.

Specs come from anyone, so `decode_spec` treats them as hostile: strict UTF-8, bounded size
and nesting, no duplicate keys, no NaN, no lone surrogates, and each workload's input
checked against a strict schema (unknown fields, wrong types and out-of-range values are
refused with the field's name).

Workloads:

- `wasm`: a WebAssembly module run in the sandbox (`computeshare.sandbox`). The spec names
  the module by SHA-256 and carries it inline (base64), or gives a URI whose bytes must
  hash to it, or neither (a module of the catalogue below, or one the provider cached).
  It names the export to call, the bytes its stdin reads, the fuel limit and the version of
  the cost table that fuel is counted in (`cost_table`: a provider metering with another
  version refuses the spec, so the job commits to its table through its spec bytes).
- `sha256-chain` and `matrix-power`: native kernels, deterministic integer arithmetic.

Every run yields a `RunResult(status, fuel, output)`; replicas commit to its `digest()`.
Native kernels report their work as fuel (`SHA256_ROUND_FUEL` a hash round,
`MATRIX_OP_FUEL` a multiply-add), priced like the wasm instructions that take as long.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import re
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from computeshare import fetch as http_fetch
from computeshare.metering import COST_TABLE_VERSION, R_FLOOR
from computeshare.sandbox import (
    DEFAULT_MEMORY_BYTES,
    MAX_FUEL,
    MAX_MEMORY_LIMIT,
    MAX_MODULE_BYTES,
    STATUS_OK,
    ModuleError,
    RunResult,
    module_hash,
)


class WorkloadError(ValueError):
    """The spec names no known workload, or its input is malformed or out of bounds."""


MAX_SPEC_BYTES = 4_096  # JobEscrow's bound on a spec
MAX_DEPTH = 6
MAX_ROUNDS = 5_000_000
MAX_MATRIX = 128
MAX_POWER = 32
MAX_STDIN_BYTES = 3_072
MAX_ARGS = 64  # arguments, and environment variables
MAX_ARG_CHARS = 512
MAX_URIS = 8
# Trees a wasm job reads and writes (`computeshare.cas`): hard bounds of the format; each
# provider's policy sets its own, lower ones (`computeshare.agent.Policy`).
MIN_PACK_BYTES = 9  # magic and count: the pack of an empty tree
MAX_TREE_BYTES = 1 << 36
DEFAULT_OUTPUT_BYTES = 64 << 20
# The largest memory a job may ask for is the sandbox's `MAX_MEMORY_LIMIT`, wasm32's 4 GiB. A
# load's and a store's price depend on the limit's tier (`metering.CostTable.memory_tiers`),
# so every replica meters and runs with the spec's limit; a provider takes more than
# `sandbox.MAX_MEMORY_BYTES` (256 MiB) only when its policy opts in (`max_memory_bytes`).
MODULE_FETCH_SECONDS = 10
# Native kernels report fuel in the sandbox's unit, priced like wasm so that they too burn
# at least 1.5 times the floor `metering.R_FLOOR` (7 * 10**9 fuel a second): measured in CPU
# time (median of 5), a SHA-256 round 310 ns and a matrix multiply-add 5.2 ns (n = 128; 7.6
# at the slowest run), so 4,000 and 64 fuel (13 and 12 * 10**9 fuel a second).
SHA256_ROUND_FUEL = 4_000
MATRIX_OP_FUEL = 64

# How long a job's fuel may keep a provider busy, by the published floor R_FLOOR: the
# worker's start-up (`RUN_START_SECONDS`) plus `WALL_MARGIN` times the fuel's time, and
# `COMMIT_SECONDS` to send the commitment. A provider's default policy declines a job whose
# commit deadline is nearer (`computeshare.agent.Policy`); the client checks before posting.
RUN_START_SECONDS = 30.0
WALL_MARGIN = 2.0
COMMIT_SECONDS = 60.0


def run_seconds(fuel: int, fuel_per_second: int = R_FLOOR) -> float:
    """The wall-clock limit of a run of `fuel` at `fuel_per_second` (by default the floor)."""
    return RUN_START_SECONDS + WALL_MARGIN * fuel / fuel_per_second


WASM_DIR = Path(__file__).parent / "wasm"
# Catalogue modules: name -> WAT source file; compiled with wasmtime's wat2wasm.
CATALOGUE = {
    "hash-chain": "hash_chain.wat",
    "matmul": "matmul.wat",
    "monte-carlo": "monte_carlo.wat",
    "checked-div": "checked_div.wat",
}


# ---------------------------------------------------------------- schemas


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


Hex64 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class TreeRef(_Strict):
    """A content-addressed tree (`computeshare.cas`): the Merkle root of its pack, the pack's
    size in bytes, and where its chunks may be fetched (tried in order)."""

    root: Hex64
    size: int = Field(ge=MIN_PACK_BYTES, le=MAX_TREE_BYTES)
    uris: list[Annotated[str, Field(max_length=512, pattern=r"^(https?|ipfs)://[^\s]+$")]] = Field(
        default_factory=list, max_length=MAX_URIS
    )


class ModuleRef(_Strict):
    """The module by SHA-256, with its bytes inline, at a plain URI, or as a tree of one
    file (`tree`: fetched chunk by chunk and verified, as inputs are; for large modules)."""

    sha256: Hex64
    inline: str | None = Field(default=None, max_length=MAX_SPEC_BYTES)
    uri: str | None = Field(default=None, max_length=512, pattern=r"^https?://[^\s]+$")
    tree: TreeRef | None = None


Arg = Annotated[str, Field(max_length=MAX_ARG_CHARS, pattern=r"^[^\x00]*$")]
EnvVar = Annotated[
    str, Field(max_length=MAX_ARG_CHARS, pattern=r"^[A-Za-z_][A-Za-z0-9_]*=[^\x00]*$")
]


class WasmInput(_Strict):
    module: ModuleRef
    export: str = Field(default="_start", min_length=1, max_length=64)
    stdin: str = Field(default="", max_length=MAX_SPEC_BYTES)
    # WASI: the program's arguments after argv[0] ("job") and its environment ("NAME=value").
    args: list[Arg] = Field(default_factory=list, max_length=MAX_ARGS)
    env: list[EnvVar] = Field(default_factory=list, max_length=MAX_ARGS)
    # The tree mounted read-only at /input, if any.
    inputs: TreeRef | None = None
    # Most bytes the run may leave in /output, and the most linear memory it may have: every
    # replica runs with the same bounds, so hitting one is the same result everywhere.
    output_limit: int = Field(default=DEFAULT_OUTPUT_BYTES, ge=0, le=MAX_TREE_BYTES)
    memory_limit: int = Field(default=DEFAULT_MEMORY_BYTES, ge=65_536, le=MAX_MEMORY_LIMIT)
    fuel: int = Field(ge=1, le=MAX_FUEL)
    # The metering's cost table version (`metering.COST_TABLE_VERSION`): what a unit of the
    # fuel above buys. A provider refuses a spec for another version, so every replica of a
    # job meters its run with the same table and the job's fuel means what the client meant.
    cost_table: int = Field(ge=1)


class Sha256ChainInput(_Strict):
    seed: str = Field(max_length=256)
    rounds: int = Field(ge=1, le=MAX_ROUNDS)


class MatrixPowerInput(_Strict):
    seed: int = Field(ge=0, le=2**63 - 1)
    n: int = Field(ge=1, le=MAX_MATRIX)
    power: int = Field(ge=1, le=MAX_POWER)
    modulus: int = Field(ge=2, le=2**31 - 1)


SCHEMAS: dict[str, type[_Strict]] = {
    "wasm": WasmInput,
    "sha256-chain": Sha256ChainInput,
    "matrix-power": MatrixPowerInput,
}
WORKLOADS = tuple(SCHEMAS)


@dataclass(frozen=True)
class Job:
    """A decoded, validated spec."""

    workload: str
    input: Any  # the workload's schema instance
    encrypt_to: bytes | None = None  # a secp256k1 public key the output is served to

    @property
    def fuel(self) -> int:
        """The most fuel a run can use: the wasm limit, or the native kernel's work count."""
        if isinstance(self.input, WasmInput):
            return self.input.fuel
        if isinstance(self.input, Sha256ChainInput):
            return self.input.rounds * SHA256_ROUND_FUEL
        return self.input.n**3 * self.input.power * MATRIX_OP_FUEL

    @property
    def stdin(self) -> bytes:
        return _base64(self.input.stdin, "stdin")


# ---------------------------------------------------------------- decoding


def _check_depth(text: str) -> None:
    """Refuses nesting deeper than MAX_DEPTH before the parser recurses into it."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise WorkloadError(f"spec nests deeper than {MAX_DEPTH} levels")
        elif char in "]}":
            depth -= 1


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict:
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise WorkloadError("spec repeats a key")
    return dict(pairs)


def _no_constant(name: str):
    raise WorkloadError(f"spec contains {name}")


def _check_strings(value: Any) -> None:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise WorkloadError("spec contains a lone surrogate") from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_strings(key)
            _check_strings(item)
    elif isinstance(value, list):
        for item in value:
            _check_strings(item)


def _schema_error(error: ValidationError) -> WorkloadError:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "input"
    return WorkloadError(f"input {where!r}: {first['msg']}")


def decode_spec(spec: bytes) -> Job:
    """Decodes and validates a spec; raises `WorkloadError` with a one-line reason."""
    raw = bytes(spec)
    if len(raw) > MAX_SPEC_BYTES:
        raise WorkloadError(f"spec is {len(raw)} bytes; the limit is {MAX_SPEC_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise WorkloadError("spec is not UTF-8") from None
    _check_depth(text)
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        if isinstance(error, WorkloadError):
            raise
        raise WorkloadError(f"not a workload spec: {str(error)[:80]}") from None
    _check_strings(data)
    if not isinstance(data, dict) or not {"workload", "input"} <= set(data) <= _SPEC_KEYS:
        raise WorkloadError('a spec is {"workload": NAME, "input": {...}[, "encrypt_to": KEY]}')
    workload, payload = data["workload"], data["input"]
    if not isinstance(workload, str) or workload not in SCHEMAS:
        raise WorkloadError(f"unknown workload {str(workload)[:40]!r}; known: {', '.join(SCHEMAS)}")
    key = data.get("encrypt_to")
    recipient = None if key is None else public_key(key)
    return Job(workload, validate_input(workload, payload), recipient)


_SPEC_KEYS = {"workload", "input", "encrypt_to"}


def public_key(text: Any) -> bytes:
    """A secp256k1 public key from hex (compressed or not), checked to be on the curve."""
    from coincurve import PublicKey

    try:
        if not isinstance(text, str) or len(text) > 200:
            raise ValueError
        return PublicKey(bytes.fromhex(text.removeprefix("0x"))).format(compressed=True)
    except ValueError:
        raise WorkloadError("'encrypt_to' is not a secp256k1 public key in hex") from None


def validate_input(workload: str, payload: Any) -> Any:
    """The workload's input checked against its schema (the client's check before posting)."""
    if workload not in SCHEMAS:
        raise WorkloadError(f"unknown workload {workload!r}; known: {', '.join(SCHEMAS)}")
    if not isinstance(payload, dict):
        raise WorkloadError("input must be a JSON object")
    try:
        parsed = SCHEMAS[workload].model_validate(payload)
    except ValidationError as error:
        raise _schema_error(error) from None
    if isinstance(parsed, WasmInput):
        if parsed.cost_table != COST_TABLE_VERSION:
            raise WorkloadError(
                f"input 'cost_table': version {parsed.cost_table}; this sandbox meters with"
                f" version {COST_TABLE_VERSION}"
            )
        if len(_base64(parsed.stdin, "stdin")) > MAX_STDIN_BYTES:
            raise WorkloadError(f"input 'stdin' is longer than {MAX_STDIN_BYTES} bytes")
        if parsed.module.inline is not None:
            inline = _base64(parsed.module.inline, "module.inline")
            if module_hash(inline) != parsed.module.sha256:
                raise WorkloadError("input 'module.inline' does not hash to 'module.sha256'")
    return parsed


def encode_spec(workload: str, payload: dict, encrypt_to: bytes | None = None) -> bytes:
    """The canonical spec bytes for `workload` with input `payload`, validated first;
    with `encrypt_to` (a public key), providers serve the output encrypted to it."""
    validate_input(workload, payload)
    data: dict[str, Any] = {"workload": workload, "input": payload}
    if encrypt_to is not None:
        data["encrypt_to"] = bytes(encrypt_to).hex()
    spec = json.dumps(data, sort_keys=True).encode()
    decode_spec(spec)  # the same checks a provider will make
    return spec


def _base64(text: str, name: str) -> bytes:
    if not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", text):
        raise WorkloadError(f"input {name!r} is not base64")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise WorkloadError(f"input {name!r} is not base64") from None


# ---------------------------------------------------------------- wasm modules


@functools.cache
def catalogue_module(name: str) -> bytes:
    """A catalogue module's bytes, compiled from its WAT source."""
    import wasmtime

    return bytes(wasmtime.wat2wasm((WASM_DIR / CATALOGUE[name]).read_text()))


@functools.cache
def _catalogue_by_hash() -> dict[str, bytes]:
    return {module_hash(catalogue_module(name)): catalogue_module(name) for name in CATALOGUE}


def wasm_spec(
    module: str | bytes,
    stdin: bytes = b"",
    *,
    fuel: int,
    export: str = "_start",
    inline: bool | None = None,
    encrypt_to: bytes | None = None,
    args: Sequence[str] = (),
    env: Sequence[str] = (),
    inputs: dict | None = None,
    module_tree: dict | None = None,
    output_limit: int | None = None,
    memory_limit: int | None = None,
) -> bytes:
    """A `wasm` spec for a catalogue module (by name) or module bytes. Catalogue modules are
    named by hash only (providers hold them); other bytes travel inline unless `inline` is
    False or `module_tree` names the tree they are fetched from (`TreeRef`'s form, e.g.
    `cas.PackInfo.spec(uris)`); `inputs` is the input tree in the same form. `args` and
    `env` ("NAME=value") are the program's WASI arguments and environment."""
    raw = catalogue_module(module) if isinstance(module, str) else bytes(module)
    ref: dict[str, Any] = {"sha256": module_hash(raw)}
    if module_tree is not None:
        ref["tree"] = dict(module_tree)
    elif inline if inline is not None else not isinstance(module, str):
        ref["inline"] = base64.b64encode(raw).decode()
    payload: dict[str, Any] = {
        "module": ref,
        "export": export,
        "fuel": fuel,
        "cost_table": COST_TABLE_VERSION,
    }
    if stdin:
        payload["stdin"] = base64.b64encode(stdin).decode()
    optional = {
        "args": list(args),
        "env": list(env),
        "inputs": dict(inputs) if inputs is not None else None,
        "output_limit": output_limit,
        "memory_limit": memory_limit,
    }
    payload.update({key: value for key, value in optional.items() if value})
    return encode_spec("wasm", payload, encrypt_to)


def module_pack(raw: bytes, store: Any) -> Any:
    """Adds module bytes to `store` (a `cas.Cache`) as a tree of one file, `module.wasm`,
    for `wasm_spec(module_tree=...)`; returns its `cas.PackInfo`."""
    with tempfile.TemporaryDirectory(prefix="computeshare-module-") as scratch:
        (Path(scratch) / MODULE_FILE).write_bytes(raw)
        return store.add_dir(scratch)


MODULE_FILE = "module.wasm"
TREE_CHUNK_SECONDS = 10.0  # a chunk of a module or input tree, from one source


def resolve_module(ref: ModuleRef, cache: Path | None = None, *, fetch: bool = True) -> bytes:
    """The module's bytes, checked against its hash: inline, the catalogue, the cache folder,
    or (when `fetch`) its URI (`computeshare.fetch`: http(s), at most MAX_MODULE_BYTES
    within MODULE_FETCH_SECONDS in all, no redirects). A fetched module is cached under its
    hash."""
    if ref.inline is not None:
        return _base64(ref.inline, "module.inline")  # its hash was checked on decoding
    known = _catalogue_by_hash().get(ref.sha256)
    if known is not None:
        return known
    cached = cache / f"{ref.sha256}.wasm" if cache is not None else None
    if cached is not None and cached.is_file():
        raw = cached.read_bytes()
        if module_hash(raw) == ref.sha256:
            return raw
    if ref.uri is None and ref.tree is None:
        raise WorkloadError(f"module {ref.sha256[:12]} is not inline, known or fetchable")
    if not fetch:
        raise WorkloadError("fetching modules is off in this provider's policy")
    if ref.tree is not None:
        raw = _module_from_tree(ref.tree, cache)
        if module_hash(raw) != ref.sha256:
            raise WorkloadError("module in its tree does not hash to 'module.sha256'")
        return raw
    try:
        raw = http_fetch.get(ref.uri, MAX_MODULE_BYTES, MODULE_FETCH_SECONDS)
    except http_fetch.FetchError as error:
        raise WorkloadError(f"module fetch failed: {error}") from None
    if module_hash(raw) != ref.sha256:
        raise WorkloadError("module at its URI does not hash to 'module.sha256'")
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(raw)
    return raw


def _module_from_tree(tree: TreeRef, cache: Path | None) -> bytes:
    """The one file of a module's tree, fetched and verified chunk by chunk into the cache
    (`cache`/trees)."""
    from computeshare import cas

    if cache is None:
        raise WorkloadError("a module by tree needs a cache folder to fetch it into")
    if tree.size > MAX_MODULE_BYTES + 4_096:
        raise WorkloadError(f"module tree is {tree.size} bytes; the limit is {MAX_MODULE_BYTES}")
    try:
        path = cas.fetch_tree(
            tree.root,
            tree.size,
            tree.uris,
            cas.Cache(cache / "trees"),
            max_size=MAX_MODULE_BYTES + 4_096,
            seconds_per_chunk=TREE_CHUNK_SECONDS,
        )
        pack = cas.open_pack(path)
    except cas.CasError as error:
        raise WorkloadError(f"module fetch failed: {error}") from None
    if [entry.path for entry in pack.entries] != [MODULE_FILE]:
        raise WorkloadError(f"a module tree holds one file, {MODULE_FILE}")
    return pack.read(MODULE_FILE)


# ---------------------------------------------------------------- running


def execute(
    job: Job | bytes,
    module: bytes | None = None,
    *,
    inputs: Path | None = None,
    output_dir: Path | None = None,
    store: Any = None,
    seed: bytes = b"",
    prepared: Path | None = None,
) -> RunResult:
    """Runs a job in this process (the agent runs it in a worker: `computeshare.worker`).
    A wasm job needs its module's bytes unless they are inline or in the catalogue, and the
    pack file of its input tree (`inputs`, fetched and verified: `computeshare.cas`) if it
    names one. Its /output is `output_dir` (a new temporary directory if None) and the pack
    of what the run leaves there goes to `store` (a `cas.Cache`; a temporary one if None);
    `seed` (the job id) seeds `random_get`; `prepared` caches the prepared module."""
    if not isinstance(job, Job):
        job = decode_spec(job)
    if job.workload == "wasm":
        from computeshare import local_run

        spec = job.input
        raw = module if module is not None else resolve_module(spec.module, fetch=False)
        if module_hash(raw) != spec.module.sha256:
            raise WorkloadError("module does not hash to 'module.sha256'")
        if (spec.inputs is None) != (inputs is None):
            raise WorkloadError("the job's input tree and the pack given do not match")
        with tempfile.TemporaryDirectory(prefix="computeshare-run-") as scratch:
            from computeshare import cas

            result, _ = local_run.run_module(
                raw,
                fuel=spec.fuel,
                export=spec.export,
                stdin=job.stdin,
                args=spec.args,
                env=spec.env,
                inputs=inputs,
                output_dir=output_dir or Path(scratch) / "output",
                store=store if store is not None else cas.Cache(Path(scratch) / "store"),
                seed=seed,
                memory_limit=spec.memory_limit,
                output_limit=spec.output_limit,
                prepared=prepared,
            )
        return result
    output = _NATIVE[job.workload](job.input)
    return RunResult(STATUS_OK, job.fuel, output)


def check_module(job: Job, module: bytes, prepared: Path | None = None) -> None:
    """Compiles a wasm job's module, metered for its memory limit, and checks it can run in
    the sandbox (keeping the prepared module in `prepared`, a provider's cache folder, when
    given: the run that follows finds it there)."""
    from computeshare import sandbox

    spec = job.input
    try:
        sandbox.check(module, spec.export, cache_dir=prepared, memory_limit=spec.memory_limit)
    except ModuleError as error:
        raise WorkloadError(str(error)) from None


def result_hash(result: RunResult) -> bytes:
    """What replicas commit to for a run."""
    return result.digest()


def sha256_chain(payload: Sha256ChainInput) -> bytes:
    """`rounds` iterated SHA-256 over the UTF-8 `seed`: a proof-of-work-like hashing chain."""
    digest = payload.seed.encode()
    for _ in range(payload.rounds):
        digest = hashlib.sha256(digest).digest()
    return digest


def matrix_power(payload: MatrixPowerInput) -> bytes:
    """A seeded random n x n integer matrix raised to `power` modulo `modulus` (NumPy, int64:
    entries stay below 2**31 so products never overflow; exact on every machine)."""
    import numpy as np  # only this kernel needs it: workers start faster without

    n, modulus = payload.n, payload.modulus
    rng = np.random.default_rng(payload.seed)
    base = rng.integers(0, modulus, size=(n, n), dtype=np.int64)
    result = np.identity(n, dtype=np.int64)
    for _ in range(payload.power):
        # Each product is reduced before summing: a sum stays below n * modulus < 2**63.
        result = (result[:, :, None] * base[None, :, :] % modulus).sum(axis=1) % modulus
    return result.astype("<i8").tobytes()


_NATIVE = {"sha256-chain": sha256_chain, "matrix-power": matrix_power}


def pack_u64(*values: int) -> bytes:
    """Little-endian u64s: the stdin of the catalogue's hash-chain, monte-carlo modules."""
    return struct.pack(f"<{len(values)}Q", *values)
