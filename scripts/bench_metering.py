"""Calibrating the metering's cost table: fuel per second, worst case against typical.

    ape run bench_metering            (or: python scripts/bench_metering.py)

Runs an adversarial suite (WAT, each case built to make one kind of instruction as slow
per unit of fuel as it can) and the catalogue's kernels through the sandbox, best of
`REPEATS` runs each (the machine is shared: the best run is the least disturbed), and prints
per case its fuel, run time, fuel per second and `arith/case`: how many times fewer fuel a
second it burns than the plain arithmetic loop. `R_floor`, the lowest fuel per second of
any case, is what a provider can promise: a job's fuel limit over `R_floor` bounds its time.
For the catalogue it prints the metering's overhead: the metered run's time against the
same module run unmetered on the same engine. Needs no node.
"""

from __future__ import annotations

import struct
import time

import click
import wasmtime

from computeshare import metering, sandbox
from computeshare.report import format_table
from computeshare.workloads import catalogue_module, pack_u64

REPEATS = 3
FUEL = sandbox.MAX_FUEL

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


PAGES = sandbox.MAX_MEMORY_BYTES // 65_536
ENTRIES = sandbox.MAX_MEMORY_BYTES // 4
# x -> x * 2654435761 + 12345 mod 2**24 has full period (Hull-Dobell): one cycle through
# every entry of the 64 MiB memory, in an order no prefetcher follows.
POINTER_CHASE = _module(
    f"""(func (export "_start") (local $i i32) (local $p i32)
      (loop $fill
        (i32.store (i32.shl (local.get $i) (i32.const 2))
          (i32.shl (i32.and (i32.add (i32.mul (local.get $i) (i32.const 2654435761))
            (i32.const 12345)) (i32.const {ENTRIES - 1})) (i32.const 2)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $fill (i32.lt_u (local.get $i) (i32.const {ENTRIES}))))
      (local.set $i (i32.const 0))
      (loop $chase
        (local.set $p (i32.load (local.get $p)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $chase (i32.lt_u (local.get $i) (i32.const 20000000)))))""",
    f'(memory (export "memory") {PAGES})',
)

CASES: dict[str, bytes] = {
    "arith loop (i32.add)": _module(
        _loop(200_000_000, "(local.set $x (i32.add (local.get $x) (local.get $i)))", "(local $x i32)")
    ),
    "i64 division chain": _module(
        _loop(
            20_000_000,
            "(local.set $x (i64.div_u (i64.const -1) (i64.or (local.get $x) (i64.const 3))))",
            "(local $x i64)",
        )
    ),
    "f64 sqrt chain": _module(
        _loop(
            20_000_000,
            "(local.set $x (f64.add (f64.sqrt (local.get $x)) (f64.const 1)))",
            "(local $x f64)",
        )
    ),
    "pointer chase 64 MiB": POINTER_CHASE,
    "memory.grow + touch": _module(
        f"""(func (export "_start") (local $p i32) (local $i i32)
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
        "(memory (export \"memory\") 1)",
    ),
    "memory.grow 0 (libcall)": _module(_loop(2_000_000, "(drop (memory.grow (i32.const 0)))")),
    "memory.grow failing": _module(
        _loop(2_000_000, f"(drop (memory.grow (i32.const {PAGES})))"),
    ),
    "table.grow": _module(
        _loop(200_000, "(drop (table.grow $t (ref.null func) (i32.const 1)))"),
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
            10_000_000,
            "(local.set $x (call_indirect (type $v) (local.get $x)"
            " (i32.and (i32.mul (local.get $i) (i32.const 2654435761)) (i32.const 3))))",
            "(local $x i32)",
        )
    ),
    "call storm (leaf)": _module(
        "(func $leaf (param i32) (result i32) (i32.add (local.get 0) (i32.const 1)))"
        + _loop(20_000_000, "(local.set $x (call $leaf (local.get $x)))", "(local $x i32)")
    ),
    "br_table storm": _module(
        _loop(
            20_000_000,
            "(block $d (block $c (block $b (block $a"
            " (br_table $a $b $c $d (i32.and (i32.shr_u (i32.mul (local.get $i)"
            " (i32.const 2654435761)) (i32.const 13)) (i32.const 3))))"
            " (local.set $x (i32.add (local.get $x) (i32.const 1))) (br $d))"
            " (local.set $x (i32.xor (local.get $x) (i32.const 7))) (br $d))"
            " (local.set $x (i32.mul (local.get $x) (i32.const 3))) (br $d))",
            "(local $x i32)",
        )
    ),
    "deep recursion (to the limit, x200)": _module(
        """(global $n (mut i32) (i32.const 0))
        (func $down (param i32) (result i32)
          (if (result i32) (i32.eqz (local.get 0)) (then (i32.const 0))
            (else (i32.add (call $down (i32.sub (local.get 0) (i32.const 1))) (i32.const 1)))))
        """
        + _loop(200, "(drop (call $down (i32.const 8000)))")
    ),
    "memory.fill 64 MiB": _module(
        _loop(100, f"(memory.fill (i32.const 0) (local.get $i) (i32.const {PAGES * 65536}))"),
        f'(memory (export "memory") {PAGES})',
    ),
    "memory.copy 1 byte (libcall)": _module(
        _loop(5_000_000, "(memory.copy (i32.const 0) (i32.const 8) (i32.const 1))")
    ),
    "host call fd_write (empty)": _module(
        _loop(200_000, "(drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 8)))")
    ),
    "out-of-bounds trap after 20M loops": _module(
        """(func (export "_start") (local $i i32)
          (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $l (i32.lt_u (local.get $i) (i32.const 20000000))))
          (drop (i32.load (i32.const -1))))"""
    ),
}

KERNELS = [
    ("monte-carlo 1M", "monte-carlo", pack_u64(42, 1_000_000)),
    ("hash-chain 1M", "hash-chain", pack_u64(1_000_000) + b"seed"),
    ("matmul 64", "matmul", struct.pack("<IQ", 64, 7)),
]


def _best(func) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(REPEATS):
        began = time.perf_counter()
        value = func()
        best = min(best, time.perf_counter() - began)
    return best, value


def metered_time(module: bytes, stdin: bytes = b"") -> tuple[float, sandbox.RunResult]:
    """Best run time of the metered module, its compilation excluded."""
    compile_time, _ = _best(lambda: sandbox.check(module, "_start"))
    total, result = _best(lambda: sandbox.run(module, "_start", stdin, FUEL))
    return max(total - compile_time, 1e-9), result


def unmetered_time(module: bytes, stdin: bytes) -> float:
    """Best run time of the module as it is, on the same engine settings, fuel off."""
    engine = sandbox.engine()
    compiled = wasmtime.Module(engine, module)

    def once() -> None:
        store = wasmtime.Store(engine)
        linker = wasmtime.Linker(engine)
        i32 = wasmtime.ValType.i32()
        four = wasmtime.FuncType([i32] * 4, [i32])
        state = {"cursor": 0}

        def fd_read(caller, fd, iovs, count, nread):
            memory = caller.get("memory")
            start = int.from_bytes(memory.read(caller, iovs, iovs + 4), "little")
            length = int.from_bytes(memory.read(caller, iovs + 4, iovs + 8), "little")
            chunk = stdin[state["cursor"] : state["cursor"] + length]
            memory.write(caller, chunk, start)
            state["cursor"] += len(chunk)
            memory.write(caller, len(chunk).to_bytes(4, "little"), nread)
            return 0

        linker.define_func("wasi_snapshot_preview1", "fd_read", four, fd_read, access_caller=True)
        linker.define_func(
            "wasi_snapshot_preview1", "fd_write", four, lambda *args: 0, access_caller=True
        )
        instance = linker.instantiate(store, compiled)
        instance.exports(store)["_start"](store)

    total, _ = _best(once)
    return total


def case_rows() -> tuple[list[dict], float]:
    rows, rates = [], {}
    for label, module in CASES.items():
        seconds, result = metered_time(module)
        rates[label] = result.fuel / seconds
        rows.append({"case": label, "status": result.status_name, "fuel": result.fuel, "s": seconds})
    arith = rates["arith loop (i32.add)"]
    for row in rows:
        rate = rates[row["case"]]
        row.update(
            fuel=f"{row['fuel']:,}",
            s=f"{row['s']:.3f}",
            Mfuel_per_s=f"{rate / 1e6:,.0f}",
            arith_over_case=f"{arith / rate:.2f}",
        )
    return rows, min(rates.values())


def kernel_rows() -> list[dict]:
    rows = []
    for label, name, stdin in KERNELS:
        module = catalogue_module(name)
        seconds, result = metered_time(module, stdin)
        plain = unmetered_time(module, stdin)
        rows.append(
            {
                "case": label,
                "status": result.status_name,
                "fuel": f"{result.fuel:,}",
                "s": f"{seconds:.3f}",
                "Mfuel_per_s": f"{result.fuel / seconds / 1e6:,.0f}",
                "unmetered_s": f"{plain:.3f}",
                "overhead": f"{(seconds / plain - 1) * 100:+.0f}%",
            }
        )
    return rows


@click.command()
def cli():
    """The adversarial suite and the catalogue, metered (best of 3)."""
    click.echo(f"cost table version {metering.COST_TABLE_VERSION}: {metering.COSTS}")
    rows, floor = case_rows()
    columns = ["case", "status", "fuel", "s", "Mfuel_per_s", "arith_over_case"]
    click.echo(format_table(rows, columns))
    arith = next(r for r in rows if r["case"].startswith("arith"))
    click.echo(f"R_floor = {floor / 1e6:,.0f} Mfuel/s (arith loop {arith['Mfuel_per_s']} Mfuel/s)")
    columns = ["case", "status", "fuel", "s", "Mfuel_per_s", "unmetered_s", "overhead"]
    click.echo(format_table(kernel_rows(), columns))


if __name__ == "__main__":
    cli()
