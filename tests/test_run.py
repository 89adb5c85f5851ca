"""`computeshare run` and the run a provider makes: one code path (`computeshare.local_run`),
the same result for a client's test, a worker and an arbiter."""

from __future__ import annotations

import gzip
import json
import os
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from computeshare import cas, local_run
from computeshare.cli import main
from computeshare.metering import COST_TABLE_VERSION
from computeshare.sandbox import (
    STATUS_INVALID,
    STATUS_OK,
    STATUS_TRAP,
    RunResult,
    keccak,
    module_hash,
)
from computeshare.workloads import WorkloadError, decode_spec, encode_spec, execute
from tests.debian import build_examples

FUEL = 10**12


@pytest.fixture(scope="module")
def programs() -> Path:
    return Path(build_examples("c", "clang"))


@pytest.fixture
def reads(tmp_path) -> Path:
    """An input directory: a few hundred KiB of DNA letters in two files."""
    folder = tmp_path / "reads"
    (folder / "more").mkdir(parents=True)
    rng = random.Random(7)
    (folder / "a.fa").write_text("".join(rng.choice("ACGT") for _ in range(300_000)))
    (folder / "more" / "b.fa").write_text("".join(rng.choice("ACGT") for _ in range(50_000)))
    return folder


def run_cli(*args: str):
    return CliRunner().invoke(main, ["run", *args])


def test_run_prints_status_fuel_and_output_root_and_json(programs, reads, tmp_path):
    module = str(programs / "conformance-c.wasm")
    out = tmp_path / "out"
    text = run_cli(module, "--input", str(reads), "--arg", "x", "--output", str(out))
    assert text.exit_code == 0, text.output
    assert "status       ok (0)" in text.output
    root = text.output.split("output root  ")[1].split()[0]
    assert root.startswith("0x") and len(root) == 66
    assert (out / "report.txt").is_file()
    # The same run as one JSON object, and the same result every time.
    again = run_cli(module, "--input", str(reads), "--arg", "x", "--json")
    data = json.loads(again.output)
    assert {"status", "fuel", "output_root"} <= set(data)
    assert data["status"] == STATUS_OK and data["output_root"] == root
    assert data["result_hash"] in text.output
    # The output root is the root of the /output directory's pack.
    assert cas.pack_dir(out, tmp_path / "out.pack").root == root[2:]


def test_the_local_run_is_the_providers_run(programs, reads, tmp_path):
    """A wasm spec naming the input tree, run through `workloads.execute` (what the worker
    calls) on the fetched pack, gives the result `computeshare run` printed."""
    module = (programs / "minigzip.wasm").read_bytes()
    info = cas.pack_dir(reads, tmp_path / "in.pack")
    payload = {
        "module": {"sha256": module_hash(module)},
        "fuel": FUEL,
        "cost_table": COST_TABLE_VERSION,
        "args": ["-c", "/input/more/b.fa"],
        "inputs": info.spec(["http://127.0.0.1:1/cas/"]),
    }
    job = decode_spec(encode_spec("wasm", payload))
    result = execute(job, module, inputs=info.path, seed=b"\x01" * 32)
    assert result.status == STATUS_OK and not result.output_root
    assert gzip.decompress(result.output) == (reads / "more" / "b.fa").read_bytes()
    printed = json.loads(
        run_cli(
            str(programs / "minigzip.wasm"), "--input", str(reads), "--arg", "-c",
            "--arg", "/input/more/b.fa", "--seed", "0x" + "01" * 32, "--json",
        ).output
    )  # fmt: skip
    assert printed["result_hash"] == "0x" + result.digest().hex()
    assert printed["input_root"] == "0x" + info.root
    # A spec naming inputs cannot run without them, nor a pack without a spec naming one.
    with pytest.raises(WorkloadError, match="input tree"):
        execute(job, module)


def test_a_tree_result_commits_to_stdout_and_the_root():
    plain = RunResult(STATUS_OK, 5, b"hi")
    assert plain.output_hash() == keccak(b"hi")
    tree = RunResult(STATUS_OK, 5, b"hi", b"\x07" * 32)
    assert tree.output_hash() == keccak(b"computeshare-tree" + keccak(b"hi") + b"\x07" * 32)
    assert tree.digest() != plain.digest()
    assert RunResult.from_json(tree.to_json()) == tree
    with pytest.raises(ValueError):
        RunResult.from_json({**tree.to_json(), "output_root": "07" * 31})


def test_bad_runs_get_one_line(programs, reads, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    module = str(programs / "conformance-c.wasm")
    refused = run_cli(module, "--output", str(tmp_path / "full"))
    assert refused.exit_code != 0 and "is not empty" in refused.output
    assert len(refused.output.strip().splitlines()) == 1
    bad_env = run_cli(module, "--env", "NOEQUALS")
    assert bad_env.exit_code != 0 and "NAME=value" in bad_env.output
    garbage = tmp_path / "garbage.wasm"
    garbage.write_bytes(b"\x00asm garbage")
    result = json.loads(run_cli(str(garbage), "--json").output)
    assert result["status"] == STATUS_INVALID and result["fuel"] == 0
    # An input directory holding a symlink is refused before anything runs.
    os.symlink("/etc/passwd", reads / "link")
    linked = run_cli(module, "--input", str(reads))
    assert linked.exit_code != 0 and "symbolic link" in linked.output
    assert "Traceback" not in linked.output


def test_run_takes_a_memory_limit_up_to_four_gibibytes(tmp_path):
    """wasm32's whole memory: the module grows to 65,536 pages, and one more page is -1."""
    import wasmtime

    module = tmp_path / "grow.wasm"
    module.write_bytes(
        wasmtime.wat2wasm(
            """(module
              (memory (export "memory") 1)
              (func (export "_start")
                (drop (memory.grow (i32.const 65535)))
                (i32.store (i32.const -4) (i32.const 7))
                (if (i32.ne (i32.load (i32.const -4)) (i32.const 7)) (then unreachable))
                (if (i32.ne (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))))"""
        )
    )
    limit = str(4 << 30)
    result = run_cli(str(module), "--memory-limit", limit, "--fuel", str(10**11), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["status"] == STATUS_OK
    too_big = run_cli(str(module), "--memory-limit", str((4 << 30) + 65_536))
    assert too_big.exit_code != 0 and "memory_limit" in too_big.output
    assert len(too_big.output.strip().splitlines()) == 1
    small = run_cli(str(module), "--memory-limit", str(1 << 30), "--json")
    assert json.loads(small.output)["status"] == STATUS_TRAP  # the grow fails, the store traps


def test_output_is_printed_without_terminal_control_sequences(tmp_path):
    from computeshare.cli.run import printable

    assert printable(b"ok\x1b]0;pwned\x07\n") == "ok\\x1b]0;pwned\\x07\n"


def test_local_run_refuses_a_used_output_directory(programs, tmp_path):
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "f").write_text("f")
    with pytest.raises(ValueError, match="not empty"):
        local_run.run_module(
            (programs / "conformance-c.wasm").read_bytes(),
            fuel=FUEL,
            output_dir=tmp_path / "used",
            store=cas.Cache(tmp_path / "store"),
        )


def test_a_module_by_tree_is_fetched_verified_and_cached(programs, tmp_path):
    """A module too large for the spec travels as a tree of one file, served by a data
    store (`computeshare data serve`) and fetched chunk by chunk against its root."""
    from computeshare.workloads import module_pack, resolve_module, wasm_spec

    module = (programs / "conformance-c.wasm").read_bytes()
    store = cas.Cache(tmp_path / "store")
    with cas.ChunkServer(store) as server:
        info = module_pack(module, store)
        spec = wasm_spec(module, fuel=FUEL, module_tree=info.spec([server.url]))
        assert len(spec) < 1_024  # the module does not travel in the spec
        ref = decode_spec(spec).input.module
        assert resolve_module(ref, tmp_path / "provider") == module
        served = server.requests
        assert resolve_module(ref, tmp_path / "provider") == module  # from the cache
        assert server.requests == served
        # A tree of two files, or of another module, is refused with its reason.
        two = tmp_path / "two"
        two.mkdir()
        (two / "module.wasm").write_bytes(module)
        (two / "extra").write_bytes(b"x")
        other = store.add_dir(two)
        for tree, reason in (
            (other.spec([server.url]), "holds one file"),
            (module_pack(b"\x00asm\x01\x00\x00\x00", store).spec([server.url]), "does not hash"),
        ):
            bad = wasm_spec(module, fuel=FUEL, module_tree=tree)
            with pytest.raises(WorkloadError, match=reason):
                resolve_module(decode_spec(bad).input.module, tmp_path / "other")


def test_the_demos_prebuilt_program_is_its_source_built_here(programs):
    """`make demo` runs examples/prebuilt/gztree.wasm, so a fresh machine needs no compiler:
    the file is exactly what examples/build.sh makes from the sources in the repository."""
    prebuilt = Path(__file__).parent.parent / "examples" / "prebuilt" / "gztree.wasm"
    assert prebuilt.read_bytes() == (programs / "gztree.wasm").read_bytes()


def test_in_process_and_in_two_workers_the_result_is_the_same(programs, reads, tmp_path):
    """The conformance program with an input tree fetched from a data store: run here and
    in two worker processes (each fetching into a cache of its own), the same status,
    fuel, stdout and output root."""
    from computeshare import worker

    module = (programs / "conformance-c.wasm").read_bytes()
    store = cas.Cache(tmp_path / "store")
    seed = b"\x05" * 32
    with cas.ChunkServer(store) as server:
        info = store.add_dir(reads)
        spec = encode_spec(
            "wasm",
            {
                "module": {"sha256": module_hash(module)},
                "fuel": FUEL,
                "cost_table": COST_TABLE_VERSION,
                "args": ["x"],
                "env": ["GREETING=hi"],
                "inputs": info.spec([server.url]),
            },
        )
        here = execute(decode_spec(spec), module, inputs=info.path, seed=seed)
        results = [
            worker.run(
                spec,
                module,
                120,
                job_id=seed,
                trees=tmp_path / f"trees-{n}",
                outputs=tmp_path / f"outputs-{n}",
                max_input=1 << 30,
            )
            for n in range(2)
        ]
    assert here.status == STATUS_OK and len(here.output_root) == 32
    assert results == [here, here]
    for n in range(2):  # each worker left its output tree in its store, to serve
        assert cas.Cache(tmp_path / f"outputs-{n}").has(here.output_root.hex())
