"""The command line against a deployed system on the local node: happy paths, bad input,
one-line errors, ids, times, approvals, tokens, offers and start-up time.

One deployment serves the test process (ape reverts each test to it); commands run in-process
through click's runner, except where the process itself is the point (ape's call trace goes
to the process's stdout; start-up imports; connection failures)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import tomllib
from pathlib import Path

import ape
import pytest
from click.testing import CliRunner

from computeshare.cli import COMMANDS, main
from computeshare.cli.common import duration, match_prefix, when
from computeshare.client import ComputeShare
from computeshare.constants import DAY, MAX_UINT, TOKEN
from computeshare.governance import advance, created_proposals
from computeshare.jobs import deposit_shard
from tests.helpers import one_line_error

ROOT = Path(__file__).parent.parent
EXECUTABLE = Path(sys.executable).with_name("computeshare")
INPUT = '{"seed": "a", "rounds": 9}'


@pytest.fixture
def manifest(deployed_manifest):
    return deployed_manifest


@pytest.fixture
def cs(manifest):
    return ComputeShare.from_manifest(manifest)


@pytest.fixture
def run(manifest, chain):
    """The installed `computeshare` in a process of its own: (exit code, stdout, stderr)."""

    def process(*args, account: int | None = None, network: str | None = "node"):
        extra = ["--manifest", str(manifest)]
        if network is not None:
            extra += ["--network", chain.provider.uri if network == "node" else network]
        if account is not None:
            extra += ["--account", f"TEST::{account}"]
        done = subprocess.run(
            [str(EXECUTABLE), *args, *extra], capture_output=True, text=True, timeout=120
        )
        return done.returncode, done.stdout, done.stderr

    return process


def last_word(result) -> str:
    assert result.exit_code == 0, result.output
    return result.output.split()[-1]


def test_provider_stakes_registers_and_shows(cli, cs, accounts):
    result = cli("provider", "stake", "5000", account=4)
    assert result.exit_code == 0, result.output
    assert "approving Staking to spend 5,000 tokens" in result.output
    assert "bonded stake: 5,000 tokens" in result.output
    assert cs.token.allowance(accounts[4], cs.staking) == 0, "exactly the amount, not unlimited"
    device = last_word(cli("provider", "register", "--gpus", "1", account=4))
    assert device.startswith("0x") and len(device) == 66
    table = cli("show", "devices").output
    assert table.splitlines()[0].split()[:3] == ["device", "owner", "status"]
    assert "active" in table and "0x15d34AAf" in table
    shown = table.splitlines()[-1].split()[0]
    assert device.startswith(shown) and len(shown) < len(device), "short ids"
    assert device in cli("show", "devices", "--full").output
    assert f"device {device}: paused" in cli("provider", "pause", shown, account=4).output


def test_approvals_are_exact_unless_asked_and_said(cli, cs, accounts, chain):
    result = cli("client", "deposit", "100", account=12)
    assert "approving JobEscrow to spend 100 tokens" in result.output, result.output
    assert cs.token.allowance(accounts[12], cs.escrow) == 0
    result = cli("provider", "stake", "2000", "--approve-max", account=4)
    assert "approving Staking to spend an unlimited amount of tokens" in result.output
    assert cs.token.allowance(accounts[4], cs.staking) > MAX_UINT // 2
    result = cli("provider", "stake", "1", account=4)
    assert result.exit_code == 0 and "approving" not in result.output, result.output
    result = cli("delegator", "delegate", str(accounts[4]), "100", account=10)
    assert "approving Staking to spend 100 tokens" in result.output, result.output
    assert cs.token.allowance(accounts[10], cs.staking) == 0
    # Unlock times are dates with a countdown; withdrawing early is refused with the date.
    result = cli("provider", "thaw", "1", account=4)
    assert re.search(r"thawing 1 tokens: withdrawable .* UTC, in \d+d", result.output)
    one_line_error(cli("provider", "withdraw", account=4), "1 tokens unlock ")
    # A delegation warms up before it earns: activating early is refused with the date.
    result = cli("delegator", "delegate", str(accounts[4]), "100", "--min-cut", "0", account=10)
    # The second delegation joins the first one's warm-up (its clock restarts).
    assert re.search(r"warming up: 200 tokens .* activate .* UTC, in \d+d", result.output), (
        result.output
    )
    one_line_error(
        cli("delegator", "activate", str(accounts[4]), account=10), "still warming up: activate "
    )
    chain.pending_timestamp += 11 * 86_400
    chain.mine()
    result = cli("delegator", "activate", str(accounts[4]), account=10)
    assert "shares received: " in result.output, result.output
    result = cli("delegator", "undelegate", str(accounts[4]), "1000", account=10)
    assert re.search(r"withdrawable .* UTC, in \d+d", result.output), result.output


def test_a_job_is_served_watched_and_expired_by_id_prefix(cli, manifest, accounts, chain, tmp_path):
    assert cli("provider", "stake", "5000", account=4).exit_code == 0
    assert cli("provider", "register", account=4).exit_code == 0
    result = cli(
        "client", "post", "--workload", "sha256-chain", "--input", INPUT, "--price", "10",
        "--replicas", "1", "--duration", "1h", account=12,
    )  # fmt: skip
    job = last_word(result)
    assert re.search(r"commit deadline \d{4}-\d\d-\d\d \d\d:\d\d UTC, in (59m|1h)", result.output)
    prefix = job[:8]
    status = cli("client", "status", prefix).output
    assert "open: replicas 1, accepted 0" in status
    assert re.search(r"commit deadline .* UTC, in (59m|1h)", status), status
    one_line_error(cli("client", "expire", prefix, account=10), "not yet: running")
    journal = str(tmp_path / "agent.json")
    result = cli(
        "agent", "--journal", journal, "--steps", "60", "--poll", "0.1", "--serve",
        "127.0.0.1:0", account=4,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "accepted replica 0" in result.output and "submitted ok" in result.output
    assert "running sha256-chain (fuel limit 36,000)" in result.output
    assert "INFO" not in result.output, "no per-transaction lines"
    result = cli("client", "status", prefix, "--watch", "--timeout", "1", "--poll", "0.2")
    lines = result.output.strip().splitlines()
    assert "revealed 1" in lines[0]
    assert re.search(r"waits out its challenge window until .* UTC, in (23h 59m|1d),", lines[1])
    assert "pays the provider once finalized" in lines[1]
    assert result.exit_code == 1 and lines[-1].startswith("Error: stopped watching after 1 s")
    assert "still open" in lines[-1]
    assert "open" in cli("show", "jobs").output
    # --json: one object; ids as 0x-hex, amounts in wei above 2**53 as decimal strings.
    [row] = json.loads(cli("show", "jobs", "--json").output)["rows"]
    assert job.startswith(row["job"]) and row["status"] == "open"
    view = json.loads(cli("client", "status", prefix, "--json").output)
    assert view["job"] == job and view["status_name"] == "open" and "phase" in view
    balance = json.loads(cli("token", "balance", "--json", account=12).output)
    assert int(balance["balance"]) == cs_balance(manifest, accounts[12])
    advance(chain, 2 * DAY)
    result = cli("client", "expire", prefix, account=10)
    assert result.exit_code == 0, result.output
    settled = f"job {job}: finalized; paid 9.75 tokens to providers, refunded 0, fees 0.25"
    assert settled in result.output
    result = cli("client", "status", job, "--watch")
    assert result.exit_code == 0 and "settled: paid 9.75 tokens" in result.output, result.output
    # The provider takes its pay out of the client's deposit shard, which `client withdraw`
    # names for it (its own shard holds nothing).
    cs = ComputeShare.from_manifest(manifest)
    provider, client = accounts[4].address, accounts[12].address
    assert deposit_shard(provider) != deposit_shard(client)
    client_shard = cs.escrow_view.deposit_shard(client)[1]
    before = cs.token.balanceOf(provider), cs.token.balanceOf(client_shard)
    result = cli("client", "withdraw", "9.75", account=4)
    assert result.exit_code == 0 and "escrow balance: 0 tokens" in result.output, result.output
    after = cs.token.balanceOf(provider), cs.token.balanceOf(client_shard)
    assert after == (before[0] + 975 * TOKEN // 100, before[1] - 975 * TOKEN // 100)


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
    one_line_error(
        cli("client", "post", "--workload", "sha256-chain", "--input", INPUT, "--price", "1",
            "--duration", "soon", account=12),
        "'soon' is not a duration",
    )  # fmt: skip
    assert accounts[12].nonce == nonce, "no transaction was sent"
    result = cli(
        "client", "post", "--wasm", "monte-carlo", "--stdin", "01" + "00" * 7 + "10" + "00" * 7,
        "--fuel", "100000", "--price", "10", account=12,
    )  # fmt: skip
    assert result.exit_code == 0, result.output


def test_commands_refuse_before_their_first_transaction(cli, cs, accounts):
    """What would revert after an approval and a deposit is refused before either: the
    library's checks, printed as one line."""
    client = accounts[12]
    nonce = client.nonce
    post = ("client", "post", "--workload", "sha256-chain", "--input", INPUT, "--price", "1")
    one_line_error(cli(*post, "--min-gpus", "200", account=12), "no device can satisfy the job")
    one_line_error(cli(*post, "--duration", "30", account=12), "at least 60 s")
    one_line_error(cli(*post, "--duration", "8d", account=12), "at most 7d")
    one_line_error(
        cli("delegator", "delegate", str(accounts[9]), "100", account=12), "is not a provider"
    )
    one_line_error(cli("delegator", "delegate", "0x1234", "100", account=12), "not an address")
    one_line_error(cli("client", "dispute", "0x" + "00" * 32, account=12), "no job 0x")
    assert client.nonce == nonce, "no transaction was sent"
    assert cs.token.allowance(client, cs.escrow) == cs.token.allowance(client, cs.staking) == 0


def test_bad_input_gets_one_line_and_sends_nothing(cli, accounts):
    client = accounts[12]
    nonce = client.nonce
    one_line_error(cli("client", "deposit", "1000000", account=12), "balance is 100,000 tokens")
    one_line_error(cli("client", "deposit", "0", account=12), "must be positive")
    one_line_error(cli("client", "status", "0x1234"), "not an id or a prefix of at least 6")
    one_line_error(cli("client", "status", "0x" + "00" * 32), "no such job")
    one_line_error(cli("client", "status", "0xabcdef12"), "no job id starts with 0xabcdef12")
    one_line_error(cli("provider", "pause", "0xabcdef", account=4), "no device id starts with")
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
        "you have 0 votes; proposing needs 100,000 (delegate your tokens first",
    )  # fmt: skip
    one_line_error(cli("gov", "vote", "1", "for", account=12), "is not an id or a prefix")
    one_line_error(cli("provider", "register", account=12), "stake 1,000 tokens first")
    one_line_error(cli("provider", "withdraw", account=12), "nothing is thawing")
    one_line_error(cli("provider", "stake", "10", account=12), "the minimum is 1,000")
    one_line_error(cli("token", "transfer", "0x1234", "1", account=12), "is not an address")
    one_line_error(
        cli("token", "transfer", str(accounts[9]), "100001", account=12), "balance is 100,000"
    )
    assert client.nonce == nonce, "no transaction was sent"


def test_revert_is_its_reason_without_ape_call_trace(cli, run):
    assert cli("provider", "stake", "5000", account=4).exit_code == 0
    device = last_word(cli("provider", "register", account=4))
    assert cli("provider", "pause", device[:10], account=4).exit_code == 0
    # The library refuses what DeviceRegistry would revert on, before sending ...
    one_line_error(cli("provider", "pause", device, account=4), "is paused: it cannot be paused")
    # ... and the token's own refusal of the zero address is its revert reason, without ape's
    # call trace (printed to the process's stdout, where click's runner does not look).
    zero = "0x" + "00" * 20
    one_line_error(cli("token", "transfer", zero, "1", account=4), "reverted: ")
    code, out, err = run("token", "transfer", zero, "1", account=4)
    assert code == 1 and out == "", out
    assert err.strip().startswith("Error: reverted: ") and "zero address" in err, err


def test_network_problems_are_one_line(run):
    """No --network: no throwaway node, but which network to pass and where manifests are."""
    result = CliRunner(env={"COMPUTESHARE_NETWORK": None}).invoke(main, ["show", "jobs"])
    one_line_error(result, "give --network")
    assert "deployments/custom-<chain id>.json" in result.output
    result = CliRunner().invoke(main, ["show", "jobs", "--network", "ethereum:nonsense"])
    one_line_error(result, "No network in 'ethereum' named 'nonsense'. Options: devnet, ")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))  # held, never listening: connections are refused
        port = probe.getsockname()[1]
        code, out, err = run("show", "jobs", network=f"http://127.0.0.1:{port}")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"Error: no node answers at http://127.0.0.1:{port}"), err
    # Without a configured URI, ape tries public RPCs: offline, none answers; online, the
    # deployment manifest is missing. Either way, one line.
    code, out, err = run("show", "jobs", network="ethereum:sepolia")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1, err
    assert "no RPC URI configured for ethereum:sepolia" in err or "no deployment manifest" in err


def test_network_and_account_come_from_the_environment(manifest, chain, cs, accounts):
    """COMPUTESHARE_NETWORK and COMPUTESHARE_ACCOUNT stand for --network and --account;
    an option on the line wins, and a command that sends nothing ignores the account."""
    runner = CliRunner(
        env={"COMPUTESHARE_NETWORK": chain.provider.uri, "COMPUTESHARE_ACCOUNT": "TEST::12"}
    )
    where = ["--manifest", str(manifest)]
    result = runner.invoke(main, ["client", "deposit", "5", *where])
    assert result.exit_code == 0, result.output
    assert cs.escrow.balanceOf(accounts[12]) == 5 * TOKEN
    result = runner.invoke(main, ["client", "deposit", "1", *where, "--account", "TEST::10"])
    assert result.exit_code == 0, result.output
    assert cs.escrow.balanceOf(accounts[10]) == 1 * TOKEN
    assert cs.escrow.balanceOf(accounts[12]) == 5 * TOKEN
    result = runner.invoke(main, ["show", "jobs", *where])
    assert result.exit_code == 0 and result.output.splitlines()[0].split()[0] == "job", (
        result.output
    )
    result = runner.invoke(main, ["show", "jobs", *where, "--network", "ethereum:nonsense"])
    one_line_error(result, "No network in 'ethereum' named 'nonsense'")


def test_a_fresh_deployment_shows_empty_tables_and_odd_input_gets_one_line(cli, accounts):
    """No proposal yet: a header, not a traceback. NaN and infinite prices: one line."""
    result = cli("show", "proposals")
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert result.output.splitlines()[0].strip() == "proposal"
    nonce = accounts[12].nonce
    for price in ("NaN", "Infinity", "-Infinity", "1e999999999"):
        one_line_error(
            cli("client", "post", "--workload", "sha256-chain", "--input", INPUT, "--price", price,
                account=12),
            "is not an amount",
        )  # fmt: skip
    assert accounts[12].nonce == nonce


def test_a_device_without_gpus_needs_no_gpu_options(cli):
    assert cli("provider", "stake", "5000", account=4).exit_code == 0
    result = cli("provider", "register", "--gpus", "0", account=4)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("device 0x")


def test_tokens_move_and_delegated_votes_propose_and_vote(cli, cs, accounts, chain):
    """A fresh deployment is usable from the CLI alone: tokens move, votes are delegated,
    the holder proposes; a vote without power warns and a second vote is refused."""
    deployer, holder = accounts[0], accounts[12]
    balance = cli("token", "balance", account=12).output
    assert "balance:  100,000 tokens" in balance and "votes:    0" in balance
    assert "delegate: nobody" in balance
    result = cli("token", "transfer", str(accounts[9]), "2.5", account=12)
    assert f"sent 2.5 tokens to {accounts[9].address}" in result.output, result.output
    assert cs.token.balanceOf(accounts[9]) == 25 * TOKEN // 10
    result = cli("token", "delegate", account=0)
    assert result.exit_code == 0, result.output
    assert "votes delegated to yourself" in result.output
    balance = cli("token", "balance", str(deployer)).output
    assert "delegate: itself" in balance and "votes:    0" not in balance
    one_line_error(cli("token", "delegate", account=0), "your votes already go to")
    advance(chain, 1)  # votes count from the second after the delegation
    proposal = last_word(
        cli("gov", "propose", "--set", "JobEscrow.PROTOCOL_FEE_BPS=100", "--description", "x",
            account=0)
    )  # fmt: skip
    # A grant the treasury cannot pay is refused before anything is sent.
    treasury = cs.token.balanceOf(cs.timelock) // TOKEN
    grant = ("--grant", str(accounts[9]), str(treasury + 1), "--description", "too much")
    one_line_error(cli("gov", "propose", *grant, account=12), "the treasury holds")
    # Pending: the quorum depends on the supply at a snapshot still ahead.
    status = cli("gov", "status", proposal)
    assert status.exit_code == 0, status.output
    assert "Pending" in status.output and "at the snapshot" in status.output
    advance(chain, cs.governor.votingDelay() + 1)
    result = cli("gov", "vote", proposal, "for", account=12)
    assert result.exit_code == 0, result.output
    assert "Warning: you had 0 votes at the proposal's snapshot" in result.output
    assert cs.governor.hasVoted(int(proposal, 16), holder)
    nonce = holder.nonce
    one_line_error(cli("gov", "vote", proposal, "against", account=12), "already voted")
    assert holder.nonce == nonce
    result = cli("gov", "vote", proposal, "for", account=0)
    assert "Warning" not in result.output and "with 999,7" in result.output, result.output
    status = cli("gov", "status", proposal).output
    assert status.splitlines()[0].split()[:3] == ["proposal", "state", "for"]
    assert "voting closes" in status and "UTC, in " in status
    assert "executable    - (not queued)" in status
    assert "description   x" in status
    assert "JobEscrow.PROTOCOL_FEE_BPS: 2.5% (250 bps) -> 1% (100 bps)" in status, status
    decoded = json.loads(cli("gov", "status", proposal, "--json").output)
    assert decoded["proposal"] == proposal and decoded["rows"][0]["state"] == "Active"
    [action] = decoded["actions"]
    assert (action["contract"], action["function"], action["parameter"]) == (
        "JobEscrow",
        "set_parameter",
        "PROTOCOL_FEE_BPS",
    )
    assert (action["before"], action["after"]) == (250, 100)


def test_a_proposal_prefix_of_decimal_digits_is_hex_like_any_other():
    """A hex prefix may consist of decimal digits only ("41874996" of 0x41874996...): it
    is a prefix, not a decimal id; only a whole decimal id (a hash: 77-78 digits) is
    read as decimal."""
    from computeshare.cli.gov import proposal_matcher

    proposal = int("41874996" + "ab" * 28, 16)
    for text in ("41874996", "0x41874996", "41874996ab", str(proposal), f"{proposal:064x}"):
        assert proposal_matcher(text)(proposal), text
    for text in ("41874997", "0x0041874996", str(proposal + 1)):
        assert not proposal_matcher(text)(proposal), text
    early = int("00" + "1" * 62, 16)  # a leading zero digit: the prefix keeps it
    assert proposal_matcher("0011111111")(early) and not proposal_matcher("11111111")(early)


def test_a_proposal_is_queued_executed_and_cancelled_by_its_id_prefix(cli, cs, accounts, chain):
    """The Governor stores no actions (OpenZeppelin's model): the CLI rebuilds them from
    the proposal's event, so a hex prefix of the id is enough to queue, execute or cancel."""
    assert cli("token", "delegate", account=0).exit_code == 0
    advance(chain, 1)
    propose = ("gov", "propose", "--set", "JobEscrow.PROTOCOL_FEE_BPS=100", "--description")
    proposal = int(last_word(cli(*propose, "fee", account=0)), 16)
    prefix = f"{proposal:064x}"[:8]
    one_line_error(cli(*propose, "fee", account=0), "already exists")
    one_line_error(cli("gov", "queue", prefix, account=0), "is Pending, not Succeeded")
    advance(chain, cs.governor.votingDelay() + 1)
    assert cli("gov", "vote", prefix, "for", account=0).exit_code == 0
    advance(chain, cs.governor.votingPeriod() + 1)
    result = cli("gov", "queue", "0x" + prefix, account=0)
    assert result.exit_code == 0, result.output
    assert "Queued, executable" in result.output
    one_line_error(cli("gov", "execute", prefix, account=0), "the timelock delay ends")
    advance(chain, cs.timelock.getMinDelay())
    result = cli("gov", "execute", str(proposal), account=0)
    assert result.exit_code == 0, result.output
    assert "Executed" in result.output and cs.escrow.parameter(0) == 100
    # A new proposal, cancelled by its proposer while pending.
    second = int(last_word(cli(*propose, "again", account=0)), 16)
    result = cli("gov", "cancel", f"{second:064x}"[:10], account=0)
    assert result.exit_code == 0, result.output
    assert "Canceled" in result.output and cs.governor.state(second) == 2
    one_line_error(cli("gov", "status", "0xdeadbeefdead"), "no proposal 0xdeadbeefdead")


def test_a_cli_proposal_cannot_be_taken_first_and_cancelled(cli, cs, accounts, chain):
    """CVE-2023-34234 against `gov propose`: a holder at the threshold copies the proposal
    it sees in the mempool, sends the copy first and cancels it while pending, so the
    honest proposal fails "already exists" on every retry. The CLI reserves the
    description to its proposer (`#proposer=<address>`): the copy is refused."""
    proposer, griefer = accounts[0], accounts[12]
    for index in (0, 12):
        assert cli("token", "delegate", account=index).exit_code == 0
    advance(chain, 1)
    g = cs.governor
    command = ("gov", "propose", "--set", "JobEscrow.PROTOCOL_FEE_BPS=200", "--description")
    # What the CLI sends, as the griefer reads it from the mempool.
    snapshot = chain.snapshot()
    expected = int(last_word(cli(*command, "Fee to 2%", account=0)), 16)
    [seen] = [p for p in created_proposals(g, cs.jobs.start_block) if p == expected]
    chain.restore(snapshot)
    assert g.proposalSnapshot(expected) == 0
    try:
        g.propose(*seen.propose_args(), sender=griefer)
        g.cancel(*seen.args(), sender=griefer)  # the copy took the id; its proposer cancels it
    except ape.exceptions.ContractLogicError as error:
        assert error.message == "governor: restricted proposer"
    proposal = int(last_word(cli(*command, "Fee to 2%", account=0)), 16)
    assert proposal == expected and g.proposalProposer(proposal) == proposer.address
    assert seen.description == f"Fee to 2%#proposer={proposer.address}"
    status = cli("gov", "status", str(proposal)).output
    assert f"description   Fee to 2%#proposer={proposer.address}" in status, status
    one_line_error(cli(*command, "Fee to 2%", account=0), "already exists")
    # The reserved description is the one queue and execute hash.
    advance(chain, g.votingDelay() + 1)
    assert cli("gov", "vote", str(proposal), "for", account=0).exit_code == 0
    advance(chain, g.votingPeriod() + 1)
    assert cli("gov", "queue", str(proposal), account=12).exit_code == 0
    advance(chain, cs.timelock.getMinDelay())
    result = cli("gov", "execute", str(proposal), account=12)
    assert "Executed" in result.output, result.output
    assert cs.escrow.parameter(0) == 200


def test_a_holder_with_delegated_votes_moves_tokens_every_time(cli, cs, accounts):
    """Each transfer by a delegated holder writes a vote checkpoint at its block's timestamp:
    a gas estimate taken against the latest block can fall short, so the CLI sends with
    headroom (without it, every other transfer here ran out of gas)."""
    assert cli("token", "delegate", account=12).exit_code == 0
    for _ in range(4):
        result = cli("token", "transfer", str(accounts[9]), "1", account=12)
        assert result.exit_code == 0, result.output
    assert cs.token.balanceOf(accounts[9]) == 4 * TOKEN


def test_offers_are_signed_matched_cancelled_and_listed(cli, cs, accounts, tmp_path):
    provider, client = accounts[4], accounts[12]
    assert cli("provider", "stake", "5000", account=4).exit_code == 0
    assert cli("provider", "register", account=4).exit_code == 0
    path = tmp_path / "offer.json"
    result = cli(
        "offer", "sign", "--client", str(client), "--price", "10", "--nonce", "7",
        "--expires-in", "2h", "--out", str(path), account=4,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert re.search(r"offer 7 for 0x\w+: 10 tokens, expires .* UTC, in (1h 59m|2h)", result.output)
    document = json.loads(path.read_text())
    assert document["offer"]["provider"] == provider.address and document["offer"]["nonce"] == "7"
    spec = ["--workload", "sha256-chain", "--input", INPUT, "--max-price", "10"]
    one_line_error(cli("offer", "match", str(path), *spec, account=10), "this offer is for")
    one_line_error(cli("offer", "match", str(path), *spec[:4], "--max-price", "9.5", account=12),
                   "this offer asks 10 tokens, more than your most of 9.5")  # fmt: skip
    job = last_word(cli("offer", "match", str(path), *spec, account=12))
    assert "accepted 1" in cli("client", "status", job[:10]).output
    one_line_error(
        cli("offer", "match", str(path), *spec, account=12), "offer 7 is already matched"
    )
    other = tmp_path / "other.json"
    assert cli("offer", "sign", "--client", str(client), "--price", "1", "--nonce", "8",
               "--out", str(other), account=4).exit_code == 0  # fmt: skip
    assert "offer 8: cancelled" in cli("offer", "cancel", "8", account=4).output
    one_line_error(cli("offer", "cancel", "8", account=4), "already matched or cancelled")
    one_line_error(cli("offer", "match", str(other), *spec, account=12), "offer 8 is already")
    listing = cli("offer", "list").output.splitlines()
    assert listing[0].split() == ["provider", "nonce", "state", "job", "client", "block"]
    assert [line.split()[1:3] for line in listing[1:]] == [["7", "matched"], ["8", "cancelled"]]
    assert job[:12] in listing[1]
    assert len(cli("offer", "list", "--client", str(client)).output.splitlines()) == 2


def test_help_loads_neither_ape_nor_web3():
    """`computeshare --help` imports click and the command registry only."""
    probe = (
        "import sys\n"
        "from computeshare.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('ape', 'web3', 'wasmtime', 'computeshare.agent', 'computeshare.client')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "client     Deposit, post" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout


def test_a_missing_command_module_breaks_nothing_else(monkeypatch):
    monkeypatch.setitem(COMMANDS, "nothing", ("computeshare.cli.nothing", "nothing", "Absent."))
    runner = CliRunner()
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0 and "provider" in result.output
    assert "nothing" not in result.output, "a command that cannot load is not listed"
    assert runner.invoke(main, ["token", "--help"]).exit_code == 0
    one_line_error(runner.invoke(main, ["nothing"]), "`nothing` is not available")


def cs_balance(manifest, account) -> int:
    return ComputeShare.from_manifest(manifest).token.balanceOf(account)


def test_show_params_lists_every_governed_parameter_in_its_unit(cli):
    from computeshare.params import PARAMETERS

    out = cli("show", "params").output
    lines = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    assert set(lines) == {f"{c}.{n}" for c, table in PARAMETERS.items() for n in table}
    assert "2.5% (250 bps)" in lines["JobEscrow.PROTOCOL_FEE_BPS"]
    assert "14d" in lines["Staking.THAWING_PERIOD"]
    assert "1,000 tokens" in lines["Staking.MIN_PROVIDER_STAKE"]
    rows = json.loads(cli("show", "params", "--json").output)["rows"]
    fee = next(r for r in rows if r["parameter"] == "JobEscrow.PROTOCOL_FEE_BPS")
    assert (fee["raw"], fee["low"], fee["high"]) == (250, "0% (0 bps)", "10% (1000 bps)")


def test_ids_and_times_for_people():
    ids = [bytes.fromhex("abcdef01" + "00" * 28), bytes.fromhex("abcdef02" + "00" * 28)]
    assert match_prefix(ids, "abcdef01", "job") == ids[0]
    with pytest.raises(Exception, match="0xabcdef is ambiguous: 2 jobs start with it"):
        match_prefix(ids, "abcdef", "job")
    with pytest.raises(Exception, match="no job id starts with 0x123456"):
        match_prefix(ids, "123456", "job")
    now = 1_796_119_200  # 2026-12-01 10:00 UTC
    assert when(now + 3 * 3_600 + 12 * 60, now) == "2026-12-01 13:12 UTC, in 3h 12m"
    assert when(now - 300, now) == "2026-12-01 09:55 UTC, 5m ago"
    assert duration(59) == "59s" and duration(DAY + 3_600 + 5) == "1d 1h"


def test_the_cli_agrees_with_the_packages_it_summarises():
    from computeshare.cli.common import job_spec_options
    from computeshare.workloads import CATALOGUE

    wasm = next(p for p in job_spec_options(lambda: None).__click_params__ if p.name == "module")
    assert all(name in wasm.help for name in CATALOGUE)
    license_ = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]
    assert license_ == "AGPL-3.0-only", "an SPDX expression, not the deprecated table"
