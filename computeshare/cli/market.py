"""`computeshare index` and `computeshare dashboard`: the event index and the web view over it.

    computeshare index --network http://127.0.0.1:8545               # bring the index up to date
    computeshare index --network ... --follow                         # and keep following
    computeshare dashboard --network ... --port 8000                  # serve the dashboard
    computeshare dashboard --network ... --static build/report        # or write static pages

The index is `deployments/<network>-<chain id>.sqlite` next to the manifest unless `--db`
names another file or a SQLAlchemy URL (e.g. postgresql+psycopg://user@host/computeshare).
"""

from __future__ import annotations

import sys
import time

import click

from computeshare.cli.common import ChainCommand, connect, friendly, manifest_option


def command(name: str):
    """A top-level read-only command connected to --network, with --manifest."""

    def decorate(func):
        return click.command(name, cls=ChainCommand)(manifest_option(friendly(func)))

    return decorate


db_option = click.option(
    "--db", help="index file or SQLAlchemy URL (default: the manifest's name, .sqlite)"
)
page_option = click.option(
    "--page",
    type=click.IntRange(1, 1_000_000),
    default=2_000,
    show_default=True,
    help="blocks per eth_getLogs request (halved while the node refuses the range)",
)
confirmations_option = click.option(
    "--confirmations",
    type=click.IntRange(0, 100_000),
    default=64,
    show_default=True,
    help="blocks below the head that are re-checked for reorgs",
)


def open_index(manifest, db, page: int, confirmations: int):
    cs = connect(manifest)
    return cs.open_index(db, page=page, confirmations=confirmations)


def sync(index, quiet: bool = False):
    """Brings the index to the head with a progress bar (on a terminal); returns the report."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    start = index.cursor()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeRemainingColumn(),
        transient=True,
        disable=quiet or not sys.stderr.isatty(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(f"indexing from block {start + 1:,}", total=None)

        def progress(block: int, target: int, events: int) -> None:
            text = f"indexing: block {block:,} of {target:,}, {events:,} events"
            bar.update(task, description=text, total=target - start, completed=block - start)

        return index.sync(progress=progress)


@command("index")
@db_option
@page_option
@confirmations_option
@click.option("--follow", is_flag=True, help="keep following new blocks")
@click.option("--interval", type=click.FloatRange(0.1), default=2.0, show_default=True)
def index(manifest, db, page, confirmations, follow, interval):
    """Follow the suite's events into the index (SQLite by default): resumable, reorg-safe."""
    store = open_index(manifest, db, page, confirmations)
    while True:
        report = sync(store)
        rate = report.events / report.seconds if report.seconds else 0
        rolled = f", {report.rolled_back} blocks rolled back (reorg)" if report.rolled_back else ""
        skipped = f", {report.skipped} logs skipped (undecodable)" if report.skipped else ""
        click.echo(
            f"indexed blocks {report.first:,}..{report.last:,}: {report.events:,} events "
            f"in {report.seconds:.1f} s ({rate:,.0f}/s){rolled}{skipped}"
        )
        if not follow:
            counts = store.counts()
            click.echo(
                f"index {store.engine.url}: {counts['jobs']:,} jobs, {counts['devices']:,} device "
                f"records, {counts['proposals']:,} proposals, {counts['events']:,} events"
            )
            return
        time.sleep(interval)


@command("dashboard")
@db_option
@page_option
@confirmations_option
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65_535), default=8000, show_default=True)
@click.option(
    "--static",
    "static_dir",
    type=click.Path(file_okay=False),
    help="write the pages as static HTML files to this folder instead of serving",
)
@click.option(
    "--sync-interval",
    type=click.FloatRange(0.5),
    default=5.0,
    show_default=True,
    help="seconds between index updates while serving",
)
def dashboard(manifest, db, page, confirmations, host, port, static_dir, sync_interval):
    """Serve a read-only web dashboard over the index (or write it as static pages)."""
    from computeshare import dashboard as web

    store = open_index(manifest, db, page, confirmations)
    sync(store)
    if static_dir:
        written = web.write_static(store, static_dir)
        click.echo(f"wrote {len(written)} pages; open {static_dir}/index.html")
        return
    click.echo(f"dashboard at http://{host}:{port}/ (Ctrl-C stops it)")
    web.serve(store, host, port, sync_interval=sync_interval)
