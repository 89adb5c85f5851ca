"""Checks a live deployment and rehearses governance on a fork of its network.

    ape test tests/fork --network ethereum:sepolia-fork:foundry

The deployment is read from the upstream network's manifest (deployments/<network>-<chain
id>.json, or the file $COMPUTESHARE_MANIFEST names). Proposals are rehearsed by holders
the fork impersonates: $COMPUTESHARE_VOTERS (comma-separated addresses with enough votes
together), by default the deployment's initial token holder. Only the fork changes; the
network it forks is never sent a transaction. tests/test_devnet.py runs these tests on a
fork of a devnet it deploys to.
"""

from __future__ import annotations

import os

import ape
import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from computeshare.client import ALIASES, ComputeShare
from computeshare.constants import DAY, TOKEN, Role
from computeshare.deploy import OWNED, Manifest, verify_deployment
from computeshare.governance import EXECUTED, Proposal, call, rehearse, reserved
from computeshare.params import parameter
from tests.system_machine import SystemMachine, fund_actors, system_actors

FEE = parameter("JobEscrow", "PROTOCOL_FEE_BPS")


@pytest.fixture(scope="module")
def live() -> ComputeShare:
    path = os.environ.get("COMPUTESHARE_MANIFEST")
    return ComputeShare.from_manifest(path) if path else ComputeShare.connected()


@pytest.fixture(scope="module")
def voters(live) -> list[str]:
    listed = os.environ.get("COMPUTESHARE_VOTERS", "")
    return [v.strip() for v in listed.split(",") if v.strip()] or [
        live.manifest["contracts"]["ComputeToken"]["args"][0]
    ]


def test_runs_on_a_fork(chain, live):
    assert chain.provider.network.is_fork
    assert chain.chain_id == live.manifest["chain_id"]


def test_deployed_wiring_holds(project, accounts, live):
    assert verify_deployment(project, Manifest(None, live.manifest), accounts[0]) == []


def test_deployer_keeps_no_power(accounts, live):
    deployer = accounts[live.manifest["deployer"]]
    timelock = live.timelock.address
    alias_of = {name: alias for alias, name in ALIASES.items()}
    for name in OWNED:
        contract = getattr(live, alias_of[name])
        assert contract.owner() == timelock
        with ape.reverts("ownable: caller is not the owner"):
            contract.transfer_ownership(deployer, sender=deployer)
    with ape.reverts("ownable: caller is not the owner"):
        live.escrow.set_parameter(FEE.key, FEE.high, sender=deployer)
    with ape.reverts("timelock: caller is not the timelock"):
        live.timelock.set_delay(live.timelock.delay() + 1, sender=deployer)


def test_rehearse_a_fee_change(chain, accounts, live, voters):
    before = live.escrow.parameter(FEE.key)
    new_fee = FEE.low if before != FEE.low else FEE.high
    action = call(live.escrow, "set_parameter", FEE.key, new_fee)
    receipt = rehearse(live.governor, live.token, chain, accounts, voters, [action], "rehearsal")
    proposal = Proposal([action], reserved("rehearsal", voters[0]))
    assert live.governor.state(proposal) == EXECUTED
    assert live.escrow.parameter(FEE.key) == new_fee
    changed = [log for log in receipt.events if log.event_name == "ParameterChanged"]
    assert [(log.old_value, log.new_value) for log in changed] == [(before, new_fee)]


def test_rehearsal_shows_a_proposal_that_would_fail(chain, accounts, live, voters):
    before = live.escrow.parameter(FEE.key)
    action = call(live.escrow, "set_parameter", FEE.key, FEE.high + 1)
    with ape.reverts("parameters: out of bounds"):
        rehearse(
            live.governor, live.token, chain, accounts, voters, [action], "a fee out of bounds"
        )
    assert live.escrow.parameter(FEE.key) == before


def test_the_system_machine_holds_on_the_fork(chain, accounts, live):
    """The whole-system state machine (tests/system_machine.py), in a small profile, on the
    deployment as it stands on the forked network: every role, the coalition of one owner,
    and every invariant after every step. It needs the test accounts to hold the
    deployment's tokens, as on a devnet deployed by TEST::0."""
    deployer = accounts[0]
    if live.token.balanceOf(deployer) < 100_000_000 * TOKEN:
        pytest.skip("the test accounts hold no tokens here: this runs on forks of a devnet")
    timelock = accounts[live.timelock.address]
    timelock.balance += 10**20
    actors = system_actors(accounts, deployer)
    live.job_disputes.set_roles(actors["arbiter"], Role.ARBITER, sender=timelock)
    live.escrow.set_guardian(
        actors["guardian"], chain.pending_timestamp + 180 * DAY, sender=timelock
    )
    fund_actors(live, chain, deployer, actors)
    run_state_machine_as_test(
        lambda: SystemMachine(live, actors, chain),
        settings=settings(max_examples=2, stateful_step_count=25, deadline=None),
    )
