"""One long job end to end on the local node: a k = 1 job whose compute takes
`BENCH_LONG_SECONDS` (default 600) of wall time in the metered sandbox, run by a real
`computeshare agent` process, verified on chain, settled and paid.

Run: `make bench-long` (part of `make bench`): it starts a plain anvil and runs
`ape run bench_long --network http://127.0.0.1:PORT`. `BENCH_LONG_SECONDS=30` for a quick
check.

The production deployment; one provider stakes, registers a device (the default spec, at
`price_per_second` wei a compute-second) and runs `computeshare agent` as a separate process
with its result server; one client is funded. The job is the catalogue's `monte-carlo`
kernel (a seeded estimate of pi), sized by a calibration: two runs in a worker process, as
the agent runs jobs, give its fuel per sample (exact: the metering charges every path its
worst case) and its samples per second here, so the samples for the target time follow
(the machine is shared: the run may take more or less than the target). Its terms come
from the published floor and the providers' default policy: the fuel limit is the predicted
fuel plus 1 %, rounded up to whole compute-seconds at the floor (`R_FLOOR` fuel each); the
compute-seconds it pays for are that limit over `R_FLOOR`, its price those seconds at the
device's price (the default policy asks no minimum price per gigafuel), its commit deadline
the run's wall-clock limit at the floor (`workloads.run_seconds`) plus the commitment's
time, with two minutes to spare. The agent accepts only what it can finish by then.

While it runs, the script reads the agent's `/progress/<job id>` now and then. At the end
it checks the result on chain (`ResultSubmitted`: status ok, the predicted fuel, the output
hash of the output in the event, the output itself: the samples asked for and pi), moves
the chain's time past the challenge window, waits for the agent to finalize, and checks
from `ReplicaSettled` and Staking's `Slashed` events that the job was completed and paid
and nothing slashed.
"""

from __future__ import annotations

import json
import math
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand
from ape.logging import logger

from computeshare import sandbox, worker
from computeshare.constants import OUTCOMES, TOKEN
from computeshare.deploy import DeployConfig, deploy_connected
from computeshare.metering import R_FLOOR
from computeshare.report import format_table
from computeshare.specs import device_spec, job_requirements
from computeshare.workloads import (
    COMMIT_SECONDS,
    pack_u64,
    run_seconds,
    wasm_spec,
)

SECONDS = float(os.environ.get("BENCH_LONG_SECONDS", 600))
PROVIDER, CLIENT = 3, 1  # test accounts: the agent signs with TEST::3
POLL = 0.5
SEED = 2025
KERNEL = "monte-carlo"
CALIBRATION = (50_000_000, 400_000_000)  # samples of the two calibration runs
SPARE_SECONDS = 120  # between the acceptance check's need and the deadline
PROGRESS_READS = 5  # /progress/ reads while the job runs, about evenly spread


def calibrate() -> tuple[int, int, float]:
    """The kernel's fuel per sample and fixed fuel (two runs in a worker process, as the
    agent runs a job: the fuel is exact, the same on every machine) and its samples a second
    here (wall time, the difference of the two runs: without the worker's start-up)."""
    runs = []
    for samples in CALIBRATION:
        spec = wasm_spec(KERNEL, pack_u64(SEED, samples), fuel=sandbox.MAX_FUEL)
        began = time.perf_counter()
        result = worker.run(spec, None, run_seconds(sandbox.MAX_FUEL))
        runs.append((samples, result.fuel, time.perf_counter() - began))
        if result.status != sandbox.STATUS_OK:
            raise click.ClickException(f"calibration run: status {result.status_name}")
    (n1, f1, t1), (n2, f2, t2) = runs
    per_sample, rest = divmod(f2 - f1, n2 - n1)
    if rest:
        raise click.ClickException("calibration: the fuel is not linear in the samples")
    return per_sample, f1 - per_sample * n1, (n2 - n1) / (t2 - t1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_agent(uri: str, manifest: Path, workdir: Path, serve: str) -> subprocess.Popen:
    executable = Path(sys.executable).with_name("computeshare")
    log = open(workdir / "agent.log", "w")  # noqa: SIM115 (closed with the process)
    command = [
        str(executable), "agent", "--network", uri, "--account", f"TEST::{PROVIDER}",
        "--manifest", str(manifest), "--journal", str(workdir / "agent.json"),
        "--poll", str(POLL), "--serve", serve,
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)


def progress(serve: str, job_id: bytes) -> dict:
    """The agent's `/progress/0x<job id>` answer (an `error` key when it has none)."""
    url = f"http://{serve}/progress/0x{job_id.hex()}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        return json.loads(error.read() or b"{}") or {"error": str(error.code)}
    except OSError as error:
        return {"error": str(error)}


def events(contract, name: str, first: int) -> list:
    return list(getattr(contract, name).range(first, chain.blocks.height + 1))


def until(condition, what: str, agent: subprocess.Popen, limit: float, every=None) -> None:
    """Waits for `condition()`, calling `every()` on each poll; fails if the agent exits."""
    began = time.monotonic()
    while not condition():
        if agent.poll() is not None:
            raise click.ClickException(f"the agent exited with code {agent.returncode}")
        if time.monotonic() - began > limit:
            raise click.ClickException(f"timed out waiting for {what}")
        if every is not None:
            every()
        time.sleep(POLL)


@click.command(cls=ConnectedProviderCommand)
def cli():
    """One k = 1 job of BENCH_LONG_SECONDS of compute, end to end through a real agent."""
    logger.set_level("WARNING")
    per_sample, fixed, rate = calibrate()
    samples = math.ceil(SECONDS * rate)
    predicted = fixed + per_sample * samples
    fuel = -(-predicted * 101 // 100 // R_FLOOR) * R_FLOOR  # + 1 %, whole compute-seconds
    if fuel > sandbox.MAX_FUEL:
        raise click.ClickException(
            f"{SECONDS:.0f} s of {KERNEL} is {predicted:,} fuel here: above MAX_FUEL"
        )
    click.echo(
        f"calibration: {KERNEL} {per_sample} fuel a sample, {rate / 1e6:.1f} M samples/s"
        f" ({rate * per_sample / 1e9:.2f} G fuel/s); {SECONDS:.0f} s -> {samples:,} samples,"
        f" {predicted:,} fuel, limit {fuel:,}"
    )

    test = accounts.test_accounts
    deployer, provider, client = test[0], test[PROVIDER], test[CLIENT]
    workdir = Path(tempfile.mkdtemp(prefix="computeshare-bench-long-"))
    manifest = workdir / "manifest.json"
    began = time.monotonic()
    cs = deploy_connected(project, deployer, DeployConfig(), manifest)
    spec_of_device = device_spec()
    price_per_second = spec_of_device["price_per_second"]
    cs.token.transfer(provider, 20_000 * TOKEN, sender=deployer)
    me = cs.as_account(provider)
    me.stake(10_000 * TOKEN)
    me.register_device(spec_of_device, "ipfs://bench-long")
    compute_seconds = fuel // R_FLOOR
    price = compute_seconds * price_per_second
    duration = math.ceil(run_seconds(fuel) + COMMIT_SECONDS) + SPARE_SECONDS
    cs.token.transfer(client, 10 * price, sender=deployer)
    buyer = cs.as_account(client)
    first = chain.blocks.height + 1
    click.echo(f"deployed, one provider and one client in {time.monotonic() - began:.0f} s")

    serve = f"127.0.0.1:{free_port()}"
    agent = start_agent(chain.provider.uri, manifest, workdir, serve)
    log = workdir / "agent.log"
    readings: list[tuple[float, dict]] = []
    try:
        until(lambda: "serving device" in log.read_text(), "the agent's start", agent, 120)
        spec = wasm_spec(KERNEL, pack_u64(SEED, samples), fuel=fuel)
        requirements = job_requirements(compute_seconds=compute_seconds)
        click.echo(
            f"posting: fuel limit {fuel:,} = {compute_seconds:,} compute-seconds at R_FLOOR,"
            f" price {price / TOKEN:,.3f} tokens ({price_per_second / TOKEN:g} a gigafuel),"
            f" commit deadline in {duration:,} s"
        )
        posted_at = time.monotonic()
        job_id = buyer.post_job(spec, requirements, price=price, replicas=1, duration=duration)
        posted_at = (posted_at + time.monotonic()) / 2  # the post's block, give or take

        def of_job(contract, name: str) -> list:
            return [e for e in events(contract, name, first) if bytes(e.job_id) == job_id]

        def submitted() -> list:
            return of_job(cs.escrow, "ResultSubmitted")

        every = max(5.0, SECONDS / PROGRESS_READS)
        due = [posted_at + 2.0]

        def read_progress() -> None:
            if time.monotonic() >= due[0]:
                due[0] += every
                answer = progress(serve, job_id)
                readings.append((time.monotonic() - posted_at, answer))
                click.echo(f"  +{readings[-1][0]:6.0f} s  /progress: {json.dumps(answer)}")

        until(lambda: bool(submitted()), "the job's result", agent, 20 * SECONDS + 600,
              read_progress)  # fmt: skip
        result_at = time.monotonic()
        (event,) = submitted()
        after = progress(serve, job_id)
        click.echo(f"  result on chain; /progress: {json.dumps(after)}")
        output = bytes(event.output)
        checks = {
            "status ok": event.status == sandbox.STATUS_OK,
            "fuel as calibrated": event.fuel == predicted,
            "output hash": bytes(event.output_hash) == sandbox.keccak(output),
            "output": len(output) == 16 and struct.unpack("<QQ", output)[1] == samples,
        }
        if not all(checks.values()):
            failed = [name for name, ok in checks.items() if not ok]
            raise click.ClickException(f"the result on chain fails: {', '.join(failed)}")
        inside, _ = struct.unpack("<QQ", output)

        view = cs.jobs.view(job_id)
        wait = max(0, view.phase_end - chain.pending_timestamp) + 60
        chain.provider.make_request("evm_increaseTime", [wait])
        chain.provider.make_request("evm_mine", [])

        until(lambda: bool(of_job(cs.escrow, "JobSettled")), "the settlement", agent, 300)
        replicas = of_job(cs.escrow, "ReplicaSettled")
        slashes = events(cs.staking, "Slashed", first)
    finally:
        agent.terminate()
        try:
            agent.wait(timeout=30)
        except subprocess.TimeoutExpired:
            agent.kill()

    (replica,) = replicas
    outcome = OUTCOMES.get(replica.outcome, str(replica.outcome))
    run_wall = after.get("elapsed_seconds") or max(
        (r.get("elapsed_seconds", 0) for _, r in readings), default=0
    )
    rows = [
        {"figure": "job", "value": f"k = 1, {KERNEL}, {samples:,} samples"},
        {"figure": "fuel used (on chain)", "value": f"{event.fuel:,}"},
        {"figure": "fuel limit", "value": f"{fuel:,}"},
        {"figure": "wall seconds of the run (agent)", "value": f"{run_wall:,.1f}"},
        {"figure": "target (BENCH_LONG_SECONDS)", "value": f"{SECONDS:,.0f} s"},
        {
            "figure": "fuel/s vs R_floor",
            "value": f"{event.fuel / run_wall / 1e9:.2f} G/s = "
            f"{event.fuel / run_wall / R_FLOOR:.1f} x R_floor",
        },
        {"figure": "wall limit (default policy)", "value": f"{run_seconds(fuel):,.0f} s"},
        {"figure": "post -> result on chain", "value": f"{result_at - posted_at:,.1f} s"},
        {"figure": "output", "value": f"pi ~ {4 * inside / samples:.6f}"},
        {"figure": "settled", "value": outcome},
        {"figure": "paid to the provider", "value": f"{replica.paid / TOKEN:,.4f} tokens"},
        {"figure": "fee", "value": f"{replica.fee / TOKEN:,.4f} tokens"},
        {
            "figure": "slashed",
            "value": f"{replica.slashed / TOKEN:,.4f} tokens ({len(slashes)} Slashed events)",
        },
    ]
    click.echo(f"\none long job, {os.cpu_count()} CPUs, agent polling every {POLL} s:\n")
    click.echo(format_table(rows, ["figure", "value"]))
    click.echo(f"agent log: {log}")
    if outcome != "completed" or replica.paid == 0 or replica.slashed or slashes:
        raise click.ClickException("the job was not completed and paid, or a stake slashed")
