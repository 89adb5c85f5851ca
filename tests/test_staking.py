"""Unit tests for Staking: own stake, delegation, thawing, income, collateral, slashing."""

from __future__ import annotations

import ape
import pytest

from tests.helpers import DAY, LOCKER, SLASHER, TOKEN, delegate, pool_holdings, warm_delegation

ZERO = "0x0000000000000000000000000000000000000000"
MAX = 2**256 - 1
THAWING_PERIOD, MAX_DELEGATION_RATIO, MIN_DELEGATION, MIN_PROVIDER_STAKE = 0, 1, 2, 3
BENEFICIARY_SHARE_BPS, BURN_SLASHED, CUT_CHANGE_DELAY, WARMUP = 4, 5, 6, 7
VIRTUAL_SHARES = 10**6


def holdings(token, provider) -> int:
    """What Staking holds for `provider`'s pool: its custody account in the token."""
    return pool_holdings(token, provider)


def pool_total(pool) -> int:
    return (
        pool.own_stake
        + pool.own_thawing
        + pool.delegated_tokens
        + pool.thawing_tokens
        + pool.warming_tokens
    )


@pytest.fixture
def staked(staking, provider):
    """Provider with 10,000 tokens of own stake and a 50% delegator cut."""
    staking.stake(10_000 * TOKEN, sender=provider)
    staking.set_delegator_cut(5_000, sender=provider)
    return staking


# ------------------------------------------------------------------ deployment and governance


def test_defaults_and_bounds(staking, token, treasury):
    assert staking.TOKEN() == token.address
    assert staking.treasury() == treasury
    expected = {
        THAWING_PERIOD: (14 * DAY, 7 * DAY, 60 * DAY),
        MAX_DELEGATION_RATIO: (10, 1, 50),
        MIN_DELEGATION: (100 * TOKEN, TOKEN, 100_000 * TOKEN),
        MIN_PROVIDER_STAKE: (1_000 * TOKEN, TOKEN, 1_000_000 * TOKEN),
        BENEFICIARY_SHARE_BPS: (2_500, 0, 5_000),
        BURN_SLASHED: (0, 0, 1),
        CUT_CHANGE_DELAY: (7 * DAY, DAY, 30 * DAY),
        WARMUP: (11 * DAY, DAY, 60 * DAY),
    }
    for key, (value, low, high) in expected.items():
        assert staking.parameter(key) == value
        assert staking.parameter_bounds(key) == (low, high)
    assert staking.thawing_period() == 14 * DAY
    assert staking.MIN_THAWING_PERIOD() == 7 * DAY


def test_deploy_rejects_zero_addresses(project, token, deployer, treasury):
    with ape.reverts("staking: zero token"):
        deployer.deploy(project.Staking, ZERO, treasury)
    with ape.reverts("staking: zero treasury"):
        deployer.deploy(project.Staking, token, ZERO)


def test_owner_sets_parameters_within_bounds(staking, deployer, alice):
    receipt = staking.set_parameter(THAWING_PERIOD, 21 * DAY, sender=deployer)
    (event,) = receipt.decode_logs(staking.ParameterChanged)
    assert (event.key, event.old_value, event.new_value) == (THAWING_PERIOD, 14 * DAY, 21 * DAY)
    assert staking.thawing_period() == 21 * DAY
    with ape.reverts("ownable: caller is not the owner"):
        staking.set_parameter(THAWING_PERIOD, 20 * DAY, sender=alice)
    for key, bad in (
        (THAWING_PERIOD, 7 * DAY - 1),
        (BENEFICIARY_SHARE_BPS, 5_001),
        (BURN_SLASHED, 2),
    ):
        with ape.reverts("parameters: out of bounds"):
            staking.set_parameter(key, bad, sender=deployer)
    with ape.reverts("parameters: unknown parameter"):
        staking.set_parameter(8, 1, sender=deployer)
    with ape.reverts("parameters: unknown parameter"):
        staking.parameter(8)
    assert staking.thawing_period() == 21 * DAY


def test_a_custody_account_cannot_become_the_treasury(staking, token, deployer, provider):
    """Slashed stake sent to a pool's custody account would stick there (and the token
    refuses it, so every slash would revert): the owner cannot name one treasury."""
    staking.stake(10_000 * TOKEN, sender=provider)
    pot = token.custody_account(staking, provider)
    with ape.reverts("staking: treasury is a custody account"):
        staking.set_treasury(pot, sender=deployer)
    assert staking.treasury() != pot


def test_treasury_and_roles_are_owner_only(staking, deployer, alice, bob):
    with ape.reverts("ownable: caller is not the owner"):
        staking.set_treasury(alice, sender=alice)
    with ape.reverts("staking: zero treasury"):
        staking.set_treasury(ZERO, sender=deployer)
    receipt = staking.set_treasury(alice, sender=deployer)
    (event,) = receipt.decode_logs(staking.TreasurySet)
    assert event.new_treasury == alice and staking.treasury() == alice
    with ape.reverts("ownable: caller is not the owner"):
        staking.set_roles(bob, SLASHER, sender=alice)
    with ape.reverts("access: zero address"):
        staking.set_roles(ZERO, SLASHER, sender=deployer)
    receipt = staking.set_roles(bob, SLASHER | LOCKER, sender=deployer)
    (event,) = receipt.decode_logs(staking.RolesSet)
    assert (event.account, event.previous_roles, event.new_roles) == (bob, 0, SLASHER | LOCKER)
    assert staking.roles(bob) == SLASHER | LOCKER


# ------------------------------------------------------------------ own stake


def test_stake_bonds_tokens(staking, token, provider):
    receipt = staking.stake(2_000 * TOKEN, sender=provider)
    (event,) = receipt.decode_logs(staking.Staked)
    assert (event["provider"], event.amount, event.own_stake) == (
        provider,
        2_000 * TOKEN,
        2_000 * TOKEN,
    )
    assert staking.pool(provider).own_stake == 2_000 * TOKEN
    assert staking.bonded_stake(provider) == staking.free_stake(provider) == 2_000 * TOKEN
    assert holdings(token, provider) == 2_000 * TOKEN
    assert token.balanceOf(staking) == 0  # the pool's tokens are in its custody account
    staking.stake(1, sender=provider)
    assert staking.pool(provider).own_stake == 2_000 * TOKEN + 1


def test_stake_rejects_zero_and_below_minimum(staking, token, provider, outsider):
    with ape.reverts("staking: zero amount"):
        staking.stake(0, sender=provider)
    with ape.reverts("staking: stake below minimum"):
        staking.stake(1_000 * TOKEN - 1, sender=provider)
    with ape.reverts("compute_token: insufficient allowance"):
        staking.stake(1_000 * TOKEN, sender=outsider)
    assert holdings(token, outsider) == 0


def test_thaw_then_withdraw(staked, token, provider, chain):
    receipt = staked.request_thaw(4_000 * TOKEN, sender=provider)
    unlock = receipt.timestamp + 14 * DAY
    (event,) = receipt.decode_logs(staked.ThawRequested)
    assert (event.amount, event.thawing, event.unlock_at) == (4_000 * TOKEN, 4_000 * TOKEN, unlock)
    pool = staked.pool(provider)
    assert (pool.own_stake, pool.own_thawing, pool.own_unlock_at) == (
        6_000 * TOKEN,
        4_000 * TOKEN,
        unlock,
    )
    chain.pending_timestamp = unlock - 1
    with ape.reverts("staking: still thawing"):
        staked.withdraw(sender=provider)
    chain.pending_timestamp = unlock
    before = token.balanceOf(provider)
    receipt = staked.withdraw(sender=provider)
    (event,) = receipt.decode_logs(staked.Withdrawn)
    assert event.amount == 4_000 * TOKEN
    assert token.balanceOf(provider) == before + 4_000 * TOKEN
    assert staked.pool(provider).own_thawing == 0
    with ape.reverts("staking: nothing thawing"):
        staked.withdraw(sender=provider)


def test_new_thaw_request_restarts_the_clock(staked, provider, chain):
    first = staked.request_thaw(1_000 * TOKEN, sender=provider).timestamp
    chain.pending_timestamp = first + 10 * DAY
    second = staked.request_thaw(1_000 * TOKEN, sender=provider).timestamp
    pool = staked.pool(provider)
    assert pool.own_thawing == 2_000 * TOKEN
    assert pool.own_unlock_at == second + 14 * DAY


def test_cancel_thaw_rebonds(staked, provider):
    staked.request_thaw(3_000 * TOKEN, sender=provider)
    receipt = staked.cancel_thaw(sender=provider)
    (event,) = receipt.decode_logs(staked.ThawCancelled)
    assert (event.amount, event.own_stake) == (3_000 * TOKEN, 10_000 * TOKEN)
    pool = staked.pool(provider)
    assert (pool.own_stake, pool.own_thawing, pool.own_unlock_at) == (10_000 * TOKEN, 0, 0)
    with ape.reverts("staking: nothing thawing"):
        staked.cancel_thaw(sender=provider)


def test_locked_stake_cannot_thaw(staked, provider, escrow_role):
    staked.lock(provider, 7_000 * TOKEN, sender=escrow_role)
    assert staked.free_stake(provider) == 3_000 * TOKEN
    with ape.reverts("staking: amount exceeds free stake"):
        staked.request_thaw(3_000 * TOKEN + 1, sender=provider)
    with ape.reverts("staking: zero amount"):
        staked.request_thaw(0, sender=provider)
    staked.request_thaw(3_000 * TOKEN, sender=provider)
    assert staked.free_stake(provider) == 0


# ------------------------------------------------------------------ delegator cut


def test_delegator_cut_applies_at_once_without_delegators(staking, provider):
    staking.stake(1_000 * TOKEN, sender=provider)
    receipt = staking.set_delegator_cut(8_000, sender=provider)
    (event,) = receipt.decode_logs(staking.DelegatorCutScheduled)
    assert (event.cut_bps, event.effective_at) == (8_000, receipt.timestamp)
    assert staking.delegator_cut(provider) == 8_000
    with ape.reverts("staking: cut above 100%"):
        staking.set_delegator_cut(10_001, sender=provider)


def test_delegator_cut_change_waits_when_delegated(staked, provider, delegator, chain):
    warm_delegation(staked, chain, provider, 1_000 * TOKEN, delegator)
    receipt = staked.set_delegator_cut(1_000, sender=provider)
    effective = receipt.timestamp + 7 * DAY
    (event,) = receipt.decode_logs(staked.DelegatorCutScheduled)
    assert event.effective_at == effective
    assert staked.delegator_cut(provider) == 5_000
    chain.pending_timestamp = effective
    chain.mine()
    assert staked.delegator_cut(provider) == 1_000
    # Income after the change uses the new cut.
    staked.add_income(provider, 1_000 * TOKEN, sender=delegator)
    assert staked.pool(provider).delegated_tokens == 1_100 * TOKEN


# ------------------------------------------------------------------ delegation


def test_delegate_warms_up_then_mints_shares(staked, token, provider, delegator, chain):
    receipt = staked.delegate_to(provider, 1_000 * TOKEN, 0, sender=delegator)
    (event,) = receipt.decode_logs(staked.Delegated)
    assert (event["provider"], event.delegator, event.amount, event.shares) == (
        provider,
        delegator,
        1_000 * TOKEN,
        0,
    )
    warm_until = receipt.timestamp + 11 * DAY
    position = staked.delegation(provider, delegator)
    assert (position.shares, position.warming, position.warm_until) == (
        0,
        1_000 * TOKEN,
        warm_until,
    )
    # Warming tokens are held here but do not back the provider yet.
    assert staked.bonded_stake(provider) == 10_000 * TOKEN
    assert holdings(token, provider) == 11_000 * TOKEN
    chain.pending_timestamp = warm_until
    receipt = staked.activate(provider, delegator, sender=provider)
    shares = 1_000 * TOKEN * VIRTUAL_SHARES
    (event,) = receipt.decode_logs(staked.DelegationActivated)
    assert (event.delegator, event.amount, event.shares) == (delegator, 1_000 * TOKEN, shares)
    assert receipt.return_value == shares
    position = staked.delegation(provider, delegator)
    assert (position.shares, position.value, position.warming) == (shares, 1_000 * TOKEN, 0)
    assert staked.bonded_stake(provider) == 11_000 * TOKEN
    with ape.reverts("staking: nothing warming"):
        staked.activate(provider, delegator, sender=provider)


def test_delegation_limits(staked, staking, provider, delegator, alice, deployer, chain):
    with ape.reverts("staking: delegation below minimum"):
        staked.delegate_to(provider, 100 * TOKEN - 1, 0, sender=delegator)
    with ape.reverts("staking: provider has no stake"):
        staked.delegate_to(alice, 100 * TOKEN, 0, sender=delegator)
    with ape.reverts("staking: delegator cut below minimum"):
        staked.delegate_to(provider, 100 * TOKEN, 5_001, sender=delegator)
    # Cap: 10 x 10,000 own stake, of tokens in the pool (warming tokens hold no room).
    warm_delegation(staked, chain, provider, 99_000 * TOKEN, delegator, min_cut_bps=5_000)
    with ape.reverts("staking: delegation over cap"):
        staked.delegate_to(provider, 1_000 * TOKEN + 1, 0, sender=alice)
    staked.delegate_to(provider, 1_000 * TOKEN, 0, sender=alice)
    assert staked.pool(provider).delegated_tokens == 99_000 * TOKEN
    assert staked.pool(provider).warming_tokens == 1_000 * TOKEN


def test_undelegate_then_withdraw(staked, token, provider, delegator, chain):
    shares = warm_delegation(staked, chain, provider, 1_000 * TOKEN, delegator)
    receipt = staked.undelegate(provider, shares // 4, sender=delegator)
    unlock = receipt.timestamp + 14 * DAY
    (event,) = receipt.decode_logs(staked.Undelegated)
    assert (event.shares, event.amount, event.unlock_at) == (shares // 4, 250 * TOKEN, unlock)
    position = staked.delegation(provider, delegator)
    assert (position.value, position.thawing, position.unlock_at) == (
        750 * TOKEN,
        250 * TOKEN,
        unlock,
    )
    chain.pending_timestamp = unlock - 1
    with ape.reverts("staking: still thawing"):
        staked.withdraw_delegation(provider, sender=delegator)
    chain.pending_timestamp = unlock
    before = token.balanceOf(delegator)
    receipt = staked.withdraw_delegation(provider, sender=delegator)
    (event,) = receipt.decode_logs(staked.DelegationWithdrawn)
    assert event.amount == 250 * TOKEN
    assert token.balanceOf(delegator) == before + 250 * TOKEN
    assert staked.delegation(provider, delegator).thawing == 0
    with ape.reverts("staking: nothing thawing"):
        staked.withdraw_delegation(provider, sender=delegator)


def test_undelegate_rejects_bad_share_counts(staked, provider, delegator, chain):
    shares = warm_delegation(staked, chain, provider, 1_000 * TOKEN, delegator)
    with ape.reverts("staking: zero shares"):
        staked.undelegate(provider, 0, sender=delegator)
    with ape.reverts("staking: shares exceed delegation"):
        staked.undelegate(provider, shares + 1, sender=delegator)


def test_cancel_undelegation_rebonds(staked, provider, delegator, chain):
    shares = warm_delegation(staked, chain, provider, 1_000 * TOKEN, delegator)
    staked.undelegate(provider, shares, sender=delegator)
    receipt = staked.cancel_undelegation(provider, sender=delegator)
    (event,) = receipt.decode_logs(staked.UndelegationCancelled)
    assert event.amount == 1_000 * TOKEN
    position = staked.delegation(provider, delegator)
    assert (position.value, position.thawing, position.unlock_at) == (1_000 * TOKEN, 0, 0)
    with ape.reverts("staking: nothing thawing"):
        staked.cancel_undelegation(provider, sender=delegator)


def test_delegators_can_leave_while_collateral_is_locked(
    staked, provider, delegator, escrow_role, chain
):
    shares = warm_delegation(staked, chain, provider, 1_000 * TOKEN, delegator)
    staked.lock(provider, 10_000 * TOKEN, sender=escrow_role)
    staked.undelegate(provider, shares, sender=delegator)
    assert staked.delegation(provider, delegator).thawing == 1_000 * TOKEN


# ------------------------------------------------------------------ income


def test_income_splits_by_cut(staked, token, provider, delegator, alice, chain):
    warm_delegation(staked, chain, provider, 1_000 * TOKEN, delegator)
    warm_delegation(staked, chain, provider, 3_000 * TOKEN, alice)
    receipt = staked.add_income(provider, 800 * TOKEN, sender=alice)
    (event,) = receipt.decode_logs(staked.IncomeAdded)
    assert (event.payer, event.amount, event.to_delegators) == (alice, 800 * TOKEN, 400 * TOKEN)
    pool = staked.pool(provider)
    assert pool.own_stake == 10_400 * TOKEN
    assert pool.delegated_tokens == 4_400 * TOKEN
    # Pro rata: 1/4 and 3/4 of the 400 (virtual offset rounds down by at most 1 wei).
    assert 1_100 * TOKEN - 1 <= staked.delegation(provider, delegator).value <= 1_100 * TOKEN
    assert 3_300 * TOKEN - 1 <= staked.delegation(provider, alice).value <= 3_300 * TOKEN
    assert holdings(token, provider) == pool_total(pool)


def test_income_without_delegators_goes_to_provider(staked, provider, alice):
    staked.add_income(provider, 500 * TOKEN, sender=alice)
    assert staked.pool(provider).own_stake == 10_500 * TOKEN
    with ape.reverts("staking: zero amount"):
        staked.add_income(provider, 0, sender=alice)


# ------------------------------------------------------------------ collateral


def test_lock_and_release(staked, provider, escrow_role, alice):
    receipt = staked.lock(provider, 4_000 * TOKEN, sender=escrow_role)
    (event,) = receipt.decode_logs(staked.CollateralLocked)
    assert (event.locker, event.amount, event.locked) == (escrow_role, 4_000 * TOKEN, 4_000 * TOKEN)
    with ape.reverts("staking: insufficient free stake"):
        staked.lock(provider, 6_000 * TOKEN + 1, sender=escrow_role)
    receipt = staked.release(provider, 1_000 * TOKEN, 0, sender=escrow_role)
    (event,) = receipt.decode_logs(staked.CollateralUnlocked)
    assert (event.amount, event.locked) == (1_000 * TOKEN, 3_000 * TOKEN)
    # Releasing more than is locked releases what there is.
    receipt = staked.release(provider, 5_000 * TOKEN, 0, sender=escrow_role)
    (event,) = receipt.decode_logs(staked.CollateralUnlocked)
    assert (event.amount, event.locked) == (3_000 * TOKEN, 0)
    with ape.reverts("staking: caller is not a locker"):
        staked.lock(provider, 1, sender=alice)
    with ape.reverts("staking: caller is not a locker"):
        staked.release(provider, 1, 0, sender=alice)


def test_the_income_holder_keeps_the_cut_until_the_pool_pays_out(
    staked, token, deployer, provider, delegator, escrow_role, alice, chain
):
    """With an income holder named, its releases leave the delegators' cut with it: the
    pool's value rises, no token moves, and the cut shares the pool's locked word without
    disturbing the collateral. Another locker's cut is pulled at once. A payment collects
    the cut first only when the pool's custody account could not make it otherwise."""
    with ape.reverts("ownable: caller is not the owner"):
        staked.set_income_holder(escrow_role, sender=alice)
    with ape.reverts("staking: zero income holder"):
        staked.set_income_holder(ZERO, sender=deployer)
    receipt = staked.set_income_holder(escrow_role, sender=deployer)
    assert receipt.decode_logs(staked.IncomeHolderSet)[0].holder == escrow_role.address
    with ape.reverts("staking: income holder already set"):
        staked.set_income_holder(alice, sender=deployer)
    token.transfer(escrow_role, 1_000 * TOKEN, sender=deployer)
    token.approve(staked, 2**256 - 1, sender=escrow_role)
    shares = warm_delegation(staked, chain, provider, 10_000 * TOKEN, delegator)
    held = holdings(token, provider)

    staked.lock(provider, 3_000 * TOKEN, sender=escrow_role)
    receipt = staked.release(provider, 1_000 * TOKEN, 1_000 * TOKEN, sender=escrow_role)
    assert receipt.return_value == 500 * TOKEN  # the 50% cut
    assert not receipt.decode_logs(token.Transfer)
    assert staked.uncollected_income(provider) == 500 * TOKEN
    assert holdings(token, provider) == held
    staked.lock(provider, 500 * TOKEN, sender=escrow_role)  # the word keeps both
    pool = staked.pool(provider)
    assert (pool.locked, pool.delegated_tokens) == (2_500 * TOKEN, 10_500 * TOKEN)
    assert staked.uncollected_income(provider) == 500 * TOKEN

    staked.set_roles(alice, LOCKER, sender=deployer)  # another locker: pulled at once
    receipt = staked.release(provider, 0, 100 * TOKEN, sender=alice)
    assert receipt.return_value == 50 * TOKEN and holdings(token, provider) == held + 50 * TOKEN
    assert staked.uncollected_income(provider) == 500 * TOKEN

    staked.undelegate(provider, shares, sender=delegator)
    chain.pending_timestamp += staked.thawing_period()
    before, kept = token.balanceOf(delegator), token.balanceOf(escrow_role)
    receipt = staked.withdraw_delegation(provider, sender=delegator)
    # The pool's custody account can pay without the held income: it stays with the
    # holder, whose balance word the withdrawal does not touch.
    assert not receipt.decode_logs(staked.IncomeCollected)
    assert staked.uncollected_income(provider) == 500 * TOKEN
    assert token.balanceOf(escrow_role) == kept
    paid = receipt.return_value
    assert 10_550 * TOKEN - 2 <= paid <= 10_550 * TOKEN  # principal, both cuts, less rounding
    assert token.balanceOf(delegator) == before + paid
    assert holdings(token, provider) == pool_total(staked.pool(provider)) - 500 * TOKEN

    # The provider's whole stake leaving would overdraw the account: the income comes first.
    staked.release(provider, staked.pool(provider).locked, 0, sender=escrow_role)
    staked.request_thaw(staked.pool(provider).own_stake, sender=provider)
    chain.pending_timestamp += staked.thawing_period()
    receipt = staked.withdraw(sender=provider)
    (collected,) = receipt.decode_logs(staked.IncomeCollected)
    assert collected.event_arguments["amount"] == 500 * TOKEN
    assert staked.uncollected_income(provider) == 0
    assert token.balanceOf(escrow_role) == kept - 500 * TOKEN
    assert holdings(token, provider) == pool_total(staked.pool(provider)) < 3


def test_each_pool_has_its_own_custody_account(staking, token, provider, delegator, alice, chain):
    """Two pools, two custody accounts: a stake, a delegation and a withdrawal move tokens
    in and out of their own pool's account only, and Staking's balance stays empty."""
    staking.stake(10_000 * TOKEN, sender=provider)
    receipt = staking.stake(5_000 * TOKEN, sender=alice)
    [moved] = receipt.decode_logs(token.Transfer)
    assert (moved.sender, moved.receiver) == (alice.address, token.custody_account(staking, alice))
    warm_delegation(staking, chain, provider, 2_000 * TOKEN, delegator)
    assert (holdings(token, provider), holdings(token, alice)) == (12_000 * TOKEN, 5_000 * TOKEN)
    staking.request_thaw(1_000 * TOKEN, sender=alice)
    chain.pending_timestamp += staking.thawing_period()
    staking.withdraw(sender=alice)
    assert (holdings(token, provider), holdings(token, alice)) == (12_000 * TOKEN, 4_000 * TOKEN)
    assert token.balanceOf(staking) == 0
    assert token.custody_account(staking, provider) != token.custody_account(staking, alice)


def test_a_donation_to_a_pools_custody_account_pays_nobody(
    staked, token, deployer, provider, delegator, chain
):
    """Tokens sent straight to a pool's custody account change no pool's books: the
    provider still withdraws exactly its stake, and the donation stays behind."""
    warm_delegation(staked, chain, provider, 1_000 * TOKEN, delegator)
    before = staked.pool(provider)
    token.transfer(token.custody_account(staked, provider), 500 * TOKEN, sender=deployer)
    assert staked.pool(provider) == before
    staked.request_thaw(10_000 * TOKEN, sender=provider)
    staked.undelegate(provider, staked.delegation(provider, delegator).shares, sender=delegator)
    chain.pending_timestamp += staked.thawing_period()
    wallet = token.balanceOf(provider)
    staked.withdraw(sender=provider)
    assert token.balanceOf(provider) == wallet + 10_000 * TOKEN
    paid = staked.withdraw_delegation(provider, sender=delegator).return_value
    assert 1_000 * TOKEN - 2 <= paid <= 1_000 * TOKEN
    assert holdings(token, provider) == 500 * TOKEN + (1_000 * TOKEN - paid)


# ------------------------------------------------------------------ slashing


def test_slash_takes_own_stake_first_and_pays_a_bounded_reward(
    staked, token, provider, delegator, escrow_role, alice, treasury, chain
):
    warm_delegation(staked, chain, provider, 10_000 * TOKEN, delegator)
    staked.lock(provider, 2_000 * TOKEN, sender=escrow_role)
    alice_before, treasury_before = token.balanceOf(alice), token.balanceOf(treasury)
    receipt = staked.slash(provider, 2_000 * TOKEN, 2_000 * TOKEN, alice, MAX, sender=escrow_role)
    assert receipt.return_value == 2_000 * TOKEN
    (event,) = receipt.decode_logs(staked.Slashed)
    # The provider pays its fault alone while its own stake lasts.
    assert (event.from_own_stake, event.from_delegated) == (2_000 * TOKEN, 0)
    assert (event.from_own_thawing, event.from_delegated_thawing) == (0, 0)
    assert (event.reward, event.remainder, event.burned) == (500 * TOKEN, 1_500 * TOKEN, False)
    pool = staked.pool(provider)
    assert (pool.own_stake, pool.delegated_tokens, pool.locked) == (
        8_000 * TOKEN,
        10_000 * TOKEN,
        0,
    )
    assert staked.delegation(provider, delegator).value == pytest.approx(10_000 * TOKEN, abs=1)
    assert token.balanceOf(alice) == alice_before + 500 * TOKEN
    assert token.balanceOf(treasury) == treasury_before + 1_500 * TOKEN
    assert holdings(token, provider) == pool_total(pool)
    # The caller caps the reward (JobEscrow passes the job's price).
    receipt = staked.slash(provider, 1_000 * TOKEN, 0, alice, 100 * TOKEN, sender=escrow_role)
    (event,) = receipt.decode_logs(staked.Slashed)
    assert (event.reward, event.remainder) == (100 * TOKEN, 900 * TOKEN)


def test_slash_reaches_delegators_only_beyond_the_providers_own_stake(
    staked, token, provider, delegator, escrow_role, deployer, alice, chain
):
    shares = warm_delegation(staked, chain, provider, 10_000 * TOKEN, delegator)
    staked.request_thaw(6_000 * TOKEN, sender=provider)
    staked.undelegate(provider, shares // 2, sender=delegator)
    # Own: 4,000 bonded + 6,000 thawing; delegated: 5,000 bonded + 5,000 thawing.
    staked.set_parameter(BURN_SLASHED, 1, sender=deployer)
    supply = token.totalSupply()
    receipt = staked.slash(provider, 14_500 * TOKEN, 0, alice, MAX, sender=escrow_role)
    (event,) = receipt.decode_logs(staked.Slashed)
    assert (event.from_own_stake, event.from_own_thawing) == (4_000 * TOKEN, 6_000 * TOKEN)
    # The 4,500 beyond: bonded and thawing delegated stake pro rata (undelegating after
    # a fault does not dodge it).
    assert (event.from_delegated, event.from_delegated_thawing) == (2_250 * TOKEN, 2_250 * TOKEN)
    # The beneficiary's share comes only from what the provider itself lost.
    assert (event.reward, event.remainder, event.burned) == (2_500 * TOKEN, 12_000 * TOKEN, True)
    assert token.totalSupply() == supply - 12_000 * TOKEN
    assert staked.delegation(provider, delegator).thawing == pytest.approx(2_750 * TOKEN, abs=1)
    # Whatever is asked, a slash never takes more than the pool holds; with the provider's
    # own stake gone a beneficiary gets nothing.
    receipt = staked.slash(provider, 10**30, 0, alice, MAX, sender=escrow_role)
    assert receipt.return_value == 5_500 * TOKEN
    (event,) = receipt.decode_logs(staked.Slashed)
    assert event.reward == 0
    pool = staked.pool(provider)
    assert pool_total(pool) == 0
    assert holdings(token, provider) == 0


def test_slash_clamps_locked_to_own_stake(staked, provider, escrow_role):
    staked.lock(provider, 8_000 * TOKEN, sender=escrow_role)
    staked.slash(provider, 5_000 * TOKEN, 0, ZERO, 0, sender=escrow_role)
    pool = staked.pool(provider)
    assert pool.own_stake == 5_000 * TOKEN
    assert pool.locked == 5_000 * TOKEN


def test_slash_requires_role(staked, provider, alice):
    before = staked.pool(provider)
    with ape.reverts("staking: caller is not a slasher"):
        staked.slash(provider, 1, 0, alice, MAX, sender=alice)
    assert staked.pool(provider) == before


# ------------------------------------------------------------------ votes of bonded stake


def test_staked_tokens_keep_their_votes(
    staking, token, provider, delegator, escrow_role, alice, chain
):
    for account in (provider, delegator):
        delegate(token, account, account)
    before = {a: token.getVotes(a) for a in (provider, delegator)}
    staking.stake(10_000 * TOKEN, sender=provider)
    warm_delegation(staking, chain, provider, 4_000 * TOKEN, delegator)
    assert token.bonded_of(provider) == 10_000 * TOKEN
    assert token.bonded_of(delegator) == 4_000 * TOKEN
    assert {a: token.getVotes(a) for a in (provider, delegator)} == before
    assert staking.delegation(provider, delegator).votes == 4_000 * TOKEN

    # Income to the provider's own stake votes for it; a slash of its own stake stops voting.
    staking.add_income(provider, 1_000 * TOKEN, sender=alice)
    assert token.bonded_of(provider) == 11_000 * TOKEN
    tx = staking.slash(provider, 1_500 * TOKEN, 0, ZERO, 0, sender=escrow_role)
    [slash] = tx.decode_logs(staking.Slashed)
    assert token.bonded_of(provider) == 11_000 * TOKEN - slash.from_own_stake
    assert token.getVotes(provider) == token.balanceOf(provider) + token.bonded_of(provider)

    # A delegator keeps its units while thawing and gives up the withdrawn part's units.
    shares = staking.delegation(provider, delegator).shares
    staking.undelegate(provider, shares // 4, sender=delegator)
    assert token.bonded_of(delegator) == 4_000 * TOKEN
    assert staking.delegation(provider, delegator).votes == 4_000 * TOKEN
    chain.pending_timestamp += 14 * DAY
    paid = staking.withdraw_delegation(provider, sender=delegator).return_value
    assert token.bonded_of(delegator) == 3_000 * TOKEN
    assert staking.delegation(provider, delegator).votes == 3_000 * TOKEN
    assert token.getVotes(delegator) == before[delegator] - 4_000 * TOKEN + paid + 3_000 * TOKEN


def test_withdrawn_own_stake_stops_counting_as_bonded(staked, token, provider, chain):
    delegate(token, provider, provider)
    votes = token.getVotes(provider)
    staked.request_thaw(4_000 * TOKEN, sender=provider)
    assert token.getVotes(provider) == votes
    chain.pending_timestamp += 14 * DAY
    staked.withdraw(sender=provider)
    assert token.bonded_of(provider) == 6_000 * TOKEN
    assert token.getVotes(provider) == votes


def test_cancelled_undelegation_keeps_its_units(staked, token, provider, delegator, chain):
    warm_delegation(staked, chain, provider, 2_000 * TOKEN, delegator)
    shares = staked.delegation(provider, delegator).shares
    staked.undelegate(provider, shares, sender=delegator)
    staked.cancel_undelegation(provider, sender=delegator)
    assert staked.delegation(provider, delegator).votes == 2_000 * TOKEN
    assert token.bonded_of(delegator) == 2_000 * TOKEN
