"""Metering by rewriting: fuel that bounds time, the same on every replica.

Why one module: the cost table, the injected code and the rewrite decide together the fuel
a job commits to (`COST_TABLE_VERSION` versions all three), so they change together; the
binary format itself is `wasm_codec`'s.

`meter(module)` returns the module with its metering injected, from a versioned cost table
(`COST_TABLE_VERSION`, part of what a job commits to). Every replica and the arbiter apply
the same rewrite, so a run's fuel is a property of the module and its input, not of the
engine, its optimisation level or the machine:

- Fuel is an injected mutable i64 global, exported as `FUEL_EXPORT`, that the host sets to
  the job's limit (less `Metered.setup_fuel`) before any code runs. Charges are made up
  front at charge points: a function's entry, every loop's header, after the end of any
  block holding a charge point, and at the start of any arm (a then or else arm, the code
  a forward `br_if` skips) costing more than `CostTable.fold_limit`. A charge point's
  region (the code up to the next charge points) is charged the cost of its costliest
  path, at least `CostTable.region_minimum`: cheap arms fold into their region and are
  charged whether taken or not, every back-edge meets a charge. When the global drops
  below zero the charge traps at once (`unreachable`) and the host reports "out of fuel"
  with the whole limit used. After any trap the host reads the global: the fuel used is
  identical everywhere, since it counts only charges. Each function keeps a local copy of
  the global (reloaded after calls), so a charge reads a register; it stores the global.
- A leaf (calls nothing, no loop, no depth counter, one region) that is never exported,
  put in a table or named by `ref.func` is charged by its callers: a call to it costs the
  call and its region, and it charges nothing itself.
- Costs price the worst case, not the average: a load or store is a cache and TLB miss
  over the job's whole memory (priced by its memory limit's tier, `CostTable.memory_tiers`),
  `memory.grow` is charged per page requested and `table.grow` per element (computed from
  the operand, before the instruction runs), bulk memory and table instructions per byte or
  element moved, calls and `call_indirect` and `br_table` at what they cost. Host calls
  charge the same global (`computeshare.sandbox`).
- The call stack is bounded by an injected counter, not by native bytes: each function adds
  its frame weight on entry (1 + its parameters, locals and instructions over 8: a bound
  on the native frame, see `frame_weight`) and subtracts it on every exit (the body is
  wrapped in a block, `return` becomes a branch to it). A call that would take the count
  past `STACK_BUDGET` traps, at the same call on every engine; the native stack given to
  wasmtime (`NATIVE_STACK_BYTES`) holds twice the budget's frames, so its own overflow
  check never trips first.
  Leaves (functions that call nothing, weight at most `LEAF_WEIGHT`) skip the counter:
  one such frame on top of a full budget fits the native margin.
- The start function is not run at instantiation (the host has not set the fuel yet): it
  is exported as `START_EXPORT` and the host calls it first.

Features: the MVP with mutable globals, multi-value, sign extension, saturating float to int,
bulk memory and the reference-type table instructions. Anything else (SIMD, threads,
tail calls, exceptions, GC, several memories) is refused with `MeteringError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from computeshare.wasm_codec import (
    BLOCK,
    BR,
    BR_IF,
    BR_TABLE,
    CALL,
    CALL_INDIRECT,
    ELSE,
    END,
    I32,
    IF,
    LOOP,
    MEMORY_GROW,
    REF_FUNC,
    RETURN,
    UNREACHABLE,
    Instruction,
    MeteringError,
    block_type_for,
    encode,
    parse,
    read_body,
    sleb,
    type_entries,
    uleb,
    vec,
)

# Version 3 (version 2 priced a load 400, 680 and 800 by tier under a floor of 10**9, 32
# times below an arithmetic loop) prices every instruction class so the floor is at most 5
# times below that loop: loads and stores 8, 7.35 and 7.25 times dearer by tier, calls,
# `call_indirect`, `br_table`, divisions, pages and host calls where their case burned less
# than 1.5 times the floor; and it raises the stack budget from 16,384 to 131,072 units
# (`STACK_BUDGET`: a call chain deeper than version 2 allowed now runs). A job's fuel is a
# function of its module, input, memory limit and this version; a spec names its version
# and a provider metering with another refuses it.
COST_TABLE_VERSION = 3
# The published floor: the fewest fuel a second any module burns under this cost table (a
# job's run takes at most its fuel over R_FLOOR, after the worker's start-up), 4.6 times
# below an arithmetic loop (32 * 10**9). Every case of the adversarial suite (`ape run
# bench_metering --runs 9`: CPU time on a machine shared with others, each case nine times;
# median, then range, in 10**9 fuel a second) burns at least 1.5 times it at the median and
# at least it at the worst run: the slowest are the bulk fill (15.2; 12.0 to 15.9), deep
# recursion (15.4; 12.9 to 16.7), the dependent pointer chase over 256 MiB (14.3; 13.0 to
# 16.2, 3,200 fuel a load), `call_indirect` and `br_table` storms (13.7), the division and
# square-root chains (14.6, 14.2), the tight loop charged the region minimum (14.5) and the
# loop ending in an out-of-bounds trap (13.0; 12.6 to 13.1). The chase slows as the memory
# grows (cache, then TLB misses), so a load's and a store's price rise with the job's memory
# limit (`CostTable.memory_tiers`): over each tier's largest memory (best of 2, three runs)
# 240 to 275 ns a load over 256 MiB (11.7 to 13.5 at 3,200), 325 to 350 ns over 1 GiB (14.4
# to 15.5 at 5,000), 410 to 425 ns over 4 GiB (13.7 to 14.2 at 5,800): the larger tiers keep
# at least the first one's margin (version 2's twelve runs measured 250, 390 and 455 ns at
# the median, 350, 450 and 480 at the worst: their margin holds at those too).
# Providers' policies derive their wall-clock limits and acceptance from it.
R_FLOOR = 7_000_000_000
FUEL_EXPORT = "computeshare:fuel"
START_EXPORT = "computeshare:start"
WORK_EXPORT = "computeshare:work"  # the audit's counter (`meter(..., audit=True)`)
# Frame weight units a call chain may hold; a unit stands for 64 bytes of native stack.
# 131,072 units (8 MiB of frames at the bound): CPython's eval loop weighs 2,953 units and
# nests once per Python call and import, so a hello-world needs about 30,000 and a script
# importing json and hashlib about 55,000 (examples/python/README.md); this budget holds 2.4
# times the latter.
STACK_BUDGET = 131_072
STACK_UNIT_BYTES = 64
# The native stack wasmtime gets (`max_wasm_stack`, 16 MiB): twice what the budget can use
# (the rest is for the trampolines, libcalls and host calls below the deepest frame). It is
# larger than a main thread's usual 8 MiB, so the sandbox runs module code on a thread of its
# own with `sandbox.THREAD_STACK_BYTES` of stack (`sandbox.on_wasm_stack`).
NATIVE_STACK_BYTES = 2 * STACK_BUDGET * STACK_UNIT_BYTES
# A function that calls nothing cannot deepen the stack past its own frame: one no heavier
# than this skips the counter (the native margin above holds it), the hot leaf calls of a
# kernel then cost no more than their instructions.
LEAF_WEIGHT = 64
# Caps on the count a dynamic charge multiplies: a request past them fails (grow returns
# -1, a bulk instruction traps on its bounds) without doing the work.
MAX_PAGES = 65_536
MAX_ELEMENTS = 1 << 20
MAX_BYTES = 1 << 32


@dataclass(frozen=True)
class CostTable:
    """Fuel per instruction class (version `COST_TABLE_VERSION`); see `cost_of`."""

    version: int = COST_TABLE_VERSION
    simple: int = 1  # integer and float arithmetic, locals, globals, constants, select
    divide: int = 40  # integer division and remainder
    float_divide: int = 112  # float division and square root
    branch: int = 1  # br, br_if, if, else, return
    br_table: int = 56
    call: int = 44  # includes the injected depth counter
    call_indirect: int = 112
    memory_size: int = 2
    memory_grow: int = 2_000  # the libcall
    # A page granted: mapping, faulting in and zeroing 64 KiB, about 33 us touched (and 120 us
    # once, with the machine short of memory: at least the floor's time even then).
    memory_grow_page: int = 1_000_000
    table_access: int = 8  # table.get, table.set, table.size, ref.func
    table_grow: int = 2_000
    table_grow_element: int = 4
    bulk: int = 200  # the libcall of memory.copy/fill/init, table.copy/init/fill, *.drop
    bulk_byte: int = 1  # per 2 bytes; see `bulk_unit_shift`
    bulk_unit_shift: int = 1
    bulk_element: int = 4
    # A then or else arm, or code a br_if skips, costing more than this gets a charge of its
    # own (cheaper ones fold into the enclosing region's); every charge is at least
    # `region_minimum`, the charge's own time (so a loop of next to nothing is priced).
    fold_limit: int = 32
    region_minimum: int = 8
    memory_page: int = 1_000_000  # a page of the initial memory, charged before the run
    table_element: int = 4  # an element of the initial table, charged before the run
    # A load and a store are priced as a cache and TLB miss over the job's whole memory, so
    # by its memory limit, in tiers: (largest memory limit in bytes, load, store), ascending,
    # the last at wasm32's 4 GiB. A dependent pointer chase over each tier's largest memory
    # burns about the same fuel a second at its price (see `R_FLOOR`).
    memory_tiers: tuple[tuple[int, int, int], ...] = (
        (256 << 20, 3_200, 3_200),
        (1 << 30, 5_000, 5_000),
        (4 << 30, 5_800, 5_800),
    )

    @property
    def load(self) -> int:
        """A load's price in the first tier (memory limits up to 256 MiB)."""
        return self.memory_tiers[0][1]

    @property
    def store(self) -> int:
        """A store's price in the first tier."""
        return self.memory_tiers[0][2]

    def tier(self, memory_limit: int) -> int:
        """The memory tier of a job's memory limit (bytes): the first whose bound holds it;
        `MeteringError` above the last."""
        for number, (most, _, _) in enumerate(self.memory_tiers):
            if memory_limit <= most:
                return number
        raise MeteringError(f"no memory tier holds a memory limit of {memory_limit:,} bytes")


COSTS = CostTable()


@dataclass(frozen=True)
class Metered:
    """A metered module and the fuel its instantiation costs (initial memory and tables)."""

    module: bytes
    setup_fuel: int
    has_start: bool = False
    functions: int = 0
    weights: tuple[int, ...] = field(default=(), repr=False)
    tier: int = 0  # the memory tier its loads and stores are priced for


_DIVIDES = {0x6D, 0x6E, 0x6F, 0x70, 0x7F, 0x80, 0x81, 0x82}
_FLOAT_DIVIDES = {0x91, 0x95, 0x9F, 0xA3}  # sqrt and div
_SIMPLE_NUMERIC = set(range(0x45, 0xC5)) - _DIVIDES - _FLOAT_DIVIDES


def _opcode_costs(costs: CostTable, tier: int = 0) -> dict[int, int]:
    _, load, store = costs.memory_tiers[tier]
    table = {
        0x00: costs.branch,  # unreachable
        0x01: 0,  # nop
        BLOCK: 0,
        LOOP: 0,
        IF: costs.branch,
        ELSE: costs.branch,
        END: 0,
        BR: costs.branch,
        BR_IF: costs.branch,
        BR_TABLE: costs.br_table,
        RETURN: costs.branch,
        CALL: costs.call,
        CALL_INDIRECT: costs.call_indirect,
        0x1A: costs.simple,  # drop
        0x1B: costs.simple,  # select
        0x1C: costs.simple,  # select t
        0x20: costs.simple,
        0x21: costs.simple,
        0x22: costs.simple,
        0x23: costs.simple,
        0x24: costs.simple,
        0x25: costs.table_access,  # table.get
        0x26: costs.table_access,  # table.set
        0x3F: costs.memory_size,
        MEMORY_GROW: costs.memory_grow,
        0x41: costs.simple,
        0x42: costs.simple,
        0x43: costs.simple,
        0x44: costs.simple,
        0xD0: costs.simple,  # ref.null
        0xD1: costs.simple,  # ref.is_null
        0xD2: costs.table_access,  # ref.func
    }
    table.update(dict.fromkeys(range(0x28, 0x36), load))
    table.update(dict.fromkeys(range(0x36, 0x3F), store))
    table.update(dict.fromkeys(_SIMPLE_NUMERIC, costs.simple))
    table.update(dict.fromkeys(_DIVIDES, costs.divide))
    table.update(dict.fromkeys(_FLOAT_DIVIDES, costs.float_divide))
    return table


# 0xFC sub-opcodes: (cost field, dynamic charge: None, "byte" or "element").
_FC = {
    **{sub: ("simple", None) for sub in range(8)},  # saturating float to int
    8: ("bulk", "byte"),  # memory.init
    9: ("bulk", None),  # data.drop
    10: ("bulk", "byte"),  # memory.copy
    11: ("bulk", "byte"),  # memory.fill
    12: ("bulk", "element"),  # table.init
    13: ("bulk", None),  # elem.drop
    14: ("bulk", "element"),  # table.copy
    15: ("table_grow", "grow"),  # table.grow
    16: ("table_access", None),  # table.size
    17: ("bulk", "element"),  # table.fill
}


# ---------------------------------------------------------------- injected code

_LOCAL_GET, _LOCAL_SET, _LOCAL_TEE, _GLOBAL_GET, _GLOBAL_SET = 0x20, 0x21, 0x22, 0x23, 0x24


def _charge_code(fuel: int, cache: int, cost: int) -> bytes:
    """cache -= cost; fuel = cache; if cache < 0: unreachable. `cache` is the function's
    local copy of the fuel global: the charge reads a register, the global is stored for
    the host (and is exact at any trap)."""
    local = uleb(cache)
    return (
        bytes([_LOCAL_GET])
        + local
        + b"\x42"
        + sleb(cost)
        + b"\x7d"  # i64.sub
        + bytes([_LOCAL_TEE])
        + local
        + bytes([_GLOBAL_SET])
        + uleb(fuel)
        + bytes([_LOCAL_GET])
        + local
        + b"\x42\x00\x53"  # i64.const 0, i64.lt_s
        + b"\x04\x40\x00\x0b"  # if unreachable end
    )


def _reload_code(fuel: int, cache: int) -> bytes:
    """cache = fuel: after a call, which may have charged the global."""
    return bytes([_GLOBAL_GET]) + uleb(fuel) + bytes([_LOCAL_SET]) + uleb(cache)


def _depth_code(depth: int, weight: int, enter: bool) -> bytes:
    """depth += weight (trapping past the budget) on entry; depth -= weight on exit."""
    g = uleb(depth)
    change = bytes([_GLOBAL_GET]) + g + b"\x41" + sleb(weight) + (b"\x6a" if enter else b"\x6b")
    code = change + bytes([_GLOBAL_SET]) + g
    if enter:
        code += bytes([_GLOBAL_GET]) + g + b"\x41" + sleb(STACK_BUDGET)
        code += b"\x4b\x04\x40\x00\x0b"  # i32.gt_u, if unreachable end
    return code


def _grow_helper_body(fuel: int, price: int) -> bytes:
    """(param $n i32) (result i32) (local $r i32): $r = memory.grow($n); when granted
    ($r != -1), fuel -= $n * price, trapping below zero; returns $r. A failed grow costs
    only its instruction: it does no work."""
    g = uleb(fuel)
    code = (
        b"\x20\x00\x40\x00\x21\x01"  # local.get 0, memory.grow, local.set 1
        + b"\x20\x01\x41\x7f\x47\x04\x40"  # local.get 1, i32.const -1, i32.ne, if
        + bytes([_GLOBAL_GET])
        + g
        + b"\x20\x00\xad\x42"
        + sleb(price)
        + b"\x7e\x7d"  # i64.mul, i64.sub
        + bytes([_GLOBAL_SET])
        + g
        + bytes([_GLOBAL_GET])
        + g
        + b"\x42\x00\x53\x04\x40\x00\x0b"  # below zero: unreachable
        + b"\x0b\x20\x01\x0b"  # end, local.get 1, end
    )
    return b"\x01\x01\x7f" + code  # one i32 local


def _helper_body(fuel: int, price: int, shift: int, cap: int) -> bytes:
    """(param $n i32) (result i32): fuel -= (min(u64($n), cap) >> shift, rounded up) * price,
    trapping below zero; returns $n."""
    g = uleb(fuel)
    count = b"\x20\x00\xad"  # local.get 0, i64.extend_i32_u
    if cap < 1 << 32:
        # select(cap, n, n > cap)
        count = b"\x42" + sleb(cap) + count + b"\x20\x00\xad\x42" + sleb(cap) + b"\x56\x1b"
    if shift:
        count += b"\x42" + sleb((1 << shift) - 1) + b"\x7c"  # + (2**shift - 1)
        count += b"\x42" + sleb(shift) + b"\x88"  # >> shift (unsigned)
    code = (
        bytes([_GLOBAL_GET])
        + g
        + count
        + b"\x42"
        + sleb(price)
        + b"\x7e"  # i64.mul
        + b"\x7d"  # i64.sub
        + bytes([_GLOBAL_SET])
        + g
        + bytes([_GLOBAL_GET])
        + g
        + b"\x42\x00\x53\x04\x40\x00\x0b"
        + b"\x20\x00\x0b"  # local.get 0, end
    )
    return uleb(0) + code  # no locals


# ---------------------------------------------------------------- the rewrite


def frame_weight(params: int, locals_: int, instructions: int) -> int:
    """Stack units a frame may take: 1 for the frame itself, and one per 8 slots.

    A slot is 8 bytes of native stack (no value is wider without SIMD). A frame holds at
    most its parameters, its locals and one value per instruction (the operand stack never
    holds more values than the instructions that pushed them, and each of the compiler's
    temporaries stands for an instruction): 8 slots fill a 64-byte unit, and the fixed part
    (return address, frame pointer, saved registers) fits the first unit."""
    return 1 + (params + locals_ + instructions + 7) // 8


@dataclass
class _Function:
    """A decoded function body and what its rewrite wraps it in."""

    header: bytes  # the locals declaration, with the fuel cache (an i64) appended
    cache: int  # the fuel cache's local index
    instructions: list[Instruction]
    wrapper: bytes  # the block type of the block wrapping the body
    weight: int
    enter: bytes  # the depth counter's code (empty for leaves)
    leave: bytes
    calls: bool  # it calls a function (call or call_indirect)


@dataclass
class _Context:
    table: CostTable
    costs: dict[int, int]
    fuel: int  # the fuel global's index
    helpers: dict[str, int]
    audit: int | None = None  # the audit's work global


def _decode_function(
    data: bytes, span: tuple[int, int], params: int, wrapper: bytes, depth: int, known
) -> _Function:
    groups, declared, locals_, instructions = read_body(data, span, known)
    header = uleb(groups + 1) + declared + b"\x01\x7e"  # the fuel cache
    weight = frame_weight(params, locals_ + 1, len(instructions))
    calls = any(i.op in (CALL, CALL_INDIRECT) for i in instructions)
    leaf = weight <= LEAF_WEIGHT and not calls
    enter = b"" if leaf else _depth_code(depth, weight, enter=True)
    leave = b"" if leaf else _depth_code(depth, weight, enter=False)
    return _Function(header, params + locals_, instructions, wrapper, weight, enter, leave, calls)


class _Region:
    """Code from one charge point up to the next ones: charged, up front, the costliest path
    through it (`most`), from the placeholder `slot` in the body's pieces."""

    def __init__(self, slot: int):
        self.slot, self.most = slot, 0


@dataclass
class _Frame:
    """An open block, loop or if (or the function itself, `kind` None) in the rewrite."""

    kind: int | None
    charged_end: bool  # a charge point follows its end (it holds one)
    region: _Region | None  # the region its start lies in
    exit: int | None = None  # the costliest branch to its end (same region)
    saved: tuple[_Region, int] | None = None  # an if: the region and cost at its start
    has_else: bool = False


@dataclass
class _Shape:
    """Where a body's charge points go, besides its entry and its loops' headers."""

    charged_end: set[int]  # constructs (by position) that hold a charge point
    split: set[int]  # positions after which a charge point goes (if, else, br_if)
    loops: bool  # the body holds a loop


def _shape(instructions: list[Instruction], costs: list[int], limit: int) -> _Shape:
    """Marks the arms worth a charge point of their own: a then or else arm, or the code a
    forward br_if skips, costing more than `limit` (folded into the enclosing region, a
    skipped arm would be charged for nothing). A construct holding a charge point (a loop,
    such an arm) has one after its end, so every point of a body lies in a single region:
    the one of the last charge point every path to it crossed."""
    prefix = [0]
    for cost in costs:
        prefix.append(prefix[-1] + cost)
    last = len(instructions) - 1
    ends, elses, stack, pending = {}, {}, [], []
    for position, instruction in enumerate(instructions):
        op = instruction.op
        if op in (BLOCK, LOOP, IF):
            stack.append(position)
        elif op == ELSE and stack:
            elses[stack[-1]] = position
        elif op == END and stack:
            ends[stack.pop()] = position
        elif op == BR_IF:
            label = instruction.index
            pending.append((position, stack[-1 - label] if label < len(stack) else None))
    split = set()
    for position, target in pending:
        end = last if target is None else ends.get(target, last)
        if prefix[end] - prefix[position + 1] > limit:
            split.add(position)
    for start, middle in [(s, elses.get(s, ends.get(s, last))) for s in ends]:
        if instructions[start].op != IF:
            continue
        if prefix[middle] - prefix[start + 1] > limit:
            split.add(start)
        if start in elses and prefix[ends[start]] - prefix[middle + 1] > limit:
            split.add(middle)
    charged, stack, loops = set(), [], False
    for position, instruction in enumerate(instructions):
        op = instruction.op
        if op in (BLOCK, LOOP, IF):
            stack.append(position)
            if op == LOOP:
                charged.add(position)
                loops = True
        if position in split and stack:
            charged.add(stack[-1])
        if op == END and stack:
            inner = stack.pop()
            if inner in charged and stack:
                charged.add(stack[-1])
    return _Shape(charged, split, loops)


class _Body:
    """One function body being rewritten: its pieces of code, the charge points' regions."""

    def __init__(self, fuel: int, cache: int, minimum: int, audit: int | None = None):
        self.fuel, self.cache, self.minimum = fuel, cache, minimum
        self.audit, self.audit_slot, self.work = audit, -1, 0
        self.pieces: list[bytes | None] = []
        self.regions: list[_Region] = []
        self.region: _Region | None = None  # None: the code here is unreachable
        self.cost = 0  # the costliest path from the region's charge point to here

    def charge_point(self) -> None:
        """Ends every path of the current region here and starts a new region."""
        self.end_path()
        self.pieces.append(None)
        self.region, self.cost = _Region(len(self.pieces) - 1), 0
        self.regions.append(self.region)

    def end_path(self, region: _Region | None = None, cost: int | None = None) -> None:
        """A path of `region` (the current one) reaches a charge point or the exit."""
        region = self.region if region is None else region
        if region is not None:
            region.most = max(region.most, self.cost if cost is None else cost)

    def emit(self, code: bytes) -> None:
        self.pieces.append(code)

    def basic_block(self) -> None:
        """The audit: the basic block before here is done; the next one adds its work."""
        if self.audit is None:
            return
        if self.audit_slot >= 0 and self.work:
            g = uleb(self.audit)
            add = b"\x42" + sleb(self.work) + b"\x7c"  # i64.const, i64.add
            self.pieces[self.audit_slot] = bytes([_GLOBAL_GET]) + g + add + bytes([_GLOBAL_SET]) + g
        self.pieces.append(None)
        self.audit_slot, self.work = len(self.pieces) - 1, 0

    def code(self, skip_entry: bool = False) -> bytes:
        self.basic_block()
        for number, region in enumerate(self.regions):
            charge = region.most and max(region.most, self.minimum)
            if charge and not (skip_entry and number == 0):
                self.pieces[region.slot] = _charge_code(self.fuel, self.cache, charge)
        return b"".join(piece or b"" for piece in self.pieces)


def _charges(instruction: Instruction) -> bool:
    """The instruction calls a helper that charges the fuel global."""
    if instruction.op == 0xFC:
        return _FC[instruction.sub][1] is not None
    return instruction.op == MEMORY_GROW


def _cost(instruction: Instruction, costs: dict[int, int], table: CostTable, leaves) -> int:
    if instruction.op == 0xFC:
        return getattr(table, _FC[instruction.sub][0])
    cost = costs[instruction.op]
    if instruction.op == CALL:
        cost += leaves.get(instruction.index, 0)
    return cost


def _rewrite_body(
    data: bytes,
    function: _Function,
    context: _Context,
    leaves: dict[int, int],
    quiet: frozenset[int] = frozenset(),
) -> _Body:
    """The body with its charges and depth counter injected; `leaves` are the costs of the
    functions whose charge their direct callers make for them, `quiet` the functions that
    never charge the fuel global (after a call to any other, the cache is reloaded)."""
    instructions, table = function.instructions, context.table
    costs = [_cost(i, context.costs, table, leaves) for i in instructions]
    shape = _shape(instructions, costs, table.fold_limit)
    body = _Body(context.fuel, function.cache, table.region_minimum, context.audit)
    reload = _reload_code(context.fuel, function.cache)
    body.emit(function.enter + reload + b"\x02" + function.wrapper)
    body.charge_point()
    body.basic_block()
    frames = [_Frame(None, True, body.region)]

    def branch(label: int) -> None:
        target = frames[-1 - label]
        if target.kind == LOOP or target.charged_end:
            body.end_path()
        elif body.region is not None:
            assert target.region is body.region, "a branch into another region"
            target.exit = max(target.exit or 0, body.cost)

    for position, instruction in enumerate(instructions):
        op, raw = instruction.op, data[instruction.start : instruction.end]
        if body.region is not None:
            body.cost += costs[position]
        body.work += costs[position] - leaves.get(instruction.index, 0) * (op == CALL)
        if op == 0xFC:
            dynamic = _FC[instruction.sub][1]
            if dynamic is not None:
                body.emit(bytes([CALL]) + uleb(context.helpers[dynamic]) + reload)
        elif op == MEMORY_GROW:  # the helper grows, then charges the pages granted
            raw = bytes([CALL]) + uleb(context.helpers["page"]) + reload
        elif op == CALL_INDIRECT or (op == CALL and instruction.index not in quiet):
            raw += reload
        elif op == RETURN:
            raw = bytes([BR]) + uleb(len(frames) - 1)
        if op == END and len(frames) == 1:
            if position != len(instructions) - 1:
                raise MeteringError("code after the function's end")
            body.end_path()
            body.emit(b"\x0b" + function.leave + b"\x0b")
            return body
        body.emit(raw)
        if op in (BLOCK, LOOP, IF):
            frame = _Frame(op, position in shape.charged_end, body.region)
            if op == IF and body.region is not None:
                frame.saved = (body.region, body.cost)
            frames.append(frame)
            if op == LOOP or (op == IF and position in shape.split):
                body.charge_point()
        elif op == ELSE:
            frame = frames[-1]
            branch(0)
            frame.has_else = True
            body.region, body.cost = frame.saved or (None, 0)
            if position in shape.split and body.region is not None:
                body.charge_point()
        elif op == END:
            frame = frames.pop()
            reached = body.region is not None or frame.exit is not None
            if frame.kind == IF and not frame.has_else and frame.saved is not None:
                reached = True  # the empty else arm
                if frame.charged_end:
                    body.end_path(*frame.saved)
                else:
                    body.cost = max(body.cost if body.region else 0, frame.saved[1])
                    body.region = frame.saved[0]
            if frame.charged_end:
                body.end_path()
                body.region = None
                if reached:
                    body.charge_point()
            elif reached:
                alive = body.cost if body.region is not None else 0
                body.region, body.cost = frame.region, max(alive, frame.exit or 0)
        elif op == BR:
            branch(instruction.index)
            body.region = None
        elif op == BR_IF:
            branch(instruction.index)
            if position in shape.split and body.region is not None:
                body.charge_point()
        elif op == BR_TABLE:
            for label in instruction.targets:
                branch(label)
            body.region = None
        elif op in (RETURN, UNREACHABLE):
            body.end_path()
            body.region = None
        if op in (BLOCK, LOOP, IF, ELSE, END, BR, BR_IF, BR_TABLE, RETURN, UNREACHABLE):
            body.basic_block()
    raise MeteringError("function body does not end with end")


def meter(
    module_bytes: bytes, table: CostTable = COSTS, *, tier: int = 0, audit: bool = False
) -> Metered:
    """The module with metering injected, its loads and stores priced for memory tier `tier`
    (`CostTable.tier` of the job's memory limit; 0 for up to 256 MiB); raises
    `MeteringError` when it cannot be.

    The module should be valid (the sandbox validates it first): the rewrite keeps a valid
    module valid and does not check what validation checks. With `audit` (tests only), a
    second counter exported as `WORK_EXPORT` adds up the cost of every basic block as it is
    entered, the way a per-block meter would: the fuel charged must never be less."""
    if table.version != COST_TABLE_VERSION:
        raise MeteringError(f"cost table version {table.version} is not {COST_TABLE_VERSION}")
    if isinstance(tier, bool) or not 0 <= tier < len(table.memory_tiers):
        raise MeteringError(f"no memory tier {tier!r}")
    data = bytes(module_bytes)
    costs = _opcode_costs(table, tier)
    module = parse(data, costs)
    for reserved in (FUEL_EXPORT, START_EXPORT, WORK_EXPORT):
        if reserved.encode() in module.export_names:
            raise MeteringError(f"the export name {reserved!r} is reserved")
    fuel_global = module.imported_globals + len(module.globals)
    depth_global = fuel_global + 1
    new_types: list[bytes] = []
    # Helpers: (param i32) (result i32), appended after every function.
    helper_type = len(module.types)
    module.types.append(((I32,), (I32,)))
    new_types.append(b"\x60\x01\x7f\x01\x7f")
    first_helper = len(module.imported_functions) + len(module.functions)
    helper_specs = {
        "page": (table.memory_grow_page, 0, MAX_PAGES),
        "grow": (table.table_grow_element, 0, MAX_ELEMENTS),
        "byte": (table.bulk_byte, table.bulk_unit_shift, MAX_BYTES),
        "element": (table.bulk_element, 0, MAX_ELEMENTS),
    }
    helpers = {name: first_helper + i for i, name in enumerate(helper_specs)}
    has_memory = module.memories > 0
    context = _Context(table, costs, fuel_global, helpers, depth_global + 1 if audit else None)
    functions = []
    for index, span in enumerate(module.bodies):
        type_index = module.functions[index]
        if type_index >= len(module.types):
            raise MeteringError("type index out of range")
        params, results = module.types[type_index]
        wrapper = block_type_for(module, results, new_types)
        functions.append(_decode_function(data, span, len(params), wrapper, depth_global, costs))
    referenced = module.referenced | {
        i.index for f in functions for i in f.instructions if i.op == REF_FUNC
    }
    # A leaf (no depth counter, no call, no loop, one region) only ever called directly
    # is charged by its callers: a call to it costs its region's with the call's.
    first = len(module.imported_functions)
    leaves = {}
    for index, function in enumerate(functions):
        if function.enter or function.calls or first + index in referenced:
            continue
        body = _rewrite_body(data, function, context, {})
        if len(body.regions) == 1:
            leaves[first + index] = body.regions[0].most
    quiet = frozenset(  # leaves calling no charging helper (memory.grow, bulk instructions)
        index
        for index in leaves
        if not any(_charges(i) for i in functions[index - first].instructions)
    )
    bodies = []
    for index, function in enumerate(functions):
        body = _rewrite_body(data, function, context, leaves, quiet)
        code = function.header + body.code(skip_entry=first + index in leaves)
        bodies.append(uleb(len(code)) + code)
    weights = [function.weight for function in functions]
    for name, (price, shift, cap) in helper_specs.items():
        if name == "page":
            code = _grow_helper_body(fuel_global, price) if has_memory else b"\x00\x20\x00\x0b"
        else:
            code = _helper_body(fuel_global, price, shift, cap)
        bodies.append(uleb(len(code)) + code)

    sections = dict(module.sections)
    sections[1] = vec(type_entries(module.sections.get(1)) + new_types)
    sections[3] = vec([uleb(t) for t in module.functions] + [uleb(helper_type)] * 4)
    # fuel (mut i64) = 0, depth (mut i32) = 0, and the audit's work (mut i64) = 0
    added = [b"\x7e\x01\x42\x00\x0b", b"\x7f\x01\x41\x00\x0b"]
    sections[6] = vec([*module.globals, *added, *(added[:1] if audit else [])])
    exports = [*module.exports, uleb(len(FUEL_EXPORT)) + FUEL_EXPORT.encode() + b"\x03"]
    exports[-1] += uleb(fuel_global)
    if audit:
        exports.append(uleb(len(WORK_EXPORT)) + WORK_EXPORT.encode() + b"\x03")
        exports[-1] += uleb(depth_global + 1)
    if module.start is not None:
        exports.append(uleb(len(START_EXPORT)) + START_EXPORT.encode() + b"\x00")
        exports[-1] += uleb(module.start)
    sections[7] = vec(exports)
    sections.pop(8, None)
    sections[10] = vec(bodies)
    out = encode(sections)
    pages = module.memory_pages + module.imported_memory_pages
    elements = module.table_elements + module.imported_table_elements
    setup = pages * table.memory_page + elements * table.table_element
    has_start = module.start is not None
    return Metered(out, setup, has_start, len(module.functions), tuple(weights), tier)
