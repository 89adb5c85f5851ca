"""The provider agent: serves one device's jobs from acceptance to payment.

Why one module: `Agent` is one state machine (accept, run, commit, reveal, finalize) over
one journal and one pool of runs; every stage reads and writes the same per-job entries, and
its invariants (nothing revealed uncommitted, no accepted job lost across a restart) span
them all. `Policy` and `Journal` are its inputs and its state.

Each `step()` reads JobEscrow's new logs once and moves on the jobs the device holds that
an event touched or whose time came (commit deadline, reveal or challenge window's end),
each one stage:

    new JobPosted the device can serve  -> accept
    accepted                            -> run the workload, journal result and salt, commit
    committed, reveal open              -> reveal (only what the chain shows committed)
    revealed, settlement due            -> finalize
    final                               -> record the payout, forget the job

State lives on the chain; the journal (a JSON file, replaced atomically) holds what the chain
must not see early: the result and salt behind each commitment, written before the commit is
sent. After a restart the agent rescans from its last processed block and adopts any replica
the chain shows it holds, so no accepted job is lost and nothing is revealed uncommitted;
a run that did not finish is run again if it still fits before the commit deadline, else
the job is left (one log line) to settle without a result from this device.

An idle step costs the same whatever the device holds: the head block, the pending
block's time and (when blocks came) one `eth_getLogs` for JobEscrow's job events (with an
event index, its sync). A held job costs requests only when an event names it or the next
time its state can change by time alone (`_wake`) has come. At most `max_workers` runs go
at once (`Policy.max_workers`, by default the device's `max_concurrent_jobs` capped by the
machine's CPUs); a job accepted while as many runs are owed waits for a worker, and a new
job waits (not accepted) while they are. A job that waits or is declined says why, once.
Runs and checks go to warm workers (`worker.Pool`: `max_workers` processes kept started,
one started a step when fewer are), so a small job costs no process start. While every
worker is owed a run, a new job costs no request for its state: its spec, the policy and
the device's fit (one `check_fit` a step for the same requirements and price) decide, and
it waits; another provider's `ReplicaAccepted` for its last replica drops it from the
waiting list without a request, and waiting jobs are considered again step after step
while some leave the list and a worker is free.

Everything a client sends is hostile. Before accepting, the agent decodes the spec, checks it
against the workload's schema and the operator's `Policy` (workloads, collateral, price per
fuel, fuel the device can burn in the compute-seconds paid for) and compiles a wasm module in
a worker process: it never locks collateral on a spec it has not validated. Workloads run in
worker processes (`computeshare.worker`) with a wall-clock limit, polled from the loop, so a
job can stall neither the loop nor the other jobs. Nothing a spec, an event or an RPC answer
holds can raise out of `step()`: each failure is one log line and the job is declined,
retried or left to settle.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import SimpleNamespace

import yaml
from ape.exceptions import ApeException, ContractLogicError
from eth_utils import keccak

from computeshare import matching, worker
from computeshare.constants import OUTCOMES
from computeshare.exceptions import NotAllowed
from computeshare.jobs import (
    REPLICA_ACCEPTED,
    REPLICA_COMMITTED,
    REPLICA_REVEALED,
    STATUS_CANCELLED,
    STATUS_FINALIZED,
    STATUS_OPEN,
    commitment,
    terms_from_json,
    unpack_requirements,
)
from computeshare.metering import R_FLOOR
from computeshare.onchain import send
from computeshare.rpc import Backoff, node_trouble
from computeshare.sandbox import MAX_MEMORY_BYTES, RunResult, prepare_seconds
from computeshare.sender import SendError
from computeshare.workloads import (
    COMMIT_SECONDS,
    RUN_START_SECONDS,
    WALL_MARGIN,
    WORKLOADS,
    Job,
    WorkloadError,
    decode_spec,
    resolve_module,
)


class AgentError(Exception):
    """The agent cannot start: a one-line reason (journal, policy or device)."""


@dataclass
class Policy:
    """What the operator lets its agent accept (`--policy FILE`, YAML with these keys).

    Amounts are in wei. `max_collateral_fraction` bounds a job's collateral by the free
    stake at the time; `min_price_per_gigafuel` is the least price per 10**9 fuel;
    `fuel_per_second` is the slowest rate the device burns fuel at (by default the
    metering's published floor `R_FLOOR`, which no module burns fuel below): it turns a
    job's fuel limit into the compute-seconds its price must cover and into the run's
    wall-clock limit, `min_wall_seconds` (the worker's start-up and compilation) plus
    `wall_margin` times the fuel's time. A job whose wall-clock limit, plus
    `commit_seconds` to send the commitment, does not fit before its commit deadline is
    refused before acceptance: an accepted run is never stopped by its own limit before
    its fuel runs out, nor by the deadline. `max_workers` bounds the runs at once (default:
    the device's `max_concurrent_jobs`, at most the machine's CPU count); a running job's
    progress is logged every `progress_seconds`."""

    workloads: tuple[str, ...] = WORKLOADS
    max_collateral: int | None = None
    max_collateral_fraction: float = 0.5
    min_price_per_gigafuel: int = 0
    fuel_per_second: int = R_FLOOR
    fetch_modules: bool = True
    min_wall_seconds: float = RUN_START_SECONDS
    wall_margin: float = WALL_MARGIN
    commit_seconds: float = COMMIT_SECONDS
    max_workers: int | None = None
    progress_seconds: float = 10.0
    # Trees (`computeshare.cas`): the largest input tree and /output a job may name, the
    # most memory it may ask for, and the slowest rate its input and module trees arrive
    # at (their transfer counts in the run's wall-clock limit, before the deadline).
    max_input_bytes: int = 4 << 30
    max_output_bytes: int = 2 << 30
    max_memory_bytes: int = MAX_MEMORY_BYTES
    fetch_bytes_per_second: int = 20 << 20

    @classmethod
    def load(cls, path: Path | None) -> Policy:
        if path is None:
            return cls()
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as error:
            raise AgentError(f"policy {path}: {_first_line(error)}") from None
        known = {f.name for f in fields(cls)}
        if not isinstance(data, dict) or set(data) - known:
            extra = sorted(set(data) - known) if isinstance(data, dict) else data
            raise AgentError(f"policy {path}: unknown keys {extra}; known: {sorted(known)}")
        if "workloads" in data:
            data["workloads"] = tuple(data["workloads"])
        policy = cls(**data)
        if set(policy.workloads) - set(WORKLOADS) or not 0 < policy.max_collateral_fraction <= 1:
            raise AgentError(f"policy {path}: workloads among {WORKLOADS}, fraction in (0, 1]")
        if policy.fuel_per_second <= 0 or policy.wall_margin < 1:
            raise AgentError(f"policy {path}: fuel_per_second positive, wall_margin at least 1")
        workers, progress = policy.max_workers, policy.progress_seconds
        if workers is not None and (
            isinstance(workers, bool) or not isinstance(workers, int) or workers < 1
        ):
            raise AgentError(f"policy {path}: max_workers a whole number, at least 1")
        if isinstance(progress, bool) or not isinstance(progress, int | float) or progress <= 0:
            raise AgentError(f"policy {path}: progress_seconds a positive number")
        return policy

    def wall_seconds(self, fuel: int) -> float:
        """The wall-clock limit of a run: the start-up allowance plus the margin times the
        fuel's time at the device's floor rate."""
        return self.min_wall_seconds + self.wall_margin * fuel / self.fuel_per_second

    def job_seconds(self, job: Job) -> float:
        """A job's wall-clock limit: its run's (`wall_seconds`), plus fetching its input and
        module trees at `fetch_bytes_per_second`, preparing (metering and compiling) its
        module once (`sandbox.prepare_seconds`) and packing its /output."""
        seconds = self.wall_seconds(job.fuel)
        if job.workload == "wasm":
            spec, moved = job.input, 0
            moved += spec.inputs.size if spec.inputs is not None else 0
            moved += spec.module.tree.size if spec.module.tree is not None else 0
            seconds += self.margin_seconds(moved)
            if (size := _module_size(spec)) > SMALL_MODULE:  # `min_wall_seconds` covers less
                seconds += prepare_seconds(size)
        return seconds

    def margin_seconds(self, size: int) -> float:
        """Time to move `size` bytes at the policy's slowest rate, with the run's margin."""
        return self.wall_margin * size / self.fetch_bytes_per_second

    def tree_refusal(self, job: Job) -> str | None:
        """Why a wasm job's trees or memory do not fit this policy, or None."""
        spec = job.input
        if spec.inputs is not None and spec.inputs.size > self.max_input_bytes:
            return f"input tree of {spec.inputs.size:,} bytes above the policy's maximum"
        if spec.output_limit > self.max_output_bytes:
            return f"output limit of {spec.output_limit:,} bytes above the policy's maximum"
        if spec.memory_limit > self.max_memory_bytes:
            return f"memory limit of {spec.memory_limit:,} bytes above the policy's maximum"
        return None

    def refusal(
        self,
        job: Job,
        price: int,
        collateral: int,
        compute_seconds: int,
        free: int,
        seconds_left: float | None = None,
    ):
        """Why a decoded job does not fit this policy, or None; `seconds_left` is the time
        until its commit deadline."""
        if job.workload not in self.workloads:
            return f"workload {job.workload} not allowed here"
        if self.max_collateral is not None and collateral > self.max_collateral:
            return "collateral above the policy's maximum"
        if collateral > free * self.max_collateral_fraction:
            return "collateral above the policy's share of free stake"
        if price * 10**9 < self.min_price_per_gigafuel * job.fuel:
            return "price per fuel below the policy's minimum"
        if job.fuel > self.fuel_per_second * compute_seconds:
            return f"fuel {job.fuel:,} needs more than the {compute_seconds} s paid for"
        if job.workload == "wasm" and (trees := self.tree_refusal(job)) is not None:
            return trees
        needed = self.job_seconds(job) + self.commit_seconds
        if seconds_left is not None and needed > seconds_left:
            return f"its run may take {needed:,.0f} s; the commit deadline is {seconds_left} s away"
        return None


@dataclass
class Journal:
    """The agent's durable memory: last processed block, each live job's secrets, the
    settled jobs' outcomes, and the jobs waiting for capacity or stake (`waiting`)."""

    path: Path
    from_block: int = 0
    jobs: dict[str, dict] = field(default_factory=dict)
    done: dict[str, dict] = field(default_factory=dict)
    waiting: dict[str, dict] = field(default_factory=dict)
    saved_at: float = 0.0  # time.monotonic() of the last save

    @classmethod
    def open(cls, path: Path, from_block: int = 0) -> Journal:
        path = Path(path)
        if not path.parent.is_dir():
            raise AgentError(f"journal folder {path.parent} does not exist")
        if path.exists():
            try:
                data = json.loads(path.read_text())
                jobs, done = dict(data["jobs"]), dict(data.get("done", {}))
                waiting = dict(data.get("waiting", {}))
                return cls(path, int(data["from_block"]), jobs, done, waiting)
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise AgentError(f"journal {path} is corrupt ({_first_line(error)})") from None
        return cls(path, from_block)

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as handle:
            state = {"from_block": self.from_block, "jobs": self.jobs, "done": self.done}
            if self.waiting:
                state["waiting"] = self.waiting
            json.dump(state, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.path)
        self.saved_at = time.monotonic()


class AgentLock:
    """An exclusive `flock` on an account's agent lock file, held while the process keeps
    it open: the kernel drops it when the process ends, however it ends (SIGKILL too)."""

    def __init__(self, path: Path, fd: int):
        self.path, self.fd = path, fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the lock
            self.fd = None

    def __enter__(self) -> AgentLock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock_path(directory: Path, chain_id: int, address: str) -> Path:
    """The lock file of `address`'s agent on chain `chain_id`: <directory>/locks/
    agent-<chain id>-<address>.lock (the address in lower case)."""
    return Path(directory) / "locks" / f"agent-{int(chain_id)}-{address.lower()}.lock"


def lock_account(directory: Path, chain_id: int, address: str) -> AgentLock:
    """Takes the exclusive lock that lets one agent at a time serve `address` on chain
    `chain_id`, and writes this process's id into it; raises AgentError naming the
    process that holds it. The file descriptor is not inherited by workers (they are
    started with close_fds), so only this process holds the lock."""
    path = lock_path(directory, chain_id, address)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as error:
        raise AgentError(f"cannot open the agent lock {path}: {error.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _lock_holder(fd)
        os.close(fd)
        raise AgentError(
            f"another agent (PID {holder}) serves {address} on chain {chain_id}: stop it "
            f"first (lock {path})"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return AgentLock(path, fd)


def _lock_holder(fd: int) -> str:
    """The process id the lock's holder wrote ("unknown" if it has not written it yet)."""
    for _ in range(20):  # the holder writes its id just after taking the lock
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if text.isdigit():
            return text
        time.sleep(0.05)
    return "unknown"


def _first_line(error: Exception) -> str:
    return (str(error).splitlines() or [type(error).__name__])[0]


def _topic(value) -> str:
    """A log topic as lower-case 0x hex, whatever the transport returned."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return "0x" + str(value).lower().removeprefix("0x")


NEVER = 2**63  # a chain time no job waits for
ANY_STAKE = 2**200  # free stake that bounds no collateral

# JobEscrow's events that name a job (its first topic) and change its state.
TOUCHING = (
    "JobCancelled",
    "ReplicaAccepted",
    "ResultCommitted",
    "ResultRevealed",
    "ResultSubmitted",
    "Disputed",
    "Ruled",
    "ReplicaSettled",
    "JobSettled",
)


@dataclass
class _Running:
    """A job's run in a worker, with what its progress lines say."""

    run: worker.Run
    fuel: int
    logged: float = field(default_factory=time.monotonic)


class Agent:
    """Runs one device of `account` against a `ComputeShare` client."""

    # A job waiting for capacity or stake is considered again when a run or a job ends, and
    # at least this often; at most `RECONSIDER_BATCH` of them a step, oldest first.
    RECONSIDER_SECONDS = 30.0
    RECONSIDER_BATCH = 8
    # The last block read is written at least this often when nothing else changed (a
    # restart then reads again at most this much: what it already holds is skipped).
    CURSOR_SECONDS = 30.0
    # Blocks one `eth_getLogs` request covers.
    LOG_PAGE = 5_000
    # Reasons remembered (so each is said once); past this, the oldest half is forgotten.
    SAID_LIMIT = 10_000

    def __init__(
        self,
        cs,
        account,
        device_id: bytes,
        journal: Journal,
        *,
        faulty: bool = False,
        policy: Policy | None = None,
        log: Callable[[str], None] = print,
        module_cache: Path | None = None,
    ):
        self.cs, self.account, self.device_id = cs, account, bytes(device_id)
        self.journal, self.faulty, self.log = journal, faulty, log
        self.policy = policy or Policy()
        self.module_cache = module_cache or journal.path.parent / "modules"
        self.data = journal.path.parent
        self.me = account.address
        self._nonce: int | None = None
        self._workers: int | None = self.policy.max_workers
        self._runs: dict[str, _Running] = {}
        self._queued: dict[str, None] = {}  # owed a run, waiting for a worker; oldest first
        # Per held job, the chain time its state can next change by time alone (0: move it
        # on next step; absent: not read since the start, also next step).
        self._wake: dict[str, int] = {}
        self._said: dict[str, str] = {}  # per job, the last reason it waits or was declined
        self._freed = False  # a run or a job ended since waiting jobs were last considered
        self._pool: worker.Pool | None = None  # warm workers, started once `max_workers` is known
        self._checks: dict[str, worker.Run] = {}  # jobs with trees being checked in a worker
        self._checked: set[str] = set()  # and those that passed
        self._reconsidered = time.monotonic()
        self._taken: dict[str, int] = {}  # per job, the replicas other providers took (a scan)
        self._ours: set[str] = set()  # jobs whose acceptance by this device the scan read
        self._fits: dict[tuple, str | None] = {}
        self._capacity = 0  # the device's concurrency cap, as `check_fit` last answered
        self.now = 0  # the pending block's time, read once a step
        # While the node is unreachable or hung: one line when it goes, one when it is
        # back, and steps spaced 1 s, 2 s ... 60 s apart (`wait`), not a line per request.
        self.node = Backoff(log)

    # -- the loop

    def step(self) -> None:
        """One pass: read the new logs (new jobs, events naming held jobs), then move on
        each held job an event touched, whose time came or whose run ended, then consider
        again jobs waiting for capacity. Never raises. A step the node fails ends there;
        `wait` is then the backoff before the next one."""
        self._retry_from = NEVER
        self._fits: dict[tuple, str | None] = {}  # check_fit's answers this step
        touched: set[str] = set()
        try:
            touched = self._scan()
        except Exception as error:  # a hostile or failing RPC answer: rescan next step
            if self._node_failed(error):
                return
            self.log(f"scan failed ({type(error).__name__}: {_first_line(error)}); retrying")
        self._poll_runs()
        if not self._advance_all(self._due(touched)):
            return
        held = set(self.journal.jobs)
        try:
            self._reconsider()
        except Exception as error:
            if self._node_failed(error):
                return
            self.log(f"waiting jobs: {type(error).__name__}: {_first_line(error)}")
        # Jobs accepted just now start their runs now, not a poll interval later.
        if not self._advance_all([key for key in self.journal.jobs if key not in held]):
            return
        try:
            self.pool.warm()  # one idle worker a step, until `max_workers` wait
        except Exception as error:  # none now (no process left?): a run starts its own
            if self._node_failed(error):
                return
            self.log(f"cannot start a worker ({type(error).__name__}: {_first_line(error)})")
        self.node.succeeded()

    def _advance_all(self, keys: list[str]) -> bool:
        """Moves on each job of `keys` one stage; False if the node failed (the step ends)."""
        for key in keys:
            try:
                self._advance(key)
            except Exception as error:
                self._wake[key] = 0
                if self._node_failed(error):
                    return False
                self._say(key, f"{type(error).__name__}: {_first_line(error)}")
        return True

    @property
    def wait(self) -> float:
        """Seconds to wait before the next step beyond the poll interval: the backoff."""
        return self.node.delay

    def _node_failed(self, error: Exception) -> bool:
        if not node_trouble(error):
            return False
        self.node.failed(error)
        return True

    @property
    def busy(self) -> bool:
        """A workload is running in a worker or waiting for one, or a job's trees are being
        fetched and checked."""
        return bool(self._runs or self._queued or self._checks)

    @property
    def max_workers(self) -> int:
        """Runs at once: the policy's, else the device's `max_concurrent_jobs` at most the
        machine's CPU count (read from the chain once)."""
        if self._workers is None:
            spec = self.cs.registry.device(self.device_id).spec
            self._workers = max(1, min(int(spec.max_concurrent_jobs), os.cpu_count() or 1))
        return self._workers

    @property
    def pool(self) -> worker.Pool:
        """The warm workers that run workloads and checks: `max_workers` kept idle (each
        step starts one while fewer wait), so a run starts at once, not after a process's
        start-up and imports."""
        if self._pool is None:
            self._pool = worker.Pool(self.max_workers)
        return self._pool

    def close(self) -> None:
        """Stops every workload still running, and every idle worker."""
        for task in self._runs.values():
            task.run.kill()
        for run in self._checks.values():
            run.kill()
        self._runs.clear()
        self._queued.clear()
        self._checks.clear()
        if self._pool is not None:
            self._pool.close()

    def _say(self, key: str, message: str) -> None:
        """Logs why a job waits, was declined or failed a stage, once while it stays so."""
        if self._said.get(key) != message:
            if len(self._said) >= self.SAID_LIMIT:  # forget the oldest: none is asked again
                for old in list(self._said)[: self.SAID_LIMIT // 2]:
                    del self._said[old]
            self._said[key] = message
            self.log(f"job {key[:10]}: {message}")

    def progress(self, key: str) -> dict | None:
        """What the device does with job `key` ("0x" + id), for the result server's
        `/progress/` (any thread may ask): its state, seconds run, fuel limit; None if it
        knows nothing of the job."""
        task = self._runs.get(key)
        if task is not None:
            return {
                "state": "running",
                "elapsed_seconds": round(task.run.elapsed, 1),
                "fuel_limit": task.fuel,
                "wall_limit_seconds": round(task.run.wall_seconds, 1),
            }
        entry = self.journal.jobs.get(key)
        if entry is not None:
            if key in self._queued:
                state = "queued"
            elif "left" in entry:
                state = "left"
            elif entry.get("revealed"):
                state = "revealed"
            elif "result_hash" in entry:
                state = "ran"
            else:
                state = "accepted"
            return {
                "state": state,
                "elapsed_seconds": entry.get("run_seconds", 0.0),
                "fuel_limit": entry.get("fuel"),
            }
        if key in self.journal.waiting:
            return {"state": "waiting", "elapsed_seconds": 0.0, "fuel_limit": None}
        done = self.journal.done.get(key)
        if done is not None:
            return {"state": "settled", "outcome": done.get("outcome")}
        return None

    def _scan(self) -> set[str]:
        """Reads the new blocks' job events: considers each new job, and returns the held
        jobs the others name."""
        chain = self.cs.escrow.chain_manager
        self.now = chain.pending_timestamp
        start = self.journal.from_block
        index = self.cs.jobs.index
        try:  # the event index, synced: one query
            report = index.sync() if index is not None else None
        except Exception as error:  # a broken index never stops the agent: read the logs
            if node_trouble(error):
                raise
            self.log(f"event index unusable ({_first_line(error)}): reading the logs")
            report = None
        rolled_back = False
        if report is not None:
            if report.rolled_back_from is not None:  # a reorg: its jobs are read again
                start = min(start, report.rolled_back_from)
                rolled_back = True
            head = report.last
        else:
            head = chain.blocks.height
        if start > head:
            return set()
        touched, posted = self._job_logs(start, head, posted=report is None)
        self._drop_taken()
        if report is not None:
            posted = index.posted(start, head)
        if rolled_back:
            touched |= set(self.journal.jobs)
        for job_id, terms, spec in posted:
            key = "0x" + job_id.hex()
            if key in self.journal.jobs or key in self.journal.done or key in self.journal.waiting:
                continue
            try:
                self.cs.jobs.remember(terms_from_json(terms) if report is not None else terms)
                self._consider(job_id, spec)
            except Exception as error:  # one job's trouble never stops the scan
                if node_trouble(error):
                    raise  # the node's trouble does: its block is read again
                self._say(key, f"skipped ({type(error).__name__}: {_first_line(error)})")
        self.journal.from_block = min(head + 1, self._retry_from)
        if time.monotonic() - self.journal.saved_at >= self.CURSOR_SECONDS:
            self.journal.save()
        return touched

    def _job_logs(self, start: int, head: int, posted: bool) -> tuple[set[str], list]:
        """JobEscrow's job events in blocks start..head, one `eth_getLogs` a `LOG_PAGE`:
        the ids ("0x" + hex) of the jobs the `TOUCHING` events name and, with `posted`,
        the new jobs as (id, terms, spec)."""
        escrow = self.cs.escrow
        names = TOUCHING + (("JobPosted",) if posted else ())
        selectors = {
            "0x" + keccak(text=getattr(escrow, name).abi.selector).hex(): name for name in names
        }
        provider = escrow.chain_manager.provider
        touched: set[str] = set()
        new: list = []
        self._taken: dict[str, int] = {}
        self._ours: set[str] = set()
        for first in range(start, head + 1, self.LOG_PAGE):
            raw = provider.make_request(
                "eth_getLogs",
                [
                    {
                        "address": str(escrow.address),
                        "fromBlock": hex(first),
                        "toBlock": hex(min(head, first + self.LOG_PAGE - 1)),
                        "topics": [list(selectors)],
                    }
                ],
            )
            for log in raw or []:
                topics = log.get("topics") or []
                name = selectors.get(_topic(topics[0])) if len(topics) > 1 else None
                if name == "JobPosted":
                    new.append(log)
                elif name is not None:
                    touched.add(_topic(topics[1]))
                if name == "ReplicaAccepted" and len(topics) > 2:
                    self._note_taken(_topic(topics[1]), _topic(topics[2]), log.get("data"))
        jobs = []
        if new:
            for event in provider.network.ecosystem.decode_logs(new, escrow.JobPosted.abi):
                jobs.append((bytes(event.job_id), event.terms, bytes(event.spec)))
        return touched, jobs

    def _note_taken(self, key: str, provider: str, data) -> None:
        """Another provider's `ReplicaAccepted`: notes the slot it took (the first word of
        the event's data), so a job waiting here whose replicas are all taken is dropped
        without a request (`_drop_taken`)."""
        if provider[-40:] == self.me.lower()[-40:]:
            self._ours.add(key)  # accepted before a restart: considering it adopts it
            return
        try:
            raw = bytes.fromhex(str(data)[2:]) if isinstance(data, str) else bytes(data)
            self._taken[key] = max(self._taken.get(key, 0), int.from_bytes(raw[:32], "big") + 1)
        except (TypeError, ValueError):
            return  # unreadable: considering it asks the chain

    def _drop_taken(self) -> None:
        """Drops each waiting job whose last replica another provider just took."""
        for key, taken in self._taken.items():
            entry = self.journal.waiting.get(key)
            if entry is None:
                continue
            replicas = entry.get("replicas")
            if replicas is None:  # waiting since before replicas were noted
                try:
                    replicas = self.cs.jobs.terms(bytes.fromhex(key[2:])).replicas
                except Exception as error:
                    if node_trouble(error):
                        raise
                    continue  # considering it asks the chain
            if taken >= replicas:
                self.journal.waiting.pop(key)
                self._say(key, f"skipped (all {replicas} replicas taken)")
        self._taken = {}

    def _poll_runs(self) -> None:
        """Marks each job whose run ended as due; logs the others' progress now and then.
        No request to the node."""
        for key, task in list(self._runs.items()):
            if task.run.finished:
                self._wake[key] = 0
            elif time.monotonic() - task.logged >= self.policy.progress_seconds:
                task.logged = time.monotonic()
                self.log(
                    f"job {key[:10]}: running, {task.run.elapsed:,.0f} s of at most "
                    f"{task.run.wall_seconds:,.0f} s (fuel limit {task.fuel:,})"
                )

    def _due(self, touched: set[str]) -> list[str]:
        """The held jobs to move on this step: the oldest waiting for a worker while some
        are free, then every job an event touched or whose time has come."""
        due: dict[str, None] = {}
        free = self.max_workers - len(self._runs) if self._queued else 0
        for key in list(self._queued)[: max(free, 0)]:
            due[key] = None
        for key in self.journal.jobs:
            if key in touched or self._wake.get(key, 0) <= self.now:
                due[key] = None
        return [key for key in due if key in self.journal.jobs]

    def _owed_runs(self) -> int:
        """Held jobs that still need a run (running, waiting for a worker, or not started)."""
        return sum(
            1
            for entry in self.journal.jobs.values()
            if "result_hash" not in entry and "left" not in entry
        )

    def _reconsider(self) -> None:
        """Jobs that waited for capacity or stake: dropped once their deadline passed;
        considered again, a few a step, when a run or a job ended or now and then."""
        waiting = self.journal.waiting
        if not waiting:
            return
        if any(run.finished for run in self._checks.values()):
            self._freed = True  # a job's trees arrived (or failed): consider it now
        for key, entry in list(waiting.items()):
            if entry.get("deadline", 0) <= self.now:
                waiting.pop(key)
                self._say(key, "skipped (its commit deadline passed while it waited)")
        due = self._freed or time.monotonic() - self._reconsidered >= self.RECONSIDER_SECONDS
        if not waiting or not due or self._owed_runs() >= self.max_workers:
            return
        self._freed, self._reconsidered = False, time.monotonic()
        before = len(waiting)
        for key in list(waiting)[: self.RECONSIDER_BATCH]:
            entry = waiting.pop(key)
            if self._owed_runs() >= self.max_workers:
                waiting[key] = entry
                continue
            try:
                checked = not entry.get("unchecked", False)
                self._consider(bytes.fromhex(key[2:]), bytes.fromhex(entry["spec"][2:]), checked)
            except Exception as error:
                if node_trouble(error):
                    waiting[key] = entry
                    raise
                self._say(key, f"skipped ({type(error).__name__}: {_first_line(error)})")
        if len(waiting) < before and waiting and self._owed_runs() < self.max_workers:
            self._freed = True  # some left the list and room is left: the next ones next step
        self.journal.save()

    # A module is declined when it takes longer than this, or than `prepare_seconds` of its
    # size, to meter and compile (once: the prepared module is cached).
    CHECK_SECONDS = 10.0

    def _places(self) -> dict:
        """Where workers keep what lasts beyond a run: prepared modules, fetched input trees
        (`cas` cache, shared by the replicas and arbiter of this machine) and output trees
        (the store the result server serves), and the policy's bound on an input tree."""
        return {
            "prepared": self.data / "prepared",
            "trees": self.data / "trees",
            "outputs": self.data / "outputs",
            "max_input": self.policy.max_input_bytes,
        }

    def _validate(self, key: str, spec: bytes, job, compile: bool = True) -> Job | None:
        """The whole spec checked before any collateral is locked; None (and a log line) if
        it is malformed, outside the policy, or its module does not compile (not compiled
        again, without `compile`, for a job that waited)."""
        try:
            decoded = decode_spec(spec)
            requirements = job.requirements
            refusal = self.policy.refusal(
                decoded,
                job.price_per_replica,
                job.collateral_per_replica,
                requirements["compute_seconds"],
                ANY_STAKE,  # free stake changes: `_shortage` judges it, and the job waits
                job.deadline - self.now,
            )
            trees = decoded.workload == "wasm" and _has_trees(decoded)
            if refusal is None and trees and key not in self._checked:
                if not self._check_trees(key, spec, decoded):
                    return CHECKING
            elif refusal is None and compile and decoded.workload == "wasm":
                module = resolve_module(
                    decoded.input.module, self.module_cache, fetch=self.policy.fetch_modules
                )
                seconds = max(self.CHECK_SECONDS, prepare_seconds(len(module)))
                worker.Run("check", spec, module, seconds, pool=self.pool, **self._places()).wait()
        except (WorkloadError, worker.WorkerError) as error:
            refusal = _first_line(error)
            self._checks.pop(key, None)
        if refusal is not None:
            self._say(key, f"declined ({refusal})")
            return None
        return decoded

    def _check_trees(self, key: str, spec: bytes, job: Job) -> bool:
        """A job with trees is checked in a worker the loop does not wait for: it fetches
        and verifies the module and input trees (a slow or hostile source holds that worker,
        never the agent) and compiles the module. True once it passed; raises
        `worker.WorkerError` with the reason if it failed; False while it runs."""
        run = self._checks.get(key)
        if run is None:
            if len(self._checks) >= self.max_workers:  # bounded, as runs are: it waits
                return False
            inputs, tree = job.input.inputs, job.input.module.tree
            moved = (inputs.size if inputs else 0) + (tree.size if tree else 0)
            seconds = max(self.CHECK_SECONDS, prepare_seconds(_module_size(job.input)))
            seconds += self.policy.margin_seconds(moved)
            self._checks[key] = worker.Run(
                "check",
                spec,
                None,
                seconds,
                modules=self.module_cache if self.policy.fetch_modules else None,
                pool=self.pool,
                **self._places(),
            )
            return False
        if run.poll() is None:
            return False
        self._checks.pop(key)
        self._checked.add(key)
        return True

    def _consider(self, job_id: bytes, spec: bytes, checked: bool = False) -> None:
        """A job not held: adopted if the chain shows this device holds it; else passed
        over (the chain's rules, the spec, the policy), put to wait (capacity, stake) or
        accepted, saying why once. `checked`: it waited, its module compiled before."""
        key = "0x" + job_id.hex()
        owed = self._owed_runs()
        # No worker free: the job cannot be accepted now, so its state on chain is not read
        # (events drop it once others take it: `_drop_taken`): only what decides for good
        # is checked, the device's fit once a step for the same requirements and price,
        # the spec and the policy here (its module compiles when it is considered again).
        # A replica this device holds is adopted at once: its `ReplicaAccepted` came in the
        # same scan as its `JobPosted`.
        busy = owed >= self.max_workers and key not in self._ours and key not in self._checks
        job = self._terms_view(job_id) if busy else self.cs.jobs.view(job_id)
        held = None if busy else self._held_slot(job_id, job)
        if held is not None:  # accepted before a restart: adopt it
            self.journal.waiting.pop(key, None)
            self.journal.jobs[key] = {
                "slot": held,
                "spec": "0x" + spec.hex(),
                "block": self.journal.from_block,
            }
            self.journal.save()
            self.log(f"job {key[:10]}: adopted replica {held} from the chain")
            return
        obstacle = self._obstacle(job_id, job, memo=busy)
        if obstacle is not None:
            self._say(key, f"skipped ({obstacle})")
            return
        decoded = self._validate(key, spec, job, compile=not checked and not busy)
        if decoded is None:
            return
        if busy and decoded is not CHECKING:
            self._wait(key, spec, job, unchecked=not checked)
            workers = self.max_workers
            self._say(key, f"waits ({matching.CAPACITY}: {owed} runs owed to {workers} workers)")
            return
        if decoded is CHECKING:
            self._wait(key, spec, job)
            self._say(key, "waits (its trees are fetched and its module checked in a worker)")
            return
        shortage = self._shortage(job)
        if shortage is not None:
            self._wait(key, spec, job)
            self._say(key, f"waits ({shortage})")
            return
        try:
            receipt = self._send(
                self.cs.escrow.accept, self.cs.jobs.terms(job_id), self._device_nonce()
            )
        except ContractLogicError as error:
            if error.message and error.message.startswith("job_escrow:"):
                self._say(key, f"not accepted ({error.message})")
                return
            self._retry(key, error)
            return
        except ApeException as error:
            if node_trouble(error):
                raise
            self._retry(key, error)
            return
        except SendError as error:  # the node asks a fee over the cap: nothing was signed
            self._retry(key, error)
            return
        slot = receipt.return_value
        self.journal.jobs[key] = {
            "slot": slot,
            "spec": "0x" + spec.hex(),
            "block": receipt.block_number,
            "fuel": decoded.fuel,
        }
        self.journal.save()
        self.log(f"job {key[:10]}: accepted replica {slot}")

    def _wait(self, key: str, spec: bytes, job, unchecked: bool = False) -> None:
        """Puts a job to wait (`job`: its view or terms); `unchecked`: before any check."""
        entry = {"spec": "0x" + spec.hex(), "deadline": job.deadline, "replicas": job.replicas}
        if unchecked:
            entry["unchecked"] = True
        self.journal.waiting[key] = entry

    # Gas estimates are taken against the state before other providers' transactions of
    # the same block; an acceptance into a later slot costs more. Send with headroom.
    GAS_HEADROOM = 1.5

    def _send(self, method, *args):
        estimate = method.estimate_gas_cost(*args, sender=self.account)
        gas = int(estimate * self.GAS_HEADROOM) + 50_000
        return send(method, *args, sender=self.account, gas=gas)

    def _retry(self, key: str, error: Exception) -> None:
        """A send that failed without a reason (e.g. out of gas after another provider's
        acceptance landed first): the next scan retries, its block is not marked done."""
        self._say(key, f"accept failed ({_first_line(error)}); retrying")
        self._retry_from = min(self._retry_from, self.journal.from_block)

    def _held_slot(self, job_id: bytes, job) -> int | None:
        if job.replicas == 1:  # a k = 1 replica is a hash on chain: its provider is in the events
            held = job.accepted and self.cs.jobs.replica(job_id).provider == self.me
            return 0 if held else None
        for slot in range(job.accepted):  # at most MAX_REPLICAS
            if self.cs.escrow_view.assignment(job_id, slot).provider == self.me:
                return slot
        return None

    def _device_nonce(self) -> int:
        """The device's registration nonce (its id is derived from owner and nonce)."""
        if self._nonce is None:
            try:
                self._nonce = self.cs.device_nonce(self.me, self.device_id)
            except NotAllowed:
                raise ValueError("the agent's device does not belong to its account") from None
        return self._nonce

    def _terms_view(self, job_id: bytes) -> SimpleNamespace:
        """A job as its terms tell it, read no state: open, no replica taken."""
        terms = self.cs.jobs.terms(job_id)._asdict()
        terms["requirements"] = unpack_requirements(terms["requirements"])
        return SimpleNamespace(**terms, status=STATUS_OPEN, accepted=0)

    def _obstacle(self, job_id: bytes, job, memo: bool = False) -> str | None:
        """What keeps the device from the job for good, or None: the contract's own
        eligibility rules, checked before sending so nothing doomed is sent (the registry's
        `check_fit` is the view JobEscrow calls on acceptance), named as
        `computeshare.matching` names them ("gpus: the device has 0 GPUs; ...")."""
        if job.status != STATUS_OPEN:
            return "the job is no longer open"
        if job.accepted >= job.replicas:
            return f"all {job.replicas} replicas taken"
        if job.deadline <= self.now:
            return "its commit deadline passed"
        packed = self.cs.jobs.terms(job_id).requirements
        fit = (packed, job.price_per_replica)
        if memo and fit in self._fits:  # `memo`: as the same requirements and price this step
            return self._fits[fit]
        try:
            self._capacity = self.cs.registry.check_fit(
                self.device_id, self.me, packed, job.price_per_replica
            )
            self._fits[fit] = None
        except ContractLogicError as error:  # name the rule as `client status` counts it
            device = matching.device_from_chain(self.cs, self.device_id)
            failed = matching.failure(device, matching.needs_of(self.cs, job_id, job))
            why = ": ".join(failed) if failed else error.message or "the device does not fit"
            self._fits[fit] = why
            return why
        return None

    def _shortage(self, job) -> str | None:
        """What the device lacks for the job now, which may pass (it waits), or None:
        workers (runs owed), the device's capacity on chain, free stake for the collateral."""
        owed = self._owed_runs()
        if owed >= self.max_workers:
            return f"{matching.CAPACITY}: {owed} runs owed to {self.max_workers} workers"
        running = self.cs.escrow_view.device_record(self.device_id).running
        if running >= self._capacity:
            return f"{matching.CAPACITY}: the device holds {running} of its {self._capacity} jobs"
        free, fraction = self.cs.staking.free_stake(self.me), self.policy.max_collateral_fraction
        if job.collateral_per_replica > free * fraction:
            return (
                f"{matching.STAKE}: the collateral {job.collateral_per_replica / 1e18:,.2f}"
                f" is above {fraction:g} of the free stake {free / 1e18:,.2f}"
            )
        return None

    def _advance(self, key: str) -> None:
        entry = self.journal.jobs[key]
        job_id, slot = bytes.fromhex(key[2:]), entry["slot"]
        job = self.cs.jobs.view(job_id)
        status = self.cs.escrow_view.assignment(job_id, slot).status
        now = self.now
        # Nothing changes by time alone before the next of these, unless an event says so.
        self._wake[key] = min((t for t in (job.deadline, job.phase_end) if t > now), default=NEVER)
        in_time = status == REPLICA_ACCEPTED and now < job.deadline
        settled = job.status in (STATUS_FINALIZED, STATUS_CANCELLED)
        if not in_time:
            self._queued.pop(key, None)
            task = self._runs.pop(key, None)
            if task is not None:  # too late to commit what it would produce
                task.run.kill()
            if not settled and "result_hash" not in entry and "left" not in entry:
                when = "during its run" if task is not None else "before it ran"
                self._leave(key, entry, f"its commit deadline passed {when}")
        try:
            if settled:
                self._settled(key, job_id)
            elif in_time:
                self._commit(key, job_id, slot, entry, job.deadline)
            elif status == REPLICA_COMMITTED and self._reveal_open(job, now):
                self._reveal(key, job_id, slot, entry)
            elif status in (REPLICA_REVEALED, REPLICA_COMMITTED, REPLICA_ACCEPTED):
                self._finalize_if_due(key, job_id, job, now)
        except ContractLogicError as error:
            self._wake[key] = 0
            self._say(key, str(error.message))
        except ApeException as error:  # a failed send: the next step retries this stage
            self._wake[key] = 0
            if node_trouble(error):
                raise
            self._say(key, f"{_first_line(error)}; retrying")

    def _leave(self, key: str, entry: dict, reason: str) -> None:
        """The device will not run this job: it settles without a result from it."""
        entry["left"] = reason
        self._queued.pop(key, None)
        self._freed = True
        self.journal.save()
        self.log(f"job {key[:10]}: left unrun ({reason})")

    def _result(self, key: str, entry: dict, deadline: int) -> RunResult | None:
        """The job's run result; starts (once a worker is free and if the run fits before
        the commit deadline) or polls its worker. None while it waits or runs, after it was
        left, or after it failed (then the job is dropped from the journal and left to
        settle)."""
        spec = bytes.fromhex(entry["spec"][2:])
        task = self._runs.get(key)
        try:
            if task is None:
                if "left" in entry:
                    return None
                job = decode_spec(spec)
                wall = self.policy.job_seconds(job)
                needed, left = wall + self.policy.commit_seconds, deadline - self.now
                if needed > left:
                    self._leave(key, entry, f"its run may take {needed:,.0f} s; {left} s left")
                    return None
                if len(self._runs) >= self.max_workers:
                    self._queued[key] = None
                    self._say(key, f"waits for a worker ({len(self._runs)} running)")
                    return None
                self._queued.pop(key, None)
                module = None
                if job.workload == "wasm":
                    module = resolve_module(
                        job.input.module, self.module_cache, fetch=self.policy.fetch_modules
                    )
                run = worker.Run(
                    "run",
                    spec,
                    module,
                    wall,
                    job_id=bytes.fromhex(key[2:]),
                    pool=self.pool,
                    **self._places(),
                )
                task = _Running(run, job.fuel)
                self._runs[key] = task
                self.log(f"job {key[:10]}: running {job.workload} (fuel limit {job.fuel:,})")
            answer = task.run.poll()
            if answer is None:
                return None
            self._runs.pop(key, None)
            self._freed = True
            entry["run_seconds"] = round(task.run.elapsed, 1)
            return worker.run_result(answer)
        except (WorkloadError, worker.WorkerError) as error:
            self._runs.pop(key, None)
            self._queued.pop(key, None)
            self._freed = True
            self.log(f"job {key[:10]}: cannot run ({_first_line(error)}); leaving it")
            self.journal.jobs.pop(key)
            self._wake.pop(key, None)
            self.journal.done[key] = {"outcome": "unrunnable"}
            self.journal.save()
            return None

    def _commit(self, key: str, job_id: bytes, slot: int, entry: dict, deadline: int) -> None:
        if "result_hash" not in entry:
            result = self._result(key, entry, deadline)
            if result is None:
                return
            digest = result.digest()
            if self.faulty:
                digest = self._faulty(result).digest()
            entry["result"] = result.to_json()
            recipient = decode_spec(bytes.fromhex(entry["spec"][2:])).encrypt_to
            if recipient is not None:  # served encrypted to the client's key
                entry["result"]["encrypt_to"] = recipient.hex()
            entry["result_hash"] = "0x" + digest.hex()
            entry["salt"] = "0x" + os.urandom(32).hex()
            self.journal.save()  # the secrets are durable before the commitment is public
            self.log(
                f"job {key[:10]}: ran, {result.status_name}, fuel {result.fuel:,}, "
                f"{len(result.output)} bytes out"
            )
        if self.cs.jobs.terms(job_id).replicas == 1:
            self._submit(key, job_id, entry)
            return
        digest, salt = bytes.fromhex(entry["result_hash"][2:]), bytes.fromhex(entry["salt"][2:])
        self._send(
            self.cs.escrow.commit,
            self.cs.jobs.terms(job_id),
            slot,
            self._device_nonce(),
            commitment(job_id, self.me, digest, salt),
        )
        self.log(f"job {key[:10]}: committed" + (" (faulty result)" if self.faulty else ""))

    @staticmethod
    def _faulty(result: RunResult) -> RunResult:
        """What `--faulty` claims instead: the same run with a wrong output."""
        return RunResult(result.status, result.fuel, b"faulty" + result.output, result.output_root)

    def _submit(self, key: str, job_id: bytes, entry: dict) -> None:
        """k = 1: the result goes on chain in one transaction (no commit-reveal), its output
        too unless it is private (encrypted to the client) or long."""
        result = RunResult.from_json(entry["result"])
        if self.faulty:
            result = self._faulty(result)
        private = "encrypt_to" in entry["result"]
        args = self.cs.jobs.submit_args(
            job_id, result, output_on_chain=not private, device_nonce=self._device_nonce()
        )
        self._send(self.cs.escrow.submit, *args)
        entry["revealed"] = True  # public now: the result server may serve it
        self.journal.save()
        self.log(
            f"job {key[:10]}: submitted {result.status_name}, fuel {result.fuel:,}"
            + (" (faulty result)" if self.faulty else "")
        )

    @staticmethod
    def _reveal_open(job, now: int) -> bool:
        return (job.committed == job.replicas or now >= job.deadline) and now < job.phase_end

    def _reveal(self, key: str, job_id: bytes, slot: int, entry: dict) -> None:
        digest, salt = bytes.fromhex(entry["result_hash"][2:]), bytes.fromhex(entry["salt"][2:])
        terms, nonce = self.cs.jobs.terms(job_id), self._device_nonce()
        self._send(self.cs.escrow.reveal, terms, slot, nonce, digest, salt)
        entry["revealed"] = True  # public now: the result server may serve it
        self.journal.save()
        self.log(f"job {key[:10]}: revealed {entry['result_hash'][:10]}")

    # Replicas other than slot 0 wait this many steps before finalizing a due job, so the
    # replicas of one job do not all pay for the same settlement (only one can succeed).
    FINALIZE_BACKOFF = 4

    def _finalize_if_due(self, key: str, job_id: bytes, job, now: int) -> None:
        # k = 1: the reveal window, then the challenge window (or a dispute's ruling period).
        # k > 1: every replica revealed, unless their dissent already went to the arbiter
        # (then the ruling period's end).
        everyone_revealed = job.replicas > 1 and job.revealed == job.replicas
        due = now >= job.phase_end or (everyone_revealed and job.status == STATUS_OPEN)
        if due:
            entry = self.journal.jobs[key]
            waited = entry.get("waited", 0)
            if entry["slot"] != 0 and waited < self.FINALIZE_BACKOFF * entry["slot"]:
                entry["waited"] = waited + 1
                self._wake[key] = 0  # steps, not time: due again next step
                return
            jobs = self.cs.jobs
            receipt = self._send(
                self.cs.escrow.finalize, jobs.terms(job_id), jobs.settlement_replica(job_id)
            )
            if receipt is not None and receipt.decode_logs(self.cs.escrow.Disputed):
                self.log(f"job {key[:10]}: the replicas disagree; the arbiter rules")
            else:
                self.log(f"job {key[:10]}: finalized")

    def _settled(self, key: str, job_id: bytes) -> None:
        """Records what settlement did to this replica, from its ReplicaSettled event."""
        entry = self.journal.jobs[key]
        logs = self.cs.escrow.ReplicaSettled.range(
            entry["block"],
            self.cs.escrow.chain_manager.blocks.height + 1,
            search_topics={"job_id": job_id, "provider": self.me},
        )
        settled = next(iter(logs), None)
        if settled is None:
            self._wake[key] = 0  # the node has not indexed it yet: try again next step
            return
        outcome = OUTCOMES.get(settled.outcome, str(settled.outcome))
        self.journal.jobs.pop(key)
        for memo in (self._wake, self._said, self._queued):
            memo.pop(key, None)
        self._freed = True
        self.journal.done[key] = {
            "outcome": outcome,
            "paid": settled.paid,
            "slashed": settled.slashed,
        }
        if "result" in entry:
            self.journal.done[key]["result"] = entry["result"]
        self.journal.save()
        self.log(
            f"job {key[:10]}: settled, {outcome}: paid {settled.paid / 1e18:,.2f}, "
            f"slashed {settled.slashed / 1e18:,.2f}"
        )


# Modules up to this size are prepared within `min_wall_seconds`; larger ones add
# `sandbox.prepare_seconds` of their size to a job's wall-clock limit.
SMALL_MODULE = 1 << 20


# `_validate`'s answer for a job whose check runs in a worker: it waits, and is considered
# again once the check ended.
CHECKING = object()


def _has_trees(job: Job) -> bool:
    return job.input.inputs is not None or job.input.module.tree is not None


def _module_size(spec) -> int:
    """The module's size as its spec tells it: by tree, inline, else at most the plain
    URI's old bound (a catalogue or cached module is small)."""
    if spec.module.tree is not None:
        return spec.module.tree.size
    if spec.module.inline is not None:
        return len(spec.module.inline) * 3 // 4
    return SMALL_MODULE
