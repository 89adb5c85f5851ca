"""The Governor and the Timelock speak OpenZeppelin 5.x: IGovernor and TimelockController,
written out here signature by signature (OpenZeppelin Contracts 5.7.0,
`governance/IGovernor.sol`, `governance/TimelockController.sol`), so a front-end or script
built for them (Tally, Hardhat or Foundry governance scripts) drives ours unchanged.

The lifecycle test below uses nothing but this written-out ABI, through web3, as such a
tool would: no ape contract type, no project helper."""

from __future__ import annotations

import json

import ape
import pytest
from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address

from computeshare.governance import Proposal, advance, description_hash
from computeshare.signing import sign_extended_ballot
from devtools import PROJECT_ROOT
from tests.helpers import ESCROW_FEE, delegate, fee_action, queued

# IGovernor (OpenZeppelin 5.7.0): every function, with its outputs and mutability.
IGOVERNOR_FUNCTIONS = [
    ("name()", ["string"], "view"),
    ("version()", ["string"], "view"),
    ("COUNTING_MODE()", ["string"], "view"),
    ("hashProposal(address[],uint256[],bytes[],bytes32)", ["uint256"], "pure"),
    ("getProposalId(address[],uint256[],bytes[],bytes32)", ["uint256"], "view"),
    ("state(uint256)", ["uint8"], "view"),
    ("proposalThreshold()", ["uint256"], "view"),
    ("proposalSnapshot(uint256)", ["uint256"], "view"),
    ("proposalDeadline(uint256)", ["uint256"], "view"),
    ("proposalProposer(uint256)", ["address"], "view"),
    ("proposalEta(uint256)", ["uint256"], "view"),
    ("proposalNeedsQueuing(uint256)", ["bool"], "view"),
    ("votingDelay()", ["uint256"], "view"),
    ("votingPeriod()", ["uint256"], "view"),
    ("quorum(uint256)", ["uint256"], "view"),
    ("getVotes(address,uint256)", ["uint256"], "view"),
    ("getVotesWithParams(address,uint256,bytes)", ["uint256"], "view"),
    ("hasVoted(uint256,address)", ["bool"], "view"),
    ("propose(address[],uint256[],bytes[],string)", ["uint256"], "nonpayable"),
    ("queue(address[],uint256[],bytes[],bytes32)", ["uint256"], "nonpayable"),
    ("execute(address[],uint256[],bytes[],bytes32)", ["uint256"], "payable"),
    ("cancel(address[],uint256[],bytes[],bytes32)", ["uint256"], "nonpayable"),
    ("castVote(uint256,uint8)", ["uint256"], "nonpayable"),
    ("castVoteWithReason(uint256,uint8,string)", ["uint256"], "nonpayable"),
    ("castVoteWithReasonAndParams(uint256,uint8,string,bytes)", ["uint256"], "nonpayable"),
    ("castVoteBySig(uint256,uint8,address,bytes)", ["uint256"], "nonpayable"),
    (
        "castVoteWithReasonAndParamsBySig(uint256,uint8,address,string,bytes,bytes)",
        ["uint256"],
        "nonpayable",
    ),
]
# What IGovernor inherits: IERC165 and IERC6372; and the extensions' views Tally reads.
INHERITED_FUNCTIONS = [
    ("supportsInterface(bytes4)", ["bool"], "view"),
    ("clock()", ["uint48"], "view"),
    ("CLOCK_MODE()", ["string"], "view"),
    ("quorumNumerator()", ["uint256"], "view"),
    ("quorumNumerator(uint256)", ["uint256"], "view"),
    ("quorumDenominator()", ["uint256"], "view"),
    ("timelock()", ["address"], "view"),
    ("token()", ["address"], "view"),
    ("proposalVotes(uint256)", ["uint256", "uint256", "uint256"], "view"),
    ("nonces(address)", ["uint256"], "view"),
    ("lateQuorumVoteExtension()", ["uint48"], "view"),
    ("proposalCount()", ["uint256"], "view"),
]
# IGovernor's events: (type, name, indexed).
IGOVERNOR_EVENTS = {
    "ProposalCreated": [
        ("uint256", "proposalId", False),
        ("address", "proposer", False),
        ("address[]", "targets", False),
        ("uint256[]", "values", False),
        ("string[]", "signatures", False),
        ("bytes[]", "calldatas", False),
        ("uint256", "voteStart", False),
        ("uint256", "voteEnd", False),
        ("string", "description", False),
    ],
    "ProposalQueued": [("uint256", "proposalId", False), ("uint256", "etaSeconds", False)],
    "ProposalExecuted": [("uint256", "proposalId", False)],
    "ProposalCanceled": [("uint256", "proposalId", False)],
    "VoteCast": [
        ("address", "voter", True),
        ("uint256", "proposalId", False),
        ("uint8", "support", False),
        ("uint256", "weight", False),
        ("string", "reason", False),
    ],
    "VoteCastWithParams": [
        ("address", "voter", True),
        ("uint256", "proposalId", False),
        ("uint8", "support", False),
        ("uint256", "weight", False),
        ("string", "reason", False),
        ("bytes", "params", False),
    ],
}
# TimelockController (OpenZeppelin 5.7.0), as GovernorTimelockControl and tools use it.
TIMELOCK_FUNCTIONS = [
    ("getMinDelay()", ["uint256"], "view"),
    ("getTimestamp(bytes32)", ["uint256"], "view"),
    ("getOperationState(bytes32)", ["uint8"], "view"),
    ("isOperation(bytes32)", ["bool"], "view"),
    ("isOperationPending(bytes32)", ["bool"], "view"),
    ("isOperationReady(bytes32)", ["bool"], "view"),
    ("isOperationDone(bytes32)", ["bool"], "view"),
    ("hashOperationBatch(address[],uint256[],bytes[],bytes32,bytes32)", ["bytes32"], "pure"),
    # Ours also returns the operation's window; a caller that expects nothing ignores it.
    ("scheduleBatch(address[],uint256[],bytes[],bytes32,bytes32,uint256)", None, "nonpayable"),
    ("executeBatch(address[],uint256[],bytes[],bytes32,bytes32)", [], "payable"),
    ("cancel(bytes32)", [], "nonpayable"),
]
TIMELOCK_EVENTS = {
    "CallScheduled": [
        ("bytes32", "id", True),
        ("uint256", "index", True),
        ("address", "target", False),
        ("uint256", "value", False),
        ("bytes", "data", False),
        ("bytes32", "predecessor", False),
        ("uint256", "delay", False),
    ],
    "CallExecuted": [
        ("bytes32", "id", True),
        ("uint256", "index", True),
        ("address", "target", False),
        ("uint256", "value", False),
        ("bytes", "data", False),
    ],
    "CallSalt": [("bytes32", "id", True), ("bytes32", "salt", False)],
    "Cancelled": [("bytes32", "id", True)],
    "MinDelayChange": [("uint256", "oldDuration", False), ("uint256", "newDuration", False)],
}
# OpenZeppelin's `SupportsInterface.behavior.js` lists: IGovernor before 5.3 had no
# `getProposalId`; OpenZeppelin's Governor answers for both.
IGOVERNOR_V50 = [sig for sig, _, _ in IGOVERNOR_FUNCTIONS if not sig.startswith("getProposalId")]
FOR, AGAINST, ABSTAIN = 1, 0, 2


def selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


def interface_id(signatures) -> bytes:
    value = 0
    for signature in signatures:
        value ^= int.from_bytes(selector(signature), "big")
    return value.to_bytes(4, "big")


def abi_of(functions, events) -> list[dict]:
    """A JSON ABI built from the written-out signatures above."""
    abi = []
    for signature, outputs, mutability in functions:
        name, _, args = signature.partition("(")
        types = [t for t in args[:-1].split(",") if t]
        abi.append(
            {
                "type": "function",
                "name": name,
                "inputs": [{"name": f"arg{i}", "type": t} for i, t in enumerate(types)],
                "outputs": [{"name": "", "type": t} for t in outputs or []],
                "stateMutability": mutability,
            }
        )
    for name, fields in events.items():
        abi.append(
            {
                "type": "event",
                "name": name,
                "anonymous": False,
                "inputs": [{"name": n, "type": t, "indexed": i} for t, n, i in fields],
            }
        )
    return abi


def ours(name: str) -> list[dict]:
    return json.loads((PROJECT_ROOT / "interfaces" / "abi" / f"{name}.json").read_text())


def functions_by_signature(abi: list[dict]) -> dict[str, dict]:
    return {
        f"{e['name']}({','.join(i['type'] for i in e['inputs'])})": e
        for e in abi
        if e["type"] == "function"
    }


def events_by_name(abi: list[dict]) -> dict[str, dict]:
    return {e["name"]: e for e in abi if e["type"] == "event"}


@pytest.mark.parametrize(
    "contract, functions, events",
    [
        ("Governor", IGOVERNOR_FUNCTIONS + INHERITED_FUNCTIONS, IGOVERNOR_EVENTS),
        ("Timelock", TIMELOCK_FUNCTIONS, TIMELOCK_EVENTS),
    ],
)
def test_every_openzeppelin_selector_and_topic_is_in_our_abi(contract, functions, events):
    abi = ours(contract)
    have = functions_by_signature(abi)
    for signature, outputs, mutability in functions:
        assert signature in have, f"{contract} lacks {signature}"
        entry = have[signature]
        if outputs is not None:
            assert [o["type"] for o in entry["outputs"]] == outputs, signature
        # A payable OpenZeppelin function must be payable here; a view must not write.
        if mutability == "payable":
            assert entry["stateMutability"] == "payable", signature
        if mutability in ("view", "pure"):
            assert entry["stateMutability"] in ("view", "pure"), signature
    have_events = events_by_name(abi)
    for name, fields in events.items():
        assert name in have_events, f"{contract} lacks event {name}"
        got = [(i["type"], i["indexed"]) for i in have_events[name]["inputs"]]
        assert got == [(t, i) for t, _, i in fields], name
        topic = keccak(text=f"{name}({','.join(t for t, _, _ in fields)})")
        ours_topic = keccak(
            text=f"{name}({','.join(i['type'] for i in have_events[name]['inputs'])})"
        )
        assert topic == ours_topic


def test_the_id_forms_of_queue_execute_and_cancel_are_gone():
    """Only OpenZeppelin's array forms exist; nothing answers the old id-only selectors."""
    have = functions_by_signature(ours("Governor"))
    for gone in (
        "queue(uint256)",
        "execute(uint256)",
        "cancel(uint256)",
        "proposalDetails(uint256)",
    ):
        assert gone not in have


def test_erc165_answers_for_igovernor(dao):
    g = dao.governor
    assert interface_id(sig for sig, _, _ in IGOVERNOR_FUNCTIONS).hex() == "cdbdfcee"
    assert interface_id(IGOVERNOR_V50).hex() == "65455a86"
    assert g.supportsInterface(interface_id(sig for sig, _, _ in IGOVERNOR_FUNCTIONS))
    assert g.supportsInterface(interface_id(IGOVERNOR_V50))
    assert g.supportsInterface(selector("supportsInterface(bytes4)"))
    assert not g.supportsInterface(bytes.fromhex("ffffffff"))
    # IERC1155Receiver: the Governor holds no tokens (the timelock is the treasury).
    assert not g.supportsInterface(bytes.fromhex("4e2312e0"))


@pytest.fixture
def web3(chain):
    return chain.provider.web3


def send(web3, call, sender, value: int = 0):
    """Sends `call` from an unlocked node account, as a wallet would; returns the receipt."""
    tx_hash = call.transact({"from": sender.address, "value": value})
    receipt = web3.eth.wait_for_transaction_receipt(tx_hash)
    assert receipt.status == 1
    return receipt


def test_a_whole_proposal_runs_through_openzeppelin_calls_alone(
    dao, web3, chain, chain_id, alice, bob, carol, outsider
):
    g = web3.eth.contract(
        address=to_checksum_address(dao.governor.address),
        abi=abi_of(IGOVERNOR_FUNCTIONS + INHERITED_FUNCTIONS, IGOVERNOR_EVENTS),
    )
    timelock = web3.eth.contract(
        address=to_checksum_address(g.functions.timelock().call()),
        abi=abi_of(TIMELOCK_FUNCTIONS, TIMELOCK_EVENTS),
    )
    action = fee_action(dao, 150)
    targets, values, calldatas = [action.target], [0], [action.calldata]
    description = "Protocol fee to 1.5%"
    dh = keccak(description.encode())

    # The id, as a tool computes it, the contract computes it and our helper computes it.
    encoded = abi_encode(
        ["address[]", "uint256[]", "bytes[]", "bytes32"], [targets, values, calldatas, dh]
    )
    expected = int.from_bytes(keccak(encoded), "big")
    assert g.functions.hashProposal(targets, values, calldatas, dh).call() == expected
    assert g.functions.getProposalId(targets, values, calldatas, dh).call() == expected
    assert Proposal([action], description) == expected

    receipt = send(web3, g.functions.propose(targets, values, calldatas, description), alice)
    (created,) = g.events.ProposalCreated().process_receipt(receipt)
    assert created.args.proposalId == expected and created.args.proposer == alice.address
    assert list(created.args.calldatas) == calldatas and created.args.description == description
    assert g.functions.proposalProposer(expected).call() == alice.address
    assert g.functions.state(expected).call() == 0  # Pending

    advance(chain, g.functions.votingDelay().call() + 1)
    assert g.functions.state(expected).call() == 1  # Active
    send(web3, g.functions.castVote(expected, FOR), alice)
    receipt = send(
        web3, g.functions.castVoteWithReasonAndParams(expected, FOR, "yes", b"\x01\x02"), bob
    )
    (with_params,) = g.events.VoteCastWithParams().process_receipt(receipt)
    assert with_params.args.params == b"\x01\x02" and with_params.args.weight == 20_000_000 * 10**18
    assert g.events.VoteCast().process_receipt(receipt) == ()
    # A relayer sends carol's signed ExtendedBallot.
    signature = sign_extended_ballot(
        carol.private_key,
        chain_id=chain_id,
        governor=g.address,
        proposal_id=expected,
        support=ABSTAIN,
        voter=carol.address,
        nonce=g.functions.nonces(carol.address).call(),
        reason="fine",
        params=b"",
    )
    relay = g.functions.castVoteWithReasonAndParamsBySig(
        expected, ABSTAIN, carol.address, "fine", b"", signature
    )
    receipt = send(web3, relay, outsider)
    (vote,) = g.events.VoteCast().process_receipt(receipt)
    assert vote.args.voter == carol.address and vote.args.reason == "fine"
    assert g.functions.hasVoted(expected, carol.address).call()
    assert g.functions.nonces(carol.address).call() == 1
    assert g.functions.proposalVotes(expected).call() == [
        0,
        50_000_000 * 10**18,
        10_000_000 * 10**18,
    ]

    advance(chain, g.functions.proposalDeadline(expected).call() - chain.blocks.head.timestamp + 1)
    assert g.functions.state(expected).call() == 4  # Succeeded
    receipt = send(web3, g.functions.queue(targets, values, calldatas, dh), outsider)
    (queued,) = g.events.ProposalQueued().process_receipt(receipt)
    eta = g.functions.proposalEta(expected).call()
    assert queued.args.etaSeconds == eta and g.functions.state(expected).call() == 5  # Queued
    # The timelock's operation, as GovernorTimelockControl names it.
    salt = (
        int.from_bytes(bytes.fromhex(g.address[2:]) + bytes(12), "big") ^ int.from_bytes(dh, "big")
    ).to_bytes(32, "big")
    operation = timelock.functions.hashOperationBatch(
        targets, values, calldatas, bytes(32), salt
    ).call()
    (scheduled,) = timelock.events.CallScheduled().process_receipt(receipt)
    assert scheduled.args.id == operation and scheduled.args.data == action.calldata
    assert scheduled.args.delay == timelock.functions.getMinDelay().call()
    (salted,) = timelock.events.CallSalt().process_receipt(receipt)
    assert salted.args.salt == salt
    assert timelock.functions.getTimestamp(operation).call() == eta
    assert timelock.functions.isOperationPending(operation).call()
    assert not timelock.functions.isOperationReady(operation).call()
    assert timelock.functions.getOperationState(operation).call() == 1  # Waiting

    advance(chain, eta - chain.blocks.head.timestamp)
    assert timelock.functions.isOperationReady(operation).call()
    receipt = send(web3, g.functions.execute(targets, values, calldatas, dh), outsider)
    assert g.events.ProposalExecuted().process_receipt(receipt)[0].args.proposalId == expected
    (called,) = timelock.events.CallExecuted().process_receipt(receipt)
    assert called.args.id == operation and called.args.target == action.target
    assert timelock.functions.isOperationDone(operation).call()
    assert timelock.functions.getTimestamp(operation).call() == 1
    assert g.functions.state(expected).call() == 7  # Executed
    assert dao.escrow.parameter(ESCROW_FEE) == 150


def test_a_proposer_cancels_its_pending_proposal_with_the_arrays(dao, web3, alice, bob):
    g = web3.eth.contract(
        address=to_checksum_address(dao.governor.address),
        abi=abi_of(IGOVERNOR_FUNCTIONS, IGOVERNOR_EVENTS),
    )
    action = fee_action(dao, 300)
    args = ([action.target], [0], [action.calldata], description_hash("fee"))
    send(web3, g.functions.propose(*args[:3], "fee"), alice)
    with ape.reverts("governor: caller cannot cancel"):
        dao.governor.cancel(*args, sender=bob)
    receipt = send(web3, g.functions.cancel(*args), alice)
    (cancelled,) = g.events.ProposalCanceled().process_receipt(receipt)
    assert cancelled.args.proposalId == Proposal([action], "fee")
    assert g.functions.state(cancelled.args.proposalId).call() == 2  # Canceled


# ------------------------------------------------------------------ attacks on the model


def test_nobody_can_front_run_a_proposal_that_names_its_proposer(
    dao, chain, alice, outsider, deployer
):
    """OpenZeppelin's answer to CVE-2023-34234: a description ending in
    `#proposer=<address>` can only be proposed by that address, so an attacker cannot
    take its id first (and then cancel it as its proposer)."""
    g, token = dao.governor, dao.token
    token.transfer(outsider, 200_000 * 10**18, sender=deployer)
    delegate(token, outsider, outsider)
    advance(chain, 1)
    action = fee_action(dao, 300)
    for suffix in (alice.address.lower(), alice.address, "0x" + alice.address[2:].upper()):
        description = f"Fee to 3%#proposer={suffix}"
        with ape.reverts("governor: restricted proposer"):
            g.propose([action.target], [0], [action.calldata], description, sender=outsider)
    description = f"Fee to 3%#proposer={alice.address}"
    proposal = Proposal([action], description)
    g.propose(*proposal.propose_args(), sender=alice)
    assert g.proposalProposer(proposal) == alice.address
    # Anything that is not exactly `#proposer=0x` and 40 hex digits restricts nobody.
    for loose in (
        f"x#proposer={alice.address[2:]}xx",  # no 0x
        f"#proposer=0x{'g' * 40}",  # not hex
        f"#proposer:{alice.address}",  # another marker
    ):
        g.propose([action.target], [0], [action.calldata], loose, sender=outsider)
        g.cancel(*Proposal([action], loose).args(), sender=outsider)


def test_the_same_proposal_cannot_be_made_twice(dao, alice, bob):
    g = dao.governor
    action = fee_action(dao, 300)
    g.propose([action.target], [0], [action.calldata], "fee", sender=alice)
    with ape.reverts("governor: proposal already exists"):
        g.propose([action.target], [0], [action.calldata], "fee", sender=bob)


def test_queue_and_execute_need_the_very_actions_proposed(dao, chain, alice, bob):
    """The id hashes the actions: other actions under the same description are another
    (unknown) proposal, so nobody can run calls that were not voted."""
    proposal = queued(dao, chain, alice, [fee_action(dao, 300)], [alice, bob])
    other = fee_action(dao, 5_000)
    forged = ([other.target], [0], [other.calldata], description_hash(proposal.description))
    with ape.reverts("governor: proposal not queued"):
        dao.governor.execute(*forged, sender=bob)
    with ape.reverts("governor: unknown proposal"):
        dao.governor.queue(*forged, sender=bob)


def test_receipts_hold_across_runs_of_proposal_numbers(dao, chain, deployer, alice, bob, carol):
    """A voter's account word keeps the receipts of one run of 128 proposal numbers; a
    vote in a later run moves the earlier run's receipts to a word of their own. Neither
    move lets anyone vote twice."""
    g = dao.governor
    early = Proposal([fee_action(dao, 300)], "early")
    g.propose(*early.propose_args(), sender=alice)
    # Carol proposes and cancels until the next proposal number is in the next run.
    n = 0
    while g.proposalCount() < 128:
        spent = Proposal([fee_action(dao, 301)], f"spent {n}")
        g.propose(*spent.propose_args(), sender=carol)
        g.cancel(*spent.args(), sender=carol)
        n += 1
    late = Proposal([fee_action(dao, 302)], "late")
    g.propose(*late.propose_args(), sender=carol)
    assert (g.proposalNumber(early), g.proposalNumber(late)) == (1, 129)
    advance(chain, g.votingDelay() + 1)
    # bob: the later run first, then back to the earlier one.
    g.castVote(late, FOR, sender=bob)
    g.castVote(early, FOR, sender=bob)
    # alice: the earlier run first (its receipts move when she votes in the later run).
    g.castVote(early, AGAINST, sender=alice)
    g.castVote(late, AGAINST, sender=alice)
    for voter in (alice, bob):
        for proposal in (early, late):
            assert g.hasVoted(proposal, voter)
            with ape.reverts("governor: vote already cast"):
                g.castVote(proposal, FOR, sender=voter)
    assert not g.hasVoted(early, carol) and not g.hasVoted(late, carol)
    assert g.proposalVotes(early) == (30_000_000 * 10**18, 20_000_000 * 10**18, 0)


def test_a_signed_ballot_cannot_be_replayed_as_another_ballot_type(
    dao, chain, chain_id, alice, bob, outsider
):
    """`Ballot` and `ExtendedBallot` share the voter's nonce but not their type hash: a
    signature of one is refused by the other function, and a used nonce is spent for both."""
    from computeshare.signing import sign_ballot

    g = dao.governor
    proposal = Proposal([fee_action(dao, 300)], "fee")
    g.propose(*proposal.propose_args(), sender=alice)
    advance(chain, g.votingDelay() + 1)
    plain = sign_ballot(
        bob.private_key, chain_id=chain_id, governor=g.address, proposal_id=proposal,
        support=FOR, voter=bob.address, nonce=0,
    )  # fmt: skip
    with ape.reverts("governor: invalid signature"):
        g.castVoteWithReasonAndParamsBySig(proposal, FOR, bob, "", b"", plain, sender=outsider)
    extended = sign_extended_ballot(
        bob.private_key, chain_id=chain_id, governor=g.address, proposal_id=proposal,
        support=FOR, voter=bob.address, nonce=0, reason="why", params=b"",
    )  # fmt: skip
    with ape.reverts("governor: invalid signature"):
        g.castVoteBySig(proposal, FOR, bob, extended, sender=outsider)
    # The reason is signed: another reason with the same signature is refused.
    with ape.reverts("governor: invalid signature"):
        g.castVoteWithReasonAndParamsBySig(
            proposal, FOR, bob, "other", b"", extended, sender=outsider
        )
    g.castVoteWithReasonAndParamsBySig(proposal, FOR, bob, "why", b"", extended, sender=outsider)
    assert g.nonces(bob) == 1 and g.hasVoted(proposal, bob)
    with ape.reverts("governor: invalid signature"):
        g.castVoteBySig(proposal, FOR, bob, plain, sender=outsider)  # nonce 0 is spent


def test_an_event_whose_actions_do_not_hash_to_its_id_is_refused(dao):
    """The CLI rebuilds a proposal from its `ProposalCreated` event, a node's answer: one
    whose actions and description do not hash to its id is refused, never queued."""
    action = fee_action(dao, 300)
    honest = Proposal([action], "fee")
    event = {
        "proposalId": int(honest),
        "targets": [action.target],
        "values": [0],
        "calldatas": [action.calldata],
        "description": "fee",
    }
    assert Proposal.from_event(event) == honest
    for forged in ({"calldatas": [fee_action(dao, 5_000).calldata]}, {"description": "x"}):
        with pytest.raises(ValueError, match="do not hash to its id"):
            Proposal.from_event({**event, **forged})
