"""Deploying and wiring the ComputeShare suite: one code path for tests, benchmarks and demos.

Role flags follow interfaces/IAccess.vyi.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SLASHER, LOCKER, REPORTER, AUDITOR, ARBITER, MATCHER = 1, 2, 4, 8, 16, 32
TOKEN = 10**18
DAY = 86_400
INITIAL_SUPPLY = 1_000_000_000 * TOKEN
TIMELOCK_DELAY = 2 * DAY
GRACE_PERIOD = 14 * DAY


@dataclass
class Suite:
    """Deployed contracts of one ComputeShare deployment."""

    token: Any
    staking: Any
    registry: Any
    escrow: Any
    offers: Any
    timelock: Any = None
    governor: Any = None

    def owned(self) -> list:
        """The contracts whose owner must be the timelock after hand-over."""
        return [self.token, self.staking, self.registry, self.escrow]


def deploy_suite(project, deployer, treasury, *, token=None, arbiter=None) -> Suite:
    """Deploys Staking, DeviceRegistry, JobEscrow and OfferBook (and ComputeToken unless one is
    given), and grants every role the contracts need of each other."""
    if token is None:
        token = deployer.deploy(project.ComputeToken, deployer, INITIAL_SUPPLY)
    staking = deployer.deploy(project.Staking, token, treasury)
    token.set_vault(staking, sender=deployer)
    registry = deployer.deploy(project.DeviceRegistry, staking)
    escrow = deployer.deploy(project.JobEscrow, token, staking, registry, treasury)
    offers = deployer.deploy(project.OfferBook, escrow)
    staking.set_roles(escrow, SLASHER | LOCKER, sender=deployer)
    registry.set_roles(escrow, REPORTER, sender=deployer)
    escrow.set_roles(offers, MATCHER, sender=deployer)
    if arbiter is not None:
        escrow.set_roles(arbiter, ARBITER, sender=deployer)
    return Suite(token, staking, registry, escrow, offers)


def deploy_governance(project, deployer, token, *, delay=TIMELOCK_DELAY, grace=GRACE_PERIOD):
    """Deploys the Timelock and the Governor over `token` and names the governor in the
    timelock (the deployer's one-time power there). Returns (timelock, governor)."""
    timelock = deployer.deploy(project.Timelock, delay, grace)
    governor = deployer.deploy(project.Governor, token, timelock)
    timelock.initialize(governor, sender=deployer)
    return timelock, governor


def deploy_system(project, deployer, *, arbiter=None, guardian=None, guardian_term=180 * DAY):
    """The production layout: governance first (the timelock is the treasury), then the
    suite over it, then every owner role handed to the timelock. The guardian, if any, is
    appointed in JobEscrow before the hand-over; in the Governor only the timelock can
    appoint it, so tests and scripts do that through a proposal or `appoint_guardian`."""
    token = deployer.deploy(project.ComputeToken, deployer, INITIAL_SUPPLY)
    timelock, governor = deploy_governance(project, deployer, token)
    suite = deploy_suite(project, deployer, timelock, token=token, arbiter=arbiter)
    suite.timelock, suite.governor = timelock, governor
    if guardian is not None:
        expiry = deployer.provider.get_block("latest").timestamp + guardian_term
        suite.escrow.set_guardian(guardian, expiry, sender=deployer)
    hand_over(suite, deployer)
    return suite


def hand_over(suite: Suite, deployer) -> None:
    """Makes the timelock the owner of every ownable contract; the deployer keeps nothing."""
    for contract in suite.owned():
        contract.transfer_ownership(suite.timelock, sender=deployer)
