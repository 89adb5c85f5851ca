"""`computeshare agent`: the provider agent (computeshare.agent) as a command."""

from __future__ import annotations

import os
import time
from pathlib import Path

import click

from computeshare.cli.common import ChainCommand, connect, friendly, manifest_option, step
from computeshare.cli.options import account_option


@click.command("agent", cls=ChainCommand)
@account_option()
@manifest_option
@click.option("--device", "device_id", help="device id or prefix (default: your first device)")
@click.option("--journal", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--policy", type=click.Path(dir_okay=False, path_type=Path), help="policy YAML")
@click.option("--serve", help="serve results at HOST:PORT (e.g. 127.0.0.1:8700)")
@click.option("--faulty", is_flag=True, help="return wrong results (to demonstrate slashing)")
@click.option("--poll", type=float, default=1.0, show_default=True, help="seconds")
@click.option("--steps", type=click.IntRange(1), help="stop after this many polls")
@click.option(
    "--db", help="the agent's event index: file or SQLAlchemy URL (default: <journal>.sqlite)"
)
@click.option(
    "--name",
    help="what its log lines call this agent, e.g. the name your tables give the provider "
    "(default: the start of the account's address)",
)
@friendly
def agent(account, manifest, device_id, journal, policy, serve, faulty, poll, steps, db, name):
    """Serve your device's jobs: validate, accept, run, commit, reveal, finalize; resumable."""
    from ape import chain

    from computeshare.agent import Policy, lock_account

    rules = Policy.load(policy)
    cs = connect(manifest, account)
    # One agent per account and chain: beside the deployment's manifest (its folder is
    # shared by every journal), else (no manifest file, or its folder is read-only)
    # beside the journal.
    shared = cs.path is not None and os.access(cs.path.parent, os.W_OK)
    where = cs.path.parent if shared else journal.parent
    lock = lock_account(where, chain.chain_id, account.address)
    try:
        _serve(cs, account, rules, device_id, journal, serve, faulty, poll, steps, db, name)
    finally:
        lock.release()


def _serve(cs, account, rules, device_id, journal, serve, faulty, poll, steps, db, name):
    from computeshare.agent import Agent, Journal
    from computeshare.cli.common import resolve_device
    from computeshare.results import start_server
    from computeshare.signing import device_id as nth_device

    book = Journal.open(journal, from_block=0)
    cs.open_index(db or journal.with_suffix(".sqlite"))  # its scan and look-ups read it
    if device_id is None:
        if cs.registry.device_count(account) == 0:
            raise click.ClickException("you have no device: `computeshare provider register`")
        device = nth_device(account.address, 0)
    else:
        device = resolve_device(cs, device_id)
    if cs.registry.device(device).owner != account.address:
        raise click.ClickException(f"device 0x{device.hex()[:10]} is not {account.address}'s")
    if not journal.exists():
        book.from_block = cs.manifest.block("JobEscrow")
    prefix = f"[{name or account.address[:8]}]"
    runner = Agent(
        cs,
        account,
        device,
        book,
        faulty=faulty,
        policy=rules,
        log=lambda message: click.echo(f"{prefix} {message}"),
    )
    server = start_server(book, serve, runner.progress, runner.data / "outputs") if serve else None
    where = f", results at {server.url}" if server else ""
    click.echo(f"{prefix} serving device 0x{device.hex()[:10]}{where}")
    count = 0
    try:
        with step(f"serving device 0x{device.hex()[:10]} (Ctrl-C stops)"):
            while steps is None or count < steps:
                runner.step()
                count += 1
                time.sleep(max(poll, runner.wait))
    finally:
        runner.close()
        if server is not None:
            server.stop()
