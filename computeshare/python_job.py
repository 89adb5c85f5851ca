"""Python jobs: a script run by CPython 3.11.2 built for WASI, on a content-addressed stdlib.

Why a module: the interpreter, its standard library and the fixed arguments and environment
that make every replica agree are pinned together here; `computeshare client post --python`
and tests build a job from them, and a run is then an ordinary wasm job (`workloads`).

The interpreter is `python.wasm`, built reproducibly from hash-pinned sources by
`examples/python/build-cpython.sh` (its SHA-256 is `PYTHON_WASM_SHA256`); its standard library
is the build's `lib/` as a `.tar.xz` (`STDLIB_ARCHIVE`, `STDLIB_SHA256`; the files it holds
pack to the tree `STDLIB_ROOT`). Both are committed under `examples/prebuilt/`; another
folder holding the same two files can be named by `$COMPUTESHARE_PYTHON`.

A job's input tree (mounted at /input):

    /input/.python/lib/python3.11/...   the standard library (PYTHONHOME=/input/.python)
    /input/.python/main.py              the script
    /input/...                          the files of the job's own input directory, if any

and its arguments and environment: `python.wasm /input/.python/main.py ARGS...` with
`PYTHONHOME=/input/.python`, `PYTHONHASHSEED=0` (string hashing, hence set and dict order,
the same on every replica; without it the seed comes from `random_get`) and
`PYTHONDONTWRITEBYTECODE=1` (/input is read-only). The script writes result files under
/output and prints to stdout, like any job.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

PYTHON_VERSION = "3.11.2"
PYTHON_WASM = "python.wasm"
PYTHON_WASM_SHA256 = "ddda405e1287b8f0aa4657c922c0167dbdd6df4b53a267db164927c544eab1cf"
STDLIB_ARCHIVE = "python-3.11.2-stdlib.tar.xz"
STDLIB_SHA256 = "1ece92adc5a66fb23a870e34541c218baea5d3028d3a1f938ae52e7b9d1b7a6c"
# The pack root (`computeshare.cas`) of the archive's files as a tree (`lib/python3.11/...`).
STDLIB_ROOT = "c992f7cb30defbe8a64145a99450e2e7179000f2637466c356b2ac3ff12ad73f"
PYTHON_DIR_ENV = "COMPUTESHARE_PYTHON"
PREBUILT = Path(__file__).resolve().parent.parent / "examples" / "prebuilt"

HOME = ".python"  # the interpreter's folder in /input
SCRIPT = f"/input/{HOME}/main.py"
ENV = (f"PYTHONHOME=/input/{HOME}", "PYTHONHASHSEED=0", "PYTHONDONTWRITEBYTECODE=1")
# Fuel of the README's figures (cost table 3): a hello-world 1.5 * 10**10, a script importing
# json and hashlib 3.2 * 10**10. The default gives a script about 12 times the latter and is
# 57 s at R_FLOOR, within `client post`'s default --compute-seconds of 60.
DEFAULT_FUEL = 4 * 10**11


class PythonJobError(ValueError):
    """The interpreter is missing or not the pinned one, or the job's files cannot be used."""


@dataclass(frozen=True)
class Interpreter:
    module: bytes
    stdlib: Path  # the archive


def interpreter_dir() -> Path:
    return Path(os.environ.get(PYTHON_DIR_ENV) or PREBUILT)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def interpreter(folder: Path | None = None) -> Interpreter:
    """The pinned interpreter and stdlib archive from `folder` (default: `$COMPUTESHARE_PYTHON`,
    else the repository's `examples/prebuilt`); `PythonJobError` with one line saying how to
    get them when either is missing or differs from its pinned hash."""
    folder = folder or interpreter_dir()
    how = (
        f"{PYTHON_WASM} and {STDLIB_ARCHIVE} are in the repository's examples/prebuilt/; or "
        "build them (examples/python/build-cpython.sh, then examples/python/pack-stdlib.py) "
        f"into a folder named by ${PYTHON_DIR_ENV}"
    )
    wasm, stdlib = folder / PYTHON_WASM, folder / STDLIB_ARCHIVE
    for path, pinned in ((wasm, PYTHON_WASM_SHA256), (stdlib, STDLIB_SHA256)):
        if not path.is_file():
            raise PythonJobError(f"no CPython for WASI at {path}: {how}")
        if _sha256(path) != pinned:
            raise PythonJobError(f"{path} is not the pinned build (SHA-256 {pinned[:16]}...)")
    return Interpreter(wasm.read_bytes(), stdlib)


def extract_stdlib(archive: Path, into: Path) -> None:
    """The archive's files under `into` (`into/lib/python3.11/...`)."""
    with tarfile.open(archive, "r:xz") as tar:
        tar.extractall(into, filter="data")


def job_tree(
    script: Path, input_dir: Path | None, into: Path, found: Interpreter | None = None
) -> Interpreter:
    """Lays out a Python job's input tree in the empty or new folder `into` (the layout in
    the module's docstring) and returns the interpreter it was made for."""
    found = found or interpreter()
    if not script.is_file():
        raise PythonJobError(f"{script} is not a file")
    if input_dir is not None and (input_dir / HOME).exists():
        raise PythonJobError(f"{input_dir} holds {HOME}, where the interpreter goes")
    into.mkdir(parents=True, exist_ok=True)
    if any(into.iterdir()):
        raise PythonJobError(f"{into} is not empty")
    if input_dir is not None:
        shutil.copytree(input_dir, into, symlinks=True, dirs_exist_ok=True)
    extract_stdlib(found.stdlib, into / HOME)
    shutil.copyfile(script, into / HOME / "main.py")
    return found


def job_args(args: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The interpreter's arguments: the script, then its own."""
    return [SCRIPT, *args]


def job_env(env: tuple[str, ...] | list[str] = ()) -> list[str]:
    """The fixed environment, then the job's own variables (`PythonJobError` for one that
    would change a fixed one)."""
    fixed = {item.partition("=")[0] for item in ENV}
    for item in env:
        if item.partition("=")[0] in fixed:
            raise PythonJobError(f"{item.partition('=')[0]} is fixed for Python jobs")
    return [*ENV, *env]
