"""The provider agent's worker pool: bounded, event-driven, resumable, and never orphaned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from computeshare import worker
from computeshare.workloads import wasm_spec


def endless_spec() -> bytes:
    """A module that loops until its fuel runs out: minutes at this limit."""
    import wasmtime

    module = bytes(wasmtime.wat2wasm('(module (func (export "_start") (loop $l (br $l))))'))
    return wasm_spec(module, fuel=10**12)


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
        bound = 1 if kernel else 1 + 2 * worker.PARENT_POLL_SECONDS
        deadline = time.monotonic() + bound + 4  # a loaded machine's scheduling
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), "the worker outlived its killed parent"
    finally:
        parent.kill()
        parent.wait()
        if pid is not None and _alive(pid):  # a failed run leaves nothing behind either
            os.kill(pid, signal.SIGKILL)
