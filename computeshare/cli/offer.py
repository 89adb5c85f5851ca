"""`computeshare offer`: OfferBook's signed offers.

A provider signs an EIP-712 offer off-chain (`offer sign` writes it to a JSON file) naming
its device, a price and collateral, the one client it is for, the spec it agrees to run
(`--spec-file` or `--spec-hash`; any spec without either), how far after the match the
commit deadline may fall (`--min-duration`, `--max-duration`), an expiry and a nonce. That
client matches it (`offer match FILE ...`, with a spec and a `--duration` the offer allows):
one transaction posts a k = 1 job already accepted by the device, paid from the client's
escrow balance. A provider cancels an unused offer by its nonce (`offer cancel`); `offer
list` shows matched and cancelled offers. The checks, the signing and the sends are
`computeshare.offers`' (through `ComputeShare`); each command parses, calls one of them and
prints.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from computeshare.cli.common import (
    Duration,
    address,
    approve_max_option,
    chain_now,
    connect,
    full_option,
    job_spec,
    job_spec_options,
    resolve_device,
    short_id,
    show,
    step,
    table,
    tokens,
    warn,
    when,
)
from computeshare.cli.read import read_command, send_command
from computeshare.constants import MATCH_DURATION, OFFER_EXPIRY, OFFER_MIN_DURATION
from computeshare.format import duration


@click.group()
def offer():
    """Signed provider offers: sign, match, cancel, list."""


def _hash32(text: str) -> bytes:
    try:
        value = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        value = b""
    if len(value) != 32:
        raise click.BadParameter(f"{text!r} is not a 32-byte hex hash", param_hint="--spec-hash")
    return value


@send_command(offer, "sign")
@click.option("--client", "client_address", required=True, help="the one client who may match")
@click.option("--price", required=True, help="tokens for the job")
@click.option("--collateral", help="tokens locked from your stake (default: the price)")
@click.option("--device", "device_id", help="device id or prefix (default: your first device)")
@click.option(
    "--spec-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="the one job spec you agree to run (default: any spec)",
)
@click.option("--spec-hash", "spec_hash_hex", help="or its keccak256, as hex")
@click.option(
    "--min-duration",
    type=Duration(),
    default=duration(OFFER_MIN_DURATION),  # as text, which Duration reads back
    show_default=True,
    help="the soonest commit deadline the client may set, after the match",
)
@click.option(
    "--max-duration",
    type=Duration(),
    help="the latest, which bounds how long your collateral is locked "
    "[default: JobEscrow's MAX_JOB_DURATION]",
)
@click.option(
    "--expires-in",
    type=Duration(),
    default=duration(OFFER_EXPIRY),
    show_default=True,
    help="how long the client may match it",
)
@click.option("--nonce", type=click.IntRange(0, 2**256 - 1), help="[default: random]")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def offer_sign(
    account, manifest, client_address, price, collateral, device_id, spec_file, spec_hash_hex,
    min_duration, max_duration, expires_in, nonce, out,
):  # fmt: skip
    """Sign an offer for one client and write it to a JSON file (nothing is sent)."""
    from computeshare.offers import bounds_text

    client_address = address(client_address)
    price_wei = tokens(price)
    if spec_file is not None and spec_hash_hex is not None:
        raise click.UsageError("give --spec-file or --spec-hash, not both")
    bound = _hash32(spec_hash_hex) if spec_hash_hex is not None else None
    if out.exists():
        raise click.ClickException(f"{out} exists: not overwritten")
    cs = connect(manifest, account)
    signed = cs.sign_offer(
        client_address, price_wei, collateral=tokens(collateral) if collateral else None,
        device=resolve_device(cs, device_id) if device_id is not None else None,
        spec=spec_file.read_bytes() if spec_file is not None else None, spec_hash=bound,
        min_duration=min_duration, max_duration=max_duration, expires_in=expires_in,
        nonce=nonce,
    )  # fmt: skip
    out.write_text(json.dumps(signed.document, indent=2) + "\n")
    for warning in signed.warnings:
        warn(warning)
    terms = signed.terms
    click.echo(f"offer {terms['nonce']} for {client_address}: {show(price_wei)} tokens, "
               f"expires {when(terms['expiry'], chain_now())}")  # fmt: skip
    click.echo(bounds_text(terms))
    click.echo(f"written to {out}")


@send_command(offer, "match")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@job_spec_options
@click.option(
    "--spec-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="the job spec as a file (the one an offer for a single spec names)",
)
@click.option(
    "--duration",
    "wanted",
    type=Duration(),
    help="until the commit deadline: seconds, or e.g. 90m, 2h; within the offer's range "
    f"[default: {duration(MATCH_DURATION)}, or the nearest the offer allows]",
)
@click.option(
    "--max-price",
    required=True,
    help="the most you pay, in tokens: an offer asking more is refused before anything is sent",
)
@approve_max_option
def offer_match(
    account, manifest, path, workload, payload, module, stdin_hex, fuel, encrypt_to, spec_file,
    wanted, max_price, approve_max, **wasm_options,
):  # fmt: skip
    """Post a k = 1 job through the signed offer in PATH, already accepted by its device and
    paid from your escrow balance (what it lacks is deposited first), at the offer's price
    if it is at most --max-price."""
    if spec_file is not None:
        if workload is not None or payload is not None or module is not None:
            raise click.UsageError("give --spec-file or the spec's options, not both")
        spec = spec_file.read_bytes()
    else:
        spec = job_spec(workload, payload, module, stdin_hex, fuel, encrypt_to, **wasm_options)
    cs = connect(manifest, account)
    matched = cs.match_offer(
        path, spec, max_price=tokens(max_price), duration=wanted, approve_max=approve_max
    )
    click.echo(f"commit deadline {when(matched['deadline'], chain_now())}")
    click.echo(f"job 0x{matched['job_id'].hex()}")


@send_command(offer, "cancel")
@click.argument("nonce", type=click.IntRange(0, 2**256 - 1))
def offer_cancel(account, manifest, nonce):
    """Cancel your unused offer with NONCE: it can no longer be matched."""
    cs = connect(manifest, account)
    cs.cancel_offer(nonce)
    click.echo(f"offer {nonce}: cancelled")


@read_command(offer, "list")
@click.option("--provider", "provider_address", help="only this provider's offers")
@click.option("--client", "client_address", help="only offers matched by this client")
@full_option
def offer_list(manifest, provider_address, client_address, full):
    """Matched and cancelled offers, from OfferBook's events."""
    cs = connect(manifest)
    wanted_provider = address(provider_address) if provider_address else None
    wanted_client = address(client_address) if client_address else None
    with step("reading offers"):
        history = cs.offer_history(wanted_provider, wanted_client)
    rows = [
        {
            "provider": row["provider"] if full else row["provider"][:10],
            "nonce": row["nonce"],
            "state": row["state"],
            "job": short_id(row["job_id"], full) if row["job_id"] else "-",
            "client": (row["client"] if full else row["client"][:10]) if row["client"] else "-",
            "block": row["block"],
        }
        for row in history
    ]
    table(rows, ["provider", "nonce", "state", "job", "client", "block"])
