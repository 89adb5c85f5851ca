"""The path of a real network, on a devnet: an anvil started as a process of its own (the
`devnet` network of ape-config.yaml) gets `ape run deploy` as an operator runs it (cut off
half-way, resumed, re-run), then tests/fork and `computeshare gov rehearse` run on forks of
it (`ethereum:devnet-fork:foundry`), and the devnet is checked untouched."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from computeshare.params import parameter
from devtools import PROJECT_ROOT

DEVNET_CHAIN_ID = 4242
DEPLOYER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # TEST::0 of the test mnemonic
BIN = Path(sys.executable).parent
FORK = "ethereum:devnet-fork:foundry"
# ape's message when an anvil it started does not answer within its fixed 20 s.
ANVIL_START_TIMEOUT = "Timed out waiting for successful RPC connection to the 'anvil' process"


@dataclass
class Devnet:
    uri: str
    env: dict[str, str]
    manifest: Path

    def rpc(self, method: str, *params):
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
        request = urllib.request.Request(
            self.uri,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())["result"]

    def nonce(self) -> int:
        return int(self.rpc("eth_getTransactionCount", DEPLOYER, "latest"), 16)

    def head(self) -> tuple[int, str]:
        block = self.rpc("eth_getBlockByNumber", "latest", False)
        return int(block["number"], 16), block["hash"]

    def run(self, *args: str, timeout: float = 300, env=None) -> subprocess.CompletedProcess:
        """Runs a command of the project. A command on a fork starts its own anvil, which ape
        gives a fixed 20 s to answer; on a loaded machine that start can time out before any
        of our code runs, so such a start (and only that) is tried once more."""

        def once() -> subprocess.CompletedProcess:
            return subprocess.run(
                args,
                cwd=PROJECT_ROOT,
                env=env or self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )

        done = once()
        if ANVIL_START_TIMEOUT in done.stdout + done.stderr:
            done = once()
        return done

    def deploy_command(self, directory: Path | None = None) -> list[str]:
        return [
            str(BIN / "ape"),
            "run",
            "deploy",
            "--network",
            "ethereum:devnet",
            "--account",
            "TEST::0",
            "--manifest-dir",
            str(directory or self.manifest.parent),
        ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def devnet(tmp_path_factory):
    port = free_port()
    node = subprocess.Popen(
        [shutil.which("anvil"), "--port", str(port), "--chain-id", str(DEVNET_CHAIN_ID)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    directory = tmp_path_factory.mktemp("deployments")
    net = Devnet(
        uri=f"http://127.0.0.1:{port}",
        env={**os.environ, "COMPUTESHARE_DEVNET_URI": f"http://127.0.0.1:{port}"},
        manifest=directory / f"devnet-{DEVNET_CHAIN_ID}.json",
    )
    for _ in range(100):
        try:
            net.rpc("eth_chainId")
            break
        except OSError:
            time.sleep(0.1)
    try:
        yield net
    finally:
        node.terminate()
        node.wait(timeout=10)


def sent(result: subprocess.CompletedProcess) -> int:
    return int(re.search(r"transactions sent: (\d+)", result.stdout).group(1))


@pytest.fixture(scope="module")
def deployment(devnet, tmp_path_factory):
    """Deploys to the devnet the way an operator would: once uninterrupted (for reference,
    to a manifest of its own), then cut off after three contracts (the process is killed),
    resumed, and run once more. Returns what each run left."""
    reference = devnet.run(*devnet.deploy_command(tmp_path_factory.mktemp("reference")))
    assert reference.returncode == 0, reference.stdout[-2000:] + reference.stderr[-2000:]
    nonce_at_start = devnet.nonce()
    cut = subprocess.Popen(
        devnet.deploy_command(),
        cwd=PROJECT_ROOT,
        env=devnet.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    partial: dict = {}
    while cut.poll() is None and len(partial.get("contracts", {})) < 3:
        time.sleep(0.02)
        if devnet.manifest.exists():
            partial = json.loads(devnet.manifest.read_text())
    os.killpg(cut.pid, signal.SIGKILL)
    cut.wait()
    nonce_at_cut = devnet.nonce()
    resumed = devnet.run(*devnet.deploy_command())
    nonce_after_resume = devnet.nonce()
    again = devnet.run(*devnet.deploy_command())
    return {
        "reference": reference,
        "nonce_at_start": nonce_at_start,
        "partial": partial,
        "nonce_at_cut": nonce_at_cut,
        "resumed": resumed,
        "nonce_after_resume": nonce_after_resume,
        "again": again,
        "manifest": json.loads(devnet.manifest.read_text()),
    }


def test_deploy_script_resumes_a_cut_off_run_and_then_sends_nothing(devnet, deployment):
    partial, manifest = deployment["partial"], deployment["manifest"]
    assert not partial["complete"] and len(partial["contracts"]) >= 3

    resumed = deployment["resumed"]
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    assert f"deployed: {devnet.manifest}" in resumed.stdout
    assert deployment["nonce_after_resume"] == deployment["nonce_at_cut"] + sent(resumed)
    assert manifest["complete"] and manifest["chain_id"] == DEVNET_CHAIN_ID
    for name, entry in partial["contracts"].items():
        assert manifest["contracts"][name]["address"] == entry["address"]
    # The cut-off run and its resumption together sent what one uninterrupted run sends.
    reference = sent(deployment["reference"])
    assert deployment["nonce_after_resume"] - deployment["nonce_at_start"] == reference

    again = deployment["again"]
    assert again.returncode == 0, again.stderr[-2000:]
    assert "already deployed" in again.stdout and sent(again) == 0
    assert devnet.nonce() == deployment["nonce_after_resume"]


def test_fork_tests_pass_on_a_fork_of_the_devnet_and_leave_it_untouched(devnet, deployment):
    """tests/fork on a fork of the devnet, including the whole-system state machine (a
    small profile, with the coalition actor) on the deployment as deployed."""
    head = devnet.head()
    env_manifest = {**devnet.env, "COMPUTESHARE_MANIFEST": str(devnet.manifest)}
    done = devnet.run(
        str(BIN / "ape"), "test", "tests/fork", "--network", FORK, "-p", "no:warnings",
        env=env_manifest, timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.search(r"\b6 passed\b", done.stdout)
    assert devnet.head() == head


def test_cli_rehearses_a_proposal_on_a_fork(devnet, deployment):
    head = devnet.head()
    fee = parameter("JobEscrow", "PROTOCOL_FEE_BPS")
    before = deployment["manifest"]["config"]["parameters"]["JobEscrow"]["PROTOCOL_FEE_BPS"]
    rehearse = [str(BIN / "computeshare"), "gov", "rehearse", "--manifest", str(devnet.manifest)]
    done = devnet.run(
        *rehearse, "--network", FORK, "--set", f"{fee.contract}.{fee.name}=1%",
        "--description", "Lower the fee",
    )  # fmt: skip
    assert done.returncode != 0 and "cannot read '1%'" in done.stderr

    done = devnet.run(
        *rehearse, "--network", FORK, "--set", "JobEscrow.PROTOCOL_FEE_BPS=100",
        "--description", "Lower the fee",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert re.search(r"proposal 0x[0-9a-f]{64} executed on the fork", done.stdout)
    assert f"JobEscrow.PROTOCOL_FEE_BPS: {before} -> 100" in done.stdout

    # The treasury of a fresh deployment is empty: the CLI refuses the grant before it
    # rehearses anything.
    done = devnet.run(
        *rehearse, "--network", FORK, "--grant", DEPLOYER, "5", "--description", "A grant",
    )  # fmt: skip
    assert done.returncode == 1
    last_line = done.stderr.strip().splitlines()[-1]
    assert last_line == "Error: the grants total 5 tokens; the treasury holds 0"

    done = devnet.run(
        *rehearse, "--network", "ethereum:devnet", "--set", "JobEscrow.PROTOCOL_FEE_BPS=100",
        "--description", "Lower the fee",
    )  # fmt: skip
    assert done.returncode == 1 and "rehearse runs on a fork" in done.stderr
    assert devnet.head() == head
