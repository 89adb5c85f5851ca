"""The deployment steps `ape run deploy` runs: manifest, idempotence, resume, bounds checks."""

from __future__ import annotations

import json

import pytest

from computeshare.abi import contract_abi
from computeshare.deploy import (
    DeployConfig,
    DeployError,
    Deployment,
    Manifest,
    config_path,
    create_address,
    deploy,
    parse_value,
)
from computeshare.params import PARAMETERS, TIMELOCK_DELAY, TIMELOCK_GRACE
from tests.helpers import DAY

# Transactions of a whole deployment: 9 contracts, then wiring, parameters and hand-over.
DEPLOY_TRANSACTIONS = 24


@pytest.fixture
def config(arbiter, guardian):
    return DeployConfig(
        arbiter=arbiter.address,
        guardian=guardian.address,
        parameters={
            "JobEscrow": {"PROTOCOL_FEE_BPS": 300},
            "Staking": {"THAWING_PERIOD": 10 * DAY},
        },
    ).check()


def run(project, deployer, config, path, **kwargs):
    deployment = Deployment(project, deployer, config, Manifest.open(path))
    deployment.run(**kwargs)
    return deployment


def test_manifest_records_addresses_abis_blocks_and_parameters(
    project, deployer, config, tmp_path, chain
):
    path = tmp_path / "m.json"
    deployment = run(project, deployer, config, path)
    data = json.loads(path.read_text())
    assert data["complete"] is True
    assert data["chain_id"] == chain.chain_id
    assert data["genesis"] == chain.blocks[0].hash.hex()
    assert data["deployer"] == deployer.address
    assert data["config"]["parameters"]["JobEscrow"] == {"PROTOCOL_FEE_BPS": 300}
    names = {"ComputeToken", "Timelock", "Governor", "Staking", "DeviceRegistry", "JobEscrow"}
    assert set(data["contracts"]) == names | {"JobEscrowView", "OfferBook", "JobDisputes"}
    for name, entry in data["contracts"].items():
        assert chain.provider.get_code(entry["address"]), name
        assert chain.get_receipt(entry["tx"]).block_number == entry["block"]
        assert data["abis"][name] == contract_abi(project, name)
    escrow = project.JobEscrow.at(data["contracts"]["JobEscrow"]["address"])
    assert escrow.parameter(0) == 300
    assert project.Staking.at(data["contracts"]["Staking"]["address"]).parameter(0) == 10 * DAY
    # 9 contracts, initialize, set_vault, 4 roles (JobDisputes the escrow's ARBITER), the
    # income holder, 2 parameters, guardian, 5 hand-overs.
    assert deployment.sent == 9 + 1 + 1 + 4 + 1 + 2 + 1 + 5
    staking = project.Staking.at(data["contracts"]["Staking"]["address"])
    assert staking.income_holder() == escrow.address
    assert deployment.verify() == []


def test_rerun_on_complete_manifest_sends_nothing(project, deployer, config, tmp_path):
    path = tmp_path / "m.json"
    run(project, deployer, config, path)
    before, nonce = path.read_text(), deployer.nonce
    again = run(project, deployer, config, path)
    assert again.sent == 0
    assert deployer.nonce == nonce
    assert json.loads(path.read_text())["contracts"] == json.loads(before)["contracts"]


@pytest.mark.parametrize("cut_after", [1, 5, 12])
def test_cut_off_run_resumes_without_deploying_twice(
    project, deployer, config, tmp_path, cut_after
):
    path = tmp_path / "m.json"
    start = deployer.nonce
    with pytest.raises(DeployError, match=f"stopped after {cut_after} transactions"):
        run(project, deployer, config, path, stop_after=cut_after)
    first = json.loads(path.read_text())
    assert first["complete"] is False
    resumed = run(project, deployer, config, path)
    assert deployer.nonce - start == DEPLOY_TRANSACTIONS, "every transaction sent exactly once"
    assert cut_after + resumed.sent == DEPLOY_TRANSACTIONS
    final = json.loads(path.read_text())
    for name, entry in first["contracts"].items():
        assert final["contracts"][name]["address"] == entry["address"]


def test_deployment_sent_but_not_recorded_is_adopted(project, deployer, config, tmp_path):
    """A run that sent a deployment and died before writing its address."""
    path = tmp_path / "m.json"
    with pytest.raises(DeployError):
        run(project, deployer, config, path, stop_after=1)
    manifest = Manifest.open(path)
    nonce = deployer.nonce
    manifest.data["pending"] = {"step": "deploy Timelock", "nonce": nonce}
    manifest.save()
    orphan = deployer.deploy(project.Timelock, config.timelock_delay, config.grace_period)
    assert orphan.address == create_address(deployer.address, nonce)
    resumed = run(project, deployer, config, path)
    assert Manifest.open(path).address("Timelock") == orphan.address
    assert resumed.sent == DEPLOY_TRANSACTIONS - 2
    assert resumed.verify() == []


def test_pending_deployment_that_never_went_out_is_sent(project, deployer, config, tmp_path):
    path = tmp_path / "m.json"
    with pytest.raises(DeployError):
        run(project, deployer, config, path, stop_after=1)
    manifest = Manifest.open(path)
    manifest.data["pending"] = {"step": "deploy Timelock", "nonce": deployer.nonce}
    manifest.save()
    resumed = run(project, deployer, config, path)
    assert resumed.sent == DEPLOY_TRANSACTIONS - 1


def test_manifest_of_another_chain_is_refused(project, deployer, config, tmp_path):
    path = tmp_path / "m.json"
    run(project, deployer, config, path)
    data = json.loads(path.read_text())
    data["genesis"] = "0x" + "00" * 32
    path.write_text(json.dumps(data))
    nonce = deployer.nonce
    with pytest.raises(DeployError, match="belongs to another chain"):
        run(project, deployer, config, path)
    assert deployer.nonce == nonce


def test_manifest_of_another_deployer_is_refused(project, deployer, outsider, config, tmp_path):
    path = tmp_path / "m.json"
    with pytest.raises(DeployError):
        run(project, deployer, config, path, stop_after=2)
    with pytest.raises(DeployError, match="resume it with that account"):
        run(project, outsider, config, path)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"parameters": {"JobEscrow": {"PROTOCOL_FEE_BPS": 1_001}}}, r"out of bounds \[0, 1000\]"),
        ({"parameters": {"Staking": {"THAWING_PERIOD": "6d"}}}, "THAWING_PERIOD = 518400 is out"),
        ({"parameters": {"JobEscrow": {"NO_SUCH": 1}}}, "unknown parameter JobEscrow.NO_SUCH"),
        ({"parameters": {"Governor": {"QUORUM_BPS": 500}}}, "changes them by proposal"),
        ({"timelock": {"delay": 0}}, r"Timelock.delay = 0 is out of bounds"),
        ({"timelock": {"grace_period": "61d"}}, "grace_period = 5270400 is out of bounds"),
        ({"guardian": {"address": "0x" + "11" * 20, "term": "366d"}}, "guardian_term"),
        ({"initial_supply": "ten"}, "cannot read 'ten'"),
        ({"treasury": "0x" + "11" * 20}, "unknown config keys: treasury"),
    ],
)
def test_config_out_of_bounds_fails_before_sending(deployer, data, message):
    nonce = deployer.nonce
    with pytest.raises(DeployError, match=message):
        DeployConfig.from_dict(data)
    assert deployer.nonce == nonce


def test_config_units_and_network_files():
    assert parse_value("7d") == 7 * DAY
    assert parse_value("90m") == 5_400
    assert parse_value("1_000 tokens") == 1_000 * 10**18
    assert parse_value(42) == 42
    for network in ("local", "devnet", "devnet-fork", "sepolia", "sepolia-fork"):
        config = DeployConfig.load(config_path(network))
        assert config.timelock_delay == TIMELOCK_DELAY.default
        assert config.grace_period == TIMELOCK_GRACE.default
    assert config_path("custom", 31337).name == "local.yaml"
    with pytest.raises(DeployError, match="no deployment config for network 'mainnet'"):
        config_path("mainnet", 1)


def test_parameter_table_matches_the_contracts(project, deployer, config):
    contracts = deploy(project, deployer, DeployConfig())
    for contract, table in PARAMETERS.items():
        # JobEscrow's keys and bounds are read through its view (JobEscrow keeps `parameter`).
        bounds = contracts["JobEscrowView" if contract == "JobEscrow" else contract]
        instance = contracts[contract]
        for name, p in table.items():
            assert getattr(bounds, name)() == p.key, (contract, name)
            assert bounds.parameter_bounds(p.key) == (p.low, p.high), (contract, name)
            assert instance.parameter(p.key) == p.default, (contract, name)
    timelock = contracts["Timelock"]
    assert (timelock.MIN_DELAY(), timelock.MAX_DELAY()) == (TIMELOCK_DELAY.low, TIMELOCK_DELAY.high)
    assert (timelock.MIN_GRACE_PERIOD(), timelock.MAX_GRACE_PERIOD()) == (
        TIMELOCK_GRACE.low,
        TIMELOCK_GRACE.high,
    )
