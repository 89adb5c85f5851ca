"""`computeshare client`: the escrow balance, jobs and their results."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from computeshare.cli.common import (
    OUTPUT,
    Duration,
    amount_argument,
    approve_max_option,
    chain_now,
    connect,
    job_argument,
    job_spec,
    job_spec_options,
    plain,
    resolve_job,
    say,
    show,
    sleep,
    tokens,
    when,
)
from computeshare.cli.read import read_command, send_command
from computeshare.constants import MAX_REPLICAS, JobStatus
from computeshare.onchain import logs

# Job statuses by their short names (the enum members themselves).
OPEN, DISPUTED, FINALIZED, CANCELLED = (
    JobStatus.OPEN,
    JobStatus.DISPUTED,
    JobStatus.FINALIZED,
    JobStatus.CANCELLED,
)


@click.group()
def client():
    """Deposit, post, follow and settle jobs. JOB is a job id or a prefix of 6+ hex digits."""


@send_command(client, "deposit")
@amount_argument
@approve_max_option
def client_deposit(account, manifest, amount, approve_max):
    """Deposit AMOUNT tokens into your JobEscrow balance (approves exactly AMOUNT first)."""
    cs = connect(manifest, account)
    cs.deposit(amount, approve_max=approve_max)
    balance = cs.escrow.balanceOf(account)
    say(f"escrow balance: {show(balance)} tokens", escrow_balance=balance)


@send_command(client, "withdraw")
@amount_argument
def client_withdraw(account, manifest, amount):
    """Withdraw AMOUNT tokens of your unlocked JobEscrow balance."""
    cs = connect(manifest, account)
    cs.withdraw(amount)
    balance = cs.escrow.balanceOf(account)
    say(f"escrow balance: {show(balance)} tokens", escrow_balance=balance)


@send_command(client, "post")
@job_spec_options
@click.option("--price", required=True, help="tokens per replica")
@click.option("--replicas", type=click.IntRange(1, MAX_REPLICAS), default=1, show_default=True)
@click.option(
    "--duration",
    type=Duration(),
    default="3600",
    show_default=True,
    help="until the commit deadline: seconds, or e.g. 90m, 2h",
)
@click.option("--collateral", help="tokens per replica (default: the price)")
@click.option("--min-gpus", type=click.IntRange(0, 255), default=0, show_default=True)
@click.option("--compute-seconds", type=click.IntRange(1), default=60, show_default=True)
@approve_max_option
def client_post(
    account, manifest, workload, payload, module, stdin_hex, fuel, encrypt_to, price, replicas,
    duration, collateral, min_gpus, compute_seconds, approve_max, **wasm_options,
):  # fmt: skip
    """Post a job; payment for every replica is locked from your escrow balance (what it
    lacks is deposited first). The spec is checked against its workload's schema (and a
    wasm module compiled), and the terms against what JobEscrow accepts, before anything
    is sent."""
    from computeshare.specs import job_requirements

    price_wei = tokens(price)
    collateral_wei = tokens(collateral) if collateral else price_wei
    spec = job_spec(workload, payload, module, stdin_hex, fuel, encrypt_to, **wasm_options)
    requirements = job_requirements(
        min_cpu_cores=1, min_memory_mb=1, min_gpu_count=min_gpus, min_vram_mb=0,
        compute_seconds=compute_seconds,
    )  # fmt: skip
    cs = connect(manifest, account)
    job = cs.post_job(
        spec, requirements, price=price_wei, replicas=replicas, duration=duration,
        collateral=collateral_wei, approve_max=approve_max,
    )  # fmt: skip
    deadline = cs.jobs.terms(job).deadline
    say(f"commit deadline {when(deadline, chain_now())}", deadline=deadline)
    say(f"job 0x{job.hex()}", job=job)


@send_command(client, "cancel")
@job_argument
def client_cancel(account, manifest, job_id):
    """Cancel a job nobody accepted; everything is refunded."""
    cs = connect(manifest, account)
    job = resolve_job(cs, job_id)
    refund = cs.cancel_job(job)
    status = cs.job(job)["status_name"]
    say(
        f"job 0x{job.hex()}: {status}, refunded {show(refund)} tokens",
        job=job,
        status=status,
        refunded=refund,
    )


@send_command(client, "dispute")
@job_argument
@approve_max_option
def client_dispute(account, manifest, job_id, approve_max):
    """Dispute an optimistic result within its challenge window: a bond of
    DISPUTE_BOND_BPS of the price is locked in JobDisputes from your wallet (approving
    exactly that first). It comes back with a ruling for you, or, unruled, through
    `client reclaim`; `client withdraw-bonds` pays it out."""
    cs = connect(manifest, account)
    job = resolve_job(cs, job_id)
    bond = cs.dispute(job, approve_max=approve_max)
    status = cs.job(job)["status_name"]
    say(f"job 0x{job.hex()}: {status}, bond {show(bond)} tokens", job=job, status=status, bond=bond)


@send_command(client, "reclaim")
@job_argument
def client_reclaim(account, manifest, job_id):
    """Take back the bond of a dispute the arbiter did not rule on in time, once the job
    is settled (`client finalize`): it goes to your JobDisputes balance."""
    cs = connect(manifest, account)
    job = resolve_job(cs, job_id)
    bond = cs.reclaim_bond(job)
    say(f"job 0x{job.hex()}: bond of {show(bond)} tokens reclaimed", job=job, bond=bond)


@send_command(client, "withdraw-bonds")
def client_withdraw_bonds(account, manifest):
    """Withdraw the dispute bonds released to you in JobDisputes (yours returned, or, for
    a provider, a client's bond it was ruled to receive)."""
    cs = connect(manifest, account)
    amount = cs.withdraw_bonds()
    say(f"withdrew {show(amount)} tokens of bonds", amount=amount)


@send_command(client, "expire")
@job_argument
def client_expire(account, manifest, job_id):
    """Settle a job past its reveal window (or a k = 1 result past its challenge window):
    missing and failed replicas are refunded, providers that did not reveal are slashed,
    a revealed result is paid. Anyone may call; the caller earns the keeper bounty."""
    cs = connect(manifest, account)
    job = resolve_job(cs, job_id)
    settled = cs.expire_job(job)
    status = "disputed" if "disputed" in settled else "finalized"  # what the event says
    if "disputed" in settled:
        end = settled["disputed"]["ruling_end"]
        say(f"job 0x{job.hex()}: {status}; the replicas disagree: the arbiter rules by "
            f"{when(end, chain_now())}", job=job, status=status)  # fmt: skip
        return
    say(
        f"job 0x{job.hex()}: {status}; {_settlement(settled)}",
        job=job,
        status=status,
        settlement=settled,
    )


def _existing_job(cs, job_id: str) -> bytes:
    job = resolve_job(cs, job_id)
    if cs.escrow_view.job(job).status == 0:
        raise click.ClickException("no such job")
    return job


def _summary(view: dict) -> str:
    states = f" ({', '.join(view['replica_states'])})" if view["replica_states"] else ""
    return (
        f"{view['status_name']}: replicas {view['replicas']}, accepted {view['accepted']}, "
        f"committed {view['committed']}, revealed {view['revealed']}{states}"
    )


def _settlement(event: dict) -> str:
    """What a `JobSettled` event's arguments say, for people."""
    parts = [
        f"paid {show(event['paid'])} tokens to providers",
        f"refunded {show(event['refunded'])}",
    ]
    extras = (("fees", "fees"), ("compensation", "compensation"), ("bounty", "keeper bounty"))
    parts += [f"{text} {show(event[name])}" for name, text in extras if event[name]]
    return ", ".join(parts)


def _phase(cs, job: bytes, view: dict, now: int) -> str:
    """Where the job stands and what happens next, with times on the chain's clock."""
    status, end = view["status"], view["phase_end"]
    if status == FINALIZED:
        events = logs(cs.escrow, ["JobSettled"], cs.jobs.start_block, ["0x" + job.hex()])
        return "settled: " + (
            _settlement(events[0].event_arguments) if events else "see JobSettled"
        )
    if status == CANCELLED:
        return "cancelled: the payment went back to the client's escrow balance"
    if status == DISPUTED:
        return f"disputed: the arbiter rules by {when(end, now)}"
    from computeshare.jobs import open_phase

    return open_phase(view, now)


@read_command(client, "status")
@job_argument
@click.option("--watch", is_flag=True, help="follow the job until it is final")
@click.option("--poll", type=click.FloatRange(0.05), default=1.0, show_default=True)
@click.option(
    "--timeout", type=Duration(), default="600", show_default=True, help="stop watching after"
)
@click.option(
    "--db",
    help="event index file or SQLAlchemy URL, for why a job waits (default: the "
    "manifest's name, .sqlite)",
)
def client_status(manifest, job_id, watch, poll, timeout, db):
    """Show a job, or follow it with --watch: a line on every change, until it is final.
    While replicas wait for a provider, a line says why: how many registered devices fail
    each rule of acceptance (read from the event index, brought up to the head)."""
    cs = connect(manifest)
    if db is not None:  # job look-ups read it too
        cs.open_index(db)
    job = _existing_job(cs, job_id)
    stop = time.monotonic() + timeout
    last = None
    while True:
        view, now = cs.job(job), chain_now()
        phase = _phase(cs, job, view, now)
        key = (view["status"], tuple(view["replica_states"]), view["phase_end"])
        if key != last:
            shown = {**view, "job": job, "phase": phase}
            text = f"{_summary(view)}\n  {phase}"
            waiting = _why_waiting(cs, job, view)
            if waiting is not None:
                shown["waiting"] = waiting.to_json()
                text += f"\n  {waiting.text()}"
            if OUTPUT.json and watch:  # one object per change: JSON lines
                click.echo(json.dumps(plain(shown), sort_keys=True))
            else:
                say(text, **shown)
            last = key
        if not watch or view["status"] in (FINALIZED, CANCELLED):
            return
        if time.monotonic() >= stop:
            raise click.ClickException(
                f"stopped watching after {timeout} s; the job is still {view['status_name']} "
                f"(`computeshare client status 0x{job.hex()[:10]} --watch` to go on)"
            )
        sleep(poll, f"watching job 0x{job.hex()[:10]}: {view['status_name']}")


def _why_waiting(cs, job: bytes, view: dict):
    """Why the job's unaccepted replicas wait (`computeshare.matching`), or None."""
    from computeshare.cli.common import step
    from computeshare.matching import why_waiting

    if view["status"] != OPEN or view["accepted"] >= view["replicas"]:
        return None
    if cs.index is None:
        cs.open_index()
    with step("updating the index"):
        cs.index.sync()
    return why_waiting(cs, job)


@read_command(client, "result")
@job_argument
@click.option("--endpoint", multiple=True, help="result endpoint (default: the device's URI)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="output file")
@click.option(
    "--files",
    type=click.Path(file_okay=False, path_type=Path),
    help="write the output tree's files (/output) into this directory",
)
@click.option(
    "--key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="the private key file from `client keygen` (for an encrypted output)",
)
def client_result(manifest, job_id, endpoint, out, files, key):
    """Fetch a job's output from its provider and check it against the chain."""
    from computeshare.cli.common import step

    private = bytes.fromhex(key.read_text().strip()) if key else None
    cs = connect(manifest)
    job = _existing_job(cs, job_id)
    with step("fetching the result"):
        result = cs.result(job, list(endpoint), private)
    say(
        f"{result.status_name}, fuel {result.fuel:,}, {len(result.output)} bytes",
        status=result.status, status_name=result.status_name, fuel=result.fuel,
    )  # fmt: skip
    if result.output_root:
        say(f"output tree 0x{result.output_root.hex()}", output_root=result.output_root)
    if files is not None:
        with step("fetching the output files"):
            cs.output_files(job, result, files, list(endpoint), private_key=private)
        say(f"output files in {files}", files=str(files))
    if out is not None:
        out.write_bytes(result.output)
    else:
        say(result.output.hex(), output=result.output)


@client.command("keygen")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def client_keygen(path):
    """Write a new private key to PATH (mode 600) and print its public key, for
    `client post --encrypt-to` and `client result --key`."""
    from coincurve import PrivateKey

    if path.exists():
        raise click.ClickException(f"{path} exists: not overwritten")
    key = PrivateKey()
    path.touch(mode=0o600)
    path.write_text(key.secret.hex() + "\n")
    click.echo(key.public_key.format(compressed=True).hex())
