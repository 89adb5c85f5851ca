"""Income follows risk: a delegation shares the delegators' cut of a job only if its
tokens were at risk (slashable) for the whole time the job was open.

Played on the local node with the default parameters (WARMUP 11 days, THAWING_PERIOD 14
days, 2.5% fee). The first test is the attack that showed the weakness (issue 32, item
7): a warmed-up but unactivated position bore no slash and could leave at once, so its
owner activated it just before a settlement and took 480.21 of a 487.50 cut of a job it
never backed, against 7.29 for the delegator that backed it all along. The others attack
the fix.
"""

from __future__ import annotations

import ape

from computeshare.sandbox import STATUS_OK, RunResult
from tests.helpers import (
    DAY,
    SLASHER,
    TOKEN,
    isolated,
    pool_expected,
    pool_holdings,
    warm_delegation,
)

MAX_UINT = 2**256 - 1
ZERO = "0x" + "00" * 20
WARMUP, THAWING_PERIOD = 7, 0  # Staking's parameter keys
# JobEscrow's parameter keys (`job_layout`).
REVEAL_WINDOW, CHALLENGE_WINDOW, RULING_PERIOD, MAX_JOB_DURATION = 1, 2, 3, 6
CUT_BPS = 1_000  # the provider gives its delegators 10% of its income
JOB_PRICE = 5_000 * TOKEN  # the provider's income after the 2.5% fee: 4,875, cut 487.5


def _fund(m, deployer, account, amount):
    """Sends `account` tokens and approves Staking for them."""
    m.token.transfer(account, amount, sender=deployer)
    m.token.approve(m.staking, MAX_UINT, sender=account)


def _value(m, provider, delegator) -> int:
    """Everything `delegator` holds at `provider`: pool shares, thawing and warming tokens."""
    d = m.staking.delegation(provider, delegator)
    return d.value + d.thawing + d.warming


def _accepted_job(m, post_job, run_replica, provider):
    """A k = 1 job of JOB_PRICE that `provider` accepted and ran; it settles once its
    challenge window closes."""
    job = post_job(k=1, price=JOB_PRICE, collateral=JOB_PRICE)
    run_replica(job, provider, RunResult(STATUS_OK, 1, b"x"))
    return job


def _books_exact(m, provider):
    """The pool's custody account holds its buckets less the income JobEscrow holds."""
    assert pool_holdings(m.token, provider) == pool_expected(m.staking, provider)


def _slash(m, deployer, slasher, provider, beyond):
    """Slashes `provider`'s pool `beyond` past its own (bonded and thawing) stake, as a
    SLASHER other than JobEscrow; returns the `Slashed` event."""
    m.staking.set_roles(slasher, SLASHER, sender=deployer)
    pool = m.staking.pool(provider)
    amount = pool.own_stake + pool.own_thawing + beyond
    [event] = m.staking.slash(provider, amount, 0, ZERO, 0, sender=slasher).decode_logs(
        m.staking.Slashed
    )
    return event


def _slash_borne(m, chain, deployer, slasher, provider, delegators) -> list[int]:
    """What each of `delegators` would lose if the pool were slashed now 10,000 beyond
    the provider's own stake, measured on a throw-away branch of the chain: the risk
    each position bears at this moment."""
    with isolated(chain):
        before = [_value(m, provider, d) for d in delegators]
        _slash(m, deployer, slasher, provider, 10_000 * TOKEN)
        borne = [b - _value(m, provider, d) for b, d in zip(before, delegators, strict=True)]
    return borne


def test_a_warmed_up_whale_takes_no_more_than_the_risk_it_bore(
    market, chain, deployer, providers, accounts, post_job, run_replica, keeper
):
    """The whale attack. A backer delegates 1,500 and activates. A whale delegates 98,500
    and lets the warm-up run out without activating. The provider accepts a job; while it
    is open, a slash beyond the provider's own stake would hit the backer and the whale
    as measured on a branch of the chain. Just before the settlement the whale
    activates. Secure: the whale's part of the delegators' cut is at most its part of
    the risk borne while the job was open."""
    m, p = market, providers[0]
    backer, whale, slasher = accounts[16], accounts[17], accounts[18]
    _fund(m, deployer, backer, 1_500 * TOKEN)
    _fund(m, deployer, whale, 98_500 * TOKEN)
    m.staking.set_delegator_cut(CUT_BPS, sender=p)
    warm_delegation(m.staking, chain, p, 1_500 * TOKEN, backer)
    m.staking.delegate_to(p, 98_500 * TOKEN, 0, sender=whale)
    chain.pending_timestamp += m.staking.parameter(WARMUP) + 1

    job = _accepted_job(m, post_job, run_replica, p)
    risk = _slash_borne(m, chain, deployer, slasher, p, (backer, whale))
    assert sum(risk) > 0

    chain.pending_timestamp = m.jobs.view(job).phase_end
    if m.staking.delegation(p, whale).warming:
        m.staking.activate(p, whale, sender=whale)
    before = [_value(m, p, d) for d in (backer, whale)]
    [income] = m.jobs.finalize(job, sender=keeper).decode_logs(m.staking.IncomeAdded)
    cut = income.to_delegators
    assert cut == JOB_PRICE * 975 // 1_000 * CUT_BPS // 10_000  # 487.5 tokens
    gained = [_value(m, p, d) - b for b, d in zip(before, (backer, whale), strict=True)]
    assert sum(gained) <= cut
    # The whale's part of the cut is at most its part of the risk (2 wei of rounding).
    assert gained[1] * sum(risk) <= risk[1] * cut + 2 * sum(risk), (
        f"the whale took {gained[1] / TOKEN:.2f} of a {cut / TOKEN:.2f} cut bearing "
        f"{risk[1] / TOKEN:.2f} of a {sum(risk) / TOKEN:.2f} slash"
    )
    assert pool_holdings(m.token, p) == pool_expected(m.staking, p)


def test_activating_before_a_settlement_and_leaving_after_keeps_the_tokens_at_risk(
    market, chain, deployer, providers, accounts, post_job, run_replica, keeper
):
    """The whale activates just before the settlement and undelegates right after it. Its
    tokens were slashable the whole time the job was open, and they stay slashable while
    they thaw: a slash after the settlement takes the same part of the whale's tokens as
    of the backer's, so there was nothing to time."""
    m, p = market, providers[0]
    backer, whale, slasher = accounts[16], accounts[17], accounts[18]
    _fund(m, deployer, backer, 10_000 * TOKEN)
    _fund(m, deployer, whale, 40_000 * TOKEN)
    m.staking.set_delegator_cut(CUT_BPS, sender=p)
    warm_delegation(m.staking, chain, p, 10_000 * TOKEN, backer)
    m.staking.delegate_to(p, 40_000 * TOKEN, 0, sender=whale)
    chain.pending_timestamp += m.staking.parameter(WARMUP)

    job = _accepted_job(m, post_job, run_replica, p)
    risk = _slash_borne(m, chain, deployer, slasher, p, (backer, whale))
    assert abs(risk[1] - 4 * risk[0]) <= 4  # 40,000 against 10,000, pro rata
    chain.pending_timestamp = m.jobs.view(job).phase_end
    m.staking.activate(p, whale, sender=whale)
    before = [_value(m, p, d) for d in (backer, whale)]
    [income] = m.jobs.finalize(job, sender=keeper).decode_logs(m.staking.IncomeAdded)
    gained = [_value(m, p, d) - b for b, d in zip(before, (backer, whale), strict=True)]
    assert abs(gained[1] - 4 * gained[0]) <= 4
    assert sum(gained) <= income.to_delegators
    m.staking.undelegate(p, m.staking.delegation(p, whale).shares, sender=whale)
    _books_exact(m, p)

    values = [_value(m, p, d) for d in (backer, whale)]
    event = _slash(m, deployer, slasher, p, 5_000 * TOKEN)
    assert event.from_delegated + event.from_delegated_thawing == 5_000 * TOKEN
    lost = [v - _value(m, p, d) for v, d in zip(values, (backer, whale), strict=True)]
    assert abs(lost[1] - 4 * lost[0]) <= 4 and sum(lost) >= 5_000 * TOKEN - 4
    _books_exact(m, p)


def test_a_warm_up_cannot_be_left_at_once_to_dodge_a_slash(
    market, chain, deployer, providers, accounts
):
    """A warming delegator sees a slash coming and cancels its warm-up. Its tokens thaw
    instead of coming back: the slash takes their part like the active backer's, its
    votes stay until it withdraws, and it withdraws what is left only after the thawing
    period."""
    m, p = market, providers[0]
    backer, warmer, slasher = accounts[16], accounts[17], accounts[18]
    _fund(m, deployer, backer, 10_000 * TOKEN)
    _fund(m, deployer, warmer, 10_000 * TOKEN)
    warm_delegation(m.staking, chain, p, 10_000 * TOKEN, backer)
    m.staking.delegate_to(p, 10_000 * TOKEN, 0, sender=warmer)

    receipt = m.staking.cancel_warmup(p, sender=warmer)
    assert receipt.return_value == 10_000 * TOKEN
    [cancelled] = receipt.decode_logs(m.staking.WarmupCancelled)
    unlock_at = receipt.timestamp + m.staking.parameter(THAWING_PERIOD)
    assert (cancelled.amount, cancelled.unlock_at) == (10_000 * TOKEN, unlock_at)
    assert m.token.balanceOf(warmer) == 0
    position = m.staking.delegation(p, warmer)
    assert (position.warming, position.unlock_at) == (0, unlock_at)
    assert abs(position.thawing - 10_000 * TOKEN) <= 1
    assert position.votes == 10_000 * TOKEN
    _books_exact(m, p)

    event = _slash(m, deployer, slasher, p, 10_000 * TOKEN)
    assert abs(event.from_delegated - event.from_delegated_thawing) <= 1
    assert abs(_value(m, p, warmer) - 5_000 * TOKEN) <= 2
    assert abs(_value(m, p, backer) - 5_000 * TOKEN) <= 2
    _books_exact(m, p)
    with ape.reverts("staking: still thawing"):
        m.staking.withdraw_delegation(p, sender=warmer)
    chain.pending_timestamp = unlock_at
    paid = m.staking.withdraw_delegation(p, sender=warmer).return_value
    assert abs(paid - 5_000 * TOKEN) <= 2 and m.token.balanceOf(warmer) == paid
    assert m.staking.delegation(p, warmer).votes == 0
    _books_exact(m, p)


def test_a_slash_during_the_warm_up_is_borne_pro_rata_and_not_by_later_delegations(
    market, chain, deployer, providers, accounts
):
    """The warming tokens are a share pool of their own: a slash during the warm-up takes
    their part (as much as of the active and the thawing tokens), a delegation made after
    the slash joins at the lowered price and loses nothing of it, and activation carries
    each position's value (not what it delegated) into the pool."""
    m, p = market, providers[0]
    stayer, leaver, early, late = (accounts[i] for i in range(16, 20))
    slasher = deployer
    for d in (stayer, leaver, early, late):
        _fund(m, deployer, d, 30_000 * TOKEN)
    warm_delegation(m.staking, chain, p, 30_000 * TOKEN, stayer)
    warm_delegation(m.staking, chain, p, 30_000 * TOKEN, leaver)
    m.staking.undelegate(p, m.staking.delegation(p, leaver).shares, sender=leaver)
    m.staking.delegate_to(p, 30_000 * TOKEN, 0, sender=early)

    event = _slash(m, deployer, slasher, p, 30_000 * TOKEN)
    assert abs(event.from_delegated - 10_000 * TOKEN) <= 1
    assert abs(event.from_delegated_thawing - 10_000 * TOKEN) <= 1
    assert abs(event.from_warming - 10_000 * TOKEN) <= 1
    for d in (stayer, leaver, early):
        assert abs(_value(m, p, d) - 20_000 * TOKEN) <= 2
    assert m.staking.delegation(p, early).votes == 30_000 * TOKEN  # units, not value
    _books_exact(m, p)

    m.staking.stake(10_000 * TOKEN, sender=p)  # the slash took the provider's own stake
    m.staking.delegate_to(p, 30_000 * TOKEN, 0, sender=late)
    assert abs(m.staking.delegation(p, late).warming - 30_000 * TOKEN) <= 1
    chain.pending_timestamp += m.staking.parameter(WARMUP)
    for d in (early, late):
        m.staking.activate(p, d, sender=stayer)
    assert abs(_value(m, p, early) - 20_000 * TOKEN) <= 3
    assert abs(_value(m, p, late) - 30_000 * TOKEN) <= 3
    pool = m.staking.pool(p)
    assert pool.warming_shares == 0 and pool.warming_tokens <= 2  # rounding dust at most
    _books_exact(m, p)


def test_a_cancelled_warm_up_cannot_skip_its_clock(
    market, chain, deployer, providers, accounts, post_job, run_replica, keeper
):
    """Delegate, cancel the warm-up (the tokens thaw) and cancel the undelegation at once:
    the tokens go back into the warm-up with its first clock, not into the pool, so a
    settlement before that clock ends pays them nothing. Once it has ended, cancelling
    the undelegation bonds them into the pool at once: they were slashable all along."""
    m, p = market, providers[0]
    backer, sniper = accounts[16], accounts[17]
    _fund(m, deployer, backer, 1_000 * TOKEN)
    _fund(m, deployer, sniper, 50_000 * TOKEN)
    m.staking.set_delegator_cut(CUT_BPS, sender=p)
    warm_delegation(m.staking, chain, p, 1_000 * TOKEN, backer)
    warm_until = m.staking.delegate_to(p, 50_000 * TOKEN, 0, sender=sniper).timestamp + (
        m.staking.parameter(WARMUP)
    )
    job = _accepted_job(m, post_job, run_replica, p)
    m.staking.cancel_warmup(p, sender=sniper)

    with isolated(chain):
        receipt = m.staking.cancel_undelegation(p, sender=sniper)
        assert receipt.return_value == 0
        [event] = receipt.decode_logs(m.staking.UndelegationCancelled)
        assert (event.shares, event.warm_until) == (0, warm_until)
        position = m.staking.delegation(p, sniper)
        assert (position.shares, position.thawing, position.warm_until) == (0, 0, warm_until)
        assert abs(position.warming - 50_000 * TOKEN) <= 2
        assert position.votes == 50_000 * TOKEN
        _books_exact(m, p)
        before = _value(m, p, sniper)
        chain.pending_timestamp = m.jobs.view(job).phase_end
        assert chain.pending_timestamp < warm_until
        with ape.reverts("staking: still warming up"):
            m.staking.activate(p, sniper, sender=sniper)
        [income] = m.jobs.finalize(job, sender=keeper).decode_logs(m.staking.IncomeAdded)
        assert income.to_delegators > 0
        assert _value(m, p, sniper) == before  # all of it went to the backer
        chain.pending_timestamp = warm_until
        assert m.staking.activate(p, sniper, sender=keeper).return_value > 0
        _books_exact(m, p)

    chain.pending_timestamp = warm_until
    shares = m.staking.cancel_undelegation(p, sender=sniper).return_value
    assert shares > 0 and m.staking.delegation(p, sniper).shares == shares
    _books_exact(m, p)


def test_repeated_delegations_each_wait_their_own_warm_up(
    market, chain, deployer, providers, accounts, post_job, run_replica, keeper
):
    """A delegator seasons a small delegation, then adds a large one while a job is open
    (hoping the old clock covers it): the large one warms up on a clock of its own and the
    settlement pays only the seasoned tokens. A top-up during a warm-up restarts it, to
    the second; and after a warm-up, a top-up activates the warmed tokens first."""
    m, p = market, providers[0]
    backer, d = accounts[16], accounts[17]
    _fund(m, deployer, backer, 1_000 * TOKEN)
    _fund(m, deployer, d, 60_000 * TOKEN)
    m.staking.set_delegator_cut(CUT_BPS, sender=p)
    warm_delegation(m.staking, chain, p, 1_000 * TOKEN, backer)
    warm_delegation(m.staking, chain, p, 1_000 * TOKEN, d)
    job = _accepted_job(m, post_job, run_replica, p)
    m.staking.delegate_to(p, 50_000 * TOKEN, 0, sender=d)
    chain.pending_timestamp = m.jobs.view(job).phase_end
    before = [_value(m, p, a) for a in (backer, d)]
    [income] = m.jobs.finalize(job, sender=keeper).decode_logs(m.staking.IncomeAdded)
    gained = [_value(m, p, a) - b for b, a in zip(before, (backer, d), strict=True)]
    assert abs(gained[0] - gained[1]) <= 2  # 1,000 active each; the 50,000 earn nothing
    assert abs(sum(gained) - income.to_delegators) <= 2

    # A top-up during the warm-up restarts the clock of the whole warm-up.
    warmup = m.staking.parameter(WARMUP)
    first = m.staking.delegation(p, d).warm_until
    chain.pending_timestamp = first - DAY
    topped = m.staking.delegate_to(p, 5_000 * TOKEN, 0, sender=d)
    assert m.staking.delegation(p, d).warm_until == topped.timestamp + warmup
    chain.pending_timestamp = first
    with ape.reverts("staking: still warming up"):
        m.staking.activate(p, d, sender=keeper)
    chain.pending_timestamp = topped.timestamp + warmup - 1
    with ape.reverts("staking: still warming up"):
        m.staking.activate(p, d, sender=keeper)
    # After the warm-up a top-up activates the warmed tokens before warming its own.
    chain.pending_timestamp = topped.timestamp + warmup
    receipt = m.staking.delegate_to(p, 1_000 * TOKEN, 0, sender=d)
    [joined] = receipt.decode_logs(m.staking.DelegationActivated)
    assert abs(joined.amount - 55_000 * TOKEN) <= 2
    position = m.staking.delegation(p, d)
    assert abs(position.warming - 1_000 * TOKEN) <= 1
    assert position.warm_until == receipt.timestamp + warmup
    _books_exact(m, p)


def test_every_job_open_when_a_delegation_is_made_is_due_before_it_can_join(
    market, chain, deployer, providers, accounts, post_job, run_replica
):
    """The warm-up's other half: a job accepted just before a delegation, with the longest
    deadline and the longest settlement window (a replicated job whose dissent waits out
    the ruling period), is due, and anyone may settle it, before the delegation can join.
    Under the defaults: 7 days + 1 hour + 2 days against an 11-day warm-up."""
    m, p = market, providers[0]
    d = accounts[16]
    _fund(m, deployer, d, 1_000 * TOKEN)
    longest = m.escrow.parameter(MAX_JOB_DURATION)
    job = post_job(k=1, deadline_in=longest - 60)
    accepted = m.jobs.accept(job, 0, sender=p).timestamp
    delegated = m.staking.delegate_to(p, 1_000 * TOKEN, 0, sender=d).timestamp
    due = accepted + longest + m.escrow.parameter(REVEAL_WINDOW)
    due += max(m.escrow.parameter(CHALLENGE_WINDOW), m.escrow.parameter(RULING_PERIOD))
    assert m.jobs.view(job).phase_end <= due
    assert due < m.staking.delegation(p, d).warm_until == delegated + m.staking.parameter(WARMUP)
