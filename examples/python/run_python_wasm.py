"""Run the wasm32-wasi CPython built by build-cpython.sh on wasmtime-py's own WASI.

    python examples/python/run_python_wasm.py DIST [--dir HOST::GUEST ...]
        [--rw-dir HOST::GUEST ...] [--env NAME=VALUE ...]
        [--imports | --probe | --metered | --bench N] -- ARGS...

DIST is the build's dist/ folder (python.wasm and lib/python3.11). The stdlib is preopened
read-only at /usr/local/lib/python3.11, where the interpreter (prefix /usr/local) looks
for it; each --dir preopens one more host folder read-only, each --rw-dir one writable.
ARGS go to the interpreter as its argv after "python". --imports lists the module's
imports instead of running it; --probe runs ARGS once per import with that import trapping
and lists those the run cannot do without; --metered runs the module as rewritten by the
sandbox's fuel metering (computeshare.metering; PYTHONPATH=the repo) and prints the fuel
its code used; --bench N times N runs and prints the compile time, the module size, the
median run time and the linear memory's final size.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import wasmtime

STDLIB_GUEST = "/usr/local/lib/python3.11"
ENV: list[tuple[str, str]] = []  # more guest environment (--env NAME=VALUE)


def compile_module(engine: wasmtime.Engine, wasm: Path) -> tuple[wasmtime.Module, float]:
    started = time.perf_counter()
    module = wasmtime.Module.from_file(engine, str(wasm))
    return module, time.perf_counter() - started


def _wasi(stdlib: Path, argv: list[str], dirs: list[tuple[str, str, bool]]) -> wasmtime.WasiConfig:
    """The guest's WASI: argv, the environment, stdio inherited, the stdlib read-only at
    STDLIB_GUEST and the --dir/--rw-dir folders."""
    wasi = wasmtime.WasiConfig()
    wasi.argv = ["python", *argv]
    wasi.env = [("PYTHONDONTWRITEBYTECODE", "1"), *ENV]
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    wasi.inherit_stdin()
    wasi.preopen_dir(str(stdlib), STDLIB_GUEST, False)
    for host, guest, writable in dirs:
        wasi.preopen_dir(host, guest, writable)
    return wasi


class _Blocked(Exception):
    pass


def run(
    engine: wasmtime.Engine,
    module: wasmtime.Module,
    stdlib: Path,
    argv: list[str],
    dirs: list[tuple[str, str, bool]],
    blocked: wasmtime.ImportType | None = None,
) -> tuple[int, int]:
    """One run of the interpreter in a fresh store; returns its exit code and the size its
    linear memory grew to."""
    store = wasmtime.Store(engine)
    store.set_wasi(_wasi(stdlib, argv, dirs))
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    if blocked is not None:
        linker.allow_shadowing = True
        assert isinstance(blocked.type, wasmtime.FuncType)
        linker.define_func(blocked.module, blocked.name or "", blocked.type, _block)
    instance = linker.instantiate(store, module)
    exports = instance.exports(store)
    start, memory = exports["_start"], exports["memory"]
    assert isinstance(start, wasmtime.Func) and isinstance(memory, wasmtime.Memory)
    code = 0
    try:
        start(store)
    except wasmtime.ExitTrap as exit_trap:
        code = exit_trap.code
    return code, memory.data_len(store)


def run_metered(
    engine: wasmtime.Engine,
    wasm: Path,
    stdlib: Path,
    argv: list[str],
    dirs: list[tuple[str, str, bool]],
) -> tuple[int, int, float]:
    """Runs the module rewritten by computeshare.metering (the sandbox's fuel metering) on the
    same WASI; returns the exit code, the fuel the module's own code used (host calls, which
    the sandbox also charges, are not counted) and the metering's time."""
    try:
        from computeshare import metering, sandbox
    except ImportError:
        raise SystemExit("error: --metered needs the repo on PYTHONPATH (computeshare)") from None

    started = time.perf_counter()
    metered = metering.meter(wasm.read_bytes())
    meter_seconds = time.perf_counter() - started
    module = wasmtime.Module(engine, metered.module)
    store = wasmtime.Store(engine)
    store.set_wasi(_wasi(stdlib, argv, dirs))
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    exports = linker.instantiate(store, module).exports(store)
    counter = exports[metering.FUEL_EXPORT]
    assert isinstance(counter, wasmtime.Global)
    limit = sandbox.MAX_FUEL - metered.setup_fuel
    counter.set_value(store, wasmtime.Val.i64(limit))
    code = 0
    try:
        if metered.has_start:
            exports[metering.START_EXPORT](store)  # type: ignore[operator]
        exports["_start"](store)  # type: ignore[operator]
    except wasmtime.ExitTrap as exit_trap:
        code = exit_trap.code
    fuel = metered.setup_fuel + limit - int(counter.value(store))  # type: ignore[arg-type]
    return code, fuel, meter_seconds


def _block(*_args: object) -> None:
    raise _Blocked


def probe(
    engine: wasmtime.Engine,
    module: wasmtime.Module,
    stdlib: Path,
    argv: list[str],
    dirs: list[tuple[str, str, bool]],
) -> list[str]:
    """The imports a run calls: runs it once per import with that import trapping, and keeps
    those whose trap stops the run or changes its exit code."""
    expected = run(engine, module, stdlib, argv, dirs)[0]
    needed = []
    for item in module.imports:
        try:
            code = run(engine, module, stdlib, argv, dirs, blocked=item)[0]
        except (_Blocked, wasmtime.Trap):  # wasmtime-py re-raises a host function's exception
            code = None
        if code != expected:
            needed.append(f"{item.module}.{item.name}")
    return needed


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive count, got {text!r}")
    return int(text)


def parse_env(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def parse_dir(text: str) -> tuple[str, str]:
    host, sep, guest = text.partition("::")
    if not sep or not host or not guest.startswith("/"):
        raise argparse.ArgumentTypeError(f"expected HOST::/GUEST, got {text!r}")
    if not Path(host).is_dir():
        raise argparse.ArgumentTypeError(f"not a folder: {host}")
    return host, guest


def main() -> int:
    try:
        return _main()
    except (wasmtime.Trap, wasmtime.WasmtimeError) as error:
        # A trap's cause is its last line (after the backtrace); a compile error's its first.
        lines = str(error).strip().splitlines() or [type(error).__name__]
        cause = (lines[-1] if isinstance(error, wasmtime.Trap) else lines[0]).strip()
        print(f"error: {cause}", file=sys.stderr)
        return 1


def _main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dist", type=Path)
    parser.add_argument("--dir", type=parse_dir, action="append", default=[])
    parser.add_argument("--rw-dir", type=parse_dir, action="append", default=[])
    parser.add_argument("--env", type=parse_env, action="append", default=[])
    parser.add_argument("--imports", action="store_true")
    parser.add_argument("--probe", action="store_true")
    parser.add_argument("--metered", action="store_true")
    parser.add_argument("--bench", type=_positive, default=0)
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    options = parser.parse_args(argv[:split])
    options.args = argv[split + 1 :]
    wasm = options.dist / "python.wasm"
    stdlib = options.dist / "lib" / "python3.11"
    if not wasm.is_file() or not stdlib.is_dir():
        print(f"error: {options.dist} holds no python.wasm and lib/python3.11", file=sys.stderr)
        return 2
    ENV.extend(options.env)
    dirs = [(host, guest, False) for host, guest in options.dir]
    dirs += [(host, guest, True) for host, guest in options.rw_dir]
    engine = wasmtime.Engine()
    if options.metered:
        code, fuel, meter_seconds = run_metered(engine, wasm, stdlib, options.args, dirs)
        print(f"metered in {meter_seconds:.1f} s; fuel used {fuel:,}", file=sys.stderr)
        return code
    module, compile_seconds = compile_module(engine, wasm)
    if options.imports:
        for item in module.imports:
            print(f"{item.module}.{item.name}")
        return 0
    if options.probe:
        needed = probe(engine, module, stdlib, options.args, dirs)
        print(f"{len(needed)} of {len(module.imports)} imports called:", file=sys.stderr)
        print("\n".join(needed), file=sys.stderr)
        return 0
    if options.bench:
        times, memory_bytes = [], 0
        for _ in range(options.bench):
            started = time.perf_counter()
            _, memory_bytes = run(engine, module, stdlib, options.args, dirs)
            times.append(time.perf_counter() - started)
        print(
            f"module {wasm.stat().st_size} bytes, compile {compile_seconds:.2f} s, "
            f"run median {statistics.median(times) * 1000:.0f} ms "
            f"(min {min(times) * 1000:.0f} ms, {options.bench} runs), "
            f"memory {memory_bytes >> 20} MiB",
            file=sys.stderr,
        )
        return 0
    return run(engine, module, stdlib, options.args, dirs)[0]


if __name__ == "__main__":
    sys.exit(main())
