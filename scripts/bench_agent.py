"""The provider agent's latency on a local node: from a job's `JobPosted` to its acceptance,
to its result on chain, and (k = 3) from the reveal window's opening to every reveal; and
the cost of an idle step (no new block, nothing due) as the jobs the agent holds grow.

    ape run bench_agent                      # both
    ape run bench_agent --idle-only --held 0,100,1000

Idle step: real jobs, posted on chain (k = 2, one replica accepted and committed by the
agent's account, the other slot open: nothing can happen to them until their deadline an
hour away), entered in the agent's journal as its own. Prints the median wall time and the
JSON-RPC requests (counted at the provider's web3 transport) of `--steps` steps, after
two warm-up steps (the first step after a start reads every held job once); then the same
for steps that each follow a new, empty block.

Three agents run in this process, each stepping every `POLL` seconds, against the suite the
deploy steps build; workloads run in worker processes as in production. Prints the median
of `JOBS` jobs per case. Wall-clock figures: they include each worker's start (about 0.4 s).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand
from ape.logging import logger

from computeshare.agent import Agent, Journal
from computeshare.constants import TOKEN
from computeshare.deploy import DeployConfig, deploy_connected
from computeshare.jobs import commitment
from computeshare.report import format_table
from computeshare.specs import device_spec, job_requirements
from computeshare.workloads import pack_u64, wasm_spec

POLL = 0.1
JOBS = 3
IDLE_STEPS = 9
IDLE_SPEC = b'{"workload": "sha256-chain", "input": {"seed": "idle", "rounds": 5}}'
SPEC = wasm_spec("monte-carlo", pack_u64(42, 100_000), fuel=50_000_000)


def _until(agents, done, limit: float = 60) -> float:
    """Steps the agents until `done()`; the seconds it took."""
    began = time.monotonic()
    while not done():
        if time.monotonic() - began > limit:
            raise click.ClickException("the agents did not get there in time")
        for agent in agents:
            agent.step()
        time.sleep(POLL)
    return time.monotonic() - began


class RequestCounter:
    """Counts the JSON-RPC requests sent through the connected provider's web3 transport."""

    def __init__(self):
        self.transport = chain.provider.web3.provider
        self.count = 0
        original = self.transport.make_request

        def counted(method, params):
            self.count += 1
            return original(method, params)

        self.transport.make_request = counted
        # web3 composes its middleware around the transport's method once and caches it
        self.transport._request_func_cache = (None, None)


def _hold(cs, provider, device_nonce: int, client, count: int) -> dict[str, dict]:
    """`count` real jobs held by `provider`: posted (k = 2), accepted into slot 0 and
    committed; their journal entries."""
    buyer, me = cs.as_account(client), cs.as_account(provider)
    entries: dict[str, dict] = {}
    if count <= 0:
        return entries
    buyer.deposit(count * 2 * TOKEN)
    for _ in range(count):
        deadline = chain.pending_timestamp + 3_600
        receipt = buyer.escrow.post(
            IDLE_SPEC, job_requirements(), TOKEN, 2, deadline, TOKEN, sender=client
        )
        job_id = bytes(receipt.return_value)
        me.jobs.accept(job_id, device_nonce, sender=provider)
        digest, salt = os.urandom(32), os.urandom(32)
        me.jobs.commit(
            job_id, 0, commitment(job_id, provider.address, digest, salt), sender=provider
        )
        entries["0x" + job_id.hex()] = {
            "slot": 0,
            "spec": "0x" + IDLE_SPEC.hex(),
            "block": receipt.block_number,
            "result": {"status": 0, "fuel": 5, "output": "00"},
            "result_hash": "0x" + digest.hex(),
            "salt": "0x" + salt.hex(),
        }
    return entries


def idle(cs, deployer, client, workdir: Path, held: list[int], steps: int) -> None:
    test = accounts.test_accounts
    provider = test[6]
    cs.token.transfer(provider, 20_000 * TOKEN, sender=deployer)
    me = cs.as_account(provider)
    me.stake(10_000 * TOKEN)
    device = me.register_device(device_spec(max_concurrent_jobs=1_024), "ipfs://bench")
    counter = RequestCounter()
    entries: dict[str, dict] = {}
    rows = []
    for count in held:
        began = time.monotonic()
        entries.update(_hold(cs, provider, 0, client, count - len(entries)))
        made = time.monotonic() - began
        journal = Journal.open(workdir / f"idle-{count}.json", chain.blocks.height + 1)
        journal.jobs = dict(entries)
        journal.save()
        agent = Agent(cs.as_account(provider), provider, device, journal, log=lambda _: None)
        agent.step()
        agent.step()
        seconds, requests = [], []
        for _ in range(steps):
            before, began = counter.count, time.perf_counter()
            agent.step()
            seconds.append(time.perf_counter() - began)
            requests.append(counter.count - before)
        block_seconds, block_requests = [], []
        for _ in range(steps):  # a block came, with nothing for this agent
            chain.mine()
            before, began = counter.count, time.perf_counter()
            agent.step()
            block_seconds.append(time.perf_counter() - began)
            block_requests.append(counter.count - before)
        agent.close()
        rows.append(
            {
                "held jobs": f"{count:,}",
                "idle step (ms)": f"{1_000 * statistics.median(seconds):.1f}",
                "RPC requests per step": f"{statistics.median(requests):.0f}",
                "step after a block (ms)": f"{1_000 * statistics.median(block_seconds):.1f}",
                "its RPC requests": f"{statistics.median(block_requests):.0f}",
                "jobs made (s)": f"{made:.0f}",
            }
        )
    click.echo(
        f"idle step, median of {steps} steps: nothing due and no new block; then a new block"
        " with no event for the agent:\n"
    )
    click.echo(format_table(rows, list(rows[0])) + "\n")


@click.command(cls=ConnectedProviderCommand)
@click.option("--held", default="0,100,1000", show_default=True, help="held-job counts")
@click.option("--idle-only", is_flag=True, help="only the idle-step figures")
@click.option("--steps", default=IDLE_STEPS, show_default=True, help="idle steps measured")
def cli(held, idle_only, steps):
    """Agent latency: posted -> accepted -> result on chain, and reveal window -> reveals;
    then the idle step's cost against the jobs held."""
    logger.set_level("WARNING")
    test = accounts.test_accounts
    deployer, client = test[0], test[9]
    workdir = Path(tempfile.mkdtemp(prefix="computeshare-bench-agent-"))
    manifest = workdir / "manifest.json"
    cs = deploy_connected(project, deployer, DeployConfig(), manifest)
    cs.token.transfer(client, 100_000 * TOKEN, sender=deployer)
    if not idle_only:
        latency(cs, deployer, client, workdir)
    idle(cs, deployer, client, workdir, sorted(int(n) for n in held.split(",")), steps)


def latency(cs, deployer, client, workdir: Path) -> None:
    test = accounts.test_accounts
    agents = []
    for index in (3, 4, 5):
        cs.token.transfer(test[index], 20_000 * TOKEN, sender=deployer)
        me = cs.as_account(test[index])
        me.stake(10_000 * TOKEN)
        device = me.register_device(device_spec(max_concurrent_jobs=8), "ipfs://bench")
        journal = Journal.open(workdir / f"agent-{index}.json", chain.blocks.height + 1)
        agents.append(Agent(me, test[index], device, journal, log=lambda _: None))
    buyer = cs.as_account(client)
    rows = []
    for k in (1, 3):
        accept, result, reveal = [], [], []
        for _ in range(JOBS):
            job_id = buyer.post_job(
                SPEC, job_requirements(), price=10 * TOKEN, replicas=k, duration=3_600
            )
            accept.append(_until(agents, lambda j=job_id, k=k: buyer.jobs.view(j).accepted == k))
            if k == 1:
                result.append(_until(agents, lambda j=job_id: buyer.jobs.view(j).revealed == 1))
            else:
                result.append(_until(agents, lambda j=job_id: buyer.jobs.view(j).committed == 3))
                reveal.append(_until(agents, lambda j=job_id: buyer.jobs.view(j).revealed == 3))
        rows.append(
            {
                "job": f"k = {k}",
                "posted -> accepted (s)": f"{statistics.median(accept):.2f}",
                "accepted -> result on chain (s)": f"{statistics.median(result):.2f}",
                "reveal window -> all revealed (s)": (
                    f"{statistics.median(reveal):.2f}" if reveal else "- (submit)"
                ),
            }
        )
    click.echo(f"agent latency, median of {JOBS} jobs, agents polling every {POLL} s:\n")
    click.echo(format_table(rows, list(rows[0])))
