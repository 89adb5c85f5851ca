"""The command line against a deployed system on the local node: happy paths and bad input."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from computeshare.cli import main
from computeshare.client import ComputeShare
from computeshare.deploy import DeployConfig, Deployment, Manifest

TOKEN = 10**18


@pytest.fixture
def manifest(project, deployer, accounts, tmp_path):
    path = tmp_path / "manifest.json"
    Deployment(project, deployer, DeployConfig(), Manifest.open(path)).run()
    cs = ComputeShare.from_manifest(path, account=deployer)
    for index in (4, 10, 12):
        cs.token.transfer(accounts[index], 100_000 * TOKEN, sender=deployer)
    return path


@pytest.fixture
def cli(manifest, chain):
    runner = CliRunner()

    def invoke(*args, account: int | None = None):
        extra = ["--manifest", str(manifest), "--network", chain.provider.uri]
        if account is not None:
            extra += ["--account", f"TEST::{account}"]
        result = runner.invoke(main, [*args, *extra], catch_exceptions=False)
        return result

    return invoke


def test_provider_stakes_registers_and_shows(cli):
    result = cli("provider", "stake", "5000", account=4)
    assert result.exit_code == 0, result.output
    assert "bonded stake: 5,000 tokens" in result.output
    result = cli("provider", "register", "--gpus", "1", account=4)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("device 0x")
    table = cli("show", "devices").output
    assert "active" in table and "0x15d34AAf" in table


def one_line_error(result, expected: str):
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert expected in lines[0], lines[0]


def test_client_posts_a_job_an_agent_serves_and_status_follows(cli, accounts, tmp_path):
    assert cli("provider", "stake", "5000", account=4).exit_code == 0
    assert cli("provider", "register", account=4).exit_code == 0
    result = cli(
        "client", "post", "--workload", "sha256-chain", "--input", '{"seed": "a", "rounds": 9}',
        "--price", "10", "--replicas", "1", account=12,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    job = result.output.split()[-1]
    assert "open: replicas 1, accepted 0" in cli("client", "status", job).output
    journal = str(tmp_path / "agent.json")
    result = cli(
        "agent", "--journal", journal, "--steps", "60", "--poll", "0.1", "--serve",
        "127.0.0.1:0", account=4,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "accepted replica 0" in result.output and "submitted ok" in result.output
    assert "running sha256-chain (fuel limit 2,700)" in result.output
    assert "INFO" not in result.output, "no per-transaction lines"
    assert "revealed 1" in cli("client", "status", job).output
    assert "open" in cli("show", "jobs").output


def test_client_post_checks_the_spec_before_sending(cli, accounts):
    nonce = accounts[12].nonce
    one_line_error(
        cli("client", "post", "--workload", "sha256-chain", "--input", '{"sead": "a", "rounds": 9}',
            "--price", "1", account=12),
        "input 'seed': Field required",
    )  # fmt: skip
    one_line_error(
        cli("client", "post", "--wasm", "monte-carlo", "--price", "1", account=12),
        "a wasm job takes --wasm and --fuel",
    )
    one_line_error(
        cli("client", "post", "--wasm", "monte-carlo", "--fuel", "0", "--price", "1", account=12),
        "0 is not in the range",
    )
    assert accounts[12].nonce == nonce, "no transaction was sent"
    result = cli(
        "client", "post", "--wasm", "monte-carlo", "--stdin", "01" + "00" * 7 + "10" + "00" * 7,
        "--fuel", "100000", "--price", "10", account=12,
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def test_bad_input_gets_one_line_and_sends_nothing(cli, accounts):
    client = accounts[12]
    nonce = client.nonce
    one_line_error(cli("client", "deposit", "1000000", account=12), "balance is 100,000 tokens")
    one_line_error(cli("client", "deposit", "0", account=12), "must be positive")
    one_line_error(cli("client", "status", "0x1234"), "is not a 32-byte hex id")
    one_line_error(cli("client", "status", "0x" + "00" * 32), "no such job")
    one_line_error(
        cli("client", "post", "--workload", "mine", "--input", "{}", "--price", "1", account=12),
        "unknown workload 'mine'",
    )
    one_line_error(
        cli("client", "post", "--workload", "sha256-chain", "--input", "{", "--price", "1",
            account=12),
        "not JSON",
    )  # fmt: skip
    one_line_error(
        cli("gov", "propose", "--set", "JobEscrow.PROTOCOL_FEE_BPS=5000", "--description", "x",
            account=12),
        "PROTOCOL_FEE_BPS = 5000 is out of bounds [0, 1000]",
    )  # fmt: skip
    one_line_error(
        cli("gov", "propose", "--set", "JobEscrow.PROTOCOL_FEE_BPS=lots", "--description", "x",
            account=12),
        "cannot read 'lots'",
    )  # fmt: skip
    one_line_error(
        cli("gov", "propose", "--set", "JobEscrow.PROTOCOL_FEE_BPS=100", "--description", "x",
            account=12),
        "you have 0 votes; proposing needs 100,000",
    )  # fmt: skip
    one_line_error(cli("gov", "vote", "1", "for", account=12), "no proposal 1")
    one_line_error(cli("provider", "register", account=12), "stake 1,000 tokens first")
    assert client.nonce == nonce, "no transaction was sent"


def test_revert_reason_is_shown_as_the_reason(cli, accounts):
    assert cli("provider", "stake", "5000", account=4).exit_code == 0
    device = cli("provider", "register", account=4).output.split()[-1]
    assert cli("provider", "pause", device, account=4).exit_code == 0
    one_line_error(cli("provider", "pause", device, account=4), "reverted: device_registry:")


def test_a_fresh_deployment_shows_empty_tables_and_odd_input_gets_one_line(cli, accounts):
    """No proposal yet: a header, not a traceback. NaN and infinite prices: one line."""
    result = cli("show", "proposals")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert result.output.splitlines()[0].strip() == "proposal"
    nonce = accounts[12].nonce
    for price in ("NaN", "Infinity", "-Infinity", "1e999999999"):
        one_line_error(
            cli("client", "post", "--workload", "sha256-chain", "--input",
                '{"seed": "a", "rounds": 9}', "--price", price, account=12),
            "is not an amount",
        )  # fmt: skip
    assert accounts[12].nonce == nonce


def test_a_device_without_gpus_needs_no_gpu_options(cli):
    assert cli("provider", "stake", "5000", account=4).exit_code == 0
    result = cli("provider", "register", "--gpus", "0", account=4)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("device 0x")
