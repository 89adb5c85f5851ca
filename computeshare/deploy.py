"""Deploying ComputeShare: one resumable, verifiable code path for every network.

A deployment is a fixed list of steps (deploy a contract, grant a role, set a parameter,
hand an owner role to the timelock). Each step is recorded in a manifest as it completes;
a re-run skips what the manifest and the chain say is done, so a run cut off half-way
resumes instead of deploying twice:

- before a contract deployment is sent, the manifest records the deployer's nonce; on
  resume a contract found at the CREATE address of that nonce is adopted;
- every wiring step first reads the chain and is skipped if its effect is already there.

`ape run deploy` writes the manifest to deployments/<network>-<chain id>.json (reading it
back is `computeshare.manifest`); `deploy_suite` and `deploy_system`, for tests, benchmarks
and scripts, run the same steps with an in-memory manifest.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import rlp
import yaml
from eth_utils import keccak, to_checksum_address

from computeshare.abi import contract_abi
from computeshare.client import ComputeShare
from computeshare.constants import DAY, HOUR, TOKEN, Role
from computeshare.manifest import FORMAT, OWNED, Manifest, deployments_dir
from computeshare.params import (
    MAX_GUARDIAN_TERM,
    PARAMETERS,
    TIMELOCK_DELAY,
    TIMELOCK_GRACE,
    parameter,
)

# Parameters the deployer may set before hand-over (the Governor's change only by proposal).
DEPLOY_TIME_PARAMETERS = ("JobEscrow", "Staking", "DeviceRegistry")


class DeployError(Exception):
    """A deployment cannot go on: bad configuration, a foreign manifest or failed wiring."""


# ---------------------------------------------------------------- configuration

_UNITS = {"s": 1, "m": 60, "h": HOUR, "d": DAY, "token": TOKEN, "tokens": TOKEN}


def parse_value(value: Any) -> int:
    """An integer, or a string like "7d", "30m", "1_000 tokens" (units s/m/h/d/tokens)."""
    if isinstance(value, bool):
        raise DeployError(f"expected a number, got {value!r}")
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*([0-9_]+)\s*([a-z]*)\s*", str(value))
    if not match or match.group(2) not in ("", *_UNITS):
        raise DeployError(f"cannot read {value!r}: use an integer or e.g. 7d, 2h, 1000 tokens")
    return int(match.group(1)) * _UNITS.get(match.group(2), 1)


@dataclass
class DeployConfig:
    """What a deployment sets up. `governance=False` deploys the suite alone, owned by the
    deployer, with `treasury` as its treasury (for unit tests and benchmarks)."""

    initial_supply: int = 1_000_000_000 * TOKEN
    initial_holder: str | None = None
    timelock_delay: int = TIMELOCK_DELAY.default
    grace_period: int = TIMELOCK_GRACE.default
    arbiter: str | None = None
    guardian: str | None = None
    guardian_term: int = 180 * DAY
    parameters: dict[str, dict[str, int]] = field(default_factory=dict)
    governance: bool = True
    treasury: str | None = None
    token: str | None = None  # an already deployed ComputeToken the deployer owns

    def check(self) -> DeployConfig:
        """Checks every value against the contracts' hard bounds; raises DeployError."""
        try:
            TIMELOCK_DELAY.check(self.timelock_delay)
            TIMELOCK_GRACE.check(self.grace_period)
            for contract, values in self.parameters.items():
                if contract not in DEPLOY_TIME_PARAMETERS:
                    raise ValueError(
                        f"{contract} parameters are not set at deployment"
                        + (" (the DAO changes them by proposal)" if contract in PARAMETERS else "")
                    )
                for name, value in values.items():
                    parameter(contract, name).check(value)
        except ValueError as error:
            raise DeployError(str(error)) from None
        if self.initial_supply <= 0:
            raise DeployError("initial_supply must be positive")
        if not 0 < self.guardian_term <= MAX_GUARDIAN_TERM:
            raise DeployError(f"guardian_term must be within (0, {MAX_GUARDIAN_TERM}] seconds")
        if not self.governance and self.treasury is None:
            raise DeployError("a deployment without governance needs a treasury")
        return self

    @classmethod
    def from_dict(cls, data: dict) -> DeployConfig:
        known = {
            "initial_supply",
            "initial_holder",
            "timelock",
            "arbiter",
            "guardian",
            "parameters",
        }
        unknown = set(data) - known
        if unknown:
            raise DeployError(f"unknown config keys: {', '.join(sorted(unknown))}")
        timelock = data.get("timelock") or {}
        guardian = data.get("guardian") or {}
        config = cls(
            initial_supply=parse_value(data.get("initial_supply", "1_000_000_000 tokens")),
            initial_holder=data.get("initial_holder"),
            timelock_delay=parse_value(timelock.get("delay", TIMELOCK_DELAY.default)),
            grace_period=parse_value(timelock.get("grace_period", TIMELOCK_GRACE.default)),
            arbiter=data.get("arbiter"),
            guardian=guardian.get("address"),
            guardian_term=parse_value(guardian.get("term", "180d")),
            parameters={
                contract: {name.upper(): parse_value(v) for name, v in (values or {}).items()}
                for contract, values in (data.get("parameters") or {}).items()
            },
        )
        return config.check()

    @classmethod
    def load(cls, path: Path) -> DeployConfig:
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise DeployError(f"cannot read config {path}: {error}") from None
        return cls.from_dict(data)

    def as_dict(self) -> dict:
        return {
            "initial_supply": self.initial_supply,
            "initial_holder": self.initial_holder,
            "timelock": {"delay": self.timelock_delay, "grace_period": self.grace_period},
            "arbiter": self.arbiter,
            "guardian": {"address": self.guardian, "term": self.guardian_term},
            "parameters": self.parameters,
        }


DEV_CHAIN_IDS = (31337, 1337)


def config_dir() -> Path:
    """Deployment configs: `config/` in the deployments directory (`deployments/config`)."""
    return deployments_dir() / "config"


def config_path(network_name: str, chain_id: int | None = None) -> Path:
    """deployments/config/<network>.yaml; a fork (`sepolia-fork`) uses its upstream's file,
    and a node reached by URI with a development chain id uses local.yaml."""
    names = [network_name, network_name.removesuffix("-fork")]
    if chain_id in DEV_CHAIN_IDS:
        names.append("local")
    for name in names:
        path = config_dir() / f"{name}.yaml"
        if path.exists():
            return path
    raise DeployError(f"no deployment config for network {network_name!r} in {config_dir()}")


# ---------------------------------------------------------------- manifest


def open_manifest(path: Path, chain, log: Callable[[str], None] = print) -> Manifest:
    """The manifest at `path` for the connected chain. A development chain (anvil) restarts
    with a new genesis under the same chain id: its stale manifest is set aside."""
    manifest = Manifest.open(path)
    genesis = manifest.data.get("genesis")
    if genesis and chain.chain_id in DEV_CHAIN_IDS and genesis != chain.blocks[0].hash.hex():
        stale = Path(path).with_suffix(".stale.json")
        Path(path).replace(stale)
        log(f"{path.name} is from an earlier run of this development chain: moved to {stale.name}")
        manifest = Manifest(Path(path))
    return manifest


def has_roles(contract, account, roles: Role) -> bool:
    """Whether `account` holds every role in `roles` in `contract`."""
    return contract.roles(account) & roles == roles


def create_address(sender: str, nonce: int) -> str:
    """The address a contract deployed by `sender` with `nonce` gets (CREATE)."""
    return to_checksum_address(keccak(rlp.encode([bytes.fromhex(sender[2:]), nonce]))[12:])


# ---------------------------------------------------------------- the steps


@dataclass
class Deployment:
    """Runs (or resumes) a deployment of `config` by `deployer` through ape's `project`."""

    project: Any
    deployer: Any
    config: DeployConfig
    manifest: Manifest
    log: Callable[[str], None] = lambda message: None
    sent: int = 0  # transactions this run sent

    def __post_init__(self):
        self.chain = self.deployer.chain_manager
        self.instances: dict[str, Any] = {}

    # -- helpers

    def _check_manifest(self) -> None:
        data = self.manifest.data
        genesis = self.chain.blocks[0].hash.hex()
        if not data:
            data.update(
                format=FORMAT,
                chain_id=self.chain.chain_id,
                network=self.chain.provider.network_choice,
                genesis=genesis,
                deployer=self.deployer.address,
                complete=False,
                config=self.config.as_dict(),
            )
            return
        if data.get("genesis") != genesis or data.get("chain_id") != self.chain.chain_id:
            raise DeployError(
                f"manifest {self.manifest.path} belongs to another chain (genesis "
                f"{data.get('genesis')}); move it away to deploy afresh"
            )
        if data.get("deployer") != self.deployer.address:
            raise DeployError(
                f"manifest {self.manifest.path} was started by {data.get('deployer')}; "
                "resume it with that account"
            )

    def _record(self, step: str, receipt) -> None:
        self.manifest.steps[step] = {"tx": receipt.txn_hash, "block": receipt.block_number}
        self.manifest.data.pop("pending", None)
        self.manifest.save()

    def contract(self, name: str):
        if name not in self.instances:
            address = self.manifest.address(name)
            self.instances[name] = self.project.get_contract(name).at(address)
        return self.instances[name]

    def _deploy(self, name: str, *args) -> None:
        container = self.project.get_contract(name)
        entry = self.manifest.contracts.get(name)
        if entry and self.chain.provider.get_code(entry["address"]):
            return
        pending = self.manifest.data.get("pending")
        if pending and pending["step"] == f"deploy {name}":
            address = create_address(self.deployer.address, pending["nonce"])
            if self.deployer.nonce > pending["nonce"] and self.chain.provider.get_code(address):
                self.log(f"adopting {name} at {address} (sent by a run that was cut off)")
                self._remember(name, container.at(address), tx=None, args=args)
                return
        self.manifest.data["pending"] = {"step": f"deploy {name}", "nonce": self.deployer.nonce}
        self.manifest.save()
        instance = self.deployer.deploy(container, *args)
        self.sent += 1
        self._remember(name, instance, tx=instance.txn_hash, args=args)
        self.log(f"deployed {name} at {instance.address}")

    def _remember(self, name: str, instance, tx, args) -> None:
        block = (
            self.chain.get_receipt(tx).block_number
            if tx
            else self.chain.provider.web3.eth.block_number
        )
        self.manifest.contracts[name] = {
            "address": instance.address,
            "tx": tx,
            "block": block,
            "args": [getattr(a, "address", a) for a in args],
        }
        self.manifest.abis[name] = contract_abi(self.project, name)
        self.manifest.data.pop("pending", None)
        self.manifest.save()
        self.instances[name] = instance

    def _step(self, name: str, done: Callable[[], bool], send: Callable[[], Any]) -> None:
        if done():
            if name not in self.manifest.steps:  # done by a run cut off before recording it
                self.manifest.steps[name] = {"tx": None, "block": None}
                self.manifest.save()
            return
        receipt = send()
        self.sent += 1
        self._record(name, receipt)
        self.log(name)

    def _grant(self, contract: str, account: str, roles: Role) -> None:
        target = self.contract(contract)
        self._step(
            f"{contract}.set_roles({account}, {int(roles)})",
            lambda: has_roles(target, account, roles),
            lambda: target.set_roles(
                account, int(target.roles(account) | roles), sender=self.deployer
            ),
        )

    # -- the deployment

    def run(self, stop_after: int | None = None) -> dict[str, Any]:
        """Runs every step not yet done; returns the contract instances by name.
        `stop_after=n` stops after the n-th transaction (tests cut runs off with it)."""
        self._check_manifest()
        for step in self._plan():
            step()
            if stop_after is not None and self.sent >= stop_after:
                raise DeployError(f"stopped after {self.sent} transactions")
        problems = self.verify()
        if problems:
            raise DeployError("wiring check failed:\n  " + "\n  ".join(problems))
        self.manifest.data["complete"] = True
        self.manifest.save()
        return {name: self.contract(name) for name in self.manifest.contracts}

    def _plan(self) -> list[Callable[[], None]]:
        c, me = self.config, self.deployer
        holder = c.initial_holder or me.address

        def treasury() -> str:
            return self.contract("Timelock").address if c.governance else c.treasury

        plan: list[Callable[[], None]] = [
            self._adopt_token
            if c.token
            else lambda: self._deploy("ComputeToken", holder, c.initial_supply)
        ]
        if c.governance:
            plan += [
                lambda: self._deploy("Timelock", c.timelock_delay, c.grace_period),
                lambda: self._deploy(
                    "Governor", self.contract("ComputeToken"), self.contract("Timelock")
                ),
                lambda: self._step(
                    "Timelock.initialize",
                    lambda: self.contract("Timelock").governor() == self.contract("Governor"),
                    lambda: self.contract("Timelock").initialize(
                        self.contract("Governor"), sender=me
                    ),
                ),
            ]
        plan += [
            lambda: self._deploy("Staking", self.contract("ComputeToken"), treasury()),
            lambda: self._step(
                "ComputeToken.set_vault",
                lambda: self.contract("ComputeToken").vault() == self.contract("Staking"),
                lambda: self.contract("ComputeToken").set_vault(
                    self.contract("Staking"), sender=me
                ),
            ),
            lambda: self._deploy("DeviceRegistry", self.contract("Staking")),
            lambda: self._deploy(
                "JobEscrow",
                self.contract("ComputeToken"),
                self.contract("Staking"),
                self.contract("DeviceRegistry"),
                treasury(),
            ),
            lambda: self._deploy("JobEscrowView", self.contract("JobEscrow")),
            lambda: self._deploy("OfferBook", self.contract("JobEscrow")),
            lambda: self._deploy("JobDisputes", self.contract("JobEscrow")),
            lambda: self._grant(
                "Staking", self.contract("JobEscrow").address, Role.SLASHER | Role.LOCKER
            ),
            lambda: self._grant("JobEscrow", self.contract("OfferBook").address, Role.MATCHER),
            # JobEscrow's ARBITER is JobDisputes alone (its `arbitrate`); arbiters hold
            # JobDisputes' ARBITER role.
            lambda: self._grant("JobEscrow", self.contract("JobDisputes").address, Role.ARBITER),
            self._income_holder_step,
        ]
        if c.arbiter:
            plan.append(lambda: self._grant("JobDisputes", c.arbiter, Role.ARBITER))
        for contract, values in c.parameters.items():
            for name, value in values.items():
                plan.append(self._parameter_step(contract, name, value))
        if c.guardian:
            plan.append(self._guardian_step)
        if c.governance:
            for name in OWNED:
                plan.append(self._hand_over_step(name))
        return plan

    def _adopt_token(self) -> None:
        if "ComputeToken" not in self.manifest.contracts:
            token = self.project.ComputeToken.at(self.config.token)
            self._remember("ComputeToken", token, tx=None, args=())

    def _parameter_step(self, contract: str, name: str, value: int) -> Callable[[], None]:
        key = parameter(contract, name).key

        def step() -> None:
            target = self.contract(contract)
            self._step(
                f"{contract}.set_parameter({name}, {value})",
                lambda: target.parameter(key) == value,
                lambda: target.set_parameter(key, value, sender=self.deployer),
            )

        return step

    def _income_holder_step(self) -> None:
        """JobEscrow keeps the delegators' cut of each settlement until Staking collects it,
        so a settlement moves no tokens (when it pays in the staked token)."""
        staking, escrow = self.contract("Staking"), self.contract("JobEscrow")
        if not escrow.PAYS_INTO_POOL():
            return
        self._step(
            "Staking.set_income_holder",
            lambda: staking.income_holder() == escrow.address,
            lambda: staking.set_income_holder(escrow, sender=self.deployer),
        )

    def _guardian_step(self) -> None:
        escrow = self.contract("JobEscrow")
        self._step(
            "JobEscrow.set_guardian",
            lambda: escrow.guardian() == self.config.guardian,
            lambda: escrow.set_guardian(
                self.config.guardian,
                self.chain.pending_timestamp + self.config.guardian_term,
                sender=self.deployer,
            ),
        )

    def _hand_over_step(self, name: str) -> Callable[[], None]:
        def step() -> None:
            target, timelock = self.contract(name), self.contract("Timelock")
            self._step(
                f"{name}.transfer_ownership",
                lambda: target.owner() == timelock.address,
                lambda: target.transfer_ownership(timelock, sender=self.deployer),
            )

        return step

    # -- verification

    def verify(self) -> list[str]:
        """Reads the wiring back from the chain; returns what is wrong (nothing if all is)."""
        c = self.config
        token, staking = self.contract("ComputeToken"), self.contract("Staking")
        registry, escrow = self.contract("DeviceRegistry"), self.contract("JobEscrow")
        offers, disputes = self.contract("OfferBook"), self.contract("JobDisputes")
        treasury = self.contract("Timelock").address if c.governance else c.treasury
        checks = [
            ("token vault is Staking", token.vault() == staking.address),
            ("Staking token", staking.TOKEN() == token.address),
            ("Staking treasury", staking.treasury() == treasury),
            ("registry reads Staking", registry.STAKING() == staking.address),
            ("escrow token", escrow.TOKEN() == token.address),
            ("escrow staking", escrow.STAKING() == staking.address),
            ("escrow registry", escrow.REGISTRY() == registry.address),
            ("escrow treasury", escrow.treasury() == treasury),
            ("offer book escrow", offers.ESCROW() == escrow.address),
            (
                "escrow view reads the escrow",
                self.contract("JobEscrowView").ESCROW() == escrow.address,
            ),
            ("escrow is SLASHER|LOCKER", has_roles(staking, escrow, Role.SLASHER | Role.LOCKER)),
            (
                "Staking collects the delegators' cut from the escrow",
                not escrow.PAYS_INTO_POOL() or staking.income_holder() == escrow.address,
            ),
            ("offer book is MATCHER", has_roles(escrow, offers, Role.MATCHER)),
            ("disputes escrow", disputes.ESCROW() == escrow.address),
            ("disputes are the escrow's ARBITER", has_roles(escrow, disputes, Role.ARBITER)),
        ]
        if c.arbiter:
            checks.append(("arbiter is ARBITER", has_roles(disputes, c.arbiter, Role.ARBITER)))
        if c.guardian:
            checks.append(("escrow guardian", escrow.guardian() == c.guardian))
        for contract, values in c.parameters.items():
            for name, value in values.items():
                actual = self.contract(contract).parameter(parameter(contract, name).key)
                checks.append((f"{contract}.{name} = {value} (is {actual})", actual == value))
        if c.governance:
            timelock, governor = self.contract("Timelock"), self.contract("Governor")
            checks += [
                ("timelock governor", timelock.governor() == governor.address),
                ("governor timelock", governor.TIMELOCK() == timelock.address),
                ("governor token", governor.TOKEN() == token.address),
                ("timelock delay", timelock.delay() == c.timelock_delay),
                ("timelock grace period", timelock.grace_period() == c.grace_period),
            ]
            for name in OWNED:
                owner = self.contract(name).owner()
                checks.append((f"{name} owned by the timelock (is {owner})", owner == timelock))
        return [what for what, ok in checks if not ok]


def deploy(
    project,
    deployer,
    config: DeployConfig,
    manifest: Manifest | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Deploys (or resumes, or confirms) `config`; returns the contracts by name."""
    manifest = manifest if manifest is not None else Manifest(None)
    return Deployment(project, deployer, config.check(), manifest, log).run()


def verify_deployment(project, manifest: Manifest, reader) -> list[str]:
    """Reads a recorded deployment's wiring back from the connected chain (e.g. a fork of
    the network it went to); `reader` is any account. Returns what is wrong."""
    if not manifest.complete:
        return [f"deployment in {manifest.path} is incomplete"]
    config = DeployConfig.from_dict(manifest.config)
    return Deployment(project, reader, config, manifest).verify()


def deploy_connected(
    project, deployer, config: DeployConfig, path: Path | None = None
) -> ComputeShare:
    """Deploys `config`, recording it in the manifest at `path` (in memory without one);
    returns the deployment, seen from `deployer`."""
    deployment = Deployment(project, deployer, config.check(), Manifest.open(path))
    return ComputeShare(deployment.manifest, deployer, contracts=deployment.run())


def deploy_suite(project, deployer, treasury, *, token=None, arbiter=None) -> ComputeShare:
    """Staking, DeviceRegistry, JobEscrow and its view, OfferBook and JobDisputes (and
    ComputeToken unless
    one is given) wired to each other, without governance: the deployer keeps every owner
    role."""
    config = DeployConfig(
        governance=False,
        treasury=str(getattr(treasury, "address", treasury)),
        token=token.address if token is not None else None,
        initial_holder=deployer.address,
        arbiter=arbiter.address if arbiter is not None else None,
    )
    return deploy_connected(project, deployer, config)


def deploy_system(
    project, deployer, *, arbiter=None, guardian=None, guardian_term=180 * DAY
) -> ComputeShare:
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
    return deploy_connected(project, deployer, config)
