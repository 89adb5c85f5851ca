"""`computeshare arbiter`: disputed jobs and the arbiter's rulings (JobDisputes' ARBITER)."""

from __future__ import annotations

import re

import click

from computeshare.cli.common import (
    chain_now,
    connect,
    full_option,
    job_argument,
    resolve_job,
    say,
    show,
    step,
    table,
    when,
)
from computeshare.cli.read import read_command, send_command


@click.group()
def arbiter():
    """List disputed jobs and rule on them (the ARBITER role of JobDisputes)."""


def _replica(text: str | None) -> tuple[int | None, bytes | None]:
    """--replica as (slot, None) for a slot number, or (None, digest) for a result hash."""
    if text is None:
        return None, None
    if text.isdigit():
        return int(text), None
    digits = text.lower().removeprefix("0x")
    if not re.fullmatch(r"[0-9a-f]{64}", digits):
        raise click.BadParameter(
            f"{text!r} is neither a slot number nor a result hash (32 bytes of hex)",
            param_hint="--replica",
        )
    return None, bytes.fromhex(digits)


@send_command(arbiter, "rule")
@job_argument
@click.option(
    "--for",
    "side",
    type=click.Choice(["client", "provider"]),
    help="k = 1: rule for the client (the result was wrong: the provider is slashed, the "
    "client refunded) or for the provider (it is paid and receives the bond)",
)
@click.option(
    "--replica",
    metavar="SLOT_OR_DIGEST",
    help="k > 1: the right result, as the slot that revealed it or its result hash; "
    "replicas that revealed it are paid, the others slashed",
)
def arbiter_rule(account, manifest, job_id, side, replica):
    """Rule on disputed JOB (its id or a prefix of 6+ digits) within its ruling period,
    settling it. A k = 1 job takes --for; a k > 1 job whose replicas disagreed takes
    --replica. Only an account with JobDisputes' ARBITER role may rule."""
    slot, digest = _replica(replica)
    cs = connect(manifest, account)
    job = resolve_job(cs, job_id)
    replicas = cs.jobs.terms(job).replicas
    if replicas == 1 and side is None:
        raise click.UsageError("a k = 1 job's ruling takes --for client or provider")
    if replicas > 1 and replica is None:
        raise click.UsageError(
            f"a k = {replicas} job's ruling takes --replica: the slot that revealed the right "
            "result, or its result hash"
        )
    ruled = cs.rule(
        job,
        for_client=None if side is None else side == "client",
        slot=slot,
        result=digest,
    )
    settled = ruled["settled"]
    verdict = (
        f"for result 0x{ruled['result'].hex()}"
        if "result" in ruled
        else f"for the {'client' if ruled['for_client'] else 'provider'}"
    )
    say(
        f"job 0x{job.hex()}: ruled {verdict} by {ruled['arbiter']}",
        job=job, arbiter=ruled["arbiter"], for_client=ruled["for_client"],
        result=ruled.get("result"),
    )  # fmt: skip
    say(
        f"settled: paid {show(settled['paid'])}, refunded {show(settled['refunded'])} tokens, "
        f"fees {show(settled['fees'])}, compensation {show(settled['compensation'])}",
        settled=settled,
    )  # fmt: skip


@read_command(arbiter, "disputes")
@full_option
@click.option("--db", help="index file or SQLAlchemy URL (default: the manifest's name, .sqlite)")
def arbiter_disputes(manifest, full, db):
    """Disputed jobs awaiting a ruling (their ruling period still runs), oldest first."""
    cs = connect(manifest)
    cs.open_index(db)
    with step("reading disputed jobs"):
        disputes = cs.disputes()
    now = chain_now()
    rows = [
        {
            "job": "0x" + d["job_id"].hex() if full else "0x" + d["job_id"].hex()[:8],
            "client": d["client"] if full else d["client"][:10],
            "k": d["replicas"],
            "price": show(d["price"]),
            "revealed": d["revealed"],
            "ruling ends": when(d["ruling_end"], now),
        }
        for d in disputes
    ]
    table(rows, ["job", "client", "k", "price", "revealed", "ruling ends"])
