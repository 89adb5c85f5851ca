"""The event index on a market of 10,000 jobs: indexing throughput (events per second), the
`show jobs` query and the dashboard's job list over that index, and the CLI's start-up.

Run: `make bench-index` (part of `make bench`): it starts a plain anvil for the market, since
ape's own runs with --steps-tracing, which keeps every opcode of 30,000 transactions in
memory. The market is real: the production deployment,
20 providers and 100 clients (impersonated on the local node), 10,000 jobs posted, 6,000 of
them accepted and submitted, 2,000 of those finalized, 1,000 cancelled.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand

from computeshare.client import ComputeShare
from computeshare.constants import TOKEN
from computeshare.deploy import DeployConfig, deploy_connected
from computeshare.index import EventIndex
from computeshare.jobs import pack_requirements
from computeshare.report import format_table
from computeshare.sandbox import RunResult, keccak
from computeshare.specs import device_spec, job_requirements
from devtools.populate import Populator, addresses

JOBS, PROVIDERS, CLIENTS = int(os.environ.get("BENCH_INDEX_JOBS", 10_000)), 20, 100
SPEC = b'{"workload": "sha256-chain", "input": {"seed": "bench", "rounds": 10}}'
REQS = job_requirements(min_gpu_count=0, min_vram_mb=0)
PRICE = TOKEN
RESULT = RunResult(0, 4_000, b"bench output")


def timed(func, repeat: int = 5) -> float:
    """The best of `repeat` runs, in seconds."""
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - began)
    return best


def start_dashboard(index):
    """The dashboard served by uvicorn in a thread on a free port; returns the server."""
    import uvicorn

    from computeshare.dashboard import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(create_app(index), host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return server


def build(directory: Path) -> tuple[ComputeShare, int]:
    deployer = accounts.test_accounts[0]
    path = directory / "bench.json"
    cs = deploy_connected(project, deployer, DeployConfig(), path)
    pop = Populator(chain.provider, in_blocks=True)
    providers, clients = addresses("provider", PROVIDERS), addresses("client", CLIENTS)
    pop.fund_gas(providers + clients)
    for who in providers + clients:
        pop.send(deployer.address, cs.token, "transfer", who, 200_000 * TOKEN)
    pop.wait()
    device = device_spec(gpu_count=0, gpu_model=b"\0" * 32, vram_mb=0, max_concurrent_jobs=1024)
    for p in providers:
        pop.send(p, cs.token, "approve", cs.staking.address, 2**256 - 1)
        pop.send(p, cs.staking, "stake", 100_000 * TOKEN)
        pop.send(p, cs.registry, "register", device, "http://127.0.0.1:1/device")
    for c in clients:
        pop.send(c, cs.token, "approve", cs.escrow.address, 2**256 - 1)
        pop.send(c, cs.escrow, "deposit", 150_000 * TOKEN)
    pop.wait()
    deadline = chain.pending_timestamp + 5 * 86_400
    terms = []
    for n in range(JOBS // CLIENTS):
        for c in clients:
            pop.send(c, cs.escrow, "post", SPEC, REQS, PRICE, 1, deadline, PRICE)
            reqs = pack_requirements(REQS)
            terms.append((c, n, keccak(SPEC), reqs, PRICE, PRICE, 1, deadline, 3_600, 86_400, 250))
    pop.wait()
    served = []
    for i, t in enumerate(terms):
        if i % 10 < 6:
            provider = providers[i % PROVIDERS]
            pop.send(provider, cs.escrow, "accept", t, 0)
            output_hash = keccak(RESULT.output)
            args = (t, 0, RESULT.status, RESULT.fuel, output_hash, RESULT.output)
            pop.send(provider, cs.escrow, "submit", *args)
            served.append((t, provider))
        elif i % 10 == 6:
            pop.send(t[0], cs.escrow, "cancel", t)
    pop.wait()
    chain.provider.make_request("evm_increaseTime", [2 * 86_400])  # past the windows
    chain.provider.make_request("evm_mine", [])
    for t, provider in served[: JOBS // 5]:
        pop.send(provider, cs.escrow, "finalize", t, (provider, 0, RESULT.digest()))
    pop.close()
    return cs, len(terms)


def open_proposal(cs: ComputeShare) -> str:
    """A proposal of the deployer's, open for votes: what `gov vote` is timed on."""
    from computeshare.governance import call, method
    from computeshare.params import parameter

    deployer = accounts.test_accounts[0]
    method(cs.token, "delegate")(deployer, sender=deployer)
    chain.provider.make_request("evm_increaseTime", [1])
    chain.provider.make_request("evm_mine", [])
    fee = parameter("JobEscrow", "PROTOCOL_FEE_BPS")
    proposal = cs.as_account(deployer).propose(
        [call(cs.escrow, "set_parameter", fee.key, 100)], "bench: vote on the fee"
    )
    chain.provider.make_request("evm_increaseTime", [cs.governor.votingDelay() + 1])
    chain.provider.make_request("evm_mine", [])
    return f"{int(proposal):064x}"[:10]


def commands(directory: Path, cs: ComputeShare) -> None:
    """The installed `computeshare` end to end, a process per run, over the same market:
    reads by URI (plain JSON-RPC, computeshare.reader), sends by URI without ape
    (computeshare.sender) and the same sends through ape (COMPUTESHARE_THROUGH_APE=1), and a
    read through ape. Each run of a send is a transaction mined at once (anvil's automine):
    the figures are the command's own time, the chain's confirmation aside."""
    cli_path = str(Path(sys.executable).with_name("computeshare"))
    where = ["--network", chain.provider.uri, "--manifest", str(directory / "bench.json")]
    db = ["--db", str(directory / "index-200.sqlite")]
    someone = addresses("client", 1)[0]
    delegatees = addresses("provider", 2)
    proposal = open_proposal(cs)
    transfer = ["token", "transfer", someone, "1", *where, "--account", "TEST::0"]

    def vote(first: int):  # anvil funds TEST::0-9: five voters each way
        return lambda n: ["gov", "vote", proposal, "for", *where, "--account", f"TEST::{first + n}"]

    turns = itertools.count()

    def delegate(n: int) -> list[str]:  # to each of two in turn: never to the same again
        to = delegatees[next(turns) % 2]
        return ["token", "delegate", to, *where, "--account", "TEST::0"]

    # The role commands: TEST::0 (the deployer, who holds the tokens) posts from an escrow
    # balance deposited here (one transaction a post), stakes and delegates 1,000 tokens.
    deployer = accounts.test_accounts[0]
    cs.token.approve(cs.escrow, 1_000 * TOKEN, sender=deployer)
    cs.escrow.deposit(1_000 * TOKEN, sender=deployer)
    cs.token.approve(cs.staking, 2**256 - 1, sender=deployer)
    job = ["--workload", "sha256-chain", "--input", '{"seed": "b", "rounds": 9}', "--price", "1"]
    post = ["client", "post", *job, *where, "--account", "TEST::0"]
    stake = ["provider", "stake", "1000", *where, "--account", "TEST::0"]
    delegation = ["delegator", "delegate", delegatees[0], "1000", *where, "--account", "TEST::0"]
    ape = {"COMPUTESHARE_THROUGH_APE": "1"}
    runs = [
        ("`show jobs` (index current)", ["show", "jobs", *db, *where], {}),
        ("`show pools`", ["show", "pools", *db, *where], {}),
        ("`show params` (23 eth_calls)", ["show", "params", *where], {}),
        ("`token balance` (a read without ape)", ["token", "balance", someone, *where], {}),
        ("`token transfer` (a send without ape)", transfer, {}),
        ("`token transfer` (through ape)", transfer, ape),
        ("`token delegate` (without ape)", delegate, {}),
        ("`token delegate` (through ape)", delegate, ape),
        ("`gov vote` (without ape; the proposal by prefix)", vote(0), {}),
        ("`gov vote` (through ape)", vote(5), ape),
        ("`client post` (without ape)", post, {}),
        ("`client post` (through ape)", post, ape),
        ("`provider stake` (without ape)", stake, {}),
        ("`provider stake` (through ape)", stake, ape),
        ("`delegator delegate` (without ape)", delegation, {}),
        ("`delegator delegate` (through ape)", delegation, ape),
    ]
    rows = []
    for name, args, env in runs:
        seconds = []
        for n in range(5):
            line = args(n) if callable(args) else args
            began = time.perf_counter()
            done = subprocess.run(
                [cli_path, *line], capture_output=True, text=True, env={**os.environ, **env}
            )
            if done.returncode != 0:
                raise click.ClickException(f"{name}: {done.stderr.strip()}")
            seconds.append(time.perf_counter() - began)
        seconds.sort()
        rows.append(
            {
                f"over {JOBS:,} jobs": name,
                "best (s)": f"{seconds[0]:.2f}",
                "median (s)": f"{seconds[2]:.2f}",
            }
        )
    click.echo(
        "\nThe command line, a process each (goals: reads under 0.5 s, sends under 2 s plus "
        "the chain's confirmation; a send here is mined at once)\n"
    )
    click.echo(format_table(rows, list(rows[0])))


@click.command(cls=ConnectedProviderCommand)
def cli():
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        began = time.perf_counter()
        cs, posted = build(directory)
        click.echo(f"market: {posted:,} jobs in {time.perf_counter() - began:,.0f} s of set-up")
        rows = []
        for page in (2_000, 200):
            index = EventIndex.open(
                directory / f"index-{page}.sqlite", cs.manifest, chain.provider.web3, page=page
            )
            report = index.sync()
            rows.append(
                {
                    "page (blocks)": f"{page:,}",
                    "blocks": f"{report.last - report.first + 1:,}",
                    "events": f"{report.events:,}",
                    "seconds": f"{report.seconds:.1f}",
                    "events/s": f"{report.events / report.seconds:,.0f}",
                }
            )
        click.echo("\nIndexing from scratch\n")
        click.echo(format_table(rows, list(rows[0])))
        again = timed(lambda: index.sync(), repeat=3)
        click.echo(f"\na sync with nothing new: {again * 1000:.0f} ms")
        queries = [
            ("`show jobs` (50 newest, status, replicas)", lambda: index.jobs(limit=50)),
            ("jobs by status (counts)", lambda: index.job_count()),
            ("one job page", lambda: index.job(index.jobs(limit=1)[0]["job_id"])),
            ("devices", lambda: index.devices()),
            ("pools", lambda: index.pools()),
        ]
        server = start_dashboard(index)
        for path, name in (("/jobs", "dashboard /jobs (HTTP, rendered)"), ("/", "dashboard /")):
            url = f"http://127.0.0.1:{server.config.port}{path}"
            queries.append((name, lambda url=url: urllib.request.urlopen(url, timeout=30).read()))
        rows = [
            {f"over {JOBS:,} jobs": name, "ms (best of 5)": f"{timed(q) * 1000:.1f}"}
            for name, q in queries
        ]
        server.should_exit = True
        click.echo("\nQueries over the index (goal: under 500 ms each)\n")
        click.echo(format_table(rows, list(rows[0])))
        commands(directory, cs)
    cli_path = Path(sys.executable).with_name("computeshare")
    start = timed(
        lambda: subprocess.run([str(cli_path), "--help"], capture_output=True, check=True),
        repeat=5,
    )
    click.echo(f"\n`computeshare --help`: {start * 1000:.0f} ms (best of 5; goal: under 500 ms)")
