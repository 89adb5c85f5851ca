"""A GiB-scale job's data path end to end, on loopback: the client adds a 1 GiB input tree
to its data store and serves it; the provider's worker fetches and verifies it into its
cache, runs examples/c/copytree.c (every file of /input copied into /output, 1 MiB at a
time) in the metered sandbox, and packs /output into its store; the client fetches and
verifies the 1 GiB output tree from the provider's chunk server and unpacks it.

    ape run bench_trees [--mib 1024]     (or: python scripts/bench_trees.py)

Prints each stage's wall time and MB/s. Needs clang (examples/build.sh) and about five
times the tree's size of free disk in the temporary folder.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from pathlib import Path

import click

from computeshare import cas, local_run
from computeshare.report import format_table

ROOT = Path(__file__).resolve().parent.parent


def measure(work: Path, mib: int) -> list[dict]:
    subprocess.run(["sh", str(ROOT / "examples" / "build.sh"), "c"], check=True)
    module = (ROOT / "examples" / "build" / "copytree.wasm").read_bytes()
    folder = work / "input"
    folder.mkdir()
    with open(folder / "data.bin", "wb") as f:  # incompressible, as real data often is
        for _ in range(mib):
            f.write(os.urandom(1 << 20))
    size = mib << 20
    rows = []

    def stage(name: str, nbytes: int, action):
        began = time.perf_counter()
        value = action()
        seconds = time.perf_counter() - began
        rows.append(
            {"stage": name, "seconds": f"{seconds:.1f}", "MB/s": f"{nbytes / seconds / 1e6:,.0f}"}
        )
        return value

    client = cas.Cache(work / "client-store")
    info = stage("client: pack the input tree and its root", size, lambda: client.add_dir(folder))
    with cas.ChunkServer(client) as data:
        provider = cas.Cache(work / "provider-trees")
        path = stage(
            "provider: fetch and verify the input tree",
            size,
            lambda: cas.fetch_tree(info.root, info.size, [data.url], provider, max_size=1 << 40),
        )
    outputs = cas.Cache(work / "provider-outputs")
    result, output = stage(
        "provider: run copytree in the sandbox, pack /output",
        2 * size,
        lambda: local_run.run_module(
            module,
            fuel=10**12,
            args=["/input", "/output"],
            inputs=path,
            output_dir=work / "output",
            store=outputs,
            output_limit=size + (1 << 20),
        ),
    )
    assert result.status == 0 and output is not None, result
    with cas.ChunkServer(outputs) as agent:
        downloads = cas.Cache(work / "client-downloads")
        fetched = stage(
            "client: fetch and verify the output tree",
            output.size,
            lambda: cas.fetch_tree(
                output.root, output.size, [agent.url], downloads, max_size=1 << 40
            ),
        )
    stage(
        "client: unpack the output files",
        output.size,
        lambda: cas.unpack(cas.open_pack(fetched), work / "files"),
    )
    same = (work / "files" / "data.bin").stat().st_size == size
    rows.append({"stage": f"fuel {result.fuel:,}; output equal in size: {same}", "seconds": ""})
    return rows


@click.command()
@click.option("--mib", default=1024, show_default=True, help="size of the input tree")
def cli(mib: int) -> None:
    """A 1 GiB input and output job's data path, end to end on loopback."""
    with tempfile.TemporaryDirectory() as work:
        rows = measure(Path(work), mib)
    click.echo(f"a {mib} MiB input tree in, the same out (copytree), on loopback")
    click.echo(format_table(rows, ["stage", "seconds", "MB/s"]))


if __name__ == "__main__":
    cli()
