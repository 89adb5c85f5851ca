"""The WebAssembly sandbox against hostile modules: whatever a module does, it gets a
deterministic result, never a capability, and never more than its fuel, memory and output."""

from __future__ import annotations

import gc
import struct
import time

import pytest
import wasmtime

from computeshare import metering, worker
from computeshare.sandbox import (
    HOST_CALL_FUEL,
    MAX_FUEL,
    MAX_MEMORY_BYTES,
    MAX_MEMORY_LIMIT,
    MAX_MODULE_BYTES,
    MAX_OUTPUT_BYTES,
    OPT_LEVELS,
    STATUS_INVALID,
    STATUS_OK,
    STATUS_OUT_OF_FUEL,
    STATUS_TRAP,
    HostError,
    ModuleError,
    PreparedCache,
    RunResult,
    check,
    prepare_cached,
    prepare_seconds,
    run,
)
from computeshare.workloads import WorkloadError, decode_spec, encode_spec, pack_u64, wasm_spec

IO = """
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func $emit_i32 (param $value i32)
    (i32.store (i32.const 100) (local.get $value))
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 4))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
"""


def wat(body: str, imports: str = IO) -> bytes:
    return bytes(wasmtime.wat2wasm(f"(module {imports} {body})"))


def start(body: str) -> str:
    return f'(func (export "_start") {body})'


FUEL = 10_000_000


@pytest.mark.parametrize(
    "imported",
    [
        '(import "wasi_snapshot_preview1" "fd_open" (func (param i32) (result i32)))',
        '(import "wasi_unstable" "fd_write" (func (param i32 i32 i32 i32) (result i32)))',
        '(import "wasi" "sock_open" (func (param i32 i32 i32) (result i32)))',
        '(import "env" "system" (func (param i32) (result i32)))',
        '(import "env" "memory" (memory 1))',
        '(import "wasi_snapshot_preview1" "fd_write" (func (param i64) (result i32)))',
        '(import "wasi_snapshot_preview1" "clock_time_get" (func (param i32 i32 i32) (result i32)))',  # noqa: E501
    ],
    ids=["not-preview1", "old-wasi", "sockets", "host", "memory", "wrong-type", "wrong-type-2"],
)
def test_a_module_asking_for_any_other_capability_is_refused(imported):
    module = wat(start("nop"), imports=imported)
    with pytest.raises(ModuleError):
        check(module, "_start")
    assert run(module, "_start", b"", FUEL).status == STATUS_INVALID


@pytest.mark.parametrize(
    "text",
    [
        '(memory (export "memory") 1 1 shared) ' + start("nop"),  # threads
        start("(drop (i32x4.splat (i32.const 1)))"),  # SIMD
        f'(memory (export "memory") {MAX_MEMORY_LIMIT // 65_536 + 1}) '
        + start("nop"),  # above the memory bound
    ],
    ids=["threads", "simd", "huge-initial-memory"],
)
def test_features_outside_the_deterministic_subset_are_refused(text):
    module = bytes(wasmtime.wat2wasm(f"(module {text})"))
    assert run(module, "_start", b"", FUEL).status == STATUS_INVALID


def test_garbage_and_missing_exports_are_invalid():
    assert run(b"\x00asm garbage", "_start", b"", FUEL).status == STATUS_INVALID
    assert run(wat(start("nop")), "main", b"", FUEL).status == STATUS_INVALID
    takes_args = wat('(func (export "_start") (param i32))')
    assert run(takes_args, "_start", b"", FUEL).status == STATUS_INVALID


def test_an_infinite_loop_runs_out_of_its_fuel_exactly():
    result = run(wat(start("(loop $l (br $l))")), "_start", b"", FUEL)
    assert (result.status, result.fuel) == (STATUS_OUT_OF_FUEL, FUEL)


def test_a_memory_bomb_gets_minus_one_not_memory():
    """A refused grow costs its instruction; a granted one its pages
    (`CostTable.memory_grow_page` fuel each)."""
    pages = MAX_MEMORY_BYTES // 65_536
    grown = run(
        wat(start(f"(call $emit_i32 (memory.grow (i32.const {pages})))")),
        "_start",
        b"",
        FUEL,
        memory_limit=MAX_MEMORY_BYTES,
    )
    assert (grown.status, grown.output) == (STATUS_OK, struct.pack("<i", -1))
    module = wat(start(f"(call $emit_i32 (memory.grow (i32.const {pages - 1})))"))
    fuel = pages * metering.COSTS.memory_grow_page + 10**7
    fits = run(module, "_start", b"", fuel, memory_limit=MAX_MEMORY_BYTES)
    assert fits.output == struct.pack("<i", 1)  # the old size in pages
    assert run(module, "_start", b"", FUEL, memory_limit=MAX_MEMORY_BYTES).status == (
        STATUS_OUT_OF_FUEL
    )


def test_deep_recursion_traps_without_harming_the_host():
    module = wat("(func $f (call $f)) " + start("(call $f)"))
    assert run(module, "_start", b"", FUEL).status == STATUS_TRAP
    assert run(module, "_start", b"", FUEL) == run(module, "_start", b"", FUEL)


def test_output_beyond_the_bound_traps_and_is_cut():
    body = start(
        "(i32.store (i32.const 0) (i32.const 0)) (i32.store (i32.const 4) (i32.const 60000))"
        "(loop $l (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))"
        " (br $l))"
    )
    result = run(wat(body), "_start", b"", 10**9)
    assert result.status == STATUS_TRAP
    assert len(result.output) <= MAX_OUTPUT_BYTES


@pytest.mark.parametrize(
    ("fd", "iovec", "errno"),
    [(0, 0, 8), (9, 0, 8), (5, 0, 31), (1, 65_530, 21), (1, -8, 21)],
    ids=[
        "stdin-for-writing",
        "unknown-fd",
        "a-directory",
        "iovec-out-of-memory",
        "negative-pointer",
    ],
)
def test_host_calls_with_bad_arguments_fail_with_an_errno(fd, iovec, errno):
    body = start(
        "(i32.store (i32.const 0) (i32.const 0)) (i32.store (i32.const 4) (i32.const 4))"
        f"(call $emit_i32 (call $fd_write (i32.const {fd}) (i32.const {iovec}) (i32.const 1)"
        " (i32.const 8)))"
    )
    result = run(wat(body), "_start", b"", FUEL)
    assert (result.status, result.output) == (STATUS_OK, struct.pack("<i", errno))


def test_exit_codes_are_results():
    imports = '(import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))' + IO
    ok = wat(start("(call $exit (i32.const 0)) unreachable"), imports)
    failed = wat(start("(call $exit (i32.const 3))"), imports)
    assert run(ok, "_start", b"", FUEL).status == STATUS_OK
    assert run(failed, "_start", b"", FUEL).status == STATUS_TRAP


def test_the_python_workload_is_gone_with_its_escape():
    escape = (
        "def f():\n    return [c for c in ().__class__.__base__.__subclasses__()"
        " if c.__name__ == 'BuiltinImporter'][0].load_module('os').system('touch /tmp/x')"
    )
    with pytest.raises(WorkloadError, match="unknown workload"):
        encode_spec("python", {"source": escape, "function": "f", "args": []})


def test_two_worker_processes_agree_on_status_fuel_and_output():
    specs = [
        wasm_spec("monte-carlo", pack_u64(9, 5_000), fuel=10**8),
        wasm_spec("checked-div", bytes(8), fuel=10**7),
        wasm_spec("hash-chain", pack_u64(10**9), fuel=50_000),
    ]
    for spec in specs:
        first, second = worker.run(spec, None, 30), worker.run(spec, None, 30)
        assert first == second
    assert [worker.run(spec, None, 30).status for spec in specs] == [
        STATUS_OK,
        STATUS_TRAP,
        STATUS_OUT_OF_FUEL,
    ]


def test_a_worker_past_its_wall_clock_limit_is_killed():
    # The most fuel a job may have: minutes of this loop at any speed, far past 1 s.
    spec = wasm_spec(wat(start("(loop $l (br $l))")), fuel=MAX_FUEL)
    began = time.monotonic()
    with pytest.raises(worker.WorkerError, match="timed out"):
        worker.run(spec, bytes(wasmtime.wat2wasm(f"(module {IO} {start('(loop $l (br $l))')})")), 1)
    assert time.monotonic() - began < 10


def test_a_worker_refuses_a_module_that_does_not_compile():
    spec = wasm_spec(b"\x00asm\x01\x00\x00\x00\x01", fuel=10)
    with pytest.raises(worker.SpecRefused, match="not a valid module"):
        worker.check(
            spec, decode_spec(spec).input.module.inline and b"\x00asm\x01\x00\x00\x00\x01", 30
        )


# ---------------------------------------------------------------- host calls are metered

BIG_MEMORY_WRITE = """
  (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") {pages})
"""


def test_a_host_call_over_four_gibibytes_of_iovecs_is_a_result_not_a_crash():
    """65,537 iovecs of 64 KiB to fd 2: their total does not fit the u32 the call returns."""
    body = start(
        "(local $i i32)"
        "(loop $l"
        " (i32.store (i32.add (i32.const 65536) (i32.mul (local.get $i) (i32.const 8)))"
        "  (i32.const 0))"
        " (i32.store (i32.add (i32.const 65540) (i32.mul (local.get $i) (i32.const 8)))"
        "  (i32.const 65536))"
        " (local.set $i (i32.add (local.get $i) (i32.const 1)))"
        " (br_if $l (i32.lt_u (local.get $i) (i32.const 65537))))"
        "(drop (call $w (i32.const 2) (i32.const 65536) (i32.const 65537) (i32.const 0)))"
    )
    module = wat(body, BIG_MEMORY_WRITE.format(pages=10))
    first = run(module, "_start", b"", 10**8)
    assert first == run(module, "_start", b"", 10**8)
    spec = wasm_spec(module, fuel=10**8)
    assert worker.run(spec, module, 60) == first


@pytest.mark.parametrize("fd", [1, 2])
def test_a_flood_of_empty_iovecs_costs_fuel_not_wall_time(fd):
    """A cheap job must not buy hours of host work: 8M zero-length iovecs per call."""
    body = start(
        f"(loop $l (drop (call $w (i32.const {fd}) (i32.const 0) (i32.const 8388607)"
        " (i32.const 0))) (br $l))"
    )
    module = wat(body, BIG_MEMORY_WRITE.format(pages=1024))
    began = time.monotonic()
    result = run(module, "_start", b"", 10_000)
    assert time.monotonic() - began < 2
    assert result.status in (STATUS_OUT_OF_FUEL, STATUS_OK)


def test_host_calls_charge_fuel_for_their_work():
    """A loop of empty writes burns its fuel in few calls: each call costs HOST_CALL_FUEL."""
    body = start(
        "(loop $l (drop (call $w (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 8))) (br $l))"
    )
    result = run(wat(body, BIG_MEMORY_WRITE.format(pages=1)), "_start", b"", 10**8)
    assert result == RunResult(STATUS_OUT_OF_FUEL, 10**8)
    assert HOST_CALL_FUEL * 10 <= 10**8 < HOST_CALL_FUEL * 1_000


# ---------------------------------------------------------------- memory limits


GROW_ALL = wat(
    start(
        """(local $pages i32)
        (local.set $pages (i32.const 1))
        (block $full (loop $grow
          (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
          (local.set $pages (i32.add (local.get $pages) (i32.const 1)))
          (br $grow)))
        (call $emit_i32 (local.get $pages))"""
    )
)


@pytest.mark.parametrize("limit_pages", [1, 2, 33, 4_097, 16_385, 65_536])
def test_the_jobs_memory_limit_is_honoured_and_a_grow_past_it_returns_minus_one(limit_pages):
    results = {
        level: run(
            GROW_ALL, "_start", b"", 10**11, memory_limit=limit_pages * 65_536, opt_level=level
        )
        for level in ("none", "speed")
    }
    assert len(set(results.values())) == 1, results
    result = results["speed"]
    assert (result.status, result.output) == (STATUS_OK, struct.pack("<i", limit_pages))
    with pytest.raises(ModuleError, match="memory_limit"):
        run(GROW_ALL, "_start", b"", FUEL, memory_limit=MAX_MEMORY_LIMIT + 65_536)


def test_providers_opt_in_to_memories_past_256_mib():
    """A spec may declare up to 4 GiB (wasm32's 65,536 pages); a provider's default policy
    declines one above `MAX_MEMORY_BYTES` before accepting it, and takes it when it opts in."""
    from computeshare.agent import Policy

    assert MAX_MEMORY_LIMIT == 4 << 30 and MAX_MEMORY_BYTES == 256 << 20
    module = wat(start("nop"))
    job = decode_spec(wasm_spec(module, fuel=FUEL, memory_limit=MAX_MEMORY_LIMIT))
    assert job.input.memory_limit == MAX_MEMORY_LIMIT
    with pytest.raises(WorkloadError):
        decode_spec(wasm_spec(module, fuel=FUEL, memory_limit=MAX_MEMORY_LIMIT + 65_536))
    terms = {"price": 10**18, "collateral": 0, "compute_seconds": 3_600, "free": 10**18}
    assert "memory limit" in Policy().refusal(job, **terms)
    assert Policy(max_memory_bytes=MAX_MEMORY_LIMIT).refusal(job, **terms) is None
    assert Policy().refusal(decode_spec(wasm_spec(module, fuel=FUEL)), **terms) is None


def test_a_finished_runs_memory_is_released_at_once():
    """Every 4 KiB page of 256 MiB touched, run after run in one process: the resident memory
    does not pile up waiting for Python's collector."""
    pages = MAX_MEMORY_BYTES // 65_536
    module = wat(
        start(
            f"""(local $a i32)
            (drop (memory.grow (i32.const {pages - 1})))
            (loop $touch
              (i32.store (local.get $a) (i32.const 1))
              (local.set $a (i32.add (local.get $a) (i32.const 4096)))
              (br_if $touch (i32.lt_u (local.get $a) (i32.const {MAX_MEMORY_BYTES}))))"""
        )
    )

    def resident() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * 4096

    gc.collect()
    before = resident()
    for _ in range(4):
        result = run(module, "_start", b"", 10**12, memory_limit=MAX_MEMORY_BYTES)
        assert result.status == STATUS_OK
    assert resident() - before < MAX_MEMORY_BYTES // 2


def test_a_run_over_the_largest_memory_is_identical_at_every_level():
    """Grows to the sandbox's bound, writes the last word of every 64th page and sums them."""
    pages = MAX_MEMORY_BYTES // 65_536
    module = wat(
        start(
            f"""(local $p i32) (local $sum i32)
            (drop (memory.grow (i32.const {pages - 1})))
            (loop $write
              (i32.store (i32.sub (i32.shl (i32.add (local.get $p) (i32.const 1))
                (i32.const 16)) (i32.const 4)) (local.get $p))
              (local.set $p (i32.add (local.get $p) (i32.const 64)))
              (br_if $write (i32.lt_u (local.get $p) (i32.const {pages}))))
            (local.set $p (i32.const 0))
            (loop $read
              (local.set $sum (i32.add (local.get $sum) (i32.load (i32.sub (i32.shl
                (i32.add (local.get $p) (i32.const 1)) (i32.const 16)) (i32.const 4)))))
              (local.set $p (i32.add (local.get $p) (i32.const 64)))
              (br_if $read (i32.lt_u (local.get $p) (i32.const {pages}))))
            (call $emit_i32 (local.get $sum))
            (call $emit_i32 (memory.grow (i32.const 1)))"""
        )
    )
    results = {
        level: run(module, "_start", b"", 10**11, memory_limit=MAX_MEMORY_BYTES, opt_level=level)
        for level in OPT_LEVELS
    }
    assert len(set(results.values())) == 1, results
    expected = sum(range(0, pages, 64))
    assert results["speed"].output == struct.pack("<ii", expected, -1)


# ---------------------------------------------------------------- modules and the cache


def test_a_module_over_the_size_limit_is_refused():
    oversized = wat(start("nop")) + b"\x00" * MAX_MODULE_BYTES
    with pytest.raises(ModuleError, match="limit"):
        check(oversized, "_start")
    assert run(oversized, "_start", b"", FUEL).status == STATUS_INVALID
    assert prepare_seconds(MAX_MODULE_BYTES) > prepare_seconds(1 << 10) > 0


CACHED = wat(
    """(global $g (mut i32) (i32.const 7)) (func $init (global.set $g (i32.const 42)))
    (start $init)"""
    + start("(call $emit_i32 (global.get $g)) (drop (memory.grow (i32.const 3)))")
)


def test_the_prepared_module_cache_gives_a_cold_runs_results(tmp_path):
    cold = run(CACHED, "_start", b"", FUEL)
    assert cold.output == struct.pack("<i", 42)
    filled = run(CACHED, "_start", b"", FUEL, cache_dir=tmp_path / "c")
    entries = sorted((tmp_path / "c").glob("*.bin"))
    assert len(entries) == 1
    written = entries[0].read_bytes()
    hit = run(CACHED, "_start", b"", FUEL, cache_dir=tmp_path / "c")
    assert cold == filled == hit
    assert entries[0].read_bytes() == written  # read, not rewritten
    _, metered = prepare_cached(CACHED, "_start", tmp_path / "c")
    assert metered.setup_fuel == metering.meter(CACHED).setup_fuel and metered.has_start
    # Another optimisation level is another entry, with the same result.
    assert run(CACHED, "_start", b"", FUEL, cache_dir=tmp_path / "c", opt_level="none") == cold
    assert len(list((tmp_path / "c").glob("*.bin"))) == 2
    # The export is checked on a hit as on a cold preparation.
    with pytest.raises(ModuleError):
        check(CACHED, "main", cache_dir=tmp_path / "c")


def test_the_prepared_module_cache_keeps_a_module_per_memory_tier(tmp_path):
    """A load's price depends on the job's memory tier: a module prepared for one tier is
    never run at another's prices."""
    module = wat(start("(call $emit_i32 (i32.load (i32.const 8)))"))
    limits = (64 << 20, 256 << 20, 1 << 30, 4 << 30)
    cold = [run(module, "_start", b"", FUEL, memory_limit=limit) for limit in limits]
    assert cold[0] == cold[1] and len({r.fuel for r in cold}) == 3
    warm = [
        run(module, "_start", b"", FUEL, memory_limit=limit, cache_dir=tmp_path / "c")
        for limit in (*limits, *reversed(limits))
    ]
    assert warm == [*cold, *reversed(cold)]
    assert len(list((tmp_path / "c").glob("*.bin"))) == 3
    keys = {PreparedCache.key(module, "speed", tier) for tier in range(3)}
    assert len(keys) == 3
    for limit in limits:
        check(module, "_start", cache_dir=tmp_path / "c", memory_limit=limit)
    assert len(list((tmp_path / "c").glob("*.bin"))) == 3


@pytest.mark.parametrize("damage", ["flip", "truncate", "foreign", "renamed"])
def test_a_tampered_cache_entry_is_refused_and_rebuilt(tmp_path, damage):
    cold = run(CACHED, "_start", b"", FUEL)
    cache = PreparedCache(tmp_path / "c")
    run(CACHED, "_start", b"", FUEL, cache_dir=cache.directory)
    entry = cache.path(cache.key(CACHED, "speed"))
    data = entry.read_bytes()
    if damage == "flip":  # a byte of the compiled code
        entry.write_bytes(data[:-100] + bytes([data[-100] ^ 1]) + data[-99:])
    elif damage == "truncate":
        entry.write_bytes(data[: len(data) // 2])
    elif damage == "foreign":  # a valid entry of another machine's cache (another key)
        other = PreparedCache(tmp_path / "other")
        run(CACHED, "_start", b"", FUEL, cache_dir=other.directory)
        entry.write_bytes(other.path(other.key(CACHED, "speed")).read_bytes())
    else:  # this cache's own entry for another module, under this module's name
        module = wat(start("(call $emit_i32 (i32.const 5))"))
        run(module, "_start", b"", FUEL, cache_dir=cache.directory)
        entry.write_bytes(cache.path(cache.key(module, "speed")).read_bytes())
    tampered = entry.read_bytes()
    assert cache.load(cache.key(CACHED, "speed"), "speed") is None
    assert not entry.exists()  # refused and deleted
    entry.write_bytes(tampered)
    assert run(CACHED, "_start", b"", FUEL, cache_dir=cache.directory) == cold
    assert entry.read_bytes() != tampered  # rebuilt
    assert cache.load(cache.key(CACHED, "speed"), "speed") is not None


def test_a_cache_directory_open_to_others_is_refused(tmp_path):
    directory = tmp_path / "open"
    directory.mkdir(mode=0o755)
    directory.chmod(0o755)
    with pytest.raises(HostError, match="700"):
        run(CACHED, "_start", b"", FUEL, cache_dir=directory)
    made = tmp_path / "made" / "cache"
    run(CACHED, "_start", b"", FUEL, cache_dir=made)
    assert made.stat().st_mode & 0o777 == 0o700
    assert (made / "key").stat().st_mode & 0o777 == 0o600
