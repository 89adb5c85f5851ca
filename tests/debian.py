"""Debian packages the tests need (chromium, postgresql, the WASI toolchains): installed by
.ci/run in the background; a test that finds one missing waits for apt's lock and installs
it itself when it runs as root, else says how. In CI a missing package is a failure, not a
skip: CI installs them all."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

IN_CI = os.environ.get("CI") == "true"
# What a test installs itself; .ci/run installs the same list.
WASI_TOOLCHAINS = (
    "clang",
    "lld",
    "wasi-libc",
    "libclang-rt-dev-wasm32",
    "libc++-dev-wasm32",
    "rustc",
    "libstd-rust-dev-wasm32",
)


def install(*packages: str) -> str:
    """Installs Debian `packages` when this runs as root with apt (waiting up to 15 minutes
    for .ci/run's background install to let go of apt's lock); "" when done, else why not."""
    names = " ".join(packages)
    if os.name != "posix" or os.geteuid() != 0:
        return f"not root: install them with `sudo apt-get install {names}`"
    if shutil.which("apt-get") is None:
        return f"no apt-get on this machine: install {names}"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wait = ["-o", "DPkg::Lock::Timeout=900"]
    add = ["apt-get", *wait, "install", "-y", "-q", "--no-install-recommends", *packages]
    for step in (add, ["apt-get", *wait, "update", "-q"], add):
        done = subprocess.run(step, env=env, capture_output=True, text=True, timeout=1_200)
        if step is add and done.returncode == 0:
            return ""
    return f"apt-get install {names} failed: {done.stderr.strip().splitlines()[-1:]}"


def missing(what: str) -> None:
    """Skips the test (fails it in CI, where the set-up installs everything) for `what`."""
    if IN_CI:
        pytest.fail(f"needs {what}", pytrace=False)
    pytest.skip(f"needs {what}")


EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def build_examples(what: str, compiler: str) -> str:
    """Builds examples/build/*.wasm (`examples/build.sh c|rust|all`) with Debian's WASI
    toolchains, installing them first if need be; returns the build folder."""
    if shutil.which(compiler) is None:
        problem = install(*WASI_TOOLCHAINS) if IN_CI else "Debian's WASI toolchains"
        if shutil.which(compiler) is None:
            missing(f"{compiler} to build the {what} examples ({problem or 'installed'})")
    done = subprocess.run(
        ["sh", os.path.join(EXAMPLES, "build.sh"), what],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    return os.path.join(EXAMPLES, "build")
