"""The WebAssembly sandbox: client code runs here and nowhere else.

Why one module: every bound below (engine settings, memory tiers, table and stack limits,
fuel, the prepared-module cache keyed by all of them) is decided where a module is compiled
and enforced where it runs; kept together, a bound cannot be set in one place and missed in
the other.

A module runs on wasmtime with an engine set for determinism and containment:

- fuel is metered by rewriting the module (`computeshare.metering`, cost table
  `COST_TABLE_VERSION`): every region of code charges its costliest path's worst-case
  costs up front, memory and table growth and bulk instructions per page, element or byte, host
  calls from the same counter; a run stops when its fuel limit is spent, and the fuel used
  is exact at any trap, on any engine and optimisation level (wasmtime's own fuel is off);
- the call stack is bounded by the metering's frame count (`STACK_BUDGET`), which always
  trips before wasmtime's native stack limit;
- NaN canonicalisation on; threads, relaxed SIMD, SIMD, multi-memory, memory64, GC, the
  component model and exceptions off (nothing whose result may differ between machines);
- one instance, one memory of at most the job's memory limit (`MAX_MEMORY_LIMIT`, 4 GiB, at
  most; loads and stores are priced by its tier), one table of at most
  `MAX_TABLE_ELEMENTS`, a native wasm stack of `MAX_STACK_BYTES` (16 MiB), on a thread of
  its own with room for it (`on_wasm_stack`);
- WASI preview1 (`computeshare.wasi`), every function of it, deterministic: the
  arguments (`["job", *args]`) and environment the job gives; virtual clocks reading the
  fuel used so far (1 fuel = 1 ns at the metering floor) from a fixed epoch
  (2025-01-01T00:00:00Z); a random stream seeded by the job (SHAKE-256, not secret);
  stdin (the job's input), stdout (its output, at most `MAX_OUTPUT_BYTES`) and a discarded
  stderr; three preopened directories: `/input` (read-only files served from byte ranges
  of host files), `/output` (real files under an empty host directory the caller gives,
  under a byte quota and a file-count limit) and `/tmp` (in memory, under a quota).
  Directory listings are sorted; `poll_oneoff` never waits (a sleep moves virtual time).
- Refused, with an errno: absolute paths and `..` above a preopen (ENOTCAPABLE), writes
  to /input (EROFS), anything past a quota (ENOSPC), symlinks and hard links (ENOTSUP; none
  exist), renames across preopens (EXDEV), sockets (ENOTSUP); `proc_raise` traps. A module
  importing anything outside `wasi_snapshot_preview1` (or a preview1 name with another
  type) is refused before it runs.

Preparing a module (validating, metering, compiling) takes seconds a megabyte: with a
`cache_dir`, `run`, `check` and `prepare_cached` keep the compiled metered module in a
`PreparedCache` of the provider's and load it from there next time (`prepare_seconds` is
what a first preparation may take).

A run's result is `RunResult(status, fuel, output)` and the files it left in its output
directory: a trap, running out of fuel or exiting non-zero are outcomes like any other, the
same on every replica. Replicas commit to `RunResult.digest()`, which covers all three (the
output tree is committed by its pack root, `computeshare.cas`). A failure of the host's
own files raises `HostError`: no result.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import importlib.metadata
import json
import os
import secrets
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import wasmtime
from Crypto.Hash import keccak as _keccak

from computeshare import metering, wasi

STATUS_OK, STATUS_TRAP, STATUS_OUT_OF_FUEL, STATUS_INVALID = 0, 1, 2, 3
STATUS_NAMES = {
    STATUS_OK: "ok",
    STATUS_TRAP: "trap",
    STATUS_OUT_OF_FUEL: "out of fuel",
    STATUS_INVALID: "invalid",
}

# Metering and compiling take about 2 to 4 us and 3 to 5 us a byte of dense code (a
# generated 3.65 MB C module: 14.4 s and 10.4 s on the reference machine; scripts/
# bench_metering.py), far past the agent's 10 s check for a large module: a provider allows
# `prepare_seconds(size)` for a module it has not prepared, and keeps prepared modules in its
# cache (`PreparedCache`), from which a 2 MB module loads in about 25 ms.
MAX_MODULE_BYTES = 64 << 20
PREPARE_BASE_SECONDS = 2.0
PREPARE_SECONDS_PER_BYTE = 20e-6  # measured 4 to 8 us a byte here (loaded), times 2.5 and more
# The cost table prices a load as a cache and TLB miss over the job's whole memory, by its
# memory limit's tier (`metering.CostTable.memory_tiers`): a dependent pointer chase over a
# tier's largest memory (scripts/bench_metering.py, CPU time, a machine shared with others)
# takes about 250 ns a load over 256 MiB, 340 to 390 ns over 1 GiB and 410 to 455 ns over
# 4 GiB, and each tier's price (3,200, 5,000, 5,800) keeps it at least 1.5 times above
# R_FLOOR = 7 * 10**9 (`metering.R_FLOOR`).
# A job may declare any memory
# limit up to wasm32's 4 GiB (65,536 pages); wasmtime's default reservation for a 32-bit
# memory (4 GiB of address space and guard pages, backed only as pages are touched) holds it.
MAX_MEMORY_LIMIT = 4 << 30
# The largest memory of the first price tier, and the most a provider's policy accepts unless
# it opts in to more (`agent.Policy.max_memory_bytes`): a job's memory is the provider's RAM.
MAX_MEMORY_BYTES = 256 << 20
# A job's memory limit when its spec names none (`workloads.WasmInput.memory_limit`).
DEFAULT_MEMORY_BYTES = 64 << 20
MAX_TABLE_ELEMENTS = 10_000
MAX_STACK_BYTES = metering.NATIVE_STACK_BYTES
# Module code runs on a thread of this much native stack (`on_wasm_stack`): the wasm stack
# (`MAX_STACK_BYTES`, 16 MiB, past a main thread's usual 8 MiB) and 8 MiB for what lies
# around it (the caller's frames above, the host calls' Python frames below the deepest
# wasm frame). Reserved address space, backed only as it is touched.
THREAD_STACK_BYTES = MAX_STACK_BYTES + (8 << 20)
MAX_OUTPUT_BYTES = wasi.MAX_OUTPUT_BYTES
# Longest output a k = 1 result carries on chain (JobEscrow.submit); longer ones are served.
MAX_ON_CHAIN_OUTPUT = 4_096
# A job's fuel limit: 2.1 * 10**15, 300,000 s (83 hours) of the worst-case compute at
# metering.R_FLOOR = 7 * 10**9 fuel a second, the most whose run (`workloads.run_seconds`:
# the worker's start-up plus twice the fuel's time at the floor, 600,060 s) and commitment
# fit JobEscrow's default MAX_JOB_DURATION of 7 days (604,800 s). Real programs burn fuel
# faster than the floor (a catalogue kernel 1.5 to 3 * 10**10 a second, zlib over text
# 1.7 * 10**12), so a job at this limit computes for 19 to 39 hours of a kernel and 20
# minutes of zlib. (Version 2's floor was 10**9 and its limit 3 * 10**14, the same 300,000 s.)
MAX_FUEL = 21 * 10**14
# Host calls' prices (part of the cost table, `metering.COST_TABLE_VERSION`): see
# `computeshare.wasi`.
HOST_CALL_FUEL = wasi.HOST_CALL_FUEL
IOVEC_FUEL = wasi.IOVEC_FUEL
BYTE_FUEL = wasi.BYTE_FUEL
MAX_IOVECS = wasi.MAX_IOVECS
HostError = wasi.HostError
T = TypeVar("T")


class ModuleError(ValueError):
    """The module cannot run here: malformed, too large, or asks for what the sandbox lacks."""


TREE_DOMAIN = b"computeshare-tree"


@dataclass(frozen=True)
class RunResult:
    """What a run produced; deterministic for a given module, export, input, memory limit (its
    tier) and fuel limit:
    its status, the fuel it used, its stdout and, when it left files in /output, the Merkle
    root of their pack (`computeshare.cas`)."""

    status: int
    fuel: int
    output: bytes = b""
    output_root: bytes = b""

    def output_hash(self) -> bytes:
        """The hash JobEscrow holds for the output: keccak256(stdout) when /output was left
        empty (so a short stdout can travel in the event and be checked there), else
        keccak256("computeshare-tree" || keccak256(stdout) || output root)."""
        if not self.output_root:
            return keccak(self.output)
        return keccak(TREE_DOMAIN + keccak(self.output) + self.output_root)

    def digest(self) -> bytes:
        """What replicas commit to: keccak256(abi_encode(uint8 status, uint64 fuel,
        bytes32 output_hash))."""
        words = self.status.to_bytes(32, "big") + self.fuel.to_bytes(32, "big")
        return keccak(words + self.output_hash())

    def to_json(self) -> dict:
        data = {"status": self.status, "fuel": self.fuel, "output": self.output.hex()}
        if self.output_root:
            data["output_root"] = self.output_root.hex()
        return data

    @classmethod
    def from_json(cls, data: dict) -> RunResult:
        root = bytes.fromhex(data.get("output_root") or "")
        if root and len(root) != 32:
            raise ValueError("output_root is not 32 bytes")
        return cls(int(data["status"]), int(data["fuel"]), bytes.fromhex(data["output"]), root)

    @property
    def status_name(self) -> str:
        return STATUS_NAMES.get(self.status, str(self.status))


def keccak(data: bytes) -> bytes:
    return _keccak.new(digest_bits=256, data=data).digest()


def module_hash(module: bytes) -> str:
    """A module's content address: the hex SHA-256 of its bytes."""
    return hashlib.sha256(module).hexdigest()


OPT_LEVELS = ("none", "speed", "speed_and_size")


# The engine's settings besides the optimisation level (part of the prepared-module cache's
# key: a compiled module only runs on an engine configured alike).
ENGINE_SETTINGS = {
    "consume_fuel": False,  # the rewrite meters (computeshare.metering)
    "cranelift_nan_canonicalization": True,
    "wasm_threads": False,
    "wasm_relaxed_simd": False,
    "wasm_simd": False,
    "wasm_multi_memory": False,
    "wasm_memory64": False,
    "wasm_gc": False,
    "wasm_function_references": False,
    "wasm_component_model": False,
    "wasm_exceptions": False,
    "wasm_tail_call": False,
    "max_wasm_stack": MAX_STACK_BYTES,
    # wasmtime refuses a `max_wasm_stack` past this (async support stays off); wasmtime-py's
    # Config does not wrap it, `engine` sets it through the C API.
    "async_stack_size": MAX_STACK_BYTES,
    "parallel_compilation": False,
}


@functools.cache
def engine(opt_level: str = "speed") -> wasmtime.Engine:
    """The sandbox's engine; every optimisation level gives the same results."""
    config = wasmtime.Config()
    config.cranelift_opt_level = opt_level
    for name, value in ENGINE_SETTINGS.items():
        if name == "async_stack_size":
            wasmtime._bindings.wasmtime_config_async_stack_size_set(config.ptr(), value)
        else:
            setattr(config, name, value)
    return wasmtime.Engine(config)


_STACK_SIZE_LOCK = threading.Lock()


def on_wasm_stack(function: Callable[..., T], *args) -> T:
    """`function(*args)` on a new thread with `THREAD_STACK_BYTES` of native stack; returns
    its value or raises its exception. Every call into a sandboxed module's code goes
    through here: the engine lets wasm use `MAX_STACK_BYTES` of native stack, and only a
    stack this large makes wasmtime's overflow check (and, before it, the metering's
    counted budget) the limit rather than the thread's guard page."""
    outcome: list = []

    def target() -> None:
        try:
            outcome.append((True, function(*args)))
        except BaseException as error:  # handed to the caller
            outcome.append((False, error))

    with _STACK_SIZE_LOCK:  # the size is process-wide; set only for this thread's start
        previous = threading.stack_size(THREAD_STACK_BYTES)
        try:
            thread = threading.Thread(target=target, name="computeshare-wasm", daemon=True)
            thread.start()
        finally:
            threading.stack_size(previous)
    thread.join()
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _func_shape(func_type: wasmtime.FuncType) -> tuple[list[str], list[str]]:
    return [str(t) for t in func_type.params], [str(t) for t in func_type.results]


def check(
    module_bytes: bytes,
    export: str,
    opt_level: str = "speed",
    *,
    cache_dir: Path | str | None = None,
    memory_limit: int = DEFAULT_MEMORY_BYTES,
) -> wasmtime.Module:
    """Compiles the module metered for `memory_limit` (its loads' tier) and checks it can run
    here; raises `ModuleError` if not. With `cache_dir`, the prepared module is kept there
    for later checks and runs (`prepare_cached`)."""
    return _prepare(module_bytes, export, opt_level, cache_dir, memory_tier(memory_limit))[0]


def memory_tier(memory_limit: int) -> int:
    """The cost table's memory tier of a job's memory limit (`ModuleError` outside
    [65536, `MAX_MEMORY_LIMIT`]): part of how its module is metered and cached."""
    if isinstance(memory_limit, bool) or not 65_536 <= memory_limit <= MAX_MEMORY_LIMIT:
        raise ModuleError(f"memory_limit must be in [65536, {MAX_MEMORY_LIMIT}]")
    return metering.COSTS.tier(memory_limit)


def prepare_seconds(module_size: int) -> float:
    """Seconds to allow for preparing (validating, metering, compiling) a module of
    `module_size` bytes that is not in the cache: `PREPARE_BASE_SECONDS` plus
    `PREPARE_SECONDS_PER_BYTE` a byte, the measured rates with a margin. A provider's check
    of a module takes `max(agent.CHECK_SECONDS, prepare_seconds(len(module)))`; once the
    module is in its cache (`prepare_cached`), a run prepares it in a fraction of that."""
    return PREPARE_BASE_SECONDS + PREPARE_SECONDS_PER_BYTE * max(0, module_size)


def _prepare(
    module_bytes: bytes,
    export: str,
    opt_level: str = "speed",
    cache_dir: Path | str | None = None,
    tier: int = 0,
) -> tuple[wasmtime.Module, metering.Metered]:
    """Validates the module, meters it for memory tier `tier` and compiles the metered module
    (or loads all that from `cache_dir`), and checks it can run here."""
    if len(module_bytes) > MAX_MODULE_BYTES:
        raise ModuleError(f"module is {len(module_bytes)} bytes; the limit is {MAX_MODULE_BYTES}")
    if export in (metering.FUEL_EXPORT, metering.START_EXPORT):
        raise ModuleError(f"{export!r} is reserved for metering")
    if cache_dir is None:
        module, metered = _compile(module_bytes, opt_level, tier)
    else:
        module, metered = PreparedCache(cache_dir).prepare(module_bytes, opt_level, tier)
    _check_interface(module, export)
    return module, metered


def prepare_cached(
    module_bytes: bytes,
    export: str,
    cache_dir: Path | str,
    opt_level: str = "speed",
    memory_limit: int = DEFAULT_MEMORY_BYTES,
) -> tuple[wasmtime.Module, metering.Metered]:
    """The compiled module metered for `memory_limit` and its `Metered` record (without the
    metered bytes), from the prepared-module cache in `cache_dir` when this machine put it
    there, else prepared and put there; raises `ModuleError` as `check` does, `HostError`
    when the directory is not the provider's own."""
    return _prepare(module_bytes, export, opt_level, cache_dir, memory_tier(memory_limit))


def _compile(
    module_bytes: bytes, opt_level: str, tier: int = 0
) -> tuple[wasmtime.Module, metering.Metered]:
    try:
        wasmtime.Module.validate(engine(opt_level), module_bytes)
        metered = metering.meter(module_bytes, tier=tier)
        module = wasmtime.Module(engine(opt_level), metered.module)
    except wasmtime.WasmtimeError as error:
        raise ModuleError(f"not a valid module: {_first_line(error)}") from None
    except metering.MeteringError as error:
        raise ModuleError(f"cannot be metered: {error}") from None
    return module, metered


def _check_interface(module: wasmtime.Module, export: str) -> None:
    for imported in module.imports:
        wanted = wasi.FUNCTIONS.get(imported.name or "")
        if imported.module != wasi.MODULE or wanted is None:
            raise ModuleError(f"imports {imported.module}.{imported.name}, which the sandbox lacks")
        if not isinstance(imported.type, wasmtime.FuncType) or _func_shape(imported.type) != (
            [str(t) for t in wanted[0]],
            [str(t) for t in wanted[1]],
        ):
            raise ModuleError(f"imports {imported.name} with the wrong type")
    exports = {item.name: item.type for item in module.exports}
    func_type = exports.get(export)
    if not isinstance(func_type, wasmtime.FuncType) or _func_shape(func_type) != ([], []):
        raise ModuleError(f"exports no function {export!r} taking and returning nothing")
    for item in module.exports:
        limits = None
        if isinstance(item.type, wasmtime.MemoryType):
            limits, most = item.type.limits.min * 65_536, MAX_MEMORY_LIMIT
        elif isinstance(item.type, wasmtime.TableType):
            limits, most = item.type.limits.min, MAX_TABLE_ELEMENTS
        if limits is not None and limits > most:
            raise ModuleError(f"{item.name} starts larger than the sandbox allows")


CACHE_MAGIC = b"computeshare-prepared-1\n"
CACHE_KEY_FILE = "key"
# A cache entry larger than this is refused unread (compiled code is a few times the module).
MAX_CACHE_ENTRY_BYTES = 16 * (64 << 20)


class PreparedCache:
    """The prepared-module cache: a directory of the provider's own (mode 0700, owned by the
    running user; anything else is refused with `HostError`) holding, per module, metering
    cost table and memory tier (a load's price), wasmtime version and engine settings
    (`ENGINE_SETTINGS`, the optimisation level), the fields of `Metered` a run needs and
    wasmtime's serialized compiled module.

    Deserializing compiled code trusts it as native code, so an entry is only ever
    deserialized after its HMAC-SHA256 checks under the directory's own secret key (32
    random bytes in `key`, mode 0600, made with the directory): an entry not written by a
    process holding that key (copied from elsewhere, altered, truncated, or another module's
    renamed) is refused, deleted and rebuilt. Entries are written to a temporary file and
    renamed into place, so a reader sees a whole entry or none.

    An entry's file, `<sha256 of its key>.bin`: `CACHE_MAGIC`, the 32-byte MAC of what
    follows, a 4-byte big-endian header length, the header (JSON: its key, `setup_fuel`,
    `has_start`, `functions`, `weights`, `tier`) and the serialized module."""

    def __init__(self, directory: Path | str):
        self.directory = Path(directory)
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = os.lstat(self.directory)
        except OSError as error:
            raise HostError(f"cache directory {self.directory}: {error.strerror}") from None
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise HostError(f"cache directory {self.directory} is not a directory of this user")
        if info.st_mode & 0o077:
            raise HostError(
                f"cache directory {self.directory} is open to others "
                f"(mode {stat.S_IMODE(info.st_mode):o}; it must be 700)"
            )
        self._secret = self._key()

    def _key(self) -> bytes:
        path = self.directory / CACHE_KEY_FILE
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as file:
                file.write(secrets.token_bytes(32))
        key = self._read(path, 32)
        if key is None or len(key) != 32:
            raise HostError(f"cache key {path} is not a 32-byte file of this user")
        return key

    @staticmethod
    def _read(path: Path, most: int) -> bytes | None:
        """The file's bytes when it is a regular file of this user, no larger than `most`."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
                return None
            if info.st_size > most or info.st_mode & 0o077:
                return None
            return file.read(most + 1)

    @staticmethod
    def key(module_bytes: bytes, opt_level: str, tier: int = 0) -> str:
        """What an entry is for: the module, the cost table and memory tier it is metered
        for, wasmtime and its settings. The first tier's key names no tier: it is the key
        entries had before the tiers, for the same metered module, so they stay valid."""
        key = {
            "module": module_hash(module_bytes),
            "cost_table": metering.COST_TABLE_VERSION,
            "wasmtime": importlib.metadata.version("wasmtime"),
            "opt_level": opt_level,
            "engine": ENGINE_SETTINGS,
        }
        if tier:
            key["memory_tier"] = tier
        return json.dumps(key, sort_keys=True, separators=(",", ":"))

    def path(self, key: str) -> Path:
        return self.directory / f"{hashlib.sha256(key.encode()).hexdigest()}.bin"

    def _mac(self, body: bytes) -> bytes:
        return hmac.new(self._secret, body, hashlib.sha256).digest()

    def load(self, key: str, opt_level: str) -> tuple[wasmtime.Module, metering.Metered] | None:
        """The entry for `key`, or None when there is none or it fails its checks (it is
        then deleted)."""
        path = self.path(key)
        data = self._read(path, MAX_CACHE_ENTRY_BYTES)
        if data is None:
            return None
        loaded = self._decode(data, key, opt_level)
        if loaded is None:
            path.unlink(missing_ok=True)
        return loaded

    def _decode(
        self, data: bytes, key: str, opt_level: str
    ) -> tuple[wasmtime.Module, metering.Metered] | None:
        start = len(CACHE_MAGIC) + 32
        if len(data) < start + 4 or not data.startswith(CACHE_MAGIC):
            return None
        body = memoryview(data)[start:]
        if not hmac.compare_digest(data[len(CACHE_MAGIC) : start], self._mac(body)):
            return None
        size = int.from_bytes(body[:4], "big")
        try:
            header = json.loads(bytes(body[4 : 4 + size]))
            if header["key"] != key:
                return None
            metered = metering.Metered(
                b"",
                int(header["setup_fuel"]),
                bool(header["has_start"]),
                int(header["functions"]),
                tuple(int(w) for w in header["weights"]),
                int(header.get("tier", 0)),
            )
            module = wasmtime.Module.deserialize(engine(opt_level), bytes(body[4 + size :]))
        except (ValueError, KeyError, TypeError, wasmtime.WasmtimeError):
            return None
        return module, metered

    def store(self, key: str, module: wasmtime.Module, metered: metering.Metered) -> None:
        header = json.dumps(
            {
                "key": key,
                "setup_fuel": metered.setup_fuel,
                "has_start": metered.has_start,
                "functions": metered.functions,
                "weights": list(metered.weights),
                "tier": metered.tier,
            },
            separators=(",", ":"),
        ).encode()
        body = len(header).to_bytes(4, "big") + header + module.serialize()
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".entry-")
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(CACHE_MAGIC + self._mac(body) + body)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path(key))
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def prepare(
        self, module_bytes: bytes, opt_level: str = "speed", tier: int = 0
    ) -> tuple[wasmtime.Module, metering.Metered]:
        """The cached entry for memory tier `tier`, or the module prepared now (`ModuleError`
        if it cannot be) and cached; a full disk leaves it uncached."""
        key = self.key(module_bytes, opt_level, tier)
        loaded = self.load(key, opt_level)
        if loaded is not None and loaded[1].tier == tier:
            return loaded
        module, metered = _compile(module_bytes, opt_level, tier)
        with contextlib.suppress(OSError):
            self.store(key, module, metered)
        return module, metered


_Host = wasi.Host


def _linker(host: wasi.Host, opt_level: str = "speed") -> wasmtime.Linker:
    return host.linker(engine(opt_level))


def run(
    module_bytes: bytes,
    export: str,
    stdin: bytes,
    fuel: int,
    *,
    args: Sequence[str] = (),
    env: Iterable[tuple[str, str]] = (),
    inputs: Mapping[str, tuple[Path | str, int, int]] | None = None,
    output_dir: Path | str | None = None,
    output_quota: int = wasi.DEFAULT_OUTPUT_QUOTA,
    seed: bytes = b"",
    memory_limit: int = DEFAULT_MEMORY_BYTES,
    opt_level: str = "speed",
    cache_dir: Path | str | None = None,
) -> RunResult:
    """Runs `export` of the module on `stdin` with at most `fuel` fuel, with the WASI
    arguments, environment, /input files (relative path -> (host file, offset, size)),
    /output directory (an empty host directory; the files the run leaves there are part of
    its result) and random seed given. The result does not depend on `opt_level`
    (Cranelift's), which tests vary; nor on `cache_dir`, the prepared-module cache
    (`PreparedCache`) it is taken from and put in. Raises `ValueError` for a bad argument (not the
    module's fault) and `HostError` when the host's own files fail."""
    if not 0 < fuel <= MAX_FUEL:
        raise ModuleError(f"fuel must be in [1, {MAX_FUEL}]")
    tier = memory_tier(memory_limit)
    host_config = {
        "args": args,
        "env": env,
        "inputs": inputs,
        "output_dir": output_dir,
        "output_quota": output_quota,
        "seed": seed,
    }
    try:
        module, metered = _prepare(module_bytes, export, opt_level, cache_dir, tier)
    except ModuleError:
        return RunResult(STATUS_INVALID, 0)
    return _execute(
        module, metered, export, stdin, fuel, opt_level, memory_limit=memory_limit, **host_config
    )


def _execute(
    module: wasmtime.Module,
    metered: metering.Metered,
    export: str,
    stdin: bytes,
    fuel: int,
    opt_level: str = "speed",
    memory_limit: int = DEFAULT_MEMORY_BYTES,
    **host_config,
) -> RunResult:
    """Runs a prepared (metered for `memory_limit`'s tier, compiled) module: `run` without the
    compilation. The store is closed on return, releasing the run's memory at once: the
    store and its host functions hold each other, and Python's collector, blind to gigabytes
    held outside its heap, would keep several runs' memories alive (a few 4 GiB runs in one
    process ran a 23 GiB machine out of memory)."""
    store = wasmtime.Store(engine(opt_level))
    host = wasi.Host(store, stdin, **host_config)
    try:
        return _run_instance(host, store, module, metered, export, fuel, opt_level, memory_limit)
    finally:
        host.close()
        store.close()


def _run_instance(
    host: wasi.Host,
    store: wasmtime.Store,
    module: wasmtime.Module,
    metered: metering.Metered,
    export: str,
    fuel: int,
    opt_level: str,
    memory_limit: int = MAX_MEMORY_BYTES,
) -> RunResult:
    if metered.tier != memory_tier(memory_limit):  # the host's mistake, never the module's
        raise ValueError(f"a module metered for memory tier {metered.tier} run at {memory_limit}")
    if metered.setup_fuel > fuel:  # the initial memory and tables cost more than the limit
        return RunResult(STATUS_OUT_OF_FUEL, fuel)
    store.set_limits(
        memory_size=memory_limit,
        table_elements=MAX_TABLE_ELEMENTS,
        instances=1,
        tables=1,
        memories=1,
    )
    try:
        # Instantiating runs no module code: the metering exports the start function.
        instance = _linker(host, opt_level).instantiate(store, module)
    except (wasmtime.WasmtimeError, wasmtime.Trap):
        # e.g. a data segment out of bounds, or memory past the store's limits: the module's
        # own fault, and it cost its setup.
        return RunResult(STATUS_TRAP, metered.setup_fuel)
    exports = instance.exports(store)
    counter = exports[metering.FUEL_EXPORT]
    assert isinstance(counter, wasmtime.Global)
    counter.set_value(store, wasmtime.Val.i64(fuel - metered.setup_fuel))
    host.fuel, host.limit = counter, fuel
    memory = exports.get("memory")
    host.memory = memory if isinstance(memory, wasmtime.Memory) else None
    status = STATUS_OK

    def call() -> None:
        if metered.has_start:
            exports[metering.START_EXPORT](store)
        exports[export](store)

    try:
        on_wasm_stack(call)
    except wasi.Exit as exit_:
        status = STATUS_OK if exit_.code == 0 else STATUS_TRAP
    except wasi.HostError:
        raise
    except (wasi.OutputLimit, wasi.OutOfFuel, wasi.Raised, wasmtime.Trap, wasmtime.WasmtimeError):
        status = STATUS_TRAP  # out of fuel when the counter is below zero: below
    except Exception:  # a host call failed on the module's arguments
        # Deterministic for a given module and input, like a trap: never a worker crash,
        # which would leave an accepted job without a result.
        status = STATUS_TRAP
    left = counter.value(store)
    if left < 0:  # a charge found the fuel short and trapped at once
        return RunResult(STATUS_OUT_OF_FUEL, fuel, bytes(host.output))
    return RunResult(status, fuel - left, bytes(host.output))


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
