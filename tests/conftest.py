"""Shared fixtures. Every test runs on a real anvil node started by ape-foundry."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant

from computeshare.deploy import deploy_suite, deploy_system
from computeshare.governance import advance
from computeshare.specs import device_spec

DAY = 86_400
YEAR = 365 * DAY
TOKEN = 10**18
INITIAL_SUPPLY = 1_000_000_000 * TOKEN

# Profiles: `ci` runs on every push, `quick` while editing, `deep` for `make fuzz`.
_COMMON = {
    "deadline": None,  # examples talk to a node: wall time is not the code's
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
settings.register_profile("ci", max_examples=25, stateful_step_count=25, **_COMMON)
settings.register_profile("quick", max_examples=5, stateful_step_count=10, **_COMMON)
settings.register_profile("deep", max_examples=100, stateful_step_count=50, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Examples and steps each state machine ran, printed at the end of the run.
COVERAGE: dict[str, Counter] = {}


class CountedMachine(RuleBasedStateMachine):
    """A state machine that counts its examples and steps for the end-of-run report."""

    def __init__(self):
        super().__init__()
        self._coverage = COVERAGE.setdefault(type(self).__name__, Counter())
        self._coverage["examples"] += 1
        self._coverage["steps"] -= 1  # invariants run once before the first step

    @invariant()
    def count_step(self):
        self._coverage["steps"] += 1


# The longest files first: with `-n` (pytest-xdist, --dist loadfile) the workers then end
# together instead of one finishing a long file alone.
SLOW_FIRST = (
    "test_system_properties.py",
    "test_demo.py",
    "test_staking_properties.py",
    "test_token_properties.py",
    "test_governance_properties.py",
    "test_escrow_properties.py",
    "test_agent.py",
    "test_devnet.py",
    "test_dashboard.py",
    "test_cli.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: n for n, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable otherwise


def pytest_sessionfinish(session):
    """An xdist worker hands its state-machine counts to the controller."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["coverage"] = {name: dict(counts) for name, counts in COVERAGE.items()}


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """The controller adds up the workers' state-machine counts (pytest-xdist)."""
    for name, counts in getattr(node, "workeroutput", {}).get("coverage", {}).items():
        COVERAGE.setdefault(name, Counter()).update(counts)


def pytest_terminal_summary(terminalreporter):
    if COVERAGE:
        profile = os.environ.get("HYPOTHESIS_PROFILE", "ci")
        terminalreporter.write_sep("-", f"state machines (hypothesis profile {profile})")
        for name, counts in sorted(COVERAGE.items()):
            terminalreporter.write_line(
                f"{name}: {counts['examples']} examples, {counts['steps']} steps"
            )


def pytest_ignore_collect(collection_path: Path, config):
    """tests/fork checks a live deployment and runs only on a fork of its network
    (`ape test tests/fork --network ethereum:<network>-fork:foundry`)."""
    if collection_path == Path(__file__).parent / "fork":
        return "-fork:" not in str(config.getoption("network", default=""))
    return None


@pytest.fixture(scope="session")
def deployer(accounts):
    return accounts[0]


@pytest.fixture(scope="session")
def alice(accounts):
    return accounts[1]


@pytest.fixture(scope="session")
def bob(accounts):
    return accounts[2]


@pytest.fixture(scope="session")
def carol(accounts):
    return accounts[3]


@pytest.fixture(scope="session")
def outsider(accounts):
    return accounts[9]


@pytest.fixture(scope="session")
def chain_id(chain):
    return chain.chain_id


@pytest.fixture
def token(project, deployer):
    """ComputeToken with the whole initial supply held by the deployer."""
    return deployer.deploy(project.ComputeToken, deployer, INITIAL_SUPPLY)


@pytest.fixture
def funded(token, deployer, alice, bob, carol):
    """Token with 1,000 tokens each for alice, bob and carol."""
    for holder in (alice, bob, carol):
        token.transfer(holder, 1_000 * TOKEN, sender=deployer)
    return token


def delegate(token, delegatee, sender):
    """Calls ERC-5805 `delegate`, which ape's `BaseAddress.delegate` (EIP-7702) shadows."""
    return token.invoke_transaction("delegate", delegatee, sender=sender)


# Role flags of interfaces/IAccess.vyi.
SLASHER, LOCKER, AUDITOR = 1, 2, 4


@pytest.fixture(scope="session")
def provider(accounts):
    return accounts[4]


@pytest.fixture(scope="session")
def delegator(accounts):
    return accounts[5]


@pytest.fixture(scope="session")
def escrow_role(accounts):
    """Account holding the roles JobEscrow holds in Staking in production (LOCKER, SLASHER)."""
    return accounts[6]


@pytest.fixture(scope="session")
def treasury(accounts):
    return accounts[7]


@pytest.fixture(scope="session")
def auditor(accounts):
    return accounts[8]


@pytest.fixture
def staking(project, token, deployer, treasury, escrow_role, provider, delegator, alice, bob):
    """Staking with default parameters; provider, delegator, alice and bob hold 1M tokens
    each and have approved Staking; `escrow_role` may lock, unlock and slash."""
    staking = deployer.deploy(project.Staking, token, treasury)
    token.set_vault(staking, sender=deployer)
    staking.set_roles(escrow_role, SLASHER | LOCKER, sender=deployer)
    for account in (provider, delegator, alice, bob):
        token.transfer(account, 1_000_000 * TOKEN, sender=deployer)
        token.approve(staking, 2**256 - 1, sender=account)
    return staking


def gpu_spec(**overrides) -> dict:
    """A valid GPU device spec for DeviceRegistry.register, with optional overrides."""
    return device_spec(**overrides)


@pytest.fixture
def registry(project, staking, deployer, auditor):
    """DeviceRegistry over `staking`; `auditor` audits."""
    registry = deployer.deploy(project.DeviceRegistry, staking)
    registry.set_roles(auditor, AUDITOR, sender=deployer)
    return registry


ARBITER, MATCHER = 8, 16


@pytest.fixture(scope="session")
def providers(accounts):
    """Three providers for replicated jobs."""
    return [accounts[4], accounts[10], accounts[11]]


@pytest.fixture(scope="session")
def client(accounts):
    return accounts[12]


@pytest.fixture(scope="session")
def arbiter(accounts):
    return accounts[13]


@pytest.fixture(scope="session")
def keeper(accounts):
    return accounts[14]


@pytest.fixture(scope="session")
def guardian(accounts):
    return accounts[15]


@pytest.fixture
def market(project, token, deployer, treasury, arbiter, providers, client):
    """The deployed suite: token, Staking, DeviceRegistry, JobEscrow, OfferBook, wired as in
    production. Each provider stakes 10,000 tokens and registers one GPU device (nonce 0);
    the client deposits 10,000 tokens."""
    m = deploy_suite(project, deployer, treasury, token=token, arbiter=arbiter)
    staking, registry, escrow = m.staking, m.registry, m.escrow
    for p in providers:
        token.transfer(p, 100_000 * TOKEN, sender=deployer)
        token.approve(staking, 2**256 - 1, sender=p)
        staking.stake(10_000 * TOKEN, sender=p)
        registry.register(gpu_spec(), "ipfs://device", sender=p)
    token.transfer(client, 100_000 * TOKEN, sender=deployer)
    token.approve(escrow, 2**256 - 1, sender=client)
    escrow.deposit(10_000 * TOKEN, sender=client)
    return m


@pytest.fixture
def dao(project, deployer, arbiter, guardian, alice, bob, carol, chain):
    """The whole system as deployed in production (every owner role with the timelock).
    Voters self-delegate: alice 30M, bob 20M, carol 10M tokens (quorum is 4% of 1B, i.e.
    40M); the timelock's treasury holds 5M. The deployer's remaining tokens are
    undelegated, so they carry no votes."""
    system = deploy_system(project, deployer, arbiter=arbiter, guardian=guardian)
    token = system.token
    for holder, amount in ((alice, 30_000_000), (bob, 20_000_000), (carol, 10_000_000)):
        token.transfer(holder, amount * TOKEN, sender=deployer)
        delegate(token, holder, holder)
    token.transfer(system.timelock, 5_000_000 * TOKEN, sender=deployer)
    advance(chain, 1)
    return system
