"""Property tests: random sequences of token operations against a plain Python model.

After every step: balances, delegates, current votes and supply match the model, and the
balances sum to totalSupply. At the end of each example: `getPastVotes` and
`getPastTotalSupply` match the model at every timestamp the example produced.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import ape
from hypothesis import strategies as st
from hypothesis.stateful import (
    invariant,
    rule,
    run_state_machine_as_test,
)

from computeshare.signing import sign_delegation, sign_permit
from tests.ape_speed import read_all
from tests.helpers import TOKEN, CountedMachine, delegate

ZERO = "0x0000000000000000000000000000000000000000"


@dataclass
class TokenModel:
    """What the token should hold: balances, delegation, and the history of votes and supply."""

    balances: dict[str, int]
    delegates: dict[str, str] = field(default_factory=dict)
    # timestamp -> (votes per delegatee, total supply) at the end of that timestamp
    history: dict[int, tuple[dict[str, int], int]] = field(default_factory=dict)

    @property
    def supply(self) -> int:
        return sum(self.balances.values())

    def votes(self) -> dict[str, int]:
        votes: dict[str, int] = {}
        for holder, balance in self.balances.items():
            to = self.delegates.get(holder, ZERO)
            if to != ZERO:
                votes[to] = votes.get(to, 0) + balance
        return votes

    def record(self, timestamp: int) -> None:
        self.history[timestamp] = (self.votes(), self.supply)

    def at(self, timepoint: int) -> tuple[dict[str, int], int] | None:
        past = [t for t in self.history if t <= timepoint]
        return self.history[max(past)] if past else None


class TokenMachine(CountedMachine):
    def __init__(self, token, owner, holders, chain, chain_id):
        super().__init__()
        self.token, self.owner, self.holders, self.chain = token, owner, holders, chain
        self.chain_id = chain_id
        self.snapshot = chain.snapshot()
        everyone = [owner, *holders]
        self.model = TokenModel({a.address: token.balanceOf(a) for a in everyone})
        self.start = chain.blocks.head.timestamp
        self.model.record(self.start)

    def teardown(self):
        try:
            self._check_history()
        finally:
            self.chain.restore(self.snapshot)

    # ------------------------------------------------------------ helpers

    def _pick(self, index: int):
        return self.holders[index % len(self.holders)]

    def _done(self, receipt) -> None:
        """Records the model, already updated by the rule, at the transaction's timestamp."""
        self.model.record(receipt.timestamp)

    def _check_history(self) -> None:
        self.chain.pending_timestamp += 1
        self.chain.mine()
        stamps = sorted(self.model.history)
        points = set(stamps) | {t - 1 for t in stamps if t - 1 > self.start}
        accounts = [a.address for a in (self.owner, *self.holders)]
        points = sorted(points)
        token = self.token
        answers = iter(
            read_all(
                *(
                    call
                    for t in points
                    for call in (
                        (token.getPastTotalSupply, t),
                        *((token.getPastVotes, a, t) for a in accounts),
                    )
                )
            )
        )
        for t in points:
            expected = self.model.at(t)
            assert expected is not None
            votes, supply = expected
            assert next(answers) == supply, t
            for a in accounts:
                assert next(answers) == votes.get(a, 0), (a, t)

    # ------------------------------------------------------------ rules

    @rule(sender=st.integers(0, 3), receiver=st.integers(0, 3), share=st.integers(0, 100))
    def transfer(self, sender, receiver, share):
        src, dst = self._pick(sender), self._pick(receiver)
        amount = self.model.balances[src.address] * share // 100
        receipt = self.token.transfer(dst, amount, sender=src)
        self.model.balances[src.address] -= amount
        self.model.balances[dst.address] += amount
        self._done(receipt)

    @rule(sender=st.integers(0, 3), receiver=st.integers(0, 3), extra=st.integers(1, 10**24))
    def transfer_over_balance_fails(self, sender, receiver, extra):
        src, dst = self._pick(sender), self._pick(receiver)
        with ape.reverts("compute_token: transfer amount exceeds balance"):
            self.token.transfer(dst, self.model.balances[src.address] + extra, sender=src)

    @rule(holder=st.integers(0, 3), to=st.integers(-1, 3))
    def delegate(self, holder, to):
        account = self._pick(holder)
        target = ZERO if to < 0 else self._pick(to).address
        receipt = delegate(self.token, target, account)
        self.model.delegates[account.address] = target
        self._done(receipt)

    @rule(holder=st.integers(0, 3), to=st.integers(0, 3), relayer=st.integers(0, 3))
    def delegate_by_sig(self, holder, to, relayer):
        account, target = self._pick(holder), self._pick(to)
        nonce = self.token.nonces(account)
        expiry = self.chain.pending_timestamp + 3_600
        sig = sign_delegation(
            account.private_key,
            chain_id=self.chain_id,
            token=self.token.address,
            delegatee=target.address,
            nonce=nonce,
            expiry=expiry,
        )
        receipt = self.token.delegateBySig(
            target, nonce, expiry, *sig.args, sender=self._pick(relayer)
        )
        self.model.delegates[account.address] = target.address
        self._done(receipt)

    @rule(owner=st.integers(0, 3), spender=st.integers(0, 3), share=st.integers(0, 100))
    def permit_then_transfer_from(self, owner, spender, share):
        src, relayer = self._pick(owner), self._pick(spender)
        value = self.model.balances[src.address] * share // 100
        deadline = self.chain.pending_timestamp + 3_600
        nonce = self.token.nonces(src)
        sig = sign_permit(
            src.private_key,
            chain_id=self.chain_id,
            token=self.token.address,
            owner=src.address,
            spender=relayer.address,
            value=value,
            nonce=nonce,
            deadline=deadline,
        )
        self.token.permit(src, relayer, value, deadline, *sig.args, sender=relayer)
        assert self.token.allowance(src, relayer) == value
        assert self.token.nonces(src) == nonce + 1
        receipt = self.token.transferFrom(src, self.owner, value, sender=relayer)
        self.model.balances[src.address] -= value
        self.model.balances[self.owner.address] += value
        self._done(receipt)
        assert self.token.allowance(src, relayer) == 0

    @rule(to=st.integers(0, 3), share=st.integers(0, 100))
    def mint(self, to, share):
        amount = self.token.mintable() * share // 100
        receipt = self.token.mint(self._pick(to), amount, sender=self.owner)
        self.model.balances[self._pick(to).address] += amount
        self._done(receipt)

    @rule(holder=st.integers(0, 3), share=st.integers(0, 100))
    def burn(self, holder, share):
        account = self._pick(holder)
        amount = self.model.balances[account.address] * share // 100
        receipt = self.token.burn(amount, sender=account)
        self.model.balances[account.address] -= amount
        self._done(receipt)

    @rule(seconds=st.sampled_from([0, 1, 13, 3_600, 86_400]))
    def advance_time(self, seconds):
        self.chain.pending_timestamp += seconds

    # ------------------------------------------------------------ invariants

    @invariant()
    def balances_match_model_and_sum_to_supply(self):
        accounts = list(self.model.balances)
        *balances, supply = read_all(
            *((self.token.balanceOf, a) for a in accounts), (self.token.totalSupply,)
        )
        onchain = dict(zip(accounts, balances, strict=True))
        assert onchain == self.model.balances
        assert sum(onchain.values()) == supply == self.model.supply

    @invariant()
    def votes_equal_delegated_balances(self):
        votes = self.model.votes()
        accounts = list(self.model.balances)
        answers = read_all(
            *(
                call
                for a in accounts
                for call in ((self.token.getVotes, a), (self.token.delegates, a))
            )
        )
        for n, account in enumerate(accounts):
            assert answers[2 * n] == votes.get(account, 0)
            assert answers[2 * n + 1] == self.model.delegates.get(account, ZERO)


def test_token_state_machine(funded, deployer, alice, bob, carol, accounts, chain, chain_id):
    dave = accounts[4]
    funded.transfer(dave, 1_000 * TOKEN, sender=deployer)
    run_state_machine_as_test(
        lambda: TokenMachine(funded, deployer, [alice, bob, carol, dave], chain, chain_id)
    )
