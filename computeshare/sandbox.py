"""The WebAssembly sandbox: client code runs here and nowhere else.

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
- one instance, one memory of at most `MAX_MEMORY_BYTES`, one table of at most
  `MAX_TABLE_ELEMENTS`, a native wasm stack of `MAX_STACK_BYTES`;
- no WASI capability but an in-memory stdin (the job's input) and stdout (its output, at
  most `MAX_OUTPUT_BYTES`): the host defines `fd_read` on fd 0, `fd_write` on fd 1 (fd 2 is
  accepted and discarded), `proc_exit`, and empty argument and environment lists. There is
  no clock, randomness, file, socket or environment: a module importing anything else is
  refused before it runs.

A run's result is `RunResult(status, fuel, output)`: a trap, running out of fuel or exiting
non-zero are outcomes like any other, the same on every replica. Replicas commit to
`RunResult.digest()`, which covers all three.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import wasmtime
from Crypto.Hash import keccak as _keccak

from computeshare import metering

STATUS_OK, STATUS_TRAP, STATUS_OUT_OF_FUEL, STATUS_INVALID = 0, 1, 2, 3
STATUS_NAMES = {
    STATUS_OK: "ok",
    STATUS_TRAP: "trap",
    STATUS_OUT_OF_FUEL: "out of fuel",
    STATUS_INVALID: "invalid",
}

MAX_MODULE_BYTES = 1 << 20
MAX_MEMORY_BYTES = 64 << 20
MAX_TABLE_ELEMENTS = 10_000
MAX_STACK_BYTES = metering.NATIVE_STACK_BYTES
MAX_OUTPUT_BYTES = 64 << 10
# Longest output a k = 1 result carries on chain (JobEscrow.submit); longer ones are served.
MAX_ON_CHAIN_OUTPUT = 4_096
# A job's fuel limit: at least an hour of compute at the published floor (4,000 s at
# metering.R_FLOOR = 10**9 fuel a second).
MAX_FUEL = 4 * 10**12
# Host calls are metered like instructions, charged before the host does any work: a fixed
# cost per call and per iovec (what a call costs the host in Python: about 0.2 ms a call,
# measured by scripts/bench_metering.py, at the metering's floor of 2 * 10**9 fuel a
# second), and a cost per byte moved. They are part
# of the cost table (`metering.COST_TABLE_VERSION`).
HOST_CALL_FUEL = 400_000
IOVEC_FUEL = 10_000
BYTE_FUEL = 1
MAX_IOVECS = 1_024

_WASI = "wasi_snapshot_preview1"
_I32 = wasmtime.ValType.i32()
_ERRNO_SUCCESS, _ERRNO_BADF, _ERRNO_FAULT, _ERRNO_INVAL = 0, 8, 21, 28
# (name, params, results) of the only host functions a module may import.
_HOST_FUNCTIONS = {
    "fd_read": ([_I32] * 4, [_I32]),
    "fd_write": ([_I32] * 4, [_I32]),
    "proc_exit": ([_I32], []),
    "args_sizes_get": ([_I32] * 2, [_I32]),
    "args_get": ([_I32] * 2, [_I32]),
    "environ_sizes_get": ([_I32] * 2, [_I32]),
    "environ_get": ([_I32] * 2, [_I32]),
}


class ModuleError(ValueError):
    """The module cannot run here: malformed, too large, or asks for what the sandbox lacks."""


@dataclass(frozen=True)
class RunResult:
    """What a run produced; deterministic for a given module, export, input and fuel limit."""

    status: int
    fuel: int
    output: bytes = b""

    def digest(self) -> bytes:
        """What replicas commit to: keccak256(abi_encode(uint8 status, uint64 fuel,
        bytes32 keccak256(output)))."""
        words = self.status.to_bytes(32, "big") + self.fuel.to_bytes(32, "big")
        return keccak(words + keccak(self.output))

    def to_json(self) -> dict:
        return {"status": self.status, "fuel": self.fuel, "output": self.output.hex()}

    @classmethod
    def from_json(cls, data: dict) -> RunResult:
        return cls(int(data["status"]), int(data["fuel"]), bytes.fromhex(data["output"]))

    @property
    def status_name(self) -> str:
        return STATUS_NAMES.get(self.status, str(self.status))


def keccak(data: bytes) -> bytes:
    return _keccak.new(digest_bits=256, data=data).digest()


def module_hash(module: bytes) -> str:
    """A module's content address: the hex SHA-256 of its bytes."""
    return hashlib.sha256(module).hexdigest()


OPT_LEVELS = ("none", "speed", "speed_and_size")


@functools.cache
def engine(opt_level: str = "speed") -> wasmtime.Engine:
    """The sandbox's engine; every optimisation level gives the same results."""
    config = wasmtime.Config()
    config.consume_fuel = False  # the rewrite meters (computeshare.metering)
    config.cranelift_opt_level = opt_level
    config.cranelift_nan_canonicalization = True
    config.wasm_threads = False
    config.wasm_relaxed_simd = False
    config.wasm_simd = False
    config.wasm_multi_memory = False
    config.wasm_memory64 = False
    config.wasm_gc = False
    config.wasm_function_references = False
    config.wasm_component_model = False
    config.wasm_exceptions = False
    config.wasm_tail_call = False
    config.max_wasm_stack = MAX_STACK_BYTES
    config.parallel_compilation = False
    return wasmtime.Engine(config)


def _func_shape(func_type: wasmtime.FuncType) -> tuple[list[str], list[str]]:
    return [str(t) for t in func_type.params], [str(t) for t in func_type.results]


def check(module_bytes: bytes, export: str, opt_level: str = "speed") -> wasmtime.Module:
    """Compiles the metered module and checks it can run here; raises `ModuleError` if not."""
    return _prepare(module_bytes, export, opt_level)[0]


def _prepare(
    module_bytes: bytes, export: str, opt_level: str = "speed"
) -> tuple[wasmtime.Module, metering.Metered]:
    """Validates the module, meters it and compiles the metered module."""
    if len(module_bytes) > MAX_MODULE_BYTES:
        raise ModuleError(f"module is {len(module_bytes)} bytes; the limit is {MAX_MODULE_BYTES}")
    if export in (metering.FUEL_EXPORT, metering.START_EXPORT):
        raise ModuleError(f"{export!r} is reserved for metering")
    try:
        wasmtime.Module.validate(engine(opt_level), module_bytes)
        metered = metering.meter(module_bytes)
        module = wasmtime.Module(engine(opt_level), metered.module)
    except wasmtime.WasmtimeError as error:
        raise ModuleError(f"not a valid module: {_first_line(error)}") from None
    except metering.MeteringError as error:
        raise ModuleError(f"cannot be metered: {error}") from None
    for imported in module.imports:
        wanted = _HOST_FUNCTIONS.get(imported.name or "")
        if imported.module != _WASI or wanted is None:
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
            limits, most = item.type.limits.min * 65_536, MAX_MEMORY_BYTES
        elif isinstance(item.type, wasmtime.TableType):
            limits, most = item.type.limits.min, MAX_TABLE_ELEMENTS
        if limits is not None and limits > most:
            raise ModuleError(f"{item.name} starts larger than the sandbox allows")
    return module, metered


class _Exit(Exception):
    def __init__(self, code: int):
        self.code = code


class _OutputLimit(Exception):
    pass


class _OutOfFuel(Exception):
    pass


class _Host:
    """The in-memory stdin and stdout of one run."""

    def __init__(self, store: wasmtime.Store, stdin: bytes):
        self.store, self.stdin, self.cursor, self.output = store, stdin, 0, bytearray()
        self.fuel: wasmtime.Global | None = None  # the metering's counter, once instantiated

    def _charge(self, amount: int) -> None:
        """Takes `amount` fuel from the metering's counter; below zero the run stops (out of
        fuel), as the module's own charges do."""
        assert self.fuel is not None, "no host call runs before the fuel is set"
        left = self.fuel.value(self.store) - amount
        self.fuel.set_value(self.store, wasmtime.Val.i64(left))
        if left < 0:
            raise _OutOfFuel

    @staticmethod
    def _memory(caller: wasmtime.Caller) -> wasmtime.Memory | None:
        memory = caller.get("memory")
        return memory if isinstance(memory, wasmtime.Memory) else None

    def _iovecs(self, caller, memory, iovs: int, count: int) -> list[tuple[int, int]] | None:
        """The iovec array, charged for before it is read; None if it lies outside memory."""
        self._charge(HOST_CALL_FUEL + IOVEC_FUEL * max(0, min(count, MAX_IOVECS)))
        size = memory.data_len(caller)
        if count < 0 or count > MAX_IOVECS or iovs < 0 or iovs + 8 * count > size:
            return None
        raw = memory.read(caller, iovs, iovs + 8 * count)
        vectors = []
        for i in range(count):
            start = int.from_bytes(raw[8 * i : 8 * i + 4], "little")
            length = int.from_bytes(raw[8 * i + 4 : 8 * i + 8], "little")
            if start + length > size:
                return None
            vectors.append((start, length))
        return vectors

    def _store_u32(self, caller, memory, address: int, value: int) -> bool:
        if address < 0 or address + 4 > memory.data_len(caller):
            return False
        memory.write(caller, value.to_bytes(4, "little"), address)
        return True

    def fd_read(self, caller, fd: int, iovs: int, count: int, nread: int) -> int:
        memory = self._memory(caller)
        if fd != 0:
            self._charge(HOST_CALL_FUEL)
            return _ERRNO_BADF
        vectors = memory and self._iovecs(caller, memory, iovs, count)
        if vectors is None or memory is None:
            return _ERRNO_FAULT
        total = 0
        for start, length in vectors:
            chunk = self.stdin[self.cursor : self.cursor + length]
            if not chunk:
                break
            memory.write(caller, chunk, start)
            self.cursor += len(chunk)
            total += len(chunk)
        self._charge(total)
        return _ERRNO_SUCCESS if self._store_u32(caller, memory, nread, total) else _ERRNO_FAULT

    def fd_write(self, caller, fd: int, iovs: int, count: int, nwritten: int) -> int:
        memory = self._memory(caller)
        if fd not in (1, 2):
            self._charge(HOST_CALL_FUEL)
            return _ERRNO_BADF
        vectors = memory and self._iovecs(caller, memory, iovs, count)
        if vectors is None or memory is None:
            return _ERRNO_FAULT
        total = sum(length for _, length in vectors)
        if total > MAX_OUTPUT_BYTES:
            # More than stdout may ever hold (and possibly more than the u32 reply holds).
            if fd == 1:
                raise _OutputLimit
            return _ERRNO_INVAL
        if fd == 1:
            if len(self.output) + total > MAX_OUTPUT_BYTES:
                raise _OutputLimit
            for start, length in vectors:
                self.output += memory.read(caller, start, start + length)
        self._charge(total)
        return _ERRNO_SUCCESS if self._store_u32(caller, memory, nwritten, total) else _ERRNO_FAULT

    def proc_exit(self, code: int) -> None:
        raise _Exit(code)

    def empty_list(self, caller, first: int, second: int) -> int:
        """args/environ: sizes (0, 0), and nothing to copy."""
        self._charge(HOST_CALL_FUEL)
        memory = self._memory(caller)
        if memory is None:
            return _ERRNO_FAULT
        stored = self._store_u32(caller, memory, first, 0)
        stored = stored and self._store_u32(caller, memory, second, 0)
        return _ERRNO_SUCCESS if stored else _ERRNO_FAULT


def _linker(host: _Host, opt_level: str = "speed") -> wasmtime.Linker:
    linker = wasmtime.Linker(engine(opt_level))
    handlers = {
        "fd_read": host.fd_read,
        "fd_write": host.fd_write,
        "proc_exit": lambda caller, code: host.proc_exit(code),
        "args_sizes_get": host.empty_list,
        "args_get": host.empty_list,
        "environ_sizes_get": host.empty_list,
        "environ_get": host.empty_list,
    }
    for name, (params, results) in _HOST_FUNCTIONS.items():
        func_type = wasmtime.FuncType(params, results)
        linker.define_func(_WASI, name, func_type, handlers[name], access_caller=True)
    return linker


def run(
    module_bytes: bytes, export: str, stdin: bytes, fuel: int, *, opt_level: str = "speed"
) -> RunResult:
    """Runs `export` of the module on `stdin` with at most `fuel` fuel. The result does not
    depend on `opt_level` (Cranelift's), which tests vary."""
    if not 0 < fuel <= MAX_FUEL:
        raise ModuleError(f"fuel must be in [1, {MAX_FUEL}]")
    try:
        module, metered = _prepare(module_bytes, export, opt_level)
    except ModuleError:
        return RunResult(STATUS_INVALID, 0)
    return _execute(module, metered, export, stdin, fuel, opt_level)


def _execute(
    module: wasmtime.Module,
    metered: metering.Metered,
    export: str,
    stdin: bytes,
    fuel: int,
    opt_level: str = "speed",
) -> RunResult:
    """Runs a prepared (metered, compiled) module: `run` without the compilation."""
    if metered.setup_fuel > fuel:  # the initial memory and tables cost more than the limit
        return RunResult(STATUS_OUT_OF_FUEL, fuel)
    store = wasmtime.Store(engine(opt_level))
    store.set_limits(
        memory_size=MAX_MEMORY_BYTES,
        table_elements=MAX_TABLE_ELEMENTS,
        instances=1,
        tables=1,
        memories=1,
    )
    host = _Host(store, stdin)
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
    host.fuel = counter
    status = STATUS_OK
    try:
        if metered.has_start:
            exports[metering.START_EXPORT](store)
        exports[export](store)
    except _Exit as exit_:
        status = STATUS_OK if exit_.code == 0 else STATUS_TRAP
    except (_OutputLimit, _OutOfFuel, wasmtime.Trap, wasmtime.WasmtimeError):
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
