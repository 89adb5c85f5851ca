"""Governance helpers shared by tests, benchmarks, scripts and the demo: build actions,
propose, and walk a proposal through the timelock (ballot signing is in `signing`).

Proposals follow OpenZeppelin's model: the id is `hashProposal(targets, values, calldatas,
keccak256(description))`, the Governor stores no actions, and `queue`, `execute` and
`cancel` take them again. A `Proposal` is that id as an int that also carries what it was
hashed from, so it passes as the id to every view and gives the arrays to those three.

`propose` reserves each proposal to its proposer by default: the description it sends ends
in `#proposer=<address>` (OpenZeppelin's answer to CVE-2023-34234, which the Governor
enforces), so nobody else can send the same proposal first, take its id and cancel it. The
suffix is part of the description, so of the id and of what `queue` and `execute` hash."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from computeshare.constants import ProposalState, Support

# Short names of the enum members (the same objects).
PENDING, ACTIVE, CANCELED, DEFEATED, SUCCEEDED, QUEUED, EXPIRED, EXECUTED = ProposalState
STATE_NAMES = tuple(state.label for state in ProposalState)  # "Pending", ..., by number
AGAINST, FOR, ABSTAIN = Support


@dataclass(frozen=True)
class Action:
    """One call the timelock makes."""

    target: str
    value: int
    calldata: bytes


# The Governor's longest description (its `MAX_DESCRIPTION`), in UTF-8 bytes.
MAX_DESCRIPTION = 2048
# OpenZeppelin's suffix: `#proposer=0x` and 40 hex digits (either case) end the description.
_RESERVATION = re.compile(r"#proposer=0x([0-9a-fA-F]{40})\Z")


def reserved(description: str, proposer, *, reserve: bool = True) -> str:
    """`description` as `propose` sends it for `proposer` (an account or an address): with
    `#proposer=<checksummed address>` appended, so only `proposer` may propose it. A
    description that already ends in a reservation for `proposer` (in either case) is
    kept as typed; one reserved to another address, which the Governor would refuse, or
    one longer than `MAX_DESCRIPTION` bytes once reserved raises ValueError.
    `reserve=False` returns `description` unchanged."""
    if not reserve:
        return description
    from eth_utils import to_checksum_address

    address = to_checksum_address(str(getattr(proposer, "address", proposer)))
    found = _RESERVATION.search(description)
    if found:
        if int(found.group(1), 16) != int(address, 16):
            raise ValueError(
                f"the description is reserved to another proposer (0x{found.group(1)}), "
                f"not {address}"
            )
    else:
        description = f"{description}#proposer={address}"
    size = len(description.encode())
    if size > MAX_DESCRIPTION:
        raise ValueError(
            f"the description is too long: {size} bytes with its #proposer= suffix, "
            f"at most {MAX_DESCRIPTION}"
        )
    return description


def method(contract, name: str):
    """`contract`'s ABI method `name`, even where ape's address API shadows it (e.g. ERC-5805
    `delegate` against EIP-7702 `BaseAddress.delegate`); a contract over plain JSON-RPC
    (`computeshare.sender.Contract`) names its own."""
    from computeshare.sender import Contract

    if isinstance(contract, Contract):
        return contract.method(name)
    handlers = {**contract._view_methods_, **contract._mutable_methods_}
    return handlers[name]


def encode(contract, name: str, *args) -> bytes:
    """Calldata of `contract.name(*args)`."""
    return bytes(method(contract, name).encode_input(*args))


def call(contract, name: str, *args, value: int = 0) -> Action:
    """The action calling `contract.name(*args)`."""
    return Action(str(contract.address), value, encode(contract, name, *args))


def proposal_args(actions: list[Action], description: str) -> tuple:
    """`Governor.propose`'s arguments: targets, values, calldatas and the description."""
    return (
        [a.target for a in actions],
        [a.value for a in actions],
        [a.calldata for a in actions],
        description,
    )


def description_hash(description: str) -> bytes:
    """keccak256 of the description's UTF-8 bytes, as `queue`, `execute` and `cancel` take it."""
    from eth_utils import keccak

    return keccak(description.encode())


def hash_proposal(actions, description: str) -> int:
    """The proposal id, computed as OpenZeppelin's `hashProposal`."""
    from eth_abi import encode as abi_encode
    from eth_utils import keccak

    targets, values, calldatas, _ = proposal_args(list(actions), description)
    encoded = abi_encode(
        ["address[]", "uint256[]", "bytes[]", "bytes32"],
        [targets, values, calldatas, description_hash(description)],
    )
    return int.from_bytes(keccak(encoded), "big")


class Proposal(int):
    """A proposal id that also carries the actions and description it is hashed from."""

    actions: tuple[Action, ...]
    description: str

    def __new__(cls, actions, description: str) -> Proposal:
        actions = tuple(actions)
        proposal = super().__new__(cls, hash_proposal(actions, description))
        proposal.actions = actions
        proposal.description = description
        return proposal

    @property
    def id(self) -> int:
        return int(self)

    def propose_args(self) -> tuple:
        """`propose`'s arguments."""
        return proposal_args(list(self.actions), self.description)

    def args(self) -> tuple:
        """`queue`'s, `execute`'s and `cancel`'s arguments: the arrays and the description hash."""
        return (*self.propose_args()[:3], description_hash(self.description))

    @classmethod
    def from_event(cls, event) -> Proposal:
        """The proposal a `ProposalCreated` event (decoded: a mapping or attributes) made."""

        def get(name):
            return event[name] if isinstance(event, dict) else getattr(event, name)

        actions = [
            Action(str(t), int(v), bytes(c))
            for t, v, c in zip(get("targets"), get("values"), get("calldatas"), strict=True)
        ]
        proposal = cls(actions, get("description"))
        if proposal != int(get("proposalId")):
            raise ValueError("the event's actions and description do not hash to its id")
        return proposal


def propose(
    governor, proposer, actions: list[Action], description: str, *, reserve: bool = True
) -> Proposal:
    """Proposes `actions`, reserved to `proposer` unless `reserve=False` (see `reserved`);
    returns the proposal (its id, with its actions and the description sent)."""
    proposal = Proposal(actions, reserved(description, proposer, reserve=reserve))
    receipt = governor.propose(*proposal.propose_args(), sender=proposer)
    if receipt.return_value != proposal:
        raise ValueError(f"the governor returned id {receipt.return_value}, not {int(proposal)}")
    return proposal


def created_proposals(governor, start_block: int = 0) -> list[Proposal]:
    """Every proposal `governor` made since `start_block`, in chain order, rebuilt from its
    `ProposalCreated` events (the Governor stores no actions): one `eth_getLogs` request.
    An event whose actions and description do not hash to its id is left out: a node's
    answer is not trusted."""
    from computeshare.onchain import logs

    events = logs(governor, ["ProposalCreated"], start_block)
    return [p for p in (_from_event(log.event_arguments) for log in events) if p is not None]


def _from_event(event) -> Proposal | None:
    try:
        return Proposal.from_event(event)
    except ValueError:
        return None


def advance(chain, seconds: int) -> None:
    """Moves the node's clock `seconds` ahead and mines, so views see the new time."""
    chain.pending_timestamp += seconds
    chain.mine()


def open_voting(governor, chain, proposal_id: int) -> None:
    """Waits out the voting delay: the proposal is Active from the next block."""
    advance(chain, governor.votingDelay() + 1)


def queue(governor, chain, proposal: Proposal, sender) -> Any:
    """Closes the vote (the clock moves past its deadline) and queues the proposal in the
    timelock. Returns the queue receipt."""
    chain.pending_timestamp = governor.proposalDeadline(proposal) + 1
    return governor.queue(*proposal.args(), sender=sender)


def execute(governor, chain, proposal: Proposal, sender) -> Any:
    """Waits out the timelock delay and executes a queued proposal; returns the receipt."""
    chain.pending_timestamp = governor.proposalEta(proposal)
    return governor.execute(*proposal.args(), sender=sender)


def vote_by_signature(governor, chain, voter, proposal_id: int, support: int, relayer) -> Any:
    """`voter` signs an EIP-712 ballot (no gas of its own); `relayer` sends it."""
    from computeshare.signing import sign_ballot  # eth-account only when a ballot is signed

    signature = sign_ballot(
        voter.private_key,
        chain_id=chain.chain_id,
        governor=governor.address,
        proposal_id=proposal_id,
        support=support,
        voter=voter.address,
        nonce=governor.nonces(voter),
    )
    return governor.castVoteBySig(proposal_id, support, voter, signature, sender=relayer)


def pass_proposal(
    governor,
    chain,
    proposer,
    voters,
    actions: list[Action],
    description: str,
    *,
    reserve: bool = True,
) -> Any:
    """Proposes (reserved to `proposer` unless `reserve=False`), lets `voters` vote for,
    queues, waits out the delay and executes. Returns the execute receipt; the proposal is
    `Proposal(actions, reserved(description, proposer))`."""
    proposal = propose(governor, proposer, actions, description, reserve=reserve)
    open_voting(governor, chain, proposal)
    for voter in voters:
        governor.castVote(proposal, FOR, sender=voter)
    queue(governor, chain, proposal, proposer)
    return execute(governor, chain, proposal, proposer)


GAS_MONEY = 10**18  # ether an impersonated voter is given on a fork to pay for its votes


def rehearse(governor, token, chain, accounts, voters: list[str], actions, description: str):
    """Walks `actions` through the whole governance path on a fork of a live network: the
    `voters` are impersonated (given gas money, and self-delegated if their tokens carry no
    votes yet), the first proposes, all vote for, then the proposal is queued, the timelock
    delay waited out and executed. Returns the execute receipt; a proposal that would fail
    raises with the reason it would fail with. The proposal is reserved to the first voter.
    Only the fork changes."""
    signers = []
    for voter in voters:
        if chain.provider.get_balance(voter) < GAS_MONEY:
            chain.provider.set_balance(voter, GAS_MONEY)
        signer = accounts[voter]  # an impersonated account on a fork
        if token.getVotes(voter) == 0 and token.balanceOf(voter) > 0:
            method(token, "delegate")(voter, sender=signer)
        signers.append(signer)
    advance(chain, 1)  # delegations count from the next second
    return pass_proposal(governor, chain, signers[0], signers, actions, description)
