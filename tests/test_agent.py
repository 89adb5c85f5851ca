"""The provider agent and the client API on a deployed system: real workloads, real jobs."""

from __future__ import annotations

import pytest

from computeshare.agent import Agent, Journal
from computeshare.client import ClientError, ComputeShare
from computeshare.deploy import DeployConfig, Deployment, Manifest
from computeshare.jobs import STATUS_FINALIZED
from computeshare.specs import device_spec, job_requirements
from computeshare.workloads import encode_spec, execute, result_hash

TOKEN = 10**18
DAY = 86_400
SPEC = encode_spec("sha256-chain", {"seed": "computeshare", "rounds": 2_000})


@pytest.fixture
def manifest(project, deployer, arbiter, guardian, providers, client, tmp_path):
    """A deployment through the deploy steps, read back from its manifest; each provider
    stakes 10,000 tokens and registers one device; the client holds 100,000 tokens."""
    path = tmp_path / "manifest.json"
    config = DeployConfig(arbiter=arbiter.address, guardian=guardian.address)
    Deployment(project, deployer, config, Manifest.open(path)).run()
    cs = ComputeShare.from_manifest(path, account=deployer)
    for account in (*providers, client):
        cs.token.transfer(account, 100_000 * TOKEN, sender=deployer)
    return path


def agent_for(path, account, tmp_path, **kwargs) -> Agent:
    cs = ComputeShare.from_manifest(path, account=account)
    if cs.registry.device_count(account) == 0:
        cs.stake(10_000 * TOKEN)
        cs.register_device(device_spec(), "ipfs://device")
    device_id = bytes(cs.registry.device_id_of(account, 0))
    journal = Journal.open(tmp_path / f"{account.address}.json")
    return Agent(cs, account, device_id, journal, log=print, **kwargs)


def run_until_final(chain, cs, job_id, agents, max_rounds=12):
    """Steps every agent until nobody sends anything, then lets a day pass (past any reveal
    or challenge window), until the job is final."""
    for _ in range(max_rounds):
        sent = sum(agent.account.nonce for agent in agents)
        for agent in agents:
            agent.step()
        if cs.jobs.view(job_id).status == STATUS_FINALIZED:
            for agent in agents:
                agent.step()  # record the settlement
            return
        if sum(agent.account.nonce for agent in agents) == sent:
            chain.pending_timestamp += DAY + 1
            chain.mine()
    raise AssertionError(f"job not final: {cs.jobs.view(job_id)}")


def completed(paid):
    return {"outcome": "completed", "paid": paid, "slashed": 0}


def post(path, client, replicas, price=100 * TOKEN):
    cs = ComputeShare.from_manifest(path, account=client)
    job_id = cs.post_job(SPEC, job_requirements(), price=price, replicas=replicas, duration=DAY)
    return cs, job_id


def test_three_honest_agents_agree_and_are_paid(chain, manifest, providers, client, tmp_path):
    agents = [agent_for(manifest, p, tmp_path) for p in providers]
    stakes = [a.cs.staking.bonded_stake(a.me) for a in agents]
    balances = [a.cs.escrow.balanceOf(a.me) for a in agents]
    view, job_id = post(manifest, client, replicas=3)
    run_until_final(chain, view, job_id, agents)
    settled = next(iter(view.escrow.JobSettled.range(0, chain.blocks.height + 1)))
    assert bytes(settled.result_hash) == result_hash(execute(SPEC))
    for agent, stake, balance in zip(agents, stakes, balances, strict=True):
        # 100 tokens less the 2.5% protocol fee; no delegators, so all of it goes to the
        # provider's escrow balance and its stake is unchanged (collateral released).
        assert agent.journal.done["0x" + job_id.hex()] == completed(97_500 * TOKEN // 1_000)
        assert agent.journal.jobs == {}
        assert agent.cs.escrow.balanceOf(agent.me) == balance + 97_500 * TOKEN // 1_000
        assert agent.cs.staking.bonded_stake(agent.me) == stake
        assert agent.cs.staking.free_stake(agent.me) == stake


def test_faulty_agent_is_outvoted_and_slashed(chain, manifest, providers, client, tmp_path):
    honest = [agent_for(manifest, p, tmp_path) for p in providers[:2]]
    faulty = agent_for(manifest, providers[2], tmp_path, faulty=True)
    before = faulty.cs.staking.bonded_stake(faulty.me)
    view, job_id = post(manifest, client, replicas=3)
    run_until_final(chain, view, job_id, [*honest, faulty])
    settled = next(iter(view.escrow.JobSettled.range(0, chain.blocks.height + 1)))
    assert bytes(settled.result_hash) == result_hash(execute(SPEC))
    record = faulty.journal.done["0x" + job_id.hex()]
    assert (record["outcome"], record["paid"]) == ("slashed", 0)
    assert record["slashed"] > 0
    assert faulty.cs.staking.bonded_stake(faulty.me) == before - record["slashed"]
    for agent in honest:
        assert agent.journal.done["0x" + job_id.hex()] == completed(97_500 * TOKEN // 1_000)


def test_optimistic_job_settles_after_the_challenge_window(
    chain, manifest, providers, client, tmp_path
):
    agent = agent_for(manifest, providers[0], tmp_path)
    view, job_id = post(manifest, client, replicas=1)
    agent.step()  # accept and commit
    agent.step()  # reveal (the only replica committed)
    assert view.jobs.view(job_id).revealed == 1
    agent.step()
    assert view.jobs.view(job_id).status != STATUS_FINALIZED, "challenge window still open"
    run_until_final(chain, view, job_id, [agent])
    assert agent.journal.done["0x" + job_id.hex()] == completed(97_500 * TOKEN // 1_000)


def test_restarted_agent_finishes_the_job_it_committed(
    chain, manifest, providers, client, tmp_path
):
    first = agent_for(manifest, providers[0], tmp_path)
    others = [agent_for(manifest, p, tmp_path) for p in providers[1:]]
    view, job_id = post(manifest, client, replicas=3)
    first.step()  # accepted and committed; the process then dies
    key = "0x" + job_id.hex()
    assert first.journal.jobs[key]["salt"]
    restarted = agent_for(manifest, providers[0], tmp_path)
    assert restarted.journal.jobs[key] == first.journal.jobs[key]
    run_until_final(chain, view, job_id, [restarted, *others])
    assert restarted.journal.done[key] == completed(97_500 * TOKEN // 1_000)


def test_agent_adopts_an_acceptance_its_journal_missed(
    chain, manifest, providers, client, tmp_path
):
    """Died after the accept transaction, before writing the journal."""
    agent = agent_for(manifest, providers[0], tmp_path)
    start = agent.journal.from_block
    view, job_id = post(manifest, client, replicas=1)
    agent.cs.jobs.accept(job_id, 0, sender=providers[0])
    agent.journal.from_block = start
    agent.step()
    key = "0x" + job_id.hex()
    assert agent.journal.jobs[key]["slot"] == 0
    run_until_final(chain, view, job_id, [agent])
    assert agent.journal.done[key] == completed(97_500 * TOKEN // 1_000)


def test_agent_skips_jobs_its_device_cannot_serve(chain, manifest, providers, client, tmp_path):
    agent = agent_for(manifest, providers[0], tmp_path)
    view = ComputeShare.from_manifest(manifest, account=client)
    job_id = view.post_job(
        SPEC, job_requirements(min_gpu_count=8), price=100 * TOKEN, replicas=1, duration=DAY
    )
    nonce = providers[0].nonce
    agent.step()
    assert providers[0].nonce == nonce, "nothing sent for a job the device cannot serve"
    assert view.jobs.view(job_id).accepted == 0


def test_client_refuses_a_manifest_it_cannot_use(manifest, tmp_path):
    with pytest.raises(ClientError, match="no deployment manifest"):
        ComputeShare.from_manifest(tmp_path / "missing.json")
    read_only = ComputeShare.from_manifest(manifest)
    with pytest.raises(ClientError, match="needs an account"):
        read_only.deposit(1)
