"""Python jobs' figures: the pinned CPython for WASI (`computeshare.python_job`) preparing
once, then running a hello-world and a script importing json and hashlib in the sandbox.

    ape run bench_python        (or: python scripts/bench_python.py [--runs N])

Prints the first preparation (metering and compiling python.wasm, single-threaded as the
sandbox's engine is set), the load from the prepared-module cache, and per script its
fuel, the run's median and best wall time (the module prepared, the input tree packed
beforehand) and the fuel's time at R_FLOOR (what the job is priced at).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import click

from computeshare import cas, python_job, sandbox
from computeshare.metering import R_FLOOR
from computeshare.report import format_table
from computeshare.workloads import decode_spec, execute, wasm_spec

SCRIPTS = {
    "hello-world": 'print("hello", sum(range(10)))\n',
    "json+hashlib+file": (
        "import hashlib, json\n"
        'data = open("/input/data.csv", "rb").read()\n'
        'rows = [line.split(",") for line in data.decode().splitlines()[1:]]\n'
        'result = {"rows": len(rows), "sha256": hashlib.sha256(data).hexdigest()}\n'
        'with open("/output/result.json", "w") as f:\n'
        "    json.dump(result, f)\n"
        "print(json.dumps(result))\n"
    ),
}


def rows(runs: int) -> list[dict]:
    found = python_job.interpreter()
    out = []
    with tempfile.TemporaryDirectory(prefix="bench-python-") as scratch:
        root = Path(scratch)
        prepared = root / "prepared"
        started = time.perf_counter()
        sandbox.prepare_cached(found.module, "_start", prepared)
        seconds = time.perf_counter() - started
        out.append({"case": "prepare python.wasm", "seconds": f"{seconds:.1f}"})
        started = time.perf_counter()
        sandbox.prepare_cached(found.module, "_start", prepared)
        out.append({"case": "load it prepared", "seconds": f"{time.perf_counter() - started:.3f}"})
        data = root / "data"
        data.mkdir()
        (data / "data.csv").write_text("name,value\na,10\nb,12\nc,20\n")
        for name, text in SCRIPTS.items():
            script = root / f"{name}.py"
            script.write_text(text)
            tree = root / f"tree-{name}"
            python_job.job_tree(script, data, tree, found)
            info = cas.pack_dir(tree, root / f"{name}.pack")
            spec = decode_spec(
                wasm_spec(
                    found.module,
                    fuel=10**12,
                    inline=False,
                    args=python_job.job_args(),
                    env=python_job.job_env(),
                    inputs=info.spec([]),
                )
            )
            times, result = [], None
            for _ in range(runs):
                started = time.perf_counter()
                result = execute(spec, found.module, inputs=info.path, prepared=prepared)
                times.append(time.perf_counter() - started)
            assert result is not None and result.status == sandbox.STATUS_OK, result
            out.append(
                {
                    "case": name,
                    "fuel": f"{result.fuel:,}",
                    "seconds": f"{statistics.median(times):.3f} (best {min(times):.3f})",
                    "at_R_FLOOR_s": f"{result.fuel / R_FLOOR:.2f}",
                }
            )
    return out


@click.command()
@click.option("--runs", type=click.IntRange(1), default=5, show_default=True)
def cli(runs):
    """CPython for WASI in the sandbox: preparation, fuel and run times."""
    columns = ["case", "fuel", "seconds", "at_R_FLOOR_s"]
    click.echo(format_table(rows(runs), columns))


if __name__ == "__main__":
    cli()
