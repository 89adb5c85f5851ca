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
from tests.helpers import SLASHER, TOKEN, pool_expected, pool_holdings, warm_delegation

MAX_UINT = 2**256 - 1
WARMUP = 7  # Staking's parameter key
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


def _slash_borne(m, chain, deployer, slasher, provider, delegators) -> list[int]:
    """What each of `delegators` would lose if the pool were slashed now beyond the
    provider's own stake, measured on a throw-away branch of the chain: the risk each
    position bears at this moment."""
    with chain.isolate():
        m.staking.set_roles(slasher, SLASHER, sender=deployer)
        before = [_value(m, provider, d) for d in delegators]
        pool = m.staking.pool(provider)
        beyond = pool.own_stake + pool.own_thawing + 10_000 * TOKEN
        m.staking.slash(provider, beyond, 0, ape.utils.ZERO_ADDRESS, 0, sender=slasher)
        return [b - _value(m, provider, d) for b, d in zip(before, delegators, strict=True)]


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
