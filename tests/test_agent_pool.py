"""The provider agent's worker pool: bounded, event-driven, resumable, and never orphaned."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from computeshare import serving, worker
from computeshare.agent import AgentError, Policy
from computeshare.client import ComputeShare
from computeshare.constants import DAY, TOKEN
from computeshare.matching import RULES
from computeshare.results import ResultServer
from computeshare.sandbox import RunResult
from computeshare.specs import job_requirements
from computeshare.workloads import execute, pack_u64, result_hash, wasm_spec
from tests.test_agent import (
    PAID,
    SPEC,
    agent_for,
    completed,
    deploy_for_agents,
    outcome_of,
    post_raw,
    run_until_final,
    step,
)
from tests.test_wasi import PATH_OPEN, wat


def endless_spec_module() -> bytes:
    """A module that loops until its fuel runs out."""
    import wasmtime

    return bytes(wasmtime.wat2wasm('(module (func (export "_start") (loop $l (br $l))))'))


def endless_spec() -> bytes:
    """An endless loop's spec: many seconds at this limit."""
    return wasm_spec(endless_spec_module(), fuel=10**12)


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (a reaped or dead-but-unreaped worker is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


PARENT = """
import sys, time
sys.path.insert(0, {root!r})
from computeshare import worker
from computeshare.agent import AgentError, Policy
from computeshare.client import ComputeShare
from computeshare.constants import DAY, TOKEN
run = worker.Run("run", bytes.fromhex({spec!r}), None, 600)
print(run.process.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("kernel", [True, False], ids=["pdeathsig", "watcher"])
def test_a_worker_dies_with_its_killed_parent(kernel):
    """SIGKILL the process that started a run: its worker is gone within seconds, by the
    kernel's parent-death signal or, without it, by the worker's own watcher thread."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(worker.__file__)))
    code = PARENT.format(root=root, spec=endless_spec().hex())
    if not kernel:  # the watcher alone: the parent resolves no prctl
        code = code.replace("run = ", "worker._PRCTL = None\nrun = ")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pid = None
    try:
        pid = int(parent.stdout.readline())
        time.sleep(0.5)
        assert _alive(pid), "the worker runs while its parent lives"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        bound = 1 if kernel else 1 + 2 * serving.PARENT_POLL_SECONDS
        deadline = time.monotonic() + bound + 4  # a loaded machine's scheduling
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), "the worker outlived its killed parent"
    finally:
        parent.kill()
        parent.wait()
        if pid is not None and _alive(pid):  # a failed run leaves nothing behind either
            os.kill(pid, signal.SIGKILL)


POOLED_PARENT = """
import sys, time
sys.path.insert(0, {root!r})
from computeshare import worker
pool = worker.Pool(2)
pool.warm()
assert worker.Run("run", bytes.fromhex({quick!r}), None, 60, pool=pool).wait()["result"]
pool.warm()
print(*pool.pids, flush=True)
run = worker.Run("run", bytes.fromhex({spec!r}), None, 600, pool=pool)
time.sleep(600)
"""


@pytest.mark.parametrize("kernel", [True, False], ids=["pdeathsig", "watcher"])
def test_pooled_workers_die_with_their_killed_parent(kernel):
    """SIGKILL a process holding a pool: its workers, idle and running, are gone within
    seconds, as a worker started for one run is."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(worker.__file__)))
    code = POOLED_PARENT.format(root=root, spec=endless_spec().hex(), quick=SPEC.hex())
    if not kernel:
        code = code.replace("pool = ", "worker._PRCTL = None\npool = ")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pids: list[int] = []
    try:
        pids = [int(pid) for pid in parent.stdout.readline().split()]
        assert len(pids) == 2
        time.sleep(0.5)
        assert all(_alive(pid) for pid in pids), "the workers live while their parent does"
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        bound = 1 if kernel else 1 + 2 * serving.PARENT_POLL_SECONDS
        deadline = time.monotonic() + bound + 4  # a loaded machine's scheduling
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in pids), "a pooled worker outlived its parent"
    finally:
        parent.kill()
        parent.wait()
        for pid in pids:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_pool_reuses_its_workers_and_replaces_one_killed_past_its_limit(tmp_path):
    """Runs in a pool give what a worker of their own gives, one warm process after the
    other; a run past its wall-clock limit is killed with its worker, which is never used
    again; a refused spec leaves its worker in the pool; closing kills every worker."""
    pool = worker.Pool(1)
    try:
        pool.warm()
        (first,) = pool.pids
        answers = [worker.Run("run", SPEC, None, 30, pool=pool).wait() for _ in range(3)]
        assert pool.pids == [first]
        assert {worker.run_result(a) for a in answers} == {worker.run(SPEC, None, 30)}
        with pytest.raises(worker.SpecRefused, match="not a workload spec"):
            worker.Run("run", b"not json", None, 30, pool=pool).wait()
        assert pool.pids == [first]
        module = endless_spec_module()
        endless = worker.Run("run", wasm_spec(module, fuel=10**12), module, 1.0, pool=pool)
        assert endless.process.pid == first
        with pytest.raises(worker.WorkerError, match="timed out after 1 s"):
            endless.wait()
        assert not _alive(first) and pool.pids == []
        again = worker.Run("run", SPEC, None, 30, pool=pool)
        assert again.process.pid != first
        assert worker.run_result(again.wait()) == execute(SPEC)
        (second,) = pool.pids
    finally:
        pool.close()
    assert not _alive(second) and not pool.folder.exists()


def _written(name: str) -> list[Path]:
    """Where a folder `name` exists in a worker's scratch space under the temporary folder."""
    found = []
    for top in Path(tempfile.gettempdir()).glob("computeshare-*"):
        try:  # other tests' folders come and go meanwhile
            found += [p for k in (1, 2, 3) for p in top.glob("*/" * k + name)]
        except OSError:
            continue
    return found


@pytest.mark.parametrize("pooled", [True, False], ids=["pooled", "own-worker"])
def test_a_run_killed_past_its_limit_leaves_no_scratch_output(pooled, tmp_path):
    """A run writes /output in a scratch folder of the host; a run killed at its wall-clock
    limit (and its worker with it) must not leave that folder behind: a provider's long
    jobs write up to the output quota (1 GiB) each."""
    marker = f"scratch-{os.urandom(6).hex()}"
    body = f"""(func (export "_start")
      (drop (call $mkdir (i32.const 4) (i32.const 90) (i32.const {len(marker)})))
      (loop $l (br $l)))"""
    module = wat(body, PATH_OPEN, f'(data (i32.const 90) "{marker}")')
    pool = worker.Pool(1) if pooled else None
    try:
        spec = wasm_spec(module, fuel=10**12)
        run = worker.Run("run", spec, module, 60.0, outputs=tmp_path / "out", pool=pool)
        began, seen = time.monotonic(), []
        while not seen and time.monotonic() - began < 50:  # a loaded machine starts slowly
            seen = _written(marker)
            time.sleep(0.05)
        assert seen, "the run wrote its folder in /output"
        run.wall_seconds = run.elapsed  # its limit passes now: the agent's kill at the limit
        with pytest.raises(worker.WorkerError, match="timed out after"):
            run.wait()
    finally:
        if pool is not None:
            pool.close()
    assert _written(marker) == []


@pytest.mark.parametrize(
    "line", ["max_workers: 0", "max_workers: two", "max_workers: true", "progress_seconds: -1"]
)
def test_a_policy_with_a_bad_pool_setting_is_one_line(line, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(line + "\n")
    with pytest.raises(AgentError, match=f"policy {path}: "):
        Policy.load(path)


# ---------------------------------------------------------------- the agent on a chain


@pytest.fixture
def manifest(project, deployer, arbiter, guardian, providers, client, tmp_path):
    """As in test_agent: a deployment; three providers staked with a device each."""
    return deploy_for_agents(project, deployer, arbiter, guardian, providers, client, tmp_path)


# About 2 * 10**9 fuel: a second or two, long enough for runs to overlap.
SLOW = wasm_spec("monte-carlo", pack_u64(7, 20_000_000), fuel=3 * 10**9)
# Five times that: long enough in a warm worker (no start-up) for progress lines.
SLOWER = wasm_spec("monte-carlo", pack_u64(7, 100_000_000), fuel=15 * 10**9)


class RequestCounter:
    """Counts the JSON-RPC requests sent through the provider's web3 transport."""

    def __init__(self, chain):
        transport = chain.provider.web3.provider
        self.count, original = 0, transport.make_request

        def counted(method, params):
            self.count += 1
            return original(method, params)

        self._undo = lambda: (
            setattr(transport, "make_request", original),
            setattr(transport, "_request_func_cache", (None, None)),
        )
        transport.make_request = counted
        # web3 composes its middleware around the transport's method once and caches it
        transport._request_func_cache = (None, None)

    def close(self):
        self._undo()


def get_json(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_the_pool_runs_at_most_max_workers_jobs_and_the_next_waits(
    chain, manifest, providers, client, tmp_path
):
    """Three jobs for two workers: two run at once, the third waits (not accepted, its
    reason said once) until a run ends, then runs. Progress is logged and served."""
    lines: list[str] = []
    policy = Policy(max_workers=2, progress_seconds=0.2)
    agent = agent_for(manifest, providers[0], tmp_path, policy=policy)
    agent.log = lines.append
    cs = ComputeShare.from_manifest(manifest, account=client)
    jobs = [
        cs.post_job(SLOWER, job_requirements(), price=100 * TOKEN, replicas=1, duration=DAY)
        for _ in range(3)
    ]
    keys = ["0x" + job_id.hex() for job_id in jobs]
    server = ResultServer(agent.journal, progress=agent.progress).start()
    try:
        agent.step()
        assert [cs.jobs.view(job_id).accepted for job_id in jobs] == [1, 1, 0]
        assert set(agent._runs) == set(keys[:2])
        status, report = get_json(f"{server.url}/progress/{keys[0]}")
        assert status == 200 and report["state"] == "running"
        assert report["fuel_limit"] == 15 * 10**9 and report["elapsed_seconds"] >= 0
        assert get_json(f"{server.url}/progress/{keys[2]}")[1]["state"] == "waiting"
        assert get_json(f"{server.url}/progress/0x{'ab' * 32}")[0] == 404
        assert get_json(f"{server.url}/progress/{keys[0][:-1]}")[0] == 404
        peak, began = 0, time.monotonic()
        while any(cs.jobs.view(job_id).revealed == 0 for job_id in jobs):
            assert time.monotonic() - began < 300, "the three jobs did not finish"
            agent.step()
            peak = max(peak, len(agent._runs))
            time.sleep(0.05)
        assert peak == 2
    finally:
        server.stop()
    waits = [line for line in lines if line.startswith(f"job {keys[2][:10]}: waits")]
    assert len(waits) == 1 and "capacity" in waits[0], lines
    assert any(": running, " in line and "of at most" in line for line in lines), lines
    for job_id in jobs:
        run_until_final(chain, cs, job_id, [agent])
        record = agent.journal.done["0x" + job_id.hex()]
        assert outcome_of(record) == completed(PAID)
        assert RunResult.from_json(record["result"]) == execute(SLOWER)


def test_an_idle_step_makes_no_request_per_held_job(chain, manifest, providers, client, tmp_path):
    """An agent holding three jobs in their challenge window sends, on a step with no new
    block, as many requests as one holding none; its jobs still settle when their time
    comes."""
    empty = agent_for(manifest, providers[1], tmp_path)
    agent = agent_for(manifest, providers[0], tmp_path)
    cs = ComputeShare.from_manifest(manifest, account=client)
    jobs = [
        cs.post_job(SPEC, job_requirements(), price=100 * TOKEN, replicas=1, duration=DAY)
        for _ in range(3)
    ]
    while any(cs.jobs.view(job_id).revealed == 0 for job_id in jobs):
        step(agent)
    empty.step()
    agent.step()
    assert len(agent.journal.jobs) == 3
    counter = RequestCounter(chain)
    try:
        counts = []
        for who in (empty, agent, empty, agent):
            before = counter.count
            who.step()
            counts.append(counter.count - before)
    finally:
        counter.close()
    assert counts[0] == counts[1] == counts[2] == counts[3], counts
    assert counts[1] <= 3, counts
    for job_id in jobs:
        run_until_final(chain, cs, job_id, [agent])
        assert outcome_of(agent.journal.done["0x" + job_id.hex()]) == completed(PAID)
        assert bytes(cs.jobs.replica(job_id).digest) == result_hash(execute(SPEC))


def test_a_restarted_agent_leaves_a_run_that_no_longer_fits(
    chain, manifest, providers, client, tmp_path
):
    """Accepted, its run started, the agent dies; restarted 100 s before the commit
    deadline, it does not start a run that may take longer: one log line, no worker."""
    first = agent_for(manifest, providers[0], tmp_path)
    spec = wasm_spec("monte-carlo", pack_u64(3, 100_000_000), fuel=10**11)
    cs = ComputeShare.from_manifest(manifest, account=client)
    job_id = cs.post_job(spec, job_requirements(), price=100 * TOKEN, replicas=1, duration=DAY)
    key = "0x" + job_id.hex()
    first.step()
    assert first.busy
    first.close()  # the process dies with its worker
    needed = first.policy.wall_seconds(10**11) + first.policy.commit_seconds
    assert needed > 100
    chain.pending_timestamp += cs.jobs.view(job_id).deadline - 100 - chain.pending_timestamp
    chain.mine()
    lines: list[str] = []
    restarted = agent_for(manifest, providers[0], tmp_path)
    restarted.log = lines.append
    restarted.step()
    now = restarted.now  # the chain's time the first step judged by (a second may pass)
    restarted.step()
    assert not restarted.busy
    assert "left" in restarted.journal.jobs[key]
    assert restarted.progress(key)["state"] == "left"
    assert [line for line in lines if "left unrun" in line] == [
        f"job {key[:10]}: left unrun (its run may take {needed:,.0f} s; "
        f"{cs.jobs.view(job_id).deadline - now} s left)"
    ]


def test_a_restarted_agent_runs_again_what_it_held_a_worker_at_a_time(
    chain, manifest, providers, client, tmp_path
):
    """Two runs cut off by a restart are run again from the journal, one at a time under
    a one-worker policy: the second waits for the worker (said once), then runs."""
    first = agent_for(manifest, providers[0], tmp_path, policy=Policy(max_workers=2))
    cs = ComputeShare.from_manifest(manifest, account=client)
    jobs = [
        cs.post_job(SLOW, job_requirements(), price=100 * TOKEN, replicas=1, duration=DAY)
        for _ in range(2)
    ]
    keys = ["0x" + job_id.hex() for job_id in jobs]
    first.step()
    assert set(first._runs) == set(keys)
    first.close()  # the process dies with its workers
    lines: list[str] = []
    restarted = agent_for(manifest, providers[0], tmp_path, policy=Policy(max_workers=1))
    restarted.log = lines.append
    restarted.step()
    assert list(restarted._runs) == keys[:1]
    assert restarted.progress(keys[1])["state"] == "queued"
    peak, began = 0, time.monotonic()
    while any(cs.jobs.view(job_id).revealed == 0 for job_id in jobs):
        assert time.monotonic() - began < 300, "the two jobs did not finish"
        restarted.step()
        peak = max(peak, len(restarted._runs))
        time.sleep(0.05)
    assert peak == 1
    assert [line for line in lines if "waits for a worker" in line] == [
        f"job {keys[1][:10]}: waits for a worker (1 running)"
    ]
    for key in keys:
        assert RunResult.from_json(restarted.journal.jobs[key]["result"]) == execute(SLOW)
        assert restarted.progress(key)["state"] == "revealed"


def test_every_job_the_agent_does_not_take_says_why_once(
    chain, manifest, providers, client, tmp_path
):
    """Capacity, stake, requirements, policy and price: each job's reason is logged once
    over several steps, though the waiting ones are considered again every step."""
    lines: list[str] = []
    policy = Policy(
        max_workers=1,
        workloads=("wasm",),
        min_price_per_gigafuel=TOKEN,
        max_collateral_fraction=1,
    )
    agent = agent_for(manifest, providers[0], tmp_path, policy=policy)
    poor = agent_for(manifest, providers[1], tmp_path, policy=policy)  # it runs nothing
    for who in (agent, poor):
        who.log = lambda line, who=who: lines.append(f"{who.me[:6]} {line}")
        who.RECONSIDER_SECONDS = 0  # the waiting jobs are considered again every step
    cs = ComputeShare.from_manifest(manifest, account=client)
    endless = endless_spec()
    running = post_raw(cs, endless, job_requirements(compute_seconds=2_000), price=2_000 * TOKEN)
    agent.step()  # it runs `running`: one run owed, as many as its workers
    jobs = {
        "capacity": post_raw(cs, SLOW),
        "requirements": post_raw(cs, SLOW, job_requirements(min_gpu_count=8)),
        "policy": post_raw(cs, SPEC),
        "price": post_raw(cs, SLOW, price=TOKEN),
        "stake": post_raw(cs, SLOW, collateral=poor.cs.staking.free_stake(poor.me) + 1),
    }
    poor.journal.from_block = chain.blocks.height  # it sees the last job only
    try:
        for _ in range(3):
            agent.step()
            poor.step()
        assert agent.busy and "0x" + running.hex() in agent._runs
    finally:
        agent.close()
    who = {"stake": poor.me[:6]}
    expected = {
        "capacity": "waits (capacity: 1 runs owed to 1 workers)",
        "requirements": "skipped (gpus: the device has 2 GPUs; the job needs 8)",
        "policy": "declined (workload sha256-chain not allowed here)",
        "price": "declined (price per fuel below the policy's minimum)",
        "stake": "waits (stake: ",
    }
    for name, job_id in jobs.items():
        said = [
            line
            for line in lines
            if line.startswith(f"{who.get(name, agent.me[:6])} job 0x{job_id.hex()[:8]}: ")
        ]
        assert len(said) == 1 and expected[name] in said[0], (name, said, lines)
        if name in ("capacity", "requirements", "stake"):  # `client status` counts the same
            assert said[0].split("(", 1)[1].split(":")[0] in RULES, said


def test_a_busy_agent_reads_no_state_of_new_jobs_and_drops_those_others_take(
    chain, manifest, providers, client, tmp_path
):
    """With every worker owed a run, new jobs wait with no request each for their state
    (one fit check a step for jobs of the same requirements and price); a job another
    provider takes leaves the waiting list from its event alone; when a worker is free,
    the rest are considered again and run."""
    lines: list[str] = []
    agent = agent_for(manifest, providers[0], tmp_path, policy=Policy(max_workers=1))
    other = agent_for(manifest, providers[1], tmp_path, policy=Policy(max_workers=3))
    agent.log = lines.append
    other.log = lambda line: None
    cs = ComputeShare.from_manifest(manifest, account=client)
    endless = post_raw(cs, endless_spec(), job_requirements(compute_seconds=2_000))
    agent.step()
    assert list(agent._runs) == ["0x" + endless.hex()]
    other.journal.from_block = chain.blocks.height + 1  # the other sees the new jobs only
    counter = RequestCounter(chain)
    try:
        counts = []
        for n in (1, 1, 6):  # the first step also fills a few one-time caches
            for _ in range(n):
                post_raw(cs, SPEC)
            before = counter.count
            agent.step()
            counts.append(counter.count - before)
    finally:
        counter.close()
    assert counts[1] == counts[2], counts  # the same whether one job came or six
    waiting = list(agent.journal.waiting)
    assert len(waiting) == 8 and all(agent.journal.waiting[k]["unchecked"] for k in waiting)
    taken = waiting[:3]
    for key in taken:
        other._consider(bytes.fromhex(key[2:]), SPEC)  # the other provider accepts three
    assert all(key in other.journal.jobs for key in taken)
    agent.step()
    assert set(agent.journal.waiting) == set(waiting[3:])
    for key in taken:
        assert f"job {key[:10]}: skipped (all 1 replicas taken)" in lines
    agent._runs["0x" + endless.hex()].run.kill()  # its worker is free again (job left)
    ran: list[str] = []
    began = time.monotonic()
    # The device's 4 places on chain: the left job holds one till settled, and each
    # submitted job gives its place back at once, so all five run, a worker at a time.
    while len(ran) < 5:
        assert time.monotonic() - began < 120, "the waiting jobs did not run"
        agent.step()
        ran = [k for k in waiting[3:] if agent.journal.jobs.get(k, {}).get("revealed")]
        time.sleep(0.05)
    assert ran == waiting[3:] and list(agent.journal.waiting) == []
    assert not any("waits (capacity: the device holds" in line for line in lines), lines
    agent.close()
    other.close()
