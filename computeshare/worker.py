"""Workloads run in a worker process, never in the agent's own.

`Run` starts `python -m computeshare.worker` with the request in a file on its stdin and its
answer going to another file (no pipe can fill and block either side), under CPU-time,
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
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from computeshare.sandbox import RunResult

ANSWER_LIMIT_BYTES = 1 << 20
# The worker runs this process's own package (not whatever `-m computeshare.worker` would
# find on an isolated path): parent and worker must meter with the same cost table.
_PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)
_SERVE = (
    f"import sys; sys.path.insert(0, {_PACKAGE_ROOT!r}); "
    "from computeshare import worker; worker._serve()"
)


class WorkerError(Exception):
    """The worker did not answer: it timed out, crashed, or said something malformed."""


class SpecRefused(WorkerError):
    """The worker decoded the request and refused it (an invalid spec or module)."""


PARENT_POLL_SECONDS = 0.5  # how often a worker's watcher thread looks at its parent id
_PR_SET_PDEATHSIG = 1
_PARENT_VARIABLE = "COMPUTESHARE_WORKER_PARENT"


def _find_prctl():
    """libc's prctl, resolved in the parent: a forked child must not load libraries."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _find_prctl()


def _limits(cpu_seconds: int, file_bytes: int = ANSWER_LIMIT_BYTES) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _die_with(parent: int) -> None:
    """In the child before the exec: SIGKILL when `parent` dies (Linux), and no start at
    all if it already has."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:
        os._exit(1)


def _watch_parent(parent: int) -> None:
    """The worker's own guard (any POSIX system): exits once its parent is gone."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


def _child_setup(cpu_seconds: int, parent: int, file_bytes: int = ANSWER_LIMIT_BYTES) -> None:
    _limits(cpu_seconds, file_bytes)
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
    ):
        """`job_id` seeds the run's `random_get`; `prepared` caches prepared modules,
        `trees` the fetched input trees (at most `max_input` bytes each), `outputs` receives
        the output trees (`cas` stores) and `modules` the modules a check fetches when
        `module` is None (without it, a module that is not given is refused)."""
        self.wall_seconds, self.started = wall_seconds, time.monotonic()
        places = {"prepared": prepared, "trees": trees, "outputs": outputs, "modules": modules}
        request = {
            "op": op,
            "spec": bytes(spec).hex(),
            "module": module and bytes(module).hex(),
            "job_id": bytes(job_id).hex(),
            "places": {k: str(v) for k, v in places.items() if v is not None},
            "max_input": int(max_input),
        }
        files = _file_limit(bytes(spec), int(max_input)) if trees or outputs else None
        self._stdin = tempfile.TemporaryFile()  # noqa: SIM115 (closed in poll)
        self._stdin.write(json.dumps(request).encode())
        self._stdin.seek(0)
        self._stdout = tempfile.TemporaryFile()  # noqa: SIM115 (closed in poll)
        cpu, parent = int(wall_seconds) + 2, os.getpid()
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-c", _SERVE],
            stdin=self._stdin,
            stdout=self._stdout,
            stderr=subprocess.DEVNULL,
            env={"PATH": os.defpath, _PARENT_VARIABLE: str(parent)},
            cwd=tempfile.gettempdir(),
            preexec_fn=lambda: _child_setup(cpu, parent, files or ANSWER_LIMIT_BYTES),
            start_new_session=True,
        )

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def finished(self) -> bool:
        """The worker exited or overran its limit: `poll()` answers or raises now."""
        return self.process.poll() is not None or self.elapsed > self.wall_seconds

    def poll(self) -> dict | None:
        """The worker's answer once it has one; None while it runs. Raises `WorkerError`."""
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
        try:
            answer = json.loads(raw)
        except ValueError:
            raise WorkerError("worker answered malformed JSON") from None
        if not isinstance(answer, dict):
            raise WorkerError("worker answered malformed JSON")
        if "error" in answer:
            raise SpecRefused(str(answer["error"]))
        return answer

    def kill(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._stdin.close()
        self._stdout.close()

    def wait(self) -> dict:
        while True:
            answer = self.poll()
            if answer is not None:
                return answer
            time.sleep(0.01)


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


def _serve() -> None:
    from computeshare.workloads import WorkloadError, check_module, decode_spec, resolve_module

    parent = os.environ.get(_PARENT_VARIABLE, "")
    parent_id = int(parent) if parent.isdigit() else os.getppid()
    threading.Thread(target=_watch_parent, args=(parent_id,), daemon=True).start()
    try:
        request = json.loads(sys.stdin.buffer.read())
        job = decode_spec(bytes.fromhex(request["spec"]))
        module = bytes.fromhex(request["module"]) if request.get("module") else None
        places = {k: Path(v) for k, v in dict(request.get("places") or {}).items()}
        if request["op"] == "check":
            if job.workload == "wasm":
                if module is None and "modules" in places:  # fetched here, off the agent's loop
                    module = resolve_module(job.input.module, places["modules"])
                if module is None:
                    raise WorkloadError("no module given")
                check_module(job, module, places.get("prepared"))
                _input_tree(job, places, int(request.get("max_input") or 0))
            answer: dict = {"ok": True}
        else:
            seed = bytes.fromhex(request.get("job_id") or "")
            answer = {"result": _run(job, module, places, int(request.get("max_input") or 0), seed)}
    except (WorkloadError, KeyError, TypeError, ValueError) as error:
        answer = {"error": (str(error).splitlines() or [type(error).__name__])[0][:200]}
    except Exception as error:  # the request is hostile: answer, never crash
        answer = {"error": f"{type(error).__name__}: {str(error)[:160]}"}
    sys.stdout.write(json.dumps(answer))


def _input_tree(job, places: dict, max_input: int) -> Path | None:
    """The job's input tree's pack, fetched and verified into the `trees` cache (at once
    when it is there: replicas and the arbiter on this machine share it)."""
    from computeshare import cas
    from computeshare.workloads import TREE_CHUNK_SECONDS, WorkloadError

    tree = job.input.inputs
    if tree is None:
        return None
    if "trees" not in places:
        raise WorkloadError("this worker has no cache for input trees")
    try:
        return cas.fetch_tree(
            tree.root,
            tree.size,
            tree.uris,
            cas.Cache(places["trees"]),
            max_size=max_input,
            seconds_per_chunk=TREE_CHUNK_SECONDS,
        )
    except cas.CasError as error:
        raise WorkloadError(f"input tree: {error}") from None


def _run(job, module: bytes | None, places: dict, max_input: int, seed: bytes) -> dict:
    """Runs a job with its trees: /output in a scratch folder, packed into the `outputs`
    store."""
    from computeshare import cas
    from computeshare.workloads import execute

    if job.workload != "wasm":
        return execute(job, module).to_json()
    inputs = _input_tree(job, places, max_input)
    store = cas.Cache(places["outputs"]) if "outputs" in places else None
    with tempfile.TemporaryDirectory(prefix="computeshare-output-") as scratch:
        result = execute(
            job,
            module,
            inputs=inputs,
            output_dir=Path(scratch) / "output",
            store=store,
            seed=seed,
            prepared=places.get("prepared"),
        )
    return result.to_json()


if __name__ == "__main__":
    _serve()
