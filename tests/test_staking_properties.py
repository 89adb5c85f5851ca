"""Stateful property test of Staking against a Python model.

Pool-level amounts (own stake, locked, thawing, delegated tokens) follow the contract's
integer rules exactly. Each delegator's value is modelled with exact fractions: income
and slashes are shared pro rata among the delegators and the pool's virtual depositor
(the 10**6-share offset behaves like a 1-wei holder), so the contract may differ from the
model only by rounding: at most 1 wei per operation.
"""

from __future__ import annotations

from fractions import Fraction

import ape
from hypothesis import strategies as st
from hypothesis.stateful import (
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.ape_speed import read_all
from tests.helpers import DAY, TOKEN, CountedMachine, custody_accounts

BPS = 10_000
VIRTUAL = "virtual"
amounts = st.integers(1, 5_000).map(lambda n: n * TOKEN // 10)
delegations = st.integers(50, 5_000).map(lambda n: n * TOKEN)


class PoolModel:
    """Exact fractions of one share pool: each holder's value, plus the virtual depositor."""

    def __init__(self):
        self.value: dict[str, Fraction] = {VIRTUAL: Fraction(1)}

    def total(self) -> Fraction:
        return sum(self.value.values(), Fraction(0))

    def add(self, holder: str, amount: int) -> None:
        self.value[holder] = self.value.get(holder, Fraction(0)) + amount

    def remove(self, holder: str, fraction: Fraction) -> Fraction:
        moved = self.value.get(holder, Fraction(0)) * fraction
        self.value[holder] = self.value.get(holder, Fraction(0)) - moved
        return moved

    def change(self, delta: Fraction | int) -> None:
        """Spread income (positive) or a slash (negative) pro rata over every holder."""
        total = self.total()
        if total:
            for holder in self.value:
                self.value[holder] += delta * self.value[holder] / total


class StakingMachine(CountedMachine):
    def __init__(self, staking, token, provider, delegators, escrow, payer, chain):
        super().__init__()
        self.staking, self.token, self.provider = staking, token, provider
        self.delegators, self.escrow, self.payer, self.chain = delegators, escrow, payer, chain
        self.snapshot = chain.snapshot()
        staking.stake(20_000 * TOKEN, sender=provider)
        staking.set_delegator_cut(6_000, sender=provider)
        self.own, self.locked, self.own_thawing = 20_000 * TOKEN, 0, 0
        self.delegated_tokens, self.thawing_tokens, self.warming_tokens = 0, 0, 0
        # Warming positions are a share pool too: slashed pro rata, never paid income.
        self.warming: set[str] = set()
        self.bonded_pool, self.thaw_pool, self.warm_pool = PoolModel(), PoolModel(), PoolModel()
        self.operations = 0

    def teardown(self):
        self.chain.restore(self.snapshot)

    def _delegator(self, index):
        return self.delegators[index % len(self.delegators)]

    def _position(self, account):
        return self.staking.delegation(self.provider, account)

    def _warmed(self, account) -> bool:
        """Warmed up, and the pool has room for it under the cap (else it stays out)."""
        position = self._position(account)
        if account.address not in self.warming:
            return False
        if self.chain.pending_timestamp < position.warm_until:
            return False
        return self.delegated_tokens + position.warming <= self.own * 10

    def _activate(self, account):
        """Activates `account`'s warmed-up tokens (a transaction of its own, so the rule
        that follows sees the shares) and moves them in the model."""
        self.warming.remove(account.address)
        amount = self._position(account).warming
        receipt = self.staking.activate(self.provider, account, sender=self.payer)
        (event,) = receipt.decode_logs(self.staking.DelegationActivated)
        assert event.amount == amount
        self._leave_warm_pool(account, amount)
        self.delegated_tokens += amount
        self.bonded_pool.add(account.address, amount)
        self.operations += 1

    def _leave_warm_pool(self, account, amount):
        """Takes `account`'s whole warm-up, worth `amount` on chain, out of the model's
        warming pool (rounding dust stays, shared by who remains)."""
        moved = self.warm_pool.remove(account.address, Fraction(1))
        assert abs(amount - moved) <= self.operations + 1
        self.warm_pool.change(moved - amount)
        self.warming_tokens -= amount

    # ------------------------------------------------------------ provider

    @rule(amount=amounts)
    def stake(self, amount):
        if self.own + amount < 1_000 * TOKEN:
            with ape.reverts("staking: stake below minimum"):
                self.staking.stake(amount, sender=self.provider)
            return
        self.staking.stake(amount, sender=self.provider)
        self.own += amount

    @rule(share=st.integers(1, 100))
    def request_thaw(self, share):
        amount = (self.own - self.locked) * share // 100
        if amount == 0:
            with ape.reverts("staking: zero amount"):
                self.staking.request_thaw(0, sender=self.provider)
            return
        self.staking.request_thaw(amount, sender=self.provider)
        self.own -= amount
        self.own_thawing += amount

    @precondition(lambda self: self.own_thawing > 0)
    @rule()
    def withdraw_or_wait(self):
        unlock = self.staking.pool(self.provider).own_unlock_at
        if self.chain.pending_timestamp < unlock:
            with ape.reverts("staking: still thawing"):
                self.staking.withdraw(sender=self.provider)
            return
        before = self.token.balanceOf(self.provider)
        self.staking.withdraw(sender=self.provider)
        assert self.token.balanceOf(self.provider) - before == self.own_thawing
        self.own_thawing = 0

    # ------------------------------------------------------------ delegators

    @rule(index=st.integers(0, 2), amount=delegations, min_cut=st.sampled_from([0, 6_000, 6_001]))
    def delegate(self, index, amount, min_cut):
        account = self._delegator(index)
        if amount < 100 * TOKEN:
            with ape.reverts("staking: delegation below minimum"):
                self.staking.delegate_to(self.provider, amount, min_cut, sender=account)
            return
        if min_cut > 6_000:
            with ape.reverts("staking: delegator cut below minimum"):
                self.staking.delegate_to(self.provider, amount, min_cut, sender=account)
            return
        if self.own == 0:
            with ape.reverts("staking: provider has no stake"):
                self.staking.delegate_to(self.provider, amount, min_cut, sender=account)
            return
        if self.delegated_tokens + amount > self.own * 10:
            with ape.reverts("staking: delegation over cap"):
                self.staking.delegate_to(self.provider, amount, min_cut, sender=account)
            return
        if self._warmed(account):
            self._activate(account)
        self.staking.delegate_to(self.provider, amount, min_cut, sender=account)
        self.warming.add(account.address)
        self.warm_pool.add(account.address, amount)
        self.warming_tokens += amount
        self.operations += 1

    @rule(index=st.integers(0, 2))
    def activate_or_cancel_warmup(self, index):
        account = self._delegator(index)
        position = self._position(account)
        if account.address not in self.warming:
            with ape.reverts("staking: nothing warming"):
                self.staking.activate(self.provider, account, sender=self.payer)
            return
        if self._warmed(account):
            self._activate(account)
            return
        if self.chain.pending_timestamp < position.warm_until:
            with ape.reverts("staking: still warming up"):
                self.staking.activate(self.provider, account, sender=self.payer)
        else:
            with ape.reverts("staking: delegation over cap"):
                self.staking.activate(self.provider, account, sender=self.payer)
        # A warm-up leaves through thawing: nothing is paid now, the value moves over.
        before = self.token.balanceOf(account)
        receipt = self.staking.cancel_warmup(self.provider, sender=account)
        assert receipt.return_value == position.warming
        assert self.token.balanceOf(account) == before
        self.warming.remove(account.address)
        self._leave_warm_pool(account, position.warming)
        self.thawing_tokens += position.warming
        self.thaw_pool.add(account.address, position.warming)
        self.operations += 1

    @rule(index=st.integers(0, 2), share=st.integers(1, 100))
    def undelegate(self, index, share):
        account = self._delegator(index)
        if self._warmed(account):
            self._activate(account)
        held = self._position(account).shares
        shares = held * share // 100
        if shares == 0:
            return
        receipt = self.staking.undelegate(self.provider, shares, sender=account)
        amount = receipt.return_value
        moved = self.bonded_pool.remove(account.address, Fraction(shares, held))
        assert abs(amount - moved) <= self.operations + 1
        self.delegated_tokens -= amount
        self.thawing_tokens += amount
        # Rounding dust (below 1 wei) stays in the bonded pool, shared by who remains.
        self.bonded_pool.change(moved - amount)
        self.thaw_pool.add(account.address, amount)
        self.operations += 1

    @rule(index=st.integers(0, 2))
    def withdraw_delegation_or_wait(self, index):
        account = self._delegator(index)
        position = self._position(account)
        if position.unlock_at == 0:
            with ape.reverts("staking: nothing thawing"):
                self.staking.withdraw_delegation(self.provider, sender=account)
            return
        if self.chain.pending_timestamp < position.unlock_at:
            with ape.reverts("staking: still thawing"):
                self.staking.withdraw_delegation(self.provider, sender=account)
            return
        if position.thawing == 0:
            with ape.reverts("staking: nothing thawing"):
                self.staking.withdraw_delegation(self.provider, sender=account)
            return
        receipt = self.staking.withdraw_delegation(self.provider, sender=account)
        moved = self.thaw_pool.remove(account.address, Fraction(1))
        assert abs(receipt.return_value - moved) <= self.operations + 1
        self.thawing_tokens -= receipt.return_value
        self.thaw_pool.change(moved - receipt.return_value)
        self.operations += 1

    @rule(index=st.integers(0, 2))
    def cancel_undelegation(self, index):
        account = self._delegator(index)
        if self._warmed(account):
            self._activate(account)
        position = self._position(account)
        if position.thawing == 0:
            return
        if self.chain.pending_timestamp < position.warm_until:
            # A warm-up runs (or a cancelled one would): the tokens rejoin through it.
            receipt = self.staking.cancel_undelegation(self.provider, sender=account)
            assert receipt.return_value == 0
            moved = self.thaw_pool.remove(account.address, Fraction(1))
            self.thaw_pool.change(moved - position.thawing)
            self.thawing_tokens -= position.thawing
            self.warming_tokens += position.thawing
            self.warming.add(account.address)
            self.warm_pool.add(account.address, position.thawing)
            self.operations += 1
            return
        if self.own == 0:
            with ape.reverts("staking: provider has no stake"):
                self.staking.cancel_undelegation(self.provider, sender=account)
            return
        if self.delegated_tokens + position.thawing > self.own * 10:
            with ape.reverts("staking: delegation over cap"):
                self.staking.cancel_undelegation(self.provider, sender=account)
            return
        self.staking.cancel_undelegation(self.provider, sender=account)
        moved = self.thaw_pool.remove(account.address, Fraction(1))
        self.thaw_pool.change(moved - position.thawing)
        self.thawing_tokens -= position.thawing
        self.delegated_tokens += position.thawing
        self.bonded_pool.add(account.address, position.thawing)
        self.operations += 1

    # ------------------------------------------------------------ income, collateral, slashing

    @rule(amount=amounts)
    def income(self, amount):
        pool = self.staking.pool(self.provider)
        self.staking.add_income(self.provider, amount, sender=self.payer)
        to_delegators = amount * 6_000 // BPS if pool.delegated_shares else 0
        self.delegated_tokens += to_delegators
        self.own += amount - to_delegators
        self.bonded_pool.change(to_delegators)
        self.operations += 1

    @rule(share=st.integers(0, 100))
    def lock(self, share):
        amount = (self.own - self.locked) * share // 100
        self.staking.lock(self.provider, amount, sender=self.escrow)
        self.locked += amount

    @rule(extra=st.integers(1, 10**22))
    def lock_over_free_fails(self, extra):
        with ape.reverts("staking: insufficient free stake"):
            self.staking.lock(self.provider, self.own - self.locked + extra, sender=self.escrow)

    @rule(share=st.integers(0, 120))
    def release(self, share):
        amount = self.locked * share // 100
        self.staking.release(self.provider, amount, 0, sender=self.escrow)
        self.locked -= min(amount, self.locked)

    @rule(share=st.integers(0, 150), unlock_share=st.integers(0, 100), rewarded=st.booleans())
    def slash(self, share, unlock_share, rewarded):
        held = self.own + self.delegated_tokens + self.own_thawing + self.thawing_tokens
        held += self.warming_tokens
        amount = held * share // 100
        unlock_amount = self.locked * unlock_share // 100
        beneficiary = (
            self.payer.address if rewarded else "0x0000000000000000000000000000000000000000"
        )
        receipt = self.staking.slash(
            self.provider, amount, unlock_amount, beneficiary, 2**256 - 1, sender=self.escrow
        )
        (event,) = receipt.decode_logs(self.staking.Slashed)
        # Never more than the pool holds, and exactly what was asked when it holds enough.
        assert receipt.return_value == min(amount, held)
        # The provider first (own, then own thawing); delegators only beyond, pro rata.
        from_own = min(amount, self.own)
        from_own_thawing = min(amount - from_own, self.own_thawing)
        outside = self.thawing_tokens + self.warming_tokens
        delegated = self.delegated_tokens + outside
        beyond = min(amount - from_own - from_own_thawing, delegated)
        from_delegated = beyond * self.delegated_tokens // delegated if delegated else 0
        rest = beyond - from_delegated
        from_warming = rest * self.warming_tokens // outside if outside else 0
        from_delegated_thawing = rest - from_warming
        assert (event.from_own_stake, event.from_own_thawing) == (from_own, from_own_thawing)
        assert (event.from_delegated, event.from_delegated_thawing, event.from_warming) == (
            from_delegated,
            from_delegated_thawing,
            from_warming,
        )
        # The beneficiary's share comes only from what the provider itself lost.
        reward = (from_own + from_own_thawing) * 2_500 // BPS if rewarded else 0
        assert event.reward == reward
        self.own -= from_own
        self.delegated_tokens -= from_delegated
        self.own_thawing -= from_own_thawing
        self.thawing_tokens -= from_delegated_thawing
        self.warming_tokens -= from_warming
        self.locked = min(self.locked - min(unlock_amount, self.locked), self.own)
        self.bonded_pool.change(-from_delegated)
        self.thaw_pool.change(-from_delegated_thawing)
        self.warm_pool.change(-from_warming)
        self.operations += 1

    @rule(seconds=st.sampled_from([1, DAY, 7 * DAY, 15 * DAY]))
    def advance_time(self, seconds):
        self.chain.pending_timestamp += seconds

    # ------------------------------------------------------------ invariants

    @invariant()
    def pool_matches_model(self):
        pool = self.staking.pool(self.provider)
        assert (pool.own_stake, pool.locked, pool.own_thawing) == (
            self.own,
            self.locked,
            self.own_thawing,
        )
        assert (pool.delegated_tokens, pool.thawing_tokens, pool.warming_tokens) == (
            self.delegated_tokens,
            self.thawing_tokens,
            self.warming_tokens,
        )
        assert pool.locked <= pool.own_stake

    @invariant()
    def tokens_held_equal_pool_buckets(self):
        held = self.own + self.own_thawing + self.delegated_tokens + self.thawing_tokens
        # In the pool's custody account; Staking's own balance stays empty.
        (custody,) = custody_accounts(self.token, [self.provider])
        in_pool, in_staking = read_all(
            (self.token.balanceOf, custody), (self.token.balanceOf, self.staking)
        )
        assert in_pool == held + self.warming_tokens
        assert in_staking == 0

    @invariant()
    def delegator_values_follow_model(self):
        total_value, total_thawing, total_warming = 0, 0, 0
        positions = read_all(
            *((self.staking.delegation, self.provider, a) for a in self.delegators)
        )
        for account, position in zip(self.delegators, positions, strict=True):
            expected = self.bonded_pool.value.get(account.address, Fraction(0))
            expected_thawing = self.thaw_pool.value.get(account.address, Fraction(0))
            assert abs(position.value - expected) <= self.operations + 1, (
                position.value,
                float(expected),
            )
            assert abs(position.thawing - expected_thawing) <= self.operations + 1
            expected_warming = self.warm_pool.value.get(account.address, Fraction(0))
            assert abs(position.warming - expected_warming) <= self.operations + 1
            total_value += position.value
            total_thawing += position.thawing
            total_warming += position.warming
        # Shares never claim more than the pool holds.
        assert total_value <= self.delegated_tokens
        assert total_thawing <= self.thawing_tokens
        assert total_warming <= self.warming_tokens


def test_staking_state_machine(
    staking, token, provider, delegator, alice, bob, escrow_role, deployer, chain
):
    token.approve(staking, 2**256 - 1, sender=deployer)
    run_state_machine_as_test(
        lambda: StakingMachine(
            staking, token, provider, [delegator, alice, bob], escrow_role, deployer, chain
        )
    )
