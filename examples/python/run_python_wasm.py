"""Run the wasm32-wasi CPython built by build-cpython.sh on wasmtime-py's own WASI.

    python examples/python/run_python_wasm.py DIST [--dir HOST::GUEST ...] [--imports]
        [--bench N] -- ARGS...

DIST is the build's dist/ folder (python.wasm and lib/python3.11). The stdlib is preopened
read-only at /usr/local/lib/python3.11, where the interpreter (prefix /usr/local) looks
for it; each --dir preopens one more host folder. ARGS go to the interpreter as its argv
after "python". --imports lists the module's imports instead of running it; --bench N
times N runs and prints the compile time, the module size and the median run time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import wasmtime

STDLIB_GUEST = "/usr/local/lib/python3.11"


def compile_module(engine: wasmtime.Engine, wasm: Path) -> tuple[wasmtime.Module, float]:
    started = time.perf_counter()
    module = wasmtime.Module.from_file(engine, str(wasm))
    return module, time.perf_counter() - started


def run(
    engine: wasmtime.Engine,
    module: wasmtime.Module,
    stdlib: Path,
    argv: list[str],
    dirs: list[tuple[str, str]],
) -> int:
    """One run of the interpreter in a fresh store; returns its exit code."""
    wasi = wasmtime.WasiConfig()
    wasi.argv = ["python", *argv]
    wasi.env = [("PYTHONDONTWRITEBYTECODE", "1")]
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    wasi.inherit_stdin()
    wasi.preopen_dir(str(stdlib), STDLIB_GUEST, False)
    for host, guest in dirs:
        wasi.preopen_dir(host, guest, False)
    store = wasmtime.Store(engine)
    store.set_wasi(wasi)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    instance = linker.instantiate(store, module)
    start = instance.exports(store)["_start"]
    assert isinstance(start, wasmtime.Func)
    try:
        start(store)
    except wasmtime.ExitTrap as exit_trap:
        return exit_trap.code
    return 0


def parse_dir(text: str) -> tuple[str, str]:
    host, sep, guest = text.partition("::")
    if not sep or not host or not guest.startswith("/"):
        raise argparse.ArgumentTypeError(f"expected HOST::/GUEST, got {text!r}")
    if not Path(host).is_dir():
        raise argparse.ArgumentTypeError(f"not a folder: {host}")
    return host, guest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dist", type=Path)
    parser.add_argument("--dir", type=parse_dir, action="append", default=[])
    parser.add_argument("--imports", action="store_true")
    parser.add_argument("--bench", type=int, default=0)
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    options = parser.parse_args(argv[:split])
    options.args = argv[split + 1 :]
    wasm = options.dist / "python.wasm"
    stdlib = options.dist / "lib" / "python3.11"
    if not wasm.is_file() or not stdlib.is_dir():
        print(f"error: {options.dist} holds no python.wasm and lib/python3.11", file=sys.stderr)
        return 2
    engine = wasmtime.Engine()
    module, compile_seconds = compile_module(engine, wasm)
    if options.imports:
        for item in module.imports:
            print(f"{item.module}.{item.name}")
        return 0
    if options.bench:
        times = []
        for _ in range(options.bench):
            started = time.perf_counter()
            run(engine, module, stdlib, options.args, options.dir)
            times.append(time.perf_counter() - started)
        print(
            f"module {wasm.stat().st_size} bytes, compile {compile_seconds:.2f} s, "
            f"run median {statistics.median(times) * 1000:.0f} ms "
            f"(min {min(times) * 1000:.0f} ms, {options.bench} runs)",
            file=sys.stderr,
        )
        return 0
    return run(engine, module, stdlib, options.args, options.dir)


if __name__ == "__main__":
    sys.exit(main())
