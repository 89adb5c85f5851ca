"""Workloads run in a worker process, never in the agent's own.

`Run` starts a worker process (`python -I`, running `computeshare.serving`) with the
request in a file on its stdin and its answer going to another file (no pipe can fill and
block either side), under CPU-time,
file-size and core-dump limits, in a session of its own. The agent polls it from its loop
and kills it when its wall-clock limit passes, so a job can stall neither the loop nor the
other jobs. The worker decodes the spec again, so nothing the agent parsed is trusted.

A worker dies with the process that started it, however that process ends (SIGKILL too):
on Linux the kernel sends it SIGKILL (`prctl(PR_SET_PDEATHSIG)`, set before the exec,
then a check that the parent did not die first); everywhere, a thread of the worker
watches its parent id and exits once it changes. Start runs from a thread that lives as
long as the process (the agent's loop): Linux counts a parent thread's exit as its death.

Protocol: stdin is JSON `{"op": "run" | "check", "spec": hex, "module": hex | null}`;
stdout is JSON `{"result": {...}}` (run), `{"ok": true}` (check) or `{"error": "..."}`.

A `Pool` keeps warm workers (started once, the package imported once) that serve one
request after another: a worker's start costs a fork of the agent and a third of a CPU
second of imports, about all a small job costs. A pooled worker reads each request from a
file named on a line of its stdin, sets its own CPU-time and file-size limits for it (soft
limits, from its CPU time so far), writes the answer to a file and says so with one byte
on its stdout (short lines: no pipe fills). The guarantees stay: it dies with its parent
(the same parent-death signal and watcher), and a run past its wall-clock limit is killed
with its worker, which the pool replaces; a worker that crashed or was killed is never
reused.

A run's /output is written in a scratch folder the agent makes for it, under
`<tmp>/computeshare-scratch-<agent pid>`, and removes when the run answers, fails or is
killed: a killed worker cannot clean up after itself. Folders of agents that are gone (a
SIGKILLed agent leaves its runs' folders) are removed when the next agent makes its own.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path

from computeshare.cas.cache import alive
from computeshare.sandbox import RunResult
from computeshare.serving import ANSWER_LIMIT_BYTES, limits
from computeshare.serving import PARENT_VARIABLE as _PARENT_VARIABLE

# The worker runs this process's own package (not whatever `-m computeshare.worker` would
# find on an isolated path): parent and worker must meter with the same cost table.
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_SERVE = (
    f"import sys; sys.path.insert(0, {_PACKAGE_ROOT!r}); "
    "from computeshare import serving; serving.serve()"
)
_SERVE_POOLED = (
    f"import sys; sys.path.insert(0, {_PACKAGE_ROOT!r}); "
    "from computeshare import serving; serving.serve_pooled()"
)


class WorkerError(Exception):
    """The worker did not answer: it timed out, crashed, or said something malformed."""


class SpecRefused(WorkerError):
    """The worker decoded the request and refused it (an invalid spec or module)."""


_PR_SET_PDEATHSIG = 1


_SCRATCH_PREFIX = "computeshare-scratch-"
_scratch: dict[int, Path] = {}  # this process's scratch root, by pid (a fork makes its own)


def scratch_root() -> Path:
    """This process's folder for its runs' scratch space, made on first use; the folders
    of processes that are gone are removed then."""
    pid = os.getpid()
    if pid not in _scratch:
        base = Path(tempfile.gettempdir())
        for stale in base.glob(_SCRATCH_PREFIX + "*"):
            owner = stale.name.removeprefix(_SCRATCH_PREFIX)
            if owner.isdigit() and int(owner) != pid and not alive(int(owner)):
                shutil.rmtree(stale, ignore_errors=True)
        root = base / f"{_SCRATCH_PREFIX}{pid}"
        root.mkdir(mode=0o700, exist_ok=True)
        _scratch[pid] = root
    return _scratch[pid]


def _find_prctl():
    """libc's prctl, resolved in the parent: a forked child must not load libraries."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _find_prctl()


def _die_with(parent: int) -> None:
    """In the child before the exec: SIGKILL when `parent` dies (Linux), and no start at
    all if it already has."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _child_setup(cpu_seconds: int, parent: int, file_bytes: int = ANSWER_LIMIT_BYTES) -> None:
    limits(cpu_seconds, file_bytes)
    _die_with(parent)


def _pooled_setup(parent: int) -> None:
    """A pooled worker: no core dumps; CPU and file limits it sets per request itself."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _die_with(parent)


def _file_limit(spec: bytes, max_input: int) -> int:
    """The largest file a worker may write: its answer, a fetched input or module tree (at
    most `max_input`, the policy's bound) or its output tree's pack (at most the spec's
    `output_limit`, plus the pack's header), whichever is largest."""
    from computeshare.workloads import WorkloadError, decode_spec

    try:
        job = decode_spec(spec)
    except WorkloadError:
        return ANSWER_LIMIT_BYTES
    if job.workload != "wasm":
        return ANSWER_LIMIT_BYTES
    output = job.input.output_limit + (16 << 20)  # the pack's header: at most 10,000 entries
    return max(ANSWER_LIMIT_BYTES, max_input, output, MAX_MODULE_TREE)


MAX_MODULE_TREE = (64 << 20) + 4_096


class Run:
    """One request to a worker process; `poll()` until it answers."""

    def __init__(
        self,
        op: str,
        spec: bytes,
        module: bytes | None,
        wall_seconds: float,
        *,
        job_id: bytes = b"",
        prepared: Path | None = None,
        trees: Path | None = None,
        outputs: Path | None = None,
        modules: Path | None = None,
        max_input: int = 0,
        pool: Pool | None = None,
    ):
        """`job_id` seeds the run's `random_get`; `prepared` caches prepared modules,
        `trees` the fetched input trees (at most `max_input` bytes each), `outputs` receives
        the output trees (`cas` stores) and `modules` the modules a check fetches when
        `module` is None (without it, a module that is not given is refused). With `pool`,
        a warm worker of the pool serves it, else a worker started for it alone."""
        self.wall_seconds, self.started = wall_seconds, time.monotonic()
        self._pool, self._worker = pool, None
        self.scratch = Path(tempfile.mkdtemp(dir=scratch_root()))
        places = {
            "prepared": prepared,
            "trees": trees,
            "outputs": outputs,
            "modules": modules,
            "scratch": self.scratch,
        }
        request = {
            "op": op,
            "spec": bytes(spec).hex(),
            "module": module and bytes(module).hex(),
            "job_id": bytes(job_id).hex(),
            "places": {k: str(v) for k, v in places.items() if v is not None},
            "max_input": int(max_input),
        }
        files = _file_limit(bytes(spec), int(max_input)) if trees or outputs else None
        cpu, parent = int(wall_seconds) + 2, os.getpid()
        if pool is not None:
            self._worker = pool.take()
            self.process = self._worker.process
            self._worker.send(request, cpu, files or ANSWER_LIMIT_BYTES)
            self.started = time.monotonic()
            return
        self._stdin = tempfile.TemporaryFile()  # noqa: SIM115 (closed in poll)
        self._stdin.write(json.dumps(request).encode())
        self._stdin.seek(0)
        self._stdout = tempfile.TemporaryFile()  # noqa: SIM115 (closed in poll)
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-c", _SERVE],
            stdin=self._stdin,
            stdout=self._stdout,
            stderr=subprocess.DEVNULL,
            env=_worker_env(parent),
            cwd=tempfile.gettempdir(),
            preexec_fn=lambda: _child_setup(cpu, parent, files or ANSWER_LIMIT_BYTES),
            start_new_session=True,
        )

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def finished(self) -> bool:
        """The worker exited, answered or overran its limit: `poll()` answers or raises now."""
        if self._pool is not None:
            warm = self._worker  # None once killed
            return warm is None or warm.answered() or self.elapsed > self.wall_seconds
        return self.process.poll() is not None or self.elapsed > self.wall_seconds

    def poll(self) -> dict | None:
        """The worker's answer once it has one; None while it runs. Raises `WorkerError`."""
        try:
            answer = self._poll_pooled() if self._pool is not None else self._poll_own()
        except BaseException:
            self._clean()
            raise
        if answer is not None:
            self._clean()
        return answer

    def _clean(self) -> None:
        """Removes the run's scratch folder (its worker no longer writes there)."""
        shutil.rmtree(self.scratch, ignore_errors=True)

    def _poll_own(self) -> dict | None:
        code = self.process.poll()
        if code is None:
            if self.elapsed > self.wall_seconds:
                self.kill()
                raise WorkerError(f"timed out after {self.wall_seconds:.0f} s")
            return None
        self._stdin.close()
        self._stdout.seek(0)
        raw = self._stdout.read(ANSWER_LIMIT_BYTES + 1)
        self._stdout.close()
        if code != 0:
            raise WorkerError(f"worker exited with {code}")
        return _decode(raw)

    def _poll_pooled(self) -> dict | None:
        warm = self._worker
        if warm is None:
            raise WorkerError("the run was stopped (or had answered)")
        if not warm.answered():
            if self.elapsed > self.wall_seconds:
                self.kill()
                raise WorkerError(f"timed out after {self.wall_seconds:.0f} s")
            return None
        self._worker = None
        try:
            raw = warm.answer()
        except WorkerError:
            self._pool.discard(warm)
            raise
        self._pool.give(warm)
        return _decode(raw)

    def kill(self) -> None:
        if self._worker is not None:
            warm, self._worker = self._worker, None
            self._pool.discard(warm)
        elif self._pool is None:
            if self.process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            self._stdin.close()
            self._stdout.close()
        self._clean()  # once its worker is dead or has answered

    def wait(self) -> dict:
        while True:
            answer = self.poll()
            if answer is not None:
                return answer
            time.sleep(0.01)


def _decode(raw: bytes) -> dict:
    """A worker's answer, or `WorkerError`/`SpecRefused`."""
    try:
        answer = json.loads(raw)
    except ValueError:
        raise WorkerError("worker answered malformed JSON") from None
    if not isinstance(answer, dict):
        raise WorkerError("worker answered malformed JSON")
    if "error" in answer:
        raise SpecRefused(str(answer["error"]))
    return answer


def _worker_env(parent: int) -> dict[str, str]:
    """A worker's whole environment: PATH, its parent, and the IPFS gateway input trees
    named ipfs://<cid>/ are fetched through (`cas.IPFS_GATEWAY_ENV`), when one is set."""
    env = {"PATH": os.defpath, _PARENT_VARIABLE: str(parent)}
    gateway = os.environ.get("COMPUTESHARE_IPFS_GATEWAY")
    if gateway:
        env["COMPUTESHARE_IPFS_GATEWAY"] = gateway
    return env


class _Warm:
    """One pooled worker process (`Pool`): a request at a time."""

    def __init__(self, folder: Path):
        parent = os.getpid()
        self.folder, self.served, self._said = folder, 0, b""
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-c", _SERVE_POOLED],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=_worker_env(parent),
            cwd=tempfile.gettempdir(),
            preexec_fn=lambda: _pooled_setup(parent),
            start_new_session=True,
        )
        os.set_blocking(self.process.stdout.fileno(), False)
        self.request = folder / f"{self.process.pid}.request"
        self.reply = folder / f"{self.process.pid}.answer"

    def send(self, request: dict, cpu_seconds: int, file_bytes: int) -> None:
        """Hands the worker a request (its stdin holds one short line; never blocks)."""
        self.reply.unlink(missing_ok=True)
        self._said = b""
        self.request.write_bytes(json.dumps(request).encode())
        line = json.dumps([str(self.request), str(self.reply), cpu_seconds, file_bytes]) + "\n"
        try:
            self.process.stdin.write(line.encode())
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # it died: `answered` sees its end, `answer` says so
        self.served += 1

    def answered(self) -> bool:
        """The worker said its answer is written, or it ended."""
        if self._said:
            return True
        try:
            said = os.read(self.process.stdout.fileno(), 64)
        except BlockingIOError:
            return False
        except OSError:
            said = b""
        self._said = said or b"ended"
        return True

    def answer(self) -> bytes:
        """The answer's bytes, once `answered`; `WorkerError` if the worker ended instead."""
        if self._said == b"ended":
            self.close()
            raise WorkerError(f"worker exited with {self.process.returncode}")
        try:
            with open(self.reply, "rb") as handle:
                return handle.read(ANSWER_LIMIT_BYTES + 1)
        except OSError:
            raise WorkerError("worker answered nothing") from None
        finally:
            self.reply.unlink(missing_ok=True)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        """Kills the worker (its whole session) and reaps it."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        self.request.unlink(missing_ok=True)
        self.reply.unlink(missing_ok=True)


class Pool:
    """Up to `size` warm workers kept idle for the next requests (`Run(..., pool=)`).

    `take` hands out an idle worker, or starts one when none is; `give` takes a worker
    back once it answered (retired after `MAX_REQUESTS`); a worker that crashed, timed out
    or was killed is discarded, never reused. `warm` starts one idle worker if fewer than
    `size` are kept: call it from the owner's loop (the thread that lives as long as the
    process, see the module's docstring), off the path of any request."""

    MAX_REQUESTS = 500

    def __init__(self, size: int):
        self.size = max(1, int(size))
        self.folder = Path(tempfile.mkdtemp(prefix="computeshare-workers-"))
        self._idle: list[_Warm] = []
        self._out: set[_Warm] = set()
        # Dropped without `close` (its owner forgotten): its workers are killed then.
        self._finalizer = weakref.finalize(self, _close_all, self._idle, self._out, self.folder)

    def warm(self) -> None:
        for dead in [w for w in self._idle if not w.alive]:
            self._idle.remove(dead)
            dead.close()
        if len(self._idle) + len(self._out) < self.size:
            self._idle.append(_Warm(self.folder))

    def take(self) -> _Warm:
        while self._idle:
            warm = self._idle.pop(0)
            if warm.alive:
                self._out.add(warm)
                return warm
            warm.close()
        warm = _Warm(self.folder)
        self._out.add(warm)
        return warm

    def give(self, warm: _Warm) -> None:
        self._out.discard(warm)
        room = len(self._idle) + len(self._out) < self.size
        if room and warm.alive and warm.served < self.MAX_REQUESTS:
            self._idle.append(warm)
        else:
            warm.close()

    def discard(self, warm: _Warm) -> None:
        self._out.discard(warm)
        warm.close()

    @property
    def pids(self) -> list[int]:
        """The process ids of its workers, idle and busy."""
        return [w.process.pid for w in (*self._idle, *self._out)]

    def close(self) -> None:
        """Kills every worker, idle or busy."""
        self._finalizer()


def _close_all(idle: list[_Warm], out: set[_Warm], folder: Path) -> None:
    for warm in (*idle, *out):
        warm.close()
    idle.clear()
    out.clear()
    shutil.rmtree(folder, ignore_errors=True)


def run_result(answer: dict) -> RunResult:
    try:
        return RunResult.from_json(answer["result"])
    except (KeyError, TypeError, ValueError):
        raise WorkerError("worker answered malformed JSON") from None


def run(spec: bytes, module: bytes | None, wall_seconds: float, **places) -> RunResult:
    """Runs a spec in a worker and waits for its result (`Run` for `places`)."""
    return run_result(Run("run", spec, module, wall_seconds, **places).wait())


def check(spec: bytes, module: bytes | None, wall_seconds: float, **places) -> None:
    """Decodes a spec, fetches its input tree (with `places`: `Run`) and compiles its
    module in a worker; raises `SpecRefused` if invalid."""
    Run("check", spec, module, wall_seconds, **places).wait()
