"""The deployed ComputeShare suite as one object, for tests, benchmarks and scripts.

Everything is deployed by computeshare.deploy, the same steps `ape run deploy` runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from computeshare.deploy import (
    ARBITER,
    AUDITOR,
    LOCKER,
    MATCHER,
    OWNED,
    SLASHER,
    DeployConfig,
    deploy,
)
from computeshare.jobs import JobBook
from computeshare.params import DAY, TOKEN

__all__ = [
    "ARBITER",
    "AUDITOR",
    "DAY",
    "LOCKER",
    "MATCHER",
    "SLASHER",
    "TOKEN",
    "Suite",
    "deploy_suite",
    "deploy_system",
]


@dataclass
class Suite:
    """Deployed contracts of one ComputeShare deployment."""

    token: Any
    staking: Any
    registry: Any
    escrow: Any
    escrow_view: Any
    offers: Any
    timelock: Any = None
    governor: Any = None

    @cached_property
    def jobs(self) -> JobBook:
        """JobEscrow's job calls by job id (terms and k = 1 replicas from the events)."""
        return JobBook(self.escrow, self.escrow_view)

    @classmethod
    def from_contracts(cls, contracts: dict[str, Any]) -> Suite:
        return cls(
            token=contracts["ComputeToken"],
            staking=contracts["Staking"],
            registry=contracts["DeviceRegistry"],
            escrow=contracts["JobEscrow"],
            escrow_view=contracts["JobEscrowView"],
            offers=contracts["OfferBook"],
            timelock=contracts.get("Timelock"),
            governor=contracts.get("Governor"),
        )

    def owned(self) -> list:
        """The contracts whose owner must be the timelock after hand-over."""
        by_name = {
            "ComputeToken": self.token,
            "Staking": self.staking,
            "DeviceRegistry": self.registry,
            "JobEscrow": self.escrow,
        }
        return [by_name[name] for name in OWNED]


def deploy_suite(project, deployer, treasury, *, token=None, arbiter=None) -> Suite:
    """Staking, DeviceRegistry, JobEscrow and its view, and OfferBook (and ComputeToken unless
    one is given) wired to each other, without governance: the deployer keeps every owner
    role."""
    config = DeployConfig(
        governance=False,
        treasury=str(treasury.address if hasattr(treasury, "address") else treasury),
        token=token.address if token is not None else None,
        initial_holder=deployer.address,
        arbiter=arbiter.address if arbiter is not None else None,
    )
    return Suite.from_contracts(deploy(project, deployer, config))


def deploy_system(project, deployer, *, arbiter=None, guardian=None, guardian_term=180 * DAY):
    """The production layout, as `ape run deploy` builds it: governance first (the timelock
    is the treasury), then the suite over it, then every owner role handed to the timelock.
    The guardian, if any, is appointed in JobEscrow before the hand-over; in the Governor
    only the timelock can appoint it."""
    config = DeployConfig(
        initial_holder=deployer.address,
        arbiter=arbiter.address if arbiter is not None else None,
        guardian=guardian.address if guardian is not None else None,
        guardian_term=guardian_term,
    )
    return Suite.from_contracts(deploy(project, deployer, config))
