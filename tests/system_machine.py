"""The whole-system state machine (a helper module, not a test module): the system as
deployed, under random use by every role, with a coalition of accounts under one owner
that fails its own jobs, disputes, expires them and moves stake. Run by
tests/test_system_properties.py on a fresh deployment and by tests/fork on a fork of a
deployed network."""

from __future__ import annotations

import ape
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from computeshare.governance import (
    ACTIVE,
    EXECUTED,
    EXPIRED,
    PENDING,
    QUEUED,
    SUCCEEDED,
    Proposal,
    advance,
    call,
    method,
    pass_proposal,
    reserved,
)
from computeshare.jobs import devices_with_fees
from computeshare.params import PARAMETERS, parameter
from computeshare.signing import sign_offer, spec_hash
from computeshare.specs import device_spec, job_requirements
from tests.ape_speed import read_all
from tests.escrow_machine import SPEC, EscrowMachine, JobModel, Replica
from tests.helpers import DAY, HOUR, TOKEN, pool_holdings

# Parameters the DAO rule changes: the ones that change money flows and windows without
# making the providers' devices ineligible or the clients' posts invalid.
GOVERNED = [
    parameter("JobEscrow", "PROTOCOL_FEE_BPS"),
    parameter("JobEscrow", "REVEAL_WINDOW"),
    parameter("JobEscrow", "CHALLENGE_WINDOW"),
    parameter("JobEscrow", "RULING_PERIOD"),
    parameter("JobEscrow", "DISPUTE_BOND_BPS"),
    parameter("JobEscrow", "KEEPER_BOUNTY_BPS"),
    parameter("Staking", "THAWING_PERIOD"),
    parameter("Staking", "BENEFICIARY_SHARE_BPS"),
    parameter("Staking", "BURN_SLASHED"),
]
EVERY_PARAMETER = [p for table in PARAMETERS.values() for p in table.values()]


class SystemMachine(EscrowMachine):
    def __init__(self, m, actors, chain):
        super().__init__(
            m, actors["clients"], actors["providers"], actors["arbiter"], actors["keeper"], chain
        )
        self.delegators, self.voters = actors["delegators"], actors["voters"]
        self.guardian, self.stranger = actors["guardian"], actors["stranger"]
        # One owner's accounts: a provider (also one of the market's providers), a client,
        # a delegator and a keeper, free to fail, dispute and expire their own jobs.
        self.coalition = actors["coalition"]
        self.coalition_jobs: set[bytes] = set()
        self.everyone += [self.coalition["client"], self.coalition["keeper"]]
        self.holders = [
            *{
                a.address
                for a in [*self.everyone, *self.delegators, *self.voters, *self.coalition.values()]
            },
            self.guardian.address,
            self.stranger.address,
            actors["deployer"].address,
            *(c.address for c in (m.token, m.staking, m.registry, m.escrow, m.offers)),
            m.job_disputes.address,  # dispute bonds
            *(c.address for c in (m.timelock, m.governor)),
            # Each provider's pool sits in its custody account in the token.
            *{
                m.token.custody_account(m.staking, p)
                for p in [*self.providers, self.coalition["provider"]]
            },
        ]
        # JobEscrow's deposits sit in the custody accounts of its depositors' shards (a
        # payment may come out of any shard, but only a deposit puts tokens into one).
        shards = {m.escrow_view.deposit_shard(a)[1] for a in self.holders}
        self.holders += sorted(shards - set(self.holders))
        self.contracts = {
            "JobEscrow": m.escrow,
            "Staking": m.staking,
            "DeviceRegistry": m.registry,
            "Governor": m.governor,
        }
        self.expected = {(p.contract, p.name): self._read(p) for p in EVERY_PARAMETER}
        self.supply = m.token.totalSupply()
        self.burning_since_check = self.expected[("Staking", "BURN_SLASHED")] == 1
        self.paused_until = 0
        self.offer_nonce = 0
        # Proposal descriptions carry a number: the same actions and description are the
        # same proposal id, which the Governor takes once.
        self.proposal_nonce = 0

    # ------------------------------------------------------------ helpers

    def _read(self, p) -> int:
        return self.contracts[p.contract].parameter(p.key)

    def _paused(self) -> bool | None:
        """True or False when the next block is clearly inside or outside the pause."""
        now = self._now()
        if now + 5 < self.paused_until:
            return True
        if now > self.paused_until + 5:
            return False
        return None

    def _description(self, what: str) -> str:
        self.proposal_nonce += 1
        return f"{what} (system machine #{self.proposal_nonce})"

    def _free_proposer(self):
        g = self.m.governor
        for voter in self.voters:
            latest = g.latestProposalId(voter)
            if latest == 0 or g.state(latest) not in (PENDING, ACTIVE, SUCCEEDED, QUEUED):
                return voter
        return None

    def _ready_to_match(self, client, provider, price, collateral) -> bool:
        """Whether `provider` can take a k = 1 job of `client` now (not paused, below its
        device's capacity, enough free stake); tops up the client's balance if so."""
        if self._paused() is not False or self._running(provider) >= 4:
            return False
        if self.m.staking.free_stake(provider) < collateral:
            return False
        if self.m.escrow.balanceOf(client) < price:
            self.m.escrow.deposit(price, sender=client)
        return True

    def _has_room(self, provider, amount) -> bool:
        """Whether `amount` fits in `provider`'s pool under the delegation cap."""
        pool = self.m.staking.pool(provider)
        return pool.delegated_tokens + amount <= pool.own_stake * self.m.staking.parameter(1)

    def _donate(self, to: str, wei: int) -> None:
        """A donation's receiver joins the known holders (an unopened shard was not one)."""
        super()._donate(to, wei)
        if to not in self.holders:
            self.holders.append(to)

    def _coalition_holdings(self) -> int:
        """Everything the coalition owns: wallets, escrow and JobDisputes balances, the
        payment and bonds locked in its own live jobs (its client's money until they
        settle: a job of its own that other rules drove to an honest result pays its
        provider out of it), the provider's own stake (bonded and thawing) and the
        delegator's position at the provider."""
        co, token, escrow, staking = self.coalition, self.m.token, self.m.escrow, self.m.staking
        disputes = self.m.job_disputes
        total = sum(
            token.balanceOf(a) + escrow.balanceOf(a) + disputes.balanceOf(a) for a in co.values()
        )
        total += sum(j.locked + j.bond for j in self._live() if j.job_id in self.coalition_jobs)
        pool = staking.pool(co["provider"])
        position = staking.delegation(co["provider"], co["delegator"])
        return (
            total
            + pool.own_stake
            + pool.own_thawing
            + position.value
            + position.thawing
            + position.warming
        )

    def _watching_the_coalition(self, job, settle):
        """Runs `settle` on `job`; when it settles one of the coalition's own jobs, its
        holdings must not have risen."""
        if job.job_id not in self.coalition_jobs:
            return settle()
        before = self._coalition_holdings()
        result = settle()
        if job.status == "settled":
            after = self._coalition_holdings()
            assert after <= before, f"the coalition gained {after - before} from its own job"
            event("coalition job settled without profit")
        return result

    def _finalize(self, job, keeper=None) -> bool:
        parent = super()._finalize
        return self._watching_the_coalition(job, lambda: parent(job, keeper))

    def _rule_on(self, job, for_client) -> None:
        parent = super()._rule_on
        self._watching_the_coalition(job, lambda: parent(job, for_client))

    # ------------------------------------------------------------ the coalition

    @rule(price=st.integers(1, 50), share=st.integers(1, 100))
    def coalition_posts_and_takes_its_own_job(self, price, share):
        """The coalition's client posts a k = 1 job with up to all of its provider's free
        stake as collateral, and its provider accepts it at once."""
        co = self.coalition
        p, c = co["provider"], co["client"]
        amount = price * TOKEN
        collateral = max(amount, self.m.staking.free_stake(p) * share // 100)
        if not self._ready_to_match(c, p, amount, collateral):
            return
        deadline = self._now() + 2 * HOUR
        receipt = self.m.escrow.post(
            SPEC, job_requirements(), amount, 1, deadline, collateral, sender=c
        )
        job = JobModel(receipt.return_value, c, 1, amount, deadline)
        self.jobs.append(job)
        self.coalition_jobs.add(job.job_id)
        self.m.jobs.accept(job.job_id, 0, sender=p)
        job.replicas.append(Replica(p))
        event("coalition job taken by its own provider")

    @rule(pick=st.integers(0, 99))
    def coalition_settles_its_own_job(self, pick):
        """The coalition's keeper finalizes or expires one of its own jobs when it can."""
        job = self._pick([j for j in self._live() if j.job_id in self.coalition_jobs], pick)
        if job is not None:
            self._finalize(job, self.coalition["keeper"])

    @rule(amount=st.integers(100, 5_000), step=st.sampled_from(["delegate", "activate", "leave"]))
    def coalition_moves_stake(self, amount, step):
        """The coalition's delegator joins, activates or leaves its own provider's pool."""
        co, staking = self.coalition, self.m.staking
        p, d = co["provider"], co["delegator"]
        view = staking.delegation(p, d)
        if step == "delegate":
            pool = staking.pool(p)
            room = pool.own_stake * staking.parameter(1) - pool.delegated_tokens
            if amount * TOKEN <= room:
                staking.delegate_to(p, amount * TOKEN, 0, sender=d)
        elif step == "activate" and view.warming and self._now() >= view.warm_until:
            if self._has_room(p, view.warming):
                staking.activate(p, d, sender=co["keeper"])
        elif step == "leave" and view.warming:
            staking.cancel_warmup(p, sender=d)
        elif step == "leave" and view.shares:
            staking.undelegate(p, view.shares, sender=d)

    # ------------------------------------------------------------ the market, paused or not

    @rule(client=st.integers(0, 1), k=st.sampled_from([1, 1, 2, 3]), price=st.integers(1, 50))
    def post(self, client, k, price):
        paused, c = self._paused(), self.clients[client]
        if paused is None:
            return
        if paused:
            with ape.reverts("job_escrow: paused"):
                self.m.escrow.post(
                    SPEC, job_requirements(), TOKEN, k, self._now() + DAY, TOKEN, sender=c
                )
            event("post refused while paused")
            return
        super().post(client, k, price)

    def _accept(self, job, p) -> None:
        if self._paused() is False:
            super()._accept(job, p)

    @rule(client=st.integers(0, 1), provider=st.integers(0, 2), price=st.integers(1, 50))
    def match_offer(self, client, provider, price):
        """A client takes a provider's signed offer: a k = 1 job, accepted at once."""
        c, p = self.clients[client], self.providers[provider]
        amount = price * TOKEN
        if not self._ready_to_match(c, p, amount, amount):
            return
        self.offer_nonce += 1
        offer = {
            "provider": p.address,
            "device_nonce": 0,
            "client": c.address,
            "price": amount,
            "collateral": amount,
            "spec_hash": spec_hash(SPEC),
            "min_duration": HOUR,
            "max_duration": 2 * HOUR,
            "expiry": self._now() + HOUR,
            "nonce": self.offer_nonce,
        }
        signature = sign_offer(
            p.private_key, chain_id=self.chain.chain_id, offer_book=self.m.offers.address,
            offer=offer,
        )  # fmt: skip
        deadline = self._now() + 2 * HOUR
        receipt = self.m.offers.match_offer(SPEC, deadline, offer, signature, sender=c)
        job = JobModel(receipt.return_value, c, 1, amount, deadline, replicas=[Replica(p)])
        self.jobs.append(job)
        event("offer matched")

    # ------------------------------------------------------------ staking

    @rule(who=st.integers(0, 1), provider=st.integers(0, 2), amount=st.integers(100, 5_000))
    def delegate(self, who, provider, amount):
        d, p = self.delegators[who], self.providers[provider]
        pool = self.m.staking.pool(p)
        room = pool.own_stake * self.m.staking.parameter(1) - pool.delegated_tokens
        if amount * TOKEN <= room:
            self.m.staking.delegate_to(p, amount * TOKEN, 0, sender=d)

    @rule(who=st.integers(0, 1), provider=st.integers(0, 2))
    def activate_or_leave_warmup(self, who, provider):
        d, p = self.delegators[who], self.providers[provider]
        view = self.m.staking.delegation(p, d)
        if not view.warming:
            return
        if self._now() >= view.warm_until and self._has_room(p, view.warming):
            self.m.staking.activate(p, d, sender=self.keeper)
        else:
            self.m.staking.cancel_warmup(p, sender=d)

    @rule(who=st.integers(0, 1), provider=st.integers(0, 2), share=st.integers(1, 100))
    def undelegate(self, who, provider, share):
        d, p = self.delegators[who], self.providers[provider]
        shares = self.m.staking.delegation(p, d).shares * share // 100
        if shares:
            self.m.staking.undelegate(p, shares, sender=d)

    @rule(who=st.integers(0, 1), provider=st.integers(0, 2))
    def withdraw_delegation(self, who, provider):
        d, p = self.delegators[who], self.providers[provider]
        view = self.m.staking.delegation(p, d)
        if view.thawing and self._now() > view.unlock_at:
            before = self.m.token.balanceOf(d)
            paid = self.m.staking.withdraw_delegation(p, sender=d).return_value
            assert self.m.token.balanceOf(d) - before == paid

    @rule(provider=st.integers(0, 2), amount=st.integers(100, 3_000))
    def stake_more(self, provider, amount):
        self.m.staking.stake(amount * TOKEN, sender=self.providers[provider])

    @rule(provider=st.integers(0, 2), share=st.integers(1, 50))
    def thaw(self, provider, share):
        p = self.providers[provider]
        pool = self.m.staking.pool(p)
        amount = (pool.own_stake - pool.locked) * share // 100
        minimum = self.m.staking.parameter(3) + 2 * self.m.registry.parameter(0)
        if amount and pool.own_stake - amount >= minimum:  # stays eligible for new jobs
            self.m.staking.request_thaw(amount, sender=p)

    @rule(provider=st.integers(0, 2))
    def withdraw_stake(self, provider):
        p = self.providers[provider]
        pool = self.m.staking.pool(p)
        if pool.own_thawing and self._now() > pool.own_unlock_at:
            self.m.staking.withdraw(sender=p)

    @rule(provider=st.integers(0, 2))
    def cancel_thaw(self, provider):
        p = self.providers[provider]
        if self.m.staking.pool(p).own_thawing:
            self.m.staking.cancel_thaw(sender=p)

    @rule(who=st.integers(0, 1), provider=st.integers(0, 2))
    def cancel_undelegation(self, who, provider):
        d, p = self.delegators[who], self.providers[provider]
        if self.m.staking.delegation(p, d).thawing:
            self.m.staking.cancel_undelegation(p, sender=d)

    @rule(provider=st.integers(0, 2), cut=st.integers(0, 10_000))
    def set_delegator_cut(self, provider, cut):
        self.m.staking.set_delegator_cut(cut, sender=self.providers[provider])

    # ------------------------------------------------------------ keepers, guardian, DAO

    @rule(count=st.integers(0, 3))
    def sweep_fees(self, count):
        """A keeper sweeps the fees of the first `count` devices that earned some (found
        from `ReplicaSettled` events), in one call."""
        treasury = self.m.timelock.address
        before = self.m.token.balanceOf(treasury)
        devices = devices_with_fees(self.m.escrow)[:count]
        swept = self.m.escrow.sweep_fees(devices, sender=self.keeper).return_value
        assert self.m.token.balanceOf(treasury) - before == swept
        assert all(self.m.escrow.fees(d) == 0 for d in devices)
        self.fees -= swept

    # ------------------------------------------------------------ the outsider

    @rule(
        where=st.sampled_from(
            ["token", "staking", "registry", "escrow_view", "offers", "governor", "timelock"]
        ),
        wei=st.integers(1, 10**6),
    )
    def outsider_donates_to_a_contract(self, where, wei):
        """Dust to any contract of the system (the shards, JobEscrow and the pools get theirs
        in `donate`): no contract's logic reads its own balance, so every exit, slash,
        settlement and sweep stays possible (the teardown takes every one) and the books
        hold (every token stays accounted for)."""
        self._donate(getattr(self.m, where).address, wei)
        if where == "staking":
            self.donated_to_staking += wei
        event(f"donated to {where}")

    @rule(provider=st.integers(0, 2))
    def outsider_collects_income_first(self, provider):
        """An outsider front-runs a pool's next payment with the permissionless collection
        of its held income: exactly the held income moves into the pool's custody account,
        and nothing the pool owes changes."""
        p, staking = self.providers[provider], self.m.staking
        held, before = staking.uncollected_income(p), pool_holdings(self.m.token, p)
        pool = staking.pool(p)
        assert staking.collect_income(p, sender=self.stranger).return_value == held
        assert pool_holdings(self.m.token, p) == before + held
        after = staking.pool(p)
        assert (after.own_stake, after.delegated_tokens) == (pool.own_stake, pool.delegated_tokens)
        assert staking.uncollected_income(p) == 0
        event("income collected by an outsider" if held else "nothing to collect")

    @rule(hours=st.integers(1, 48))
    def guardian_pauses(self, hours):
        until = self._now() + hours * 3600
        if self._now() >= self.m.escrow.guardian_expiry():
            with ape.reverts("job_escrow: caller cannot pause"):
                self.m.escrow.pause(until, sender=self.guardian)
            event("guardian appointment over")
            return
        self.m.escrow.pause(until, sender=self.guardian)
        self.paused_until = until

    @rule()
    def guardian_unpauses(self):
        self.m.escrow.unpause(sender=self.guardian)
        self.paused_until = 0

    @rule(pick=st.sampled_from(EVERY_PARAMETER))
    def stranger_cannot_set_parameters(self, pick):
        owner = "governor: caller is not the timelock" if pick.contract == "Governor" else None
        with ape.reverts(owner or "ownable: caller is not the owner"):
            self.contracts[pick.contract].set_parameter(pick.key, pick.low, sender=self.stranger)

    @rule(pick=st.sampled_from(GOVERNED), data=st.data())
    def dao_changes_a_parameter(self, pick, data):
        proposer = self._free_proposer()
        if proposer is None:
            return
        value = data.draw(st.integers(pick.low, pick.high))
        action = call(self.contracts[pick.contract], "set_parameter", pick.key, value)
        g = self.m.governor
        description = self._description(f"set {pick.contract}.{pick.name} to {value}")
        pass_proposal(g, self.chain, proposer, self.voters, [action], description)
        proposal = Proposal([action], reserved(description, proposer))
        assert g.latestProposalId(proposer) == proposal
        assert g.state(proposal) == EXECUTED
        self.expected[(pick.contract, pick.name)] = value
        if pick.name == "BURN_SLASHED" and value == 1:
            self.burning_since_check = True
        event(f"DAO set {pick.contract}.{pick.name}")

    @rule(pick=st.sampled_from(EVERY_PARAMETER))
    def dao_cannot_leave_the_bounds(self, pick):
        proposer = self._free_proposer()
        if proposer is None:
            return
        contract = self.contracts[pick.contract]
        action = call(contract, "set_parameter", pick.key, pick.high + 1)
        g = self.m.governor
        description = self._description(f"set {pick.contract}.{pick.name} out of bounds")
        with ape.reverts("parameters: out of bounds"):
            pass_proposal(g, self.chain, proposer, self.voters, [action], description)
        proposal = Proposal([action], reserved(description, proposer))
        assert g.latestProposalId(proposer) == proposal
        assert g.state(proposal) == QUEUED  # it can never execute; it expires
        # Its window was fixed when it was queued.
        expiry = g.proposalExpiry(proposal)
        assert expiry == g.proposalEta(proposal) + self.m.timelock.grace_period()
        advance(self.chain, expiry - self._now())
        assert g.state(proposal) == EXPIRED

    # ------------------------------------------------------------ invariants

    @invariant()
    def every_token_is_accounted_for(self):
        token = self.m.token
        supply, *balances = read_all(
            (token.totalSupply,), *((token.balanceOf, h) for h in self.holders)
        )
        assert sum(balances) == supply
        assert supply <= self.supply, "tokens were created"
        if supply < self.supply:
            assert self.burning_since_check, "tokens were lost"
            event("slashed stake burned")
        self.supply = supply
        self.burning_since_check = self.expected[("Staking", "BURN_SLASHED")] == 1

    @invariant()
    def parameters_are_what_the_dao_set(self):
        values = read_all(*((self.contracts[p.contract].parameter, p.key) for p in EVERY_PARAMETER))
        for p, value in zip(EVERY_PARAMETER, values, strict=True):
            assert value == self.expected[(p.contract, p.name)]
            assert p.low <= value <= p.high

    # ------------------------------------------------------------ the end

    def teardown(self):
        try:
            self._settle_everything()
            self._everyone_leaves_staking()
        finally:
            self.chain.restore(self.snapshot)

    def _everyone_leaves_staking(self):
        """Every delegator and provider takes out all it has, for real."""
        staking, token = self.m.staking, self.m.token
        owed = {}
        for d in [*self.delegators, self.coalition["delegator"]]:
            for p in self.providers:
                view = staking.delegation(p, d)
                if (
                    view.warming
                    and self._now() >= view.warm_until
                    and self._has_room(p, view.warming)
                ):
                    staking.activate(p, d, sender=d)
                elif view.warming:
                    # A warm-up leaves through thawing, like pool shares.
                    thawing = staking.delegation(p, d).thawing
                    assert staking.cancel_warmup(p, sender=d).return_value == view.warming
                    assert abs(staking.delegation(p, d).thawing - thawing - view.warming) <= 1
                view = staking.delegation(p, d)
                if view.shares:
                    staking.undelegate(p, view.shares, sender=d)
                owed[(d.address, p.address)] = staking.delegation(p, d).thawing
        for p in self.providers:
            pool = staking.pool(p)
            assert pool.locked == 0, "collateral still locked after every job settled"
            if pool.own_stake:
                staking.request_thaw(pool.own_stake, sender=p)
            owed[(p.address, None)] = staking.pool(p).own_thawing
        self.chain.pending_timestamp += staking.parameter(0) + 1
        for (who, p), amount in owed.items():
            if amount == 0:
                continue
            before = token.balanceOf(who)
            if p is None:
                staking.withdraw(sender=who)
            else:
                staking.withdraw_delegation(p, sender=who)
            assert token.balanceOf(who) - before == amount
        self.staking_holds_its_pools_and_locks_fit()
        self.every_token_is_accounted_for()


def system_actors(accounts, deployer) -> dict:
    """The machine's actors among the test accounts (the roles tests/conftest.py gives
    them), and a coalition of one owner: providers[2], which also works for everyone else
    (and starts faulty), with a client, a delegator and a keeper of its own."""
    coalition_keeper = accounts.generate_test_account()
    deployer.transfer(coalition_keeper, 10**19)
    providers = [accounts[4], accounts[10], accounts[11]]
    return {
        "clients": [accounts[12], accounts[17]],
        "providers": providers,
        "delegators": [accounts[5], accounts[16]],
        "voters": [accounts[1], accounts[2], accounts[3]],
        "arbiter": accounts[13],
        "keeper": accounts[14],
        "guardian": accounts[15],
        "stranger": accounts[9],
        "deployer": deployer,
        "coalition": {
            "provider": providers[2],
            "client": accounts[18],
            "delegator": accounts[19],
            "keeper": coalition_keeper,
        },
    }


def fund_actors(m, chain, deployer, actors, *, voter_tokens=(30, 20, 10)) -> None:
    """Funds the machine's actors from `deployer`: providers stake 10,000 and register a
    device, clients deposit 10,000, delegators hold tokens, voters self-delegate
    `voter_tokens` million tokens (quorum needs 40M of a billion; none when the voters
    already hold their votes)."""
    token, staking, escrow = m.token, m.staking, m.escrow
    unlimited = 2**256 - 1
    coalition = actors["coalition"]
    for p in actors["providers"]:
        token.transfer(p, 200_000 * TOKEN, sender=deployer)
        token.approve(staking, unlimited, sender=p)
        staking.stake(10_000 * TOKEN, sender=p)
        m.registry.register(device_spec(), "ipfs://device", sender=p)
    for c in [*actors["clients"], coalition["client"]]:
        token.transfer(c, 200_000 * TOKEN, sender=deployer)
        token.approve(escrow, unlimited, sender=c)
        token.approve(m.job_disputes, unlimited, sender=c)  # dispute bonds
        escrow.deposit(10_000 * TOKEN, sender=c)
    for d in [*actors["delegators"], coalition["delegator"]]:
        token.transfer(d, 200_000 * TOKEN, sender=deployer)
        token.approve(staking, unlimited, sender=d)
        method(token, "delegate")(d, sender=d)
    for voter, millions in zip(actors["voters"], voter_tokens or (), strict=False):
        token.transfer(voter, millions * 1_000_000 * TOKEN, sender=deployer)
        method(token, "delegate")(voter, sender=voter)
    advance(chain, 1)
