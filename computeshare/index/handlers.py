"""Decoding the suite's logs and turning each event into rows: `Decoder` (the suite's
addresses and event ABIs only), `Page` (what one page of logs adds) and `HANDLERS`, one per
(contract, event). Everything here reads untrusted data and executes none of it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import Table

from computeshare.index.schema import (
    audits,
    device_status,
    devices,
    fees,
    income,
    job_steps,
    jobs,
    parameters,
    proposals,
    replicas,
    results,
    settled,
    settlements,
    slashes,
    stake_events,
    votes,
)


def _hex(value: Any) -> str:
    return "0x" + bytes(value).hex()


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value) if abs(value) >= 2**53 else value
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _type(item: dict) -> str:
    """The ABI type to decode with; strings as bytes (Vyper does not check that a `String`
    is UTF-8, and one bad byte must not hide an event: `_named` decodes them leniently)."""
    if item["type"].startswith("tuple"):
        inner = ",".join(_type(c) for c in item["components"])
        return f"({inner}){item['type'][5:]}"
    if item["type"].startswith("string"):
        return "bytes" + item["type"][6:]
    return item["type"]


def _named(item: dict, value: Any) -> Any:
    """A decoded tuple as a dict of its component names (recursively)."""
    if item["type"] == "tuple":
        return {c["name"]: _named(c, v) for c, v in zip(item["components"], value, strict=True)}
    if item["type"].startswith("tuple["):
        inner = {**item, "type": "tuple"}
        return [_named(inner, v) for v in value]
    if item["type"] == "address":
        return _checksum(value)
    if item["type"] == "string":
        return bytes(value).decode("utf-8", "replace")
    if item["type"] == "string[]":
        return [bytes(v).decode("utf-8", "replace") for v in value]
    return value


@lru_cache(maxsize=65_536)
def _checksum(address: str) -> str:
    """Checksummed address (cached: the same few thousand accounts recur in every page)."""
    from eth_utils import to_checksum_address  # eth_utils and eth_abi load only to decode

    return to_checksum_address(address)


@dataclass
class Decoder:
    """topic0 -> (contract name, event ABI), for the suite's addresses only."""

    by_address: dict[str, str]
    by_topic: dict[tuple[str, bytes], dict] = field(default_factory=dict)

    @classmethod
    def from_manifest(cls, manifest: dict) -> Decoder:
        from eth_utils import event_abi_to_log_topic

        by_address = {
            entry["address"].lower(): name for name, entry in manifest["contracts"].items()
        }
        decoder = cls(by_address)
        for name, abi in manifest.get("abis", {}).items():
            for item in abi:
                if item.get("type") == "event":
                    decoder.by_topic[(name, event_abi_to_log_topic(item))] = item
        return decoder

    def decode(self, log: dict) -> tuple[str, str, dict] | None:
        from eth_abi import decode as abi_decode

        contract = self.by_address.get(log["address"].lower())
        topics = [bytes.fromhex(t[2:]) for t in log["topics"]]
        if contract is None or not topics:
            return None
        item = self.by_topic.get((contract, topics[0]))
        if item is None:
            return None
        indexed = [i for i in item["inputs"] if i["indexed"]]
        plain = [i for i in item["inputs"] if not i["indexed"]]
        if len(indexed) != len(topics) - 1:
            return None
        args: dict[str, Any] = {}
        for spec, topic in zip(indexed, topics[1:], strict=True):
            (args[spec["name"]],) = abi_decode([_type(spec)], topic)
        values = abi_decode([_type(i) for i in plain], bytes.fromhex(log["data"][2:]))
        for spec, value in zip(plain, values, strict=True):
            args[spec["name"]] = value
        return (
            contract,
            item["name"],
            {i["name"]: _named(i, args[i["name"]]) for i in item["inputs"]},
        )


@dataclass
class Page:
    """What one page of logs adds: rows per table and what to snapshot at its last block."""

    rows: dict[Table, list[dict]] = field(default_factory=lambda: defaultdict(list))
    providers: set[str] = field(default_factory=set)
    devices: set[str] = field(default_factory=set)
    delegations: set[tuple[str, str]] = field(default_factory=set)
    proposals: set[int] = field(default_factory=set)
    revalue: set[str] = field(default_factory=set)  # providers whose share price moved
    hashes: dict[int, str] = field(default_factory=dict)  # block -> hash its logs carry
    skipped: int = 0
    count: int = 0


# ---------------------------------------------------------------- event handlers


def _device(page: Page, where: dict, a: dict, contract: str) -> None:
    spec = a["spec"]
    page.rows[devices].append(
        {
            **where,
            "device_id": _hex(a["device_id"]),
            "owner": a["owner"],
            "nonce": a.get("nonce"),
            "cpus": spec["cpu_cores"],
            "memory_mb": spec["memory_mb"],
            "gpus": spec["gpu_count"],
            "gpu_model": bytes(spec["gpu_model"]).rstrip(b"\0").decode("utf-8", "replace"),
            "vram_mb": spec["vram_mb"],
            "region": spec["region"],
            "price_per_second": str(spec["price_per_second"]),
            "max_jobs": spec["max_concurrent_jobs"],
            "attestation": _hex(spec["attestation"]),
            "uri": a["metadata_uri"],
        }
    )
    page.devices.add(_hex(a["device_id"]))


def _device_updated(page: Page, where: dict, a: dict, contract: str) -> None:
    with_nonce = dict(a)
    with_nonce.setdefault("nonce", None)
    _device(page, where, with_nonce, contract)


def _device_status(page: Page, where: dict, a: dict, contract: str) -> None:
    page.rows[device_status].append(
        {**where, "device_id": _hex(a["device_id"]), "status": a["new_status"]}
    )


def _audit(revoked: int):
    def handle(page: Page, where: dict, a: dict, contract: str) -> None:
        page.rows[audits].append(
            {
                **where,
                "device_id": _hex(a["device_id"]),
                "auditor": a.get("auditor") or a.get("by"),
                "hardware_hash": _hex(a["hardware_hash"]) if "hardware_hash" in a else None,
                "revoked": revoked,
            }
        )

    return handle


def _job_posted(page: Page, where: dict, a: dict, contract: str) -> None:
    t = a["terms"]
    page.rows[jobs].append(
        {
            **where,
            "job_id": _hex(a["job_id"]),
            "client": a["client"],
            "terms": _jsonable(t),
            "replicas": t["replicas"],
            "price": str(t["price_per_replica"]),
            "collateral": str(t["collateral_per_replica"]),
            "deadline": t["deadline"],
            "spec": _hex(a["spec"]),
        }
    )


def _step(step: str, actor: str | None = None, slot: bool = False):
    def handle(page: Page, where: dict, a: dict, contract: str) -> None:
        detail = {
            k: _jsonable(v)
            for k, v in a.items()
            if k not in ("job_id", "slot", actor or "", "output")
        }
        if "output" in a:
            detail["output_bytes"] = len(a["output"])
        page.rows[job_steps].append(
            {
                **where,
                "job_id": _hex(a["job_id"]),
                "step": step,
                "slot": a.get("slot") if slot else None,
                "actor": a.get(actor) if actor else None,
                "detail": detail,
            }
        )
        if "device_id" in a:
            page.devices.add(_hex(a["device_id"]))
        if "provider" in a:
            page.providers.add(a["provider"])

    return handle


def _accepted(page: Page, where: dict, a: dict, contract: str) -> None:
    _step("accepted", "provider", slot=True)(page, where, a, contract)
    page.rows[replicas].append(
        {
            **where,
            "job_id": _hex(a["job_id"]),
            "slot": a["slot"],
            "provider": a["provider"],
            "device_id": _hex(a["device_id"]),
            "device_nonce": a["device_nonce"],
            "collateral": str(a["collateral"]),
        }
    )


def _submitted(page: Page, where: dict, a: dict, contract: str) -> None:
    _step("submitted")(page, where, a, contract)
    page.rows[results].append(
        {
            **where,
            "job_id": _hex(a["job_id"]),
            "status": a["status"],
            "fuel": str(a["fuel"]),
            "output_hash": _hex(a["output_hash"]),
            "output": _hex(a["output"]),
        }
    )


def _replica_settled(page: Page, where: dict, a: dict, contract: str) -> None:
    _step("replica_settled", "provider", slot=True)(page, where, a, contract)
    page.rows[settlements].append(
        {
            **where,
            "job_id": _hex(a["job_id"]),
            "slot": a["slot"],
            "provider": a["provider"],
            "device_id": _hex(a["device_id"]),
            "outcome": a["outcome"],
            "paid": str(a["paid"]),
            "fee": str(a["fee"]),
            "slashed": str(a["slashed"]),
        }
    )


def _job_settled(page: Page, where: dict, a: dict, contract: str) -> None:
    _step("settled", "keeper")(page, where, a, contract)
    page.rows[settled].append(
        {
            **where,
            "job_id": _hex(a["job_id"]),
            "keeper": a["keeper"],
            "result_hash": _hex(a["result_hash"]),
            **{k: str(a[k]) for k in ("paid", "fees", "refunded", "compensation", "bounty")},
        }
    )


def _stake(kind: str):
    def handle(page: Page, where: dict, a: dict, contract: str) -> None:
        provider = a["provider"]
        delegator = a.get("delegator")
        page.providers.add(provider)
        if delegator:
            page.delegations.add((provider, delegator))
        page.rows[stake_events].append(
            {
                **where,
                "provider": provider,
                "delegator": delegator,
                "kind": kind,
                "amount": str(a.get("amount", a.get("cut_bps", 0))),
            }
        )

    return handle


def _income(page: Page, where: dict, a: dict, contract: str) -> None:
    page.providers.add(a["provider"])
    page.revalue.add(a["provider"])
    page.rows[income].append(
        {
            **where,
            "provider": a["provider"],
            "payer": a["payer"],
            "amount": str(a["amount"]),
            "to_delegators": str(a["to_delegators"]),
        }
    )


def _slashed(page: Page, where: dict, a: dict, contract: str) -> None:
    page.providers.add(a["provider"])
    page.revalue.add(a["provider"])
    own = a["from_own_stake"] + a["from_own_thawing"]
    delegated = a["from_delegated"] + a["from_delegated_thawing"] + a["from_warming"]
    page.rows[slashes].append(
        {
            **where,
            "provider": a["provider"],
            "beneficiary": a["beneficiary"],
            "own": str(own),
            "delegated": str(delegated),
            "reward": str(a["reward"]),
            "total": str(own + delegated),
        }
    )


def _fees(page: Page, where: dict, a: dict, contract: str) -> None:
    page.rows[fees].append(
        {**where, "devices": a["devices"], "amount": str(a["amount"]), "treasury": a["treasury"]}
    )


def _proposal(page: Page, where: dict, a: dict, contract: str) -> None:
    actions = [
        {"target": t, "value": str(v), "signature": s, "calldata": _hex(c)}
        for t, v, s, c in zip(
            a["targets"], a["values"], a["signatures"], a["calldatas"], strict=False
        )
    ]
    page.rows[proposals].append(
        {
            **where,
            "proposal_id": str(a["proposalId"]),
            "proposer": a["proposer"],
            "actions": actions,
            "vote_start": a["voteStart"],
            "vote_end": a["voteEnd"],
            "description": a["description"],
        }
    )
    page.proposals.add(a["proposalId"])


def _vote(page: Page, where: dict, a: dict, contract: str) -> None:
    page.rows[votes].append(
        {
            **where,
            "proposal_id": str(a["proposalId"]),
            "voter": a["voter"],
            "support": a["support"],
            "weight": str(a["weight"]),
            "reason": a["reason"],
        }
    )
    page.proposals.add(a["proposalId"])


def _proposal_step(page: Page, where: dict, a: dict, contract: str) -> None:
    page.proposals.add(a["proposalId"])


def _parameter(page: Page, where: dict, a: dict, contract: str) -> None:
    page.rows[parameters].append(
        {
            **where,
            "contract": contract,
            "key": str(a["key"]),
            "old": str(a["old_value"]),
            "new": str(a["new_value"]),
        }
    )


HANDLERS: dict[tuple[str, str], Callable[[Page, dict, dict, str], None]] = {
    ("DeviceRegistry", "DeviceRegistered"): _device,
    ("DeviceRegistry", "DeviceUpdated"): _device_updated,
    ("DeviceRegistry", "DeviceStatusChanged"): _device_status,
    ("DeviceRegistry", "DeviceAudited"): _audit(0),
    ("DeviceRegistry", "AuditRevoked"): _audit(1),
    ("JobEscrow", "JobPosted"): _job_posted,
    ("JobEscrow", "JobCancelled"): _step("cancelled", "client"),
    ("JobEscrow", "ReplicaAccepted"): _accepted,
    ("JobEscrow", "ResultCommitted"): _step("committed", "provider", slot=True),
    ("JobEscrow", "ResultRevealed"): _step("revealed", "provider", slot=True),
    ("JobEscrow", "ResultSubmitted"): _submitted,
    ("JobEscrow", "Disputed"): _step("disputed", "client"),
    ("JobEscrow", "Ruled"): _step("ruled", "arbiter"),
    ("JobEscrow", "ReplicaSettled"): _replica_settled,
    ("JobEscrow", "JobSettled"): _job_settled,
    ("JobEscrow", "FeesSwept"): _fees,
    ("Staking", "Staked"): _stake("staked"),
    ("Staking", "ThawRequested"): _stake("thaw"),
    ("Staking", "ThawCancelled"): _stake("thaw_cancelled"),
    ("Staking", "Withdrawn"): _stake("withdrawn"),
    ("Staking", "Delegated"): _stake("delegated"),
    ("Staking", "DelegationActivated"): _stake("activated"),
    ("Staking", "WarmupCancelled"): _stake("warmup_cancelled"),
    ("Staking", "Undelegated"): _stake("undelegated"),
    ("Staking", "UndelegationCancelled"): _stake("undelegation_cancelled"),
    ("Staking", "DelegationWithdrawn"): _stake("delegation_withdrawn"),
    ("Staking", "DelegatorCutScheduled"): _stake("cut_scheduled"),
    ("Staking", "CollateralLocked"): _stake("locked"),
    ("Staking", "CollateralUnlocked"): _stake("unlocked"),
    ("Staking", "IncomeAdded"): _income,
    ("Staking", "Slashed"): _slashed,
    ("Governor", "ProposalCreated"): _proposal,
    ("Governor", "VoteCast"): _vote,
    ("Governor", "VoteCastWithParams"): _vote,
    ("Governor", "ProposalQueued"): _proposal_step,
    ("Governor", "ProposalExecuted"): _proposal_step,
    ("Governor", "ProposalCanceled"): _proposal_step,
    ("Governor", "ProposalExtended"): _proposal_step,
    ("*", "ParameterChanged"): _parameter,
}
