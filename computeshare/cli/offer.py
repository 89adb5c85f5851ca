"""`computeshare offer`: OfferBook's signed offers.

A provider signs an EIP-712 offer off-chain (`offer sign` writes it to a JSON file) naming
its device, a price and collateral, the one client it is for, the spec it agrees to run
(`--spec-file` or `--spec-hash`; any spec without either), how far after the match the
commit deadline may fall (`--min-duration`, `--max-duration`), an expiry and a nonce. That
client matches it (`offer match FILE ...`, with a spec and a `--duration` the offer allows):
one transaction posts a k = 1 job already accepted by the device, paid from the client's
escrow balance. A provider cancels an unused offer by its nonce (`offer cancel`); `offer
list` shows matched and cancelled offers.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import click

from computeshare.cli.common import (
    Duration,
    address,
    approve_max_option,
    chain_now,
    connect,
    duration,
    full_option,
    job_spec,
    job_spec_options,
    resolve_device,
    send,
    short_id,
    show,
    step,
    table,
    tokens,
    warn,
    when,
)
from computeshare.cli.read import read_command, send_command
from computeshare.constants import HOUR
from computeshare.format import SHORT_ID
from computeshare.onchain import receipt_events

OFFER_FIELDS = (
    "provider", "device_nonce", "client", "price", "collateral", "spec_hash", "min_duration",
    "max_duration", "expiry", "nonce",
)  # fmt: skip
MAX_UINT96, MAX_UINT48, MAX_UINT32 = 2**96 - 1, 2**48 - 1, 2**32 - 1
# `offer match` without --duration: an hour, within the offer's range, and this far past
# its floor where the range allows, since the match block may come after the moment the
# deadline is counted from.
MATCH_SLACK = 10 * 60


@click.group()
def offer():
    """Signed provider offers: sign, match, cancel, list."""


def _spec_file(path: Path) -> bytes:
    """The bytes of a spec file, checked as every provider checks a spec."""
    from computeshare.workloads import WorkloadError, decode_spec

    spec = path.read_bytes()
    try:
        decode_spec(spec)
    except WorkloadError as error:
        raise click.BadParameter(f"{path}: {error}", param_hint="--spec-file") from None
    return spec


def _hash32(text: str) -> bytes:
    try:
        value = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        value = b""
    if len(value) != 32:
        raise click.BadParameter(f"{text!r} is not a 32-byte hex hash", param_hint="--spec-hash")
    return value


def _json_value(name: str, value):
    # Amounts and the nonce as strings: JSON readers may not hold 96- and 256-bit numbers.
    if name in ("price", "collateral", "nonce"):
        return str(value)
    return "0x" + value.hex() if isinstance(value, bytes) else value


def _bounds(spec_hash: bytes, low: int, high: int) -> str:
    """What an offer lets its client choose, in words."""
    spec = "any spec" if spec_hash == bytes(32) else f"spec 0x{spec_hash.hex()[:SHORT_ID]} only"
    return f"{spec}, commit deadline {duration(low)} to {duration(high)} after the match"


def _device_nonce(cs, owner: str, device: bytes) -> int:
    for nonce in range(cs.registry.device_count(owner)):
        if bytes(cs.registry.device_id_of(owner, nonce)) == device:
            return nonce
    raise click.ClickException(f"device 0x{device.hex()[:10]} is not yours")


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
    default="10m",
    show_default=True,
    help="the soonest commit deadline the client may set, after the match",
)
@click.option(
    "--max-duration",
    type=Duration(),
    help="the latest, which bounds how long your collateral is locked "
    "[default: JobEscrow's MAX_JOB_DURATION]",
)
@click.option("--expires-in", type=Duration(), default="1h", show_default=True)
@click.option("--nonce", type=click.IntRange(0, 2**256 - 1), help="[default: random]")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
def offer_sign(
    account, manifest, client_address, price, collateral, device_id, spec_file, spec_hash_hex,
    min_duration, max_duration, expires_in, nonce, out,
):  # fmt: skip
    """Sign an offer for one client and write it to a JSON file (nothing is sent)."""
    from eth_account.messages import encode_typed_data

    from computeshare.params import parameter
    from computeshare.signing import (
        ANY_SPEC,
        OFFER_EIP712_NAME,
        OFFER_EIP712_VERSION,
        OFFER_TYPES,
        domain,
        spec_hash,
    )

    client_address = address(client_address)
    price_wei = tokens(price)
    collateral_wei = tokens(collateral) if collateral else price_wei
    if max(price_wei, collateral_wei) > MAX_UINT96:
        raise click.BadParameter("price and collateral must fit in 96 bits")
    if spec_file is not None and spec_hash_hex is not None:
        raise click.UsageError("give --spec-file or --spec-hash, not both")
    if spec_file is not None:
        bound_hash = spec_hash(_spec_file(spec_file))
    else:
        bound_hash = _hash32(spec_hash_hex) if spec_hash_hex is not None else ANY_SPEC
    if not 1 <= min_duration <= MAX_UINT32:
        raise click.BadParameter(
            "must be 1s or more (1s for no floor) and fit in 32 bits", param_hint="--min-duration"
        )
    if max_duration is not None and not min_duration <= max_duration <= MAX_UINT32:
        raise click.BadParameter(
            f"must be at least --min-duration ({duration(min_duration)}) and fit in 32 bits",
            param_hint="--max-duration",
        )
    if out.exists():
        raise click.ClickException(f"{out} exists: not overwritten")
    cs = connect(manifest, account)
    longest = cs.escrow.parameter(parameter("JobEscrow", "MAX_JOB_DURATION").key)
    if min_duration > longest:
        raise click.BadParameter(
            f"is more than JobEscrow's MAX_JOB_DURATION ({duration(longest)}): no deadline "
            "could meet it",
            param_hint="--min-duration",
        )
    if max_duration is None:
        max_duration = longest
    elif max_duration > longest:
        warn(f"JobEscrow refuses deadlines more than {duration(longest)} away (MAX_JOB_DURATION)")
    if device_id is None:
        if cs.registry.device_count(account) == 0:
            raise click.ClickException("you have no device: `computeshare provider register`")
        device = bytes(cs.registry.device_id_of(account, 0))
    else:
        device = resolve_device(cs, device_id)
    device_nonce = _device_nonce(cs, account.address, device)
    if cs.registry.device(device).status != 1:
        raise click.ClickException(f"device 0x{device.hex()[:10]} is not active")
    nonce = secrets.randbits(64) if nonce is None else nonce
    if cs.offers.offer_used(account, nonce):
        raise click.ClickException(f"nonce {nonce} is already matched or cancelled")
    expiry = min(cs.chain.now() + expires_in, MAX_UINT48)
    message = {
        "provider": account.address,
        "device_nonce": device_nonce,
        "client": client_address,
        "price": price_wei,
        "collateral": collateral_wei,
        "spec_hash": bound_hash,
        "min_duration": min_duration,
        "max_duration": max_duration,
        "expiry": expiry,
        "nonce": nonce,
    }
    offer_book = str(cs.offers.address)
    signable = encode_typed_data(
        domain_data=domain(OFFER_EIP712_NAME, OFFER_EIP712_VERSION, cs.chain.chain_id, offer_book),
        message_types=OFFER_TYPES,
        message_data=message,
    )
    signature = account.sign_message(signable)
    if signature is None:
        raise click.ClickException("the account did not sign")
    document = {
        "chain_id": cs.chain.chain_id,
        "offer_book": offer_book,
        "offer": {name: _json_value(name, value) for name, value in message.items()},
        "signature": "0x" + signature.encode_rsv().hex(),
    }
    out.write_text(json.dumps(document, indent=2) + "\n")
    free = cs.staking.free_stake(account)
    if free < collateral_wei:
        warn(
            f"your free stake is {show(free)} tokens, less than the collateral: a match "
            "would revert until you stake more"
        )
    click.echo(f"offer {nonce} for {client_address}: {show(price_wei)} tokens, expires "
               f"{when(expiry, chain_now())}")  # fmt: skip
    click.echo(_bounds(bound_hash, min_duration, max_duration))
    click.echo(f"written to {out}")


def _load(path: Path) -> tuple[dict, bytes, dict]:
    try:
        document = json.loads(path.read_text())
        fields = document["offer"]
        offer_tuple = {name: fields[name] for name in OFFER_FIELDS}
        for name in ("device_nonce", "price", "collateral", "min_duration", "max_duration",
                     "expiry", "nonce"):  # fmt: skip
            offer_tuple[name] = int(offer_tuple[name])
        offer_tuple["spec_hash"] = bytes.fromhex(offer_tuple["spec_hash"].removeprefix("0x"))
        if len(offer_tuple["spec_hash"]) != 32:
            raise ValueError("spec_hash is not 32 bytes")
        signature = bytes.fromhex(document["signature"].removeprefix("0x"))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise click.ClickException(f"{path} is not a signed offer ({error})") from None
    return offer_tuple, signature, document


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
    "[default: 1h, or the nearest the offer allows]",
)
@approve_max_option
def offer_match(
    account, manifest, path, workload, payload, module, stdin_hex, fuel, encrypt_to, spec_file,
    wanted, approve_max, **wasm_options,
):  # fmt: skip
    """Post a k = 1 job through the signed offer in PATH, already accepted by its device and
    paid from your escrow balance (what it lacks is deposited first)."""
    from computeshare.signing import ANY_SPEC, spec_hash

    terms, signature, document = _load(path)
    if spec_file is not None:
        if workload is not None or payload is not None or module is not None:
            raise click.UsageError("give --spec-file or the spec's options, not both")
        spec = _spec_file(spec_file)
    else:
        spec = job_spec(workload, payload, module, stdin_hex, fuel, encrypt_to, **wasm_options)
    if terms["spec_hash"] not in (ANY_SPEC, spec_hash(spec)):
        raise click.ClickException(
            f"this offer is for the spec 0x{terms['spec_hash'].hex()[:SHORT_ID]} only, not this "
            "one: pass that spec with --spec-file"
        )
    low, high = terms["min_duration"], terms["max_duration"]
    if wanted is None:
        wanted = min(max(HOUR, low + MATCH_SLACK), high)
    elif not low <= wanted <= high:
        raise click.BadParameter(
            f"{duration(wanted)} is outside the offer's {duration(low)} to {duration(high)}",
            param_hint="--duration",
        )
    cs = connect(manifest, account)
    if document.get("chain_id") != cs.chain.chain_id or (
        str(document.get("offer_book", "")).lower() != str(cs.offers.address).lower()
    ):
        raise click.ClickException(
            f"{path} is for OfferBook {document.get('offer_book')} on chain "
            f"{document.get('chain_id')}, not this deployment's"
        )
    if terms["client"].lower() != account.address.lower():
        raise click.ClickException(f"this offer is for {terms['client']}, not {account.address}")
    now = cs.chain.now()
    if now > terms["expiry"]:
        raise click.ClickException(f"the offer expired {when(terms['expiry'], chain_now())}")
    if cs.offers.offer_used(terms["provider"], terms["nonce"]):
        raise click.ClickException(f"offer {terms['nonce']} is already matched or cancelled")
    cs.fund_escrow(terms["price"], approve_max=approve_max)
    # Counted from the block the match is expected in, after any deposit.
    deadline = cs.chain.now() + wanted
    receipt = send(
        "matching the offer", cs.offers.match_offer, spec, deadline, terms, signature,
        sender=account,
    )  # fmt: skip
    click.echo(f"commit deadline {when(deadline, chain_now())}")
    (matched,) = receipt_events(receipt, cs.offers, "OfferMatched")
    click.echo(f"job 0x{bytes(matched['job_id']).hex()}")


@send_command(offer, "cancel")
@click.argument("nonce", type=click.IntRange(0, 2**256 - 1))
def offer_cancel(account, manifest, nonce):
    """Cancel your unused offer with NONCE: it can no longer be matched."""
    cs = connect(manifest, account)
    if cs.offers.offer_used(account, nonce):
        raise click.ClickException(f"offer {nonce} is already matched or cancelled")
    send("cancelling the offer", cs.offers.cancel_offer, nonce, sender=account)
    click.echo(f"offer {nonce}: cancelled")


@read_command(offer, "list")
@click.option("--provider", "provider_address", help="only this provider's offers")
@click.option("--client", "client_address", help="only offers matched by this client")
@full_option
def offer_list(manifest, provider_address, client_address, full):
    """Matched and cancelled offers, from OfferBook's events."""
    from computeshare.onchain import logs

    cs = connect(manifest)
    start = cs.manifest.block("OfferBook")
    wanted_provider = address(provider_address) if provider_address else None
    wanted_client = address(client_address) if client_address else None
    rows = []
    with step("reading offers"):
        events = logs(cs.offers, ["OfferMatched", "OfferCancelled"], start)
    for event in events:  # in chain order
        args = event.event_arguments
        matched = event.event_name == "OfferMatched"
        if wanted_provider and args["provider"] != wanted_provider:
            continue
        if wanted_client and (not matched or args["client"] != wanted_client):
            continue
        rows.append(
            {
                "provider": args["provider"] if full else args["provider"][:10],
                "nonce": args["nonce"],
                "state": "matched" if matched else "cancelled",
                "job": short_id(args["job_id"], full) if matched else "-",
                "client": (args["client"] if full else args["client"][:10]) if matched else "-",
                "block": event.block_number,
            }
        )
    table(rows, ["provider", "nonce", "state", "job", "client", "block"])
