"""Attacks on the economics of the slashing order, the warm-up, k > 1 escalation and the
record floor, played as an attacker would play them on the local node with the default
parameters. Each test asserts the secure outcome. Three of them first showed weaknesses
(a risk-free squat of a delegation cap, a scheduled cut outliving an immediate one, an
honest replica left unpaid beside a no-show); the contracts were fixed and the tests
assert the fixes.
"""

from __future__ import annotations

import ape
import pytest
from ape.exceptions import ContractLogicError

from computeshare.constants import JobStatus
from computeshare.sandbox import STATUS_OK, RunResult
from computeshare.specs import job_requirements
from tests.helpers import (
    BAD,
    COLLATERAL,
    DAY,
    GOOD,
    HOUR,
    PRICE,
    REQS,
    SALT,
    SLASHER,
    SPEC,
    TOKEN,
    gpu_spec,
    isolated,
    warm_delegation,
)

MAX_UINT = 2**256 - 1
NOBODYS = b"\xcc" * 32  # a result no replica revealed

# Parameter keys (JobEscrow: `job_layout`; Staking: its constants).
FEE_BPS, REVEAL_WINDOW, CHALLENGE_WINDOW, RULING_PERIOD = 0, 1, 2, 3
KEEPER_BOUNTY_BPS, RECORD_MIN_FEE = 5, 8
MAX_DELEGATION_RATIO, MIN_DELEGATION, BENEFICIARY_SHARE_BPS, BURN_SLASHED, WARMUP = 1, 2, 4, 5, 7
COMPLETED, FAILED, SLASHED = 0, 1, 2  # a replica's settlement outcome


def _fund(m, deployer, account, amount):
    """Sends `account` tokens and approves Staking for them."""
    m.token.transfer(account, amount, sender=deployer)
    m.token.approve(m.staking, MAX_UINT, sender=account)


def holdings(m, *accounts) -> int:
    """Tokens the accounts own in wallet, escrow balance and own stake (bonded, thawing)."""
    total = 0
    for a in accounts:
        pool = m.staking.pool(a)
        total += m.token.balanceOf(a) + m.escrow.balanceOf(a) + pool.own_stake + pool.own_thawing
    return total


def delegation_value(m, provider, delegator) -> int:
    d = m.staking.delegation(provider, delegator)
    return d.value + d.thawing + d.warming


def outcomes(m, receipt) -> dict:
    return {
        e.event_arguments["provider"]: e.outcome
        for e in receipt.decode_logs(m.escrow.ReplicaSettled)
    }


def fee(price=PRICE, bps=250) -> int:
    return price * bps // 10_000


def _replicated(m, post_job, run_replica, providers, results, *, no_show=(), **job):
    """A k = len(providers) job: every provider accepts and commits its result; all but
    `no_show` reveal (reveals open once everyone committed)."""
    job_id = post_job(k=len(providers), **job)
    for provider, result in zip(providers, results, strict=True):
        run_replica(job_id, provider, result, reveal=False)
    for slot, (provider, result) in enumerate(zip(providers, results, strict=True)):
        if provider not in no_show:
            m.jobs.reveal(job_id, slot, result, SALT, sender=provider)
    return job_id


def _past_phase(m, chain, job):
    """Moves time to the end of the job's current phase (reveal window, ruling period)."""
    chain.pending_timestamp = max(m.jobs.view(job).phase_end, chain.pending_timestamp)


# ------------------------------------------------------------------ slashing order


def test_job_slashes_stop_at_the_providers_own_stake(
    market, chain, deployer, providers, accounts, client, keeper
):
    """A provider that is also a delegator of its own pool locks its whole own stake in
    collateral (three jobs: 4,000 + 4,000 + 2,000 of 10,000) and no-shows all three. It
    cannot thaw any of it first, its self-delegation cannot back a fourth job, and every
    slash comes from its own stake: its outside backer and its own delegation lose 0."""
    m, p = market, providers[0]
    backer = accounts[16]
    _fund(m, deployer, backer, 40_000 * TOKEN)
    warm_delegation(m.staking, chain, p, 40_000 * TOKEN, backer)
    warm_delegation(m.staking, chain, p, 40_000 * TOKEN, p)
    own = m.staking.pool(p).own_stake
    collaterals = (4_000 * TOKEN, 4_000 * TOKEN, 2_000 * TOKEN)
    assert sum(collaterals) == own
    deadline = chain.pending_timestamp + HOUR
    jobs = []
    for c in collaterals:
        terms = (SPEC, REQS, PRICE, 1, deadline, c)
        jobs.append(m.escrow.post(*terms, sender=client).return_value)
        m.jobs.accept(jobs[-1], 0, sender=p)
    assert m.staking.free_stake(p) == 0
    with ape.reverts("staking: amount exceeds free stake"):
        m.staking.request_thaw(1, sender=p)
    # 80,000 of delegated stake (40,000 its own) back nothing: collateral is own stake.
    extra = m.escrow.post(SPEC, REQS, PRICE, 1, deadline, COLLATERAL, sender=client)
    with ape.reverts("staking: insufficient free stake"):
        m.jobs.accept(extra.return_value, 0, sender=p)

    values = [delegation_value(m, p, d) for d in (backer, p)]
    chain.pending_timestamp = deadline + m.escrow.parameter(REVEAL_WINDOW)
    share = m.staking.parameter(BENEFICIARY_SHARE_BPS)
    for job, c in zip(jobs, collaterals, strict=True):
        [slash] = m.jobs.expire(job, sender=keeper).decode_logs(m.staking.Slashed)
        assert (slash.from_own_stake, slash.from_delegated, slash.from_delegated_thawing) == (
            c,
            0,
            0,
        )
        assert slash.reward == min(c * share // 10_000, PRICE)
    assert m.staking.pool(p).own_stake == 0
    assert [delegation_value(m, p, d) for d in (backer, p)] == values


def test_a_slash_goes_own_then_own_thawing_then_delegators_warming_ones_too(
    market, chain, deployer, providers, accounts, keeper
):
    """Staking's order under a slash larger than the provider's own stake (a SLASHER other
    than JobEscrow; JobEscrow never slashes beyond the collateral locked against own
    stake). An undelegating delegator bears the same as the one that stayed, and so does
    a warming one (its tokens are at risk from the moment they are delegated, so a
    warmed-up position is no free option on the pool's income); the beneficiary's share
    comes only from the provider's own loss."""
    m, p = market, providers[0]
    stayer, leaver, warmer, slasher = accounts[16], accounts[17], accounts[18], accounts[19]
    for d in (stayer, leaver, warmer):
        _fund(m, deployer, d, 30_000 * TOKEN)
    warm_delegation(m.staking, chain, p, 30_000 * TOKEN, stayer)
    warm_delegation(m.staking, chain, p, 30_000 * TOKEN, leaver)
    m.staking.undelegate(p, m.staking.delegation(p, leaver).shares, sender=leaver)
    m.staking.delegate_to(p, 30_000 * TOKEN, 0, sender=warmer)
    m.staking.request_thaw(2_000 * TOKEN, sender=p)
    m.staking.set_roles(slasher, SLASHER, sender=deployer)
    treasury = m.staking.treasury()
    treasury_before = m.token.balanceOf(treasury)

    receipt = m.staking.slash(p, 40_000 * TOKEN, 0, keeper, MAX_UINT, sender=slasher)
    [s] = receipt.decode_logs(m.staking.Slashed)
    assert (s.from_own_stake, s.from_own_thawing) == (8_000 * TOKEN, 2_000 * TOKEN)
    assert s.from_delegated + s.from_delegated_thawing + s.from_warming == 30_000 * TOKEN
    for part in (s.from_delegated, s.from_delegated_thawing, s.from_warming):
        assert abs(part - 10_000 * TOKEN) <= 1
    # 25% of the provider's own 10,000, nothing of the delegators' 30,000.
    assert s.reward == 2_500 * TOKEN == m.token.balanceOf(keeper)
    assert m.token.balanceOf(treasury) - treasury_before == 37_500 * TOKEN
    for d in (stayer, leaver, warmer):
        assert abs(delegation_value(m, p, d) - 20_000 * TOKEN) <= 2
    # Cancelling the warm-up now saves nothing: the loss stays, and the tokens thaw.
    assert abs(m.staking.cancel_warmup(p, sender=warmer).return_value - 20_000 * TOKEN) <= 2
    assert m.token.balanceOf(warmer) == 0


# ------------------------------------------------------------------ warm-up


def test_nobody_is_forced_into_a_pool_while_it_may_still_leave(
    market, chain, deployer, providers, accounts, client, keeper
):
    """Activating someone else's position: nobody can before the warm-up ends, its owner
    may send it thawing before or after; a third party's activation at the worst moment
    (just before a settlement) costs the delegator nothing; and a top-up after the
    warm-up activates the warmed tokens instead of restarting their clock, so a position
    cannot stay warmed-up but out of the pool by topping up."""
    m, p = market, providers[0]
    d, stranger = accounts[16], accounts[17]
    _fund(m, deployer, d, 20_000 * TOKEN)
    m.staking.delegate_to(p, 5_000 * TOKEN, 0, sender=d)
    warm_until = m.staking.delegation(p, d).warm_until

    with isolated(chain):
        chain.pending_timestamp = warm_until - 1
        with ape.reverts("staking: still warming up"):
            m.staking.activate(p, d, sender=stranger)
        chain.pending_timestamp = warm_until - 1
        m.staking.cancel_warmup(p, sender=d)
        assert abs(m.staking.delegation(p, d).thawing - 5_000 * TOKEN) <= 1

    with isolated(chain):
        # Not yet in the pool after its warm-up: still the delegator's to take back.
        chain.pending_timestamp = warm_until
        m.staking.cancel_warmup(p, sender=d)
        assert abs(m.staking.delegation(p, d).thawing - 5_000 * TOKEN) <= 1
    with isolated(chain):
        # A job is about to settle; a stranger activates the position first.
        deadline = chain.pending_timestamp + DAY
        job = m.escrow.post(SPEC, REQS, PRICE, 1, deadline, COLLATERAL, sender=client)
        job = job.return_value
        m.jobs.accept(job, 0, sender=p)
        m.jobs.submit(job, RunResult(STATUS_OK, 1, b"x"), sender=p)
        chain.pending_timestamp = max(warm_until, m.jobs.view(job).phase_end)
        m.staking.activate(p, d, sender=stranger)
        assert abs(delegation_value(m, p, d) - 5_000 * TOKEN) <= 2
        m.jobs.finalize(job, sender=keeper)
        assert delegation_value(m, p, d) >= 5_000 * TOKEN - 2

    chain.pending_timestamp = warm_until + 5 * DAY
    m.staking.delegate_to(p, 1_000 * TOKEN, 0, sender=d)
    position = m.staking.delegation(p, d)
    assert position.warming == 1_000 * TOKEN
    assert abs(position.value - 5_000 * TOKEN) <= 2


def test_warming_positions_cannot_squat_the_delegation_cap(
    market, chain, deployer, providers, accounts
):
    """Cap griefing: a squatter delegates the provider's whole cap (10 x 10,000 own
    stake, less 500) and tops it up by MIN_DELEGATION (100) every 10 days, restarting the
    warm-up each time; it never enters the pool, earns nothing, risks nothing. After
    three warm-ups an honest delegator still cannot join. Secure: a position cannot
    block the cap longer than one warm-up without entering the pool (e.g. check the cap
    at activation, not at delegation)."""
    m, p = market, providers[0]
    squatter, honest = accounts[16], accounts[17]
    cap = m.staking.pool(p).own_stake * m.staking.parameter(MAX_DELEGATION_RATIO)
    _fund(m, deployer, squatter, cap)
    _fund(m, deployer, honest, 1_000 * TOKEN)
    warmup = m.staking.parameter(WARMUP)
    top_up = m.staking.parameter(MIN_DELEGATION)
    start = chain.pending_timestamp
    m.staking.delegate_to(p, cap - 500 * TOKEN, 0, sender=squatter)
    while chain.pending_timestamp < start + 3 * warmup:
        chain.pending_timestamp += warmup - DAY
        m.staking.delegate_to(p, top_up, 0, sender=squatter)
    # Still cancellable in full, at any moment the squatter likes.
    assert m.staking.delegation(p, squatter).warm_until > chain.pending_timestamp
    try:
        m.staking.delegate_to(p, 1_000 * TOKEN, 0, sender=honest)
        joined = True
    except ContractLogicError as error:
        if "staking: delegation over cap" not in str(error):
            raise
        joined = False
    assert joined, "an honest delegator is still locked out by a risk-free warming squat"


def test_a_provider_shrinking_its_cap_cannot_trap_warmed_up_delegators(
    market, chain, deployer, providers, accounts
):
    """A provider thaws most of its own stake while a delegation warms up, so the pool's cap
    no longer has room for it. Nobody can force the tokens in (activation says why), and
    their owner takes them back in full through a thaw (they were at risk, as any
    delegated tokens): the provider gains nothing and the delegator loses nothing."""
    m, p = market, providers[0]
    d = accounts[16]
    _fund(m, deployer, d, 50_000 * TOKEN)
    m.staking.delegate_to(p, 50_000 * TOKEN, 0, sender=d)
    m.staking.request_thaw(9_000 * TOKEN, sender=p)  # the cap falls from 100,000 to 10,000
    chain.pending_timestamp += m.staking.parameter(WARMUP)
    with ape.reverts("staking: delegation over cap"):
        m.staking.activate(p, d, sender=p)
    assert m.staking.delegation(p, d).shares == 0
    m.staking.cancel_warmup(p, sender=d)
    assert m.staking.pool(p).warming_tokens == 0
    chain.pending_timestamp += m.staking.thawing_period()
    m.staking.withdraw_delegation(p, sender=d)
    assert abs(m.token.balanceOf(d) - 50_000 * TOKEN) <= 1


def test_an_immediate_cut_change_replaces_a_scheduled_one(
    market, chain, deployer, providers, accounts
):
    """Cut griefing through a warm-up: a griefer warms up 100 tokens at a provider with
    a 20% cut, the provider lowers the cut to 0 (scheduled 7 days out because someone is
    warming), the griefer cancels (its tokens thaw), and the provider, now alone, sets 20%
    again, which applies at once. Secure: the 0% schedule is gone, a delegator asking
    for 20% can join, and the cut is still 20% a week later."""
    m, p = market, providers[0]
    griefer, newcomer = accounts[16], accounts[17]
    for a in (griefer, newcomer):
        _fund(m, deployer, a, 1_000 * TOKEN)
    m.staking.set_delegator_cut(2_000, sender=p)
    m.staking.delegate_to(p, m.staking.parameter(MIN_DELEGATION), 0, sender=griefer)
    m.staking.set_delegator_cut(0, sender=p)
    m.staking.cancel_warmup(p, sender=griefer)
    m.staking.set_delegator_cut(2_000, sender=p)
    assert m.staking.delegator_cut(p) == 2_000
    assert m.staking.pool(p).pending_cut_at == 0, "the abandoned 0% cut is still scheduled"
    m.staking.delegate_to(p, 1_000 * TOKEN, 2_000, sender=newcomer)
    chain.pending_timestamp += 8 * DAY
    chain.mine()
    assert m.staking.delegator_cut(p) == 2_000


# ------------------------------------------------------------------ k > 1 escalation


def test_an_escalated_job_settles_once_and_only_after_the_ruling_period(
    market, chain, post_job, run_replica, providers, arbiter, client, keeper
):
    """After dissent escalates, neither the client nor a keeper can expire or finalize it
    early, nobody but the arbiter rules, the arbiter cannot rule late (the last second
    of the ruling period belongs to finalize), and it settles exactly once, releasing
    both replicas' collateral."""
    m = market
    honest, dissenter = providers[0], providers[1]
    job = _replicated(m, post_job, run_replica, (honest, dissenter), (GOOD, BAD))
    [escalated] = m.jobs.finalize(job, sender=keeper).decode_logs(m.escrow.Disputed)
    assert m.jobs.view(job).status == JobStatus.DISPUTED
    with ape.reverts("job_escrow: job not open"):
        m.jobs.expire(job, sender=client)
    with ape.reverts("job_escrow: not ready to settle"):
        m.jobs.finalize(job, sender=client)
    with ape.reverts("job_escrow: job not open"):
        m.jobs.cancel(job, sender=client)
    with ape.reverts("job_disputes: caller is not an arbiter"):
        m.jobs.rule(job, result=GOOD, sender=client)
    chain.pending_timestamp = escalated.ruling_end - 1
    with ape.reverts("job_escrow: not ready to settle"):
        m.jobs.finalize(job, sender=keeper)
    chain.pending_timestamp = escalated.ruling_end
    with ape.reverts("job_escrow: ruling period over"):
        m.jobs.rule(job, result=GOOD, sender=arbiter)

    before = m.escrow.balanceOf(client)
    receipt = m.jobs.finalize(job, sender=keeper)
    assert outcomes(m, receipt) == {honest.address: FAILED, dissenter.address: FAILED}
    assert not receipt.decode_logs(m.staking.Slashed)
    assert m.escrow.balanceOf(client) - before == 2 * PRICE
    for p in (honest, dissenter):
        assert m.staking.free_stake(p) == m.staking.pool(p).own_stake
    with ape.reverts("job_escrow: job not open"):
        m.jobs.finalize(job, sender=keeper)
    with ape.reverts("job_escrow: job not disputed"):
        m.jobs.rule(job, result=GOOD, sender=arbiter)


def test_the_arbiter_cannot_rule_on_a_replicated_job_without_dissent(
    market, chain, post_job, run_replica, providers, arbiter, keeper
):
    """rule() on a k > 1 job that did not escalate: refused while the revealed replicas
    agree, whether the job could already settle (all revealed) or waits for a late
    replica; a unanimous strict majority then settles without the arbiter, and the late
    replica is slashed."""
    m = market
    job = _replicated(m, post_job, run_replica, providers, (GOOD, GOOD, BAD), no_show=providers[2:])
    with ape.reverts("job_escrow: not ready to settle"):
        m.jobs.finalize(job, sender=keeper)
    with ape.reverts("job_escrow: job not disputed"):
        m.jobs.rule(job, result=BAD, sender=arbiter)
    _past_phase(m, chain, job)
    with ape.reverts("job_escrow: job not disputed"):
        m.jobs.rule(job, result=BAD, sender=arbiter)
    receipt = m.jobs.expire(job, sender=keeper)
    assert outcomes(m, receipt) == {
        providers[0].address: COMPLETED,
        providers[1].address: COMPLETED,
        providers[2].address: SLASHED,
    }

    unanimous = _replicated(m, post_job, run_replica, providers, (GOOD, GOOD, GOOD))
    with ape.reverts("job_escrow: job not disputed"):
        m.jobs.rule(unanimous, result=BAD, sender=arbiter)
    assert set(outcomes(m, m.jobs.finalize(unanimous, sender=keeper)).values()) == {COMPLETED}


@pytest.mark.parametrize("ruling", ["right", "nobodys", "none"])
def test_an_escalated_job_with_a_no_show(
    market, chain, post_job, run_replica, providers, arbiter, client, keeper, ruling
):
    """k = 3: one replica reveals GOOD, one BAD, one commits and never reveals. The
    reveal window closes, a keeper escalates. The no-show is slashed whatever happens;
    the arbiter's ruling (GOOD, or a result nobody revealed) pays those who revealed it
    and slashes the others; unruled, both revealed replicas are released. The client and
    the settling caller together receive at most the price per slashed replica."""
    m = market
    honest, dissenter, absent = providers
    job = _replicated(m, post_job, run_replica, providers, (GOOD, BAD, GOOD), no_show=(absent,))
    _past_phase(m, chain, job)
    m.jobs.expire(job, sender=keeper)
    assert m.jobs.view(job).status == JobStatus.DISPUTED
    before = m.escrow.balanceOf(client)
    if ruling == "none":
        _past_phase(m, chain, job)
        receipt = m.jobs.finalize(job, sender=keeper)
        expected = {honest.address: FAILED, dissenter.address: FAILED, absent.address: SLASHED}
    else:
        digest = GOOD if ruling == "right" else NOBODYS
        receipt = m.jobs.rule(job, result=digest, sender=arbiter)
        first = COMPLETED if ruling == "right" else SLASHED
        expected = {honest.address: first, dissenter.address: SLASHED, absent.address: SLASHED}
    assert outcomes(m, receipt) == expected
    slashes = receipt.decode_logs(m.staking.Slashed)
    assert len(slashes) == list(expected.values()).count(SLASHED)
    for s in slashes:
        assert (s.from_own_stake, s.from_delegated) == (COLLATERAL, 0)
    [settled] = receipt.decode_logs(m.escrow.JobSettled)
    reward = sum(s.reward for s in slashes)
    assert settled.compensation + settled.bounty == reward <= len(slashes) * PRICE
    unpaid = 3 - list(expected.values()).count(COMPLETED)
    assert m.escrow.balanceOf(client) - before == unpaid * PRICE + settled.compensation


@pytest.mark.parametrize("ruled", [False, True])
def test_a_client_with_a_sybil_dissenter_gains_nothing(
    market, chain, post_job, run_replica, providers, arbiter, client, ruled
):
    """The client also runs the second replica of its k = 2 job and reveals a wrong
    result against the honest one, settling everything itself. Arbiter silent: nobody is
    slashed, the coalition ends where it began and the honest replica keeps its stake.
    Arbiter rules: the coalition pays the price and loses the Sybil's collateral, less at
    most a quarter of it back as compensation."""
    m = market
    honest, sybil = providers[0], providers[1]
    before = holdings(m, client, sybil)
    honest_before = holdings(m, honest)
    job = _replicated(m, post_job, run_replica, (honest, sybil), (GOOD, BAD))
    m.jobs.finalize(job, sender=client)
    if ruled:
        m.jobs.rule(job, result=GOOD, sender=arbiter)
        loss = before - holdings(m, client, sybil)
        assert loss >= PRICE + COLLATERAL - COLLATERAL // 4
        assert holdings(m, honest) - honest_before == PRICE - fee()
    else:
        _past_phase(m, chain, job)
        receipt = m.jobs.finalize(job, sender=client)
        assert not receipt.decode_logs(m.staking.Slashed)
        assert holdings(m, client, sybil) == before
        assert holdings(m, honest) == honest_before


def test_a_no_show_sybil_cannot_take_an_honest_replicas_work_below_its_price(
    market, chain, post_job, run_replica, providers, arbiter, client
):
    """k = 2 at the minimum collateral (half the price): the client's own Sybil takes the
    second slot and never commits; the honest replica reveals GOOD at the deadline (its
    result is public from then on) and the client expires the job itself. Secure: the
    honest replica is paid (at once, or on the arbiter's ruling if the job escalates), so
    the coalition pays at least the price for the result."""
    m = market
    honest, sybil = providers[0], providers[1]
    collateral = PRICE // 2
    before = holdings(m, client, sybil)
    job = post_job(k=2, collateral=collateral)
    slot = run_replica(job, honest, GOOD, reveal=False)
    m.jobs.accept(job, 0, sender=sybil)
    chain.pending_timestamp = m.jobs.view(job).deadline
    m.jobs.reveal(job, slot, GOOD, SALT, sender=honest)
    _past_phase(m, chain, job)
    honest_before = m.escrow.balanceOf(honest)
    receipt = m.jobs.expire(job, sender=client)
    if m.jobs.view(job).status == JobStatus.DISPUTED:
        receipt = m.jobs.rule(job, result=GOOD, sender=arbiter)
    assert outcomes(m, receipt)[sybil.address] == SLASHED
    cost = before - holdings(m, client, sybil)
    assert m.escrow.balanceOf(honest) - honest_before == PRICE - fee(), (
        f"honest replica unpaid; the coalition paid {cost / TOKEN} tokens for its result"
    )
    assert cost >= PRICE


# ------------------------------------------------------------------ bounded compensation


@pytest.mark.parametrize("burn", [0, 1])
def test_compensation_is_capped_by_the_price_when_collateral_dwarfs_it(
    market, chain, deployer, providers, client, keeper, burn
):
    """A job with 1,000 of collateral for a price of 10 is never run: a quarter of the
    collateral (250) would be the beneficiary's share, but the price caps it at 10
    (keeper 1, client 9); the other 990 go to the treasury, or are burned with
    BURN_SLASHED, which leaves the client's compensation unchanged."""
    m, p = market, providers[0]
    m.staking.set_parameter(BURN_SLASHED, burn, sender=deployer)
    collateral = 1_000 * TOKEN
    deadline = chain.pending_timestamp + HOUR
    job = m.escrow.post(SPEC, REQS, PRICE, 1, deadline, collateral, sender=client).return_value
    m.jobs.accept(job, 0, sender=p)
    chain.pending_timestamp = deadline + m.escrow.parameter(REVEAL_WINDOW)
    treasury = m.staking.treasury()
    treasury_before, supply_before = m.token.balanceOf(treasury), m.token.totalSupply()
    client_before = m.escrow.balanceOf(client)

    receipt = m.jobs.expire(job, sender=keeper)
    [s] = receipt.decode_logs(m.staking.Slashed)
    [settled] = receipt.decode_logs(m.escrow.JobSettled)
    bounty = PRICE * m.escrow.parameter(KEEPER_BOUNTY_BPS) // 10_000
    assert (s.from_own_stake, s.reward, s.burned) == (collateral, PRICE, burn == 1)
    assert (settled.bounty, settled.compensation) == (bounty, PRICE - bounty)
    assert m.escrow.balanceOf(client) - client_before == PRICE + PRICE - bounty
    assert m.escrow.balanceOf(keeper) == bounty
    burned = supply_before - m.token.totalSupply()
    to_treasury = m.token.balanceOf(treasury) - treasury_before
    assert (burned, to_treasury) == ((collateral - PRICE, 0) if burn else (0, collateral - PRICE))


# ------------------------------------------------------------------ record floor


def test_the_record_counts_the_fee_a_job_actually_paid(
    market, chain, deployer, providers, fund_client
):
    """Record padding at the floor's edge and across a fee change: a job counts when the
    fee fixed in its terms reaches RECORD_MIN_FEE (0.001 token: a price of 0.04 at 2.5%),
    not one wei below; a job posted at 2.5% still pays and counts after the fee drops
    to 0; a job posted at 0% pays nothing and counts nothing."""
    m, p = market, providers[0]
    fund_client(p, tokens=1_000 * TOKEN, deposit=100 * TOKEN)
    m.registry.register(gpu_spec(price_per_second=1), "ipfs://pad", sender=p)
    device = m.registry.device_id_of(p, 1)
    one_second = job_requirements(compute_seconds=1)
    floor = m.escrow.parameter(RECORD_MIN_FEE) * 10**12
    edge = floor * 10_000 // m.escrow.parameter(FEE_BPS)  # 0.04 token

    def post(price):
        deadline = chain.pending_timestamp + HOUR
        job = m.escrow.post(SPEC, one_second, price, 1, deadline, price, sender=p).return_value
        m.jobs.accept(job, 1, sender=p)
        m.jobs.submit(job, RunResult(STATUS_OK, 1, b"x"), sender=p)
        return job

    def settle(job):
        chain.pending_timestamp += m.escrow.parameter(CHALLENGE_WINDOW)
        [settled] = m.jobs.finalize(job, sender=p).decode_logs(m.escrow.JobSettled)
        return settled.fees, m.escrow_view.device_record(device).completed

    assert settle(post(edge - 1)) == (floor - 1, 0)
    assert settle(post(edge)) == (floor, 1)
    posted_at_fee = post(PRICE)
    m.escrow.set_parameter(FEE_BPS, 0, sender=deployer)
    assert settle(posted_at_fee) == (fee(), 2)
    assert settle(post(PRICE)) == (0, 2)
