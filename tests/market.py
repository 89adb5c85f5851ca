"""A small market on the local node, for the index and dashboard tests (a helper module,
not a test module): the production deployment with a manifest, four devices, a delegator,
jobs in every status (paid, slashed, disputed, cancelled, open) and an executed proposal."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from eth_utils import keccak

from computeshare.client import ComputeShare
from computeshare.constants import DAY, TOKEN
from computeshare.deploy import DeployConfig, Deployment, Manifest
from computeshare.governance import advance, call, method, pass_proposal
from computeshare.jobs import commitment, devices_with_fees
from computeshare.sandbox import STATUS_OK, RunResult
from computeshare.specs import device_spec, job_requirements
from computeshare.workloads import encode_spec

SALT = b"\x5a" * 32


@dataclass
class Market:
    manifest_path: Path
    cs: ComputeShare
    providers: list
    client: object
    jobs: dict[str, bytes] = field(default_factory=dict)
    devices: dict[str, bytes] = field(default_factory=dict)
    proposal_id: int = 0


def build_market(project, chain, accounts, directory: Path) -> Market:
    deployer = accounts[0]
    path = directory / "market.json"
    Deployment(
        project, deployer, DeployConfig(arbiter=accounts[3].address), Manifest.open(path)
    ).run()
    cs = ComputeShare.from_manifest(path, account=deployer)
    token, staking, registry, escrow = cs.token, cs.staking, cs.registry, cs.escrow
    providers = [accounts[i] for i in (4, 5, 6)]
    client, delegator = accounts[12], accounts[13]
    voters = [accounts[i] for i in (9, 10, 11)]
    for holder in (*providers, client, delegator):
        token.transfer(holder, 100_000 * TOKEN, sender=deployer)
    for voter in voters:
        token.transfer(voter, 20_000_000 * TOKEN, sender=deployer)
        method(token, "delegate")(voter, sender=voter)  # ERC-5805, not ape's EIP-7702
    market = Market(path, cs, providers, client)
    for n, provider in enumerate(providers):
        token.approve(staking, 2**256 - 1, sender=provider)
        staking.stake(10_000 * TOKEN, sender=provider)
        spec = device_spec() if n < 2 else device_spec(gpu_count=0, gpu_model=b"\0" * 32, vram_mb=0)
        registry.register(spec, f"http://127.0.0.1:1/{n}", sender=provider)
        market.devices[f"p{n}"] = bytes(registry.device_id_of(provider, 0))
    token.approve(staking, 2**256 - 1, sender=delegator)
    staking.delegate_to(providers[0], 5_000 * TOKEN, 0, sender=delegator)
    chain.pending_timestamp += staking.parameter(7)  # WARMUP
    staking.activate(providers[0], delegator, sender=delegator)
    token.approve(escrow, 2**256 - 1, sender=client)
    token.approve(cs.job_disputes, 2**256 - 1, sender=client)
    escrow.deposit(10_000 * TOKEN, sender=client)
    jobs = market.jobs
    spec = encode_spec("sha256-chain", {"seed": "index", "rounds": 10})
    reqs = job_requirements(min_gpu_count=0, min_vram_mb=0)

    def post(k: int, price: int = 10 * TOKEN) -> bytes:
        deadline = chain.pending_timestamp + DAY
        return bytes(escrow.post(spec, reqs, price, k, deadline, price, sender=client).return_value)

    book = cs.jobs
    # k = 1, submitted and finalized after its challenge window: paid.
    jobs["paid"] = post(1)
    book.accept(jobs["paid"], 0, sender=providers[0])
    book.submit(jobs["paid"], RunResult(STATUS_OK, 1_234, b"hello"), sender=providers[0])
    # k = 3, one replica reveals another result: slashed, the others paid.
    jobs["replicated"] = post(3, 20 * TOKEN)
    good, bad = keccak(b"good"), keccak(b"bad")
    for provider, result in zip(providers, (good, good, bad), strict=True):
        slot = book.accept(jobs["replicated"], 0, sender=provider).return_value
        digest = commitment(jobs["replicated"], provider.address, result, SALT)
        book.commit(jobs["replicated"], slot, digest, sender=provider)
    for slot, (provider, result) in enumerate(zip(providers, (good, good, bad), strict=True)):
        book.reveal(jobs["replicated"], slot, result, SALT, sender=provider)
    # k = 1, submitted and disputed.
    jobs["disputed"] = post(1)
    book.accept(jobs["disputed"], 0, sender=providers[1])
    book.submit(jobs["disputed"], RunResult(STATUS_OK, 99, b"wrong?"), sender=providers[1])
    book.dispute(jobs["disputed"], sender=client)
    # cancelled, and one nobody took.
    jobs["cancelled"] = post(1)
    book.cancel(jobs["cancelled"], sender=client)
    advance(chain, 2 * DAY)
    book.finalize(jobs["paid"], sender=accounts[14])
    # The replicas disagree: finalizing escalates to the arbiter, who rules `good`.
    book.finalize(jobs["replicated"], sender=accounts[14])
    book.rule(jobs["replicated"], result=good, sender=accounts[3])
    jobs["open"] = post(2)
    # Governance: the fee drops to 1% by proposal.
    advance(chain, 1)
    action = call(escrow, "set_parameter", 0, 100)
    receipt = pass_proposal(cs.governor, chain, voters[0], voters, [action], "Lower the fee")
    market.proposal_id = int(receipt.decode_logs(cs.governor.ProposalExecuted)[0].proposalId)
    escrow.sweep_fees(devices_with_fees(escrow), sender=accounts[14])
    chain.mine()
    return market
