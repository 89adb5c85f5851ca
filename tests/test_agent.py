"""The provider agent and the client API on a deployed system: real workloads, real jobs."""

from __future__ import annotations

import json
import struct
import time
import urllib.request

import pytest
import wasmtime
from ape import chain
from coincurve import PrivateKey

from computeshare.agent import Agent, AgentError, Journal, Policy
from computeshare.client import ClientError, ComputeShare
from computeshare.constants import DAY, TOKEN
from computeshare.deploy import DeployConfig, Deployment, Manifest
from computeshare.exceptions import InvalidInput
from computeshare.jobs import STATUS_DISPUTED, STATUS_FINALIZED
from computeshare.metering import COST_TABLE_VERSION, R_FLOOR
from computeshare.results import ResultError, ResultServer
from computeshare.sandbox import MAX_FUEL, STATUS_OK, STATUS_OUT_OF_FUEL, STATUS_TRAP, RunResult
from computeshare.specs import device_spec, job_requirements
from computeshare.workloads import (
    COMMIT_SECONDS,
    decode_spec,
    encode_spec,
    execute,
    pack_u64,
    result_hash,
    run_seconds,
    wasm_spec,
)
from devtools.metering_cases import adversarial_cases

PAID = 97_500 * TOKEN // 1_000  # 100 tokens less the 2.5% protocol fee
SPEC = encode_spec("sha256-chain", {"seed": "computeshare", "rounds": 2_000})


@pytest.fixture
def manifest(project, deployer, arbiter, guardian, providers, client, tmp_path):
    """A deployment through the deploy steps, read back from its manifest; each provider
    stakes 10,000 tokens and registers one device; the client holds 100,000 tokens."""
    return deploy_for_agents(project, deployer, arbiter, guardian, providers, client, tmp_path)


def deploy_for_agents(project, deployer, arbiter, guardian, providers, client, tmp_path):
    """The `manifest` fixture's deployment; its manifest's path."""
    path = tmp_path / "manifest.json"
    config = DeployConfig(arbiter=arbiter.address, guardian=guardian.address)
    Deployment(project, deployer, config, Manifest.open(path)).run()
    cs = ComputeShare.from_manifest(path, account=deployer)
    for account in (*providers, client):
        cs.token.transfer(account, 100_000 * TOKEN, sender=deployer)
    return path


def agent_for(path, account, tmp_path, indexed: bool = False, **kwargs) -> Agent:
    """An agent for `account`'s first device (staking and registering one if needed); with
    `indexed`, its scan and job look-ups read an event index instead of eth_getLogs."""
    cs = ComputeShare.from_manifest(path, account=account)
    if indexed:
        cs.open_index(tmp_path / f"{account.address}.sqlite")
    if cs.registry.device_count(account) == 0:
        cs.stake(10_000 * TOKEN)
        cs.register_device(device_spec(), "ipfs://device")
    device_id = bytes(cs.registry.device_id_of(account, 0))
    journal = Journal.open(tmp_path / f"{account.address}.json")
    return Agent(cs, account, device_id, journal, log=print, **kwargs)


def step(agent: Agent) -> None:
    """One step of the agent, then more until the workload it started has finished (the
    step that starts a run returns at once; a later one commits its result)."""
    agent.step()
    while agent.busy:
        time.sleep(0.05)
        agent.step()


def run_until_final(chain, cs, job_id, agents, max_rounds=60, ruling=None, max_seconds=300):
    """Steps every agent until nobody sends anything, then lets a day pass (past any reveal
    or challenge window), until the job is final. `ruling` (arbiter, result hash) rules on
    a replicated job whose replicas disagreed. A round in which a worker is busy (a run, or
    a job's trees fetched and checked) does not count: on a loaded machine that work takes
    longer, not more rounds; `max_seconds` bounds the whole."""
    rounds, deadline = 0, time.monotonic() + max_seconds
    while rounds < max_rounds and time.monotonic() < deadline:
        rounds += 1
        sent = sum(agent.account.nonce for agent in agents)
        for agent in agents:
            agent.step()
        view = cs.jobs.view(job_id)
        if ruling is not None and view.replicas > 1 and view.status == STATUS_DISPUTED:
            arbiter, result = ruling
            cs.jobs.rule(job_id, result=result, sender=arbiter)
        if cs.jobs.view(job_id).status == STATUS_FINALIZED:
            for agent in agents:
                agent.step()  # record the settlement
            return
        if any(agent.busy for agent in agents):
            time.sleep(0.2)  # a workload runs in a worker: the chain's clock waits for it
            rounds -= 1
        elif sum(agent.account.nonce for agent in agents) == sent:
            chain.pending_timestamp += DAY + 1
            chain.mine()
    raise AssertionError(f"job not final: {cs.jobs.view(job_id)}")


def outcome_of(record: dict) -> dict:
    return {name: record[name] for name in ("outcome", "paid", "slashed")}


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
        assert outcome_of(agent.journal.done["0x" + job_id.hex()]) == completed(
            97_500 * TOKEN // 1_000
        )
        assert agent.journal.jobs == {}
        assert agent.cs.escrow.balanceOf(agent.me) == balance + 97_500 * TOKEN // 1_000
        assert agent.cs.staking.bonded_stake(agent.me) == stake
        assert agent.cs.staking.free_stake(agent.me) == stake


def test_faulty_agent_disagrees_and_the_ruling_slashes_it(
    chain, manifest, providers, client, arbiter, tmp_path
):
    honest = [agent_for(manifest, providers[0], tmp_path, indexed=True)]
    honest.append(agent_for(manifest, providers[1], tmp_path))
    faulty = agent_for(manifest, providers[2], tmp_path, indexed=True, faulty=True)
    before = faulty.cs.staking.bonded_stake(faulty.me)
    view, job_id = post(manifest, client, replicas=3)
    # The replicas disagree: settlement goes to the arbiter, who re-runs the workload.
    ruling = (arbiter, result_hash(execute(SPEC)))
    run_until_final(chain, view, job_id, [*honest, faulty], ruling=ruling)
    assert list(view.escrow.Disputed.range(0, chain.blocks.height + 1))
    settled = next(iter(view.escrow.JobSettled.range(0, chain.blocks.height + 1)))
    assert bytes(settled.result_hash) == result_hash(execute(SPEC))
    record = faulty.journal.done["0x" + job_id.hex()]
    assert (record["outcome"], record["paid"]) == ("slashed", 0)
    assert record["slashed"] > 0
    assert faulty.cs.staking.bonded_stake(faulty.me) == before - record["slashed"]
    for agent in honest:
        assert outcome_of(agent.journal.done["0x" + job_id.hex()]) == completed(
            97_500 * TOKEN // 1_000
        )


def test_optimistic_job_settles_after_the_challenge_window(
    chain, manifest, providers, client, tmp_path
):
    agent = agent_for(manifest, providers[0], tmp_path, indexed=True)
    view, job_id = post(manifest, client, replicas=1)
    step(agent)  # accept and commit
    step(agent)  # reveal (the only replica committed)
    assert view.jobs.view(job_id).revealed == 1
    step(agent)
    assert view.jobs.view(job_id).status != STATUS_FINALIZED, "challenge window still open"
    run_until_final(chain, view, job_id, [agent])
    assert outcome_of(agent.journal.done["0x" + job_id.hex()]) == completed(PAID)


def test_restarted_agent_finishes_the_job_it_committed(
    chain, manifest, providers, client, tmp_path
):
    first = agent_for(manifest, providers[0], tmp_path)
    others = [agent_for(manifest, p, tmp_path) for p in providers[1:]]
    view, job_id = post(manifest, client, replicas=3)
    step(first)  # accepted and committed; the process then dies
    key = "0x" + job_id.hex()
    assert first.journal.jobs[key]["salt"]
    restarted = agent_for(manifest, providers[0], tmp_path)
    assert restarted.journal.jobs[key] == first.journal.jobs[key]
    run_until_final(chain, view, job_id, [restarted, *others])
    assert outcome_of(restarted.journal.done[key]) == completed(PAID)


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
    assert outcome_of(agent.journal.done[key]) == completed(PAID)


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


# ---------------------------------------------------------------- hostile clients

MARKER_ESCAPE = (
    "def f():\n    return [c for c in ().__class__.__base__.__subclasses__()"
    " if c.__name__ == 'BuiltinImporter'][0].load_module('os').system('touch {marker}')"
)


def wat_module(body: str, imports: str = "") -> bytes:
    return bytes(wasmtime.wat2wasm(f'(module {imports} (func (export "_start") {body}))'))


def hostile_specs(marker) -> dict[str, bytes]:
    escape = MARKER_ESCAPE.format(marker=marker)
    raw_python = {"workload": "python", "input": {"source": escape, "function": "f", "args": []}}
    # Every preview1 function is there (computeshare.wasi); anything else is not.
    files = '(import "env" "open_socket" (func (param i32) (result i32)))'
    return {
        "python escape": json.dumps(raw_python).encode(),
        "non-string workload": b'{"workload": [], "input": {}}',
        "lone surrogate": b'{"workload": "sha256-chain", '
        b'"input": {"seed": "\\udc80", "rounds": 5}}',
        "deep nesting": b"[" * 2_000 + b"]" * 2_000,
        "invalid utf-8": b'{"workload": "\xff\xfe"}',
        "typo": b'{"workload": "sha256-chain", "input": {"sead": "hello", "rounds": 5}}',
        "huge number": b'{"workload": "sha256-chain", "input": {"seed": "a", "rounds": '
        + b"9" * 4_000
        + b"}}",
        "import the sandbox lacks": wasm_spec(wat_module("nop", files), fuel=1_000),
        "not a module": wasm_spec(b"\x00asm\x01\x00\x00\x00\xff\xff", fuel=1_000),
        "unknown module": encode_spec(
            "wasm", {"module": {"sha256": "ab" * 32}, "fuel": 10, "cost_table": COST_TABLE_VERSION}
        ),
        "fuel beyond capacity": wasm_spec("monte-carlo", pack_u64(1, 10**12), fuel=MAX_FUEL),
    }


def post_raw(cs: ComputeShare, spec: bytes, requirements=None, **terms) -> bytes:
    """Posts a spec without the client's checks, as a hostile client would."""
    price = terms.get("price", 100 * TOKEN)
    cs.deposit(price)
    receipt = cs.escrow.post(
        spec,
        requirements or job_requirements(),
        price,
        1,
        terms.get("deadline", chain.pending_timestamp + DAY),
        terms.get("collateral", price),
        sender=cs.account,
    )
    return bytes(receipt.return_value)


def test_hostile_specs_are_declined_while_an_honest_job_is_served(
    chain, manifest, providers, client, tmp_path
):
    marker = tmp_path / "escaped"
    agent = agent_for(manifest, providers[0], tmp_path)
    stake = agent.cs.staking.bonded_stake(agent.me)
    cs = ComputeShare.from_manifest(manifest, account=client)
    hostile = {}
    for name, spec in hostile_specs(marker).items():
        seconds = 1 if name == "fuel beyond capacity" else 600
        hostile[name] = post_raw(cs, spec, job_requirements(compute_seconds=seconds))
    honest = cs.post_job(SPEC, job_requirements(), price=100 * TOKEN, replicas=1, duration=DAY)
    run_until_final(chain, cs, honest, [agent])
    for name, job_id in hostile.items():
        assert cs.jobs.view(job_id).accepted == 0, f"{name} was accepted"
    assert not marker.exists()
    assert outcome_of(agent.journal.done["0x" + honest.hex()]) == completed(PAID)
    assert agent.cs.staking.bonded_stake(agent.me) == stake, "never slashed for a hostile spec"
    restarted = agent_for(manifest, providers[0], tmp_path)
    restarted.journal.from_block = 0  # rescans every hostile job
    step(restarted)
    assert not marker.exists()
    assert all(cs.jobs.view(job_id).accepted == 0 for job_id in hostile.values())


def test_policy_declines_collateral_above_its_share_of_free_stake(
    manifest, providers, client, tmp_path
):
    agent = agent_for(manifest, providers[0], tmp_path, policy=Policy(max_collateral_fraction=0.1))
    cs = ComputeShare.from_manifest(manifest, account=client)
    greedy = post_raw(cs, SPEC, collateral=5_000 * TOKEN)
    modest = post_raw(cs, SPEC, collateral=500 * TOKEN)
    step(agent)
    assert (cs.jobs.view(greedy).accepted, cs.jobs.view(modest).accepted) == (0, 1)


def test_replicas_agree_that_a_module_trapped_and_are_paid_for_it(
    chain, manifest, providers, client, tmp_path
):
    agents = [agent_for(manifest, p, tmp_path) for p in providers]
    spec = wasm_spec("checked-div", bytes(8), fuel=10**7)
    cs = ComputeShare.from_manifest(manifest, account=client)
    job_id = cs.post_job(spec, job_requirements(), price=100 * TOKEN, replicas=3, duration=DAY)
    run_until_final(chain, cs, job_id, agents)
    expected = execute(spec)
    assert expected.status == STATUS_TRAP
    settled = next(iter(cs.escrow.JobSettled.range(0, chain.blocks.height + 1)))
    assert bytes(settled.result_hash) == expected.digest()
    for agent in agents:
        record = agent.journal.done["0x" + job_id.hex()]
        assert outcome_of(record) == completed(PAID)
        assert RunResult.from_json(record["result"]) == expected


def test_an_endless_loop_runs_out_of_fuel_and_is_paid_not_slashed(
    chain, manifest, providers, client, tmp_path
):
    agent = agent_for(manifest, providers[0], tmp_path)
    spec = wasm_spec(wat_module("(loop $l (br $l))"), fuel=50_000_000)
    cs = ComputeShare.from_manifest(manifest, account=client)
    job_id = cs.post_job(spec, job_requirements(), price=100 * TOKEN, replicas=1, duration=DAY)
    run_until_final(chain, cs, job_id, [agent])
    record = agent.journal.done["0x" + job_id.hex()]
    assert outcome_of(record) == completed(PAID)
    assert RunResult.from_json(record["result"]) == RunResult(STATUS_OUT_OF_FUEL, 50_000_000)


def test_an_agent_restarted_in_the_middle_of_a_wasm_run_finishes_the_job(
    chain, manifest, providers, client, tmp_path
):
    first = agent_for(manifest, providers[0], tmp_path)
    # About 9 * 10**9 fuel, a few seconds: still running at the second step on any machine.
    spec = wasm_spec("monte-carlo", pack_u64(3, 100_000_000), fuel=10**10)
    cs = ComputeShare.from_manifest(manifest, account=client)
    job_id = cs.post_job(spec, job_requirements(), price=100 * TOKEN, replicas=1, duration=DAY)
    first.step()  # accepts and starts the worker
    first.step()
    assert first.busy and "result_hash" not in first.journal.jobs["0x" + job_id.hex()]
    first.close()  # the process dies with its worker
    restarted = agent_for(manifest, providers[0], tmp_path)
    run_until_final(chain, cs, job_id, [restarted])
    record = restarted.journal.done["0x" + job_id.hex()]
    assert RunResult.from_json(record["result"]) == execute(spec)


def test_results_reach_the_client_and_a_tampered_one_is_refused(
    chain, manifest, providers, client, tmp_path
):
    """An 8 KiB output is too long for the chain: the agent serves it."""
    agent = agent_for(manifest, providers[0], tmp_path)
    spec = wasm_spec("matmul", struct.pack("<IQ", 32, 5), fuel=10**9)
    cs = ComputeShare.from_manifest(manifest, account=client)
    job_id = cs.post_job(spec, job_requirements(), price=100 * TOKEN, replicas=1, duration=DAY)
    step(agent)  # accepted, run and submitted: agreed on chain (k = 1, challenge window open)
    assert len(execute(spec).output) == 8_192
    with pytest.raises(ResultError, match="no provider of this job serves results"):
        cs.result(job_id)  # the device's URI is not http: nobody to ask
    server = ResultServer(agent.journal).start()
    forged = Journal(tmp_path / "forged.json")
    entry = dict(agent.journal.jobs["0x" + job_id.hex()]["result"])
    entry["output"] = "00" + entry["output"][2:]
    forged.jobs["0x" + job_id.hex()] = {"result": entry, "revealed": True}
    liar = ResultServer(forged).start()
    try:
        assert cs.result(job_id, [server.url]) == execute(spec)
        with pytest.raises(ResultError, match="does not match the chain"):
            cs.result(job_id, [liar.url])
        assert cs.result(job_id, [liar.url, server.url]) == execute(spec)
        with pytest.raises(ResultError, match=r"no such result|404"):
            cs.result(job_id, [ResultServer(Journal(tmp_path / "empty.json")).start().url])
    finally:
        server.stop()
        liar.stop()


def test_agent_start_up_errors_are_one_line(tmp_path):
    with pytest.raises(AgentError, match="does not exist"):
        Journal.open(tmp_path / "missing" / "journal.json")
    corrupt = tmp_path / "journal.json"
    corrupt.write_text("{not json")
    with pytest.raises(AgentError, match=f"journal {corrupt} is corrupt"):
        Journal.open(corrupt)
    policy = tmp_path / "policy.yaml"
    policy.write_text("max_colateral: 5\n")
    with pytest.raises(AgentError, match="unknown keys"):
        Policy.load(policy)


def test_an_output_encrypted_to_the_client_is_readable_only_with_its_key(
    chain, manifest, providers, client, tmp_path
):
    key = PrivateKey()
    agent = agent_for(manifest, providers[0], tmp_path)
    spec = wasm_spec(
        "monte-carlo", pack_u64(8, 1_000), fuel=10**7, encrypt_to=key.public_key.format()
    )
    cs = ComputeShare.from_manifest(manifest, account=client)
    job_id = cs.post_job(spec, job_requirements(), price=100 * TOKEN, replicas=1, duration=DAY)
    step(agent)
    step(agent)  # revealed
    expected = execute(spec)
    server = ResultServer(agent.journal).start()
    try:
        with urllib.request.urlopen(f"{server.url}/results/0x{job_id.hex()}") as response:
            served = json.loads(response.read())
        assert served["encrypted"] and expected.output.hex() not in served["output"]
        with pytest.raises(ResultError, match="the output is encrypted"):
            cs.result(job_id, [server.url])
        with pytest.raises(ResultError, match="does not decrypt"):
            cs.result(job_id, [server.url], PrivateKey().secret)
        assert cs.result(job_id, [server.url], key.secret) == expected
    finally:
        server.stop()


def test_a_short_k1_output_is_read_from_the_chain(chain, manifest, providers, client, tmp_path):
    agent = agent_for(manifest, providers[0], tmp_path)
    spec = wasm_spec("monte-carlo", pack_u64(5, 1_000), fuel=10**7)
    cs = ComputeShare.from_manifest(manifest, account=client)
    job_id = cs.post_job(spec, job_requirements(), price=100 * TOKEN, replicas=1, duration=DAY)
    step(agent)
    (event,) = cs.escrow.ResultSubmitted.range(0, chain.blocks.height + 1)
    assert bytes(event.output) == execute(spec).output
    assert cs.result(job_id, endpoints=[]) == execute(spec), "no endpoint needed"


def test_a_module_slow_per_unit_of_fuel_is_refused_or_paid_never_slashed(
    chain, manifest, providers, client, tmp_path
):
    """A module that passes every acceptance check but burns fuel as slowly as the suite can
    (a call_indirect storm), posted at the policy's collateral limit beside an honest job:
    the agent refuses what its wall-clock bound (fuel over R_FLOOR, with the policy's
    margin) cannot finish before the commit deadline, and runs the rest to a paid result.
    Its stake never drops."""
    agent = agent_for(manifest, providers[0], tmp_path)
    stake = agent.cs.staking.bonded_stake(agent.me)
    limit = int(agent.cs.staking.free_stake(agent.me) * agent.policy.max_collateral_fraction)
    storm = adversarial_cases()["call_indirect storm"]
    cs = ComputeShare.from_manifest(manifest, account=client)
    finishable = wasm_spec(storm, fuel=2 * 10**9)
    # Within every fuel and price bound, but its wall-clock bound passes its deadline.
    too_long = wasm_spec(storm, fuel=MAX_FUEL)
    assert agent.policy.wall_seconds(MAX_FUEL) > 60
    late = post_raw(cs, too_long, collateral=limit, deadline=chain.pending_timestamp + 60)
    slow = post_raw(cs, finishable, collateral=limit)
    honest = cs.post_job(SPEC, job_requirements(), price=100 * TOKEN, replicas=1, duration=DAY)
    agent.step()
    assert cs.jobs.view(late).accepted == 0, "accepted a run it cannot finish by its deadline"
    for job_id in (slow, honest):
        run_until_final(chain, cs, job_id, [agent])
        record = agent.journal.done["0x" + job_id.hex()]
        assert outcome_of(record) == completed(PAID)
    result = RunResult.from_json(agent.journal.done["0x" + slow.hex()]["result"])
    assert result == execute(finishable) and result.status == STATUS_OK
    assert agent.cs.staking.bonded_stake(agent.me) == stake, "never slashed for a slow module"


def test_an_hour_long_job_needs_the_time_and_compute_seconds_it_takes(manifest, client):
    """MAX_FUEL is at least an hour at the floor R_FLOOR, and a job at MAX_FUEL fits the
    default MAX_JOB_DURATION; the client refuses to post an hour-long job with a deadline or
    compute-seconds the providers' default policy would decline, and that policy accepts it
    when both fit."""
    assert MAX_FUEL >= 3_600 * R_FLOOR
    fuel = 4_000 * R_FLOOR
    spec = wasm_spec("monte-carlo", pack_u64(1, 10**12), fuel=fuel)
    cs = ComputeShare.from_manifest(manifest, account=client)
    longest = cs.parameter("JobEscrow", "MAX_JOB_DURATION")
    assert run_seconds(MAX_FUEL) + COMMIT_SECONDS <= longest
    hours = job_requirements(compute_seconds=fuel // R_FLOOR)
    with pytest.raises(InvalidInput, match="duration"):
        cs.post_job(spec, hours, price=100 * TOKEN, replicas=1, duration=3_600)
    with pytest.raises(InvalidInput, match="compute_seconds"):
        cs.post_job(spec, job_requirements(), price=100 * TOKEN, replicas=1, duration=DAY)
    job_id = cs.post_job(spec, hours, price=100 * TOKEN, replicas=1, duration=DAY)
    job = decode_spec(spec)
    policy, seconds = Policy(), fuel // R_FLOOR
    assert policy.refusal(job, 100 * TOKEN, 100 * TOKEN, seconds, 10_000 * TOKEN, DAY) is None
    assert "commit deadline" in policy.refusal(job, 100, 100, seconds, 10**30, 3_600)
    assert policy.wall_seconds(fuel) >= fuel / R_FLOOR
    assert cs.jobs.view(job_id).accepted == 0


def test_an_agent_signs_nothing_over_its_fee_cap_and_accepts_once_within_it(
    chain, manifest, providers, client, tmp_path, monkeypatch
):
    """A node asking more per gas than COMPUTESHARE_MAX_FEE_GWEI (a priority fee of 1 gwei
    against a cap of 0.5): the agent signs nothing, says so in one line and keeps the job to
    retry; with the cap raised, the next step accepts it."""
    agent = agent_for(manifest, providers[0], tmp_path)
    lines: list[str] = []
    agent.log = lines.append
    view, job_id = post(manifest, client, replicas=1)
    monkeypatch.setenv("COMPUTESHARE_MAX_FEE_GWEI", "0.5")
    nonce = agent.account.nonce
    agent.step()
    agent.step()
    assert agent.account.nonce == nonce, "nothing signed"
    assert view.jobs.view(job_id).accepted == 0
    refusals = [line for line in lines if "over COMPUTESHARE_MAX_FEE_GWEI (0.50)" in line]
    assert len(refusals) == 1 and refusals[0].endswith("; retrying"), lines
    monkeypatch.setenv("COMPUTESHARE_MAX_FEE_GWEI", "1000")
    agent.step()
    assert view.jobs.view(job_id).accepted == 1
    assert any("accepted replica 0" in line for line in lines), lines
