"""Job helpers shared by clients, providers and tests: commitments and outcome names."""

from __future__ import annotations

from eth_abi import encode
from eth_utils import keccak

# JobEscrow job status.
STATUS_OPEN, STATUS_DISPUTED, STATUS_FINALIZED, STATUS_CANCELLED = 1, 2, 3, 4
# Replica status.
REPLICA_ACCEPTED, REPLICA_COMMITTED, REPLICA_REVEALED = 1, 2, 3
# Replica outcomes, as JobEscrow reports them to the registry.
OUTCOME_COMPLETED, OUTCOME_FAILED, OUTCOME_SLASHED = 0, 1, 2


def commitment(job_id: bytes, provider: str, result_hash: bytes, salt: bytes) -> bytes:
    """What a provider commits: keccak256(abi_encode(job_id, provider, result_hash, salt))."""
    return keccak(
        encode(["bytes32", "address", "bytes32", "bytes32"], [job_id, provider, result_hash, salt])
    )


def job_id(client: str, nonce: int, spec: bytes) -> bytes:
    """keccak256(abi_encode(client, nonce, keccak256(spec))), as JobEscrow derives it: the
    id commits to the spec, so a provider can check the spec it was given against it."""
    return keccak(encode(["address", "uint256", "bytes32"], [client, nonce, keccak(spec)]))
