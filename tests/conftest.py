"""Shared fixtures. Every test runs on a real anvil node started by ape-foundry."""

from __future__ import annotations

import os
from collections import Counter, deque
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from computeshare.deploy import deploy_suite, deploy_system
from computeshare.governance import advance
from computeshare.jobs import commitment
from computeshare.sandbox import RunResult
from tests import ape_speed
from tests.helpers import (
    AUDITOR,
    COLLATERAL,
    COVERAGE,
    DAY,
    GOOD,
    INITIAL_SUPPLY,
    LOCKER,
    PRICE,
    REQS,
    SALT,
    SLASHER,
    SPEC,
    TOKEN,
    delegate,
    gpu_spec,
)

MAX_UINT = 2**256 - 1

# Profiles: `ci` runs on every push, `quick` while editing, `deep` for `make fuzz`.
_COMMON = {
    "deadline": None,  # examples talk to a node: wall time is not the code's
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
settings.register_profile("ci", max_examples=25, stateful_step_count=25, **_COMMON)
settings.register_profile("quick", max_examples=5, stateful_step_count=10, **_COMMON)
settings.register_profile("deep", max_examples=100, stateful_step_count=50, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


ape_speed.keep_answers_for_the_session()
ape_speed.forget_dead_nodes()

# The longest files first: with `-n` (pytest-xdist, --dist loadfile) the workers then end
# together instead of one finishing a long file alone.
SLOW_FIRST = (
    "test_escrow_properties.py",
    "test_staking_properties.py",
    "test_token_properties.py",
    "test_agent.py",
    "test_devnet.py",
    "test_cli.py",
    "test_agent_pool.py",
    "test_index.py",
    "test_system_properties.py",
    "test_trees.py",
    "test_typed_abi.py",
    "test_quickstart.py",
    "test_node_trouble.py",
    "test_escrow.py",
    "test_governance.py",
    "test_governance_properties.py",
    "test_dust.py",
    "test_result_server.py",
    "test_governor_compat.py",
    "test_metering.py",
    "test_demo.py",
    "test_offers.py",
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


@pytest.fixture(scope="session", autouse=True)
def _no_revert_decoration():
    """Tests expect their reverts and assert on the reasons; ape decorates each one for a human.
    - ape-foundry prints the call trace of every reverted transaction, fetching and decoding it
      first. That fails on a contract type known only by its ABI ("empty separator": a
      deployment read from a manifest earlier in the same process leaves one cached).
    - ape-vyper maps every revert back to Vyper source lines (an AST walk per frame): half a
      second per revert, half of test_escrow's time. No test matches on `dev:` comments,
      the one thing that needs it."""
    import ape.exceptions
    from ape_ethereum.trace import Trace

    show, from_tx = Trace.show, ape.exceptions._get_ape_traceback_from_tx
    Trace.show = lambda self, *args, **kwargs: None
    ape.exceptions._get_ape_traceback_from_tx = lambda txn: None
    yield
    Trace.show, ape.exceptions._get_ape_traceback_from_tx = show, from_tx


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


# ---------------------------------------------------------------- deployments
# Each deployment is built once per test process (session scope) and every test starts from
# the state it was built in: ape snapshots the chain before each test and reverts it after
# (a deployment first built in the middle of the run is rebased by ape the same way). The
# deployments are independent of each other: `staking` and `market` each have a token of
# their own, as they did when every test built them anew.


@pytest.fixture(scope="session")
def _plain_token(project, deployer):
    return deployer.deploy(project.ComputeToken, deployer, INITIAL_SUPPLY)


@pytest.fixture(scope="session")
def _funded_token(project, deployer, alice, bob, carol):
    token = deployer.deploy(project.ComputeToken, deployer, INITIAL_SUPPLY)
    for holder in (alice, bob, carol):
        token.transfer(holder, 1_000 * TOKEN, sender=deployer)
    return token


@pytest.fixture(scope="session")
def _staking_world(
    project, deployer, treasury, escrow_role, auditor, provider, delegator, alice, bob
):
    token = deployer.deploy(project.ComputeToken, deployer, INITIAL_SUPPLY)
    staking = deployer.deploy(project.Staking, token, treasury)
    token.set_vault(staking, sender=deployer)
    staking.set_roles(escrow_role, SLASHER | LOCKER, sender=deployer)
    for account in (provider, delegator, alice, bob):
        token.transfer(account, 1_000_000 * TOKEN, sender=deployer)
        token.approve(staking, MAX_UINT, sender=account)
    registry = deployer.deploy(project.DeviceRegistry, staking)
    registry.set_roles(auditor, AUDITOR, sender=deployer)
    return token, staking, registry


@pytest.fixture(scope="session")
def _market(project, deployer, treasury, arbiter, providers, client, chain):
    m = deploy_suite(project, deployer, treasury, arbiter=arbiter)
    for p in providers:
        _fund_provider(m, deployer, p)
    _fund_client(m, deployer, client)
    _built("market", chain)
    return m


@pytest.fixture(scope="session")
def _dao(project, deployer, arbiter, guardian, alice, bob, carol, chain):
    system = deploy_system(project, deployer, arbiter=arbiter, guardian=guardian)
    token = system.token
    for holder, amount in ((alice, 30_000_000), (bob, 20_000_000), (carol, 10_000_000)):
        token.transfer(holder, amount * TOKEN, sender=deployer)
        delegate(token, holder, holder)
    token.transfer(system.timelock, 5_000_000 * TOKEN, sender=deployer)
    advance(chain, 1)
    _built("dao", chain)
    return system


@pytest.fixture(scope="session", autouse=True)
def _deployments(_plain_token, _funded_token, _staking_world, _market, _dao, deployed_manifest):
    """Every session deployment is built by a test process's first test, under ape's session
    snapshot alone. Built later, in the middle of a module, one could land under a module
    snapshot that ape does not rebase (it rebases only over fixtures it judges stateful)
    and be reverted at the module's end while its fixture still held it. tests/fork, whose
    tests use none of them, overrides this with nothing."""


# A session deployment is built once and must stay on the chain under every test that uses
# it. One found gone means a snapshot taken before it was built was restored while its
# fixture kept the deployment: the test stops there, with the chain's and the isolation's
# state and the tests this process ran before, rather than reading zeros from an empty
# address.
_BUILT: dict[str, tuple] = {}
_RAN: deque = deque(maxlen=12)


def pytest_runtest_setup(item):
    _RAN.append(item.nodeid)


def _built(name: str, chain) -> None:
    _BUILT[name] = (chain.blocks.height, list(chain._snapshots[chain.chain_id]), list(_RAN))


def _still_deployed(name: str, address, chain) -> None:
    if chain.provider.web3.eth.get_code(address):
        return
    height, snapshots, ran = _BUILT.get(name, (None, None, None))
    pytest.fail(
        f"the session's {name} is gone from the chain: no code at {address} at block "
        f"{chain.blocks.height} (built at block {height}, under snapshots {snapshots}, "
        f"after {ran}); snapshots now {chain._snapshots[chain.chain_id]}; "
        f"this process ran {list(_RAN)}",
        pytrace=False,
    )


@pytest.fixture
def cli(deployed_manifest, chain):
    """The `computeshare` command in this process (click's runner) against the deployment
    of `deployed_manifest` on the test node; `account=n` adds `--account TEST::n`."""
    from click.testing import CliRunner

    from computeshare.cli import main

    runner = CliRunner()

    def invoke(*args, account: int | None = None):
        extra = ["--manifest", str(deployed_manifest), "--network", chain.provider.uri]
        if account is not None:
            extra += ["--account", f"TEST::{account}"]
        return runner.invoke(main, [*args, *extra], catch_exceptions=False)

    return invoke


@pytest.fixture(scope="session")
def deployed_manifest(project, accounts, tmp_path_factory):
    """The production deployment made through the deploy steps, as the CLI and the SDK
    find it: the path of its manifest. Accounts 4, 10 and 12 hold 100,000 tokens each."""
    from computeshare.client import ComputeShare
    from computeshare.deploy import DeployConfig, Deployment, Manifest

    path = tmp_path_factory.mktemp("deployment") / "manifest.json"
    deployer = accounts[0]
    Deployment(project, deployer, DeployConfig(), Manifest.open(path)).run()
    cs = ComputeShare.from_manifest(path, account=deployer)
    for index in (4, 10, 12):
        cs.token.transfer(accounts[index], 100_000 * TOKEN, sender=deployer)
    return path


@pytest.fixture
def token(request, _plain_token, _funded_token, _staking_world, _market):
    """ComputeToken with the whole initial supply held by the deployer; in a test of the
    `market`, the market's token, and in a test of `staking` or `registry`, theirs.

    Every deployment it may return is a fixture it depends on: ape rebases the snapshots
    only for fixtures it sees a test depend on, so a deployment first built by a lookup
    inside a test would be reverted with the test."""
    names = request.fixturenames
    if "market" in names:
        market = request.getfixturevalue("market")
        if hasattr(market, "token"):
            return market.token
    if "staking" in names or "registry" in names:
        return _staking_world[0]
    if "funded" in names:
        return _funded_token
    return _plain_token


@pytest.fixture
def funded(_funded_token):
    """Token with 1,000 tokens each for alice, bob and carol."""
    return _funded_token


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
def staking(_staking_world):
    """Staking with default parameters; provider, delegator, alice and bob hold 1M tokens
    each and have approved Staking; `escrow_role` may lock, unlock and slash."""
    return _staking_world[1]


@pytest.fixture
def registry(_staking_world):
    """DeviceRegistry over `staking`; `auditor` audits."""
    return _staking_world[2]


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
def market(_market, chain):
    """The deployed suite: token, Staking, DeviceRegistry, JobEscrow, OfferBook, wired as in
    production. Each provider stakes 10,000 tokens and registers one GPU device (nonce 0);
    the client deposits 10,000 tokens."""
    _still_deployed("market", _market.escrow.address, chain)
    return _market


# ---------------------------------------------------------------- factory fixtures
# Each returns a function. `m` is the suite to act on: the `market` fixture unless given
# (e.g. `m=dao` on the system as deployed).


def _suite(request, m):
    return request.getfixturevalue("market") if m is None else m


def _fund_client(m, deployer, account, *, tokens=100_000 * TOKEN, deposit=10_000 * TOKEN):
    if tokens:
        m.token.transfer(account, tokens, sender=deployer)
    m.token.approve(m.escrow, MAX_UINT, sender=account)
    m.token.approve(m.job_disputes, MAX_UINT, sender=account)  # dispute bonds
    if deposit:
        m.escrow.deposit(deposit, sender=account)


def _fund_provider(
    m, deployer, account, *, tokens=100_000 * TOKEN, stake=10_000 * TOKEN, spec=None, uri=None
):
    if tokens:
        m.token.transfer(account, tokens, sender=deployer)
    m.token.approve(m.staking, MAX_UINT, sender=account)
    m.staking.stake(stake, sender=account)
    return m.registry.register(spec or gpu_spec(), uri or "ipfs://device", sender=account)


@pytest.fixture
def fund_client(request, deployer):
    """fund_client(account, tokens=100,000, deposit=10,000): sends `account` tokens from
    the deployer, approves JobEscrow (and JobDisputes, for bonds) for all of them and
    deposits `deposit`."""

    def fund(account, *, m=None, **amounts):
        _fund_client(_suite(request, m), deployer, account, **amounts)

    return fund


@pytest.fixture
def fund_provider(request, deployer):
    """fund_provider(account, tokens=100,000, stake=10,000, spec=gpu_spec()): sends
    `account` tokens from the deployer, approves Staking, stakes `stake` and registers a
    device with `spec` (nonce 0 for a new provider). Returns the registration receipt."""

    def fund(account, *, m=None, **terms):
        return _fund_provider(_suite(request, m), deployer, account, **terms)

    return fund


@pytest.fixture
def post_job(request, chain, client):
    """post_job(k=1, price=PRICE, collateral=COLLATERAL, deadline_in=DAY, reqs=REQS,
    client=client): posts a job of SPEC from the client's escrow balance; returns its id."""

    def post(
        k=1,
        *,
        price=PRICE,
        collateral=COLLATERAL,
        deadline_in=DAY,
        reqs=None,
        client=client,
        m=None,
    ):
        m = _suite(request, m)
        deadline = chain.pending_timestamp + deadline_in
        receipt = m.escrow.post(SPEC, reqs or REQS, price, k, deadline, collateral, sender=client)
        return receipt.return_value

    return post


@pytest.fixture
def run_replica(request):
    """run_replica(job, provider, result=GOOD, reveal=True, device=0): `provider` accepts
    `job` with its device `device`, commits `result` (salted with SALT) and reveals it,
    or stops after the commit with reveal=False (on a k > 1 job, every replica commits
    before any reveals). A RunResult `result` is submitted directly instead (k = 1).
    Returns the replica's slot."""

    def run(job, provider, result=GOOD, *, reveal=True, device=0, m=None):
        m = _suite(request, m)
        slot = m.jobs.accept(job, device, sender=provider).return_value
        if isinstance(result, RunResult):
            m.jobs.submit(job, result, sender=provider)
            return slot
        digest = commitment(job, provider.address, result, SALT)
        m.jobs.commit(job, slot, digest, sender=provider)
        if reveal:
            m.jobs.reveal(job, slot, result, SALT, sender=provider)
        return slot

    return run


@pytest.fixture
def dao(_dao, chain):
    """The whole system as deployed in production (every owner role with the timelock).
    Voters self-delegate: alice 30M, bob 20M, carol 10M tokens (quorum is 4% of 1B, i.e.
    40M); the timelock's treasury holds 5M. The deployer's remaining tokens are
    undelegated, so they carry no votes."""
    _still_deployed("dao", _dao.governor.address, chain)
    return _dao
