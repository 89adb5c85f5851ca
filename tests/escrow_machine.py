"""EscrowMachine: the stateful model of the job market that test_escrow_properties runs
on the suite and test_system_properties extends to the system as deployed (a helper
module, not a test module). Its rules, invariants and checks at settlement are described
in test_escrow_properties.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ape
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import initialize, invariant, rule

from computeshare.jobs import (
    OUTCOME_COMPLETED,
    OUTCOME_SLASHED,
    STATUS_CANCELLED,
    STATUS_FINALIZED,
    commitment,
    custody_address,
    deposit_shard,
)
from computeshare.params import parameter
from computeshare.specs import job_requirements
from tests.ape_speed import read_all
from tests.helpers import (
    BAD,
    DAY,
    GOOD,
    HOUR,
    TOKEN,
    CountedMachine,
    bucketed,
    custody_accounts,
    escrow_holdings,
    escrow_owes,
)

SALT = b"\x01" * 32
SPEC = b'{"workload": "sha256-chain"}'
HONEST, FAULTY, SILENT = "honest", "faulty", "silent"
ACCEPTED, COMMITTED, REVEALED = "accepted", "committed", "revealed"


@dataclass
class Replica:
    provider: object
    state: str = ACCEPTED
    result: bytes = b""


@dataclass
class JobModel:
    job_id: bytes
    client: object
    k: int
    price: int
    deadline: int
    status: str = "open"  # open, disputed, settled, cancelled
    replicas: list[Replica] = field(default_factory=list)
    bond: int = 0  # held by JobDisputes

    @property
    def locked(self) -> int:
        return self.price * self.k if self.status in ("open", "disputed") else 0


class EscrowMachine(CountedMachine):
    def __init__(self, m, clients, providers, arbiter, keeper, chain):
        super().__init__()
        self.m, self.clients, self.providers = m, clients, providers
        self.arbiter, self.keeper, self.chain = arbiter, keeper, chain
        self.snapshot = chain.snapshot()
        self.jobs: list[JobModel] = []
        # Two honest providers and a faulty one; rules change that as they go.
        self.behaviour = {
            providers[0].address: HONEST,
            providers[1].address: HONEST,
            providers[2].address: FAULTY,
        }
        self.fees = 0
        self.everyone = [*clients, *providers, arbiter, keeper]
        # Tokens an outsider sent to JobEscrow (its own address or any deposit shard) and
        # to each pool's custody account: nobody's books hold them, so the holdings
        # invariants count them on their own.
        self.donated = 0
        self.donated_to_pool: dict[str, int] = {}
        self.donated_to_staking = 0

    def teardown(self):
        try:
            self._settle_everything()
        finally:
            self.chain.restore(self.snapshot)

    # ------------------------------------------------------------ helpers

    def _now(self) -> int:
        return self.chain.pending_timestamp

    def _pick(self, items, index):
        return items[index % len(items)] if items else None

    def _live(self) -> list[JobModel]:
        return [j for j in self.jobs if j.status in ("open", "disputed")]

    def _running(self, provider) -> int:
        return sum(1 for j in self._live() for r in j.replicas if r.provider == provider)

    def _settled(self, job: JobModel, receipt) -> None:
        """Money of a settled job adds up, once; an honest strict majority is paid."""
        assert job.status in ("open", "disputed"), "job settled twice"
        (settled,) = receipt.decode_logs(self.m.escrow.JobSettled)
        assert settled.paid + settled.fees + settled.refunded == job.price * job.k
        outcomes = {
            e["provider"]: e.outcome for e in receipt.decode_logs(self.m.escrow.ReplicaSettled)
        }
        honest = [r for r in job.replicas if r.state == REVEALED and r.result == GOOD]
        revealed_results = {r.result for r in job.replicas if r.state == REVEALED}
        if job.k > 1:
            # An honest replica is never slashed, whoever outvotes it; a unanimous strict
            # majority is paid at once.
            for r in honest:
                assert outcomes[r.provider.address] != OUTCOME_SLASHED, "honest replica slashed"
            if len(honest) * 2 > job.k and revealed_results == {GOOD}:
                for r in honest:
                    assert outcomes[r.provider.address] == OUTCOME_COMPLETED, (
                        "honest majority unpaid"
                    )
        # A slash reaches delegators only once the provider's own stake (bonded and
        # thawing) is gone.
        for slash in receipt.decode_logs(self.m.staking.Slashed):
            if slash.from_delegated + slash.from_delegated_thawing + slash.from_warming:
                pool = self.m.staking.pool(slash.event_arguments["provider"])
                assert pool.own_stake == 0 and pool.own_thawing == 0, "delegators paid first"
                event("a slash reached delegators")
        self.fees += settled.fees
        revealed = sum(r.state == REVEALED for r in job.replicas)
        slashed = settled.compensation > 0
        event(f"settled: k={job.k}, {revealed} revealed, {job.status}, slashed={slashed}")
        job.status = "settled"
        assert self.m.jobs.view(job.job_id).status == STATUS_FINALIZED
        with ape.reverts("job_escrow: job not open"):
            self.m.jobs.finalize(job.job_id, sender=self.keeper)

    def _finalize(self, job: JobModel, keeper=None) -> bool:
        try:
            receipt = self.m.jobs.finalize(job.job_id, sender=keeper or self.keeper)
        except ape.exceptions.ContractLogicError as err:
            assert "not ready to settle" in str(err), err
            return False
        if receipt.decode_logs(self.m.escrow.Disputed):
            # k > 1 replicas disagreed: the job waits for the arbiter's ruling.
            assert job.k > 1 and job.status == "open"
            job.status, job.bond = "disputed", 0
            event("dissent escalated to the arbiter")
            return True
        # Settled without a ruling: any bond goes back to the client.
        self._settled(job, receipt)
        if job.bond:
            owed = self.m.job_disputes.balanceOf(job.client)
            self.m.jobs.reclaim(job.job_id, sender=self.keeper)
            assert self.m.job_disputes.balanceOf(job.client) == owed + job.bond
            job.bond = 0
            event("unruled: the bond returned")
        return True

    def _settle_everything(self):
        """Past every deadline, window and ruling period, every job settles."""
        self.chain.pending_timestamp += 8 * DAY
        self.chain.mine()
        for job in self._live():
            assert self._finalize(job), f"job {job.job_id.hex()} stuck after its deadlines"
        # Escalated dissent: past the ruling period, it settles without a ruling.
        self.chain.pending_timestamp += 4 * DAY
        for job in self._live():
            assert self._finalize(job), f"job {job.job_id.hex()} stuck after its ruling period"
        for job in self.jobs:
            assert self.m.jobs.view(job.job_id).status in (STATUS_FINALIZED, STATUS_CANCELLED)
        self.escrow_holds_what_it_owes()
        for account in self.everyone:
            balance = self.m.escrow.balanceOf(account)
            if balance:
                self.m.escrow.withdraw(balance, sender=account)
            if self.m.job_disputes.balanceOf(account):
                self.m.job_disputes.withdraw(sender=account)
        assert escrow_holdings(self.m) == self.fees + self.donated
        assert self.m.token.balanceOf(self.m.job_disputes) == 0

    def _donate(self, to: str, wei: int) -> None:
        """An outsider's plain transfer of `wei` to `to` (a client's wallet pays it)."""
        self.m.token.transfer(to, wei, sender=self.clients[-1])

    # ------------------------------------------------------------ rules

    @initialize(prices=st.tuples(st.integers(1, 50), st.integers(1, 50), st.integers(1, 50)))
    def live_jobs(self, prices):
        """Every example starts with a k = 1, a k = 2 and a k = 3 job to work on."""
        for k, price in zip((1, 2, 3), prices, strict=True):
            self.post(k % 2, k, price)

    @rule(client=st.integers(0, 1), k=st.sampled_from([1, 1, 2, 3]), price=st.integers(1, 50))
    def post(self, client, k, price):
        c = self.clients[client]
        amount = price * TOKEN
        if self.m.escrow.balanceOf(c) < amount * k:
            self.m.escrow.deposit(amount * k, sender=c)
        deadline = self._now() + 2 * HOUR
        receipt = self.m.escrow.post(
            SPEC, job_requirements(), amount, k, deadline, amount, sender=c
        )
        self.jobs.append(JobModel(receipt.return_value, c, k, amount, deadline))

    @rule(pick=st.integers(0, 99), provider=st.integers(0, 2))
    def accept(self, pick, provider):
        p = self.providers[provider]
        candidates = [
            j
            for j in self._live()
            if j.status == "open"
            and len(j.replicas) < j.k
            and self._now() < j.deadline
            and all(r.provider != p for r in j.replicas)
        ]
        job = self._pick(candidates, pick)
        if job is not None:
            self._accept(job, p)

    def _accept(self, job, p) -> None:
        if self._running(p) >= 4 or self.m.staking.free_stake(p) < job.price:
            return
        self.m.jobs.accept(job.job_id, 0, sender=p)
        job.replicas.append(Replica(p))

    @rule(pick=st.integers(0, 99))
    def commit(self, pick):
        candidates = [
            (j, r)
            for j in self._live()
            for r in j.replicas
            if r.state == ACCEPTED
            and self._now() < j.deadline
            and self.behaviour[r.provider.address] != SILENT
        ]
        chosen = self._pick(candidates, pick)
        if chosen is not None:
            self._commit(*chosen)

    def _commit(self, job, r) -> None:
        r.result = BAD if self.behaviour[r.provider.address] == FAULTY else GOOD
        slot = job.replicas.index(r)
        digest = commitment(job.job_id, r.provider.address, r.result, SALT)
        self.m.jobs.commit(job.job_id, slot, digest, sender=r.provider)
        r.state = COMMITTED

    @rule(pick=st.integers(0, 99))
    def reveal(self, pick):
        candidates = [
            (j, r)
            for j in self._live()
            for r in j.replicas
            if j.status == "open"
            and r.state == COMMITTED
            and (sum(x.state != ACCEPTED for x in j.replicas) == j.k or self._now() >= j.deadline)
        ]
        chosen = self._pick(candidates, pick)
        if chosen is not None:
            self._reveal(*chosen)

    def _reveal(self, job, r) -> None:
        if self._now() >= self.m.jobs.view(job.job_id).phase_end:
            return
        self.m.jobs.reveal(job.job_id, job.replicas.index(r), r.result, SALT, sender=r.provider)
        r.state = REVEALED

    @rule(pick=st.integers(0, 99))
    def progress(self, pick):
        """Takes one live job as far as it can go now: fill replicas, commit, reveal."""
        job = self._pick([j for j in self._live() if j.status == "open"], pick)
        if job is None:
            return
        for p in self.providers:
            if (
                len(job.replicas) < job.k
                and self._now() < job.deadline
                and all(r.provider != p for r in job.replicas)
            ):
                self._accept(job, p)
        for r in job.replicas:
            if (
                r.state == ACCEPTED
                and self._now() < job.deadline
                and self.behaviour[r.provider.address] != SILENT
            ):
                self._commit(job, r)
        everyone_committed = len(job.replicas) == job.k and all(
            r.state != ACCEPTED for r in job.replicas
        )
        if everyone_committed or self._now() >= job.deadline:
            for r in job.replicas:
                if r.state == COMMITTED:
                    self._reveal(job, r)

    @rule(pick=st.integers(0, 99))
    def dispute_wrong_result(self, pick):
        candidates = [j for j in self._live() if j.status == "open" and j.k == 1 and j.replicas]
        candidates = [
            j for j in candidates if j.replicas[0].state == REVEALED and j.replicas[0].result == BAD
        ]
        job = self._pick(candidates, pick)
        if job is None or self._now() >= self.m.jobs.view(job.job_id).phase_end:
            return
        self.m.jobs.dispute(job.job_id, sender=job.client)
        job.status, job.bond = "disputed", self.m.job_disputes.bond(job.job_id)
        bond_bps = self.m.escrow.parameter(parameter("JobEscrow", "DISPUTE_BOND_BPS").key)
        assert job.bond == job.price * bond_bps // 10_000

    @rule(pick=st.integers(0, 99), for_client=st.booleans())
    def rule_dispute(self, pick, for_client):
        job = self._pick([j for j in self._live() if j.status == "disputed"], pick)
        if job is None or self._now() >= self.m.jobs.view(job.job_id).phase_end:
            return
        self._rule_on(job, for_client)

    def _rule_on(self, job: JobModel, for_client: bool) -> None:
        # k > 1: the arbiter re-runs the workload and names the right result.
        receiver = job.client if for_client or job.k > 1 else job.replicas[0].provider
        owed = self.m.job_disputes.balanceOf(receiver)
        receipt = self.m.jobs.rule(job.job_id, for_client, result=GOOD, sender=self.arbiter)
        # The bond (k = 1) goes to the side the ruling is for.
        assert self.m.job_disputes.balanceOf(receiver) == owed + job.bond
        job.bond = 0
        self._settled(job, receipt)
        if job.k > 1:
            outcomes = {
                e["provider"]: e.outcome for e in receipt.decode_logs(self.m.escrow.ReplicaSettled)
            }
            for r in job.replicas:
                if r.state == REVEALED:
                    expected = OUTCOME_COMPLETED if r.result == GOOD else OUTCOME_SLASHED
                    assert outcomes[r.provider.address] == expected, "the ruling was not applied"

    @rule(pick=st.integers(0, 99))
    def settle(self, pick):
        job = self._pick(self._live(), pick)
        if job is not None:
            self._finalize(job)

    @rule(pick=st.integers(0, 99))
    def cancel(self, pick):
        job = self._pick([j for j in self._live() if j.status == "open" and not j.replicas], pick)
        if job is not None:
            self.m.jobs.cancel(job.job_id, sender=job.client)
            job.status = "cancelled"

    @rule(who=st.integers(0, 6), share=st.integers(1, 100))
    def withdraw(self, who, share):
        account = self.everyone[who % len(self.everyone)]
        amount = self.m.escrow.balanceOf(account) * share // 100
        if amount:
            self.m.escrow.withdraw(amount, sender=account)

    @rule(
        where=st.sampled_from(["shard", "provider's shard", "treasury's shard", "escrow", "pool"]),
        pick=st.integers(0, 1023),
        wei=st.integers(1, 10**6),
    )
    def donate(self, where, pick, wei):
        """An outsider sends dust anywhere JobEscrow or Staking keeps tokens: any deposit
        shard (opened or not), the unopened shards payments start from (a provider's,
        the treasury's), JobEscrow's own address, a pool's custody account. Nothing may
        revert for it, and nobody's books may change."""
        m, provider = self.m, self.providers[pick % len(self.providers)]
        shard = {
            "shard": pick,
            "provider's shard": deposit_shard(provider.address),
            "treasury's shard": deposit_shard(m.escrow.treasury()),
        }.get(where)
        if shard is not None:
            to = custody_address(m.escrow.address, shard)
        elif where == "escrow":
            to = m.escrow.address
        else:
            to = m.token.custody_account(m.staking, provider)
        self._donate(to, wei)
        if where == "pool":
            self.donated_to_pool[provider.address] = (
                self.donated_to_pool.get(provider.address, 0) + wei
            )
        else:
            self.donated += wei
        event(f"donated to {where}")

    @rule(provider=st.integers(0, 2), behaviour=st.sampled_from([HONEST, HONEST, FAULTY, SILENT]))
    def change_behaviour(self, provider, behaviour):
        self.behaviour[self.providers[provider].address] = behaviour

    @rule(seconds=st.sampled_from([60, 600, HOUR, DAY]))
    def advance_time(self, seconds):
        self.chain.pending_timestamp += seconds

    # ------------------------------------------------------------ invariants

    @invariant()
    def escrow_holds_what_it_owes(self):
        locked = sum(j.locked for j in self.jobs)  # from the model, not the chain
        owed = escrow_owes(self.m, self.everyone, locked=locked, fees=self.fees)
        assert escrow_holdings(self.m) == owed + self.donated

    @invariant()
    def disputes_hold_their_bonds(self):
        bonds = sum(j.bond for j in self.jobs)  # from the model
        disputes = self.m.job_disputes
        *owed, held = read_all(
            *((disputes.balanceOf, a) for a in self.everyone), (self.m.token.balanceOf, disputes)
        )
        assert held == bonds + sum(owed)

    @invariant()
    def staking_holds_its_pools_and_locks_fit(self):
        token, staking, providers = self.m.token, self.m.staking, self.providers
        n = len(providers)
        answers = read_all(
            *((staking.pool, p) for p in providers),
            *((token.balanceOf, c) for c in custody_accounts(token, providers)),
            *((staking.uncollected_income, p) for p in providers),
            (token.balanceOf, staking),
        )
        pools, held, uncollected = answers[:n], answers[n : 2 * n], answers[2 * n : 3 * n]
        for p, pool, holdings, income in zip(providers, pools, held, uncollected, strict=True):
            assert pool.locked <= pool.own_stake
            # Each pool's custody account holds its buckets, less the delegators' income
            # JobEscrow still holds (part of delegated_tokens), plus what was donated to
            # it; Staking itself holds none.
            donated = self.donated_to_pool.get(p.address, 0)
            assert holdings == bucketed(pool, income) + donated
        # Staking's own address holds only what an outsider sent it (the system machine).
        assert answers[-1] == self.donated_to_staking
