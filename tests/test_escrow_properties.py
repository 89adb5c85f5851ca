"""Stateful property test of JobEscrow on the deployed suite.

Clients post k = 1, 2 and 3 jobs; three providers behave honestly, report a wrong result,
or go silent; clients dispute wrong optimistic results, the arbiter rules, keepers settle,
time passes. A small local model of jobs and replicas lets every rule pick an action that
is possible now, so examples drive jobs through their whole lifecycle. Checked:

- after every step: JobEscrow holds exactly what it owes (balances, payment locked in live
  jobs, protocol fees); JobDisputes exactly the bonds of disputes and the bonds it released
  and owes; Staking holds exactly its pools; locked <= own stake;
- at every settlement: the job's locked payment ends as exactly paid + fees + refunded;
  a settled job never settles again; a strict honest majority is never slashed;
- at the end: once every deadline has passed, every job settles, unruled bonds are
  reclaimed, and everyone withdraws what JobEscrow and JobDisputes say is theirs.
"""

from __future__ import annotations

from hypothesis.stateful import run_state_machine_as_test

from tests.escrow_machine import EscrowMachine
from tests.helpers import TOKEN


def test_escrow_state_machine(
    market, client, alice, token, deployer, providers, arbiter, keeper, chain
):
    token.transfer(alice, 100_000 * TOKEN, sender=deployer)
    token.approve(market.escrow, 2**256 - 1, sender=alice)
    token.approve(market.job_disputes, 2**256 - 1, sender=alice)
    run_state_machine_as_test(
        lambda: EscrowMachine(market, [client, alice], providers, arbiter, keeper, chain)
    )
