"""The TypeScript package sdk/ts/ (`@computeshare/abi`): its generated files are current,
it type-checks with tsc, and a dApp built on it posts a job through viem on a node with the
suite deployed and reads it back.

Node and npm run it; the package's own dependencies (viem, typescript, pinned exactly in
sdk/ts/package-lock.json) are installed by `make setup`, or by the fixture below when
missing. Without node or npm the Node tests are skipped, and fail in CI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from computeshare.client import ComputeShare
from devtools import typed_abi

SDK = typed_abi.PACKAGE_DIR
IN_CI = os.environ.get("CI") == "true"
TOKEN = 10**18


def _missing(problem: str):
    message = f"the TypeScript package's tests need {problem}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def node_modules() -> Path:
    """sdk/ts/node_modules as the lock pins it (`npm ci` when missing or older than the
    lock; the same stamp as the Makefile's)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        _missing("node and npm on PATH")
    stamp = SDK / "node_modules" / ".installed"
    lock = SDK / "package-lock.json"
    if not stamp.exists() or stamp.stat().st_mtime < lock.stat().st_mtime:
        run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], SDK)
        stamp.touch()
    return SDK / "node_modules"


def test_the_generated_files_are_current(tmp_path):
    typed_abi.write(tmp_path)
    made = {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.ts")}
    committed = {str(p.relative_to(SDK)) for p in (SDK / "src").rglob("*.ts")}
    assert made == committed, "run `make abi`"
    assert len(made) == len(typed_abi.load_abis()) + 2  # an ABI module each, addresses, index
    for relative in sorted(made):
        assert (SDK / relative).read_text() == (tmp_path / relative).read_text(), (
            f"sdk/ts/{relative} is not what `make abi` writes: run it"
        )
    job_escrow = (SDK / "src" / "abi" / "JobEscrow.ts").read_text()
    assert "export const jobEscrowAbi = [" in job_escrow and job_escrow.endswith("] as const;\n")


def test_local_manifests_are_not_published(tmp_path):
    """Addresses of throwaway chains (the git-ignored local-, devnet-, custom- and fork
    manifests) never reach the package; a committed one does, and a broken one is refused."""
    contracts = {"JobEscrow": {"address": "0x" + "ab" * 20, "block": 7}}
    for name in ("local-31337.json", "devnet-4242.json", "custom-1.json", "x-fork-1.json"):
        (tmp_path / name).write_text(json.dumps({"chain_id": 5, "contracts": contracts}))
    (tmp_path / "sepolia-11155111.json").write_text(
        json.dumps({"chain_id": 11155111, "contracts": contracts})
    )
    text = typed_abi.generate(deployments_dir=tmp_path)["src/addresses.ts"]
    assert '"11155111": {\n    "JobEscrow": "0x' + "ab" * 20 in text and '"5"' not in text
    bad = {"JobEscrow": {"address": "0x12; alert(1)", "block": 1}}
    (tmp_path / "mainnet-1.json").write_text(json.dumps({"chain_id": 1, "contracts": bad}))
    with pytest.raises(ValueError, match="no valid address"):
        typed_abi.generate(deployments_dir=tmp_path)


def test_the_package_type_checks(node_modules):
    run([str(node_modules / ".bin" / "tsc"), "-p", str(SDK), "--noEmit"], SDK)


def test_a_dapp_posts_a_job_through_viem_and_reads_it_back(
    node_modules, deployed_manifest, chain, accounts, tmp_path
):
    """The package generated with this node's deployment as a published manifest, compiled
    with tsc together with sdk/ts/test/post-job.ts, which approves, deposits and posts a job
    as `ComputeShare.post_job` does, then reads JobPosted and JobEscrowView.job."""
    package = tmp_path / "package"
    package.mkdir()
    for name in ("package.json", "tsconfig.json", "test"):
        source = SDK / name
        copy = shutil.copytree if source.is_dir() else shutil.copy
        copy(source, package / name)
    (package / "node_modules").symlink_to(node_modules)
    manifests = tmp_path / "deployments"
    manifests.mkdir()
    manifest = json.loads(Path(deployed_manifest).read_text())
    (manifests / f"testnet-{manifest['chain_id']}.json").write_text(json.dumps(manifest))
    typed_abi.write(package, deployments_dir=manifests)
    run([str(node_modules / ".bin" / "tsc"), "-p", str(package)], package)

    client = accounts[4]  # holds 100,000 tokens; the node keeps its key (eth_sendTransaction)
    assert client.address in chain.provider.web3.eth.accounts
    done = run(["node", "dist/test/post-job.js", chain.provider.uri, client.address], package, 300)
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["chainId"] == manifest["chain_id"] == chain.chain_id
    assert seen["jobId"] == seen["simulatedId"]
    assert seen["client"] == client.address
    assert seen["specHash"] == seen["expectedSpecHash"]
    assert (seen["price"], seen["replicas"], seen["status"]) == (str(10 * TOKEN), "1", 1)

    cs = ComputeShare.from_manifest(deployed_manifest)
    job_id = bytes.fromhex(seen["jobId"][2:])
    assert cs.escrow_view.job(job_id).status == 1  # open, as the dApp read it
    terms = cs.jobs.terms(job_id)
    assert (terms.client, terms.price_per_replica) == (client.address, 10 * TOKEN)
    assert str(terms.deadline) == seen["deadline"]
