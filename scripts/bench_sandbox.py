"""Sandbox figures: start-up per job, fuel per second, and the same kernels natively.

    ape run bench_sandbox

Prints, for each catalogue kernel: the wasm run in this process (compile + run), the run in
a worker process as the agent does it (process start included), its fuel, the fuel burnt
per second, and the same computation in Python. Needs no node.
"""

from __future__ import annotations

import statistics
import struct
import time

import click

from computeshare import worker
from computeshare.report import format_table
from computeshare.workloads import execute, pack_u64, wasm_spec
from devtools import reference

REPEATS = 5


CASES = [
    (
        "monte-carlo 1M",
        "monte-carlo",
        pack_u64(42, 1_000_000),
        reference.monte_carlo,
        (42, 1_000_000),
    ),
    (
        "hash-chain 1M",
        "hash-chain",
        pack_u64(1_000_000) + b"seed",
        reference.hash_chain,
        (1_000_000, b"seed"),
    ),
    ("matmul 64", "matmul", struct.pack("<IQ", 64, 7), reference.matmul, (64, 7)),
]


def _median(func) -> tuple[float, object]:
    times, value = [], None
    for _ in range(REPEATS):
        began = time.perf_counter()
        value = func()
        times.append(time.perf_counter() - began)
    return statistics.median(times), value


def cli_rows() -> list[dict]:
    rows = []
    empty = wasm_spec("checked-div", struct.pack("<II", 1, 1), fuel=1_000_000)
    startup, _ = _median(lambda: worker.run(empty, None, 30))
    rows.append({"kernel": "worker start-up (trivial job)", "worker_ms": f"{startup * 1e3:.0f}"})
    for label, module, stdin, native, args in CASES:
        spec = wasm_spec(module, stdin, fuel=10**10)
        inline, result = _median(lambda spec=spec: execute(spec))
        in_worker, _ = _median(lambda spec=spec: worker.run(spec, None, 60))
        python, expected = _median(lambda native=native, args=args: native(*args))
        assert result.output == expected, f"{label}: wasm and native disagree"
        rows.append(
            {
                "kernel": label,
                "fuel": f"{result.fuel:,}",
                "wasm_ms": f"{inline * 1e3:.1f}",
                "worker_ms": f"{in_worker * 1e3:.0f}",
                "Mfuel_per_s": f"{result.fuel / inline / 1e6:,.0f}",
                "python_ms": f"{python * 1e3:.0f}",
                "python/wasm": f"{python / inline:.0f}x",
            }
        )
    return rows


@click.command()
def cli():
    """Sandbox start-up, fuel per second, and the kernels natively (median of 5)."""
    rows = cli_rows()
    columns = ["kernel", "fuel", "wasm_ms", "worker_ms", "Mfuel_per_s", "python_ms", "python/wasm"]
    click.echo(format_table([{c: row.get(c, "") for c in columns} for row in rows], columns))
