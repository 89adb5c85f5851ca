"""Metering by rewriting: the fuel of a run is exact, priced by the worst case, and the same
in-process, in worker processes and at every Cranelift optimisation level; the rewrite
never changes what a module computes; the call stack is bounded by a count that trips
before the native stack does."""

from __future__ import annotations

import contextlib
import itertools
import struct

import pytest
import wasmtime
from hypothesis import given, settings
from hypothesis import strategies as st

from computeshare import metering, sandbox, worker
from computeshare.metering import COSTS, STACK_BUDGET, MeteringError, frame_weight, meter
from computeshare.sandbox import STATUS_OK, STATUS_OUT_OF_FUEL, STATUS_TRAP, RunResult, run
from computeshare.workloads import wasm_spec
from devtools.metering_cases import adversarial_cases

IO = """
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func $emit (param $value i64)
    (i64.store (i32.const 100) (local.get $value))
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 8))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))
"""
SETUP = COSTS.memory_page  # one page of initial memory


def wat(body: str) -> bytes:
    return bytes(wasmtime.wat2wasm(f"(module {IO} {body})"))


def everywhere(module: bytes, fuel: int) -> RunResult:
    """The run's result, checked identical at every optimisation level."""
    results = {
        level: run(module, "_start", b"", fuel, opt_level=level) for level in sandbox.OPT_LEVELS
    }
    assert len(set(results.values())) == 1, results
    return results["speed"]


def counting_loop(count: int, tail: str) -> bytes:
    return wat(
        f"""(func (export "_start") (local $i i32)
          (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $i) (i32.const {count}))))
          {tail})"""
    )


# ---------------------------------------------------------------- exact fuel


def test_fuel_at_an_out_of_bounds_trap_is_exact():
    """A million iterations then a load out of bounds: the fuel is the loop's plus the last
    region's, not 0 (wasmtime's own fuel reported 0 here), and the same everywhere."""
    unreachable = everywhere(counting_loop(1_000_000, "unreachable"), 10**10)
    out_of_bounds = everywhere(counting_loop(1_000_000, "(drop (i32.load (i32.const -1)))"), 10**10)
    assert unreachable.status == out_of_bounds.status == STATUS_TRAP
    # i32.const, i32.load, drop against unreachable (charged the least a charge is), in the
    # region after the loop.
    assert out_of_bounds.fuel - unreachable.fuel == (
        2 * COSTS.simple + COSTS.load - COSTS.region_minimum
    )
    # Per iteration: local.get, i32.const, i32.add, local.set, local.get, i32.const,
    # i32.lt_u, br_if.
    longer = everywhere(counting_loop(2_000_000, "unreachable"), 10**10)
    assert longer.fuel - unreachable.fuel == 1_000_000 * (7 * COSTS.simple + COSTS.branch)
    assert unreachable.fuel == (
        SETUP + 1_000_000 * (7 * COSTS.simple + COSTS.branch) + COSTS.region_minimum
    )


def test_running_out_of_fuel_uses_the_whole_limit_and_stops_at_the_same_block():
    module = counting_loop(10**9, "")
    for fuel in (SETUP + 1, SETUP + 12_345, 10**7):
        assert everywhere(module, fuel) == RunResult(STATUS_OUT_OF_FUEL, fuel)
    assert everywhere(module, SETUP - 1) == RunResult(STATUS_OUT_OF_FUEL, SETUP - 1)


def test_memory_grow_is_priced_per_page_granted():
    def grow(pages: int) -> RunResult:
        return everywhere(
            wat(
                '(func (export "_start") (call $emit (i64.extend_i32_s'
                f" (memory.grow (i32.const {pages})))))"
            ),
            10**10,
        )

    none, one, ten, refused = grow(0), grow(1), grow(10), grow(5_000)
    assert one.fuel - none.fuel == COSTS.memory_grow_page
    assert ten.fuel - none.fuel == 10 * COSTS.memory_grow_page
    assert refused.output == struct.pack("<q", -1)
    assert refused.fuel == none.fuel, "a refused grow does no work and costs its instruction"


# Loops of 1,000 iterations of one load or one store: 3,212 fuel an iteration (the access,
# 10 simple instructions and the branch) and a page of initial memory, under cost table 3 at
# a memory limit up to 256 MiB.
def _access_loop(access: str) -> bytes:
    return wat(
        f"""(func (export "_start") (local $i i32) (local $x i32)
          (loop $l {access}
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $i) (i32.const 1000)))))"""
    )


LOADS = _access_loop("(local.set $x (i32.load (i32.and (local.get $x) (i32.const 0xfffc))))")
STORES = _access_loop("(i32.store (i32.shl (local.get $i) (i32.const 4)) (local.get $i))")
ACCESS_LOOP_FUEL = 4_212_000


def test_memory_tiers_cover_wasm32_and_rise_with_the_memory():
    tiers = COSTS.memory_tiers
    assert [most for most, _, _ in tiers] == [256 << 20, 1 << 30, 4 << 30]
    assert tiers[0][1:] == (COSTS.load, COSTS.store) == (3_200, 3_200)
    assert all(a[1] < b[1] and a[2] <= b[2] for a, b in itertools.pairwise(tiers))
    assert [COSTS.tier(limit) for limit in (65_536, 256 << 20)] == [0, 0]
    assert [COSTS.tier(limit) for limit in ((256 << 20) + 65_536, 1 << 30)] == [1, 1]
    assert [COSTS.tier(limit) for limit in ((1 << 30) + 65_536, 4 << 30)] == [2, 2]
    with pytest.raises(MeteringError, match="memory"):
        COSTS.tier((4 << 30) + 65_536)
    with pytest.raises(MeteringError, match="tier"):
        meter(LOADS, tier=len(tiers))


@pytest.mark.parametrize("limit", [65_536, 64 << 20, 256 << 20])
def test_up_to_256_mib_a_jobs_fuel_is_the_first_tiers(limit):
    for module in (LOADS, STORES):
        results = {
            level: run(module, "_start", b"", 10**9, memory_limit=limit, opt_level=level)
            for level in sandbox.OPT_LEVELS
        }
        assert set(results.values()) == {RunResult(STATUS_OK, ACCESS_LOOP_FUEL)}
    assert meter(LOADS).module == meter(LOADS, tier=0).module


@pytest.mark.parametrize("limit", [(256 << 20) + 65_536, 1 << 30, (1 << 30) + 65_536, 4 << 30])
def test_a_load_and_a_store_cost_the_price_of_the_jobs_memory_tier(limit):
    _, load, store = COSTS.memory_tiers[COSTS.tier(limit)]
    for module, price in ((LOADS, load), (STORES, store)):
        results = {
            level: run(module, "_start", b"", 10**9, memory_limit=limit, opt_level=level)
            for level in sandbox.OPT_LEVELS
        }
        fuel = ACCESS_LOOP_FUEL + 1_000 * (price - COSTS.load)
        assert set(results.values()) == {RunResult(STATUS_OK, fuel)}, results


def test_bulk_memory_and_table_growth_are_priced_per_byte_and_element():
    def fill(size: int) -> int:
        body = (
            f'(func (export "_start") (memory.fill (i32.const 0) (i32.const 7) (i32.const {size})))'
        )
        return everywhere(wat(body), 10**10).fuel

    per_unit = COSTS.bulk_byte
    assert fill(64) - fill(0) == (64 >> COSTS.bulk_unit_shift) * per_unit
    assert fill(65_536) - fill(0) == (65_536 >> COSTS.bulk_unit_shift) * per_unit
    grow = (
        '(table $t 0 funcref) (func (export "_start")'
        " (drop (table.grow $t (ref.null func) (i32.const {}))))"
    )
    assert (
        everywhere(wat(grow.format(100)), 10**10).fuel
        - everywhere(wat(grow.format(0)), 10**10).fuel
        == 100 * COSTS.table_grow_element
    )


def test_host_calls_charge_the_metering_counter():
    calls = 3
    body = f"""(func (export "_start") (local $i i32)
      (loop $l (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 8)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const {calls})))))"""
    used = everywhere(wat(body), 10**10).fuel
    # four i32.const, call, drop; the counter's seven; br_if
    per_iteration = (4 + 1 + 7) * COSTS.simple + COSTS.call + COSTS.branch
    assert used == SETUP + calls * (per_iteration + sandbox.HOST_CALL_FUEL)


# ---------------------------------------------------------------- regions


def _branching_loop(arm: str, count: int = 1_000) -> bytes:
    """A counting loop whose body runs `arm` on even iterations."""
    return wat(
        f"""(func (export "_start") (local $i i32) (local $x i32)
          (loop $l
            (if (i32.eqz (i32.and (local.get $i) (i32.const 1))) (then {arm}))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $i) (i32.const {count}))))
          unreachable)"""
    )


# local.get, i32.const, i32.and, i32.eqz, if; the counter's seven; br_if
LOOP_COST = 4 * COSTS.simple + COSTS.branch + 7 * COSTS.simple + COSTS.branch


def test_a_cheap_arm_folds_into_its_loop_and_is_charged_on_every_iteration():
    cheap = "(local.set $x (i32.add (local.get $x) (i32.const 1)))"  # 4 fuel
    none = everywhere(_branching_loop("(nop)"), 10**9).fuel
    folded = everywhere(_branching_loop(cheap), 10**9).fuel
    assert none == SETUP + 1_000 * LOOP_COST + COSTS.region_minimum
    assert folded - none == 1_000 * 4 * COSTS.simple, "the worst path, taken or not"


def test_a_costly_arm_has_its_own_charge_and_costs_only_when_taken():
    store = "(i32.store (i32.const 64) (local.get $i))"  # 402 fuel, past the fold limit
    assert 2 * COSTS.simple + COSTS.store > COSTS.fold_limit
    none = everywhere(_branching_loop("(nop)"), 10**9).fuel
    costly = everywhere(_branching_loop(store), 10**9).fuel
    # Three regions: the loop's head (5 fuel, charged the minimum), the arm, and the code
    # after the if (the counter and br_if, 8), against one of LOOP_COST.
    split = 2 * COSTS.region_minimum - LOOP_COST
    assert costly - none == 500 * (2 * COSTS.simple + COSTS.store) + 1_000 * split
    # A br_if skipping the same store splits the same way.
    skip = wat(
        """(func (export "_start") (local $i i32)
          (loop $l
            (block $skip
              (br_if $skip (i32.and (local.get $i) (i32.const 1)))
              (i32.store (i32.const 64) (local.get $i)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $i) (i32.const 1000))))
          unreachable)"""
    )
    # Regions: the loop's head (local.get, i32.const, i32.and, br_if: the minimum), the
    # store, after the block (8).
    assert everywhere(skip, 10**9).fuel - none == 500 * (2 * COSTS.simple + COSTS.store) + (
        1_000 * split
    )


def test_a_leaf_called_directly_is_charged_by_its_caller_and_indirectly_by_itself():
    leaf = "(func $leaf (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))"
    direct = wat(
        leaf
        + """(func (export "_start") (local $x i32)
          (local.set $x (call $leaf (local.get $x))) unreachable)"""
    )
    table = wat(
        "(type $t (func (param i32) (result i32))) (table 1 funcref) (elem (i32.const 0) $leaf)"
        + leaf
        + """(func (export "_start") (local $x i32)
          (local.set $x (call_indirect (type $t) (local.get $x) (i32.const 0))) unreachable)"""
    )
    body = 3 * COSTS.simple  # the leaf's local.get, i32.const, i32.add
    # local.get, call, local.set, unreachable: one region with the leaf's body
    caller = 2 * COSTS.simple + COSTS.call + COSTS.branch
    assert everywhere(direct, 10**9).fuel == SETUP + caller + body
    # The table's element, the i32.const, and the leaf's own charge (the minimum).
    setup = SETUP + COSTS.table_element
    indirect = everywhere(table, 10**9).fuel
    assert indirect == setup + caller - COSTS.call + COSTS.call_indirect + COSTS.simple + max(
        body, COSTS.region_minimum
    )


# ---------------------------------------------------------------- the call stack


def _recursion(locals_: int = 0, held: int = 0) -> bytes:
    """$down recurses until the trap, counting its depth in the exported global $n; it holds
    `locals_` i64 locals live across the call and `held` values on the operand stack."""
    declared = " ".join(["(local i64)"] * locals_)
    touch = "".join(f"(local.set {1 + i} (i64.extend_i32_u (local.get 0)))" for i in range(locals_))
    total = "".join(f"(i64.add (local.get {1 + i}))" for i in range(locals_))
    push = "".join("(i64.extend_i32_u (local.get 0))" for _ in range(held))
    pop = "(i64.add)" * held
    return bytes(
        wasmtime.wat2wasm(
            f"""(module (global $n (export "n") (mut i32) (i32.const 0))
          (func $down (param i32) (result i64) {declared}
            (global.set $n (i32.add (global.get $n) (i32.const 1)))
            {touch}
            {push}
            (i64.add (call $down (i32.add (local.get 0) (i32.const 1))) (i64.const 0) {total})
            {pop})
          (func (export "_start") (drop (call $down (i32.const 0)))))"""
        )
    )


def _depth_reached(module: bytes, opt_level: str) -> tuple[int, wasmtime.TrapCode | None]:
    """Runs the metered module on the sandbox's engine; the depth and the trap's code."""
    metered = meter(module)
    engine = sandbox.engine(opt_level)
    store = wasmtime.Store(engine)
    instance = wasmtime.Instance(store, wasmtime.Module(engine, metered.module), [])
    exports = instance.exports(store)
    exports[metering.FUEL_EXPORT].set_value(store, wasmtime.Val.i64(10**12))
    code = None
    try:  # on the sandbox's own thread: the engine's wasm stack is larger than a main thread's
        sandbox.on_wasm_stack(exports["_start"], store)
    except wasmtime.Trap as trap:
        code = trap.trap_code
    return exports["n"].value(store), code


@pytest.mark.parametrize(
    ("locals_", "held"),
    [(0, 0), (64, 0), (2_000, 0), (0, 1_000)],
    ids=["plain", "locals", "huge-locals", "deep-stack"],
)
def test_recursion_stops_at_the_counted_budget_before_the_native_stack(locals_, held):
    module = _recursion(locals_, held)
    weights = meter(module).weights
    depths = {level: _depth_reached(module, level) for level in sandbox.OPT_LEVELS}
    expected = STACK_BUDGET // weights[0] - 1  # _start's frame holds the rest
    for depth, code in depths.values():
        assert code == wasmtime.TrapCode.UNREACHABLE, "the counter, not a native overflow"
        assert expected <= depth <= expected + 1
    assert len(set(depths.values())) == 1
    results = {everywhere(module, 10**10)}
    assert {result.status for result in results} == {STATUS_TRAP}


def test_frame_weight_counts_params_locals_and_instructions():
    assert frame_weight(0, 0, 1) == 2
    assert frame_weight(1, 0, 7) == 2
    assert frame_weight(2, 2_000, 10) == 1 + 252
    assert metering.NATIVE_STACK_BYTES == sandbox.MAX_STACK_BYTES


# ---------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "text",
    [
        '(func (export "_start") (drop (i32x4.splat (i32.const 1))))',
        '(memory 1 1 shared) (func (export "_start") (drop (i32.atomic.load (i32.const 0))))',
    ],
    ids=["simd", "atomics"],
)
def test_features_the_table_does_not_price_are_refused(text):
    with pytest.raises(MeteringError, match="not supported"):
        meter(bytes(wasmtime.wat2wasm(f"(module {text})")))


def test_reserved_names_and_garbage_are_refused():
    clash = wat(f'(func (export "_start")) (func (export "{metering.FUEL_EXPORT}"))')
    with pytest.raises(MeteringError, match="reserved"):
        meter(clash)
    for garbage in (b"", b"\x00asm\x01\x00\x00\x00\x01\xff", b"\x00asm\x02\x00\x00\x00"):
        with pytest.raises(MeteringError):
            meter(garbage)
    assert run(clash, "_start", b"", 10**9).status == sandbox.STATUS_INVALID
    assert run(wat('(func (export "_start"))'), metering.START_EXPORT, b"", 10).status == (
        sandbox.STATUS_INVALID
    )


def test_the_start_function_runs_metered_before_the_export():
    module = wat(
        """(global $g (mut i64) (i64.const 0))
        (func $init (global.set $g (i64.const 42)))
        (start $init)
        (func (export "_start") (call $emit (global.get $g)))"""
    )
    result = everywhere(module, 10**9)
    assert (result.status, result.output) == (STATUS_OK, struct.pack("<q", 42))
    looping = wat('(func $spin (loop (br 0))) (start $spin) (func (export "_start"))')
    assert everywhere(looping, 10**7) == RunResult(STATUS_OUT_OF_FUEL, 10**7)


# ---------------------------------------------------------------- determinism everywhere

SMALL = adversarial_cases(0.0005)


@pytest.mark.parametrize("name", list(SMALL))
def test_adversarial_modules_agree_in_process_across_levels_and_in_workers(name):
    module = SMALL[name]
    for fuel in (10**6, 2 * 10**9):
        result = everywhere(module, fuel)
        spec = wasm_spec(module, fuel=fuel)
        assert worker.run(spec, module, 60) == result
    if not name.startswith("pointer chase"):
        assert everywhere(module, 2 * 10**9).status != STATUS_OUT_OF_FUEL


def _fill_memory(pages: int) -> bytes:
    """Grows the memory to `pages`, writes the last word of every 256th page, sums them and
    emits the sum, then what a grow of one more page returns."""
    return wat(
        f"""(func (export "_start") (local $p i32) (local $sum i64)
          (drop (memory.grow (i32.const {pages - 1})))
          (loop $write
            (i32.store (i32.sub (i32.shl (i32.add (local.get $p) (i32.const 1)) (i32.const 16))
              (i32.const 4)) (local.get $p))
            (local.set $p (i32.add (local.get $p) (i32.const 256)))
            (br_if $write (i32.lt_u (local.get $p) (i32.const {pages}))))
          (local.set $p (i32.const 0))
          (loop $read
            (local.set $sum (i64.add (local.get $sum) (i64.extend_i32_u (i32.load (i32.sub
              (i32.shl (i32.add (local.get $p) (i32.const 1)) (i32.const 16)) (i32.const 4))))))
            (local.set $p (i32.add (local.get $p) (i32.const 256)))
            (br_if $read (i32.lt_u (local.get $p) (i32.const {pages}))))
          (call $emit (local.get $sum))
          (call $emit (i64.extend_i32_s (memory.grow (i32.const 1)))))"""
    )


@pytest.mark.parametrize("limit", [1 << 30, 4 << 30])
def test_a_run_past_256_mib_agrees_in_process_and_in_a_worker(limit):
    pages = limit // 65_536
    module = _fill_memory(pages)
    fuel = 10**11
    local = run(module, "_start", b"", fuel, memory_limit=limit)
    expected = sum(range(0, pages, 256))
    assert (local.status, local.output) == (STATUS_OK, struct.pack("<qq", expected, -1))
    spec = wasm_spec(module, fuel=fuel, memory_limit=limit)
    assert worker.run(spec, module, 120) == local
    # The same module at a smaller limit: its grow fails, it writes out of bounds and traps.
    small = run(module, "_start", b"", fuel, memory_limit=256 << 20)
    assert small.status == STATUS_TRAP
    assert worker.run(wasm_spec(module, fuel=fuel, memory_limit=256 << 20), module, 120) == small


# Random programs: straight-line arithmetic over locals and memory, loops with bounded
# counters, branches out of nested blocks, early returns, calls, memory.grow and loads that
# may fall out of bounds, divisions that may trap.
_STATEMENTS = [
    "(local.set $a (i64.add (local.get $a) (i64.const {k})))",
    "(local.set $a (i64.mul (local.get $a) (i64.const {k})))",
    "(local.set $a (i64.div_s (local.get $a) (i64.const {d})))",
    "(local.set $a (i64.rem_u (local.get $a) (local.get $b)))",
    "(i64.store (i32.wrap_i64 (i64.and (local.get $a) (i64.const {mask}))) (local.get $b))",
    "(local.set $b (i64.load (i32.wrap_i64 (i64.and (local.get $a) (i64.const {mask})))))",
    "(local.set $b (i64.xor (local.get $b) (call $leaf (local.get $a))))",
    "(local.set $b (i64.extend_i32_s (memory.grow (i32.const {g}))))",
    "(if (i64.lt_s (local.get $a) (i64.const {k})) (then (return)))",
    "(block $out (br_if $out (i64.eqz (local.get $b)))"
    " (local.set $a (i64.sub (local.get $a) (local.get $b))))",
    "(local.set $i (i32.const 0)) (loop $l (local.set $a (i64.rotl (local.get $a) (i64.const 7)))"
    " (local.set $i (i32.add (local.get $i) (i32.const 1)))"
    " (br_if $l (i32.lt_u (local.get $i) (i32.const {n}))))",
    "(block $x (block $y (br_table $x $y $x (i32.wrap_i64 (i64.and (local.get $a) (i64.const 3)))))"
    " (local.set $b (i64.add (local.get $b) (i64.const 1))))",
    "(memory.fill (i32.const 200) (i32.wrap_i64 (local.get $a)) (i32.const {n}))",
    "(call $emit (local.get $a))",
    # arms past the fold limit, and a br_if skipping the rest of a loop's body
    "(if (i64.gt_s (local.get $a) (i64.const {k})) (then (i64.store (i32.const 64) (local.get $b))"
    " (local.set $b (i64.load (i32.const 72)))) (else (local.set $a (i64.const {k}))))",
    "(local.set $i (i32.const 0)) (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))"
    " (br_if $l (i32.and (local.get $i) (i32.const 1)))"
    " (i64.store (i32.const 80) (local.get $a))"
    " (br_if $l (i32.lt_u (local.get $i) (i32.const {n}))))",
    "(block $o (block $p (br_table $o $p (i32.wrap_i64 (i64.and (local.get $b) (i64.const 1)))))"
    " (i64.store (i32.const 88) (local.get $a)) (local.set $a (call $leaf (local.get $b))))",
]


@st.composite
def programs(draw) -> bytes:
    count = draw(st.integers(1, 12))
    lines = []
    for _ in range(count):
        template = draw(st.sampled_from(_STATEMENTS))
        lines.append(
            template.format(
                k=draw(st.integers(-(2**40), 2**40)),
                d=draw(st.sampled_from([0, 1, -1, 3, 1_000_003])),
                mask=draw(st.sampled_from([0xFF8, 0xFFF8, 0x1FFF8])),
                g=draw(st.sampled_from([0, 1, 2])),
                n=draw(st.integers(0, 300)),
            )
        )
    body = "\n".join(lines)
    return wat(
        f"""(func $leaf (param i64) (result i64)
          (if (i64.gt_u (local.get 0) (i64.const 100))
            (then (return (i64.shr_u (local.get 0) (i64.const 1)))))
          (i64.add (local.get 0) (i64.const 3)))
        (func $main (param $a i64) (local $b i64) (local $i i32)
          (local.set $b (i64.const 5))
          {body}
          (call $emit (i64.xor (local.get $a) (local.get $b))))
        (func (export "_start") (call $main (i64.const {draw(st.integers(0, 2**50))})))"""
    )


def _unmetered(module: bytes) -> tuple[str, bytes]:
    """The module run as it is on a plain engine: 'ok' or 'trap', and its output."""
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    output = bytearray()
    linker = wasmtime.Linker(engine)
    i32 = wasmtime.ValType.i32()

    def fd_write(caller, fd, iovs, count, written):
        memory = caller.get("memory")
        start, length = struct.unpack("<II", memory.read(caller, iovs, iovs + 8))
        output.extend(memory.read(caller, start, start + length))
        memory.write(caller, struct.pack("<I", length), written)  # as the sandbox does
        return 0

    linker.define_func(
        "wasi_snapshot_preview1",
        "fd_write",
        wasmtime.FuncType([i32] * 4, [i32]),
        fd_write,
        access_caller=True,
    )
    try:
        linker.instantiate(store, wasmtime.Module(engine, module)).exports(store)["_start"](store)
    except wasmtime.Trap:
        return "trap", bytes(output)
    return "ok", bytes(output)


@settings(max_examples=200, deadline=None)
@given(module=programs(), fuel=st.sampled_from([700_000, 3_000_000, 10**9]))
def test_generated_programs_agree_across_levels_and_compute_what_they_did(module, fuel):
    result = everywhere(module, fuel)
    status, output = _unmetered(module)
    if result.status == STATUS_OUT_OF_FUEL:
        assert output.startswith(result.output)
    else:
        assert (result.status, result.output) == (
            {"ok": STATUS_OK, "trap": STATUS_TRAP}[status],
            output,
        )
    assert result.fuel <= fuel


def _audited(module: bytes, fuel: int) -> tuple[int, int]:
    """The fuel the metered module charged and the work its audit counted (the cost of every
    basic block entered), run as the sandbox runs it."""
    metered = meter(module, audit=True)
    engine = sandbox.engine("speed")
    store = wasmtime.Store(engine)
    host = sandbox._Host(store, b"")
    instance = sandbox._linker(host).instantiate(store, wasmtime.Module(engine, metered.module))
    exports = instance.exports(store)
    host.fuel = exports[metering.FUEL_EXPORT]
    host.fuel.set_value(store, wasmtime.Val.i64(fuel))
    with contextlib.suppress(Exception):  # a trap, out of fuel: the counters tell
        sandbox.on_wasm_stack(exports["_start"], store)
    left = host.fuel.value(store)
    return (fuel if left < 0 else fuel - left), exports[metering.WORK_EXPORT].value(store)


@settings(max_examples=200, deadline=None)
@given(module=programs(), fuel=st.sampled_from([50_000, 700_000, 10**9]))
def test_generated_programs_are_charged_at_least_the_work_they_do(module, fuel):
    """Soundness of the regions: whatever path a run takes, the fuel charged up front (each
    region its costliest path) is never less than a per-basic-block meter's count."""
    charged, work = _audited(module, fuel)
    assert work <= charged <= fuel
    assert charged + SETUP == run(module, "_start", b"", fuel + SETUP).fuel


@settings(max_examples=10, deadline=None)
@given(module=programs())
def test_generated_programs_agree_in_worker_processes(module):
    spec = wasm_spec(module, fuel=10**9)
    assert (
        worker.run(spec, module, 60)
        == worker.run(spec, module, 60)
        == run(module, "_start", b"", 10**9)
    )
