"""The main job: the whole ComputeShare market on a local node, end to end.

1. ape-foundry starts anvil; the deploy steps of `ape run deploy` deploy and wire the suite
   and hand every owner role to the timelock.
2. Four providers stake and register devices; four provider agents start as separate
   processes (`computeshare agent`), one of them `--faulty`.
3. Two clients post k = 3 and k = 1 jobs running real workloads (a native hashing chain,
   a WebAssembly Monte Carlo estimate, a WebAssembly module that traps). The agents validate
   each spec, accept, run it in a worker process, commit, reveal and finalize; each serves
   its results, which the summary fetches and checks against the chain.
   The faulty provider is outvoted and slashed in a k = 3 job; its wrong optimistic result
   in a k = 1 job is disputed by the client, who re-runs the workload, and the arbiter
   rules for the client.
4. Token holders pass a proposal that lowers the protocol fee and pays a grant from the
   treasury: vote (one by signature), queue, timelock delay, execute.
5. A summary: devices, jobs and outcomes, balances and stakes, the treasury, gas used;
   the market indexed and the dashboard's pages written to build/demo-report/.

Only the chain's clock is moved (challenge windows, voting period, timelock delay); the
node and every agent process stop when the script ends.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand
from ape.logging import logger

from computeshare.abi import PROJECT_ROOT, selectors
from computeshare.client import ComputeShare
from computeshare.deploy import DeployConfig, Deployment, Manifest
from computeshare.gas import format_table
from computeshare.governance import FOR, STATE_NAMES, call
from computeshare.jobs import OUTCOME_COMPLETED, STATUS_DISPUTED, STATUS_FINALIZED
from computeshare.params import parameter
from computeshare.results import ResultError
from computeshare.signing import sign_ballot
from computeshare.specs import device_spec, job_requirements
from computeshare.workloads import encode_spec, execute, pack_u64, result_hash, wasm_spec

TOKEN = 10**18
DAY = 86_400
PROVIDERS = {  # test account index -> (name, region, gpus, faulty)
    3: ("alpha", 276, 2, False),
    4: ("bravo", 276, 2, False),
    5: ("mallory", 276, 4, True),
    6: ("delta", 840, 2, False),
}
CLIENTS = {7: "acme-labs", 8: "beta-ai"}
VOTERS = {9: "voter-1", 10: "voter-2", 11: "voter-3"}
ARBITER, GUARDIAN = 1, 2
JOB_TIMEOUT = 90


def step(message: str) -> None:
    click.secho(f"==> {message}", bold=True)


def show(amount: int) -> str:
    return f"{amount / TOKEN:,.2f}"


JOBS = [
    # label, client, replicas, workload, spec, requirements
    (
        "hash-k3",
        7,
        3,
        "sha256-chain",
        encode_spec("sha256-chain", {"seed": "computeshare", "rounds": 200_000}),
        {"region": 276},
    ),
    (
        "montecarlo-k3",
        8,
        3,
        "wasm monte-carlo",
        wasm_spec("monte-carlo", pack_u64(42, 200_000), fuel=50_000_000),
        {},
    ),
    (
        "trap-k1",
        7,
        1,
        "wasm checked-div",
        wasm_spec("checked-div", (7).to_bytes(4, "little") + bytes(4), fuel=1_000_000),
        {"region": 840},
    ),
    (
        "hash-k1-disputed",
        8,
        1,
        "sha256-chain",
        encode_spec("sha256-chain", {"seed": "mallory-gets-this", "rounds": 50_000}),
        {"min_gpu_count": 4},
    ),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@click.command(cls=ConnectedProviderCommand)
def cli():
    """Run the ComputeShare market end to end on a local node and print a summary."""
    logger.set_level("WARNING")  # the story, not a line per transaction
    started = time.monotonic()
    test = accounts.test_accounts
    deployer = test[0]
    workdir = Path(tempfile.mkdtemp(prefix="computeshare-demo-"))
    names = {test[i].address: name for i, (name, *_) in PROVIDERS.items()}
    names.update({test[i].address: name for i, name in {**CLIENTS, **VOTERS}.items()})

    step(f"deploying ComputeShare on chain {chain.chain_id} ({chain.provider.uri})")
    config = DeployConfig(arbiter=test[ARBITER].address, guardian=test[GUARDIAN].address)
    manifest_file = workdir / "manifest.json"
    deployment = Deployment(project, deployer, config, Manifest.open(manifest_file))
    deployment.run()
    cs = ComputeShare.from_manifest(manifest_file, account=deployer)
    timelock = cs.timelock.address
    names[timelock] = "treasury (timelock)"
    click.echo(f"    {deployment.sent} transactions; every owner role is the timelock's")

    step("funding participants; voters delegate to themselves; the treasury gets 5M tokens")
    for index in (*PROVIDERS, *CLIENTS):
        cs.token.transfer(test[index], 100_000 * TOKEN, sender=deployer)
    for index, amount in zip(VOTERS, (25_000_000, 15_000_000, 10_000_000), strict=True):
        cs.token.transfer(test[index], amount * TOKEN, sender=deployer)
        cs.token.invoke_transaction("delegate", test[index], sender=test[index])
    cs.token.transfer(timelock, 5_000_000 * TOKEN, sender=deployer)

    step("providers stake 10,000 tokens and register a device each (its URI serves results)")
    ports = {index: free_port() for index in PROVIDERS}
    for index, (name, region, gpus, faulty) in PROVIDERS.items():
        me = ComputeShare.from_manifest(manifest_file, account=test[index])
        me.stake(10_000 * TOKEN)
        me.register_device(
            device_spec(region=region, gpu_count=gpus), f"http://127.0.0.1:{ports[index]}"
        )
        click.echo(f"    {name:<8} region {region}, {gpus} GPUs" + (" (faulty)" if faulty else ""))

    agents = start_agents(chain.provider.uri, manifest_file, workdir, ports)
    try:
        jobs = run_jobs(cs, manifest_file, test, agents)
        for job in jobs:  # each result from the agents, checked against the chain
            try:
                job["result"] = cs.result(job["id"])
            except ResultError as error:
                job["result"] = None
                click.echo(f"    {job['label']}: no result that matches the chain ({error})")
    finally:
        for process in agents:
            process.terminate()
        for process in agents:
            process.wait(timeout=10)
    click.echo("    agents stopped")

    fee_before = cs.escrow.parameter(parameter("JobEscrow", "PROTOCOL_FEE_BPS").key)
    swept = sum(cs.escrow.sweep_fees(shard, sender=deployer).return_value for shard in range(16))
    click.echo(f"    {show(swept)} tokens of protocol fees swept to the treasury")
    govern(cs, test)

    summary(cs, jobs, names, fee_before)
    report(cs, workdir)
    shutil.rmtree(workdir)
    click.echo(f"\ndemo finished in {time.monotonic() - started:.0f} s")


REPORT = PROJECT_ROOT / "build" / "demo-report"


def report(cs: ComputeShare, workdir: Path) -> None:
    """Indexes the demo's market and writes the dashboard's pages as static files, so the
    demo leaves something to open with nothing running."""
    from computeshare.dashboard import write_static

    index = cs.open_index(workdir / "index.sqlite")
    synced = index.sync()
    if REPORT.exists():
        shutil.rmtree(REPORT)
    pages = write_static(index, REPORT)
    click.echo(
        f"\nDashboard snapshot: {REPORT.relative_to(PROJECT_ROOT)}/index.html "
        f"({len(pages)} pages from {synced.events:,} events)"
    )


def start_agents(
    uri: str, manifest_file: Path, workdir: Path, ports: dict[int, int]
) -> list[subprocess.Popen]:
    step("starting 4 provider agents as separate processes")
    executable = Path(sys.executable).with_name("computeshare")
    processes = []
    for index, (_name, _region, _gpus, faulty) in PROVIDERS.items():
        command = [
            str(executable),
            "agent",
            "--network",
            uri,
            "--account",
            f"TEST::{index}",
            "--manifest",
            str(manifest_file),
            "--journal",
            str(workdir / f"agent-{index}.json"),
            "--poll",
            "0.3",
            "--serve",
            f"127.0.0.1:{ports[index]}",
        ] + (["--faulty"] if faulty else [])
        processes.append(subprocess.Popen(command))
    return processes


def run_jobs(cs: ComputeShare, manifest_file: Path, test, agents) -> list[dict]:
    step("clients deposit 1,000 tokens and post jobs: " + ", ".join(label for label, *_ in JOBS))
    for index in CLIENTS:
        ComputeShare.from_manifest(manifest_file, account=test[index]).deposit(1_000 * TOKEN)
    jobs = []
    for label, client_index, replicas, workload, spec, requirements in JOBS:
        client = ComputeShare.from_manifest(manifest_file, account=test[client_index])
        job_id = client.post_job(
            spec,
            job_requirements(**requirements),
            price=50 * TOKEN,
            replicas=replicas,
            duration=2 * 3_600,
        )
        jobs.append(
            {
                "label": label,
                "id": job_id,
                "client": client,
                "k": replicas,
                "workload": workload,
                "expected": result_hash(execute(spec)),
            }
        )
        click.echo(f"    {label:<17} k={replicas} {workload:<17} job 0x{job_id.hex()[:10]}")

    step("agents run the jobs; the clients check optimistic results; the arbiter rules")
    deadline = time.monotonic() + JOB_TIMEOUT
    last_height, idle_since = chain.blocks.height, time.monotonic()
    while time.monotonic() < deadline:
        stopped = [p for p in agents if p.poll() is not None]
        if stopped:
            raise click.ClickException(f"an agent exited with code {stopped[0].returncode}")
        views = [cs.escrow_view.job(job["id"]) for job in jobs]
        if all(view.status == STATUS_FINALIZED for view in views):
            return jobs
        for job, view in zip(jobs, views, strict=True):
            check_optimistic(cs, job, view, test)
        height = chain.blocks.height
        if height != last_height:
            last_height, idle_since = height, time.monotonic()
        elif time.monotonic() - idle_since > 2 and waiting_on_windows(views):
            end = max(v.phase_end for v in views if v.status != STATUS_FINALIZED)
            click.echo("    every open job waits on its challenge window: the clock moves a day")
            chain.pending_timestamp = max(end + 1, chain.pending_timestamp)
            chain.mine()
        time.sleep(0.3)
    raise click.ClickException(f"jobs not final after {JOB_TIMEOUT} s")


def check_optimistic(cs: ComputeShare, job: dict, view, test) -> None:
    """A k = 1 client re-runs the workload and disputes a wrong result; the arbiter, who
    re-runs it too, rules."""
    if job["k"] != 1 or view.revealed != 1 or view.status == STATUS_FINALIZED:
        return
    revealed = cs.jobs.replica(job["id"])[2]
    if view.status == STATUS_DISPUTED:
        for_client = revealed != job["expected"]
        cs.jobs.rule(job["id"], for_client, sender=test[ARBITER])
        job["ruling"] = "for client" if for_client else "for provider"
        click.echo(f"    arbiter re-ran {job['label']} and ruled {job['ruling']}")
    elif revealed != job["expected"] and "disputed" not in job:
        job["client"].jobs.dispute(job["id"], sender=job["client"].account)
        job["disputed"] = True
        click.echo(f"    {job['label']}: the result is wrong; the client disputes (bond posted)")


def waiting_on_windows(views) -> bool:
    """Every open job is an undisputed, revealed k = 1 job: only time can settle it."""
    open_views = [v for v in views if v.status != STATUS_FINALIZED]
    return bool(open_views) and all(
        v.replicas == 1 and v.revealed == 1 and v.status != STATUS_DISPUTED for v in open_views
    )


def govern(cs: ComputeShare, test) -> None:
    step("DAO: lower the protocol fee to 1% and pay a 100,000-token grant from the treasury")
    key = parameter("JobEscrow", "PROTOCOL_FEE_BPS").key
    grantee = test[12]
    actions = [
        call(cs.escrow, "set_parameter", key, 100),
        call(cs.token, "transfer", grantee.address, 100_000 * TOKEN),
    ]
    proposer = test[9]
    receipt = cs.governor.propose(
        [a.target for a in actions],
        [a.value for a in actions],
        [a.calldata for a in actions],
        "Lower the protocol fee to 1% and fund the agent-tooling grant",
        sender=proposer,
    )
    proposal = receipt.return_value
    click.echo(f"    proposal {proposal} by voter-1")
    chain.pending_timestamp += cs.governor.votingDelay() + 1
    chain.mine()
    cs.governor.castVote(proposal, FOR, sender=test[9])
    cs.governor.castVoteWithReason(proposal, FOR, "cheaper jobs, more clients", sender=test[10])
    signature = sign_ballot(
        test[11].private_key,
        chain_id=chain.chain_id,
        governor=cs.governor.address,
        proposal_id=proposal,
        support=FOR,
        voter=test[11].address,
        nonce=cs.governor.nonces(test[11]),
    )
    cs.governor.castVoteBySig(proposal, FOR, test[11], signature, sender=test[12])
    for_ = cs.governor.proposalVotes(proposal)[1]
    click.echo(f"    3 votes for ({show(for_)}), one cast by signature and relayed")
    chain.pending_timestamp = cs.governor.proposalDeadline(proposal) + 1
    chain.mine()
    cs.governor.queue(proposal, sender=proposer)
    click.echo(f"    queued in the timelock; delay {cs.timelock.delay() // DAY} days")
    chain.pending_timestamp = cs.governor.proposalEta(proposal)
    chain.mine()
    cs.governor.execute(proposal, sender=proposer)
    state = STATE_NAMES[cs.governor.state(proposal)]
    click.echo(f"    {state}: fee is now {cs.escrow.parameter(key) / 100:.2f}%")


def summary(cs: ComputeShare, jobs, names, fee_before: int) -> None:
    step("summary")
    start = cs.manifest["contracts"]["ComputeToken"]["block"]
    head = chain.blocks.height + 1
    settled = {
        # `provider` is shadowed on ape's log objects: read it from the event arguments.
        (bytes(e.job_id), e.event_arguments["provider"]): e
        for e in cs.escrow.ReplicaSettled.range(start, head)
    }
    outcome_names = {0: "completed", 1: "failed", 2: "slashed"}

    click.echo("\nDevices")
    rows = []
    for address, name in names.items():
        for device_id, device in cs.devices_of(address):
            record = cs.escrow_view.device_record(device_id)
            rows.append(
                {
                    "provider": name,
                    "device": "0x" + device_id.hex()[:10],
                    "region": device.spec.region,
                    "gpus": device.spec.gpu_count,
                    "completed": record.completed,
                    "failed": record.failed,
                    "slashed": record.slashed,
                }
            )
    click.echo(format_table(rows, list(rows[0])))

    click.echo("\nJobs")
    rows = []
    for job in jobs:
        view = cs.escrow_view.job(job["id"])
        replicas = []
        for slot in range(view.accepted):
            provider = cs.escrow_view.assignment(job["id"], slot).provider
            if view.replicas == 1:  # a k = 1 replica is a hash on chain: see its events
                provider = cs.jobs.replica(job["id"])[0]
            event = settled.get((job["id"], provider))
            outcome = outcome_names[event.outcome] if event else "?"
            paid = f" {show(event.paid)}" if event and event.paid else ""
            replicas.append(f"{names.get(provider, provider[:8])}:{outcome}{paid}")
        rows.append(
            {
                "job": job["label"],
                "k": job["k"],
                "workload": job["workload"],
                "status": "finalized" if view.status == STATUS_FINALIZED else str(view.status),
                **result_columns(job["result"]),
                "replicas (paid)": " ".join(replicas),
                "dispute": job.get("ruling", "-"),
            }
        )
    click.echo(format_table(rows, list(rows[0])))

    click.echo("\nMoney (tokens)")
    paid = Counter()
    slashed = Counter()
    for (_, provider), event in settled.items():
        paid[provider] += event.paid if event.outcome == OUTCOME_COMPLETED else 0
        slashed[provider] += event.slashed
    rows = []
    for address, name in names.items():
        pool = cs.staking.pool(address)
        rows.append(
            {
                "account": name,
                "wallet": show(cs.token.balanceOf(address)),
                "escrow balance": show(cs.escrow.balanceOf(address)),
                "own stake": show(pool.own_stake),
                "earned": show(paid[address]) if address in paid else "-",
                "slashed": show(slashed[address]) if address in slashed else "-",
            }
        )
    click.echo(format_table(rows, list(rows[0])))
    click.echo(
        f"\nprotocol fee: {fee_before / 100:.2f}% before the proposal, "
        f"{cs.escrow.parameter(0) / 100:.2f}% after"
    )

    click.echo("\nGas used, by operation (every transaction of the demo)")
    click.echo(format_table(gas_by_operation(cs, start, head), ["operation", "calls", "gas_used"]))


def result_columns(result) -> dict:
    """What the agents served for a job, checked against the chain."""
    if result is None:
        return {"result": "refused", "fuel": "-", "output": "-"}
    return {
        "result": result.status_name,
        "fuel": f"{result.fuel:,}",
        "output": f"{len(result.output)} B {result.output[:6].hex()}",
    }


def gas_by_operation(cs: ComputeShare, start: int, head: int) -> list[dict]:
    """Walks every block of the demo and totals receipts by contract method."""
    methods = {
        entry["address"].lower(): (name, selectors(cs.manifest["abis"][name]))
        for name, entry in cs.manifest["contracts"].items()
    }
    calls, gas = Counter(), Counter()
    web3 = chain.provider.web3
    for number in range(start, head):
        block = web3.eth.get_block(number, full_transactions=True)
        for tx in block.transactions:
            if tx["to"] is None:
                label = "deploy"
            else:
                name, known = methods.get(tx["to"].lower(), ("other", {}))
                label = f"{name}.{known.get(bytes(tx['input'])[:4], '?')}"
            receipt = web3.eth.get_transaction_receipt(tx["hash"])
            calls[label] += 1
            gas[label] += receipt["gasUsed"]
    return [
        {"operation": label, "calls": calls[label], "gas_used": f"{gas[label]:,}"}
        for label in sorted(gas, key=gas.get, reverse=True)
    ]
