"""What a worker process runs (`computeshare.worker` starts it and talks to it): read a
request, answer it, never crash on it.

`serve` answers the one request on its stdin and writes the answer on its stdout; a
pooled worker's `serve_pooled` reads, line by line, the name of a request file and its
limits, and says with one byte on its stdout that the answer file is written. Both watch
their parent and exit once it is gone. A request is hostile: `answer` turns every failure
into `{"error": ...}`. A wasm run writes its /output under the `scratch` folder the agent
gave it, and packs it into the `outputs` store.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

ANSWER_LIMIT_BYTES = 1 << 20
PARENT_POLL_SECONDS = 0.5  # how often a worker's watcher thread looks at its parent id
PARENT_VARIABLE = "COMPUTESHARE_WORKER_PARENT"


def limits(cpu_seconds: int, file_bytes: int = ANSWER_LIMIT_BYTES) -> None:
    """A worker of its own's limits, set before its exec: CPU time, file size, no core."""
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))
    resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _watch_parent(parent: int) -> None:
    """The worker's own guard (any POSIX system): exits once its parent is gone."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(1)


def request_limits(cpu_seconds: int, file_bytes: int) -> None:
    """A pooled worker's limits for its next request: `cpu_seconds` more CPU time than it
    used so far, files of at most `file_bytes` (soft limits: SIGXCPU, SIGXFSZ end it)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(usage.ru_utime + usage.ru_stime) + 1 + cpu_seconds
    for kind, soft in ((resource.RLIMIT_CPU, cpu), (resource.RLIMIT_FSIZE, file_bytes)):
        hard = resource.getrlimit(kind)[1]
        resource.setrlimit(
            kind, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard)
        )


def answer(request: dict) -> dict:
    """A request's answer; never raises (the request is hostile)."""
    from computeshare.workloads import WorkloadError, check_module, decode_spec, resolve_module

    try:
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
            return {"ok": True}
        seed = bytes.fromhex(request.get("job_id") or "")
        return {"result": _run(job, module, places, int(request.get("max_input") or 0), seed)}
    except (WorkloadError, KeyError, TypeError, ValueError) as error:
        return {"error": (str(error).splitlines() or [type(error).__name__])[0][:200]}
    except Exception as error:  # the request is hostile: answer, never crash
        return {"error": f"{type(error).__name__}: {str(error)[:160]}"}


def _watch() -> None:
    parent = os.environ.get(PARENT_VARIABLE, "")
    parent_id = int(parent) if parent.isdigit() else os.getppid()
    threading.Thread(target=_watch_parent, args=(parent_id,), daemon=True).start()


def serve() -> None:
    _watch()
    try:
        reply = answer(json.loads(sys.stdin.buffer.read()))
    except ValueError as error:
        reply = {"error": (str(error).splitlines() or ["ValueError"])[0][:200]}
    sys.stdout.write(json.dumps(reply))


def serve_pooled() -> None:
    """A pooled worker's loop: a line [request file, answer file, CPU seconds, file bytes]
    a request, one byte on stdout once its answer is written; ends with its stdin."""
    import computeshare.workloads  # noqa: F401 (warm: imported before the first request)

    _watch()
    for line in sys.stdin.buffer:
        request_path, answer_path, cpu_seconds, file_bytes = json.loads(line)
        try:
            with open(request_path, "rb") as handle:
                request = json.loads(handle.read())
        finally:
            os.unlink(request_path)
        request_limits(int(cpu_seconds), int(file_bytes))
        reply = answer(request) if isinstance(request, dict) else {"error": "malformed"}
        with open(answer_path, "w") as handle:
            handle.write(json.dumps(reply))
        sys.stdout.buffer.write(b"\n")
        sys.stdout.buffer.flush()


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
    scratch = places.get("scratch")  # the agent's, removed by it however the run ends
    with tempfile.TemporaryDirectory(dir=scratch, prefix="run-") as folder:
        result = execute(
            job,
            module,
            inputs=inputs,
            output_dir=Path(folder) / "output",
            store=store,
            seed=seed,
            prepared=places.get("prepared"),
        )
    return result.to_json()
