"""Stateful property test of Governor + Timelock against a Python model.

Holders transfer and delegate; proposals are made, voted, queued, executed and cancelled
while time jumps. After every step each proposal's tallies equal the model's (votes taken
from the model's delegation history at the snapshot) and its state follows the state
machine Pending -> Active -> Defeated | Succeeded -> Queued -> Executed | Expired, with
Canceled reachable before any final state.
"""

from __future__ import annotations

import ape
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule, run_state_machine_as_test

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
    call,
)
from tests.helpers import DAY, TOKEN, CountedMachine, delegate

QUORUM = 40_000_000 * TOKEN  # 4% of the fixed 1B supply
THRESHOLD = 100_000 * TOKEN
EXTENSION, GRACE, DELAY = DAY, 14 * DAY, 2 * DAY
FINAL = {CANCELED, DEFEATED, EXPIRED, EXECUTED}
holder_index = st.integers(0, 3)


class Proposal:
    def __init__(self, pid, proposer, snapshot, deadline):
        self.id, self.proposer, self.snapshot, self.deadline = pid, proposer, snapshot, deadline
        self.tally = {AGAINST: 0, FOR: 0, ABSTAIN: 0}
        self.voted: set[str] = set()
        self.canceled = self.queued = self.executed = False
        self.eta = 0

    def state(self, now):
        if self.executed:
            return EXECUTED
        if self.canceled:
            return CANCELED
        if now <= self.snapshot:
            return PENDING
        if now <= self.deadline:
            return ACTIVE
        if self.queued:
            return EXPIRED if now >= self.eta + GRACE else QUEUED
        if self.tally[FOR] <= self.tally[AGAINST] or self.tally[FOR] + self.tally[ABSTAIN] < QUORUM:
            return DEFEATED
        return SUCCEEDED


class GovernanceMachine(CountedMachine):
    def __init__(self, dao, holders, chain):
        super().__init__()
        self.dao, self.holders, self.chain = dao, holders, chain
        self.snapshot = chain.snapshot()
        self.balance = {h.address: dao.token.balanceOf(h) for h in holders}
        self.delegatee = {h.address: dao.token.delegates(h) for h in holders}
        self.history: list[tuple[int, dict[str, int]]] = []
        self._record(chain.blocks.head.timestamp)
        self.proposals: list[Proposal] = []
        self.fee = 250

    def teardown(self):
        self.chain.restore(self.snapshot)

    # ------------------------------------------------------------ model of votes

    def _votes_now(self) -> dict[str, int]:
        votes = {h.address: 0 for h in self.holders}
        for holder, delegatee in self.delegatee.items():
            if delegatee in votes:
                votes[delegatee] += self.balance[holder]
        return votes

    def _record(self, timestamp):
        self.history.append((timestamp, self._votes_now()))

    def _votes_at(self, account, timepoint) -> int:
        votes = {}
        for stamp, snapshot in self.history:
            if stamp <= timepoint:
                votes = snapshot
        return votes.get(account, 0)

    def _now(self):
        return self.chain.blocks.head.timestamp

    def _next(self):
        """Pins the next block one second after the head: anvil may otherwise mine it in
        the same second, and the threshold and state rules depend on the exact time."""
        timestamp = self._now() + 1
        self.chain.pending_timestamp = timestamp
        return timestamp

    def _holder(self, i):
        return self.holders[i]

    # ------------------------------------------------------------ token rules

    @rule(src=holder_index, dst=holder_index, share=st.integers(1, 60))
    def transfer(self, src, dst, share):
        a, b = self._holder(src), self._holder(dst)
        amount = self.balance[a.address] * share // 100
        receipt = self.dao.token.transfer(b, amount, sender=a)
        self.balance[a.address] -= amount
        self.balance[b.address] += amount
        self._record(receipt.timestamp)

    @rule(src=holder_index, dst=holder_index)
    def delegate(self, src, dst):
        a, b = self._holder(src), self._holder(dst)
        receipt = delegate(self.dao.token, b, a)
        self.delegatee[a.address] = b.address
        self._record(receipt.timestamp)

    @rule(seconds=st.sampled_from([1, 3_600, DAY, 2 * DAY, 5 * DAY, 15 * DAY]))
    def travel(self, seconds):
        self.chain.pending_timestamp = self._now() + seconds
        self.chain.mine()

    # ------------------------------------------------------------ governance rules

    @rule(i=holder_index, bps=st.integers(0, 500))
    def propose(self, i, bps):
        proposer = self._holder(i)
        action = call(self.dao.escrow, "set_parameter", 0, bps)
        now = self._next()
        args = ([action.target], [0], [action.calldata], f"fee {bps}")
        live = [
            p
            for p in self.proposals
            if p.proposer == proposer.address and p.state(now) not in FINAL
        ]
        # The threshold is read one second before the proposing block.
        enough = self._votes_at(proposer.address, now - 1) >= THRESHOLD
        if not enough or live:
            with ape.reverts():
                self.dao.governor.propose(*args, sender=proposer)
            return
        receipt = self.dao.governor.propose(*args, sender=proposer)
        assert receipt.timestamp == now
        assert receipt.return_value == len(self.proposals) + 1
        self.proposals.append(
            Proposal(receipt.return_value, proposer.address, now + DAY, now + 6 * DAY)
        )

    @rule(
        i=holder_index, which=st.integers(0, 20), support=st.sampled_from([AGAINST, FOR, ABSTAIN])
    )
    def vote(self, i, which, support):
        if not self.proposals:
            return
        p = self.proposals[which % len(self.proposals)]
        voter = self._holder(i)
        now = self._next()
        if p.state(now) != ACTIVE or voter.address in p.voted:
            with ape.reverts():
                self.dao.governor.castVote(p.id, support, sender=voter)
            return
        receipt = self.dao.governor.castVote(p.id, support, sender=voter)
        weight = self._votes_at(voter.address, p.snapshot)
        assert receipt.return_value == weight
        counted_before = p.tally[FOR] + p.tally[ABSTAIN]
        p.tally[support] += weight
        p.voted.add(voter.address)
        counted = p.tally[FOR] + p.tally[ABSTAIN]
        stamp = receipt.timestamp
        if (
            support != AGAINST
            and stamp + EXTENSION > p.deadline
            and counted_before < QUORUM <= counted
        ):
            p.deadline = stamp + EXTENSION

    @rule(which=st.integers(0, 20))
    def queue(self, which):
        if not self.proposals:
            return
        p = self.proposals[which % len(self.proposals)]
        if p.state(self._next()) != SUCCEEDED:
            with ape.reverts("governor: proposal not successful"):
                self.dao.governor.queue(p.id, sender=self.holders[0])
            return
        receipt = self.dao.governor.queue(p.id, sender=self.holders[0])
        p.queued, p.eta = True, receipt.timestamp + DELAY

    @rule(which=st.integers(0, 20))
    def execute(self, which):
        if not self.proposals:
            return
        p = self.proposals[which % len(self.proposals)]
        now = self._next()
        if p.state(now) != QUEUED or now < p.eta:
            with ape.reverts():
                self.dao.governor.execute(p.id, sender=self.holders[0])
            return
        self.dao.governor.execute(p.id, sender=self.holders[0])
        p.executed = True

    @rule(which=st.integers(0, 20))
    def cancel(self, which):
        if not self.proposals:
            return
        p = self.proposals[which % len(self.proposals)]
        proposer = next(h for h in self.holders if h.address == p.proposer)
        if p.state(self._next()) != PENDING:
            with ape.reverts():
                self.dao.governor.cancel(p.id, sender=proposer)
            return
        self.dao.governor.cancel(p.id, sender=proposer)
        p.canceled = True

    # ------------------------------------------------------------ invariants

    @invariant()
    def proposals_follow_the_model(self):
        now = self._now()
        g = self.dao.governor
        for p in self.proposals:
            assert g.proposalVotes(p.id) == (p.tally[AGAINST], p.tally[FOR], p.tally[ABSTAIN])
            assert g.proposalDeadline(p.id) == p.deadline
            assert g.state(p.id) == p.state(now), (p.id, g.state(p.id), p.state(now))

    @invariant()
    def votes_follow_the_model(self):
        votes = self._votes_now()
        for h in self.holders:
            assert self.dao.token.getVotes(h) == votes[h.address]


def test_governance_state_machine(dao, alice, bob, carol, outsider, chain):
    run_state_machine_as_test(lambda: GovernanceMachine(dao, [alice, bob, carol, outsider], chain))
