"""Governance attacks on the guardian's veto and on proposal ids, tried as an attacker would.

The guardian may cancel any live proposal except one that only replaces guardians of this
system's contracts (the Governor itself, and the contracts the DAO registered with
`set_guardianship_contract`), so that the DAO can always replace a rogue guardian. Every
way of dressing something else up as such a proposal must stay cancellable.

A proposal made with the library or the CLI is reserved to its proposer (its description
ends in `#proposer=<address>`), so nobody can take its id first and cancel it.
"""

from __future__ import annotations

import ape
import pytest
from eth_utils import keccak

from computeshare.constants import DAY, TOKEN, ProposalState
from computeshare.governance import (
    Action,
    call,
    encode,
    execute,
    open_voting,
    pass_proposal,
    propose,
    queue,
    reserved,
)
from tests.helpers import ESCROW_FEE, fee_action, isolated, queued

ZERO = "0x" + "00" * 20
CODELESS = "0x" + "c0de" * 10
TREASURY_DRAIN = 5_000_000 * TOKEN


def appoint_and_register(dao, chain, guardian, voters, *registered):
    """Appoints `guardian` in the Governor and registers `registered` as contracts whose
    guardian changes it cannot cancel, in one proposal (none is active yet: nobody but the
    proposer can cancel it). Returns the guardian's expiry."""
    g = dao.governor
    expiry = chain.pending_timestamp + 210 * DAY
    actions = [call(g, "set_guardian", guardian, expiry)]
    actions += [call(g, "set_guardianship_contract", target, True) for target in registered]
    pass_proposal(g, chain, voters[0], voters, actions, "appoint and register")
    assert g.guardian() == guardian
    return expiry


def assert_cancellable(dao, chain, guardian, proposer, actions, what):
    """`proposer` proposes `actions`; the guardian cancels the proposal (then undone)."""
    g = dao.governor
    with isolated(chain):
        proposal = propose(g, proposer, actions, what)
        g.cancel(*proposal.args(), sender=guardian)
        assert g.state(proposal) == ProposalState.CANCELED, what


def assert_not_cancellable(dao, chain, guardian, proposer, actions, what):
    g = dao.governor
    with isolated(chain):
        proposal = propose(g, proposer, actions, what)
        with ape.reverts("governor: guardian cannot cancel a guardian change"):
            g.cancel(*proposal.args(), sender=guardian)
        assert g.state(proposal) == ProposalState.PENDING, what


def test_a_treasury_drain_wrapped_in_a_guardian_change_is_cancellable(
    dao, guardian, alice, bob, carol, outsider, chain
):
    """The attack the guardian exists for: a majority drains the treasury, and adds a no-op
    guardian re-appointment to escape the veto. The guardian cancels it, queued included,
    and the treasury keeps its tokens."""
    g, token = dao.governor, dao.token
    expiry = appoint_and_register(dao, chain, guardian, [alice, bob])
    actions = [
        call(token, "transfer", outsider, TREASURY_DRAIN),
        call(g, "set_guardian", guardian, expiry),
    ]
    proposal = queued(dao, chain, carol, actions, [alice, bob, carol], "drain")
    assert g.state(proposal) == ProposalState.QUEUED
    g.cancel(*proposal.args(), sender=guardian)
    assert g.state(proposal) == ProposalState.CANCELED
    assert token.balanceOf(dao.timelock) == TREASURY_DRAIN
    assert token.balanceOf(outsider) == 0


def test_nothing_but_a_guardian_change_escapes_the_veto(
    project, dao, guardian, alice, bob, carol, outsider, deployer, chain
):
    """Each way of dressing a proposal up as a guardian change stays cancellable: extra
    actions, ether, codeless targets, contracts that are not registered (this system's or
    another's), the current guardian re-appointed, and calldata that is not exactly
    `set_guardian(address, uint256)`."""
    g, escrow, token, timelock = dao.governor, dao.escrow, dao.token, dao.timelock
    appoint_and_register(dao, chain, guardian, [alice, bob])
    expiry = chain.pending_timestamp + 100 * DAY
    change = encode(g, "set_guardian", outsider, expiry)
    # A contract with guardianship that is not this system's (an unregistered Governor).
    stranger = deployer.deploy(project.Governor, token, timelock)
    dirty = bytearray(change)
    dirty[4] = 1  # a bit above the address in its ABI word
    attempts = {
        "a treasury drain beside it": [
            call(g, "set_guardian", outsider, expiry),
            call(token, "transfer", outsider, TREASURY_DRAIN),
        ],
        "a parameter change beside it": [fee_action(dao, 300), call(g, "set_guardian", ZERO, 0)],
        "the current guardian re-appointed": [call(g, "set_guardian", guardian, expiry + DAY)],
        "ether sent along": [call(g, "set_guardian", outsider, expiry, value=1)],
        "an address without code": [Action(CODELESS, 0, change)],
        "a contract of another system": [call(stranger, "set_guardian", outsider, expiry)],
        "a system contract not registered": [call(escrow, "set_guardian", outsider, expiry)],
        "the timelock, which accepts any call": [Action(str(timelock.address), 0, change)],
        "trailing bytes": [Action(str(g.address), 0, change + b"\x00" * 32)],
        "one trailing byte": [Action(str(g.address), 0, change + b"\x00")],
        "a dirty address word": [Action(str(g.address), 0, bytes(dirty))],
        "the selector alone": [Action(str(g.address), 0, change[:4])],
        "a short argument": [Action(str(g.address), 0, change[:67])],
    }
    for what, actions in attempts.items():
        assert_cancellable(dao, chain, guardian, carol, actions, what)


def test_a_registered_contract_without_a_guardian_to_read_stays_cancellable(
    dao, guardian, alice, bob, carol, outsider, chain
):
    """Registration does not make a target trusted blindly: the change must also read as
    one. The timelock answers any call with nothing; the token has no `guardian()` and
    reverts. Either way the guardian can still cancel (its cancel does not revert)."""
    g, token, timelock = dao.governor, dao.token, dao.timelock
    appoint_and_register(dao, chain, guardian, [alice, bob], timelock, token)
    change = encode(g, "set_guardian", outsider, chain.pending_timestamp + 100 * DAY)
    for target in (timelock, token):
        actions = [Action(str(target.address), 0, change)]
        assert_cancellable(dao, chain, guardian, carol, actions, f"registered {target}")


def test_a_guardian_change_of_the_systems_contracts_escapes_the_veto(
    dao, guardian, alice, bob, carol, outsider, chain
):
    """What stays exempt: removing or replacing the guardian of the Governor or of a
    registered contract, one or several at once."""
    g, escrow = dao.governor, dao.escrow
    appoint_and_register(dao, chain, guardian, [alice, bob], escrow)
    expiry = chain.pending_timestamp + 100 * DAY
    assert escrow.guardian() == guardian
    exempt = {
        "the Governor's guardian removed": [call(g, "set_guardian", ZERO, 0)],
        "the Governor's guardian replaced": [call(g, "set_guardian", outsider, expiry)],
        "the escrow's guardian removed": [call(escrow, "set_guardian", ZERO, 0)],
        "both replaced": [
            call(g, "set_guardian", outsider, expiry),
            call(escrow, "set_guardian", outsider, expiry),
        ],
    }
    for what, actions in exempt.items():
        assert_not_cancellable(dao, chain, guardian, carol, actions, what)
    # Once the escrow's guardian is gone, "removing" it again changes nothing.
    pass_proposal(g, chain, carol, [alice, bob], [call(escrow, "set_guardian", ZERO, 0)], "rm")
    assert escrow.guardian() == ZERO
    nothing = [call(escrow, "set_guardian", ZERO, 0)]
    assert_cancellable(dao, chain, guardian, carol, nothing, "removing no guardian")


def test_registering_a_contract_is_the_timelocks_and_the_guardian_can_veto_it(
    dao, guardian, alice, bob, carol, outsider, chain
):
    """Registration is a change like any other: timelock only, logged, and cancellable by
    the guardian; unregistering restores the veto over that contract's guardian changes."""
    g, escrow = dao.governor, dao.escrow
    with ape.reverts("governor: caller is not the timelock"):
        g.set_guardianship_contract(escrow, True, sender=outsider)
    timelock = ape.accounts[dao.timelock.address]  # impersonated: what a proposal would do
    timelock.balance += 10**18
    with ape.reverts("governor: zero address"):
        g.set_guardianship_contract(ZERO, True, sender=timelock)
    appoint_and_register(dao, chain, guardian, [alice, bob])
    assert not g.guardianship_contract(escrow)
    register = [call(g, "set_guardianship_contract", escrow, True)]
    assert_cancellable(dao, chain, guardian, carol, register, "register")
    receipt = pass_proposal(g, chain, carol, [alice, bob], register, "register the escrow")
    logged = [e for e in receipt.events if e.event_name == "GuardianshipContractSet"]
    assert [(e.target, e.registered) for e in logged] == [(escrow.address, True)]
    assert g.guardianship_contract(escrow)
    change = [call(escrow, "set_guardian", outsider, chain.pending_timestamp + DAY)]
    assert_not_cancellable(dao, chain, guardian, carol, change, "exempt once registered")
    unregister = [call(g, "set_guardianship_contract", escrow, False)]
    pass_proposal(g, chain, carol, [alice, bob], unregister, "unregister the escrow")
    assert not g.guardianship_contract(escrow)
    assert_cancellable(dao, chain, guardian, carol, change, "cancellable once unregistered")


@pytest.mark.parametrize("actions", [1, 10])
def test_the_guardian_cancels_the_largest_proposal_cheaply(
    dao, guardian, alice, bob, carol, outsider, chain, actions
):
    """The check reads one guardian per action, with bounded gas, so the guardian's cancel
    stays cheap for the most actions a proposal may hold (all of them registered reads)."""
    g, escrow = dao.governor, dao.escrow
    appoint_and_register(dao, chain, guardian, [alice, bob], escrow)
    change = call(escrow, "set_guardian", outsider, chain.pending_timestamp + DAY)
    # The last action is a no-op re-appointment: every earlier one is read first.
    same = call(escrow, "set_guardian", guardian, chain.pending_timestamp + DAY)
    proposal = propose(g, carol, [change] * (actions - 1) + [same], "many")
    receipt = g.cancel(*proposal.args(), sender=guardian)
    print(f"cancel of {actions} actions: {receipt.gas_used} gas")
    assert receipt.gas_used < 60_000 + 6_000 * actions


# ---------------------------------------------------------------- proposal ids


def test_a_library_proposal_cannot_be_taken_first_and_cancelled(dao, alice, bob, carol, chain):
    """CVE-2023-34234: a griefer at the threshold who sees a proposal in the mempool sends
    the same transaction first, then cancels its copy while it is pending; the honest one
    fails "already exists", on every retry. The library reserves the description to its
    proposer, so the copy is refused and the honest proposal goes through to execution."""
    g = dao.governor
    actions = [fee_action(dao, 300)]
    # What alice's `propose` sends, as the griefer reads it from the mempool.
    with isolated(chain):
        seen = propose(g, alice, actions, "Fee to 3%").propose_args()
    griefed = False
    try:
        g.propose(*seen, sender=bob)
        griefed = True
    except ape.exceptions.ContractLogicError as error:
        assert error.message == "governor: restricted proposer"
    if griefed:  # the copy took the id: its proposer cancels it while it is pending
        g.cancel(*seen[:3], keccak(text=seen[3]), sender=bob)
    proposal = propose(g, alice, actions, "Fee to 3%")
    assert proposal.propose_args() == seen
    assert proposal.description == f"Fee to 3%#proposer={alice.address}"
    assert g.proposalProposer(proposal) == alice.address
    # Everything that recomputes the id from the description uses the reserved one.
    open_voting(g, chain, proposal)
    for voter in (alice, bob, carol):
        g.castVote(proposal, 1, sender=voter)
    queue(g, chain, proposal, carol)
    execute(g, chain, proposal, carol)
    assert g.state(proposal) == ProposalState.EXECUTED
    assert dao.escrow.parameter(ESCROW_FEE) == 300


def test_a_reserved_description_is_kept_and_another_proposers_is_refused(dao, alice, bob):
    """A description already reserved to the proposer (either case) is sent as typed; one
    reserved to someone else, or too long once reserved, is refused before sending."""
    g = dao.governor
    lower = f"fee#proposer={alice.address.lower()}"
    assert reserved(lower, alice) == lower
    assert reserved("fee", alice.address) == f"fee#proposer={alice.address}"
    assert reserved("fee", alice, reserve=False) == "fee"
    with pytest.raises(ValueError, match="reserved to another proposer"):
        reserved(f"fee#proposer={bob.address}", alice)
    longest = "x" * (g.MAX_DESCRIPTION() - len(reserved("", alice)))
    assert len(reserved(longest, alice).encode()) == g.MAX_DESCRIPTION()
    with pytest.raises(ValueError, match="too long"):
        reserved(longest + "x", alice)
    proposal = propose(g, alice, [fee_action(dao, 300)], lower)
    assert proposal.description == lower and g.proposalProposer(proposal) == alice.address
