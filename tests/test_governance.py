"""Governor and Timelock: proposals, votes, quorum, the timelock, the guardian, hand-over,
and the attacks governance must withstand. Runs on the system as deployed in production."""

from __future__ import annotations

import ape

from computeshare.governance import (
    ABSTAIN,
    ACTIVE,
    AGAINST,
    CANCELED,
    DEFEATED,
    EXECUTED,
    EXPIRED,
    FOR,
    PENDING,
    QUEUED,
    SUCCEEDED,
    Proposal,
    advance,
    call,
    description_hash,
    encode,
    hash_proposal,
    pass_proposal,
    propose,
    reserved,
)
from computeshare.signing import sign_ballot
from tests.helpers import (
    AUDITOR,
    DAY,
    ESCROW_FEE,
    GOOD,
    HOUR,
    PRICE,
    TOKEN,
    ZERO32,
    appoint_guardian,
    at_least,
    delegate,
    fee_action,
    operation_id,
    queued,
    timelock_salt,
    to_active,
    to_end,
)

VOTING_DELAY, VOTING_PERIOD, PROPOSAL_THRESHOLD, QUORUM_BPS, LATE_QUORUM_EXTENSION = range(5)
ZERO = "0x" + "00" * 20
# Timelock operation states (TimelockController's `OperationState`).
UNSET, WAITING, READY, DONE = range(4)


def ballot(governor, proposal_id, support, voter, nonce, key, chain_id):
    return sign_ballot(
        key,
        chain_id=chain_id,
        governor=governor.address,
        proposal_id=proposal_id,
        support=support,
        voter=voter,
        nonce=nonce,
    )


# ------------------------------------------------------------------ deployment and hand-over


def test_hand_over_leaves_the_deployer_no_power(dao, deployer, guardian):
    t = dao.timelock
    for contract in dao.owned():
        assert contract.owner() == t.address
    assert t.governor() == dao.governor.address
    assert dao.governor.timelock() == t.address and dao.governor.token() == dao.token.address
    with ape.reverts("ownable: caller is not the owner"):
        dao.token.mint(deployer, TOKEN, sender=deployer)
    with ape.reverts("ownable: caller is not the owner"):
        dao.staking.set_parameter(0, 8 * DAY, sender=deployer)
    with ape.reverts("ownable: caller is not the owner"):
        dao.escrow.set_guardian(deployer, 1, sender=deployer)
    with ape.reverts("ownable: caller is not the owner"):
        dao.registry.set_roles(deployer, AUDITOR, sender=deployer)
    with ape.reverts("timelock: caller is not the initializer"):
        t.initialize(deployer, sender=deployer)
    with ape.reverts("timelock: caller is not the timelock"):
        t.set_delay(DAY, sender=deployer)
    a = fee_action(dao, 300)
    with ape.reverts("timelock: caller is not the governor"):
        t.scheduleBatch([a.target], [0], [a.calldata], ZERO32, ZERO32, 0, sender=deployer)
    with ape.reverts("timelock: caller is not the governor"):
        t.executeBatch([a.target], [0], [a.calldata], ZERO32, ZERO32, sender=deployer)
    with ape.reverts("timelock: caller is not the governor"):
        t.cancel(b"\x01" * 32, sender=deployer)
    with ape.reverts("governor: caller is not the timelock"):
        dao.governor.set_parameter(QUORUM_BPS, 100, sender=deployer)
    with ape.reverts("governor: caller is not the timelock"):
        dao.governor.set_guardian(deployer, 1, sender=deployer)
    assert dao.escrow.guardian() == guardian.address


def test_defaults_and_hard_bounds(dao):
    g, t = dao.governor, dao.timelock
    expected = {
        VOTING_DELAY: (DAY, 1, 7 * DAY),
        VOTING_PERIOD: (5 * DAY, DAY, 30 * DAY),
        PROPOSAL_THRESHOLD: (100_000 * TOKEN, TOKEN, 10_000_000 * TOKEN),
        QUORUM_BPS: (400, 100, 5_000),
        LATE_QUORUM_EXTENSION: (DAY, 3600, 7 * DAY),
    }
    for key, (value, low, high) in expected.items():
        assert g.parameter(key) == value and g.parameter_bounds(key) == (low, high)
    assert (g.votingDelay(), g.votingPeriod(), g.proposalThreshold()) == (
        DAY,
        5 * DAY,
        100_000 * TOKEN,
    )
    assert (g.quorumNumerator(), g.quorumDenominator(), g.lateQuorumVoteExtension()) == (
        400,
        10_000,
        DAY,
    )
    assert g.COUNTING_MODE() == "support=bravo&quorum=for,abstain"
    assert g.CLOCK_MODE() == "mode=timestamp" and g.name() == "ComputeShare Governor"
    assert (t.delay(), t.getMinDelay(), t.grace_period()) == (2 * DAY, 2 * DAY, 14 * DAY)
    assert (t.MIN_DELAY(), t.MAX_DELAY(), t.MIN_GRACE_PERIOD(), t.MAX_GRACE_PERIOD()) == (
        DAY,
        30 * DAY,
        7 * DAY,
        60 * DAY,
    )


def test_timelock_rejects_out_of_bounds_construction(project, deployer):
    with ape.reverts("timelock: delay out of bounds"):
        deployer.deploy(project.Timelock, 0, 14 * DAY)
    with ape.reverts("timelock: grace period out of bounds"):
        deployer.deploy(project.Timelock, DAY, 61 * DAY)
    with ape.reverts("governor: zero timelock"):
        deployer.deploy(project.Governor, deployer, ZERO)


# ------------------------------------------------------------------ proposing


def test_propose_logs_the_actions_its_id_is_hashed_from(dao, alice, chain):
    """The Governor stores no actions: `ProposalCreated` carries them, and the id is
    OpenZeppelin's `hashProposal` of them and the description's hash."""
    g = dao.governor
    action = fee_action(dao, 300)
    receipt = g.propose([action.target], [0], [action.calldata], "Fee to 3%", sender=alice)
    proposal_id = receipt.return_value
    [event] = receipt.decode_logs(g.ProposalCreated)
    now = chain.blocks.head.timestamp
    assert (event.proposalId, event.proposer, event.description) == (
        proposal_id,
        alice.address,
        "Fee to 3%",
    )
    assert (event.voteStart, event.voteEnd) == (now + DAY, now + 6 * DAY)
    assert (list(event.targets), list(event.values), [bytes(c) for c in event.calldatas]) == (
        [action.target],
        [0],
        [action.calldata],
    )
    assert list(event.signatures) == [""]
    args = ([action.target], [0], [action.calldata], description_hash("Fee to 3%"))
    assert proposal_id == hash_proposal([action], "Fee to 3%") == g.hashProposal(*args)
    assert g.getProposalId(*args) == proposal_id
    assert Proposal.from_event(event) == proposal_id
    assert Proposal.from_event(event).actions == (action,)
    assert g.proposalSnapshot(proposal_id) == now + DAY
    assert g.proposalDeadline(proposal_id) == now + 6 * DAY
    assert g.proposalProposer(proposal_id) == alice.address
    assert g.proposalCount() == g.proposalNumber(proposal_id) == 1
    assert g.latestProposalId(alice) == proposal_id
    assert (g.proposalEta(proposal_id), g.proposalExpiry(proposal_id)) == (0, 0)
    assert g.state(proposal_id) == PENDING and g.proposalNeedsQueuing(proposal_id)


def test_propose_rejects_bad_input(dao, alice, bob, outsider, chain):
    g = dao.governor
    a = fee_action(dao, 300)
    with ape.reverts("governor: empty proposal"):
        g.propose([], [], [], "nothing", sender=alice)
    with ape.reverts("governor: invalid proposal length"):
        g.propose([a.target], [0, 0], [a.calldata], "x", sender=alice)
    with ape.reverts("governor: proposer votes below threshold"):
        g.propose([a.target], [0], [a.calldata], "x", sender=outsider)
    first = propose(g, alice, [a], "first", reserve=False)
    with ape.reverts("governor: proposer has a live proposal"):
        g.propose([a.target], [0], [a.calldata], "second", sender=alice)
    # The same actions and description are the same id, whoever proposes them.
    with ape.reverts("governor: proposal already exists"):
        g.propose([a.target], [0], [a.calldata], "first", sender=bob)
    with ape.reverts("governor: unknown proposal"):
        g.state(99)
    with ape.reverts("governor: unknown proposal"):
        g.state(hash_proposal([a], "never proposed"))
    assert g.proposalCount() == g.proposalNumber(first) == 1
    assert g.proposalNumber(hash_proposal([a], "never proposed")) == 0


def test_a_description_naming_its_proposer_is_reserved_to_it(dao, alice, bob):
    """CVE-2023-34234: a description ending in `#proposer=0x<address>` may only be
    proposed by that address, so nobody can front-run it into its id and cancel it."""
    g = dao.governor
    a = fee_action(dao, 300)
    bobs = f"Fee to 3%#proposer={bob.address}"
    for description in (bobs, f"Fee to 3%#proposer={bob.address.lower()}"):
        with ape.reverts("governor: restricted proposer"):
            g.propose([a.target], [0], [a.calldata], description, sender=alice)
    proposal = propose(g, bob, [a], bobs)
    assert g.proposalProposer(proposal) == bob.address and g.proposalCount() == 1
    # A suffix that is not exactly 40 hex digits restricts nobody.
    loose = propose(g, alice, [a], f"Fee to 3%#proposer={bob.address[:-1]}g", reserve=False)
    assert g.proposalProposer(loose) == alice.address and g.proposalCount() == 2


def test_proposer_may_propose_again_once_the_last_is_final(dao, alice, chain):
    g = dao.governor
    first = propose(g, alice, [fee_action(dao, 300)], "first")
    g.cancel(*first.args(), sender=alice)
    assert g.state(first) == CANCELED
    second = propose(g, alice, [fee_action(dao, 300)], "second")
    assert second == hash_proposal([fee_action(dao, 300)], reserved("second", alice)) != first
    assert (g.proposalNumber(first), g.proposalNumber(second), g.proposalCount()) == (1, 2, 2)
    assert g.latestProposalId(alice) == second


def in_one_block(chain, calls):
    """Sends `calls` ((sender, contract, method, args)) and mines them all in one block;
    returns their receipts' statuses."""
    w3 = chain.provider.web3
    w3.provider.make_request("anvil_autoImpersonateAccount", [True])
    w3.provider.make_request("evm_setAutomine", [False])
    try:
        hashes = [
            w3.eth.send_transaction(
                {
                    "from": sender.address,
                    "to": contract.address,
                    "gas": 1_000_000,
                    "data": encode(contract, name, *args),
                }
            )
            for sender, contract, name, args in calls
        ]
        w3.provider.make_request("evm_mine", [])
    finally:
        w3.provider.make_request("evm_setAutomine", [True])
    return [w3.eth.get_transaction_receipt(h).status for h in hashes]


def test_flash_borrowed_tokens_cannot_propose(dao, deployer, outsider, chain):
    """Tokens borrowed and returned in one block carry no proposing power: the threshold
    is read one second back."""
    g, token = dao.governor, dao.token
    a = fee_action(dao, 300)
    statuses = in_one_block(
        chain,
        [
            (deployer, token, "transfer", (outsider, 200_000 * TOKEN)),
            (outsider, token, "delegate", (outsider,)),
            (outsider, g, "propose", ([a.target], [0], [a.calldata], "borrowed")),
            (outsider, token, "transfer", (deployer, 200_000 * TOKEN)),
        ],
    )
    assert statuses == [1, 1, 0, 1]
    assert g.proposalCount() == 0 and token.balanceOf(outsider) == 0
    # Held for real, the same tokens may propose one second later.
    token.transfer(outsider, 200_000 * TOKEN, sender=deployer)
    advance(chain, 1)
    held = propose(g, outsider, [a], "held")
    assert g.proposalNumber(held) == g.proposalCount() == 1


# ------------------------------------------------------------------ voting


def test_votes_are_tallied_at_the_snapshot(dao, alice, bob, carol, chain):
    g = dao.governor
    proposal_id = propose(g, alice, [fee_action(dao, 300)], "fee")
    other = propose(g, bob, [fee_action(dao, 300)], "another fee")
    with ape.reverts("governor: vote not currently active"):
        g.castVote(proposal_id, FOR, sender=bob)
    to_active(dao, chain, proposal_id)
    assert g.state(proposal_id) == ACTIVE
    receipt = g.castVoteWithReason(proposal_id, FOR, "cheaper jobs", sender=alice)
    [event] = receipt.decode_logs(g.VoteCast)
    assert (event.voter, event.proposalId, event.support, event.weight, event.reason) == (
        alice.address,
        proposal_id,
        FOR,
        30_000_000 * TOKEN,
        "cheaper jobs",
    )
    g.castVote(proposal_id, AGAINST, sender=bob)
    g.castVote(proposal_id, ABSTAIN, sender=carol)
    assert g.proposalVotes(proposal_id) == (
        20_000_000 * TOKEN,
        30_000_000 * TOKEN,
        10_000_000 * TOKEN,
    )
    assert g.hasVoted(proposal_id, alice) and not g.hasVoted(other, alice)
    assert not g.hasVoted(proposal_id + 1, alice)  # an unknown id
    with ape.reverts("governor: vote already cast"):
        g.castVote(proposal_id, AGAINST, sender=alice)
    with ape.reverts("governor: invalid vote type"):
        g.castVote(proposal_id, 3, sender=alice)
    to_end(dao, chain, proposal_id)
    with ape.reverts("governor: vote not currently active"):
        g.castVote(proposal_id, FOR, sender=alice)
    # quorum: for + abstain = 40M = 4% of 1B; for > against.
    assert g.proposalQuorum(proposal_id) == 40_000_000 * TOKEN
    assert g.state(proposal_id) == SUCCEEDED


def test_defeated_without_quorum_or_majority(dao, alice, bob, carol, chain):
    g = dao.governor
    no_quorum = propose(g, bob, [fee_action(dao, 300)], "too few voters")
    tie = propose(g, alice, [fee_action(dao, 300)], "no majority")
    to_active(dao, chain, tie)
    g.castVote(no_quorum, FOR, sender=bob)  # 20M < 40M quorum
    g.castVote(tie, FOR, sender=bob)
    g.castVote(tie, AGAINST, sender=alice)  # 30M against 20M for
    to_end(dao, chain, tie)
    assert g.state(no_quorum) == DEFEATED and g.state(tie) == DEFEATED
    with ape.reverts("governor: proposal not successful"):
        g.queue(*no_quorum.args(), sender=bob)


def test_votes_bought_after_the_snapshot_count_for_nothing(dao, deployer, alice, outsider, chain):
    g = dao.governor
    proposal_id = propose(g, alice, [fee_action(dao, 300)], "fee")
    to_active(dao, chain, proposal_id)
    dao.token.transfer(outsider, 50_000_000 * TOKEN, sender=deployer)
    delegate(dao.token, outsider, outsider)
    receipt = g.castVote(proposal_id, FOR, sender=outsider)
    assert receipt.return_value == 0
    # The same tokens handed on to a second account vote for nothing either.
    dao.token.transfer(alice, 50_000_000 * TOKEN, sender=outsider)
    assert g.castVote(proposal_id, FOR, sender=alice).return_value == 30_000_000 * TOKEN
    assert g.proposalVotes(proposal_id)[1] == 30_000_000 * TOKEN


def test_staked_tokens_vote_for_their_owner(dao, deployer, outsider, alice, chain):
    """A provider's bonded stake and a delegator's delegation keep their votes."""
    token, staking, g = dao.token, dao.staking, dao.governor
    token.transfer(outsider, 1_000_000 * TOKEN, sender=deployer)
    delegate(token, outsider, outsider)
    token.approve(staking, 2**256 - 1, sender=outsider)
    staking.stake(600_000 * TOKEN, sender=outsider)
    token.approve(staking, 2**256 - 1, sender=alice)
    staking.delegate_to(outsider, 1_000_000 * TOKEN, 0, sender=alice)
    advance(chain, 1)
    proposal_id = propose(g, outsider, [fee_action(dao, 300)], "stakers vote")
    to_active(dao, chain, proposal_id)
    assert g.castVote(proposal_id, FOR, sender=outsider).return_value == 1_000_000 * TOKEN
    assert g.castVote(proposal_id, FOR, sender=alice).return_value == 30_000_000 * TOKEN


def test_vote_by_signature(dao, alice, bob, outsider, chain, chain_id):
    g = dao.governor
    proposal_id = propose(g, alice, [fee_action(dao, 300)], "fee")
    to_active(dao, chain, proposal_id)
    signature = ballot(g, proposal_id, FOR, bob.address, 0, bob.private_key, chain_id)
    receipt = g.castVoteBySig(proposal_id, FOR, bob, signature, sender=outsider)
    assert receipt.return_value == 20_000_000 * TOKEN and g.nonces(bob) == 1
    [event] = receipt.decode_logs(g.VoteCast)
    assert event.voter == bob.address
    # Replay: the nonce moved on, so the same signature no longer verifies.
    with ape.reverts("governor: invalid signature"):
        g.castVoteBySig(proposal_id, FOR, bob, signature, sender=outsider)
    bad = {
        "other chain": ballot(
            g, proposal_id, FOR, alice.address, 0, alice.private_key, chain_id + 1
        ),
        "other choice": ballot(
            g, proposal_id, AGAINST, alice.address, 0, alice.private_key, chain_id
        ),
        "other signer": ballot(g, proposal_id, FOR, alice.address, 0, bob.private_key, chain_id),
    }
    for signature in bad.values():
        with ape.reverts("governor: invalid signature"):
            g.castVoteBySig(proposal_id, FOR, alice, signature, sender=outsider)
    assert not g.hasVoted(proposal_id, alice) and g.nonces(alice) == 0


def test_vote_by_signature_of_a_contract_wallet(
    dao, project, deployer, alice, carol, outsider, chain, chain_id
):
    """EIP-1271: a contract voter's signature is checked by the contract itself."""
    g, token = dao.governor, dao.token
    wallet = carol.deploy(project.SignerWallet)
    token.transfer(wallet, 45_000_000 * TOKEN, sender=deployer)
    wallet.execute(token, encode(token, "delegate", wallet), sender=carol)
    advance(chain, 1)
    proposal_id = propose(g, alice, [fee_action(dao, 300)], "fee")
    to_active(dao, chain, proposal_id)
    forged = ballot(g, proposal_id, FOR, wallet.address, 0, outsider.private_key, chain_id)
    with ape.reverts("governor: invalid signature"):
        g.castVoteBySig(proposal_id, FOR, wallet, forged, sender=outsider)
    signature = ballot(g, proposal_id, FOR, wallet.address, 0, carol.private_key, chain_id)
    assert (
        g.castVoteBySig(proposal_id, FOR, wallet, signature, sender=outsider).return_value
        == 45_000_000 * TOKEN
    )


def test_quorum_is_fixed_at_creation(dao, alice, bob, carol, chain):
    """CVE-2022-31198: raising the quorum must not change proposals made before."""
    g = dao.governor
    raise_quorum = call(g, "set_parameter", QUORUM_BPS, 5_000)
    older = propose(g, carol, [fee_action(dao, 300)], "made before the change")
    pass_proposal(g, chain, alice, [alice, bob], [raise_quorum], "quorum to 50%")
    assert g.quorumNumerator() == 5_000
    assert g.state(older) == DEFEATED  # nobody voted on it: its 4% quorum was not met
    newer = propose(g, bob, [fee_action(dao, 300)], "made after the change")
    to_active(dao, chain, newer)
    g.castVote(newer, FOR, sender=alice)
    g.castVote(newer, FOR, sender=bob)
    to_end(dao, chain, newer)
    assert g.proposalQuorum(newer) == 500_000_000 * TOKEN and g.state(newer) == DEFEATED


def test_quorum_change_does_not_revive_or_kill_a_live_proposal(dao, alice, bob, carol, chain):
    g = dao.governor
    lower = call(g, "set_parameter", QUORUM_BPS, 100)
    first = propose(g, alice, [lower], "quorum to 1%")
    to_active(dao, chain, first)
    g.castVote(first, FOR, sender=alice)
    g.castVote(first, FOR, sender=bob)
    live = propose(g, carol, [fee_action(dao, 300)], "carol alone")
    to_active(dao, chain, live)
    g.castVote(live, FOR, sender=carol)  # 10M: above 1%, below its own 4%
    to_end(dao, chain, first)
    g.queue(*first.args(), sender=alice)
    chain.pending_timestamp = g.proposalEta(first)
    g.execute(*first.args(), sender=alice)
    assert g.quorumNumerator() == 100
    to_end(dao, chain, live)
    assert g.proposalQuorum(live) == 40_000_000 * TOKEN and g.state(live) == DEFEATED


def test_a_quorum_change_is_checkpointed_from_its_execution(dao, alice, bob, carol, chain):
    """The quorum fraction is checkpointed: a change applies to proposals whose snapshot
    is at or after it. One already active keeps the quorum of its snapshot; one still
    pending when the change runs takes the new one."""
    g = dao.governor
    change = propose(g, alice, [call(g, "set_parameter", QUORUM_BPS, 1_000)], "quorum to 10%")
    to_active(dao, chain, change)
    g.castVote(change, FOR, sender=alice)
    g.castVote(change, FOR, sender=bob)
    to_end(dao, chain, change)
    g.queue(*change.args(), sender=alice)
    active = propose(g, carol, [fee_action(dao, 300)], "active during the change")
    to_active(dao, chain, active)
    assert g.state(active) == ACTIVE
    quorum_before = g.proposalQuorum(active)
    assert quorum_before == 40_000_000 * TOKEN  # 4% of 1B
    at_least(chain, g.proposalEta(change) - 2 * HOUR)
    pending = propose(g, bob, [fee_action(dao, 500)], "pending during the change")
    at_least(chain, g.proposalEta(change))
    changed_at = g.execute(*change.args(), sender=alice).timestamp
    assert g.state(active) == ACTIVE and g.state(pending) == PENDING
    assert g.proposalSnapshot(active) < changed_at <= g.proposalSnapshot(pending)

    assert g.quorumNumerator() == 1_000 == g.parameter(QUORUM_BPS)
    assert g.quorumNumerator(changed_at) == 1_000
    assert g.quorumNumerator(changed_at - 1) == 400
    assert g.quorumNumerator(g.proposalSnapshot(active)) == 400
    assert g.proposalQuorum(active) == quorum_before
    advance(chain, 1)
    assert g.quorum(changed_at - 1) == quorum_before
    assert g.quorum(changed_at) == 100_000_000 * TOKEN  # 10% of 1B
    # 40M for meets the active proposal's 4%, though not the 10% now in force.
    g.castVote(active, FOR, sender=alice)
    g.castVote(active, FOR, sender=carol)
    to_end(dao, chain, active)
    assert g.proposalQuorum(active) == quorum_before and g.state(active) == SUCCEEDED
    # The pending one's snapshot is after the change: 60M for miss its 10%.
    to_active(dao, chain, pending)
    for voter in (alice, bob, carol):
        g.castVote(pending, FOR, sender=voter)
    to_end(dao, chain, pending)
    assert g.proposalQuorum(pending) == 100_000_000 * TOKEN and g.state(pending) == DEFEATED


def test_late_quorum_extends_the_deadline_once(dao, alice, bob, carol, chain):
    g = dao.governor
    proposal_id = propose(g, carol, [fee_action(dao, 300)], "fee")
    deadline = g.proposalDeadline(proposal_id)
    to_active(dao, chain, proposal_id)
    g.castVote(proposal_id, FOR, sender=carol)  # 10M: no quorum yet
    chain.pending_timestamp = deadline - 3600
    receipt = g.castVote(proposal_id, ABSTAIN, sender=alice)  # 40M: reaches quorum late
    now = receipt.timestamp
    [event] = receipt.decode_logs(g.ProposalExtended)
    assert event.extendedDeadline == now + DAY == g.proposalDeadline(proposal_id)
    chain.pending_timestamp = now + DAY - 10
    receipt = g.castVote(proposal_id, AGAINST, sender=bob)
    assert receipt.decode_logs(g.ProposalExtended) == []
    assert g.proposalDeadline(proposal_id) == now + DAY
    to_end(dao, chain, proposal_id)
    assert g.state(proposal_id) == DEFEATED  # 10M for, 20M against


def test_early_quorum_does_not_extend(dao, alice, bob, chain):
    g = dao.governor
    proposal_id = propose(g, alice, [fee_action(dao, 300)], "fee")
    deadline = g.proposalDeadline(proposal_id)
    to_active(dao, chain, proposal_id)
    receipt = g.castVote(proposal_id, FOR, sender=bob)
    receipt = g.castVote(proposal_id, FOR, sender=alice)
    assert (
        receipt.decode_logs(g.ProposalExtended) == []
        and g.proposalDeadline(proposal_id) == deadline
    )


# ------------------------------------------------------------------ queue, timelock, execute


def test_end_to_end_fee_change_and_grant(
    dao,
    alice,
    bob,
    carol,
    outsider,
    chain,
    chain_id,
    client,
    deployer,
    post_job,
    run_replica,
    fund_provider,
    fund_client,
):
    """Propose a fee change plus a treasury grant; vote (one by signature); queue; wait;
    execute; the next job pays the new fee."""
    g, t, token, escrow = dao.governor, dao.timelock, dao.token, dao.escrow
    grant = 250_000 * TOKEN
    actions = [fee_action(dao, 100), call(token, "transfer", outsider, grant)]
    proposal = propose(g, alice, actions, "Fee to 1% and a grant to the outsider")
    advance(chain, DAY + 1)
    g.castVote(proposal, FOR, sender=alice)
    signature = ballot(g, proposal, FOR, bob.address, 0, bob.private_key, chain_id)
    g.castVoteBySig(proposal, FOR, bob, signature, sender=carol)
    g.castVote(proposal, AGAINST, sender=carol)
    with ape.reverts("governor: proposal not successful"):
        g.queue(*proposal.args(), sender=alice)
    to_end(dao, chain, proposal)
    receipt = g.queue(*proposal.args(), sender=outsider)
    eta = receipt.timestamp + 2 * DAY
    [queued] = receipt.decode_logs(g.ProposalQueued)
    assert queued.etaSeconds == eta == g.proposalEta(proposal)
    assert g.proposalExpiry(proposal) == eta + 14 * DAY
    assert g.state(proposal) == QUEUED
    operation = t.hashOperationBatch(
        [a.target for a in actions],
        [0, 0],
        [a.calldata for a in actions],
        ZERO32,
        timelock_salt(g, proposal),
    )
    assert operation == operation_id(g, proposal)
    assert t.getTimestamp(operation) == eta
    with ape.reverts("timelock: operation not ready"):
        g.execute(*proposal.args(), sender=outsider)
    with ape.reverts("governor: proposal not successful"):
        g.queue(*proposal.args(), sender=outsider)
    chain.pending_timestamp = eta
    treasury_before = token.balanceOf(t)
    receipt = g.execute(*proposal.args(), sender=outsider)
    assert receipt.decode_logs(g.ProposalExecuted)[0].proposalId == proposal
    assert g.state(proposal) == EXECUTED and t.getTimestamp(operation) == 1
    assert t.isOperationDone(operation)
    assert escrow.parameter(ESCROW_FEE) == 100
    assert token.balanceOf(outsider) == grant and token.balanceOf(t) == treasury_before - grant
    with ape.reverts("governor: proposal not queued"):
        g.execute(*proposal.args(), sender=outsider)

    # The next job pays the new 1% fee.
    provider = outsider  # holds the grant
    fund_provider(provider, tokens=0, m=dao)
    fund_client(client, m=dao)
    job = post_job(m=dao)
    run_replica(job, provider, GOOD, m=dao)
    chain.pending_timestamp = dao.jobs.view(job).phase_end
    [settled] = dao.jobs.finalize(job, sender=outsider).decode_logs(escrow.JobSettled)
    assert settled.fees == PRICE * 100 // 10_000


def test_expired_after_the_grace_period(dao, alice, bob, chain):
    g = dao.governor
    proposal = queued(dao, chain, alice, [fee_action(dao, 300)], [alice, bob])
    chain.pending_timestamp = g.proposalEta(proposal) + 14 * DAY
    chain.mine()
    assert g.state(proposal) == EXPIRED
    assert g.proposalExpiry(proposal) == g.proposalEta(proposal) + 14 * DAY
    with ape.reverts("timelock: operation expired"):
        g.execute(*proposal.args(), sender=alice)
    assert dao.escrow.parameter(ESCROW_FEE) == 250


def test_out_of_bounds_parameter_fails_at_execution_and_changes_nothing(dao, alice, bob, chain):
    g = dao.governor
    actions = [call(dao.token, "transfer", bob, TOKEN), fee_action(dao, 10_000)]
    with ape.reverts("parameters: out of bounds"):
        pass_proposal(g, chain, alice, [alice, bob], actions, "a 100% fee")
    proposal_id = g.latestProposalId(alice)
    assert proposal_id == hash_proposal(actions, reserved("a 100% fee", alice))
    assert g.state(proposal_id) == QUEUED
    assert dao.escrow.parameter(ESCROW_FEE) == 250
    assert dao.token.balanceOf(bob) == 20_000_000 * TOKEN


def test_only_the_timelock_changes_its_delay_within_bounds(dao, alice, bob, chain):
    g, t = dao.governor, dao.timelock
    with ape.reverts("timelock: delay out of bounds"):
        pass_proposal(g, chain, alice, [alice, bob], [call(t, "set_delay", 0)], "no delay")
    assert t.delay() == 2 * DAY
    pass_proposal(g, chain, bob, [alice, bob], [call(t, "set_delay", 3 * DAY)], "three days")
    assert t.delay() == 3 * DAY


def test_timelock_runs_only_what_was_queued(dao, alice, bob, chain):
    """Even the governor cannot run actions other than the ones it queued, nor the queued
    ones under another salt or predecessor."""
    g, t = dao.governor, dao.timelock
    proposal = queued(dao, chain, alice, [fee_action(dao, 300)], [alice, bob])
    at_least(chain, g.proposalEta(proposal))
    other = call(dao.token, "transfer", alice, TOKEN)
    salt = timelock_salt(g, proposal)
    targets, values, calldatas, _ = proposal.args()
    chain.provider.set_balance(g.address, 10**18)
    with ape.reverts("timelock: operation not scheduled"):
        t.executeBatch([other.target], [0], [other.calldata], ZERO32, salt, sender=g.address)
    with ape.reverts("timelock: operation not scheduled"):
        t.executeBatch(targets, values, calldatas, ZERO32, ZERO32, sender=g.address)
    with ape.reverts("timelock: operation not scheduled"):
        t.executeBatch(targets, values, calldatas, b"\x01" * 32, salt, sender=g.address)
    with ape.reverts("timelock: caller is not the governor"):
        t.executeBatch([other.target], [0], [other.calldata], ZERO32, salt, sender=alice)
    with ape.reverts("timelock: caller is not the governor"):
        t.executeBatch(targets, values, calldatas, ZERO32, salt, sender=alice)
    assert t.isOperationReady(operation_id(g, proposal))
    assert dao.escrow.parameter(ESCROW_FEE) == 250


def test_timelock_views_follow_a_proposal_through_its_life(dao, alice, bob, chain):
    """TimelockController's views and events, as tools read them: unset before queueing,
    waiting, ready from the eta, done (timestamp 1) once executed; an operation left
    past its grace period reads as unset and can never run."""
    g, t = dao.governor, dao.timelock
    assert (t.STATE_UNSET(), t.STATE_WAITING(), t.STATE_READY(), t.STATE_DONE()) == (
        UNSET,
        WAITING,
        READY,
        DONE,
    )
    delay, grace = t.getMinDelay(), t.grace_period()
    assert delay == t.delay() == 2 * DAY
    actions = [fee_action(dao, 300), call(dao.token, "transfer", bob, TOKEN)]
    proposal = propose(g, alice, actions, "fee and a grant")
    operation = operation_id(g, proposal)

    def views():
        return (
            t.getTimestamp(operation),
            t.getOperationState(operation),
            t.isOperation(operation),
            t.isOperationPending(operation),
            t.isOperationReady(operation),
            t.isOperationDone(operation),
        )

    assert views() == (0, UNSET, False, False, False, False)
    to_active(dao, chain, proposal)
    g.castVote(proposal, FOR, sender=alice)
    g.castVote(proposal, FOR, sender=bob)
    to_end(dao, chain, proposal)
    receipt = g.queue(*proposal.args(), sender=bob)
    eta = receipt.timestamp + delay
    scheduled = receipt.decode_logs(t.CallScheduled)
    assert [(e.id, e.index, e.target, e.value, bytes(e.data)) for e in scheduled] == [
        (operation, i, a.target, a.value, a.calldata) for i, a in enumerate(actions)
    ]
    assert all(e.predecessor == ZERO32 and e.delay == delay for e in scheduled)
    [salt] = receipt.decode_logs(t.CallSalt)
    assert (salt.id, salt.salt) == (operation, timelock_salt(g, proposal))
    assert t.expires_at(operation) == eta + grace == g.proposalExpiry(proposal)
    assert views() == (eta, WAITING, True, True, False, False)
    at_least(chain, eta - 1)
    assert views() == (eta, WAITING, True, True, False, False)
    at_least(chain, eta)
    assert views() == (eta, READY, True, True, True, False)

    receipt = g.execute(*proposal.args(), sender=bob)
    executed = receipt.decode_logs(t.CallExecuted)
    assert [(e.id, e.index, e.target, e.value, bytes(e.data)) for e in executed] == [
        (operation, i, a.target, a.value, a.calldata) for i, a in enumerate(actions)
    ]
    assert views() == (1, DONE, True, False, False, True)
    assert t.expires_at(operation) == 0
    assert dao.escrow.parameter(ESCROW_FEE) == 300
    chain.provider.set_balance(g.address, 10**18)
    with ape.reverts("timelock: operation not pending"):
        t.cancel(operation, sender=g.address)  # a done operation is not cancelled

    # One left queued past its grace period expires: unset, and it can never run.
    stale = queued(dao, chain, bob, [fee_action(dao, 500)], [alice, bob], "left to expire")
    operation = operation_id(g, stale)
    eta, expiry = g.proposalEta(stale), g.proposalExpiry(stale)
    assert (t.getTimestamp(operation), t.expires_at(operation)) == (eta, expiry)
    at_least(chain, expiry - 1)
    assert views() == (eta, READY, True, True, True, False)
    at_least(chain, expiry)
    assert views() == (0, UNSET, False, False, False, False)
    assert g.state(stale) == EXPIRED
    with ape.reverts("timelock: operation expired"):
        g.execute(*stale.args(), sender=bob)
    with ape.reverts("timelock: operation not pending"):
        t.cancel(operation, sender=g.address)
    assert dao.escrow.parameter(ESCROW_FEE) == 300


# ------------------------------------------------------------------ cancelling and the guardian


def test_proposer_cancels_only_while_pending(dao, alice, bob, chain):
    g = dao.governor
    proposal = propose(g, alice, [fee_action(dao, 300)], "fee")
    with ape.reverts("governor: caller cannot cancel"):
        g.cancel(*proposal.args(), sender=bob)
    to_active(dao, chain, proposal)
    with ape.reverts("governor: proposal not pending"):
        g.cancel(*proposal.args(), sender=alice)
    other = propose(g, bob, [fee_action(dao, 300)], "bob's fee")
    receipt = g.cancel(*other.args(), sender=bob)
    assert receipt.decode_logs(g.ProposalCanceled)[0].proposalId == other
    assert receipt.decode_logs(dao.timelock.Cancelled) == []  # nothing was scheduled
    assert g.state(other) == CANCELED
    to_active(dao, chain, other)
    with ape.reverts("governor: vote not currently active"):
        g.castVote(other, FOR, sender=alice)


def test_guardian_cancels_a_queued_proposal_but_cannot_move_funds(
    dao, guardian, alice, bob, carol, chain
):
    g, t, token = dao.governor, dao.timelock, dao.token
    expiry = appoint_guardian(dao, chain, guardian, [alice, bob])
    assert (g.guardian(), g.guardian_expiry()) == (guardian.address, expiry)
    grab = call(token, "transfer", carol, 1_000_000 * TOKEN)
    proposal = queued(dao, chain, carol, [grab], [alice, bob])
    operation = t.hashOperationBatch(
        [grab.target], [0], [grab.calldata], ZERO32, timelock_salt(g, proposal)
    )
    assert operation == operation_id(g, proposal)
    assert t.getOperationState(operation) == WAITING and t.isOperationPending(operation)
    receipt = g.cancel(*proposal.args(), sender=guardian)
    [cancelled] = receipt.decode_logs(t.Cancelled)
    assert cancelled.id == operation
    assert receipt.decode_logs(g.ProposalCanceled)[0].proposalId == proposal
    assert g.state(proposal) == CANCELED and t.getTimestamp(operation) == 0
    assert t.getOperationState(operation) == UNSET and not t.isOperation(operation)
    chain.pending_timestamp += 3 * DAY
    with ape.reverts("governor: proposal not queued"):
        g.execute(*proposal.args(), sender=carol)
    # The guardian holds no role that moves funds or changes anything.
    salt = timelock_salt(g, proposal)
    with ape.reverts("timelock: caller is not the governor"):
        t.executeBatch([grab.target], [0], [grab.calldata], ZERO32, salt, sender=guardian)
    with ape.reverts("timelock: caller is not the governor"):
        t.cancel(operation, sender=guardian)
    with ape.reverts("ownable: caller is not the owner"):
        dao.escrow.set_treasury(guardian, sender=guardian)
    with ape.reverts("governor: caller is not the timelock"):
        g.set_guardian(guardian, expiry + DAY, sender=guardian)
    with ape.reverts("governor: proposal is final"):
        g.cancel(*proposal.args(), sender=guardian)
    # Not even the governor can cancel the operation twice or run it.
    chain.provider.set_balance(g.address, 10**18)
    with ape.reverts("timelock: operation not pending"):
        t.cancel(operation, sender=g.address)
    with ape.reverts("timelock: operation not scheduled"):
        t.executeBatch([grab.target], [0], [grab.calldata], ZERO32, salt, sender=g.address)
    assert token.balanceOf(carol) == 10_000_000 * TOKEN
    # It may pause new work in JobEscrow, within its bounded pause.
    dao.escrow.pause(chain.pending_timestamp + DAY, sender=guardian)


def test_guardian_power_ends_at_expiry_and_is_bounded(dao, guardian, alice, bob, chain):
    g = dao.governor
    with ape.reverts("guardian: term too long"):
        pass_proposal(
            g,
            chain,
            alice,
            [alice, bob],
            [call(g, "set_guardian", guardian, 2**40)],
            "x",
        )
    expiry = appoint_guardian(dao, chain, guardian, [bob, alice], term=DAY)
    proposal = propose(g, bob, [fee_action(dao, 300)], "fee")
    chain.pending_timestamp = expiry
    chain.mine()
    with ape.reverts("governor: caller cannot cancel"):
        g.cancel(*proposal.args(), sender=guardian)


def test_a_parameter_change_applies_to_the_next_proposal(dao, alice, bob, chain):
    """`propose` reads its four parameters from one packed word, which `set_parameter`
    rewrites: each change applies to the next proposal, and the views agree."""
    g = dao.governor
    timelock = ape.accounts[dao.timelock.address]  # impersonated: what a proposal would do
    timelock.balance += 10**18
    changes = {
        g.VOTING_DELAY(): 3_600,
        g.VOTING_PERIOD(): 2 * DAY,
        g.LATE_QUORUM_EXTENSION(): 2 * 3_600,
        g.PROPOSAL_THRESHOLD(): 10_000_000 * TOKEN,  # its highest
    }
    for key, value in changes.items():
        g.set_parameter(key, value, sender=timelock)
        assert g.parameter(key) == value
    assert (g.votingDelay(), g.votingPeriod(), g.lateQuorumVoteExtension()) == (
        3_600,
        2 * DAY,
        2 * 3_600,
    )
    assert g.proposalThreshold() == 10_000_000 * TOKEN
    dao.token.transfer(alice, 15_000_000 * TOKEN, sender=bob)  # bob keeps 5M votes
    advance(chain, 1)
    with ape.reverts("governor: proposer votes below threshold"):
        g.propose(*Proposal([fee_action(dao, 300)], "bob").propose_args(), sender=bob)
    proposal = propose(g, alice, [fee_action(dao, 300)], "alice")
    now = chain.blocks.head.timestamp
    assert g.proposalSnapshot(proposal) == now + 3_600
    assert g.proposalDeadline(proposal) == now + 3_600 + 2 * DAY
    # A quorum change leaves the packed settings alone.
    g.set_parameter(g.QUORUM_BPS(), 500, sender=timelock)
    assert g.votingDelay() == 3_600 and g.proposalThreshold() == 10_000_000 * TOKEN
