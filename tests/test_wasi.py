"""WASI preview1 in the sandbox: unmodified C and Rust programs, built here with Debian's
toolchains, get the same result (status, fuel, stdout and /output files) on every run and
optimisation level; escapes are refused, quotas hold, clocks and randomness are virtual."""

from __future__ import annotations

import gzip
import hashlib
import re
import struct
import subprocess
from pathlib import Path

import pytest
import wasmtime

from computeshare import sandbox, wasi
from computeshare.sandbox import STATUS_OK, STATUS_TRAP, HostError, check, run
from tests.debian import build_examples

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
BUILD = EXAMPLES / "build"
FUEL = 10**12
HELLO = b"hello, world\nsecond line\n"
NUMBERS = b"0123456789\n"


def _build(what: str, compiler: str) -> None:
    build_examples(what, compiler)


@pytest.fixture(scope="module")
def c_programs() -> Path:
    _build("c", "clang")
    return BUILD


@pytest.fixture(scope="module")
def rust_programs() -> Path:
    _build("rust", "/usr/bin/rustc")
    return BUILD


@pytest.fixture
def inputs(tmp_path) -> dict:
    """Two input files served from byte ranges of one host file (as from a pack)."""
    pack = tmp_path / "pack"
    pack.write_bytes(b"HEADER" + HELLO + NUMBERS + b"TRAILER")
    return {
        "hello.txt": (pack, 6, len(HELLO)),
        "data/numbers.txt": (pack, 6 + len(HELLO), len(NUMBERS)),
    }


def _run(module: bytes, tmp_path: Path, tag: str, **kwargs) -> tuple[sandbox.RunResult, dict]:
    out = tmp_path / f"out-{tag}"
    out.mkdir()
    result = run(module, "_start", kwargs.pop("stdin", b""), FUEL, output_dir=out, **kwargs)
    return result, wasi.output_files(out)


@pytest.mark.parametrize("language", ["c", "rust"])
def test_conformance_programs_pass_and_are_deterministic(language, inputs, tmp_path, request):
    built = request.getfixturevalue(f"{language}_programs")
    module = (built / f"conformance-{language}.wasm").read_bytes()
    config = {
        "args": ["one", "two"],
        "env": [("GREETING", "hi")],
        "inputs": inputs,
        "seed": b"job-1",
    }
    runs = [
        _run(module, tmp_path, level, opt_level=level, **config) for level in sandbox.OPT_LEVELS
    ]
    runs.append(_run(module, tmp_path, "again", **config))
    first, files = runs[0]
    assert all(other == runs[0] for other in runs[1:])
    report = first.output.decode()
    assert first.status == STATUS_OK, report
    assert "FAILED" not in report and "ALLOWED" not in report, report
    assert report.endswith("done\n")
    assert f"open /input/../../etc/passwd: refused errno={wasi.NOTCAPABLE}" in report
    # Paths under no preopen: wasi-libc asks the host (ENOTCAPABLE), Rust's std refuses
    # them itself (an error without an errno).
    outside = wasi.NOTCAPABLE if language == "c" else -1
    for escape in ("open ../etc/passwd", "open /etc/passwd"):
        assert f"{escape}: refused errno={outside}" in report
    assert f"rename ../escape: refused errno={wasi.NOTCAPABLE}" in report
    assert f"rename across preopens: refused errno={wasi.XDEV}" in report
    dots = ". .. " if language == "c" else ""  # Rust's read_dir skips them
    assert f"list /input: {dots}data hello.txt" in report
    assert f"list /output: {dots}report.txt sub" in report
    assert files["sub/b.txt"] == b"first name\nappended\n"
    assert set(files) == {"report.txt", "sub/b.txt"}
    # The seed, not the run, decides the random bytes; the clock starts at the epoch.
    other = _run(module, tmp_path, "seed", **{**config, "seed": b"job-2"})[0].output.decode()
    random_line = next(line for line in report.splitlines() if line.startswith("random "))
    assert random_line not in other
    assert "realtime 1735689600." in report


def test_c_conformance_reads_its_inputs(c_programs, inputs, tmp_path):
    module = (c_programs / "conformance-c.wasm").read_bytes()
    report = _run(module, tmp_path, "c", inputs=inputs)[0].output.decode()
    assert "hello.txt: hello, world\n" in report
    assert f"size {len(HELLO)} regular 1" in report
    assert "pread 5: 34567" in report
    assert "write /input/new: refused errno=69" in report  # EROFS
    assert "symlink /tmp/link: refused errno=58" in report  # ENOTSUP
    assert "argv[0] job" in report


@pytest.mark.parametrize(
    ("where", "errno"), [("/tmp", wasi.NOSPC), ("/output", wasi.NOSPC), ("/input", wasi.ROFS)]
)
def test_filling_past_a_quota_gets_enospc_deterministically(
    where, errno, c_programs, tmp_path, monkeypatch
):
    monkeypatch.setattr(wasi, "TMP_QUOTA", 1 << 20)
    module = (c_programs / "conformance-c.wasm").read_bytes()
    config = {"args": ["fill", where], "output_quota": 3 << 19}
    first = _run(module, tmp_path, "1", **config)
    assert first == _run(module, tmp_path, "2", **config)
    result, files = first
    if where == "/input":
        assert result.output == f"open /input/fill: errno={errno}\n".encode()
        return
    quota = {"/tmp": 1 << 20, "/output": 3 << 19}[where]
    assert result.output.decode().splitlines() == [
        f"fill {where}: {quota} bytes, then errno={errno}",
        f"size {quota}",
    ]
    assert result.status == STATUS_OK
    if where == "/output":
        assert files == {"fill": b"x" * quota}


def test_too_many_files_gets_enospc(c_programs, tmp_path, monkeypatch):
    monkeypatch.setattr(wasi, "MAX_OUTPUT_FILES", 5)
    monkeypatch.setattr(wasi, "MAX_TMP_FILES", 7)
    module = (c_programs / "conformance-c.wasm").read_bytes()
    out = _run(module, tmp_path, "o", args=["files", "/output", "50"])
    assert out[0].output.decode().splitlines() == [
        f"files /output: 5 created, then errno={wasi.NOSPC}",
        "listed 7 entries, sorted, last f4",
    ]
    assert sorted(out[1]) == [f"f{i}" for i in range(5)]
    tmp = _run(module, tmp_path, "t", args=["files", "/tmp", "50"])[0]
    assert tmp.output.decode().startswith(f"files /tmp: 7 created, then errno={wasi.NOSPC}\n")


def test_a_large_directory_lists_completely_in_order(c_programs, tmp_path):
    """3,000 names: wasi-libc pages through fd_readdir with cookies; byte order."""
    module = (c_programs / "conformance-c.wasm").read_bytes()
    result = _run(module, tmp_path, "big", args=["files", "/tmp", "3000"])[0]
    assert result.output.decode().splitlines() == [
        "files /tmp: 3000 created",
        "listed 3002 entries, sorted, last f999",
    ]


def test_minigzip_compresses_and_decompresses(c_programs, tmp_path):
    """zlib's own minigzip, unmodified: its gzip stream is what Python's gzip reads."""
    module = (c_programs / "minigzip.wasm").read_bytes()
    corpus = b"".join(
        b"line %d of a corpus that compresses well\n" % (i % 97) for i in range(20_000)
    )
    source = tmp_path / "corpus"
    source.write_bytes(corpus)
    inputs = {"corpus": (source, 0, len(corpus))}
    packed = _run(module, tmp_path, "z", args=["-c", "/input/corpus"], inputs=inputs)[0]
    assert packed.status == STATUS_OK
    assert len(packed.output) < len(corpus) // 10
    assert gzip.decompress(packed.output) == corpus
    gz = tmp_path / "corpus.gz"
    gz.write_bytes(gzip.compress(corpus[:50_000]))
    inputs = {"corpus.gz": (gz, 0, gz.stat().st_size)}
    args = ["-d", "-c", "/input/corpus.gz"]
    unpacked = _run(module, tmp_path, "d", args=args, inputs=inputs)[0]
    assert (unpacked.status, unpacked.output) == (STATUS_OK, corpus[:50_000])
    from_stdin = _run(module, tmp_path, "s", args=["-d"], stdin=gzip.compress(b"piped"))[0]
    assert from_stdin.output == b"piped"


def test_every_preview1_function_links(c_programs, tmp_path):
    """A C program taking the address of every __wasi_* function of wasi-libc's api.h
    imports each of them, with the types wasi-libc gives them, and links."""
    names = [n for n in wasi.FUNCTIONS if n != "proc_raise"]  # not in wasi-libc any more
    source = tmp_path / "all.c"
    table = ", ".join(f"(void *)__wasi_{name}" for name in names)
    source.write_text(
        "#include <wasi/api.h>\n#include <stdio.h>\n"
        f"void *volatile all[] = {{{table}}};\n"
        "int main(void) { int n = 0;\n"
        "  for (unsigned i = 0; i < sizeof all / sizeof *all; i++) n += all[i] != 0;\n"
        '  printf("%d\\n", n); return 0; }\n'
    )
    target = tmp_path / "all.wasm"
    subprocess.run(
        ["clang", "--target=wasm32-wasi", "--sysroot=/usr", "-O1", "-o", target, source],
        check=True,
        timeout=300,
    )
    module = target.read_bytes()
    compiled = check(module, "_start")
    assert {i.name for i in compiled.imports} >= set(names)
    assert run(module, "_start", b"", FUEL).output == f"{len(names)}\n".encode()
    imports = (
        "".join(
            f'(import "wasi_snapshot_preview1" "{name}" (func (param {" ".join(map(str, p))})'
            f" (result {' '.join(map(str, r))})))"
            for name, (p, r) in wasi.FUNCTIONS.items()
        )
        .replace("(param )", "")
        .replace("(result )", "")
    )
    everything = bytes(wasmtime.wat2wasm(f'(module {imports} (func (export "_start")))'))
    assert len(check(everything, "_start").imports) == len(wasi.FUNCTIONS) == 46


# ---------------------------------------------------------------- hand-written modules

PRELUDE = """
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func $emit (param $at i32) (param $length i32)
    (i32.store (i32.const 0) (local.get $at))
    (i32.store (i32.const 4) (local.get $length))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func $emit_i32 (param $value i32)
    (i32.store (i32.const 16) (local.get $value))
    (call $emit (i32.const 16) (i32.const 4)))
"""


def wat(body: str, imports: str = "", data: str = "") -> bytes:
    return bytes(wasmtime.wat2wasm(f"(module {imports} {PRELUDE} {data} {body})"))


PATH_OPEN = (
    '(import "wasi_snapshot_preview1" "path_open" (func $path_open '
    "(param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))"
    '(import "wasi_snapshot_preview1" "path_create_directory" (func $mkdir '
    "(param i32 i32 i32) (result i32)))"
)


@pytest.mark.parametrize(
    ("path", "errno"),
    [
        ("../x", wasi.NOTCAPABLE),
        ("a/../../x", wasi.NOTCAPABLE),
        ("/x", wasi.NOTCAPABLE),
        ("/", wasi.NOTCAPABLE),
        ("x\\00y", wasi.INVAL),
        ("\\ff", wasi.ILSEQ),
        ("a" * 256, wasi.NAMETOOLONG),
        ("x/", wasi.ISDIR),
        ("ok", wasi.SUCCESS),
    ],
)
def test_names_that_would_escape_are_refused_on_the_host_too(path, errno, tmp_path):
    """Creating "../x" in /output neither escapes nor leaves anything on the host."""
    length = len(re.sub(r"\\[0-9a-f]{2}", "_", path).encode())
    body = f"""(func (export "_start")
      (call $emit_i32 (call $mkdir (i32.const 4) (i32.const 90) (i32.const 1)))
      (call $emit_i32 (call $path_open (i32.const 4) (i32.const 0) (i32.const 100)
        (i32.const {length}) (i32.const 1) (i64.const 64) (i64.const 0) (i32.const 0)
        (i32.const 32))))"""
    module = wat(body, PATH_OPEN, f'(data (i32.const 90) "a") (data (i32.const 100) "{path}")')
    out = tmp_path / "out"
    out.mkdir()
    result = run(module, "_start", b"", FUEL, output_dir=out)
    assert result.output[4:] == struct.pack("<i", errno)
    made = sorted(p.name for p in tmp_path.rglob("*"))
    assert made == sorted(["out", "a"] + (["ok"] if errno == wasi.SUCCESS else []))


CLOCK_RANDOM = (
    '(import "wasi_snapshot_preview1" "clock_time_get" (func $clock '
    "(param i32 i64 i32) (result i32)))"
    '(import "wasi_snapshot_preview1" "random_get" (func $random (param i32 i32) (result i32)))'
)


def test_clocks_read_fuel_and_random_is_the_seeded_stream():
    body = """(func (export "_start")
      (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 200)))
      (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 208)))
      (drop (call $clock (i32.const 1) (i64.const 1) (i32.const 216)))
      (call $emit (i32.const 200) (i32.const 24))
      (drop (call $random (i32.const 300) (i32.const 40)))
      (call $emit (i32.const 300) (i32.const 40))
      (call $emit_i32 (call $clock (i32.const 9) (i64.const 1) (i32.const 200))))"""
    module = wat(body, CLOCK_RANDOM)
    results = {
        level: run(module, "_start", b"", FUEL, seed=b"s", opt_level=level)
        for level in sandbox.OPT_LEVELS
    }
    result = results["speed"]
    assert len(set(results.values())) == 1
    realtime, first, second = struct.unpack("<QQQ", result.output[:24])
    assert wasi.EPOCH_NS < realtime < wasi.EPOCH_NS + result.fuel
    assert 0 < first < second <= result.fuel
    assert second - first >= wasi.HOST_CALL_FUEL  # a host call's fuel is its time
    seeded = wasi._RANDOM_DOMAIN + struct.pack("<I", 1) + b"s" + bytes(8)
    assert result.output[24:64] == hashlib.shake_256(seeded).digest(40)
    assert result.output[64:] == struct.pack("<i", wasi.INVAL)  # no clock 9


def test_proc_raise_traps_and_sockets_are_not_supported():
    imports = (
        '(import "wasi_snapshot_preview1" "proc_raise" (func $raise (param i32) (result i32)))'
        '(import "wasi_snapshot_preview1" "sock_accept" (func $accept '
        "(param i32 i32 i32) (result i32)))"
    )
    accept = wat(
        '(func (export "_start") (call $emit_i32 '
        "(call $accept (i32.const 3) (i32.const 0) (i32.const 64))))",
        imports,
    )
    assert run(accept, "_start", b"", FUEL).output == struct.pack("<i", wasi.NOTSUP)
    raised = wat('(func (export "_start") (drop (call $raise (i32.const 6))))', imports)
    assert run(raised, "_start", b"", FUEL).status == STATUS_TRAP


def test_host_faults_and_bad_arguments_are_not_results(tmp_path):
    module = wat('(func (export "_start"))')
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_bytes(b"")
    with pytest.raises(ValueError, match="not empty"):
        run(module, "_start", b"", FUEL, output_dir=full)
    with pytest.raises(ValueError, match="not a valid relative path"):
        run(module, "_start", b"", FUEL, inputs={"../x": (full / "x", 0, 0)})
    with pytest.raises(ValueError, match="NUL"):
        run(module, "_start", b"", FUEL, args=["a\0b"])


def test_an_input_shorter_than_promised_is_a_host_error(c_programs, tmp_path):
    short = tmp_path / "short"
    short.write_bytes(b"abc")
    module = (c_programs / "readbench.wasm").read_bytes()
    with pytest.raises(HostError):
        run(module, "_start", b"", FUEL, args=["/input/big"], inputs={"big": (short, 0, 10)})


@pytest.mark.parametrize("value", [0, -1, 65_532, 3, 1 << 31])
def test_every_function_answers_garbage_with_an_errno(value, tmp_path):
    """Each preview1 function called with the same garbage in every argument returns an
    errno (or succeeds): no host exception, no trap, the same answers every time."""
    names = [n for n in wasi.FUNCTIONS if n not in ("proc_exit", "proc_raise")]
    imports = "".join(
        f'(import "wasi_snapshot_preview1" "{name}" (func $w_{name}'
        + (f" (param {' '.join(map(str, p))})" if p else "")
        + " (result i32)))"
        for name, (p, _) in wasi.FUNCTIONS.items()
        if name in names
    )
    calls = "".join(
        f"(call $emit_i32 (call $w_{name} "
        + " ".join(f"({t}.const {value})" for t in map(str, wasi.FUNCTIONS[name][0]))
        + "))"
        for name in names
    )
    module = wat(f'(func (export "_start") {calls})', imports)
    first = _run(module, tmp_path, "1", stdin=b"abc")
    assert first == _run(module, tmp_path, "2", stdin=b"abc")
    result = first[0]
    assert result.status == STATUS_OK
    answers = struct.unpack(f"<{len(names)}i", result.output)
    assert all(0 <= answer <= wasi.NOTCAPABLE for answer in answers)


def test_open_descriptors_are_bounded_and_a_directory_fd_is_a_boundary(tmp_path):
    """Opening /input/data until EMFILE stops at MAX_OPEN_FDS; from that directory's fd,
    "../data/x" is ENOTCAPABLE: ".." may not leave the directory a path is relative to,
    even to come back."""
    body = """(func (export "_start") (local $n i32) (local $errno i32)
      (block $full (loop $more
        (local.set $errno (call $path_open (i32.const 3) (i32.const 0) (i32.const 100)
          (i32.const 4) (i32.const 2) (i64.const 0) (i64.const 0) (i32.const 0)
          (i32.const 32)))
        (br_if $full (local.get $errno))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $more)))
      (call $emit_i32 (local.get $n))
      (call $emit_i32 (local.get $errno))
      (call $emit_i32 (call $path_open (i32.const 6) (i32.const 0) (i32.const 104)
        (i32.const 9) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0)
        (i32.const 32))))"""
    module = wat(body, PATH_OPEN, '(data (i32.const 100) "data../data/x")')
    source = tmp_path / "x"
    source.write_bytes(b"x")
    result = run(module, "_start", b"", FUEL, inputs={"data/x": (source, 0, 1)})
    opened, errno, escape = struct.unpack("<iii", result.output)
    assert (opened, errno) == (wasi.MAX_OPEN_FDS - 6, wasi.MFILE)
    assert escape == wasi.NOTCAPABLE
