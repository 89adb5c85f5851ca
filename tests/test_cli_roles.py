"""The command line for what each role does after its first steps: a provider cancels a
thaw, sets its delegators' cut and updates a device; a delegator works in tokens, not raw
shares; an arbiter lists disputes and rules; one agent at a time serves an account.

Commands run in-process through click's runner against the deployed system on the local
node, except the agent lock's test, where separate processes (and SIGKILL) are the point."""

from __future__ import annotations

import fcntl
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import ape
import pytest
from click.testing import CliRunner
from eth_utils import keccak

from computeshare.cli import COMMANDS, main
from computeshare.client import ComputeShare
from computeshare.constants import TOKEN, Role
from computeshare.governance import advance
from computeshare.jobs import commitment
from computeshare.sandbox import RunResult
from computeshare.specs import device_spec, job_requirements
from computeshare.workloads import encode_spec
from tests.helpers import one_line_error

EXECUTABLE = Path(sys.executable).with_name("computeshare")
SPEC = encode_spec("sha256-chain", {"seed": "a", "rounds": 9})


@pytest.fixture
def manifest(deployed_manifest):
    return deployed_manifest


@pytest.fixture
def cs(manifest):
    return ComputeShare.from_manifest(manifest)


def ok(result):
    assert result.exit_code == 0, result.output
    return result.output


def last_word(result) -> str:
    return ok(result).split()[-1]


def grant_arbiter(cs, account) -> None:
    """What a proposal would do: the timelock (impersonated) makes `account` an arbiter."""
    timelock = ape.accounts[cs.timelock.address]
    timelock.balance += 10**18
    cs.job_disputes.set_roles(account, Role.ARBITER, sender=timelock)


# ---------------------------------------------------------------- provider


def test_a_provider_cancels_its_thaw(cli, cs, accounts):
    ok(cli("provider", "stake", "5000", account=4))
    ok(cli("provider", "thaw", "100", account=4))
    assert cs.staking.pool(accounts[4]).own_thawing == 100 * TOKEN
    out = ok(cli("provider", "cancel-thaw", account=4))
    assert "thaw cancelled: 100 tokens bonded again; own stake 5,000 tokens" in out, out
    pool = cs.staking.pool(accounts[4])
    assert (pool.own_thawing, pool.own_unlock_at, pool.own_stake) == (0, 0, 5_000 * TOKEN)
    nonce = accounts[4].nonce
    one_line_error(cli("provider", "cancel-thaw", account=4), "nothing is thawing")
    assert accounts[4].nonce == nonce, "refused before sending"
    ok(cli("provider", "thaw", "7", account=4))
    record = json.loads(ok(cli("provider", "cancel-thaw", "--json", account=4)))
    assert record == {"amount": str(7 * TOKEN), "own_stake": str(5_000 * TOKEN)}


def test_a_provider_sets_its_cut_now_or_scheduled(cli, cs, accounts, chain):
    provider = accounts[4]
    ok(cli("provider", "stake", "5000", account=4))
    # No delegators: in force at once.
    out = ok(cli("provider", "set-cut", "12.5%", account=4))
    assert "delegator cut 12.5% (1250 bps): in force now" in out, out
    assert cs.staking.delegator_cut(provider) == 1_250
    ok(cli("delegator", "delegate", str(provider), "100", account=10))
    # With a delegator warming up the change waits CUT_CHANGE_DELAY, from the event.
    delay = cs.parameter("Staking", "CUT_CHANGE_DELAY")
    out = ok(cli("provider", "set-cut", "--bps", "3000", account=4))
    assert re.search(r"delegator cut 30% \(3000 bps\): takes effect .* UTC, in \d+d", out), out
    pool = cs.staking.pool(provider)
    assert (pool.pending_cut_bps, cs.staking.delegator_cut(provider)) == (3_000, 1_250)
    record = json.loads(ok(cli("provider", "set-cut", "--bps", "2000", "--json", account=4)))
    assert record["cut_bps"] == 2_000 and record["provider"] == provider.address
    assert record["effective_at"] == cs.staking.pool(provider).pending_cut_at
    assert record["effective_at"] - chain.blocks.head.timestamp == delay
    nonce = provider.nonce
    one_line_error(cli("provider", "set-cut", "100.5%", account=4), "above 100%")
    one_line_error(cli("provider", "set-cut", "--bps", "10001", account=4), "above 100%")
    one_line_error(cli("provider", "set-cut", "12.345%", account=4), "whole basis point")
    one_line_error(cli("provider", "set-cut", "1250", account=4), "a percentage like 12.5%")
    one_line_error(cli("provider", "set-cut", "lots%", account=4), "a percentage like 12.5%")
    one_line_error(cli("provider", "set-cut", "-1%", account=4), "No such option: -1")
    one_line_error(cli("provider", "set-cut", account=4), "give the cut")
    one_line_error(cli("provider", "set-cut", "5%", "--bps", "500", account=4), "not both")
    assert provider.nonce == nonce, "refused before sending"


def test_a_provider_updates_only_the_fields_it_names(cli, cs, accounts):
    ok(cli("provider", "stake", "5000", account=4))
    device = last_word(
        cli("provider", "register", "--gpus", "2", "--cpus", "16", "--uri", "https://a/d.json",
            account=4)
    )  # fmt: skip
    before = cs.registry.device(bytes.fromhex(device[2:]))
    out = ok(cli("provider", "update", device[:10], "--gpus", "4", account=4))
    assert f"device {device}: updated (gpus 2 -> 4)" in out, out
    after = cs.registry.device(bytes.fromhex(device[2:]))
    assert after.spec.gpu_count == 4 and after.metadata_uri == "https://a/d.json"
    unchanged = ("cpu_cores", "memory_mb", "gpu_model", "vram_mb", "region", "price_per_second",
                 "max_concurrent_jobs", "attestation")  # fmt: skip
    for name in unchanged:
        assert getattr(after.spec, name) == getattr(before.spec, name), name
    record = json.loads(
        ok(cli("provider", "update", device, "--metadata-uri", "https://b/d.json",
               "--price-per-second", "0.002", "--json", account=4))
    )  # fmt: skip
    assert record["device"] == device and record["metadata_uri"] == "https://b/d.json"
    assert record["spec"]["price_per_second"] == 2 * 10**15 and record["spec"]["gpu_count"] == 4
    assert set(record["changed"]) == {"price_per_second", "metadata_uri"}
    after = cs.registry.device(bytes.fromhex(device[2:]))
    assert after.metadata_uri == "https://b/d.json" and after.spec.cpu_cores == 16
    # No GPUs left: the model and VRAM go with them.
    ok(cli("provider", "update", device, "--gpus", "0", account=4))
    spec = cs.registry.device(bytes.fromhex(device[2:])).spec
    assert (spec.gpu_count, spec.vram_mb, bytes(spec.gpu_model)) == (0, 0, b"\x00" * 32)
    nonce, other = accounts[4].nonce, accounts[10].nonce
    one_line_error(cli("provider", "update", device, "--gpus", "1", account=10), "is not yours")
    one_line_error(cli("provider", "update", device, "--gpus", "1", account=4),
                   "a device gaining GPUs needs their gpu_model and vram_mb too")  # fmt: skip
    one_line_error(cli("provider", "update", device, account=4), "nothing to change")
    one_line_error(
        cli("provider", "update", device, "--gpu-model", "x" * 33, account=4), "at most 32 bytes"
    )
    assert (accounts[4].nonce, accounts[10].nonce) == (nonce, other), "refused before sending"


# ---------------------------------------------------------------- delegator


def test_a_delegator_sees_and_undelegates_tokens(cli, cs, accounts, chain):
    provider, delegator = accounts[4], accounts[10]
    ok(cli("provider", "stake", "5000", account=4))
    ok(cli("delegator", "delegate", str(provider), "1000", account=10))
    advance(chain, cs.parameter("Staking", "WARMUP") + 1)
    out = ok(cli("delegator", "activate", str(provider), account=10))
    shares = cs.staking.delegation(provider, delegator).shares
    assert f"shares received: {shares:,} (worth 1,000 tokens)" in out, out
    # --tokens: never more than asked, and within a share's worth of it.
    out = ok(cli("delegator", "undelegate", str(provider), "--tokens", "250.5", account=10))
    assert re.search(r"thawing 250\.5 tokens .*: withdrawable .* UTC, in \d+d", out), out
    [event] = cs.staking.Undelegated.range(chain.blocks.height, chain.blocks.height + 1)
    assert 250_500 * TOKEN // 1_000 - 10**6 < event.amount <= 250_500 * TOKEN // 1_000
    nonce = delegator.nonce
    one_line_error(
        cli("delegator", "undelegate", str(provider), "--tokens", "750", account=10),
        "your delegation is worth 749.5 tokens",
    )
    one_line_error(cli("delegator", "undelegate", str(provider), account=10), "give SHARES")
    one_line_error(
        cli("delegator", "undelegate", str(provider), "5", "--all", account=10), "only one of"
    )
    one_line_error(
        cli("delegator", "undelegate", str(provider), "--tokens", "0", account=10), "positive"
    )
    assert delegator.nonce == nonce, "refused before sending"
    record = json.loads(
        ok(cli("delegator", "undelegate", str(provider), "--all", "--json", account=10))
    )
    assert cs.staking.delegation(provider, delegator).shares == 0
    assert int(record["shares"]) == shares - event.shares and int(record["thawing"]) > 0
    one_line_error(
        cli("delegator", "undelegate", str(provider), "--all", account=10), "you hold no shares"
    )


def test_undelegating_counts_the_warmed_up_tokens_it_joins_first(cli, cs, accounts, chain):
    """`undelegate` first joins warmed-up tokens to the pool: --tokens and --all count the
    shares that makes, at the price after it (never more than asked; all of them)."""
    provider, delegator = accounts[4], accounts[10]
    ok(cli("provider", "stake", "5000", account=4))
    ok(cli("delegator", "delegate", str(provider), "1000", account=10))
    advance(chain, cs.parameter("Staking", "WARMUP") + 1)
    ok(cli("delegator", "activate", str(provider), account=10))
    ok(cli("delegator", "delegate", str(provider), "600", "--min-cut", "0", account=10))
    advance(chain, cs.parameter("Staking", "WARMUP") + 1)
    assert cs.staking.delegation(provider, delegator).warming == 600 * TOKEN
    # Worth 1,600 tokens once joined, though the shares held now are worth 1,000.
    out = ok(cli("delegator", "undelegate", str(provider), "--tokens", "1200", account=10))
    assert "thawing 1,200 tokens" in out, out
    [event] = cs.staking.Undelegated.range(chain.blocks.height, chain.blocks.height + 1)
    assert 1_200 * TOKEN - 10**6 < event.amount <= 1_200 * TOKEN
    ok(cli("delegator", "undelegate", str(provider), "--all", account=10))
    position = cs.staking.delegation(provider, delegator)
    assert (position.shares, position.warming) == (0, 0)
    assert 1_600 * TOKEN - 10**6 < position.thawing <= 1_600 * TOKEN


# ---------------------------------------------------------------- arbiter


def _disputed_job(cs, accounts) -> bytes:
    """A k = 1 job of account 12's that account 4's device served and the client disputed."""
    provider = cs.as_account(accounts[4])
    provider.stake(5_000 * TOKEN)
    provider.register_device(device_spec(), "")
    client = cs.as_account(accounts[12])
    job = client.post_job(SPEC, job_requirements(), price=10 * TOKEN, replicas=1, duration=3600)
    cs.jobs.accept(job, 0, sender=accounts[4])
    cs.jobs.submit(job, RunResult(0, 99, b"wrong?"), sender=accounts[4])
    return job


def test_an_arbiter_lists_disputes_and_rules_for_the_client(cli, cs, accounts):
    job = _disputed_job(cs, accounts)
    arbiter = accounts[9]
    one_line_error(cli("arbiter", "rule", job.hex(), "--for", "client", account=9),
                   "not disputed")  # fmt: skip
    ok(cli("client", "dispute", job.hex()[:10], account=12))
    nonce = arbiter.nonce
    one_line_error(
        cli("arbiter", "rule", job.hex()[:10], "--for", "client", account=9),
        f"{arbiter.address} is not an arbiter",
    )
    assert arbiter.nonce == nonce, "refused before sending"
    grant_arbiter(cs, arbiter)
    listing = ok(cli("arbiter", "disputes"))
    lines = listing.strip().splitlines()
    assert lines[0].split()[:3] == ["job", "client", "k"], listing
    assert len(lines) == 2 and lines[1].startswith("0x" + job.hex()[:8]) and "UTC, in" in lines[1]
    [row] = json.loads(ok(cli("arbiter", "disputes", "--json", "--full")))["rows"]
    assert row["job"] == "0x" + job.hex() and row["k"] == 1
    one_line_error(cli("arbiter", "rule", job.hex()[:10], account=9), "--for client or provider")
    out = ok(cli("arbiter", "rule", job.hex()[:10], "--for", "client", account=9))
    assert f"job 0x{job.hex()}: ruled for the client by {arbiter.address}" in out, out
    # The client's payment comes back, with part of the slash as compensation; its bond is
    # its own again in JobDisputes, to withdraw.
    assert "settled: paid 0, refunded 10 tokens, fees 0, compensation 2.25" in out, out
    assert cs.job_disputes.balanceOf(accounts[12]) == TOKEN
    out = ok(cli("client", "withdraw-bonds", account=12))
    assert "withdrew 1 tokens of bonds" in out, out
    assert cs.job(job)["status_name"] == "finalized"
    assert ok(cli("arbiter", "disputes")).strip().splitlines()[1:] == []
    one_line_error(cli("arbiter", "rule", job.hex(), "--for", "provider", account=9),
                   "not disputed")  # fmt: skip


def test_a_ruling_for_the_provider_and_one_too_late(cli, cs, accounts, chain):
    job = _disputed_job(cs, accounts)
    ok(cli("client", "dispute", job.hex(), account=12))
    grant_arbiter(cs, accounts[9])
    snapshot = chain.snapshot()
    out = ok(cli("arbiter", "rule", job.hex(), "--for", "provider", "--json", account=9))
    record = json.loads(out)
    assert record["for_client"] is False and record["job"] == "0x" + job.hex()
    assert int(record["settled"]["paid"]) > 0 and int(record["settled"]["refunded"]) == 0
    chain.restore(snapshot)
    advance(chain, cs.job(job)["phase_end"] - chain.pending_timestamp + 1)
    assert ok(cli("arbiter", "disputes")).strip().splitlines()[1:] == [], "its period is over"
    nonce = accounts[9].nonce
    one_line_error(
        cli("arbiter", "rule", job.hex(), "--for", "client", account=9), "the ruling period ended"
    )
    assert accounts[9].nonce == nonce


def test_an_arbiter_names_the_right_result_of_replicas_that_disagree(cli, cs, accounts):
    """k = 2, one result each: finalizing sends the job to the arbiter, who names the right
    result by a slot (whose revealed result it takes) or by the result hash itself."""
    salt = b"\x01" * 32
    for index in (4, 10):
        provider = cs.as_account(accounts[index])
        provider.stake(5_000 * TOKEN)
        provider.register_device(device_spec(), "")
    client = cs.as_account(accounts[12])
    job = client.post_job(SPEC, job_requirements(), price=10 * TOKEN, replicas=2, duration=3600)
    results = {4: keccak(b"right"), 10: keccak(b"wrong")}
    for index, result in results.items():
        slot = cs.jobs.accept(job, 0, sender=accounts[index]).return_value
        digest = commitment(job, accounts[index].address, result, salt)
        cs.jobs.commit(job, slot, digest, sender=accounts[index])
    for slot, (index, result) in enumerate(results.items()):
        cs.jobs.reveal(job, slot, result, salt, sender=accounts[index])
    cs.jobs.finalize(job, sender=accounts[12])
    assert cs.job(job)["status_name"] == "disputed"
    grant_arbiter(cs, accounts[9])
    nonce = accounts[9].nonce
    one_line_error(cli("arbiter", "rule", job.hex(), account=9), "--replica")
    one_line_error(cli("arbiter", "rule", job.hex(), "--replica", "5", account=9), "no slot 5")
    one_line_error(
        cli("arbiter", "rule", job.hex(), "--replica", "0x" + "ab" * 32, account=9),
        "no replica revealed 0xabab",
    )
    assert accounts[9].nonce == nonce
    snapshot = ape.chain.snapshot()
    out = ok(cli("arbiter", "rule", job.hex(), "--replica", "0", account=9))
    assert f"ruled for result 0x{results[4].hex()}" in out, out
    settled = list(
        cs.escrow.ReplicaSettled.range(ape.chain.blocks.height, ape.chain.blocks.height + 1)
    )
    assert len(settled) == 2
    ape.chain.restore(snapshot)
    out = ok(cli("arbiter", "rule", job.hex(), "--replica", "0x" + results[10].hex(), account=9))
    assert f"ruled for result 0x{results[10].hex()}" in out, out


def test_the_arbiter_group_is_registered():
    assert COMMANDS["arbiter"][:2] == ("computeshare.cli.arbiter", "arbiter")
    result = CliRunner().invoke(main, ["arbiter", "--help"])
    assert result.exit_code == 0 and "rule" in result.output and "disputes" in result.output
    for group, name in (("provider", "cancel-thaw"), ("provider", "set-cut"),
                        ("provider", "update"), ("arbiter", "rule")):  # fmt: skip
        text = CliRunner().invoke(main, [group, name, "--help"]).output
        assert "--json" in text and len(text.split("\n\n")[1].strip()) > 20, text


# ---------------------------------------------------------------- one agent per account


def test_an_account_lock_is_exclusive_and_names_its_holder(tmp_path):
    from computeshare.agent import AgentError, lock_account

    address = "0x" + "ab" * 20
    held = lock_account(tmp_path, 1337, address)
    with pytest.raises(AgentError, match=rf"another agent \(PID {os.getpid()}\) serves"):
        lock_account(tmp_path, 1337, address)
    other = lock_account(tmp_path, 1337, "0x" + "cd" * 20)  # another account: its own lock
    elsewhere = lock_account(tmp_path, 1, address)  # another chain: its own lock
    for lock in (other, elsewhere):
        lock.release()
    # A process holding the lock (until it is killed) keeps it from this one.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom pathlib import Path\nfrom computeshare.agent import lock_account\n"
         "lock = lock_account(Path(sys.argv[1]), 1337, sys.argv[2])\nprint('held', flush=True)\n"
         "time.sleep(600)\n", str(tmp_path), address.upper().replace("0X", "0x")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    held.release()
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(AgentError, match=rf"PID {holder.pid}\)"):
            lock_account(tmp_path, 1337, address)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(30)
    lock_account(tmp_path, 1337, address).release()  # SIGKILL released it
    path = held.path
    with open(path) as handle:  # and nothing holds it now
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _line(process, timeout: float) -> str:
    """The process's next stdout line, or fails after `timeout` seconds."""
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if selector.select(end - time.monotonic()):
                return process.stdout.readline()
    raise AssertionError(f"no output within {timeout} s")


def test_a_second_agent_for_the_same_account_exits_naming_the_first(cli, manifest, chain,
                                                                    tmp_path):  # fmt: skip
    ok(cli("provider", "stake", "5000", account=4))
    ok(cli("provider", "register", account=4))
    where = ["--manifest", str(manifest), "--network", chain.provider.uri, "--account", "TEST::4"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def agent(name: str, *extra: str):
        return subprocess.Popen(
            [str(EXECUTABLE), "agent", "--journal", str(tmp_path / name), "--poll", "0.2",
             *extra, *where],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip

    first = agent("first.json")
    try:
        assert "serving device 0x" in _line(first, 120)
        # Another journal, same account: refused while the first one runs.
        second = agent("second.json", "--steps", "1")
        out, err = second.communicate(timeout=120)
        assert second.returncode == 1 and out == "", out
        assert len(err.strip().splitlines()) == 1, err
        assert f"another agent (PID {first.pid}) serves" in err, err
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        first.stdout.close()
        first.stderr.close()
    third = agent("second.json", "--steps", "1")
    out, err = third.communicate(timeout=120)
    assert third.returncode == 0, err
    assert "serving device 0x" in out
