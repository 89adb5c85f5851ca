"""Nothing an outsider sends anywhere blocks an exit, a slash, a settlement or a sweep.

Anyone may transfer tokens to any address: a deposit shard of JobEscrow nobody has opened
yet, a Staking pool's custody account before its provider stakes, JobEscrow's own address.
Such a donation belongs to nobody's books: it stays with the custodian that holds the
address, as a surplus its payments may draw on but never credit to anyone, so what the
custodian holds is what its books owe plus what was donated to it (each test states that
equality with the donations counted explicitly)."""

from __future__ import annotations

import ape
import pytest
from eth_utils import to_checksum_address

from computeshare.jobs import OUTCOME_SLASHED, custody_address, deposit_shard
from devtools.populate import Populator
from tests.helpers import (
    GOOD,
    PRICE,
    TOKEN,
    delegate,
    escrow_holdings,
    escrow_owes,
    pool_expected,
    pool_holdings,
    reveal,
    warm_delegation,
)

DUST = 1  # one wei: an ordinary transfer
MAX_UINT = 2**256 - 1
ZERO = "0x0000000000000000000000000000000000000000"


@pytest.fixture
def donor(token, deployer, outsider):
    """An outsider holding a few tokens to donate."""
    token.transfer(outsider, 10 * TOKEN, sender=deployer)
    return outsider


def number(i: int) -> str:
    """Key `i` of a custodian's numbered custody accounts: the number as an address."""
    return to_checksum_address(i.to_bytes(20, "big"))


def shard_account(m, shard: int) -> str:
    """The token account of JobEscrow's deposit shard `shard`."""
    return custody_address(m.escrow.address, shard % 1024)


def donate(token, donor, to, amount=DUST):
    """An outsider's plain transfer of `amount` to `to`."""
    token.transfer(to, amount, sender=donor)
    return amount


def paid_job(m, chain, keeper, post_job, run_replica, provider) -> int:
    """A k = 1 job of the client that `provider` ran well, finalized; the provider's pay."""
    job = post_job()
    run_replica(job, provider, GOOD)
    chain.pending_timestamp = m.jobs.view(job).phase_end
    m.jobs.finalize(job, sender=keeper)
    return PRICE - PRICE * 250 // 10_000


def income_owed_for(m, token, chain, deployer, provider, delegator, post_job, run_replica, keeper):
    """`provider` gets a delegator (a 20% cut) and completes a job: JobEscrow then holds
    the delegators' income for Staking, uncollected. Returns that income."""
    m.staking.set_delegator_cut(2_000, sender=provider)
    token.transfer(delegator, 1_000 * TOKEN, sender=deployer)
    token.approve(m.staking, 2**256 - 1, sender=delegator)
    warm_delegation(m.staking, chain, provider, 1_000 * TOKEN, delegator)
    paid_job(m, chain, keeper, post_job, run_replica, provider)
    owed = m.staking.uncollected_income(provider)
    assert owed == (PRICE - PRICE * 250 // 10_000) * 2_000 // 10_000
    return owed


# ------------------------------------------------------------------ the attacks


def test_dust_in_an_unopened_shard_does_not_block_a_withdrawal(
    market, token, client, providers, chain, keeper, donor, post_job, run_replica
):
    """A provider's pay sits in its client's shard; its own shard was never opened. One wei
    sent there made the shard search revert when it reached it (a plain transfer does not
    mark the account as custody). The withdrawal is paid, and the wei stays JobEscrow's."""
    m, p = market, providers[0]
    pay = paid_job(m, chain, keeper, post_job, run_replica, p)
    own = shard_account(m, deposit_shard(p.address))
    assert deposit_shard(p.address) != deposit_shard(client.address)
    assert not token.is_custody_account(own)
    donated = donate(token, donor, own)
    before = token.balanceOf(p)
    m.escrow.withdraw(pay, sender=p)
    assert token.balanceOf(p) == before + pay and m.escrow.balanceOf(p) == 0
    assert escrow_holdings(m) == escrow_owes(m, [client, p, keeper]) + donated


def test_dust_cannot_spare_a_no_show_its_slash(
    market,
    token,
    client,
    providers,
    chain,
    keeper,
    deployer,
    accounts,
    donor,
    post_job,
    run_replica,
):
    """A slash first collects the pool's income JobEscrow holds, gathering it from the
    shards from the provider's own on. One wei in the provider's unopened shard made that
    gather revert, so `expire` reverted: the no-show kept its stake and the client's payment
    stayed locked. It is slashed, and the client refunded and compensated."""
    m, p = market, providers[0]
    owed = income_owed_for(
        m, token, chain, deployer, p, accounts[16], post_job, run_replica, keeper
    )
    job = post_job()
    m.jobs.accept(job, 0, sender=p)  # and never commits
    chain.pending_timestamp = m.jobs.view(job).phase_end
    own = shard_account(m, deposit_shard(p.address))
    assert not token.is_custody_account(own)
    donated = donate(token, donor, own)
    stake = m.staking.pool(p).own_stake
    client_before = m.escrow.balanceOf(client)
    receipt = m.jobs.expire(job, sender=keeper)
    (replica,) = receipt.decode_logs(m.escrow.ReplicaSettled)
    assert replica.outcome == OUTCOME_SLASHED and replica.slashed > 0
    assert m.staking.pool(p).own_stake < stake and m.staking.uncollected_income(p) == 0
    (settled,) = receipt.decode_logs(m.escrow.JobSettled)
    assert m.escrow.balanceOf(client) == client_before + PRICE + settled.compensation
    (collected,) = receipt.decode_logs(m.staking.IncomeCollected)
    assert collected.amount == owed
    assert escrow_holdings(m) == escrow_owes(m, [client, p, keeper]) + donated
    assert pool_holdings(token, p) == pool_expected(m.staking, p)


def test_dust_in_the_treasurys_shard_does_not_stop_fee_sweeps(
    market, token, client, providers, chain, keeper, treasury, donor, post_job, run_replica
):
    """A sweep pays the treasury from the treasury's own shard first, which no one opens
    (the treasury never deposits). One wei there stopped every sweep."""
    m, p = market, providers[0]
    paid_job(m, chain, keeper, post_job, run_replica, p)
    device = m.registry.device_id_of(p, 0)
    fee = m.escrow.fees(device)
    own = shard_account(m, deposit_shard(treasury.address))
    assert fee > 0 and not token.is_custody_account(own)
    donated = donate(token, donor, own)
    before = token.balanceOf(treasury)
    assert m.escrow.sweep_fees([device], sender=keeper).return_value == fee
    assert token.balanceOf(treasury) == before + fee
    assert escrow_holdings(m) == escrow_owes(m, [client, p, keeper]) + donated


def test_jobescrow_refuses_a_custody_account_as_treasury(
    market, token, deployer, client, providers
):
    """The token refuses a custodian's payment into a custody account, so a treasury that
    is one would make every sweep revert: the setter refuses it, as Staking's does."""
    m = market
    for account in (
        m.escrow_view.deposit_shard(client)[1],  # a deposit shard
        token.custody_account(m.staking, providers[0]),  # a Staking pool
    ):
        assert token.is_custody_account(account)
        with ape.reverts("job_escrow: treasury is a custody account"):
            m.escrow.set_treasury(account, sender=deployer)


def test_dust_in_a_staking_pool_before_its_first_stake_blocks_nothing(
    market, token, deployer, treasury, donor, accounts, fund_provider, chain
):
    """Tokens sent to a pool's custody account before its provider stakes are the pool
    account's from then on: stake, thaw, withdrawal and a slash (to the treasury, then
    burned) all work, and the account holds its buckets plus the donation."""
    m, p, delegator = market, accounts[17], accounts[16]
    pool = token.custody_account(m.staking, p)
    assert not token.is_custody_account(pool)
    donated = donate(token, donor, pool, 3)
    fund_provider(p, stake=2_000 * TOKEN, m=m)
    token.transfer(delegator, 500 * TOKEN, sender=deployer)
    token.approve(m.staking, 2**256 - 1, sender=delegator)
    warm_delegation(m.staking, chain, p, 500 * TOKEN, delegator)
    assert pool_holdings(token, p) == pool_expected(m.staking, p) + donated
    m.staking.request_thaw(500 * TOKEN, sender=p)
    chain.pending_timestamp += m.staking.thawing_period()
    m.staking.withdraw(sender=p)
    m.staking.set_roles(deployer, 3, sender=deployer)  # LOCKER | SLASHER, to slash by hand
    before = token.balanceOf(treasury)
    m.staking.slash(p, 100 * TOKEN, 0, deployer, 0, sender=deployer)
    assert token.balanceOf(treasury) == before + 100 * TOKEN
    m.staking.set_parameter(m.staking.BURN_SLASHED(), 1, sender=deployer)
    m.staking.slash(p, 2_000 * TOKEN, 0, deployer, 0, sender=deployer)  # own stake, then pool
    assert pool_holdings(token, p) == pool_expected(m.staking, p) + donated


# ------------------------------------------------------------------ attacking the fix


def test_dust_before_a_shards_first_deposit_stays_with_the_escrow(
    market, token, deployer, donor, accounts, fund_client
):
    """Sent to a shard before anyone deposits into it, the wei is there when the first
    deposit opens the account; the depositor takes back exactly its deposit, and the wei
    stays JobEscrow's."""
    m, depositor = market, accounts[17]
    holder = m.escrow_view.deposit_shard(depositor)[1]
    assert not token.is_custody_account(holder)
    donated = donate(token, donor, holder, 7)
    fund_client(depositor, deposit=500 * TOKEN, m=m)
    assert token.is_custody_account(holder) and token.balanceOf(holder) == 500 * TOKEN + donated
    before = token.balanceOf(depositor)
    m.escrow.withdraw(500 * TOKEN, sender=depositor)
    assert token.balanceOf(depositor) == before + 500 * TOKEN
    with ape.reverts("job_escrow: amount exceeds balance"):
        m.escrow.withdraw(1, sender=depositor)
    assert token.balanceOf(holder) == donated


def test_dust_in_the_escrows_own_balance_moves_no_slash_reward_and_no_income(
    market,
    token,
    client,
    providers,
    chain,
    keeper,
    deployer,
    accounts,
    donor,
    post_job,
    run_replica,
):
    """JobEscrow measures a slash's reward as the change of its own balance around the
    slash, and gives Staking income from that balance: tokens sent to its address change
    neither. The client's compensation is exactly the reward Staking paid, less the
    keeper's bounty, and the pool gets exactly its income."""
    m, p = market, providers[0]
    owed = income_owed_for(
        m, token, chain, deployer, p, accounts[16], post_job, run_replica, keeper
    )
    donated = donate(token, donor, m.escrow.address, 3 * TOKEN)
    job = post_job()
    m.jobs.accept(job, 0, sender=p)
    chain.pending_timestamp = m.jobs.view(job).phase_end
    receipt = m.jobs.expire(job, sender=keeper)
    (slashed,) = receipt.decode_logs(m.staking.Slashed)
    (settled,) = receipt.decode_logs(m.escrow.JobSettled)
    assert settled.compensation + settled.bounty == slashed.reward > 0
    (collected,) = receipt.decode_logs(m.staking.IncomeCollected)
    assert collected.amount == owed
    assert pool_holdings(token, p) == pool_expected(m.staking, p)
    everyone = [client, p, keeper]
    assert escrow_holdings(m) == escrow_owes(m, everyone) + donated
    for account in everyone:
        if m.escrow.balanceOf(account):
            m.escrow.withdraw(m.escrow.balanceOf(account), sender=account)
    m.escrow.sweep_fees([m.registry.device_id_of(p, 0)], sender=keeper)
    assert escrow_holdings(m) == donated


def test_a_custodian_moves_what_was_sent_to_an_account_it_never_opened(funded, alice, bob, carol):
    """ComputeToken: an account derived from a custodian's address is the custodian's
    before it opens too (nobody holds its key): its custody calls move what anyone sent
    there, and nobody else reaches it."""
    custodian = carol
    unopened = funded.custody_account(custodian, bob)
    funded.transfer(unopened, 5 * TOKEN, sender=alice)
    assert not funded.is_custody_account(unopened)
    # Anyone else's custody calls reach only its own account under that key: empty.
    assert funded.custody_withdraw(bob, alice, TOKEN, sender=alice).return_value is False
    with ape.reverts("compute_token: burn amount exceeds balance"):
        funded.custody_burn(bob, TOKEN, sender=bob)
    supply = funded.totalSupply()
    tx = funded.custody_withdraw(bob, alice, 2 * TOKEN, sender=custodian)
    [moved] = tx.decode_logs(funded.Transfer)
    assert (moved.sender, moved.receiver, moved.value) == (unopened, alice.address, 2 * TOKEN)
    funded.custody_burn(bob, TOKEN, sender=custodian)
    assert funded.balanceOf(unopened) == 2 * TOKEN and funded.totalSupply() == supply - TOKEN
    # A deposit opens it, keeping what it held; then it is refused as a receiver, as any
    # custody account is.
    funded.approve(custodian, 2 * TOKEN, sender=alice)
    funded.custody_deposit(alice, bob, TOKEN, sender=custodian)
    assert funded.is_custody_account(unopened) and funded.balanceOf(unopened) == 3 * TOKEN
    funded.custody_deposit(alice, alice, TOKEN, sender=custodian)
    with ape.reverts("compute_token: pays a custody account"):
        funded.custody_withdraw(alice, unopened, TOKEN, sender=custodian)


def test_custody_gather_pays_from_numbered_accounts_in_turn(funded, deployer, alice, bob, carol):
    """ComputeToken: `custody_gather` pays from the caller's accounts keyed 0, 1, ... (count
    of them) from `first` on, wrapping, as much from each as it holds, opened or not, and
    returns what they lacked. An address that delegates (a key colliding with it) was never
    the custodian's: it is skipped, as a deposit refuses it."""
    custodian = carol

    def account(i):
        return funded.custody_account(custodian, number(i))

    funded.approve(custodian, MAX_UINT, sender=alice)
    funded.custody_deposit(alice, number(2), 20, sender=custodian)  # opened
    funded.custody_deposit(alice, number(5), 50, sender=custodian)
    funded.transfer(account(6), 60, sender=bob)  # never opened: a donation
    squatter = ape.accounts[account(3)]  # impersonated, as if its key were known
    squatter.balance += 10**18
    funded.transfer(squatter, 30, sender=bob)
    delegate(funded, squatter, squatter)
    with ape.reverts("compute_token: custody account delegates"):
        funded.custody_withdraw(number(3), bob, 1, sender=custodian)

    # From 5 on: 5, 6, 7, 0, 1, 2 (3 is skipped), until 100 is paid.
    tx = funded.custody_gather(13, 8, bob, 100, sender=custodian)  # 13 is 5, modulo 8
    assert tx.return_value == 0
    moves = [(e.sender, e.receiver, e.value) for e in tx.decode_logs(funded.Transfer)]
    assert moves == [(account(5), bob.address, 50), (account(6), bob.address, 50)]
    # Asked for more than they hold: every one pays what it has; the rest comes back.
    tx = funded.custody_gather(0, 8, alice, 100, sender=custodian)
    assert tx.return_value == 100 - 20 - 10
    moves = [(e.sender, e.value) for e in tx.decode_logs(funded.Transfer)]
    assert moves == [(account(2), 20), (account(6), 10)]
    assert funded.balanceOf(squatter) == 30 and funded.balanceOf(account(5)) == 0
    # Nothing to read: the whole amount comes back. Never more accounts than MAX_GATHER,
    # never into one of its own accounts or the zero address.
    assert funded.custody_gather(0, 0, bob, 5, sender=custodian).return_value == 5
    assert funded.MAX_GATHER() == 1024
    with ape.reverts():
        funded.custody_gather(0, 1025, bob, 5, sender=custodian)
    funded.custody_deposit(alice, number(1), 10, sender=custodian)
    with ape.reverts("compute_token: pays a custody account"):
        funded.custody_gather(0, 8, account(1), 5, sender=custodian)
    with ape.reverts("compute_token: transfer to the zero address"):
        funded.custody_gather(0, 8, ZERO, 5, sender=custodian)
    # Another caller's numbered accounts are its own: empty.
    assert funded.custody_gather(0, 8, bob, 5, sender=alice).return_value == 5


# ------------------------------------------------------------------ the worst settlement


def address_in_shard(shard: int, i: int) -> str:
    """The `i`-th of some fresh addresses (anvil impersonates them) in deposit shard `shard`."""
    return to_checksum_address(((0xD057 << 144) | (i << 10) | shard).to_bytes(20, "big"))


def dust_every_shard_but(m, token, donor, chain, spared: int) -> int:
    """One wei into every deposit shard but `spared`; returns the wei sent."""
    pop = Populator(chain.provider, in_blocks=True)
    for shard in range(1024):
        if shard != spared:
            pop.send(donor.address, token, "transfer", shard_account(m, shard), DUST)
    pop.close()
    return 1023 * DUST


@pytest.mark.parametrize("dusted", [False, True], ids=["clean", "dusted"])
def test_the_worst_settlement_fits_a_block(
    market,
    token,
    client,
    chain,
    keeper,
    deployer,
    accounts,
    donor,
    fund_provider,
    post_job,
    run_replica,
    dusted,
):
    """The most a settlement can gather: a k = 9 job whose nine replicas all fail to show,
    each slash first collecting its pool's income from the shards. Every provider sits in
    the shard right after the only one holding tokens, so each gather reads all 1,024
    shards; dusted, an outsider also put one wei in every other shard, which the first
    gather drains. It fits well within a 30 M gas block."""
    m = market
    home = deposit_shard(client.address)
    delegator = accounts[16]
    providers = []
    token.transfer(delegator, 9_000 * TOKEN, sender=deployer)
    token.approve(m.staking, 2**256 - 1, sender=delegator)
    for i in range(9):
        p = ape.accounts[address_in_shard((home + 1) % 1024, i)]
        p.balance += 10**20
        fund_provider(p, m=m)
        m.staking.set_delegator_cut(2_000, sender=p)
        m.staking.delegate_to(p, 1_000 * TOKEN, 0, sender=delegator)
        providers.append(p)
    chain.pending_timestamp += m.staking.parameter(7)  # the warm-up
    for p in providers:
        m.staking.activate(p, delegator, sender=delegator)
    # A k = 9 job they all complete: each pool's income stays with JobEscrow.
    job = post_job(9, price=1_000 * TOKEN, collateral=500 * TOKEN)
    slots = [run_replica(job, p, GOOD, reveal=False) for p in providers]
    for p, slot in zip(providers, slots, strict=True):
        reveal(m, job, p, slot, GOOD)
    m.jobs.finalize(job, sender=keeper)
    assert all(m.staking.uncollected_income(p) > 100 * TOKEN for p in providers)
    # A k = 9 job none of them shows up for.
    job = post_job(9, price=10 * TOKEN, collateral=5 * TOKEN)
    for p in providers:
        m.jobs.accept(job, 0, sender=p)
    chain.pending_timestamp = m.jobs.view(job).phase_end
    balances = m.escrow_view.shard_balances()
    assert [i for i, b in enumerate(balances) if b] == [home]
    assert token.balanceOf(m.escrow) == 0
    donated = dust_every_shard_but(m, token, donor, chain, home) if dusted else 0
    args = (m.jobs.terms(job), m.jobs.settlement_replica(job))
    chain.mine()  # an estimate runs on the latest block: past the reveal window
    # The gas limit it needs (before refunds: clearing a wei of dust refunds some).
    needed = m.escrow.expire.estimate_gas_cost(*args, sender=keeper)
    receipt = m.escrow.expire(*args, sender=keeper)
    outcomes = [e.outcome for e in receipt.decode_logs(m.escrow.ReplicaSettled)]
    assert outcomes == [OUTCOME_SLASHED] * 9
    assert receipt.gas_used <= needed < 15_000_000, (receipt.gas_used, needed)
    everyone = [client, keeper, *providers]
    assert escrow_holdings(m) == escrow_owes(m, everyone) + donated
