"""Deploying and wiring the ComputeShare suite: one code path for tests, benchmarks and demos.

Role flags follow interfaces/IAccess.vyi.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SLASHER, LOCKER, REPORTER, AUDITOR, ARBITER, MATCHER = 1, 2, 4, 8, 16, 32
TOKEN = 10**18
INITIAL_SUPPLY = 1_000_000_000 * TOKEN


@dataclass
class Suite:
    """Deployed contracts of one ComputeShare deployment."""

    token: Any
    staking: Any
    registry: Any
    escrow: Any
    offers: Any


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
