"""The guardian and governance decisions, tried as an attacker would: a guardian cannot
cancel the proposal that replaces it, its pauses are bounded in total per term, and a
proposal's windows are fixed when it is queued, so a later grace-period change neither
revives an expired proposal nor extends a queued one."""

from __future__ import annotations

import ape

from computeshare.constants import DAY, ProposalState
from computeshare.governance import call, pass_proposal, propose
from tests.helpers import (
    appoint_guardian,
    at_least,
    fee_action,
    operation_id,
    queued,
    to_active,
    to_end,
)

ZERO = "0x" + "00" * 20


def test_a_guardian_cannot_cancel_the_proposal_that_replaces_it(
    dao, guardian, alice, bob, carol, chain
):
    """A rogue guardian could cancel every proposal that removes it, for its whole term.
    It cannot cancel a proposal that only replaces guardians of this system's contracts,
    in any state; it can still cancel others (a guardian change beside anything else
    included: tests/test_governance_attacks.py), and the DAO removes it within one
    proposal cycle."""
    g = dao.governor
    appoint_guardian(dao, chain, guardian, [alice, bob])
    removals = [
        [call(g, "set_guardian", ZERO, 0)],
        [call(dao.escrow, "set_guardian", ZERO, 0)],
    ]
    ids = [
        propose(g, voter, actions, "remove the guardian")
        for voter, actions in zip((alice, bob), removals, strict=True)
    ]
    other = propose(g, carol, [fee_action(dao, 300), *removals[1]], "fee")
    for proposal in ids:
        with ape.reverts("governor: guardian cannot cancel a guardian change"):
            g.cancel(*proposal.args(), sender=guardian)
    g.cancel(*other.args(), sender=guardian)
    assert g.state(other) == ProposalState.CANCELED
    to_active(dao, chain, ids[0])
    g.castVote(ids[0], 1, sender=alice)
    g.castVote(ids[0], 1, sender=bob)
    to_end(dao, chain, ids[0])
    g.queue(*ids[0].args(), sender=alice)
    with ape.reverts("governor: guardian cannot cancel a guardian change"):
        g.cancel(*ids[0].args(), sender=guardian)
    at_least(chain, g.proposalEta(ids[0]))
    g.execute(*ids[0].args(), sender=alice)
    assert g.guardian() == ZERO
    with ape.reverts("governor: caller cannot cancel"):
        g.cancel(*ids[1].args(), sender=guardian)


def test_a_guardians_pauses_are_bounded_in_total_per_term(dao, guardian, deployer, chain):
    """Re-pausing 14 days at a time could stop new work for a whole term. The guardian's
    pauses add up to at most MAX_GUARDIAN_PAUSE per appointment; extending a running
    pause costs only the extension; the owner's pauses cost nothing; a new appointment
    starts a new budget."""
    escrow = dao.escrow
    budget = escrow.MAX_GUARDIAN_PAUSE()
    assert budget == 30 * DAY
    assert escrow.guardian() == guardian.address
    start = chain.pending_timestamp + 10
    chain.pending_timestamp = start
    escrow.pause(start + 14 * DAY, sender=guardian)
    assert escrow.guardian_pause_used() == 14 * DAY
    # A day later, extending the running pause to 14 days from then costs that day.
    chain.pending_timestamp = start + DAY
    escrow.pause(start + 15 * DAY, sender=guardian)
    assert escrow.guardian_pause_used() == 15 * DAY
    # Re-pausing to an end already covered costs nothing.
    chain.pending_timestamp = start + 2 * DAY
    escrow.pause(start + 10 * DAY, sender=guardian)
    assert escrow.guardian_pause_used() == 15 * DAY
    # Lifted and paused again: the whole new pause is charged.
    escrow.unpause(sender=guardian)
    chain.pending_timestamp = start + 3 * DAY
    escrow.pause(start + 17 * DAY, sender=guardian)
    assert escrow.guardian_pause_used() == 29 * DAY
    escrow.unpause(sender=guardian)
    chain.pending_timestamp = start + 4 * DAY
    with ape.reverts("guardian: pause budget spent"):
        escrow.pause(start + 6 * DAY, sender=guardian)
    chain.pending_timestamp = start + 4 * DAY
    escrow.pause(start + 5 * DAY, sender=guardian)
    assert escrow.guardian_pause_used() == budget
    # The owner (the timelock) is not bounded by the guardian's budget.
    timelock = ape.accounts[dao.timelock.address]
    timelock.balance += 10**18  # gas for the impersonated timelock
    escrow.unpause(sender=timelock)
    escrow.pause(chain.pending_timestamp + 14 * DAY, sender=timelock)
    assert escrow.guardian_pause_used() == budget
    # A new appointment starts a new budget.
    escrow.set_guardian(guardian, chain.pending_timestamp + 90 * DAY, sender=timelock)
    assert escrow.guardian_pause_used() == 0


def test_an_expired_proposal_stays_expired_when_the_grace_period_grows(
    dao, alice, bob, carol, chain
):
    """Expiry used to be computed from the timelock's current grace period: raising it
    revived proposals that had expired, and anyone could execute them. The window is
    fixed when the proposal is queued."""
    g, t = dao.governor, dao.timelock
    stale = queued(dao, chain, carol, [fee_action(dao, 900)], [alice, bob], "never executed")
    eta, expiry = g.proposalEta(stale), g.proposalExpiry(stale)
    operation = operation_id(g, stale)
    assert expiry == eta + t.grace_period() == t.expires_at(operation)
    at_least(chain, eta + t.grace_period())
    assert g.state(stale) == ProposalState.EXPIRED
    assert t.getOperationState(operation) == t.STATE_UNSET() and t.getTimestamp(operation) == 0
    grace = call(t, "set_grace_period", t.MAX_GRACE_PERIOD())
    pass_proposal(g, chain, alice, [alice, bob], [grace], "a longer grace period")
    assert t.grace_period() == t.MAX_GRACE_PERIOD()
    assert g.state(stale) == ProposalState.EXPIRED
    assert g.proposalExpiry(stale) == expiry == t.expires_at(operation)
    assert t.getOperationState(operation) == t.STATE_UNSET() and t.getTimestamp(operation) == 0
    with ape.reverts("timelock: operation expired"):
        g.execute(*stale.args(), sender=carol)
    assert dao.escrow.parameter(0) != 900


def test_a_queued_proposal_keeps_the_window_it_was_queued_with(dao, alice, bob, chain):
    """Shortening the grace period does not cut a queued proposal's window, and
    lengthening it does not extend one: each keeps the window it was queued with."""
    g, t = dao.governor, dao.timelock
    grace_before = t.grace_period()
    waiting = queued(dao, chain, bob, [fee_action(dao, 500)], [alice, bob], "fee 5%")
    eta, expiry = g.proposalEta(waiting), g.proposalExpiry(waiting)
    operation = operation_id(g, waiting)
    assert expiry == eta + grace_before == t.expires_at(operation)
    shorter = call(t, "set_grace_period", t.MIN_GRACE_PERIOD())
    pass_proposal(g, chain, alice, [alice, bob], [shorter], "a shorter grace period")
    assert t.grace_period() < grace_before
    assert g.proposalExpiry(waiting) == expiry == t.expires_at(operation)
    at_least(chain, eta + t.grace_period() + DAY)
    assert g.state(waiting) == ProposalState.QUEUED
    assert t.getOperationState(operation) == t.STATE_READY()
    g.execute(*waiting.args(), sender=bob)
    assert dao.escrow.parameter(0) == 500
