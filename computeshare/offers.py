"""OfferBook's signed offers, for the SDK (`ComputeShare.sign_offer`, `match_offer`,
`cancel_offer`, `offer_history`) and so for `computeshare offer`.

A provider signs an EIP-712 offer off-chain naming its device, a price and collateral,
the one client it is for, the spec it agrees to run (or any), how far after the match
the commit deadline may fall, an expiry and a nonce. The signed offer travels as a JSON
document (`SignedOffer.document`):

    {"chain_id": 1, "offer_book": "0x...",
     "offer": {"provider": "0x...", "device_nonce": 0, "client": "0x...", "price": "10",
               "collateral": "10", "spec_hash": "0x...", "min_duration": 600,
               "max_duration": 604800, "expiry": 1767225600, "nonce": "7"},
     "signature": "0x<r s v>"}

(amounts and the nonce as decimal strings: JSON readers may not hold 96- and 256-bit
numbers). Its client matches it: one transaction posts a k = 1 job already accepted by
the device, paid from the client's escrow balance. Every check OfferBook's `match_offer`
and `cancel_offer` make is made here first, so a refusal sends nothing.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eth_utils import is_address, to_checksum_address

from computeshare.checks import check_terms, checked_address
from computeshare.constants import (
    MATCH_DURATION,
    MAX_AMOUNT,
    MAX_UINT,
    OFFER_EXPIRY,
    OFFER_MIN_DURATION,
    DeviceStatus,
)
from computeshare.exceptions import (
    ClientError,
    InvalidInput,
    NotAllowed,
    WrongState,
)
from computeshare.format import SHORT_ID, when
from computeshare.format import duration as span
from computeshare.format import tokens as show
from computeshare.onchain import logs, operation_event
from computeshare.rpc import node_trouble
from computeshare.signing import (
    ANY_SPEC,
    OFFER_EIP712_NAME,
    OFFER_EIP712_VERSION,
    OFFER_TYPES,
    device_id,
    domain,
)
from computeshare.signing import spec_hash as hash_of

if TYPE_CHECKING:
    from computeshare.client import ComputeShare

OFFER_FIELDS = tuple(entry["name"] for entry in OFFER_TYPES["Offer"])
_INTEGERS = ("device_nonce", "price", "collateral", "min_duration", "max_duration", "expiry",
             "nonce")  # fmt: skip
_AS_TEXT = ("price", "collateral", "nonce")  # decimal strings in the document
MAX_UINT48, MAX_UINT32 = 2**48 - 1, 2**32 - 1
# A match without a duration: `MATCH_DURATION`, within the offer's range, and this far past
# its floor where the range allows, since the match block may come after the moment the
# deadline is counted from.
MATCH_SLACK = 10 * 60


@dataclass(frozen=True)
class SignedOffer:
    """A signed offer: `document` (the JSON document above, as a dict), `terms` (the
    offer as OfferBook takes it: ints, bytes and addresses) and `warnings` (one line
    each: what would make a match revert that the provider can still fix)."""

    document: dict
    terms: dict
    warnings: list[str] = field(default_factory=list)


def check_spec(spec: bytes) -> bytes:
    """`spec` as bytes, checked as every provider checks a spec (InvalidInput if not)."""
    from computeshare.workloads import WorkloadError, decode_spec

    try:
        decode_spec(bytes(spec))
    except WorkloadError as error:
        raise InvalidInput(f"the spec: {error}") from None
    return bytes(spec)


def bounds_text(terms: dict) -> str:
    """What an offer lets its client choose, in words: "any spec, commit deadline 10m to
    7d after the match"."""
    bound = bytes(terms["spec_hash"])
    spec = "any spec" if bound == ANY_SPEC else f"spec 0x{bound.hex()[:SHORT_ID]} only"
    low, high = terms["min_duration"], terms["max_duration"]
    return f"{spec}, commit deadline {span(low)} to {span(high)} after the match"


def sign_offer(
    cs: ComputeShare,
    client: str,
    price: int,
    *,
    collateral: int | None = None,
    device: bytes | None = None,
    spec: bytes | None = None,
    spec_hash: bytes | None = None,
    min_duration: int = OFFER_MIN_DURATION,
    max_duration: int | None = None,
    expires_in: int = OFFER_EXPIRY,
    nonce: int | None = None,
) -> SignedOffer:
    """Signs, with the account, an offer of its `device` (default: its first) to
    `client`: `price` and `collateral` (default: the price) in wei, for `spec` only (or
    the spec whose keccak256 is `spec_hash`; any spec without either), with a commit
    deadline `min_duration` to `max_duration` seconds after the match (default:
    JobEscrow's MAX_JOB_DURATION), matchable for `expires_in` seconds, under `nonce`
    (default: random). Nothing is sent."""
    me = cs._sender()
    client = checked_address(client, "client")
    collateral = price if collateral is None else collateral
    if not 0 <= price <= MAX_AMOUNT or not 0 <= collateral <= MAX_AMOUNT:
        raise InvalidInput("price and collateral must fit in 96 bits")
    if spec is not None and spec_hash is not None:
        raise InvalidInput("give the spec or its hash, not both")
    if spec is not None:
        bound = hash_of(check_spec(spec))
    elif spec_hash is not None:
        bound = bytes(spec_hash)
        if len(bound) != 32:
            raise InvalidInput("a spec hash is 32 bytes")
    else:
        bound = ANY_SPEC
    if not 1 <= min_duration <= MAX_UINT32:
        raise InvalidInput("min_duration must be 1s or more (1s for no floor) and fit in 32 bits")
    if max_duration is not None and not min_duration <= max_duration <= MAX_UINT32:
        raise InvalidInput(
            f"max_duration must be at least min_duration ({span(min_duration)}) and fit in 32 bits"
        )
    if nonce is not None and not 0 <= nonce <= MAX_UINT:
        raise InvalidInput("a nonce is a 256-bit unsigned number")
    if expires_in < 0:
        raise InvalidInput("expires_in must not be negative")
    warnings = []
    longest = cs.parameter("JobEscrow", "MAX_JOB_DURATION")
    if min_duration > longest:
        raise InvalidInput(
            f"min_duration is more than JobEscrow's MAX_JOB_DURATION ({span(longest)}): no "
            "deadline could meet it"
        )
    if max_duration is None:
        max_duration = longest
    elif max_duration > longest:
        warnings.append(
            f"JobEscrow refuses deadlines more than {span(longest)} away (MAX_JOB_DURATION)"
        )
    if device is None:
        if cs.registry.device_count(me) == 0:
            raise WrongState("you have no device: `computeshare provider register`")
        device, index = device_id(me.address, 0), 0
    else:
        device = bytes(device)
        index = cs.device_nonce(me.address, device)
    if cs.registry.device(device).status != DeviceStatus.ACTIVE:
        raise WrongState(f"device 0x{device.hex()[:10]} is not active")
    nonce = secrets.randbits(64) if nonce is None else nonce
    if cs.offers.offer_used(me, nonce):
        raise WrongState(f"nonce {nonce} is already matched or cancelled")
    terms = {
        "provider": me.address,
        "device_nonce": index,
        "client": client,
        "price": price,
        "collateral": collateral,
        "spec_hash": bound,
        "min_duration": min_duration,
        "max_duration": max_duration,
        "expiry": min(cs.chain.now() + expires_in, MAX_UINT48),
        "nonce": nonce,
    }
    document = {
        "chain_id": cs.chain.chain_id,
        "offer_book": str(cs.offers.address),
        "offer": {name: _json_value(name, value) for name, value in terms.items()},
        "signature": "0x" + _sign(cs, me, terms).hex(),
    }
    free = cs.staking.free_stake(me)
    if free < collateral:
        warnings.append(
            f"your free stake is {show(free)} tokens, less than the collateral: a match "
            "would revert until you stake more"
        )
    return SignedOffer(document, terms, warnings)


def _signable(cs: ComputeShare, terms: dict):
    """The offer `terms` as the EIP-712 message the deployment's OfferBook checks."""
    from eth_account.messages import encode_typed_data

    return encode_typed_data(
        domain_data=domain(
            OFFER_EIP712_NAME, OFFER_EIP712_VERSION, cs.chain.chain_id, str(cs.offers.address)
        ),
        message_types=OFFER_TYPES,
        message_data=terms,
    )


def _sign(cs: ComputeShare, account, terms: dict) -> bytes:
    """The account's EIP-712 signature over `terms` for the deployment's OfferBook, as 65
    bytes (r, s, v): an ape account or a `computeshare.accounts.Signer` signs it."""
    signature = account.sign_message(_signable(cs, terms))
    if signature is None:
        raise ClientError("the account did not sign")
    return bytes(signature.encode_rsv())


def _json_value(name: str, value: Any):
    if name in _AS_TEXT:
        return str(value)
    return "0x" + value.hex() if isinstance(value, bytes) else value


def load_offer(path: Path | str) -> dict:
    """The signed offer document in the file at `path` (InvalidInput if it is none)."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise InvalidInput(f"{path} is not a signed offer ({error})") from None
    read_offer(document, str(path))
    return document


def read_offer(document: dict, source: str = "the document") -> tuple[dict, bytes]:
    """A signed offer document's terms (as OfferBook takes them) and signature;
    InvalidInput naming `source` if it is not one."""
    try:
        fields = document["offer"]
        terms = {name: fields[name] for name in OFFER_FIELDS}
        for name in _INTEGERS:
            terms[name] = _integer(terms[name], name, _BITS[name])
        for name in ("provider", "client"):
            if not is_address(terms[name]):
                raise ValueError(f"{name} is not an address")
            terms[name] = to_checksum_address(terms[name])
        terms["spec_hash"] = bytes.fromhex(terms["spec_hash"].removeprefix("0x"))
        if len(terms["spec_hash"]) != 32:
            raise ValueError("spec_hash is not 32 bytes")
        signature = bytes.fromhex(document["signature"].removeprefix("0x"))
        if len(signature) != 65:
            raise ValueError("the signature is not 65 bytes")
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise InvalidInput(f"{source} is not a signed offer ({error})") from None
    return terms, signature


# Each integer field's width in OfferBook's Offer (uint64, uint96, uint32, uint48, uint256).
_BITS = {e["name"]: int(e["type"][4:]) for e in OFFER_TYPES["Offer"] if e["type"][:4] == "uint"}


def _integer(value: Any, name: str, bits: int) -> int:
    """An offer's integer field: a JSON integer or a decimal string, within its width
    (a float, a boolean or an infinity is not one)."""
    if isinstance(value, str) and value.strip().isdecimal():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{name} is not an integer")
    if not 0 <= value < 2**bits:
        raise ValueError(f"{name} does not fit in uint{bits}")
    return value


def signer_of(cs: ComputeShare, terms: dict, signature: bytes) -> str | None:
    """The account whose key signed the offer for this deployment's OfferBook (EIP-712),
    or None when the signature recovers to no account."""
    from eth_account import Account

    try:
        return Account.recover_message(_signable(cs, terms), signature=signature)
    except Exception:  # eth-keys' BadSignature and the like: a signature of no key
        return None


def match_duration(terms: dict, wanted: int | None) -> int:
    """The seconds from the match to the commit deadline: `wanted`, checked against the
    offer's range, or by default `MATCH_DURATION` or the nearest the offer allows."""
    low, high = terms["min_duration"], terms["max_duration"]
    if wanted is None:
        return min(max(MATCH_DURATION, low + MATCH_SLACK), high)
    if not low <= wanted <= high:
        raise InvalidInput(f"{span(wanted)} is outside the offer's {span(low)} to {span(high)}")
    return wanted


def match_offer(
    cs: ComputeShare,
    offer: dict | Path | str,
    spec: bytes,
    *,
    max_price: int | None = None,
    duration: int | None = None,
    approve_max: bool | None = None,
) -> dict:
    """Posts a k = 1 job of `spec` through the signed `offer` (its document, or the
    path of its file), already accepted by its device and paid from the account's escrow
    balance (what it lacks is deposited first), with its commit deadline `duration`
    seconds after the match (`match_duration`). The price is the provider's: the client
    names the most it pays (`max_price`, in wei), and an offer asking more (or a match
    without `max_price`) is refused before anything is sent. Returns what `OfferMatched`
    says (`job_id`, `provider`, `client`, `nonce`) with the `deadline`."""
    me = cs._sender()
    if isinstance(offer, dict):
        document, source = offer, "the offer"
    else:
        document, source = load_offer(offer), str(offer)
    terms, signature = read_offer(document, source)
    if document.get("chain_id") != cs.chain.chain_id or (
        str(document.get("offer_book", "")).lower() != str(cs.offers.address).lower()
    ):
        raise InvalidInput(
            f"{source} is for OfferBook {document.get('offer_book')} on chain "
            f"{document.get('chain_id')}, not this deployment's"
        )
    if terms["client"] != me.address:
        raise NotAllowed(f"this offer is for {terms['client']}, not {me.address}")
    if max_price is None or terms["price"] > max_price:
        asked = f"this offer asks {show(terms['price'])} tokens"
        raise InvalidInput(
            f"{asked}: name the most you pay (max_price) to match it"
            if max_price is None
            else f"{asked}, more than your most of {show(max_price)}"
        )
    spec = check_spec(spec)
    if terms["spec_hash"] not in (ANY_SPEC, hash_of(spec)):
        raise InvalidInput(
            f"this offer is for the spec 0x{terms['spec_hash'].hex()[:SHORT_ID]} only, not this "
            "one: pass that spec with --spec-file"
        )
    wanted = match_duration(terms, duration)
    if not 1 <= terms["min_duration"] <= terms["max_duration"]:
        raise InvalidInput("the offer's duration range is empty")
    now = cs.chain.now()
    if now > terms["expiry"]:
        raise WrongState(f"the offer expired {when(terms['expiry'], now)}")
    if cs.offers.offer_used(terms["provider"], terms["nonce"]):
        raise WrongState(f"offer {terms['nonce']} is already matched or cancelled")
    _check_provider(cs, terms)
    check_terms(cs, terms["price"], terms["collateral"], wanted)
    if signer_of(cs, terms, signature) != terms["provider"] and not _signed_by_contract(
        cs, terms, signature
    ):
        raise InvalidInput("the offer's signature is not its provider's")
    funded = cs.fund_escrow(terms["price"], approve_max=approve_max)
    # Counted from the block the match is expected in, after any deposit.
    deadline = cs.chain.now() + wanted
    args = (spec, deadline, terms, signature)
    if not funded:
        cs._simulate(cs.offers.match_offer, *args)
    receipt = cs._send("matching the offer", cs.offers.match_offer, *args)
    matched = operation_event(
        receipt, cs.offers, "OfferMatched",
        provider=terms["provider"], client=me.address, nonce=terms["nonce"],
    )  # fmt: skip
    matched["job_id"] = bytes(matched["job_id"])
    matched["deadline"] = deadline
    return matched


# EIP-1271: a contract account's signature check, and the answer it gives a valid one.
_ERC1271 = [{
    "type": "function", "name": "isValidSignature", "stateMutability": "view",
    "inputs": [{"name": "hash", "type": "bytes32"}, {"name": "signature", "type": "bytes"}],
    "outputs": [{"name": "", "type": "bytes4"}],
}]  # fmt: skip
_ERC1271_VALID = bytes.fromhex("1626ba7e")


def _signed_by_contract(cs: ComputeShare, terms: dict, signature: bytes) -> bool:
    """Whether the offer's provider is a contract that accepts `signature` over the offer's
    digest by EIP-1271, as OfferBook asks it (a revert or another answer is a no)."""
    if not cs.chain.has_code(terms["provider"]):
        return False
    wallet = cs.chain.contract("EIP-1271 wallet", terms["provider"], _ERC1271)
    try:
        answer = wallet.isValidSignature(cs.offers.offer_digest(terms), signature)
    except Exception as error:
        if node_trouble(error):
            raise
        return False
    return bytes(answer) == _ERC1271_VALID


def _check_provider(cs: ComputeShare, terms: dict) -> None:
    """What the escrow would refuse of the offer's provider: a device that is not
    active, or free stake short of the collateral."""
    provider = terms["provider"]
    if terms["device_nonce"] >= cs.registry.device_count(provider):
        raise WrongState(f"the provider has no device {terms['device_nonce']}")
    device = device_id(provider, terms["device_nonce"])
    if cs.registry.device(device).status != DeviceStatus.ACTIVE:
        raise WrongState(f"the offer's device 0x{device.hex()[:10]} is not active")
    free = cs.staking.free_stake(provider)
    if free < terms["collateral"]:
        raise WrongState(
            f"the provider's free stake is {show(free)} tokens, less than the offer's "
            f"collateral ({show(terms['collateral'])})"
        )


def cancel_offer(cs: ComputeShare, nonce: int) -> dict:
    """Cancels the account's unused offer with `nonce`: it can no longer be matched.
    Returns what `OfferCancelled` says (`provider`, `nonce`)."""
    me = cs._sender()
    if not 0 <= nonce <= MAX_UINT:
        raise InvalidInput("a nonce is a 256-bit unsigned number")
    if cs.offers.offer_used(me, nonce):
        raise WrongState(f"offer {nonce} is already matched or cancelled")
    receipt = cs._send("cancelling the offer", cs.offers.cancel_offer, nonce)
    return operation_event(receipt, cs.offers, "OfferCancelled", provider=me.address, nonce=nonce)


def offer_history(
    cs: ComputeShare, provider: str | None = None, client: str | None = None
) -> list[dict]:
    """Matched and cancelled offers, from OfferBook's events in chain order, only
    `provider`'s and only those `client` matched if given: `provider`, `nonce`, `state`
    ("matched" or "cancelled"), `job_id` and `client` (None when cancelled), `block`."""
    provider = checked_address(provider, "provider") if provider else None
    client = checked_address(client, "client") if client else None
    start = cs.manifest.block("OfferBook")
    rows = []
    for event in logs(cs.offers, ["OfferMatched", "OfferCancelled"], start):
        args = event.event_arguments
        matched = event.event_name == "OfferMatched"
        if provider and args["provider"] != provider:
            continue
        if client and (not matched or args["client"] != client):
            continue
        rows.append(
            {
                "provider": args["provider"],
                "nonce": int(args["nonce"]),
                "state": "matched" if matched else "cancelled",
                "job_id": bytes(args["job_id"]) if matched else None,
                "client": args["client"] if matched else None,
                "block": event.block_number,
            }
        )
    return rows
