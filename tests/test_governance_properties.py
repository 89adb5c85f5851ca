"""Stateful property test of Governor + Timelock against a Python model.

Holders transfer and delegate; proposals are made, voted, queued, executed and cancelled
while time jumps, by fixed amounts or to the second around a moment where a state changes
(a snapshot, deadline, eta or expiry, the end of the guardian's term). Every example
starts with a proposal of Alice's taken on to a drawn phase, and a rule takes a live
proposal one phase on (to its vote, through it with every holder for, queued, executed
the second it is ready), which random steps seldom do.

A proposal's id is OpenZeppelin's `hashProposal` of its actions and description (checked
against `computeshare.governance.hash_proposal` at every proposal); `queue`, `execute`
and `cancel` take the actions again, and proposing the same actions and description
again is refused. Proposals set the escrow's fee or the timelock's grace period, or
appoint or remove the Governor's guardian (alone, or the escrow's next to a fee change);
some descriptions end in `#proposer=<holder>`, which only that holder may propose.

The guardian, appointed by the timelock in the set-up for a drawn term, cancels any
proposal that is not final (a queued one too, which cancels its timelock operation),
except one that does nothing but replace the Governor's guardian with another (a fee change
beside the escrow's guardian change stays cancellable); once its term is over or the DAO
removed it, none.
A proposer cancels its own proposal only while it is pending. The timelock
(impersonated, calling what an executed proposal would) changes its grace period and
delay and the Governor's quorum fraction between steps, within bounds or refused.

After every step each proposal's tallies, deadline and state equal the model's (votes
from the model's delegation history at the snapshot, the quorum fraction from the
model's checkpoints at the snapshot), and a queued one keeps the window (eta, expiry) it
was queued with, whatever the grace period and delay became since, so an expired
proposal stays Expired; its timelock operation is waiting, ready, done or unset as the
proposal's state says. The state machine is Pending -> Active -> Defeated | Succeeded ->
Queued -> Executed | Expired, with Canceled reachable before any final state.

Refusals are checked with an `eth_call` on the pending block (the time the machine
pins), not by sending the transaction inside `ape.reverts`: ape builds a source traceback
of the Governor for every reverted transaction, about a second each, and most steps of
this machine try something the model says must be refused.
"""

from __future__ import annotations

import ape
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule, run_state_machine_as_test
from web3.exceptions import ContractLogicError

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
    call,
    encode,
    hash_proposal,
)
from tests.ape_speed import read_all
from tests.helpers import DAY, TOKEN, CountedMachine, delegate, operation_id

ZERO = "0x" + "00" * 20
THRESHOLD = 100_000 * TOKEN
EXTENSION = DAY
BPS = 10_000
FEE_BPS = 0  # JobEscrow's PROTOCOL_FEE_BPS key
QUORUM_BPS = 3  # the Governor's QUORUM_BPS key
FINAL = {CANCELED, DEFEATED, EXPIRED, EXECUTED}
UNSET, WAITING, READY, DONE = range(4)  # TimelockController's OperationState
KINDS = ["fee", "grace", "guardian", "escrow guardian"]  # what a proposal does
holder_index = st.integers(0, 3)
proposal_index = st.integers(0, 20)
# What the timelock sets directly, some of it out of bounds.
TIMELOCK_CHANGES = [
    ("grace", 6 * DAY),
    ("grace", 7 * DAY),
    ("grace", 14 * DAY),
    ("grace", 60 * DAY),
    ("grace", 61 * DAY),
    ("delay", DAY),
    ("delay", 2 * DAY),
    ("delay", 5 * DAY),
    ("delay", 31 * DAY),
    ("quorum", 99),
    ("quorum", 100),
    ("quorum", 400),
    ("quorum", 600),
    ("quorum", 5_000),
]
# Each setting's hard bounds and the refusal outside them.
BOUNDS = {
    "grace": (7 * DAY, 60 * DAY, "timelock: grace period out of bounds"),
    "delay": (DAY, 30 * DAY, "timelock: delay out of bounds"),
    "quorum": (100, 5_000, "parameters: out of bounds"),
}


class ProposalModel:
    def __init__(self, proposal: Proposal, number, proposer, snapshot, deadline, kind, effects):
        self.id, self.number, self.proposer = proposal, number, proposer
        self.snapshot, self.deadline = snapshot, deadline
        self.kind, self.effects = kind, effects  # what executing it changes: [(what, value)]
        # Only a proposal that does nothing but replace the Governor's guardian escapes the
        # guardian's veto (and only while it names another guardian than the current one).
        self.appointee = effects[0][1][0] if kind == "guardian" else None
        self.tally = {AGAINST: 0, FOR: 0, ABSTAIN: 0}
        self.voted: set[str] = set()
        self.canceled = self.queued = self.executed = False
        self.eta = self.expiry = 0
        self.operation = b""  # its timelock operation, once queued

    def restricted_to(self) -> str | None:
        """The only account that may propose it (a `#proposer=` suffix), if any."""
        _, marker, address = self.id.description.rpartition(" #proposer=")
        return address if marker else None

    def state(self, now, quorum):
        if self.executed:
            return EXECUTED
        if self.canceled:
            return CANCELED
        if now <= self.snapshot:
            return PENDING
        if now <= self.deadline:
            return ACTIVE
        if self.queued:
            return EXPIRED if now >= self.expiry else QUEUED
        if self.tally[FOR] <= self.tally[AGAINST] or self.tally[FOR] + self.tally[ABSTAIN] < quorum:
            return DEFEATED
        return SUCCEEDED

    def operation_state(self, now):
        """Its timelock operation's state: unset until queued, once cancelled and once
        expired."""
        if self.executed:
            return DONE
        if not self.queued or self.canceled or now >= self.expiry:
            return UNSET
        return WAITING if now < self.eta else READY


class GovernanceMachine(CountedMachine):
    def __init__(self, dao, holders, guardian, timelock, chain):
        super().__init__()
        self.dao, self.holders, self.chain = dao, holders, chain
        self.guardian_account, self.timelock = guardian, timelock
        self.snapshot = chain.snapshot()
        g, t = dao.governor, dao.timelock
        self.balance = {h.address: dao.token.balanceOf(h) for h in holders}
        self.delegatee = {h.address: dao.token.delegates(h) for h in holders}
        self.history: list[tuple[int, dict[str, int]]] = []
        self._record(chain.blocks.head.timestamp)
        self.proposals: list[ProposalModel] = []
        self.described = 0  # descriptions carry a counter: the same one twice is one id
        self.supply = dao.token.totalSupply()
        self.quorum_checkpoints = [(0, g.quorumNumerator())]
        self.fee = dao.escrow.parameter(FEE_BPS)
        self.delay, self.grace = t.delay(), t.grace_period()
        self.guardian, self.guardian_expiry = g.guardian(), g.guardian_expiry()

    def teardown(self):
        try:
            self._settings_follow_the_model()
        finally:
            self.chain.restore(self.snapshot)

    @initialize(term=st.sampled_from([2 * DAY, 20 * DAY, 180 * DAY]))
    def appoint_guardian(self, term):
        """The timelock appoints the guardian in the Governor until `term` from now, as a
        passed proposal would."""
        expiry = self._next() + term
        self.dao.governor.set_guardian(self.guardian_account, expiry, sender=self.timelock)
        self.guardian, self.guardian_expiry = self.guardian_account.address, expiry

    @initialize(
        kind=st.sampled_from(KINDS), phase=st.sampled_from([PENDING, ACTIVE, SUCCEEDED, QUEUED])
    )
    def an_opening_proposal(self, kind, phase):
        """Alice proposes and the holders take her proposal on to `phase`, so that every
        example has a proposal to act on from its first step."""
        self.propose(0, kind, 100, None)
        (p,) = self.proposals
        for _ in range(3):
            if self._state(p, self._next()) == phase:
                break
            self.see_it_through(0)
        assert self._state(p, self._next()) == phase

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

    def _quorum(self, timepoint) -> int:
        """The quorum fraction of the newest checkpoint at or before `timepoint`, of the
        supply (fixed)."""
        numerator = 0
        for stamp, bps in self.quorum_checkpoints:
            if stamp <= timepoint:
                numerator = bps
        return self.supply * numerator // BPS

    def _state(self, p, now):
        return p.state(now, self._quorum(p.snapshot))

    # ------------------------------------------------------------ helpers

    def _now(self):
        return self.chain.blocks.head.timestamp

    def _next(self):
        """Pins the next block one second after the head: anvil may otherwise mine it in
        the same second, and the threshold and state rules depend on the exact time."""
        timestamp = self._now() + 1
        self.chain.pending_timestamp = timestamp
        return timestamp

    def _mine_at(self, timestamp):
        """Mines a block at `timestamp` if that is still ahead: the next comes a second
        later."""
        if timestamp > self._now():
            self.chain.pending_timestamp = timestamp
            self.chain.mine()

    def _holder(self, i):
        return self.holders[i]

    def _pick(self, which, *states) -> ProposalModel | None:
        """A proposal: one in `states` if there is any (so that the rule acts), else any
        (so that it is refused); None before the first."""
        now = self._next()
        fitting = [p for p in self.proposals if self._state(p, now) in states]
        candidates = fitting or self.proposals
        return candidates[which % len(candidates)] if candidates else None

    def _live(self, proposer, now) -> bool:
        return any(
            p.proposer == proposer and self._state(p, now) not in FINAL for p in self.proposals
        )

    def _refused(self, contract, name, *args, sender, reason):
        """`contract.name(*args)` from `sender` in the next (pinned) block reverts with
        `reason`, seen through an eth_call on the pending block: nothing changes."""
        request = {
            "from": str(getattr(sender, "address", sender)),
            "to": str(contract.address),
            "data": encode(contract, name, *args),
        }
        try:
            self.chain.provider.web3.eth.call(request, "pending")
        except ContractLogicError as error:
            assert error.message == f"execution reverted: {reason}", (name, error.message)
        else:
            raise AssertionError(f"{name} did not revert; expected {reason!r}")
        event(f"refused: {reason}")

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

    @rule(
        which=proposal_index,
        moment=st.sampled_from(["snapshot", "deadline", "eta", "expiry", "guardian expiry"]),
        offset=st.sampled_from([-1, 0, 1]),
    )
    def travel_to(self, which, moment, offset):
        """Moves the clock so that the next block comes `offset` seconds after a moment
        where a state changes: a proposal's snapshot, deadline, eta or expiry (the
        proposal is Pending up to its snapshot and Active up to its deadline, both
        inclusive; ready from its eta and Expired from its expiry), or the end of the
        guardian's term."""
        p = self._pick(which)
        if moment == "guardian expiry":
            target = self.guardian_expiry
        elif p is None or (moment in ("eta", "expiry") and not p.queued):
            return
        else:
            target = {"snapshot": p.snapshot, "deadline": p.deadline, "eta": p.eta}.get(
                moment, p.expiry
            )
        self._mine_at(target + offset - 1)

    # ------------------------------------------------------------ governance rules

    def _actions(self, kind, value, now):
        """A proposal's actions, and what executing them changes in the model."""
        g, t, escrow = self.dao.governor, self.dao.timelock, self.dao.escrow
        term = (DAY, 30 * DAY, 200 * DAY)[value % 3]
        if kind == "fee":
            return [call(escrow, "set_parameter", FEE_BPS, value)], [("fee", value)]
        if kind == "grace":
            grace = (7 * DAY, 14 * DAY, 60 * DAY)[value % 3]
            return [call(t, "set_grace_period", grace)], [("grace", grace)]
        if kind == "guardian":
            # Appoints the guardian again (for a term that may be over when it executes)
            # or removes it.
            appointee = ZERO if value % 2 else self.guardian_account.address
            action = call(g, "set_guardian", appointee, now + term)
            return [action], [("guardian", (appointee, now + term))]
        # A fee change that also appoints the escrow's guardian: the guardian change does not
        # shield the fee change, so the guardian can cancel it.
        actions = [
            call(escrow, "set_parameter", FEE_BPS, value),
            call(escrow, "set_guardian", self.guardian_account.address, now + term),
        ]
        return actions, [("fee", value), ("escrow guardian", None)]

    @rule(
        i=holder_index,
        kind=st.sampled_from(["fee", *KINDS]),
        value=st.integers(0, 500),
        tag=st.sampled_from([None, None, None, None, "own", "another's"]),
    )
    def propose(self, i, kind, value, tag):
        """`tag`: the description ends in `#proposer=<that holder>` (`i` or another)."""
        proposer = self._holder(i)
        now = self._next()
        actions, effects = self._actions(kind, value, now)
        self.described += 1
        description = f"#{self.described}: {kind} {value}"
        if tag is not None:
            owner = proposer if tag == "own" else self._holder((i + 1) % len(self.holders))
            description += f" #proposer={owner.address}"
        proposal = Proposal(actions, description)
        args = proposal.propose_args()
        g = self.dao.governor
        reason = self._propose_refusal(proposer, now, restricted=tag == "another's")
        if reason:
            self._refused(g, "propose", *args, sender=proposer, reason=reason)
            return
        receipt = g.propose(*args, sender=proposer)
        assert receipt.timestamp == now
        assert receipt.return_value == hash_proposal(actions, description) == proposal
        number = len(self.proposals) + 1
        assert g.proposalCount() == g.proposalNumber(proposal) == number
        self.proposals.append(
            ProposalModel(
                proposal, number, proposer.address, now + DAY, now + 6 * DAY, kind, effects
            )
        )
        event(f"proposed: {kind}" + (" (#proposer=)" if tag else ""))

    def _propose_refusal(self, proposer, now, restricted: bool) -> str | None:
        """Why the Governor refuses `proposer`'s proposal at `now`, in its order of checks;
        None if it does not (a duplicate aside)."""
        if restricted:
            return "governor: restricted proposer"
        # The threshold is read one second before the proposing block.
        if self._votes_at(proposer.address, now - 1) < THRESHOLD:
            return "governor: proposer votes below threshold"
        if self._live(proposer.address, now):
            return "governor: proposer has a live proposal"
        return None

    @rule(i=holder_index, which=proposal_index)
    def propose_again(self, i, which):
        """The same actions and description again, by any holder: the same id, refused."""
        p = self._pick(which)
        if p is None:
            return
        proposer = self._holder(i)
        now = self._next()
        restricted = p.restricted_to() not in (None, proposer.address)
        reason = self._propose_refusal(proposer, now, restricted)
        reason = reason or "governor: proposal already exists"
        self._refused(
            self.dao.governor, "propose", *p.id.propose_args(), sender=proposer, reason=reason
        )

    def _vote(self, p: ProposalModel, voter, support):
        g = self.dao.governor
        now = self._next()
        if self._state(p, now) != ACTIVE:
            reason = "governor: vote not currently active"
        elif voter.address in p.voted:
            reason = "governor: vote already cast"
        else:
            reason = None
        if reason:
            self._refused(g, "castVote", p.id, support, sender=voter, reason=reason)
            return
        receipt = g.castVote(p.id, support, sender=voter)
        weight = self._votes_at(voter.address, p.snapshot)
        assert receipt.return_value == weight
        assert g.hasVoted(p.id, voter)
        quorum = self._quorum(p.snapshot)
        assert g.proposalQuorum(p.id) == quorum
        counted_before = p.tally[FOR] + p.tally[ABSTAIN]
        p.tally[support] += weight
        p.voted.add(voter.address)
        counted = p.tally[FOR] + p.tally[ABSTAIN]
        stamp = receipt.timestamp
        if (
            support != AGAINST
            and stamp + EXTENSION > p.deadline
            and counted_before < quorum <= counted
        ):
            p.deadline = stamp + EXTENSION
            event("late quorum moved a deadline")

    def _queue(self, p: ProposalModel):
        g, t = self.dao.governor, self.dao.timelock
        if self._state(p, self._next()) != SUCCEEDED:
            self._refused(
                g, "queue", *p.id.args(), sender=self.holders[0],
                reason="governor: proposal not successful",
            )  # fmt: skip
            return
        receipt = g.queue(*p.id.args(), sender=self.holders[0])
        assert receipt.return_value == p.id
        # The window is the timelock's delay and grace period now, fixed from here on.
        p.queued, p.eta = True, receipt.timestamp + self.delay
        p.expiry = p.eta + self.grace
        p.operation = operation_id(g, p.id)
        scheduled = receipt.decode_logs(t.CallScheduled)
        assert {bytes(log.event_arguments["id"]) for log in scheduled} == {p.operation}
        assert g.proposalEta(p.id) == p.eta
        assert t.expires_at(p.operation) == p.expiry
        event("queued")

    def _execute(self, p: ProposalModel):
        g = self.dao.governor
        now = self._next()
        state = self._state(p, now)
        if state not in (QUEUED, EXPIRED):
            reason = "governor: proposal not queued"
        elif state == EXPIRED:
            reason = "timelock: operation expired"
        elif now < p.eta:
            reason = "timelock: operation not ready"
        else:
            reason = None
        if reason:
            self._refused(g, "execute", *p.id.args(), sender=self.holders[0], reason=reason)
            return
        g.execute(*p.id.args(), sender=self.holders[0])
        p.executed = True
        for what, value in p.effects:
            if what == "fee":
                self.fee = value
            elif what == "grace":
                self._grace_changes(value)
            elif what == "guardian":
                self.guardian, self.guardian_expiry = value
        self._settings_follow_the_model()
        event(f"executed: {p.kind}")

    @rule(i=holder_index, which=proposal_index, support=st.sampled_from([AGAINST, FOR, ABSTAIN]))
    def vote(self, i, which, support):
        p = self._pick(which, ACTIVE)
        if p is not None:
            self._vote(p, self._holder(i), support)

    @rule(which=proposal_index)
    def queue(self, which):
        p = self._pick(which, SUCCEEDED)
        if p is not None:
            self._queue(p)

    @rule(which=proposal_index)
    def execute(self, which):
        p = self._pick(which, QUEUED)
        if p is not None:
            self._execute(p)

    @rule(which=proposal_index)
    def see_it_through(self, which):
        """The holders take a live proposal one phase on: to its first active second;
        every holder with votes at its snapshot votes for it, then the vote closes; it is
        queued; it executes the second it is ready. (The other rules reach these states
        only by chance.)"""
        p = self._pick(which, PENDING, ACTIVE, SUCCEEDED, QUEUED)
        if p is None:
            return
        state = self._state(p, self._next())
        if state == PENDING:
            self._mine_at(p.snapshot)
        elif state == ACTIVE:
            for holder in self.holders:
                if holder.address not in p.voted and self._votes_at(holder.address, p.snapshot):
                    self._vote(p, holder, FOR)
            self._mine_at(p.deadline)
        elif state == SUCCEEDED:
            self._queue(p)
        elif state == QUEUED:
            self._mine_at(p.eta - 1)
            self._execute(p)

    @rule(i=holder_index, which=proposal_index)
    def cancel(self, i, which):
        """A holder cancels: only the proposal's proposer, and only while it is pending."""
        p = self._pick(which)
        if p is None:
            return
        canceller, g = self._holder(i), self.dao.governor
        state = self._state(p, self._next())
        if canceller.address != p.proposer:
            reason = "governor: caller cannot cancel"
        elif state != PENDING:
            reason = "governor: proposal not pending"
        else:
            reason = None
        if reason:
            self._refused(g, "cancel", *p.id.args(), sender=canceller, reason=reason)
            return
        g.cancel(*p.id.args(), sender=canceller)
        p.canceled = True
        event("the proposer cancelled")

    @rule(which=proposal_index)
    def guardian_cancels(self, which):
        """The guardian cancels any proposal that is not final, unless it only replaces the
        Governor's guardian (with another one); once its term is over (or the DAO removed
        it), none."""
        p = self._pick(which)
        if p is None:
            return
        g, guardian = self.dao.governor, self.guardian_account
        now = self._next()
        state = self._state(p, now)
        if not (self.guardian == guardian.address and now < self.guardian_expiry):
            reason = "governor: caller cannot cancel"
        elif state in FINAL:
            reason = "governor: proposal is final"
        elif p.appointee is not None and p.appointee != self.guardian:
            reason = "governor: guardian cannot cancel a guardian change"
        else:
            reason = None
        if reason:
            self._refused(g, "cancel", *p.id.args(), sender=guardian, reason=reason)
            return
        receipt = g.cancel(*p.id.args(), sender=guardian)
        cancelled = receipt.decode_logs(self.dao.timelock.Cancelled)
        expected = {p.operation} if state == QUEUED else set()
        assert {bytes(log.event_arguments["id"]) for log in cancelled} == expected
        p.canceled = True
        event(f"the guardian cancelled a proposal {state.label}")

    # ------------------------------------------------------------ the timelock's settings

    def _grace_changes(self, grace):
        """Records a new grace period. No queued proposal's window moves with it, and no
        expired proposal comes back (checked now, and after every step)."""
        now, g = self._now(), self.dao.governor
        for p in self.proposals:
            if p.queued and not p.executed and not p.canceled:
                assert g.proposalExpiry(p.id) == p.expiry
                state = self._state(p, now)
                assert g.state(p.id) == state
                event(f"a proposal {state.label} under a new grace period")
        self.grace = grace

    @rule(change=st.sampled_from(TIMELOCK_CHANGES))
    def timelock_changes_a_setting(self, change):
        """The timelock sets its grace period or delay, or the Governor's quorum fraction,
        as an executed proposal would; out of bounds, it is refused."""
        kind, value = change
        t, g = self.dao.timelock, self.dao.governor
        contract, name, args = {
            "grace": (t, "set_grace_period", (value,)),
            "delay": (t, "set_delay", (value,)),
            "quorum": (g, "set_parameter", (QUORUM_BPS, value)),
        }[kind]
        now = self._next()
        low, high, refusal = BOUNDS[kind]
        if not low <= value <= high:
            self._refused(contract, name, *args, sender=self.timelock, reason=refusal)
            return
        getattr(contract, name)(*args, sender=self.timelock)
        if kind == "grace":
            self._grace_changes(value)
        elif kind == "delay":
            self.delay = value
        else:
            self.quorum_checkpoints.append((now, value))
            if any(p.snapshot < now and self._state(p, now) not in FINAL for p in self.proposals):
                event("quorum changed after a live proposal's snapshot")
        self._settings_follow_the_model()

    def _settings_follow_the_model(self):
        g, t = self.dao.governor, self.dao.timelock
        assert self.dao.escrow.parameter(FEE_BPS) == self.fee
        assert (t.delay(), t.grace_period()) == (self.delay, self.grace)
        assert (g.guardian(), g.guardian_expiry()) == (self.guardian, self.guardian_expiry)
        assert g.quorumNumerator() == self.quorum_checkpoints[-1][1]

    # ------------------------------------------------------------ invariants

    @invariant()
    def proposals_follow_the_model(self):
        now = self._now()
        g, t = self.dao.governor, self.dao.timelock
        calls = []
        for p in self.proposals:
            calls += [(g.proposalVotes, p.id), (g.proposalDeadline, p.id), (g.state, p.id)]
            if p.queued:
                calls += [(g.proposalExpiry, p.id), (t.getOperationState, p.operation)]
        answers = iter(read_all(*calls))
        for p in self.proposals:
            state = self._state(p, now)
            assert next(answers) == (p.tally[AGAINST], p.tally[FOR], p.tally[ABSTAIN])
            assert next(answers) == p.deadline
            onchain = next(answers)
            assert onchain == state, (p.number, onchain, state)
            if p.queued:
                # The window it was queued with, whatever the timelock's settings now.
                assert next(answers) == p.expiry
                assert next(answers) == p.operation_state(now)

    @invariant()
    def votes_follow_the_model(self):
        votes = self._votes_now()
        onchain = read_all(*((self.dao.token.getVotes, h) for h in self.holders))
        for h, held in zip(self.holders, onchain, strict=True):
            assert held == votes[h.address]


def test_governance_state_machine(dao, alice, bob, carol, outsider, guardian, chain):
    timelock = ape.accounts[dao.timelock.address]  # impersonated: it sets what the DAO sets
    timelock.balance += 10**18  # gas for the impersonated timelock
    run_state_machine_as_test(
        lambda: GovernanceMachine(dao, [alice, bob, carol, outsider], guardian, timelock, chain)
    )
