"""Calibrating the metering's cost table: fuel per second, worst case against typical.

    ape run bench_metering            (or: python scripts/bench_metering.py)

Runs an adversarial suite (WAT, each case built to make one kind of instruction as slow
per unit of fuel as it can) and the catalogue's kernels through the sandbox, best of
`REPEATS` runs each, timed in the CPU time of the running thread (user and system: a shared
machine's other processes do not count; the best run is the least disturbed), and prints
per case its fuel, run time, fuel per second and `arith/case`: how many times fewer fuel a
second it burns than the plain arithmetic loop (the pointer chase's, over the first memory
tier's largest memory, is the chase's alone, without its table's fill, timed between its
marks; its time is the whole run's). `R_floor`, the lowest fuel per second of
any case, is what a provider can promise: a job's fuel limit over `R_floor` bounds its time.
For the catalogue it prints the metering's overhead: the metered run's time against the
same module run unmetered on the same engine. Per memory tier of the cost table
(`CostTable.memory_tiers`: a load's and a store's price by the job's memory limit) it
prints the calibration: a dependent pointer chase over the tier's largest memory, metered at
the tier's price, its fuel a second against `metering.R_FLOOR` (the margin), and the price
that would give the first tier's margin. `--runs N` times only the adversarial suite, every
case N times one run at a time, and prints each case's median and range of fuel a second
against `metering.R_FLOOR`, and the arithmetic loop's median over R_FLOOR (the floor's
distance below it). Needs no node.
"""

from __future__ import annotations

import functools
import statistics
import struct
import tempfile
import time

import click
import wasmtime

from computeshare import metering, sandbox, wasi
from computeshare.report import format_table
from computeshare.workloads import catalogue_module, pack_u64
from devtools.metering_cases import MEMORY_SIZES, adversarial_cases, chase_module, dense_module

REPEATS = 3
FUEL = sandbox.MAX_FUEL

KERNELS = [
    ("monte-carlo 10M", "monte-carlo", pack_u64(42, 10_000_000)),
    ("hash-chain 10M", "hash-chain", pack_u64(10_000_000) + b"seed"),
    ("matmul 64", "matmul", struct.pack("<IQ", 64, 7)),
]


def _best(func) -> tuple[float, object]:
    best, value = float("inf"), None
    for _ in range(REPEATS):
        began = time.thread_time()
        value = func()
        best = min(best, time.thread_time() - began)
    return best, value


def metered_time(module: bytes, stdin: bytes = b"") -> tuple[float, sandbox.RunResult]:
    """Best run time of the metered module (instantiation and run, compiled beforehand), with
    the first memory tier's largest memory (the suite's pointer chase grows to it)."""
    limit = sandbox.MAX_MEMORY_BYTES
    compiled, metered = sandbox._prepare(module, "_start", tier=sandbox.memory_tier(limit))
    return _best(
        lambda: sandbox._execute(compiled, metered, "_start", stdin, FUEL, memory_limit=limit)
    )


def unmetered_time(module: bytes, stdin: bytes) -> float:
    """Best run time of the module as it is, on the same engine, store limits and host (its
    host calls charge a counter of their own): the difference is the metering's."""
    engine = sandbox.engine("speed")
    compiled = wasmtime.Module(engine, module)
    counter_type = wasmtime.GlobalType(wasmtime.ValType.i64(), True)

    def once() -> None:
        store = wasmtime.Store(engine)
        store.set_limits(memory_size=sandbox.MAX_MEMORY_BYTES, instances=1, memories=1)
        host = sandbox._Host(store, stdin)
        host.fuel = wasmtime.Global(store, counter_type, wasmtime.Val.i64(FUEL))
        instance = sandbox._linker(host).instantiate(store, compiled)
        sandbox.on_wasm_stack(instance.exports(store)["_start"], store)

    total, _ = _best(once)
    return total


def case_rows() -> tuple[list[dict], float]:
    rows, rates = [], {}
    for label, module in adversarial_cases().items():
        seconds, result = metered_time(module)
        rates[label] = result.fuel / seconds
        if label.startswith("pointer chase"):  # the chase alone, not its table's fill
            rates[label], _, _ = chase_rate(sandbox.MAX_MEMORY_BYTES)
        rows.append(
            {"case": label, "status": result.status_name, "fuel": result.fuel, "s": seconds}
        )
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


def spread_rows(runs: int) -> list[dict]:
    """Every case of the adversarial suite timed `runs` times, one run at a time (the pointer
    chase timed alone, as in `case_rows`): per case, the median and the range of its fuel a
    second against `metering.R_FLOOR`, and the arithmetic loop's median over R_FLOOR."""
    cases = adversarial_cases()
    compiled = {}
    for label, module in cases.items():
        limit = sandbox.MAX_MEMORY_BYTES
        compiled[label] = sandbox._prepare(module, "_start", tier=sandbox.memory_tier(limit))
    rates: dict[str, list[float]] = {label: [] for label in cases}
    for _ in range(runs):
        for label, (module, metered) in compiled.items():
            if label.startswith("pointer chase"):
                rates[label].append(chase_rate(sandbox.MAX_MEMORY_BYTES, repeats=1)[0])
                continue
            began = time.thread_time()
            result = sandbox._execute(
                module, metered, "_start", b"", FUEL, memory_limit=sandbox.MAX_MEMORY_BYTES
            )
            rates[label].append(result.fuel / (time.thread_time() - began))
    rows = []
    for label, found in rates.items():
        median = statistics.median(found)
        rows.append(
            {
                "case": label,
                "median_Mfuel_per_s": f"{median / 1e6:,.0f}",
                "range": f"{min(found) / 1e6:,.0f} to {max(found) / 1e6:,.0f}",
                "median_over_R_FLOOR": f"{median / metering.R_FLOOR:.2f}",
                "worst_over_R_FLOOR": f"{min(found) / metering.R_FLOOR:.2f}",
            }
        )
    return rows


CHASE_STEPS = 4_000_000
MEMORY_REPEATS = 2


class _MarkedHost(wasi.Host):
    """A host noting the thread's CPU time and the fuel left at each `fd_write`: the chase
    module's marks around its chase."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.marks: list[tuple[float, int]] = []

    def fd_write(self, caller, *args):
        self.marks.append((time.thread_time(), self._fuel_left()))
        return super().fd_write(caller, *args)


def chase_rate(
    size: int, repeats: int = MEMORY_REPEATS
) -> tuple[float, float, sandbox.RunResult | None]:
    """Fuel a second of CPU time, and ns a step, of the dependent pointer chase over a memory
    of `size` bytes (the chase alone, between its marks: not the fill), metered at the price
    of the memory tier of a `size` memory limit, best of `repeats` runs."""
    tier = sandbox.memory_tier(size)
    compiled, metered = sandbox._prepare(chase_module(size, CHASE_STEPS), "_start", tier=tier)
    best, result = 0.0, None
    for _ in range(repeats):
        store = wasmtime.Store(sandbox.engine("speed"))
        host = _MarkedHost(store, b"")
        try:
            result = sandbox._run_instance(
                host, store, compiled, metered, "_start", FUEL, "speed", memory_limit=size
            )
        finally:
            host.close()
            store.close()  # its memory now, not at the next collection
        (began, before), (ended, after) = host.marks
        best = max(best, (before - after - sandbox.HOST_CALL_FUEL) / (ended - began))
    return best, _chase_fuel(tier) / best * 1e9, result


def grow_rate(module: bytes, size: int) -> tuple[float, sandbox.RunResult]:
    """Fuel a second of CPU time of a grow loop up to `size` (instantiation, run, teardown)."""
    compiled, metered = sandbox._prepare(module, "_start", tier=sandbox.memory_tier(size))

    best, result = float("inf"), None
    for _ in range(MEMORY_REPEATS):
        began = time.thread_time()
        result = sandbox._execute(compiled, metered, "_start", b"", FUEL, memory_limit=size)
        best = min(best, time.thread_time() - began)
    assert result is not None
    return result.fuel / best, result


def memory_rows() -> tuple[list[dict], float]:
    """Per memory size: the chase's and the grow loops' fuel a second, metered at the price
    of the size's memory tier; the lowest of all."""
    cases = adversarial_cases()
    rows, lowest = [], float("inf")
    for size in MEMORY_SIZES:
        chase, ns, _ = chase_rate(size)
        tier = sandbox.memory_tier(size)
        touch, _ = grow_rate(cases["memory.grow + touch"], size)
        grow, _ = grow_rate(cases["memory.grow (no touch)"], size)
        lowest = min(lowest, chase, touch, grow)
        click.echo(
            f"  {size >> 20} MiB: chase {chase / 1e6:,.0f}, grow and touch {touch / 1e6:,.0f},"
            f" grow {grow / 1e6:,.0f} Mfuel/s",
            err=True,
        )
        rows.append(
            {
                "memory_MiB": f"{size / 2**20:,.0f}",
                "tier": tier,
                "load_fuel": metering.COSTS.memory_tiers[tier][1],
                "chase_Mfuel_per_s": f"{chase / 1e6:,.0f}",
                "over_R_FLOOR": f"{chase / metering.R_FLOOR:.2f}",
                "chase_ns_per_load": f"{ns:.0f}",
                "grow_touch_Mfuel_per_s": f"{touch / 1e6:,.0f}",
                "grow_Mfuel_per_s": f"{grow / 1e6:,.0f}",
            }
        )
    return rows, lowest


def _chase_fuel(tier: int = 0) -> int:
    """Fuel a step of the chase: its loop's region (load, the counter, the branch)."""
    costs = metering.COSTS
    return costs.memory_tiers[tier][1] + 9 * costs.simple + costs.branch


def tier_rows() -> list[dict]:
    """The memory tiers' calibration: per tier, the chase over its largest memory at its
    price, fuel a second against R_FLOOR, and the load price that would keep the first
    tier's margin over R_FLOOR at the time measured."""
    measured = []
    for number, (most, load, store) in enumerate(metering.COSTS.memory_tiers):
        rate, ns, result = chase_rate(most)
        assert result is not None and result.status == sandbox.STATUS_OK, result
        measured.append((number, most, load, store, rate, ns))
    margin = measured[0][4] / metering.R_FLOOR
    rows = []
    for number, most, load, store, rate, ns in measured:
        # fuel a step at the first tier's margin, less the step's other instructions
        price = margin * metering.R_FLOOR * ns / 1e9 - (_chase_fuel(number) - load)
        rows.append(
            {
                "tier": number,
                "memory_limit_up_to": f"{most >> 20:,} MiB",
                "load_fuel": load,
                "store_fuel": store,
                "chase_ns_per_load": f"{ns:.0f}",
                "chase_Mfuel_per_s": f"{rate / 1e6:,.0f}",
                "over_R_FLOOR": f"{rate / metering.R_FLOOR:.2f}",
                "load_for_tier0_margin": f"{price:.0f}",
            }
        )
    return rows


PREPARE_FUNCTIONS = (2_000, 16_000)


def prepare_rows() -> list[dict]:
    """Per generated module: metering's and compilation's CPU time per byte, a cold
    `prepare_cached` (meter, compile, write the entry) and a warm one (read, check,
    deserialize), against `sandbox.prepare_seconds`."""
    rows = []
    for functions in PREPARE_FUNCTIONS:
        module = dense_module(functions)
        megabytes = len(module) / 1e6
        began = time.thread_time()
        metered = metering.meter(module)
        meter_s = time.thread_time() - began
        began = time.thread_time()
        wasmtime.Module(sandbox.engine("speed"), metered.module)
        compile_s = time.thread_time() - began
        with tempfile.TemporaryDirectory() as directory:
            began = time.perf_counter()
            sandbox.prepare_cached(module, "_start", directory)
            cold = time.perf_counter() - began
            warm, _ = _best(functools.partial(sandbox.prepare_cached, module, "_start", directory))
        rows.append(
            {
                "module_MB": f"{megabytes:.2f}",
                "meter_s_per_MB": f"{meter_s / megabytes:.2f}",
                "compile_s_per_MB": f"{compile_s / megabytes:.2f}",
                "cold_prepare_s": f"{cold:.2f}",
                "cached_prepare_s": f"{warm:.3f}",
                "prepare_seconds": f"{sandbox.prepare_seconds(len(module)):.1f}",
            }
        )
    return rows


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
@click.option("--memory-only", is_flag=True, help="Only the memory sizes' table.")
@click.option("--tiers-only", is_flag=True, help="Only the memory tiers' calibration.")
@click.option("--prepare-only", is_flag=True, help="Only the module preparation table.")
@click.option(
    "--runs",
    type=click.IntRange(min=1),
    help="Only the adversarial suite, each case timed this many times: median and range.",
)
def cli(memory_only: bool, tiers_only: bool, prepare_only: bool, runs: int | None):
    """The adversarial suite and the catalogue, metered (best of 3)."""
    if runs:
        click.echo(f"cost table version {metering.COST_TABLE_VERSION}, {runs} runs a case")
        rows = spread_rows(runs)
        click.echo(format_table(rows, list(rows[0])))
        arith = float(rows[0]["median_Mfuel_per_s"].replace(",", "")) * 1e6
        worst = min(float(row["worst_over_R_FLOOR"]) for row in rows)
        lowest = min(float(row["median_over_R_FLOOR"]) for row in rows)
        click.echo(
            f"R_FLOOR = {metering.R_FLOOR / 1e6:,.0f} Mfuel/s; arith loop / R_FLOOR = "
            f"{arith / metering.R_FLOOR:.2f}; lowest median {lowest:.2f} x R_FLOOR, "
            f"worst run {worst:.2f} x R_FLOOR"
        )
        return
    if tiers_only:
        _print_tiers()
        return
    if prepare_only:
        rows = prepare_rows()
        click.echo(format_table(rows, list(rows[0])))
        return
    if memory_only:
        rows, lowest = memory_rows()
        click.echo(format_table(rows, list(rows[0])))
        click.echo(f"lowest: {lowest / 1e6:,.0f} Mfuel/s")
        return
    click.echo(f"cost table version {metering.COST_TABLE_VERSION}: {metering.COSTS}")
    rows, floor = case_rows()
    columns = ["case", "status", "fuel", "s", "Mfuel_per_s", "arith_over_case"]
    click.echo(format_table(rows, columns))
    arith = next(r for r in rows if r["case"].startswith("arith"))
    click.echo(f"R_floor = {floor / 1e6:,.0f} Mfuel/s (arith loop {arith['Mfuel_per_s']} Mfuel/s)")
    columns = ["case", "status", "fuel", "s", "Mfuel_per_s", "unmetered_s", "overhead"]
    click.echo(format_table(kernel_rows(), columns))
    click.echo(
        f"memory (jobs may declare up to {sandbox.MAX_MEMORY_LIMIT >> 20:,} MiB, priced by "
        f"tier), best of {MEMORY_REPEATS}: a {CHASE_STEPS:,}-step pointer chase timed alone; "
        "grow loops to the size"
    )
    rows, lowest = memory_rows()
    click.echo(format_table(rows, list(rows[0])))
    click.echo(f"lowest: {lowest / 1e6:,.0f} Mfuel/s")
    _print_tiers()
    click.echo("preparing generated modules (CPU time; cold and cached prepare_cached)")
    rows = prepare_rows()
    click.echo(format_table(rows, list(rows[0])))


def _print_tiers() -> None:
    click.echo(
        f"memory tiers (cost table version {metering.COST_TABLE_VERSION}): the chase over each "
        f"tier's largest memory at its price, best of {MEMORY_REPEATS}, against R_FLOOR = "
        f"{metering.R_FLOOR / 1e6:,.0f} Mfuel/s"
    )
    rows = tier_rows()
    click.echo(format_table(rows, list(rows[0])))
    lowest = min(float(row["over_R_FLOOR"]) for row in rows)
    click.echo(f"lowest margin over R_FLOOR: {lowest:.2f}")


if __name__ == "__main__":
    cli()
