"""A burst of jobs against three real provider agents: post-to-result latency when many k = 1
jobs arrive at once, against the same for jobs posted one by one to idle agents.

Run: `make bench-burst` (part of `make bench`): it starts a plain anvil (ape's own runs with
--steps-tracing, which keeps every opcode of thousands of transactions in memory) and runs
`ape run bench_burst --network http://127.0.0.1:PORT`.

The production deployment; three providers stake and register a device each, and run
`computeshare agent` as separate processes (polling every `POLL` s, each with its own event
index; workloads in worker processes, at most the machine's CPU count at once per agent).
First `BENCH_BURST_IDLE` jobs (default 10) are posted one at a time, each once the previous
one's result is on chain (after one uncounted job that warms the agents up); then
`BENCH_BURST_JOBS` (default 200) from `CLIENTS` clients (impersonated on the local node) in
one burst. All are small sha256-chain jobs.

Latency is post -> result: the block of a job's `JobPosted` to the block of its
`ResultSubmitted`, in wall-clock time (a thread notes when each block first appears at the
node, polling every 20 ms). Then the chain's time moves past the challenge window and the
agents finalize every job: the script checks from `ReplicaSettled` and Staking's `Slashed`
events that every job was completed and paid and nothing was slashed, and reports the
acceptances per minute during the burst and each agent's share.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand
from ape.logging import logger
from web3 import HTTPProvider, Web3

from computeshare.constants import DAY, OUTCOMES, TOKEN
from computeshare.deploy import DeployConfig, deploy_connected
from computeshare.report import format_table
from computeshare.specs import device_spec, job_requirements
from devtools.populate import Populator, addresses

JOBS = int(os.environ.get("BENCH_BURST_JOBS", 200))
IDLE_JOBS = int(os.environ.get("BENCH_BURST_IDLE", 10))
PROVIDERS = (3, 4, 5)  # test accounts: the agents sign with TEST::<n>
CLIENTS = 8
POLL = 0.2
SPEC = b'{"workload": "sha256-chain", "input": {"seed": "burst", "rounds": 50}}'
REQUIREMENTS = job_requirements(min_gpu_count=0, min_vram_mb=0)
PRICE = TOKEN
TIMEOUT = float(os.environ.get("BENCH_BURST_TIMEOUT", 3_600))


class BlockClock:
    """Notes the wall-clock time each block first appears at the node, from a thread of its
    own (its own HTTP connection), polling every `period` seconds."""

    def __init__(self, uri: str, period: float = 0.02):
        self.web3 = Web3(HTTPProvider(uri, request_kwargs={"timeout": 30}))
        self.seen: dict[int, float] = {}
        self.period = period
        self.last = self.web3.eth.block_number
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while self.running:
            try:
                head = self.web3.eth.block_number
            except Exception:  # a busy node: the next poll notes the blocks
                head = self.last
            now = time.monotonic()
            for number in range(self.last + 1, head + 1):
                self.seen[number] = now
            self.last = max(self.last, head)
            time.sleep(self.period)

    def at(self, block: int) -> float:
        """When block `block` was first seen (waits for the thread to see it)."""
        while block not in self.seen:
            time.sleep(self.period)
        return self.seen[block]

    def stop(self) -> None:
        self.running = False
        self.thread.join()


def start_agents(uri: str, manifest: Path, workdir: Path) -> list[subprocess.Popen]:
    executable = Path(sys.executable).with_name("computeshare")
    processes = []
    for index in PROVIDERS:
        log = open(workdir / f"agent-{index}.log", "w")  # noqa: SIM115 (closed with the process)
        command = [
            str(executable), "agent", "--network", uri, "--account", f"TEST::{index}",
            "--manifest", str(manifest), "--journal", str(workdir / f"agent-{index}.json"),
            "--poll", str(POLL),
        ]  # fmt: skip
        processes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
    return processes


def events(contract, name: str, first: int) -> list:
    return list(getattr(contract, name).range(first, chain.blocks.height + 1))


def until(condition, what: str, agents: list[subprocess.Popen], limit: float = TIMEOUT) -> None:
    began = time.monotonic()
    while not condition():
        stopped = [p for p in agents if p.poll() is not None]
        if stopped:
            raise click.ClickException(f"an agent exited with code {stopped[0].returncode}")
        if time.monotonic() - began > limit:
            raise click.ClickException(f"timed out waiting for {what}")
        time.sleep(0.5)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def latencies(cs, clock: BlockClock, first: int, jobs: set[bytes]) -> list[float]:
    """Post -> result seconds of `jobs`, from their events since block `first`."""
    posted = {bytes(e.job_id): e.block_number for e in events(cs.escrow, "JobPosted", first)}
    done = {bytes(e.job_id): e.block_number for e in events(cs.escrow, "ResultSubmitted", first)}
    return [clock.at(done[j]) - clock.at(posted[j]) for j in jobs if j in done]


@click.command(cls=ConnectedProviderCommand)
def cli():
    """Post-to-result latency of a burst of k = 1 jobs against jobs posted one by one."""
    logger.set_level("WARNING")
    test = accounts.test_accounts
    deployer = test[0]
    workdir = Path(tempfile.mkdtemp(prefix="computeshare-bench-burst-"))
    manifest = workdir / "manifest.json"
    began = time.monotonic()
    cs = deploy_connected(project, deployer, DeployConfig(), manifest)
    for index in PROVIDERS:
        cs.token.transfer(test[index], 20_000 * TOKEN, sender=deployer)
        me = cs.as_account(test[index])
        me.stake(10_000 * TOKEN)
        # Capacity for every job of the run: a submitted k = 1 job holds its place on the
        # device until it is finalized, a day later.
        me.register_device(device_spec(max_concurrent_jobs=1_024), "ipfs://bench")
    pop = Populator(chain.provider)
    clients = addresses("burst-client", CLIENTS)
    pop.fund_gas(clients)
    for client in clients:
        pop.send(deployer.address, cs.token, "transfer", client, (JOBS + IDLE_JOBS) * PRICE)
        pop.send(client, cs.token, "approve", cs.escrow.address, 2**256 - 1)
        pop.send(client, cs.escrow, "deposit", (JOBS + IDLE_JOBS) * PRICE)
    pop.wait()
    first = chain.blocks.height + 1
    click.echo(f"deployed, 3 providers and {CLIENTS} clients in {time.monotonic() - began:.0f} s")

    clock = BlockClock(chain.provider.uri)
    agents = start_agents(chain.provider.uri, manifest, workdir)
    try:
        logs = [workdir / f"agent-{index}.log" for index in PROVIDERS]
        until(
            lambda: all("serving device" in log.read_text() for log in logs),
            "the agents' start",
            agents,
            limit=120,
        )

        def post(client: str) -> None:
            deadline = chain.pending_timestamp + 4 * 3_600
            pop.send(client, cs.escrow, "post", SPEC, REQUIREMENTS, PRICE, 1, deadline, PRICE)

        def submitted() -> set[bytes]:
            return {bytes(e.job_id) for e in events(cs.escrow, "ResultSubmitted", first)}

        idle_jobs: set[bytes] = set()
        for n in range(-1, IDLE_JOBS):  # the first one warms the agents up, uncounted
            mark = chain.blocks.height + 1
            post(clients[n % CLIENTS])
            pop.wait()
            (job,) = (bytes(e.job_id) for e in events(cs.escrow, "JobPosted", mark))
            until(lambda j=job: j in submitted(), "an idle job's result", agents)
            if n >= 0:
                idle_jobs.add(job)
            else:
                warm_up = job
        idle = latencies(cs, clock, first, idle_jobs)
        click.echo(f"{IDLE_JOBS} jobs one by one: done")

        burst_first = chain.blocks.height + 1
        started = time.monotonic()
        for n in range(JOBS):
            post(clients[n % CLIENTS])
        pop.wait()
        posting = time.monotonic() - started
        burst_jobs = {bytes(e.job_id) for e in events(cs.escrow, "JobPosted", burst_first)}
        click.echo(f"{len(burst_jobs)} jobs posted in {posting:.1f} s")
        until(lambda: burst_jobs <= submitted(), "the burst's results", agents)
        burst = latencies(cs, clock, first, burst_jobs)
        accepted = events(cs.escrow, "ReplicaAccepted", burst_first)
        accept_times = [clock.at(e.block_number) for e in accepted]
        accept_span = max(accept_times) - clock.at(burst_first)
        per_agent = Counter(e.event_arguments["provider"] for e in accepted)

        # Settlement: past the challenge window the agents finalize every job.
        chain.provider.make_request("evm_increaseTime", [DAY + 60])
        chain.provider.make_request("evm_mine", [])
        every = idle_jobs | burst_jobs | {warm_up}

        def settled() -> set[bytes]:
            return {bytes(e.job_id) for e in events(cs.escrow, "JobSettled", first)}

        until(lambda: every <= settled(), "the jobs' settlement", agents)
        replicas = events(cs.escrow, "ReplicaSettled", first)
        outcomes = Counter(OUTCOMES.get(e.outcome, str(e.outcome)) for e in replicas)
        slashed = sum(e.slashed for e in replicas)
        slashes = events(cs.staking, "Slashed", first)
        paid = sum(e.paid for e in replicas)
    finally:
        for process in agents:
            process.terminate()
        for process in agents:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        clock.stop()

    rows = []
    for name, values, count in (
        ("one by one, idle agents", idle, IDLE_JOBS),
        (f"burst of {JOBS}", burst, JOBS),
    ):
        rows.append(
            {
                "jobs (k = 1)": name,
                "results": f"{len(values)} of {count}",
                "p50 (s)": f"{percentile(values, 50):.2f}",
                "p95 (s)": f"{percentile(values, 95):.2f}",
                "max (s)": f"{max(values):.2f}",
                "mean (s)": f"{statistics.fmean(values):.2f}",
            }
        )
    click.echo(
        f"\npost -> result on chain, 3 agents polling every {POLL} s, {os.cpu_count()} CPUs:\n"
    )
    click.echo(format_table(rows, list(rows[0])))
    click.echo(
        f"\nburst: {len(accepted)} acceptances in {accept_span:.1f} s from the first post: "
        f"{60 * len(accepted) / accept_span:,.0f} jobs accepted per minute; per agent: "
        + ", ".join(f"{p[:8]} {n}" for p, n in sorted(per_agent.items()))
    )
    lost = len(every) - outcomes.get("completed", 0)
    click.echo(
        f"settled: {len(replicas)} replicas of {len(every)} jobs, outcomes {dict(outcomes)}; "
        f"paid {paid / TOKEN:,.2f} tokens; lost {lost}; slashed {slashed / TOKEN:,.2f} tokens "
        f"({len(slashes)} Slashed events)"
    )
    said = "\n".join(log.read_text() for log in logs)
    click.echo(
        f"agents' lines: {said.count('all replicas taken')} jobs another agent took first,"
        f" {said.count('waits (capacity')} jobs an agent let wait for a worker (said once each)"
    )
    click.echo(f"agent logs: {workdir}")
    if lost or slashed or slashes:
        raise click.ClickException("a job was lost or a provider slashed")
