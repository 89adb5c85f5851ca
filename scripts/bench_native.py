"""A real C program in the sandbox against its native build: zlib's gzip (examples/c/gztree.c
with the vendored zlib) over MiB of genome text, three ways:

- native: gcc -O2, the same sources;
- wasmtime: the same wasm module on wasmtime's own WASI, not metered;
- sandbox: the metered module in ComputeShare's sandbox (prepared beforehand, as a provider's
  cache holds it), /input from a pack, /output to a directory.

    ape run bench_native        (or: python scripts/bench_native.py)

Needs clang (examples/build.sh) and gcc. Prints the best of REPEATS wall times and the
ratios; also the fuel the run used and what it is at the floor R_FLOOR.
"""

from __future__ import annotations

import random
import subprocess
import tempfile
import time
from pathlib import Path

import click
import wasmtime

from computeshare import cas, sandbox
from computeshare.metering import R_FLOOR
from computeshare.report import format_table

ROOT = Path(__file__).resolve().parent.parent
ZLIB = ROOT / "examples" / "third_party" / "zlib"
SOURCES = [
    "adler32", "compress", "crc32", "deflate", "gzclose", "gzlib", "gzread", "gzwrite",
    "infback", "inffast", "inflate", "inftrees", "trees", "uncompr", "zutil",
]  # fmt: skip
MIB = 8
REPEATS = 3


def _best(run) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        began = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - began)
    return best


def _inputs(folder: Path) -> Path:
    rng = random.Random(5)
    folder.mkdir()
    (folder / "genome.fa").write_text("".join(rng.choices("ACGT", k=MIB << 20)))
    return folder


def measure(work: Path) -> list[dict]:
    subprocess.run(["sh", str(ROOT / "examples" / "build.sh"), "c"], check=True)
    module = (ROOT / "examples" / "build" / "gztree.wasm").read_bytes()
    native = work / "gztree"
    subprocess.run(
        ["gcc", "-O2", "-w", "-DZ_HAVE_UNISTD_H", f"-I{ZLIB}", "-o", str(native)]
        + [str(ZLIB / f"{name}.c") for name in SOURCES]
        + [str(ROOT / "examples" / "c" / "gztree.c")],
        check=True,
    )
    inputs = _inputs(work / "input")

    def fresh(name: str) -> Path:
        out = work / name
        subprocess.run(["rm", "-rf", str(out)], check=True)
        out.mkdir()
        return out

    native_s = _best(
        lambda: subprocess.run(
            [str(native), str(inputs), str(fresh("native"))], check=True, capture_output=True
        )
    )

    engine = wasmtime.Engine()
    plain = wasmtime.Module(engine, module)

    def unmetered() -> None:
        out = fresh("wasmtime")
        config = wasmtime.WasiConfig()
        config.argv = ["gztree", "/input", "/output"]
        config.preopen_dir(str(inputs), "/input")
        config.preopen_dir(str(out), "/output")
        store = wasmtime.Store(engine)
        store.set_wasi(config)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        instance = linker.instantiate(store, plain)
        try:
            instance.exports(store)["_start"](store)
        except wasmtime.ExitTrap as exit_:
            assert exit_.code == 0

    wasmtime_s = _best(unmetered)

    info = cas.pack_dir(inputs, work / "input.pack")
    files = cas.open_pack(info.path).files()
    compiled, metered = sandbox._prepare(module, "_start")
    result = None

    def metered_run() -> None:
        nonlocal result
        result = sandbox._execute(
            compiled, metered, "_start", b"", sandbox.MAX_FUEL,
            args=["/input", "/output"], inputs=files, output_dir=fresh("sandbox"),
        )  # fmt: skip
        assert result.status == sandbox.STATUS_OK, result

    sandbox_s = _best(metered_run)
    assert result is not None
    return [
        {"run": "native (gcc -O2)", "seconds": f"{native_s:.2f}", "x native": "1.00"},
        {
            "run": "wasmtime WASI, unmetered",
            "seconds": f"{wasmtime_s:.2f}",
            "x native": f"{wasmtime_s / native_s:.2f}",
        },
        {
            "run": "sandbox, metered",
            "seconds": f"{sandbox_s:.2f}",
            "x native": f"{sandbox_s / native_s:.2f}",
        },
        {
            "run": f"fuel {result.fuel:,} = {result.fuel / R_FLOOR:,.0f} s at R_FLOOR",
            "seconds": "",
            "x native": f"{result.fuel / R_FLOOR / native_s:,.0f}",
        },
    ]


@click.command()
def cli() -> None:
    """gzip of 8 MiB: native, wasmtime and the metered sandbox."""
    with tempfile.TemporaryDirectory() as work:
        rows = measure(Path(work))
    click.echo(f"zlib gzip (gztree) of {MIB} MiB of DNA text, best of {REPEATS}")
    click.echo(format_table(rows, ["run", "seconds", "x native"]))


if __name__ == "__main__":
    cli()
