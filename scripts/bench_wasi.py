"""WASI figures: file-read throughput from /input, write throughput to /output and /tmp,
and the cost of one host call.

    ape run bench_wasi        (or: python scripts/bench_wasi.py)

Builds examples/c/readbench.c and conformance.c (examples/build.sh, needs clang), then
runs readbench on a 256 MiB /input file read in 1 MiB reads (the file is a byte range of
a larger host file, as a pack serves it), and conformance's `fill` mode against /output
and /tmp, and a loop of host calls. Prints MB/s of run time (the module compiled
beforehand), fuel per byte and microseconds per host call.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import click
import wasmtime

from computeshare import sandbox, wasi
from computeshare.report import format_table

ROOT = Path(__file__).resolve().parent.parent
SIZE = 256 << 20
REPEATS = 3


def _timed(module: bytes, **config) -> tuple[float, sandbox.RunResult]:
    compiled, metered = sandbox._prepare(module, "_start")
    best, result = float("inf"), None
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory() as out:
            began = time.perf_counter()
            result = sandbox._execute(
                compiled, metered, "_start", b"", sandbox.MAX_FUEL, output_dir=out, **config
            )
            best = min(best, time.perf_counter() - began)
    assert result is not None
    return best, result


def rows() -> list[dict]:
    subprocess.run([str(ROOT / "examples" / "build.sh"), "c"], check=True)
    build = ROOT / "examples" / "build"
    reader = (build / "readbench.wasm").read_bytes()
    filler = (build / "conformance-c.wasm").read_bytes()
    found = []
    with tempfile.TemporaryDirectory() as scratch:
        pack = Path(scratch) / "pack"
        with pack.open("wb") as file:
            file.write(b"H" * 4096)
            block = os.urandom(1 << 20)
            for _ in range(SIZE >> 20):
                file.write(block)
        inputs = {"big": (pack, 4096, SIZE)}
        seconds, result = _timed(reader, args=["/input/big"], inputs=inputs)
        assert result.status == sandbox.STATUS_OK, result
        assert result.output.startswith(f"{SIZE} bytes".encode())
        found.append(_row("read /input, 1 MiB reads", SIZE, seconds, result))
    for where, quota in (("/output", SIZE), ("/tmp", wasi.TMP_QUOTA)):
        seconds, result = _timed(filler, args=["fill", where], output_quota=quota)
        assert result.output.startswith(f"fill {where}: {quota} bytes".encode()), result
        found.append(_row(f"write {where}, 64 KiB writes", quota, seconds, result))
    calls = 10_000
    seconds, result = _timed(filler, args=["files", "/tmp", str(calls)])
    found.append(
        {
            "case": f"create+close {calls} files in /tmp",
            "MB": "",
            "seconds": f"{seconds:.3f}",
            "MB_per_s": "",
            "us_per_call": f"{seconds / calls * 1e6:.0f} per file",
            "fuel_per_byte": "",
        }
    )
    calls = 20_000
    clock = wasmtime.wat2wasm(
        '(module (import "wasi_snapshot_preview1" "clock_time_get" (func $c (param i32 i64 i32)'
        ' (result i32))) (memory (export "memory") 1) (func (export "_start") (local $i i32)'
        " (loop $l (drop (call $c (i32.const 1) (i64.const 1) (i32.const 64)))"
        " (local.set $i (i32.add (local.get $i) (i32.const 1)))"
        f" (br_if $l (i32.lt_u (local.get $i) (i32.const {calls}))))))"
    )
    seconds, result = _timed(bytes(clock))
    found.append(
        {
            "case": f"{calls} host calls (clock_time_get)",
            "seconds": f"{seconds:.3f}",
            "us_per_call": f"{seconds / calls * 1e6:.0f}",
            "fuel_per_byte": "",
        }
    )
    return found


def _row(case: str, size: int, seconds: float, result: sandbox.RunResult) -> dict:
    return {
        "case": case,
        "MB": f"{size / 1e6:.0f}",
        "seconds": f"{seconds:.3f}",
        "MB_per_s": f"{size / seconds / 1e6:,.0f}",
        "us_per_call": "",
        "fuel_per_byte": f"{result.fuel / size:.2f}",
    }


@click.command()
def cli():
    """WASI file throughput (best of 3) and host-call cost."""
    columns = ["case", "MB", "seconds", "MB_per_s", "us_per_call", "fuel_per_byte"]
    click.echo(format_table(rows(), columns))


if __name__ == "__main__":
    cli()
