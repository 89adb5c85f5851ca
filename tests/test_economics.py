"""Economic soundness: a fault costs the party at fault, and no account (or group of
accounts under one owner) profits from its own misbehaviour.

Each test is one attack, played on the local node with the default parameters, and
asserts the secure outcome. SECURITY.md ("Economics") gives each attack's cost in numbers.
"""

from __future__ import annotations

import ape
import pytest

from computeshare.constants import JobStatus
from computeshare.specs import job_requirements
from tests.helpers import (
    BAD,
    COLLATERAL,
    DAY,
    GOOD,
    HOUR,
    PRICE,
    REQS,
    SPEC,
    TOKEN,
    gpu_spec,
    warm_delegation,
)

MAX_UINT = 2**256 - 1


def own_holdings(m, provider) -> int:
    """Everything `provider` owns in the protocol: wallet, escrow balance, own stake
    (bonded and thawing)."""
    pool = m.staking.pool(provider)
    return (
        m.token.balanceOf(provider)
        + m.escrow.balanceOf(provider)
        + pool.own_stake
        + pool.own_thawing
    )


def wallet_and_escrow(m, *accounts) -> int:
    return sum(m.token.balanceOf(a) + m.escrow.balanceOf(a) for a in accounts)


def delegation_value(m, provider, delegator) -> int:
    d = m.staking.delegation(provider, delegator)
    return d.value + d.thawing + d.warming


@pytest.fixture
def pooled(market, chain, deployer, providers, accounts):
    """providers[0] with 10,000 own stake and a 9x pool: two delegators of 45,000 each,
    warmed up and active, at a 10% delegator cut."""
    m, p = market, providers[0]
    m.staking.set_delegator_cut(1_000, sender=p)
    delegators = accounts[14], accounts[15]
    for d in delegators:
        m.token.transfer(d, 45_000 * TOKEN, sender=deployer)
        m.token.approve(m.staking, MAX_UINT, sender=d)
        warm_delegation(m.staking, chain, p, 45_000 * TOKEN, d)
    return m, p, delegators


def _no_show_job(m, chain, client, provider, *, price, collateral):
    """`client` posts a k = 1 job that `provider` accepts and never runs; returns the job
    once its reveal window has closed."""
    deadline = chain.pending_timestamp + HOUR
    job = m.escrow.post(SPEC, REQS, price, 1, deadline, collateral, sender=client).return_value
    m.jobs.accept(job, 0, sender=provider)
    chain.pending_timestamp = deadline + m.escrow.parameter(1) + 1  # REVEAL_WINDOW
    return job


# ------------------------------------------------------------------ 1, 2: self-slashing


def test_a_provider_never_profits_from_slashing_itself(
    pooled, chain, deployer, accounts, fund_client
):
    """Attack 1: the provider posts, from a second account, a tiny job with collateral equal
    to its whole own stake, never runs it, and expires it itself (collecting the client's
    compensation and the keeper bounty). Before: +1,590 tokens per round, paid by its
    delegators. Now the provider pays the whole slash and gets back at most a bounded
    share of it."""
    m, p, delegators = pooled
    sock = accounts[16]
    fund_client(sock, tokens=1_000 * TOKEN, deposit=100 * TOKEN)
    own = m.staking.pool(p).own_stake
    before = own_holdings(m, p) + wallet_and_escrow(m, sock)
    delegated_before = [delegation_value(m, p, d) for d in delegators]

    job = _no_show_job(m, chain, sock, p, price=1 * TOKEN, collateral=own)
    receipt = m.jobs.expire(job, sender=sock)

    after = own_holdings(m, p) + wallet_and_escrow(m, sock)
    [slash] = receipt.decode_logs(m.staking.Slashed)
    assert slash.from_own_stake == own and slash.from_delegated == 0
    # The coalition lost the collateral and got back at most the price as compensation.
    assert after < before
    assert before - after >= own - 1 * TOKEN
    assert [delegation_value(m, p, d) for d in delegators] == delegated_before


def test_collateral_binds_whatever_the_delegation(pooled, chain, client):
    """Attack 2: with 10x delegation the provider bore 1/11 of a slash. Now it bears all
    of it, down to its own stake."""
    m, p, _ = pooled
    job = _no_show_job(m, chain, client, p, price=PRICE, collateral=COLLATERAL)
    receipt = m.jobs.expire(job, sender=client)
    [slash] = receipt.decode_logs(m.staking.Slashed)
    assert (slash.from_own_stake, slash.from_delegated, slash.from_delegated_thawing) == (
        COLLATERAL,
        0,
        0,
    )


def test_compensation_and_bounty_are_bounded_by_the_providers_own_loss(
    pooled, chain, client, keeper
):
    """The harmed client gets its payment back plus at most the price; the keeper's bounty
    comes out of the same bounded reward; together never more than
    BENEFICIARY_SHARE_BPS of what the provider itself lost."""
    m, p, _ = pooled
    collateral = 5_000 * TOKEN
    job = _no_show_job(m, chain, client, p, price=PRICE, collateral=collateral)
    client_before = m.escrow.balanceOf(client)
    receipt = m.jobs.expire(job, sender=keeper)
    [settled] = receipt.decode_logs(m.escrow.JobSettled)
    [slash] = receipt.decode_logs(m.staking.Slashed)
    assert slash.reward == settled.compensation + settled.bounty
    assert slash.reward <= PRICE
    assert slash.reward <= slash.from_own_stake * m.staking.parameter(4) // 10_000
    assert m.escrow.balanceOf(client) - client_before == PRICE + settled.compensation
    assert m.escrow.balanceOf(keeper) == settled.bounty


# ------------------------------------------------------------------ 3: exposure follows the fault


def test_a_delegator_cannot_dodge_a_slash_it_sees_coming(pooled, chain, client):
    """Attack 3: after a missed deadline, one delegator undelegates before the slash lands,
    then cancels. Before: the other delegator bore its share. Now a job's slash is the
    provider's alone, and stake that leaves does not change anyone's share of a fault."""
    m, p, (leaver, stayer) = pooled
    job = _no_show_job(m, chain, client, p, price=PRICE, collateral=COLLATERAL)
    leaver_before = delegation_value(m, p, leaver)
    stayer_before = delegation_value(m, p, stayer)
    m.staking.undelegate(p, m.staking.delegation(p, leaver).shares, sender=leaver)
    m.jobs.expire(job, sender=client)
    m.staking.cancel_undelegation(p, sender=leaver)
    leaver_loss = leaver_before - delegation_value(m, p, leaver)
    stayer_loss = stayer_before - delegation_value(m, p, stayer)
    # Rounding of the share price only (a few wei).
    assert abs(leaver_loss - stayer_loss) <= 2
    assert stayer_loss <= 2


# ------------------------------------------------------------------ 5, 6: replication


def _replicated(m, chain, post_job, run_replica, providers, results):
    job = post_job(k=len(results))
    for provider, result in zip(providers, results, strict=False):
        run_replica(job, provider, result, reveal=False)
    for slot, (provider, result) in enumerate(zip(providers, results, strict=False)):
        m.jobs.reveal(job, slot, result, b"\x5a" * 32, sender=provider)
    return job


def test_one_dissenter_cannot_void_a_replicated_job(
    market, chain, post_job, run_replica, providers, arbiter, client
):
    """Attack 5: with k = 2, one different reveal meant no majority: the honest provider
    was not paid and the dissenter lost nothing. Now dissent goes to the arbiter, the
    honest replica is paid and the dissenter slashed."""
    m = market
    honest, dissenter = providers[0], providers[1]
    job = _replicated(m, chain, post_job, run_replica, (honest, dissenter), (GOOD, BAD))
    receipt = m.jobs.finalize(job, sender=client)
    [escalated] = receipt.decode_logs(m.escrow.Disputed)
    assert escalated.bond == 0 and m.jobs.view(job).status == JobStatus.DISPUTED
    with ape.reverts("job_escrow: not ready to settle"):
        m.jobs.finalize(job, sender=client)

    honest_before = m.escrow.balanceOf(honest)
    dissenter_stake = m.staking.pool(dissenter).own_stake
    receipt = m.jobs.rule(job, result=GOOD, sender=arbiter)
    fee = PRICE * m.escrow.parameter(0) // 10_000
    assert m.escrow.balanceOf(honest) - honest_before == PRICE - fee
    assert dissenter_stake - m.staking.pool(dissenter).own_stake == COLLATERAL
    outcomes = {
        e.event_arguments["provider"]: e.outcome
        for e in receipt.decode_logs(m.escrow.ReplicaSettled)
    }
    assert outcomes == {honest.address: 0, dissenter.address: 2}


def test_unruled_dissent_pays_and_slashes_nobody_for_a_result(
    market, chain, post_job, run_replica, providers, client
):
    """The default when the arbiter does not rule in time: the client is refunded, both
    replicas are released, nobody is slashed on a vote alone."""
    m = market
    job = _replicated(m, chain, post_job, run_replica, providers[:2], (GOOD, BAD))
    m.jobs.finalize(job, sender=client)
    chain.pending_timestamp += m.escrow.parameter(3) + 1  # RULING_PERIOD
    before = m.escrow.balanceOf(client)
    receipt = m.jobs.finalize(job, sender=client)
    assert m.escrow.balanceOf(client) - before == 2 * PRICE
    assert not receipt.decode_logs(m.staking.Slashed)
    assert {e.outcome for e in receipt.decode_logs(m.escrow.ReplicaSettled)} == {1}


def test_sybil_majority_does_not_slash_the_honest_replica(
    market, chain, post_job, run_replica, providers, arbiter, client
):
    """Attack 6: two cheap accounts of one operator outvote the honest replica of a k = 3
    job. Before: the honest one was slashed and the Sybils paid. Now the dissent goes to
    the arbiter: the honest replica is paid and both Sybils slashed."""
    m = market
    honest, sybils = providers[0], providers[1:3]
    job = _replicated(m, chain, post_job, run_replica, (honest, *sybils), (GOOD, BAD, BAD))
    m.jobs.finalize(job, sender=client)
    receipt = m.jobs.rule(job, result=GOOD, sender=arbiter)
    outcomes = {
        e.event_arguments["provider"]: e.outcome
        for e in receipt.decode_logs(m.escrow.ReplicaSettled)
    }
    assert outcomes == {honest.address: 0, sybils[0].address: 2, sybils[1].address: 2}
    [settled] = receipt.decode_logs(m.escrow.JobSettled)
    assert bytes(settled.result_hash) == GOOD


def test_unanimous_replicas_settle_at_once(market, chain, post_job, run_replica, providers, client):
    m = market
    job = _replicated(m, chain, post_job, run_replica, providers[:3], (GOOD, GOOD, GOOD))
    receipt = m.jobs.finalize(job, sender=client)
    assert {e.outcome for e in receipt.decode_logs(m.escrow.ReplicaSettled)} == {0}
    assert m.jobs.view(job).status == JobStatus.FINALIZED


# ------------------------------------------------------------------ 7: reputation


def test_padding_a_record_with_dust_jobs_counts_nothing(market, chain, providers, fund_client):
    """Attack 7: a provider posts itself 1-wei jobs whose fee rounds to zero; each added a
    "completed" job to its device's record. Now a job counts only when it paid the
    protocol at least RECORD_MIN_FEE."""
    from computeshare.sandbox import STATUS_OK, RunResult

    m, p = market, providers[0]
    fund_client(p, tokens=1_000 * TOKEN, deposit=100 * TOKEN)
    m.registry.register(gpu_spec(price_per_second=1), "ipfs://dust", sender=p)
    device = m.registry.device_id_of(p, 1)
    one_second = job_requirements(compute_seconds=1)

    def run_own_job(price):
        deadline = chain.pending_timestamp + HOUR
        job = m.escrow.post(SPEC, one_second, price, 1, deadline, price, sender=p).return_value
        m.jobs.accept(job, 1, sender=p)
        m.jobs.submit(job, RunResult(STATUS_OK, 1, b"x"), sender=p)
        chain.pending_timestamp += m.escrow.parameter(2) + 1  # CHALLENGE_WINDOW
        m.jobs.finalize(job, sender=p)

    run_own_job(1)
    assert m.escrow_view.device_record(device).completed == 0
    run_own_job(PRICE)
    assert m.escrow_view.device_record(device).completed == 1


# ------------------------------------------------------------------ 8, 9: delegation income


def test_just_in_time_delegation_takes_no_income_it_did_not_back(
    pooled, chain, deployer, accounts, client, run_replica, post_job
):
    """Attack 8: delegating right before a public settlement took 482 of a 487-token cut
    from the delegators that backed the job. Now a new delegation warms up first and
    earns nothing from a settlement during its warm-up; and it cannot leave at once
    either: a warm-up bears slashes, so cancelling it starts a thaw."""
    m, p, backers = pooled
    from computeshare.sandbox import STATUS_OK, RunResult

    job = post_job(k=1, price=5_000 * TOKEN, collateral=5_000 * TOKEN)
    run_replica(job, p, RunResult(STATUS_OK, 1, b"x"))
    chain.pending_timestamp += m.escrow.parameter(2) + 1
    sniper = accounts[17]
    m.token.transfer(sniper, 200_000 * TOKEN, sender=deployer)
    m.token.approve(m.staking, MAX_UINT, sender=sniper)
    # The pool is near its 10x cap: the provider raises its own stake to make room.
    m.staking.stake(20_000 * TOKEN, sender=p)
    m.staking.delegate_to(p, 200_000 * TOKEN, 0, sender=sniper)
    backers_before = sum(delegation_value(m, p, d) for d in backers)
    receipt = m.jobs.finalize(job, sender=sniper)
    [income] = receipt.decode_logs(m.staking.IncomeAdded)
    assert income.to_delegators > 0
    assert delegation_value(m, p, sniper) == 200_000 * TOKEN
    gained = sum(delegation_value(m, p, d) for d in backers) - backers_before
    assert income.to_delegators - 2 <= gained <= income.to_delegators
    # Leaving during the warm-up returns what came in, after the thawing period.
    m.staking.cancel_warmup(p, sender=sniper)
    assert m.token.balanceOf(sniper) == 0
    chain.pending_timestamp += m.staking.thawing_period()
    m.staking.withdraw_delegation(p, sender=sniper)
    assert abs(m.token.balanceOf(sniper) - 200_000 * TOKEN) <= 1


def test_a_provider_cannot_cut_the_share_of_a_delegator_about_to_join(
    market, chain, deployer, providers, accounts
):
    """Attack 9: with no delegators a cut change is immediate, so a provider lowered its
    cut just before a delegator's transaction. Now the delegator names the least cut it
    accepts, and the change is delayed as soon as anyone is warming up."""
    m, p = market, providers[0]
    m.staking.set_delegator_cut(2_000, sender=p)
    d, later = accounts[14], accounts[15]
    for a in (d, later):
        m.token.transfer(a, 10_000 * TOKEN, sender=deployer)
        m.token.approve(m.staking, MAX_UINT, sender=a)
    m.staking.set_delegator_cut(0, sender=p)  # front-runs the delegator
    with ape.reverts("staking: delegator cut below minimum"):
        m.staking.delegate_to(p, 1_000 * TOKEN, 2_000, sender=d)
    m.staking.set_delegator_cut(2_000, sender=p)
    m.staking.delegate_to(p, 1_000 * TOKEN, 2_000, sender=d)
    # With a delegator warming up the provider can no longer cut at once ...
    receipt = m.staking.set_delegator_cut(0, sender=p)
    [scheduled] = receipt.decode_logs(m.staking.DelegatorCutScheduled)
    assert scheduled.effective_at > chain.blocks.head.timestamp
    assert m.staking.delegator_cut(p) == 2_000
    # ... and a pending cut below a newcomer's minimum is refused too.
    with ape.reverts("staking: delegator cut below minimum"):
        m.staking.delegate_to(p, 1_000 * TOKEN, 1, sender=later)
    # The warming delegator leaves before the cut applies: it never earns at the lower
    # cut, and its tokens come back whole after the thawing period.
    m.staking.cancel_warmup(p, sender=d)
    chain.pending_timestamp += m.staking.thawing_period()
    m.staking.withdraw_delegation(p, sender=d)
    assert abs(m.token.balanceOf(d) - 10_000 * TOKEN) <= 1


@pytest.mark.parametrize("when", ["warming", "after"])
def test_warmup_rules(market, chain, deployer, providers, accounts, when):
    m, p, d = market, providers[0], accounts[14]
    m.token.transfer(d, 10_000 * TOKEN, sender=deployer)
    m.token.approve(m.staking, MAX_UINT, sender=d)
    m.staking.delegate_to(p, 1_000 * TOKEN, 0, sender=d)
    if when == "warming":
        with ape.reverts("staking: still warming up"):
            m.staking.activate(p, d, sender=deployer)
        assert m.staking.bonded_stake(p) == m.staking.pool(p).own_stake
    else:
        chain.pending_timestamp += m.staking.parameter(7)
        # Anyone may activate a warmed-up delegation.
        m.staking.activate(p, d, sender=deployer)
        assert m.staking.delegation(p, d).value == pytest.approx(1_000 * TOKEN, abs=2)
        assert m.staking.delegation(p, d).warming == 0
    # Warming tokens vote for their owner from the start.
    assert m.staking.delegation(p, d).votes == 1_000 * TOKEN


def test_a_warmed_position_waits_for_room_and_can_always_leave(
    market, chain, deployer, providers, accounts
):
    """Warming tokens hold no room under the delegation cap (else a squatter could hold
    a provider's whole cap): the cap is checked again when they join. A position that
    finds the pool full stays outside and its owner takes it back through a thaw."""
    m, p = market, providers[0]
    early, late = accounts[14], accounts[15]
    cap = m.staking.pool(p).own_stake * m.staking.parameter(1)
    for a, amount in ((early, cap), (late, 1_000 * TOKEN)):
        m.token.transfer(a, amount, sender=deployer)
        m.token.approve(m.staking, MAX_UINT, sender=a)
        m.staking.delegate_to(p, amount, 0, sender=a)
    chain.pending_timestamp += m.staking.parameter(7)
    m.staking.activate(p, early, sender=deployer)
    with ape.reverts("staking: delegation over cap"):
        m.staking.activate(p, late, sender=deployer)
    m.staking.cancel_warmup(p, sender=late)
    chain.pending_timestamp += m.staking.thawing_period()
    m.staking.withdraw_delegation(p, sender=late)
    assert abs(m.token.balanceOf(late) - 1_000 * TOKEN) <= 1


def test_the_warmup_outlasts_any_job_under_the_defaults(market):
    """A delegation never shares income from a job accepted before it joined: the warm-up
    is longer than the longest a job can live (deadline, reveal window, then the longer of
    the challenge window and the ruling period)."""
    e = market.escrow
    longest_job = e.parameter(6) + e.parameter(1) + max(e.parameter(2), e.parameter(3))
    assert market.staking.parameter(7) > longest_job
    assert longest_job > 9 * DAY
