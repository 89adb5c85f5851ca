"""The metering's adversarial suite: modules that each make one kind of instruction as slow
per unit of fuel as they can (WAT), for scripts/bench_metering.py and tests/test_metering.py.
`adversarial_cases(scale)` scales every loop's count (1.0: about 0.1 to 1 s each)."""

from __future__ import annotations

import math

import wasmtime

from computeshare import sandbox

PAGES = 64 * 16  # 64 MiB: the memory of the suite's fill and grow cases
# The memory sizes scripts/bench_metering.py times the pointer chase and the grow loops over,
# up to wasm32's 4 GiB (the chase's memory starts at a page and grows to the size).
MEMORY_SIZES = (64 << 20, 256 << 20, 1 << 30, 4 << 30)
_IO = """
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
"""


def _module(body: str, memory: str = '(memory (export "memory") 1)') -> bytes:
    return bytes(wasmtime.wat2wasm(f"(module {_IO} {memory} {body})"))


def _loop(count: int, body: str, locals_: str = "") -> str:
    """`_start` running `body` `count` times."""
    return f"""(func (export "_start") (local $i i32) {locals_}
      (loop $l {body}
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const {count})))))"""


def _full_period(entries: int) -> tuple[int, int]:
    """(a, c) with x -> (a * x + c) mod entries one cycle through every entry (Hull-Dobell: c
    coprime to the modulus, a - 1 divisible by its every prime factor, and by 4 when it is),
    a near entries / phi so successive entries land far apart."""
    primes, rest, p = [], entries, 2
    while p * p <= rest:
        if rest % p == 0:
            primes.append(p)
            while rest % p == 0:
                rest //= p
        p += 1
    if rest > 1:
        primes.append(rest)
    step = math.prod(primes) * (2 if entries % 4 == 0 else 1)
    a = 1 + step * max(1, round(entries * 0.6180339887 / step))
    c = 12_345
    while math.gcd(c, entries) != 1:
        c += 2
    return a % entries, c


def chase_module(memory_bytes: int, steps: int) -> bytes:
    """A dependent pointer chase over a memory of `memory_bytes` (whole pages): `_start`
    fills every 4-byte entry i with the address of entry (a * i + c) mod entries, one cycle
    through the whole memory in an order no prefetcher follows, then follows `steps`
    pointers from entry 0. An empty `fd_write` to stdout marks the chase's start and end
    (scripts/bench_metering.py times the chase alone between them)."""
    pages = memory_bytes // 65_536
    entries = pages * 65_536 // 4
    a, c = _full_period(entries)
    # v = (a * i + c) mod entries, kept by adding a and subtracting the modulus past it
    return _module(
        f"""(func (export "_start") (local $i i32) (local $v i32) (local $p i32)
          (if (i32.lt_s (memory.grow (i32.const {pages - 1})) (i32.const 0)) (then unreachable))
          (local.set $v (i32.const {c}))
          (loop $fill
            (i32.store (i32.shl (local.get $i) (i32.const 2))
              (i32.shl (local.get $v) (i32.const 2)))
            (local.set $v (i32.add (local.get $v) (i32.const {a})))
            (if (i32.ge_u (local.get $v) (i32.const {entries}))
              (then (local.set $v (i32.sub (local.get $v) (i32.const {entries})))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $fill (i32.lt_u (local.get $i) (i32.const {entries}))))
          (local.set $i (i32.const 0))
          (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 0)))
          (i32.store (i32.const 0) (i32.const {c * 4}))  ;; the mark wrote its count there
          (loop $chase
            (local.set $p (i32.load (local.get $p)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $chase (i32.lt_u (local.get $i) (i32.const {steps}))))
          (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 0))))""",
    )


def adversarial_cases(scale: float = 1.0) -> dict[str, bytes]:
    """Case name -> module; loop counts times `scale` (at least 1)."""

    def n(count: int) -> int:
        return max(1, int(count * scale))

    return {
        "arith loop (i32.add)": _module(
            _loop(
                n(200_000_000),
                "(local.set $x (i32.add (local.get $x) (local.get $i)))",
                "(local $x i32)",
            )
        ),
        "tight loop (charged the minimum)": _module(
            f"""(func (export "_start") (local $i i32) (local.set $i (i32.const {n(400_000_000)}))
              (loop $l (br_if $l (local.tee $i (i32.sub (local.get $i) (i32.const 1))))))"""
        ),
        "i64 division chain": _module(
            _loop(
                n(20_000_000),
                "(local.set $x (i64.div_u (i64.const -1) (i64.or (local.get $x) (i64.const 3))))",
                "(local $x i64)",
            )
        ),
        "f64 sqrt chain": _module(
            _loop(
                n(20_000_000),
                "(local.set $x (f64.add (f64.sqrt (local.get $x)) (f64.const 1)))",
                "(local $x f64)",
            )
        ),
        f"pointer chase {sandbox.MAX_MEMORY_BYTES >> 20} MiB": chase_module(
            sandbox.MAX_MEMORY_BYTES, n(4_000_000)
        ),
        "memory.grow + touch": _module(
            """(func (export "_start") (local $p i32) (local $i i32)
              (loop $grow
                (local.set $p (memory.grow (i32.const 1)))
                (if (i32.ge_s (local.get $p) (i32.const 0)) (then
                  (local.set $i (i32.const 0))
                  (loop $touch
                    (i32.store (i32.add (i32.shl (local.get $p) (i32.const 16))
                      (i32.shl (local.get $i) (i32.const 12))) (i32.const 1))
                    (local.set $i (i32.add (local.get $i) (i32.const 1)))
                    (br_if $touch (i32.lt_u (local.get $i) (i32.const 16))))
                  (br $grow)))))""",
            '(memory (export "memory") 1)',
        ),
        "memory.grow (no touch)": _module(
            '(func (export "_start") (loop $l (br_if $l (i32.ge_s (memory.grow (i32.const 1))'
            " (i32.const 0)))))"
        ),
        "memory.grow 0 (libcall)": _module(
            _loop(n(2_000_000), "(drop (memory.grow (i32.const 0)))")
        ),
        "memory.grow failing": _module(
            _loop(n(2_000_000), "(drop (memory.grow (i32.const 65536)))"),
        ),
        "table.grow": _module(
            _loop(n(200_000), "(drop (table.grow $t (ref.null func) (i32.const 1)))"),
            "(memory 1) (table $t 0 funcref)",
        ),
        "call_indirect storm": _module(
            """(type $v (func (param i32) (result i32)))
            (table 4 funcref) (elem (i32.const 0) $a $b $c $d)
            (func $a (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))
            (func $b (param i32) (result i32) (i32.xor (local.get 0) (i32.const 5)))
            (func $c (param i32) (result i32) (i32.mul (local.get 0) (i32.const 3)))
            (func $d (param i32) (result i32) (i32.shr_u (local.get 0) (i32.const 1)))
            """
            + _loop(
                n(10_000_000),
                "(local.set $x (call_indirect (type $v) (local.get $x)"
                " (i32.and (i32.mul (local.get $i) (i32.const 2654435761)) (i32.const 3))))",
                "(local $x i32)",
            )
        ),
        "call storm (leaf)": _module(
            "(func $leaf (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))"
            + _loop(n(20_000_000), "(local.set $x (call $leaf (local.get $x)))", "(local $x i32)")
        ),
        "br_table storm": _module(
            _loop(
                n(20_000_000),
                "(block $d (block $c (block $b (block $a"
                " (br_table $a $b $c $d (i32.and (i32.shr_u (i32.mul (local.get $i)"
                " (i32.const 2654435761)) (i32.const 13)) (i32.const 3))))"
                " (local.set $x (i32.add (local.get $x) (i32.const 1))) (br $d))"
                " (local.set $x (i32.xor (local.get $x) (i32.const 7))) (br $d))"
                " (local.set $x (i32.mul (local.get $x) (i32.const 3))) (br $d))",
                "(local $x i32)",
            )
        ),
        "deep recursion (to the limit, x2000)": _module(
            """(global $n (mut i32) (i32.const 0))
            (func $down (param i32) (result i32)
              (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
                (else (i32.add (call $down (i32.sub (local.get 0) (i32.const 1))) (i32.const 1)))))
            """
            + _loop(n(2_000), "(drop (call $down (i32.const 4000)))")
        ),
        "memory.fill 64 MiB": _module(
            _loop(
                n(100), f"(memory.fill (i32.const 0) (local.get $i) (i32.const {PAGES * 65536}))"
            ),
            f'(memory (export "memory") {PAGES})',
        ),
        "memory.copy 1 byte (libcall)": _module(
            _loop(n(5_000_000), "(memory.copy (i32.const 0) (i32.const 8) (i32.const 1))")
        ),
        "host call fd_write (empty)": _module(
            _loop(
                n(20_000),
                "(drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 8)))",
            )
        ),
        "out-of-bounds trap after 20M loops": _module(
            f"""(func (export "_start") (local $i i32)
              (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br_if $l (i32.lt_u (local.get $i) (i32.const {n(20_000_000)}))))
              (drop (i32.load (i32.const -1))))"""
        ),
    }


def dense_module(functions: int) -> bytes:
    """A module of `functions` generated functions of dense code (arithmetic, loads and
    stores, branches, a loop and a call each, about 500 bytes a function): what
    scripts/bench_metering.py times the metering and compilation of, per byte."""
    parts = []
    for k in range(functions):
        callee = f"(call $f{k - 1} (local.get $x) (local.get $y))" if k else "(local.get $x)"
        parts.append(
            f"""(func $f{k} (param $x i32) (param $y i32) (result i32) (local $i i32) (local $a i64)
              (local.set $a (i64.extend_i32_u (i32.xor (local.get $x) (i32.const {k * 7919}))))
              (loop $l
                (local.set $a (i64.add (i64.mul (local.get $a) (i64.const {k * 31 + 3}))
                  (i64.load (i32.and (i32.wrap_i64 (local.get $a)) (i32.const 4088)))))
                (if (i64.gt_u (local.get $a) (i64.const {k * 104729}))
                  (then (i64.store (i32.and (local.get $i) (i32.const 4088)) (local.get $a)))
                  (else (local.set $y (i32.rotl (local.get $y) (i32.const {k % 31 + 1})))))
                (local.set $i (i32.add (local.get $i) (i32.const 8)))
                (br_if $l (i32.lt_u (local.get $i) (i32.and (local.get $y) (i32.const 63)))))
              (i32.add (i32.wrap_i64 (i64.shr_u (local.get $a) (i64.const 17)))
                (i32.mul {callee} (i32.const {k | 1}))))"""
        )
    last = f"$f{functions - 1}"
    return _module(
        "".join(parts)
        + f'(func (export "_start") (drop (call {last} (i32.const 1) (i32.const 2))))'
    )
