"""JobEscrow and Staking against tokens that misbehave (contracts/testing/HostileToken.vy):
tokens that call back during a transfer, return false, take a fee, or revert on zero.

JobEscrow takes any ERC20 as its payment token, so each case runs there, on an escrow paid
in the hostile token and wired into the market's Staking and registry. Staking holds only
the protocol token (it needs the vault hooks), so it is tested for the cases a bad token
release could bring: reentrancy and false returns."""

from __future__ import annotations

import ape
import pytest

from computeshare.client import ComputeShare
from computeshare.governance import encode
from computeshare.jobs import devices_with_fees
from tests.helpers import DAY, GOOD, LOCKER, SLASHER, TOKEN, escrow_owes, reveal

MAX = 2**256 - 1
NORMAL, RETURNS_FALSE, TAKES_FEE, REVERTS_ON_ZERO, REENTERS = range(5)


@pytest.fixture
def hostile(project, deployer):
    return deployer.deploy(project.HostileToken, deployer, 10**9 * TOKEN)


@pytest.fixture
def paid_in_hostile(project, market, hostile, deployer, treasury, client, providers):
    """The market with a second JobEscrow, paid in the hostile token; the client holds
    100,000 hostile tokens and has approved it."""
    escrow = deployer.deploy(project.JobEscrow, hostile, market.staking, market.registry, treasury)
    market.staking.set_roles(escrow, SLASHER | LOCKER, sender=deployer)
    hostile.transfer(client, 100_000 * TOKEN, sender=deployer)
    hostile.approve(escrow, MAX, sender=client)
    view = deployer.deploy(project.JobEscrowView, escrow)
    names = ("ComputeToken", "Staking", "DeviceRegistry", "OfferBook")
    contracts = {name: market.contract(name) for name in names}
    return ComputeShare.from_contracts({**contracts, "JobEscrow": escrow, "JobEscrowView": view})


@pytest.fixture
def optimistic_job(chain, client, post_job, run_replica):
    """optimistic_job(m, provider): posts, runs and settles on `m` a k = 1 job of 10 tokens
    that `provider` completes."""

    def run(m, provider, price=10 * TOKEN):
        job = post_job(price=price, collateral=price, m=m)
        run_replica(job, provider, GOOD, m=m)
        chain.pending_timestamp = m.jobs.view(job).phase_end
        return m.jobs.finalize(job, sender=client)

    return run


# ---------------------------------------------------------------- fee on transfer


def test_fee_on_transfer_token_is_credited_what_arrived(
    paid_in_hostile, hostile, client, providers, treasury, chain, optimistic_job
):
    m = paid_in_hostile
    hostile.set_mode(TAKES_FEE, sender=client)
    receipt = m.escrow.deposit(1_000 * TOKEN, sender=client)
    (event,) = receipt.decode_logs(m.escrow.Deposited)
    assert event.amount == receipt.return_value == 990 * TOKEN  # 1% never arrived
    assert m.escrow.balanceOf(client) == 990 * TOKEN
    assert hostile.balanceOf(m.escrow) == escrow_owes(m, [client])

    optimistic_job(m, providers[0])
    everyone = [client, providers[0]]
    assert hostile.balanceOf(m.escrow) == escrow_owes(m, everyone)
    m.escrow.sweep_fees(devices_with_fees(m.escrow), sender=client)
    for account in everyone:
        m.escrow.withdraw(m.escrow.balanceOf(account), sender=account)
    assert hostile.balanceOf(m.escrow) == 0 == escrow_owes(m, everyone)
    assert hostile.balanceOf(providers[0]) > 0 and hostile.balanceOf(treasury) > 0


# ---------------------------------------------------------------- false returns


def test_false_returning_token_is_refused_and_nothing_moves(paid_in_hostile, hostile, client):
    m = paid_in_hostile
    hostile.set_mode(RETURNS_FALSE, sender=client)
    with ape.reverts("job_escrow: transferFrom failed"):
        m.escrow.deposit(100 * TOKEN, sender=client)
    assert m.escrow.balanceOf(client) == 0

    hostile.set_mode(NORMAL, sender=client)
    m.escrow.deposit(100 * TOKEN, sender=client)
    hostile.set_mode(RETURNS_FALSE, sender=client)
    with ape.reverts("job_escrow: transfer failed"):
        m.escrow.withdraw(40 * TOKEN, sender=client)
    assert m.escrow.balanceOf(client) == 100 * TOKEN
    assert hostile.balanceOf(m.escrow) == 100 * TOKEN


def test_false_returning_token_cannot_stake(project, hostile, deployer, treasury, provider):
    staking = deployer.deploy(project.Staking, hostile, treasury)
    hostile.transfer(provider, 100_000 * TOKEN, sender=deployer)
    hostile.approve(staking, MAX, sender=provider)
    hostile.set_mode(RETURNS_FALSE, sender=provider)
    with ape.reverts("staking: transferFrom failed"):
        staking.stake(10_000 * TOKEN, sender=provider)
    assert staking.pool(provider).own_stake == 0 and hostile.bonded_of(provider) == 0


def test_false_returning_token_never_pays_out_of_staking(
    project, hostile, deployer, treasury, provider, chain
):
    """A payout the token refuses (returns False) reverts whole: Staking's books and the
    tokens stay where they were, and the same withdrawal works once the token pays."""
    staking = deployer.deploy(project.Staking, hostile, treasury)
    hostile.transfer(provider, 100_000 * TOKEN, sender=deployer)
    hostile.approve(staking, MAX, sender=provider)
    staking.stake(10_000 * TOKEN, sender=provider)
    staking.request_thaw(4_000 * TOKEN, sender=provider)
    chain.pending_timestamp += staking.thawing_period()
    hostile.set_mode(RETURNS_FALSE, sender=provider)
    with ape.reverts("staking: transfer failed"):
        staking.withdraw(sender=provider)
    assert staking.pool(provider).own_thawing == 4_000 * TOKEN
    assert hostile.balanceOf(provider) == 90_000 * TOKEN
    hostile.set_mode(NORMAL, sender=provider)
    staking.withdraw(sender=provider)
    assert staking.pool(provider).own_thawing == 0
    assert hostile.balanceOf(provider) == 94_000 * TOKEN


# ---------------------------------------------------------------- zero transfers


def test_token_reverting_on_zero_transfers_never_blocks_a_payout(
    paid_in_hostile,
    hostile,
    client,
    providers,
    keeper,
    chain,
    post_job,
    run_replica,
    optimistic_job,
):
    """Every path that can move zero tokens (a sweep of devices with no fees, an expiry that
    refunds everything, a settlement that pays nobody) skips the transfer."""
    m = paid_in_hostile
    hostile.set_mode(REVERTS_ON_ZERO, sender=client)
    m.escrow.deposit(1_000 * TOKEN, sender=client)
    nobody = [bytes(32), m.registry.device_id_of(providers[0], 0)]  # no fees yet
    assert m.escrow.sweep_fees(nobody, sender=keeper).return_value == 0

    optimistic_job(m, providers[0])
    silent = post_job(k=3, price=5 * TOKEN, collateral=5 * TOKEN, m=m)
    slot = run_replica(silent, providers[1], GOOD, reveal=False, m=m)  # the others never show up
    chain.pending_timestamp = m.jobs.view(silent).deadline + 1
    reveal(m, silent, providers[1], slot, GOOD)
    chain.pending_timestamp = m.jobs.view(silent).phase_end + 1
    m.jobs.finalize(silent, sender=keeper)  # one reveal of three: to the arbiter
    chain.pending_timestamp = m.jobs.view(silent).phase_end + 1
    m.jobs.finalize(silent, sender=keeper)  # unruled: refunded, nobody paid
    cancelled = post_job(m=m)
    m.jobs.cancel(cancelled, sender=client)

    everyone = [client, *providers, keeper]
    m.escrow.sweep_fees(devices_with_fees(m.escrow), sender=keeper)
    for account in everyone:
        if m.escrow.balanceOf(account):
            m.escrow.withdraw(m.escrow.balanceOf(account), sender=account)
    assert hostile.balanceOf(m.escrow) == 0 == escrow_owes(m, everyone)


# ---------------------------------------------------------------- reentrancy


def test_token_cannot_reenter_the_escrow(
    paid_in_hostile, hostile, client, providers, chain, optimistic_job
):
    m = paid_in_hostile
    # The token contract holds an escrow balance of its own, so `withdraw` from it is a
    # call that succeeds whenever it is not reentrant.
    hostile.transfer(hostile, 100 * TOKEN, sender=client)
    hostile.call(hostile, encode(hostile, "approve", m.escrow, MAX), sender=client)
    hostile.call(m.escrow, encode(m.escrow, "deposit", 100 * TOKEN), sender=client)
    hostile.set_hook(m.escrow, encode(m.escrow, "withdraw", 10 * TOKEN), sender=client)
    hostile.set_mode(REENTERS, sender=client)

    m.escrow.deposit(500 * TOKEN, sender=client)  # transferFrom calls back: refused
    m.escrow.withdraw(100 * TOKEN, sender=client)  # transfer calls back: refused
    optimistic_job(m, providers[0])  # payouts stay internal: no callback
    assert hostile.reentries() == 2 and hostile.reentries_succeeded() == 0
    assert m.escrow.balanceOf(hostile) == 100 * TOKEN

    hostile.call(m.escrow, encode(m.escrow, "withdraw", 10 * TOKEN), sender=client)
    assert m.escrow.balanceOf(hostile) == 90 * TOKEN  # the same call, not reentrant, works
    assert hostile.balanceOf(m.escrow) == escrow_owes(m, [client, providers[0], hostile])


def test_token_cannot_reenter_staking(project, hostile, deployer, treasury, provider, chain):
    staking = deployer.deploy(project.Staking, hostile, treasury)
    for holder in (provider, hostile):
        hostile.transfer(holder, 100_000 * TOKEN, sender=deployer)
    hostile.approve(staking, MAX, sender=provider)
    hostile.call(hostile, encode(hostile, "approve", staking, MAX), sender=deployer)
    hostile.call(staking, encode(staking, "stake", 10_000 * TOKEN), sender=deployer)
    thaw = encode(staking, "request_thaw", 1_000 * TOKEN)
    hostile.set_hook(staking, thaw, sender=deployer)
    hostile.set_mode(REENTERS, sender=deployer)

    staking.stake(10_000 * TOKEN, sender=provider)  # transferFrom calls back: refused
    staking.request_thaw(10_000 * TOKEN, sender=provider)
    chain.pending_timestamp += staking.parameter(staking.THAWING_PERIOD()) + DAY
    staking.withdraw(sender=provider)  # transfer calls back: refused
    assert hostile.reentries() == 2 and hostile.reentries_succeeded() == 0
    assert staking.pool(hostile).own_thawing == 0
    assert hostile.balanceOf(provider) == 100_000 * TOKEN

    hostile.call(staking, thaw, sender=deployer)  # the same call, not reentrant, works
    assert staking.pool(hostile).own_thawing == 1_000 * TOKEN
