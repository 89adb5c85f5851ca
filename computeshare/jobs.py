"""Job helpers shared by clients, providers and tests: terms, commitments and outcome names.

JobEscrow stores one word of state per job; a job's terms live in its `JobPosted` event and
every call after `post` passes them back (a k = 1 job's replica too, from its events).
`JobBook` recovers both from the chain and makes those calls by job id.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from computeshare.constants import (
    ESCROW_SHARDS,
    JobStatus,
    Outcome,
    Replica,
    ReplicaStatus,
    Terms,
)
from computeshare.onchain import _hex_text, event_topics, logs

# Short names of the enum members (the same objects), for call sites that compare often.
STATUS_OPEN, STATUS_DISPUTED, STATUS_FINALIZED, STATUS_CANCELLED = list(JobStatus)[1:]
REPLICA_ACCEPTED, REPLICA_COMMITTED, REPLICA_REVEALED = list(ReplicaStatus)[1:]
OUTCOME_COMPLETED, OUTCOME_FAILED, OUTCOME_SLASHED = Outcome

TERMS_FIELDS = Terms._fields
TERMS_TYPES = ["address", "uint256", "bytes32"] + ["uint256"] * 8
# Packed requirements in the terms: (field, bit offset, bits).
REQUIREMENT_BITS = (
    ("min_cpu_cores", 0, 16),
    ("min_memory_mb", 16, 32),
    ("min_gpu_count", 48, 8),
    ("min_vram_mb", 56, 32),
    ("region", 88, 16),
    ("attested_only", 104, 8),
    ("compute_seconds", 112, 32),
)
NO_REPLICA = Replica("0x" + "00" * 20, 0, b"\x00" * 32)
_FAILED = object()  # an index look-up that could not be made


def commitment(job_id: bytes, provider: str, result_hash: bytes, salt: bytes) -> bytes:
    """What a provider commits: keccak256(abi_encode(job_id, provider, result_hash, salt))."""
    return keccak(
        encode(["bytes32", "address", "bytes32", "bytes32"], [job_id, provider, result_hash, salt])
    )


def pack_requirements(requirements: dict) -> int:
    """Requirements as the terms carry them: one word, fields at `REQUIREMENT_BITS`."""
    return sum(int(requirements[name]) << offset for name, offset, _ in REQUIREMENT_BITS)


def unpack_requirements(packed: int) -> dict:
    fields: dict[str, Any] = {
        name: (packed >> offset) & ((1 << bits) - 1) for name, offset, bits in REQUIREMENT_BITS
    }
    fields["attested_only"] = bool(fields["attested_only"])
    return fields


def terms_tuple(terms: Any) -> Terms:
    """Terms (an event's struct, a dict or a tuple) as the tuple JobEscrow takes."""
    if isinstance(terms, tuple | list):
        values = list(terms)
    elif isinstance(terms, dict):
        values = [terms[name] for name in TERMS_FIELDS]
    else:
        values = [getattr(terms, name) for name in TERMS_FIELDS]
    values[0] = to_checksum_address(str(values[0]))
    values[2] = bytes(values[2])
    return Terms(*values)


def terms_from_json(terms: dict) -> Terms:
    """Terms as the index stores them (JSON: hex bytes, big numbers as strings) -> a tuple."""
    values = []
    for name, kind in zip(TERMS_FIELDS, TERMS_TYPES, strict=True):
        value = terms[name]
        if kind == "bytes32":
            values.append(bytes.fromhex(value[2:]) if isinstance(value, str) else bytes(value))
        elif kind == "address":
            values.append(to_checksum_address(value))
        else:
            values.append(int(value))
    return Terms(*values)


def job_id_of(terms: Any) -> bytes:
    """keccak256(abi_encode(terms)), as JobEscrow derives it: the id commits to the client,
    its nonce, the spec hash and every term, so a provider can check what it was given."""
    return keccak(encode(TERMS_TYPES, list(terms_tuple(terms))))


def indexed_topics(contract, event: str, since: int = 0, position: int = 1) -> list[bytes]:
    """The `position`-th indexed argument (its 32-byte topic) of every `event` of
    `contract` since block `since`, in chain order (see `event_topics`)."""
    return [topics[position] for topics in event_topics(contract, event, since)]


def deposit_shard(account: str) -> int:
    """The JobEscrow deposit shard of `account` (`JobEscrowView.deposit_shard`)."""
    return int(str(account), 16) % ESCROW_SHARDS


def custody_address(custodian: str, key: str | int) -> str:
    """ComputeToken's custody account of `custodian` under `key` (an address, or a
    deposit shard's number): the low 160 bits of keccak256(tag, custodian, key)."""
    key_bytes = (int(key, 16) if isinstance(key, str) else key).to_bytes(32, "big")
    custodian_bytes = bytes.fromhex(_hex_text(custodian)).rjust(32, b"\0")
    digest = keccak(keccak(text="ComputeShare custody account") + custodian_bytes + key_bytes)
    return to_checksum_address(digest[12:])


def payers_of(escrow, provider: str, since: int = 0, last: int = 32) -> list[str]:
    """Clients whose jobs paid `provider` (its last `last` settled jobs), best to take its
    pay from first: those whose job it served alone before those whose job other
    replicas served too (who may take their pay from the same client), then the most
    recent first. Three `eth_getLogs` requests."""
    me = "0x" + bytes.fromhex(_hex_text(provider)).rjust(32, b"\0").hex()
    mine = event_topics(escrow, "ReplicaSettled", since, [None, me])
    jobs = list(dict.fromkeys(topics[1] for topics in mine))[-last:]
    if not jobs:
        return []
    wanted = [["0x" + job.hex() for job in jobs]]
    replicas: dict[bytes, int] = {}
    for topics in event_topics(escrow, "ReplicaSettled", since, wanted):
        replicas[topics[1]] = replicas.get(topics[1], 0) + 1
    client_of = {
        t[1]: to_checksum_address(t[2][12:])
        for t in event_topics(escrow, "JobSettled", since, wanted)
    }
    recent = [job for job in reversed(jobs) if job in client_of]
    ranked = sorted(recent, key=lambda job: replicas.get(job, 1))  # stable: recency within
    return list(dict.fromkeys(client_of[job] for job in ranked))


def devices_with_fees(escrow, start_block: int = 0) -> list[bytes]:
    """Devices whose completed jobs accrued protocol fees not yet swept, in the order
    they first settled: every device of a `ReplicaSettled` event (its third topic), kept
    when `fees(device)` is not zero."""
    devices = dict.fromkeys(indexed_topics(escrow, "ReplicaSettled", start_block, 3))
    return [device for device in devices if escrow.fees(device)]


class JobBook:
    """JobEscrow's (and JobDisputes') job calls addressed by job id: the terms come from the job's
    `JobPosted` event (remembered once seen, they never change), a k = 1 job's replica
    from its `ReplicaAccepted`, `ResultCommitted` and `ResultRevealed` events."""

    def __init__(self, escrow, view, start_block: int = 0, index=None, disputes=None):
        self.escrow, self.escrow_view = escrow, view  # JobEscrow and JobEscrowView
        self.disputes = disputes  # JobDisputes: disputes and rulings
        self.start_block = start_block
        self.index = index  # an EventIndex: look-ups read it instead of eth_getLogs
        self._terms: dict[bytes, Terms] = {}

    # -- reading the chain

    def _logs(self, job_id: bytes, *events: str) -> list:
        """The job's logs of these events, in chain order: one `eth_getLogs` request."""
        return logs(self.escrow, list(events), self.start_block, ["0x" + bytes(job_id).hex()])

    def _from_index(self, query: Callable[[Any], Any]) -> Any:
        """`query` on the index brought up to date; `_FAILED` when the index cannot be (a
        node error, a full disk): the caller reads the logs instead, so a broken index
        never stops a provider from settling."""
        try:
            self.index.sync()
            return query(self.index)
        except Exception:
            return _FAILED

    def remember(self, terms: Any) -> bytes:
        """Records terms seen elsewhere (e.g. a `JobPosted` already in hand); returns the id."""
        values = terms_tuple(terms)
        job_id = job_id_of(values)
        self._terms[job_id] = values
        return job_id

    def terms(self, job_id: bytes) -> Terms:
        job_id = bytes(job_id)
        if job_id not in self._terms and self.index is not None:
            found = self._from_index(lambda index: index.job_terms("0x" + job_id.hex()))
            if found is not None and found is not _FAILED:
                self.remember(terms_from_json(found))
        if job_id not in self._terms:
            posted = self._logs(job_id, "JobPosted")
            if not posted:
                raise LookupError(f"no job 0x{job_id.hex()} posted on this chain")
            self.remember(posted[0].terms)
        return self._terms[job_id]

    def replica(self, job_id: bytes) -> Replica:
        """A k = 1 job's replica as JobEscrow binds it: (provider, device nonce, digest), the
        digest being zero, then the commitment, then the result. Empty if none accepted."""
        if self.index is not None:
            found = self._from_index(lambda index: index.single_replica("0x" + bytes(job_id).hex()))
            if found is not _FAILED:
                return Replica(*found) if found else NO_REPLICA
        provider, device_nonce, digest = NO_REPLICA
        for log in self._logs(job_id, "ReplicaAccepted", "ResultCommitted", "ResultRevealed"):
            # Read arguments by name: `provider` is also a property of every ape log.
            args = log.event_arguments
            if log.event_name == "ReplicaAccepted":
                provider, device_nonce = to_checksum_address(args["provider"]), args["device_nonce"]
            elif log.event_name == "ResultCommitted":
                digest = bytes(args["commitment"])
            else:
                digest = bytes(args["result_hash"])
        return Replica(provider, device_nonce, digest)

    def revealed(self, job_id: bytes) -> dict[int, bytes]:
        """The result hash each slot of the job revealed, from its `ResultRevealed` events."""
        return {
            int(log.slot): bytes(log.result_hash) for log in self._logs(job_id, "ResultRevealed")
        }

    def settlement_replica(self, job_id: bytes) -> Replica:
        """What settlement calls take: the k = 1 replica, empty for k > 1."""
        return self.replica(job_id) if self.terms(job_id).replicas == 1 else NO_REPLICA

    def device_nonce(self, job_id: bytes, slot: int) -> int:
        if self.terms(job_id).replicas == 1:
            return self.replica(job_id).device_nonce
        return self.escrow_view.assignment(job_id, slot).device_nonce

    def view(self, job_id: bytes) -> SimpleNamespace:
        """The job's terms (requirements unpacked) and its stored state, as attributes."""
        terms = self.terms(job_id)._asdict()
        terms["requirements"] = unpack_requirements(terms["requirements"])
        return SimpleNamespace(**{**terms, **dict(self.escrow_view.job(job_id).items())})

    # -- JobEscrow calls by job id

    def cancel(self, job_id: bytes, **tx):
        return self.escrow.cancel(self.terms(job_id), **tx)

    def dispute(self, job_id: bytes, **tx):
        """The client's dispute (JobDisputes), its bond pulled from its wallet."""
        return self.disputes.dispute(self.terms(job_id), **tx)

    def reclaim(self, job_id: bytes, **tx):
        """Returns an unruled dispute's bond to the client's JobDisputes balance."""
        return self.disputes.reclaim(self.terms(job_id), **tx)

    def accept(self, job_id: bytes, device_nonce: int, **tx):
        return self.escrow.accept(self.terms(job_id), device_nonce, **tx)

    def commit(self, job_id: bytes, slot: int, digest: bytes, **tx):
        nonce = self.device_nonce(job_id, slot)
        return self.escrow.commit(self.terms(job_id), slot, nonce, digest, **tx)

    def reveal(self, job_id: bytes, slot: int, result_hash: bytes, salt: bytes, **tx):
        nonce = self.device_nonce(job_id, slot)
        return self.escrow.reveal(self.terms(job_id), slot, nonce, result_hash, salt, **tx)

    def submit_args(
        self,
        job_id: bytes,
        result,
        output_on_chain: bool = True,
        device_nonce: int | None = None,
    ) -> tuple:
        """`JobEscrow.submit`'s arguments for a k = 1 `RunResult`: its output travels in the
        event unless `output_on_chain` is false (private) or it is longer than
        MAX_ON_CHAIN_OUTPUT (then the provider serves it). `device_nonce`: the accepting
        device's, when the caller knows it (else read from the replica)."""
        from computeshare.sandbox import MAX_ON_CHAIN_OUTPUT

        # A tree's output hash is not keccak256 of the bytes: only a plain stdout travels.
        on_chain = output_on_chain and not result.output_root
        on_chain = on_chain and len(result.output) <= MAX_ON_CHAIN_OUTPUT
        output = result.output if on_chain else b""
        nonce = self.replica(job_id).device_nonce if device_nonce is None else device_nonce
        return (
            self.terms(job_id),
            nonce,
            result.status,
            result.fuel,
            result.output_hash(),
            output,
        )

    def submit(self, job_id: bytes, result, output_on_chain: bool = True, **tx):
        """Submits a k = 1 job's result directly (see `submit_args`)."""
        return self.escrow.submit(*self.submit_args(job_id, result, output_on_chain), **tx)

    def finalize(self, job_id: bytes, **tx):
        return self.escrow.finalize(self.terms(job_id), self.settlement_replica(job_id), **tx)

    def expire(self, job_id: bytes, **tx):
        return self.escrow.expire(self.terms(job_id), self.settlement_replica(job_id), **tx)

    def rule(self, job_id: bytes, for_client: bool = False, *, result: bytes | None = None, **tx):
        """The arbiter's ruling. k = 1: for the client or for the provider. k > 1 (the
        replicas disagreed): `result` is the result hash found right; replicas that
        revealed it are paid, the others slashed."""
        if self.terms(job_id).replicas == 1:
            replica = self.settlement_replica(job_id)
        else:
            if result is None:
                raise ValueError("a replicated job's ruling names the right result hash")
            replica = Replica(NO_REPLICA.provider, 0, bytes(result))
        return self.disputes.rule(self.terms(job_id), replica, for_client, **tx)


def open_phase(view: dict, now: int) -> str:
    """Where an open job stands and what happens next, from its view (`ComputeShare.job`),
    with times counted on the chain's clock from `now`."""
    from computeshare.format import when

    end, k = view["phase_end"], view["replicas"]
    if k == 1 and view["replica_states"] == ["revealed"]:
        if now < end:
            return (
                f"result in: it waits out its challenge window until {when(end, now)}, "
                "then pays the provider once finalized"
            )
        return (
            f"challenge window closed {when(end, now)}: it pays once settled "
            "(the provider finalizes, or `computeshare client expire JOB`)"
        )
    deadline = view["deadline"]
    if now < deadline and view["committed"] < k:
        waiting = f"{view['accepted']} of {k} accepted, {view['committed']} committed"
        return f"running ({waiting}): commit deadline {when(deadline, now)}"
    if now < end:
        return f"reveal window until {when(end, now)}"
    return f"reveal window closed {when(end, now)}: `computeshare client expire JOB` settles it"
