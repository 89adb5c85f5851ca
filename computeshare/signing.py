"""EIP-712 signatures for ComputeShare contracts, made with real secp256k1 keys (eth-account).

The same helpers serve the tests, the CLI and dApps: a wallet would produce byte-identical
signatures from the same typed data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_utils import keccak

TOKEN_EIP712_NAME = "ComputeShare Token"
TOKEN_EIP712_VERSION = "1"

PERMIT_TYPES = {
    "Permit": [
        {"name": "owner", "type": "address"},
        {"name": "spender", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ]
}

DELEGATION_TYPES = {
    "Delegation": [
        {"name": "delegatee", "type": "address"},
        {"name": "nonce", "type": "uint256"},
        {"name": "expiry", "type": "uint256"},
    ]
}


@dataclass(frozen=True)
class Signature:
    """A secp256k1 signature split the way Solidity-style `v, r, s` arguments want it."""

    v: int
    r: bytes
    s: bytes

    @property
    def args(self) -> tuple[int, bytes, bytes]:
        return self.v, self.r, self.s


def domain(name: str, version: str, chain_id: int, verifying_contract: str) -> dict[str, Any]:
    """The EIP-712 domain of a contract that uses snekmate's `eip712_domain_separator`."""
    return {
        "name": name,
        "version": version,
        "chainId": chain_id,
        "verifyingContract": verifying_contract,
    }


def sign_typed(
    private_key: str | bytes, domain_data: dict[str, Any], types: dict[str, Any], message: dict
) -> Signature:
    """Signs EIP-712 typed data and returns `(v, r, s)`."""
    signed = Account.sign_typed_data(
        private_key, domain_data=domain_data, message_types=types, message_data=message
    )
    return Signature(signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big"))


def token_domain(chain_id: int, token: str) -> dict[str, Any]:
    return domain(TOKEN_EIP712_NAME, TOKEN_EIP712_VERSION, chain_id, token)


def sign_permit(
    private_key: str | bytes,
    *,
    chain_id: int,
    token: str,
    owner: str,
    spender: str,
    value: int,
    nonce: int,
    deadline: int,
) -> Signature:
    """EIP-2612 permit signature for ComputeToken."""
    message = {
        "owner": owner,
        "spender": spender,
        "value": value,
        "nonce": nonce,
        "deadline": deadline,
    }
    return sign_typed(private_key, token_domain(chain_id, token), PERMIT_TYPES, message)


def sign_delegation(
    private_key: str | bytes,
    *,
    chain_id: int,
    token: str,
    delegatee: str,
    nonce: int,
    expiry: int,
) -> Signature:
    """ERC-5805 `delegateBySig` signature for ComputeToken."""
    message = {"delegatee": delegatee, "nonce": nonce, "expiry": expiry}
    return sign_typed(private_key, token_domain(chain_id, token), DELEGATION_TYPES, message)


OFFER_EIP712_NAME = "ComputeShare OfferBook"
OFFER_EIP712_VERSION = "1"
# OfferBook's `Offer`, field for field in its typehash's order. Beside the price the offer
# binds what the client could otherwise turn against the provider: the spec it runs
# (`spec_hash`, zero for any spec) and how far after the match the commit deadline may be
# (`min_duration` to `max_duration` seconds, both inclusive; `min_duration` is at least 1).
OFFER_TYPES = {
    "Offer": [
        {"name": "provider", "type": "address"},
        {"name": "device_nonce", "type": "uint64"},
        {"name": "client", "type": "address"},
        {"name": "price", "type": "uint96"},
        {"name": "collateral", "type": "uint96"},
        {"name": "spec_hash", "type": "bytes32"},
        {"name": "min_duration", "type": "uint32"},
        {"name": "max_duration", "type": "uint32"},
        {"name": "expiry", "type": "uint48"},
        {"name": "nonce", "type": "uint256"},
    ]
}
# An offer's `spec_hash` for "any spec the client chooses".
ANY_SPEC = bytes(32)


def device_id(owner: str, nonce: int) -> bytes:
    """DeviceRegistry's id of the device `owner` registered with its `nonce`-th
    registration: keccak256(abi_encode(owner, nonce)), as `device_id_of` answers it. The
    owner is an address or an account (its `address`)."""
    from eth_abi import encode

    return keccak(encode(["address", "uint256"], [str(getattr(owner, "address", owner)), nonce]))


def spec_hash(spec: bytes) -> bytes:
    """The `spec_hash` of an offer for exactly `spec`: keccak256 of its bytes, as JobEscrow
    records the spec of a job."""
    return keccak(bytes(spec))


def sign_offer(private_key: str | bytes, *, chain_id: int, offer_book: str, offer: dict) -> bytes:
    """A provider's EIP-712 signature over an OfferBook offer, as 65 bytes (r, s, v)."""
    domain_data = domain(OFFER_EIP712_NAME, OFFER_EIP712_VERSION, chain_id, offer_book)
    sig = sign_typed(private_key, domain_data, OFFER_TYPES, offer)
    return sig.r + sig.s + bytes([sig.v])


GOVERNOR_EIP712_NAME = "ComputeShare Governor"
GOVERNOR_EIP712_VERSION = "1"
BALLOT_TYPES = {
    "Ballot": [
        {"name": "proposalId", "type": "uint256"},
        {"name": "support", "type": "uint8"},
        {"name": "voter", "type": "address"},
        {"name": "nonce", "type": "uint256"},
    ]
}


def sign_ballot(
    private_key: str | bytes,
    *,
    chain_id: int,
    governor: str,
    proposal_id: int,
    support: int,
    voter: str,
    nonce: int,
) -> bytes:
    """A voter's EIP-712 `Ballot` signature for Governor.castVoteBySig, as 65 bytes (r, s, v)."""
    message = {"proposalId": proposal_id, "support": support, "voter": voter, "nonce": nonce}
    return _sign_for_governor(private_key, chain_id, governor, BALLOT_TYPES, message)


def _sign_for_governor(private_key, chain_id: int, governor: str, types: dict, message: dict):
    domain_data = domain(GOVERNOR_EIP712_NAME, GOVERNOR_EIP712_VERSION, chain_id, governor)
    sig = sign_typed(private_key, domain_data, types, message)
    return sig.r + sig.s + bytes([sig.v])


# OpenZeppelin 5's `ExtendedBallot`: a `Ballot` and then the reason and the params.
EXTENDED_BALLOT_TYPES = {
    "ExtendedBallot": [
        *BALLOT_TYPES["Ballot"],
        {"name": "reason", "type": "string"},
        {"name": "params", "type": "bytes"},
    ]
}


def sign_extended_ballot(
    private_key: str | bytes,
    *,
    chain_id: int,
    governor: str,
    proposal_id: int,
    support: int,
    voter: str,
    nonce: int,
    reason: str,
    params: bytes,
) -> bytes:
    """A voter's EIP-712 `ExtendedBallot` signature (OpenZeppelin 5's) for
    Governor.castVoteWithReasonAndParamsBySig, as 65 bytes (r, s, v)."""
    message = {
        "proposalId": proposal_id,
        "support": support,
        "voter": voter,
        "nonce": nonce,
        "reason": reason,
        "params": params,
    }
    return _sign_for_governor(private_key, chain_id, governor, EXTENDED_BALLOT_TYPES, message)
