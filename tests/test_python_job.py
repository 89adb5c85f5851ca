"""Python jobs for real: the committed CPython 3.11.2 for WASI (`examples/prebuilt/`) runs a
script on its stdlib input tree in the sandbox, to the same status, fuel and output root in
this process, in worker processes and through `computeshare run`; `client post --python`
posts the job its trees travel with, and a provider's agent runs it to a result; hostile
scripts end as deterministic traps or out of fuel."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from computeshare import cas, python_job, worker
from computeshare.cli import main
from computeshare.client import ComputeShare
from computeshare.results import ResultServer
from computeshare.sandbox import STATUS_OK, STATUS_OUT_OF_FUEL, STATUS_TRAP
from computeshare.workloads import decode_spec, execute, wasm_spec
from tests.helpers import one_line_error
from tests.test_agent import agent_for, run_until_final

ROOT = Path(__file__).parent.parent
FUEL = 10**12
DATA = b"name,value\na,10\nb,12\nc,20\n"
JOB = """\
import hashlib, json
data = open("/input/data.csv", "rb").read()
rows = [line.split(",") for line in data.decode().splitlines()[1:]]
result = {"rows": len(rows), "total": sum(int(r[1]) for r in rows),
          "sha256": hashlib.sha256(data).hexdigest(), "order": list({"b", "a", "c"})}
with open("/output/result.json", "w") as f:
    json.dump(result, f, sort_keys=True)
print(json.dumps(result, sort_keys=True))
"""
# Recursion in C (repr of nested lists, the recursion limit lifted): the wasm stack deepens
# until the metering's counted budget traps.
DEEP = """\
import sys
sys.setrecursionlimit(10**7)
x = []
for _ in range(20_000):
    x = [x]
print(len(repr(x)))
"""
SPIN = "while True:\n    pass\n"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """One prepared-module cache for the module: python.wasm is compiled once."""
    folder = tmp_path_factory.mktemp("prepared")
    folder.chmod(0o700)
    return folder


@pytest.fixture(scope="module")
def interpreter() -> python_job.Interpreter:
    return python_job.interpreter()


def script(tmp_path: Path, text: str, name: str = "job.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "data.csv").write_bytes(DATA)
    return folder


def expected_result() -> dict:
    return {"rows": 3, "total": 42, "sha256": hashlib.sha256(DATA).hexdigest()}


def spec_for(interpreter, tree_info: cas.PackInfo, uri: str, fuel: int = FUEL, **extra) -> bytes:
    return wasm_spec(
        interpreter.module,
        fuel=fuel,
        inline=False,
        args=python_job.job_args(),
        env=python_job.job_env(),
        inputs=tree_info.spec([uri]),
        **extra,
    )


def test_the_committed_interpreter_and_stdlib_are_the_pinned_builds(tmp_path):
    prebuilt = ROOT / "examples" / "prebuilt"
    readme = (ROOT / "examples" / "python" / "README.md").read_text()
    wasm = hashlib.sha256((prebuilt / python_job.PYTHON_WASM).read_bytes()).hexdigest()
    archive = hashlib.sha256((prebuilt / python_job.STDLIB_ARCHIVE).read_bytes()).hexdigest()
    assert wasm == python_job.PYTHON_WASM_SHA256
    assert archive == python_job.STDLIB_SHA256
    pinned = re.findall(r"\b[0-9a-f]{64}\b", readme)
    assert {wasm, archive, python_job.STDLIB_ROOT} <= set(pinned), "the README pins all three"
    python_job.extract_stdlib(prebuilt / python_job.STDLIB_ARCHIVE, tmp_path / "tree")
    info = cas.pack_dir(tmp_path / "tree", tmp_path / "stdlib.pack")
    assert info.root == python_job.STDLIB_ROOT
    assert (tmp_path / "tree" / "lib" / "python3.11" / "json" / "__init__.py").is_file()


def test_without_the_interpreter_the_job_is_refused_in_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv(python_job.PYTHON_DIR_ENV, str(tmp_path))
    job = script(tmp_path, "print(1)\n")
    result = CliRunner().invoke(main, ["run", "--python", str(job)], catch_exceptions=False)
    one_line_error(result, f"no CPython for WASI at {tmp_path / python_job.PYTHON_WASM}")
    assert "build-cpython.sh" in result.output
    (tmp_path / python_job.PYTHON_WASM).write_bytes(b"\0asm\1\0\0\0")
    (tmp_path / python_job.STDLIB_ARCHIVE).write_bytes(b"")
    result = CliRunner().invoke(main, ["run", "--python", str(job)], catch_exceptions=False)
    one_line_error(result, "is not the pinned build")


def test_a_script_agrees_in_process_in_two_workers_and_through_computeshare_run(
    tmp_path, prepared, interpreter
):
    job, data = script(tmp_path, JOB), data_dir(tmp_path)
    tree = tmp_path / "tree"
    python_job.job_tree(job, data, tree, interpreter)
    store = cas.Cache(tmp_path / "store")
    seed = b"\x07" * 32
    with cas.ChunkServer(store) as server:
        info = store.add_dir(tree)
        spec = spec_for(interpreter, info, server.url)
        assert len(spec) < 1_024
        out = tmp_path / "out"
        here = execute(
            decode_spec(spec), interpreter.module, inputs=info.path, output_dir=out,
            seed=seed, prepared=prepared,
        )  # fmt: skip
        results = [
            worker.run(
                spec,
                interpreter.module,
                300,
                job_id=seed,
                prepared=prepared,
                trees=tmp_path / f"trees-{n}",
                outputs=tmp_path / f"outputs-{n}",
                max_input=1 << 30,
            )
            for n in range(2)
        ]
    assert here.status == STATUS_OK, here
    printed = json.loads(here.output)
    assert {k: printed[k] for k in ("rows", "total", "sha256")} == expected_result()
    assert sorted(printed["order"]) == ["a", "b", "c"]  # in the order every replica gives
    assert json.loads((out / "result.json").read_text()) == printed
    assert len(here.output_root) == 32 and here.fuel > 10**9
    assert results == [here, here]
    # `computeshare run`, as a client tries it: the script form and the raw module form.
    runner = CliRunner()
    common = ["--input", str(data), "--prepared", str(prepared), "--json"]
    shown = runner.invoke(main, ["run", "--python", str(job), *common], catch_exceptions=False)
    assert shown.exit_code == 0, shown.output
    summary = json.loads(shown.output)
    assert (summary["status"], summary["fuel"]) == (STATUS_OK, here.fuel)
    assert summary["output_root"] == "0x" + here.output_root.hex()
    assert summary["input_root"] == "0x" + info.root
    raw = ROOT / "examples" / "prebuilt" / python_job.PYTHON_WASM
    flags = [f"--arg={python_job.SCRIPT}", *(f"--env={item}" for item in python_job.ENV)]
    low = ["run", str(raw), "--input", str(tree), *flags, "--prepared", str(prepared), "--json"]
    again = runner.invoke(main, low, catch_exceptions=False)
    assert json.loads(again.output) == summary


@pytest.mark.parametrize(
    ("text", "fuel", "status"),
    [(DEEP, FUEL, STATUS_TRAP), (SPIN, 5 * 10**10, STATUS_OUT_OF_FUEL)],
    ids=["c-recursion", "endless-loop"],
)
def test_hostile_scripts_end_deterministically(tmp_path, prepared, interpreter, text, fuel, status):
    tree = tmp_path / "tree"
    python_job.job_tree(script(tmp_path, text), None, tree, interpreter)
    store = cas.Cache(tmp_path / "store")
    with cas.ChunkServer(store) as server:
        info = store.add_dir(tree)
        results = [
            execute(
                spec_for(interpreter, info, server.url, fuel, memory_limit=limit),
                interpreter.module,
                inputs=info.path,
                prepared=prepared,
            )
            for limit in (64 << 20, 256 << 20)  # one price tier: memory is not what stops it
        ]
        spec = spec_for(interpreter, info, server.url, fuel)
        results.append(
            worker.run(
                spec,
                interpreter.module,
                300,
                prepared=prepared,
                trees=tmp_path / "trees",
                max_input=1 << 30,
            )
        )
    assert {result.status for result in results} == {status}
    assert len(set(results)) == 1
    if status == STATUS_OUT_OF_FUEL:
        assert results[0].fuel == fuel
    else:
        assert results[0].output == b"" and results[0].fuel < FUEL


def test_client_post_python_runs_through_a_provider_to_a_result(
    cli, deployed_manifest, chain, accounts, tmp_path, prepared, interpreter, monkeypatch
):
    """`client post --python` on the local node: the spec it posts, a provider's agent that
    fetches both trees, runs the job in its worker and commits, and the client's result."""
    monkeypatch.setenv("COMPUTESHARE_STORE", str(tmp_path / "client-store"))
    job, data = script(tmp_path, JOB), data_dir(tmp_path)
    store = cas.Cache(tmp_path / "client-store")
    provider = tmp_path / "provider"
    provider.mkdir()
    shutil.copytree(prepared, provider / "prepared")  # the interpreter compiled once, above
    with cas.ChunkServer(store) as data_server:
        posted = cli(
            "client", "post", "--python", str(job), "--input", str(data), "--arg", "x",
            "--data-uri", data_server.url, "--price", "10", account=12,
        )  # fmt: skip
        assert posted.exit_code == 0, posted.output
        job_id = bytes.fromhex(posted.output.split()[-1].removeprefix("0x"))
        cs = ComputeShare.from_manifest(deployed_manifest, account=accounts[12])
        events = list(cs.escrow.JobPosted.range(cs.jobs.start_block, chain.blocks.height + 1))
        spec = bytes(events[-1].spec)
        wasm = decode_spec(spec).input
        assert wasm.module.sha256 == python_job.PYTHON_WASM_SHA256 and wasm.module.tree
        assert wasm.args == [python_job.SCRIPT, "x"] and wasm.env == list(python_job.ENV)
        assert wasm.fuel == python_job.DEFAULT_FUEL and len(spec) < 1_024
        agent = agent_for(deployed_manifest, accounts[4], provider)
        server = ResultServer(agent.journal, outputs=agent.data / "outputs").start()
        try:
            run_until_final(chain, cs, job_id, [agent])
            result = cs.result(job_id, [server.url])
        finally:
            server.stop()
    assert result.status == STATUS_OK, result
    printed = json.loads(result.output)
    assert {k: printed[k] for k in ("rows", "total", "sha256")} == expected_result()
    assert len(result.output_root) == 32
    assert agent.journal.done["0x" + job_id.hex()]["outcome"] == "completed"
    one_line_error(
        cli("client", "post", "--python", str(job), "--wasm", "matmul", "--price", "1", account=12),
        "--python takes no --workload or --wasm",
    )
    monkeypatch.setenv(python_job.PYTHON_DIR_ENV, str(tmp_path / "nowhere"))
    one_line_error(
        cli("client", "post", "--python", str(job), "--data-uri", "http://x/", "--price", "1",
            account=12),
        "no CPython for WASI at",
    )  # fmt: skip
