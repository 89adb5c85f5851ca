"""Whole-system stateful property test over the suite as `ape run deploy` builds it (every
owner role with the timelock, the timelock as treasury, an arbiter and a guardian).

The job market of test_escrow_properties (clients; honest, faulty and silent providers;
disputes, rulings, keepers, time) runs here next to clients matching providers' signed
offers, delegators joining and leaving pools (and changing their minds), providers staking,
thawing and setting their delegator cut, keepers sweeping fees to the treasury, the guardian
pausing new work, strangers trying to set parameters, and token holders passing DAO
proposals that change parameters (within bounds, or out of bounds so that execution
fails). Checked after every step, besides the escrow's own invariants:

- every ComputeToken is held by a known account or contract: the balances add up to the
  total supply, which only falls, and only while slashes are burned by DAO decision;
- every parameter of every contract equals what executed proposals set, within bounds;
- Staking holds exactly its pools, and no pool's locked collateral exceeds its stake;
- a coalition of accounts under one owner (a provider, a client, a delegator, a keeper)
  never gains from a settlement or a slash of its own job, and a slash reaches delegators
  only beyond the provider's own stake.

At the end every deadline passes, every job settles, and everyone withdraws what the
contracts say is theirs: escrow balances, delegations and own stake, for real.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from tests.system_machine import SystemMachine, fund_actors, system_actors


def test_system_state_machine(dao, deployer, accounts, arbiter, keeper, guardian, chain):
    """The system as deployed, under random use by every role."""
    m = dao
    actors = system_actors(accounts, deployer)
    # The deployment named these as its arbiter and guardian; the voters hold their votes.
    assert (actors["arbiter"], actors["keeper"], actors["guardian"]) == (arbiter, keeper, guardian)
    fund_actors(m, chain, deployer, actors, voter_tokens=None)
    profile = settings()
    run_state_machine_as_test(
        lambda: SystemMachine(m, actors, chain),
        settings=settings(
            profile,
            max_examples=max(2, profile.max_examples // 6),  # each example is long
            stateful_step_count=profile.stateful_step_count,
        ),
    )
