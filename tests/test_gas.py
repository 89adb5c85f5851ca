"""The gas split the escrow benchmark prints: every unit of a real transaction's gas is
accounted for, and storage words, calls and events land with the contract that ran."""

from __future__ import annotations

from devtools.gas import receipt_breakdown
from tests.helpers import TOKEN


def test_breakdown_of_deposits_adds_up_and_sees_the_new_word(market, token, deployer, alice, chain):
    m = market
    token.transfer(alice, 1_000 * TOKEN, sender=deployer)
    token.approve(m.escrow, 2**256 - 1, sender=alice)
    names = {m.escrow.address.lower(): "JobEscrow", token.address.lower(): "ComputeToken"}
    first = m.escrow.deposit(100 * TOKEN, sender=alice)
    second = m.escrow.deposit(100 * TOKEN, sender=alice)
    parts = [receipt_breakdown(chain.provider, r, names) for r in (first, second)]
    for receipt, split in zip((first, second), parts, strict=True):
        assert sum(split.values()) == receipt.gas_used
        assert split["base (21,000 per transaction)"] == 21_000
        # Nothing is cleared, so nothing is refunded.
        assert split["refunds"] == 0
        # One call into the token (custody_deposit into alice's shard): one cold account
        # access (2,600); the staked token moves exact amounts, so no balance is read
        # around it.
        assert split["ComputeToken: calls into it"] == 2_600
        assert split["JobEscrow: events"] > 0 and split["ComputeToken: events"] > 0
    # Alice's first deposit creates her escrow balance word and opens the account of her
    # deposit shard in the token, which nobody had used (each read first, so 20,000 to
    # create it); the second rewrites both.
    assert token.balanceOf(m.escrow_view.deposit_shard(alice)[1]) == 200 * TOKEN
    assert parts[0]["new storage words"] == 2 * 20_000
    assert "new storage words" not in parts[1]
    assert parts[0]["JobEscrow: storage"] == parts[1]["JobEscrow: storage"] - 2_900
