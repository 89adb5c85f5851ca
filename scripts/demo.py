"""The main job: the whole ComputeShare market on a local node, end to end.

1. ape-foundry starts anvil; the deploy steps of `ape run deploy` deploy and wire the suite
   and hand every owner role to the timelock.
2. Four providers stake and register devices; four provider agents start as separate
   processes (`computeshare agent`), one of them `--faulty`.
3. Two clients post k = 3 and k = 1 jobs running real workloads (a native hashing chain,
   a WebAssembly Monte Carlo estimate, a WebAssembly module that traps, and zlib's gzip
   compiled from source gzipping a few MiB of genome files: its module and input tree
   served by the client's data store by URI, its output files fetched from the three
   replicas and checked chunk by chunk against the root on chain). The agents validate
   each spec, accept, run it in a worker process, commit, reveal and finalize; each serves
   its results, which the summary fetches and checks against the chain.
   The faulty provider disagrees in a k = 3 job, which goes to the arbiter, whose ruling
   slashes it; its wrong optimistic result in a k = 1 job is disputed by the client, who
   re-runs the workload, and the arbiter rules for the client.
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
from pathlib import Path

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand
from ape.logging import logger

from computeshare import cas
from computeshare import governance as gov
from computeshare import report as tables
from computeshare.client import ComputeShare
from computeshare.constants import DAY, HOUR, TOKEN, JobStatus, ProposalState, Support
from computeshare.deploy import DeployConfig, deploy_connected
from computeshare.metering import R_FLOOR
from computeshare.params import parameter
from computeshare.report import format_table
from computeshare.results import ResultError
from computeshare.specs import device_spec, job_requirements
from computeshare.workloads import encode_spec, execute, pack_u64, result_hash, wasm_spec

FEE = parameter("JobEscrow", "PROTOCOL_FEE_BPS")
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
        wasm_spec("checked-div", (7).to_bytes(4, "little") + bytes(4), fuel=10**7),
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


# Real work: zlib's gzip, compiled from source in the repository (examples/c/gztree.c,
# examples/prebuilt/gztree.wasm), over a few MiB of genome reads the client's data store
# serves by URI; three replicas fetch and verify the input tree, gzip every file into
# /output, and commit to the output tree's root, which the client fetches and checks.
GZTREE = Path(__file__).resolve().parent.parent / "examples" / "prebuilt" / "gztree.wasm"
GENOME_FILES = {"chr1.fa": 2 << 20, "chr2.fa": 1 << 20, "reads/sample.fq": 1 << 19}
GZIP_FUEL = 5 * 10**12  # about 1.5 * 10**12 used (cost table version 3)


def genome(folder: Path) -> Path:
    """A few MiB of deterministic DNA in three files."""
    import random

    rng = random.Random(2026)
    for name, size in GENOME_FILES.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(rng.choices("ACGT", k=size)))
    return folder


def gzip_job(store, uri: str, inputs) -> bytes:
    from computeshare.workloads import module_pack

    module = GZTREE.read_bytes()
    return wasm_spec(
        module,
        fuel=GZIP_FUEL,
        module_tree=module_pack(module, store).spec([uri]),
        inputs=inputs.spec([uri]),
        args=["/input", "/output"],
        output_limit=64 << 20,
    )


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
    cs = deploy_connected(project, deployer, config, manifest_file)
    timelock = cs.timelock.address
    names[timelock] = "treasury (timelock)"
    click.echo(f"    {cs.manifest.transactions} transactions; every owner role is the timelock's")

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
        me = cs.as_account(test[index])
        me.stake(10_000 * TOKEN)
        me.register_device(
            device_spec(region=region, gpu_count=gpus), f"http://127.0.0.1:{ports[index]}"
        )
        click.echo(f"    {name:<8} region {region}, {gpus} GPUs" + (" (faulty)" if faulty else ""))

    agents = start_agents(chain.provider.uri, manifest_file, workdir, ports)
    store = cas.Cache(workdir / "client-store")
    data = cas.ChunkServer(store).start()  # the client's `computeshare data serve`
    try:
        inputs = store.add_dir(genome(workdir / "genome"))
        click.echo(
            f"    the client's data store serves a {inputs.size / 2**20:.1f} MiB input tree "
            f"0x{inputs.root[:10]} at {data.url}"
        )
        jobs = run_jobs(cs, test, agents, gzip_job(store, data.url, inputs), inputs)
        for job in jobs:  # each result from the agents, checked against the chain
            try:
                job["result"] = cs.result(job["id"])
            except ResultError as error:
                job["result"] = None
                click.echo(f"    {job['label']}: no result that matches the chain ({error})")
        check_output_files(cs, jobs, workdir)
    finally:
        data.stop()
        for process in agents:
            process.terminate()
        for process in agents:
            process.wait(timeout=10)
    click.echo("    agents stopped")

    fee_before = cs.escrow.parameter(FEE.key)
    click.echo(
        f"    {tables.tokens(cs.sweep_fees())} tokens of protocol fees swept to the treasury"
    )
    govern(cs, test)

    summary(cs, jobs, names, fee_before)
    report(cs, workdir)
    shutil.rmtree(workdir)
    click.echo(f"\ndemo finished in {time.monotonic() - started:.0f} s")


def report(cs: ComputeShare, workdir: Path) -> None:
    """Indexes the demo's market and writes the dashboard's pages as static files, so the
    demo leaves something to open with nothing running."""
    directory = project.path / "build" / "demo-report"
    pages, events = tables.write_dashboard(cs, workdir / "index.sqlite", directory)
    click.echo(
        f"\nDashboard snapshot: {directory.relative_to(project.path)}/index.html "
        f"({pages} pages from {events:,} events)"
    )


def start_agents(
    uri: str, manifest_file: Path, workdir: Path, ports: dict[int, int]
) -> list[subprocess.Popen]:
    step("starting 4 provider agents as separate processes")
    executable = Path(sys.executable).with_name("computeshare")
    processes = []
    for index, (name, _region, _gpus, faulty) in PROVIDERS.items():
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
            "--name",  # its log lines name it as the tables do
            name,
        ] + (["--faulty"] if faulty else [])
        processes.append(subprocess.Popen(command))
    return processes


def check_output_files(cs: ComputeShare, jobs: list[dict], workdir: Path) -> None:
    """The client fetches the gzip job's output tree from its three replicas at once, each
    chunk checked against the root the chain holds, and gunzips every file."""
    import gzip

    job = next(j for j in jobs if j["label"] == "gzip-k3")
    if job["result"] is None:
        return
    step("the client fetches gzip-k3's output files from its replicas and checks them")
    files = cs.output_files(job["id"], job["result"], workdir / "gzip-output",
                            cache=workdir / "downloads")  # fmt: skip
    for name in GENOME_FILES:
        original = (workdir / "genome" / name).read_bytes()
        packed = (files / f"{name}.gz").read_bytes()
        assert gzip.decompress(packed) == original, name
        click.echo(
            f"    {name}.gz: {len(packed):,} bytes, gunzips to the input's {len(original):,}"
        )


def run_jobs(cs: ComputeShare, test, agents, gzip_spec: bytes, inputs) -> list[dict]:
    posted = [*JOBS, GZIP_JOB(gzip_spec)]
    step("clients deposit 1,000 tokens and post jobs: " + ", ".join(p[0] for p in posted))
    for index in CLIENTS:
        cs.as_account(test[index]).deposit(1_000 * TOKEN)
    jobs = []
    for label, client_index, replicas, workload, spec, requirements in posted:
        client = cs.as_account(test[client_index])
        job_id = client.post_job(
            spec,
            job_requirements(**requirements),
            price=50 * TOKEN,
            replicas=replicas,
            duration=2 * HOUR,
        )
        jobs.append(
            {
                "label": label,
                "id": job_id,
                "client": client,
                "k": replicas,
                "workload": workload,
                "expected": expected(spec, job_id, inputs),
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
        if all(view.status == JobStatus.FINALIZED for view in views):
            return jobs
        for job, view in zip(jobs, views, strict=True):
            check_optimistic(cs, job, view, test)
        height = chain.blocks.height
        if height != last_height:
            last_height, idle_since = height, time.monotonic()
        elif time.monotonic() - idle_since > 2 and waiting_on_windows(views):
            end = max(v.phase_end for v in views if v.status != JobStatus.FINALIZED)
            click.echo("    every open job waits on its challenge window: the clock moves a day")
            chain.pending_timestamp = max(end + 1, chain.pending_timestamp)
            chain.mine()
        time.sleep(0.3)
    raise click.ClickException(f"jobs not final after {JOB_TIMEOUT} s")


def GZIP_JOB(spec: bytes) -> tuple:
    return (
        "gzip-k3",
        7,
        3,
        "wasm gztree (zlib)",
        spec,
        {"compute_seconds": -(-GZIP_FUEL // R_FLOOR)},
    )


def expected(spec: bytes, job_id: bytes, inputs) -> bytes:
    """The result hash the arbiter and a disputing client get by running the job
    themselves (with its input tree and the job id as its random seed)."""
    from computeshare.workloads import decode_spec

    job = decode_spec(spec)
    if job.workload == "wasm" and job.input.inputs is not None:
        module = GZTREE.read_bytes()
        return result_hash(execute(job, module, inputs=inputs.path, seed=job_id))
    return result_hash(execute(spec))


def check_optimistic(cs: ComputeShare, job: dict, view, test) -> None:
    """A k = 1 client re-runs the workload and disputes a wrong result; the arbiter, who
    re-runs it too, rules. Replicas that disagree send their job to the arbiter at once."""
    if job["k"] > 1 and view.status == JobStatus.DISPUTED and "ruling" not in job:
        cs.jobs.rule(job["id"], result=job["expected"], sender=test[ARBITER])
        job["ruling"] = "for the replicas with the right result"
        click.echo(f"    {job['label']}: the replicas disagree; the arbiter re-ran it and ruled")
        return
    if job["k"] != 1 or view.revealed != 1 or view.status == JobStatus.FINALIZED:
        return
    revealed = cs.jobs.replica(job["id"]).digest
    if view.status == JobStatus.DISPUTED:
        for_client = revealed != job["expected"]
        cs.jobs.rule(job["id"], for_client, sender=test[ARBITER])
        job["ruling"] = "for client" if for_client else "for provider"
        click.echo(f"    arbiter re-ran {job['label']} and ruled {job['ruling']}")
    elif revealed != job["expected"] and "disputed" not in job:
        job["client"].dispute(job["id"])
        job["disputed"] = True
        click.echo(f"    {job['label']}: the result is wrong; the client disputes (bond posted)")


def waiting_on_windows(views) -> bool:
    """Every open job is an undisputed, revealed k = 1 job: only time can settle it."""
    open_views = [v for v in views if v.status != JobStatus.FINALIZED]
    return bool(open_views) and all(
        v.replicas == 1 and v.revealed == 1 and v.status != JobStatus.DISPUTED for v in open_views
    )


def govern(cs: ComputeShare, test) -> None:
    step("DAO: lower the protocol fee to 1% and pay a 100,000-token grant from the treasury")
    grantee, proposer = test[12], test[9]
    actions = [
        gov.call(cs.escrow, "set_parameter", FEE.key, 100),
        gov.call(cs.token, "transfer", grantee.address, 100_000 * TOKEN),
    ]
    description = "Lower the protocol fee to 1% and fund the agent-tooling grant"
    proposal = gov.propose(cs.governor, proposer, actions, description)
    click.echo(f"    proposal 0x{int(proposal):064x}"[:22] + "... by voter-1")
    gov.open_voting(cs.governor, chain, proposal)
    cs.as_account(test[9]).vote(proposal, Support.FOR)
    cs.as_account(test[10]).vote(proposal, Support.FOR, "cheaper jobs, more clients")
    gov.vote_by_signature(cs.governor, chain, test[11], proposal, Support.FOR, relayer=grantee)
    for_ = cs.governor.proposalVotes(proposal)[1]
    click.echo(f"    3 votes for ({tables.tokens(for_)}), one cast by signature and relayed")
    gov.queue(cs.governor, chain, proposal, proposer)
    click.echo(f"    queued in the timelock; delay {cs.timelock.delay() // DAY} days")
    gov.execute(cs.governor, chain, proposal, proposer)
    state = ProposalState(cs.governor.state(proposal)).label
    click.echo(f"    {state}: fee is now {cs.escrow.parameter(FEE.key) / 100:.2f}%")


def summary(cs: ComputeShare, jobs, names, fee_before: int) -> None:
    step("summary")
    start, head = cs.manifest.start_block, chain.blocks.height + 1
    settled = tables.settled_replicas(cs, start, head)
    for title, rows in (
        ("Devices", tables.device_rows(cs, names)),
        ("Jobs", tables.job_rows(cs, jobs, names, settled)),
        ("Money (tokens)", tables.money_rows(cs, names, settled)),
    ):
        click.echo(f"\n{title}")
        click.echo(format_table(rows, list(rows[0])))
    click.echo(
        f"\nprotocol fee: {fee_before / 100:.2f}% before the proposal, "
        f"{cs.escrow.parameter(FEE.key) / 100:.2f}% after"
    )
    click.echo("\nGas used, by operation (every transaction of the demo)")
    gas = tables.gas_by_operation(cs, start, head)
    click.echo(format_table(gas, ["operation", "calls", "gas_used"]))
