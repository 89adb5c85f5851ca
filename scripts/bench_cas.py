"""Content-addressed tree figures: packing with the Merkle root, the root of a pack file,
and fetching with verification on loopback from a chunk server (proof form) and from the
static layout (`write_static`) served by `python -m http.server` (static form).

    ape run bench_cas            (or: python scripts/bench_cas.py [--mib 1024])

The tree is 16 files of pseudo-random bytes (incompressible; the page cache holds them, so
the figures are CPU and loopback, not disk). The chunk server runs in its own process, as a
publisher's or replica's would; the fetcher verifies every chunk against the root and
writes it to the cache. The static host is Python's own file server, in its own process (a
slow static host: nginx or an IPFS gateway serve files from the kernel). Goal: at least
200 MB/s fetched and verified.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from computeshare.cas import Cache, fetch_tree, open_pack, root_of_file, write_static
from computeshare.report import format_table

FILES = 16
SERVER = """
import sys, time
from computeshare.cas import Cache, ChunkServer
server = ChunkServer(Cache(sys.argv[1])).start()
print(server.url, flush=True)
while True:
    time.sleep(3600)
"""
STATIC = """
import functools, sys, threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
handler = functools.partial(Quiet, directory=sys.argv[1])
server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
print(f"http://127.0.0.1:{server.server_address[1]}/", flush=True)
server.serve_forever()
"""


def make_tree(top: Path, total: int) -> None:
    per = total // FILES
    seed = os.urandom(1 << 20)
    for i in range(FILES):
        path = top / f"part-{i:02d}" / "data.bin"
        path.parent.mkdir(parents=True)
        with open(path, "wb") as f:
            for j in range(per >> 20):
                f.write(seed[j % 4096 :] + seed[: j % 4096] if j else os.urandom(1 << 20))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def mb_per_s(size: int, seconds: float) -> str:
    return f"{size / seconds / 1e6:,.0f}"


def bench(mib: int, work: Path, workers_list: list[int]) -> list[dict]:
    rows = []
    tree = work / f"tree-{mib}"
    make_tree(tree, mib << 20)
    store = Cache(work / f"store-{mib}")
    started = time.perf_counter()
    info = store.add_dir(tree)
    seconds = time.perf_counter() - started
    rows.append(
        {
            "step": f"pack + root, {mib} MiB",
            "s": f"{seconds:.2f}",
            "MB_s": mb_per_s(info.size, seconds),
        }
    )
    started = time.perf_counter()
    root, size = root_of_file(info.path)
    seconds = time.perf_counter() - started
    assert (root, size) == (info.root, info.size)
    rows.append(
        {
            "step": f"root of pack file, {mib} MiB",
            "s": f"{seconds:.2f}",
            "MB_s": mb_per_s(size, seconds),
        }
    )
    started = time.perf_counter()
    write_static(store, info.root, work / f"static-{mib}")
    seconds = time.perf_counter() - started
    rows.append(
        {
            "step": f"write static layout, {mib} MiB",
            "s": f"{seconds:.2f}",
            "MB_s": mb_per_s(info.size, seconds),
        }
    )
    rows += fetch_rows(info, mib, work, workers_list, "proof", SERVER, store.dir)
    rows += fetch_rows(info, mib, work, workers_list, "static", STATIC, work / f"static-{mib}")
    return rows


def fetch_rows(info, mib: int, work: Path, workers_list: list[int], form: str, code, folder):
    """Fetch-and-verify figures from a server process running `code` over `folder`."""
    rows = []
    server = subprocess.Popen(
        [sys.executable, "-c", code, str(folder)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    )
    try:
        url = server.stdout.readline().strip()
        for workers in workers_list:
            cache = Cache(work / f"cache-{mib}-{form}-{workers}", quota=4 * info.size)
            served, used = cpu_seconds(server.pid), time.process_time()
            started = time.perf_counter()
            path = fetch_tree(info.root, info.size, [url], cache, max_size=1 << 40, workers=workers)
            seconds = time.perf_counter() - started
            used = time.process_time() - used
            served = cpu_seconds(server.pid) - served
            rows.append(
                {
                    "step": f"fetch + verify ({form}), {mib} MiB, {workers} worker(s)",
                    "s": f"{seconds:.2f}",
                    "MB_s": mb_per_s(info.size, seconds),
                    "fetcher_cpu_ms_MiB": f"{used * 1000 / mib:.2f}",
                    "server_cpu_ms_MiB": f"{served * 1000 / mib:.2f}",
                    "fetcher_bound_MB_s": mb_per_s(info.size, used),
                }
            )
            started = time.perf_counter()
            files = open_pack(path).files()
            rows.append(
                {
                    "step": f"open_pack ({len(files)} files)",
                    "s": f"{time.perf_counter() - started:.4f}",
                }
            )
            cache.evict(info.root)
    finally:
        server.terminate()
        server.wait()
    return rows


@click.command()
@click.option("--mib", type=int, multiple=True, default=[256], show_default=True)
@click.option("--workers", type=int, multiple=True, default=[1, 2, 4], show_default=True)
def cli(mib, workers):
    """Pack, root and fetch-and-verify throughput."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-cas-", dir=os.environ.get("BENCH_DIR")) as work:
        for size in mib:
            rows += bench(size, Path(work), list(workers))
    columns = ["step", "s", "MB_s", "fetcher_cpu_ms_MiB", "server_cpu_ms_MiB"]
    click.echo(format_table(rows, [*columns, "fetcher_bound_MB_s"]))
    load = os.getloadavg()[0]
    click.echo(
        f"{os.cpu_count()} CPUs, load average {load:.1f} during the run. fetcher_bound_MB_s: "
        "the pack size over the fetcher's own CPU time (what one fetcher sustains on a free "
        "core while the server has its own)."
    )


if __name__ == "__main__":
    cli()
