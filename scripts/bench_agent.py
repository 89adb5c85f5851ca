"""The provider agent's latency on a local node: from a job's `JobPosted` to its acceptance,
to its result on chain, and (k = 3) from the reveal window's opening to every reveal.

    ape run bench_agent

Three agents run in this process, each stepping every `POLL` seconds, against the suite the
deploy steps build; workloads run in worker processes as in production. Prints the median
of `JOBS` jobs per case. Wall-clock figures: they include each worker's start (about 0.4 s).
"""

from __future__ import annotations

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
from computeshare.report import format_table
from computeshare.specs import device_spec, job_requirements
from computeshare.workloads import pack_u64, wasm_spec

POLL = 0.1
JOBS = 3
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


@click.command(cls=ConnectedProviderCommand)
def cli():
    """Agent latency: posted -> accepted -> result on chain, and reveal window -> reveals."""
    logger.set_level("WARNING")
    test = accounts.test_accounts
    deployer, client = test[0], test[9]
    workdir = Path(tempfile.mkdtemp(prefix="computeshare-bench-agent-"))
    manifest = workdir / "manifest.json"
    cs = deploy_connected(project, deployer, DeployConfig(), manifest)
    agents = []
    for index in (3, 4, 5):
        cs.token.transfer(test[index], 20_000 * TOKEN, sender=deployer)
        me = cs.as_account(test[index])
        me.stake(10_000 * TOKEN)
        device = me.register_device(device_spec(max_concurrent_jobs=8), "ipfs://bench")
        journal = Journal.open(workdir / f"agent-{index}.json", chain.blocks.height + 1)
        agents.append(Agent(me, test[index], device, journal, log=lambda _: None))
    cs.token.transfer(client, 100_000 * TOKEN, sender=deployer)
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
