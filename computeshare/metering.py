"""Metering by rewriting: fuel that bounds time, the same on every replica.

`meter(module)` returns the module with its metering injected, from a versioned cost table
(`COST_TABLE_VERSION`, part of what a job commits to). Every replica and the arbiter apply
the same rewrite, so a run's fuel is a property of the module and its input, not of the
engine, its optimisation level or the machine:

- Fuel is an injected mutable i64 global, exported as `FUEL_EXPORT`, that the host sets to
  the job's limit (less `Metered.setup_fuel`) before any code runs. Each basic block (code
  between control instructions) subtracts the sum of its instructions' costs on entry, up
  front; when the global drops below zero the block traps at once (`unreachable`) and the
  host reports "out of fuel" with the whole limit used. After any trap the host reads the
  global: the fuel used is exact and identical everywhere, since it counts only charges.
- Costs price the worst case, not the average: a load or store is a cache and TLB miss,
  `memory.grow` is charged per page requested and `table.grow` per element (computed from
  the operand, before the instruction runs), bulk memory and table instructions per byte or
  element moved, calls and `call_indirect` and `br_table` at what they cost. Host calls
  charge the same global (`computeshare.sandbox`).
- The call stack is bounded by an injected counter, not by native bytes: each function adds
  its frame weight on entry (1 + its parameters, locals and instructions over 8: a bound
  on the native frame, see `frame_weight`) and subtracts it on every exit (the body is
  wrapped in a block, `return` becomes a branch to it). A call that would take the count
  past `STACK_BUDGET` traps, at the same call on every engine; the native stack given to
  wasmtime holds twice the budget's frames, so its own overflow check never trips first.
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

COST_TABLE_VERSION = 1
FUEL_EXPORT = "computeshare:fuel"
START_EXPORT = "computeshare:start"
# Frame weight units a call chain may hold; a unit stands for 64 bytes of native stack.
STACK_BUDGET = 16_384
STACK_UNIT_BYTES = 64
# The native stack wasmtime gets: twice what the budget can use (the rest is for the
# trampolines, libcalls and host calls below the deepest frame).
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


class MeteringError(ValueError):
    """The module cannot be metered: malformed, or uses a feature the table does not price."""


@dataclass(frozen=True)
class CostTable:
    """Fuel per instruction class (version `COST_TABLE_VERSION`); see `cost_of`."""

    version: int = COST_TABLE_VERSION
    simple: int = 1  # integer and float arithmetic, locals, globals, constants, select
    divide: int = 8  # integer division and remainder
    float_divide: int = 32  # float division and square root
    load: int = 400  # a cache and TLB miss (a dependent chain over 64 MiB)
    store: int = 400
    branch: int = 1  # br, br_if, if, else, return
    br_table: int = 8
    call: int = 12  # includes the injected depth counter
    call_indirect: int = 48
    memory_size: int = 2
    memory_grow: int = 2_000  # the libcall
    memory_grow_page: int = 640_000  # a page granted: mapping and faulting in 64 KiB
    table_access: int = 8  # table.get, table.set, table.size, ref.func
    table_grow: int = 2_000
    table_grow_element: int = 4
    bulk: int = 200  # the libcall of memory.copy/fill/init, table.copy/init/fill, *.drop
    bulk_byte: int = 1  # per 2 bytes; see `bulk_unit_shift`
    bulk_unit_shift: int = 1
    bulk_element: int = 4
    memory_page: int = 640_000  # a page of the initial memory, charged before the run
    table_element: int = 4  # an element of the initial table, charged before the run


COSTS = CostTable()


@dataclass(frozen=True)
class Metered:
    """A metered module and the fuel its instantiation costs (initial memory and tables)."""

    module: bytes
    setup_fuel: int
    has_start: bool = False
    functions: int = 0
    weights: tuple[int, ...] = field(default=(), repr=False)


# ---------------------------------------------------------------- binary reading


class _Reader:
    def __init__(self, data: bytes, pos: int = 0, end: int | None = None):
        self.data, self.pos = data, pos
        self.end = len(data) if end is None else end

    def done(self) -> bool:
        return self.pos >= self.end

    def byte(self) -> int:
        if self.pos >= self.end:
            raise MeteringError("module ends early")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def bytes(self, count: int) -> bytes:
        if count < 0 or self.pos + count > self.end:
            raise MeteringError("module ends early")
        value = self.data[self.pos : self.pos + count]
        self.pos += count
        return value

    def u32(self) -> int:
        result, shift = 0, 0
        while True:
            byte = self.byte()
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
            if shift > 28 and (shift > 35 or byte >> 4):
                raise MeteringError("malformed LEB128")
        if result >= 1 << 32:
            raise MeteringError("malformed LEB128")
        return result

    def signed(self, bits: int) -> int:
        result, shift = 0, 0
        while True:
            byte = self.byte()
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
            if shift >= bits + 7:
                raise MeteringError("malformed LEB128")
        if byte & 0x40:
            result -= 1 << shift
        return result

    def name(self) -> bytes:
        return self.bytes(self.u32())


def _uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _sleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        done = (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40)
        out.append(byte | (0 if done else 0x80))
        if done:
            return bytes(out)


def _vec(items: list[bytes]) -> bytes:
    return _uleb(len(items)) + b"".join(items)


_I32, _I64, _F32, _F64 = 0x7F, 0x7E, 0x7D, 0x7C
_VALUE_TYPES = {_I32, _I64, _F32, _F64, 0x70, 0x6F}  # and funcref, externref


def _value_type(reader: _Reader) -> int:
    kind = reader.byte()
    if kind not in _VALUE_TYPES:
        raise MeteringError(f"value type 0x{kind:02x} is not supported")
    return kind


def _limits(reader: _Reader) -> int:
    """A table's or memory's limits; returns the minimum."""
    flags = reader.byte()
    if flags not in (0, 1):
        raise MeteringError("shared or 64-bit limits are not supported")
    minimum = reader.u32()
    if flags:
        reader.u32()
    return minimum


# ---------------------------------------------------------------- instructions

# Opcode classes: immediates to skip, and the cost field of the table.
_NO_IMMEDIATE = "none"
_BLOCK, _LOOP, _IF, _ELSE, _END = 0x02, 0x03, 0x04, 0x05, 0x0B
_BR, _BR_IF, _BR_TABLE, _RETURN, _UNREACHABLE = 0x0C, 0x0D, 0x0E, 0x0F, 0x00
_CALL, _CALL_INDIRECT = 0x10, 0x11
_MEMORY_GROW = 0x40

_DIVIDES = {0x6D, 0x6E, 0x6F, 0x70, 0x7F, 0x80, 0x81, 0x82}
_FLOAT_DIVIDES = {0x91, 0x95, 0x9F, 0xA3}  # sqrt and div
_SIMPLE_NUMERIC = set(range(0x45, 0xC5)) - _DIVIDES - _FLOAT_DIVIDES


def _opcode_costs(costs: CostTable) -> dict[int, int]:
    table = {
        0x00: costs.branch,  # unreachable
        0x01: 0,  # nop
        _BLOCK: 0,
        _LOOP: 0,
        _IF: costs.branch,
        _ELSE: costs.branch,
        _END: 0,
        _BR: costs.branch,
        _BR_IF: costs.branch,
        _BR_TABLE: costs.br_table,
        _RETURN: costs.branch,
        _CALL: costs.call,
        _CALL_INDIRECT: costs.call_indirect,
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
        _MEMORY_GROW: costs.memory_grow,
        0x41: costs.simple,
        0x42: costs.simple,
        0x43: costs.simple,
        0x44: costs.simple,
        0xD0: costs.simple,  # ref.null
        0xD1: costs.simple,  # ref.is_null
        0xD2: costs.table_access,  # ref.func
    }
    table.update(dict.fromkeys(range(0x28, 0x36), costs.load))
    table.update(dict.fromkeys(range(0x36, 0x3F), costs.store))
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


@dataclass
class _Instruction:
    op: int
    start: int
    end: int
    sub: int = -1  # the 0xFC sub-opcode
    label: int = 0  # br, br_if
    block_type: int | None = None  # block, loop, if: -64 empty, a value type, or a type index


def _block_type(reader: _Reader) -> int:
    first = reader.data[reader.pos] if reader.pos < reader.end else -1
    if first == 0x40:
        reader.pos += 1
        return -64
    if first in _VALUE_TYPES:
        reader.pos += 1
        return -first
    index = reader.signed(33)
    if index < 0:
        raise MeteringError("malformed block type")
    return index


def _memarg(reader: _Reader) -> None:
    if reader.u32() >= 64:
        raise MeteringError("memory indices (multi-memory) are not supported")
    reader.u32()


def _decode(reader: _Reader, known: dict[int, int]) -> _Instruction:
    start = reader.pos
    op = reader.byte()
    instruction = _Instruction(op, start, start)
    if op == 0xFC:
        instruction.sub = reader.u32()
        if instruction.sub not in _FC:
            raise MeteringError(f"instruction 0xfc {instruction.sub} is not supported")
        if instruction.sub in (8, 12, 14):
            reader.u32()
            reader.u32()
        elif instruction.sub == 10:
            reader.bytes(2)
        elif instruction.sub in (9, 13, 15, 16, 17):
            reader.u32()
        elif instruction.sub == 11:
            reader.byte()
    elif op not in known:
        raise MeteringError(f"instruction 0x{op:02x} is not supported")
    elif op in (_BLOCK, _LOOP, _IF):
        instruction.block_type = _block_type(reader)
    elif op in (_BR, _BR_IF):
        instruction.label = reader.u32()
    elif op == _BR_TABLE:
        for _ in range(reader.u32() + 1):
            reader.u32()
    elif op == _CALL_INDIRECT:
        reader.u32()
        reader.u32()
    elif op == 0x1C:
        for _ in range(reader.u32()):
            _value_type(reader)
    elif op in (_CALL, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0xD2):
        reader.u32()
    elif 0x28 <= op <= 0x3E:
        _memarg(reader)
    elif op in (0x3F, 0x40):
        if reader.byte() != 0:
            raise MeteringError("memory indices (multi-memory) are not supported")
    elif op == 0x41:
        reader.signed(32)
    elif op == 0x42:
        reader.signed(64)
    elif op == 0x43:
        reader.bytes(4)
    elif op == 0x44:
        reader.bytes(8)
    elif op == 0xD0:
        reader.byte()
    instruction.end = reader.pos
    return instruction


def _skip_const_expr(reader: _Reader, known: dict[int, int]) -> None:
    while _decode(reader, known).op != _END:
        pass


# ---------------------------------------------------------------- injected code

_GLOBAL_GET, _GLOBAL_SET = 0x23, 0x24


def _charge_code(fuel: int, cost: int) -> bytes:
    """fuel -= cost; if fuel < 0: unreachable."""
    g = _uleb(fuel)
    return (
        bytes([_GLOBAL_GET])
        + g
        + b"\x42"
        + _sleb(cost)
        + b"\x7d"  # i64.sub
        + bytes([_GLOBAL_SET])
        + g
        + bytes([_GLOBAL_GET])
        + g
        + b"\x42\x00\x53"  # i64.const 0, i64.lt_s
        + b"\x04\x40\x00\x0b"  # if unreachable end
    )


def _depth_code(depth: int, weight: int, enter: bool) -> bytes:
    """depth += weight (trapping past the budget) on entry; depth -= weight on exit."""
    g = _uleb(depth)
    change = bytes([_GLOBAL_GET]) + g + b"\x41" + _sleb(weight) + (b"\x6a" if enter else b"\x6b")
    code = change + bytes([_GLOBAL_SET]) + g
    if enter:
        code += bytes([_GLOBAL_GET]) + g + b"\x41" + _sleb(STACK_BUDGET)
        code += b"\x4b\x04\x40\x00\x0b"  # i32.gt_u, if unreachable end
    return code


def _grow_helper_body(fuel: int, price: int) -> bytes:
    """(param $n i32) (result i32) (local $r i32): $r = memory.grow($n); when granted
    ($r != -1), fuel -= $n * price, trapping below zero; returns $r. A failed grow costs
    only its instruction: it does no work."""
    g = _uleb(fuel)
    code = (
        b"\x20\x00\x40\x00\x21\x01"  # local.get 0, memory.grow, local.set 1
        + b"\x20\x01\x41\x7f\x47\x04\x40"  # local.get 1, i32.const -1, i32.ne, if
        + bytes([_GLOBAL_GET])
        + g
        + b"\x20\x00\xad\x42"
        + _sleb(price)
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
    g = _uleb(fuel)
    count = b"\x20\x00\xad"  # local.get 0, i64.extend_i32_u
    if cap < 1 << 32:
        # select(cap, n, n > cap)
        count = b"\x42" + _sleb(cap) + count + b"\x20\x00\xad\x42" + _sleb(cap) + b"\x56\x1b"
    if shift:
        count += b"\x42" + _sleb((1 << shift) - 1) + b"\x7c"  # + (2**shift - 1)
        count += b"\x42" + _sleb(shift) + b"\x88"  # >> shift (unsigned)
    code = (
        bytes([_GLOBAL_GET])
        + g
        + count
        + b"\x42"
        + _sleb(price)
        + b"\x7e"  # i64.mul
        + b"\x7d"  # i64.sub
        + bytes([_GLOBAL_SET])
        + g
        + bytes([_GLOBAL_GET])
        + g
        + b"\x42\x00\x53\x04\x40\x00\x0b"
        + b"\x20\x00\x0b"  # local.get 0, end
    )
    return _uleb(0) + code  # no locals


# ---------------------------------------------------------------- the rewrite


@dataclass
class _Module:
    types: list[tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    imported_functions: list[int] = field(default_factory=list)
    imported_globals: int = 0
    imported_memory_pages: int = 0
    imported_table_elements: int = 0
    functions: list[int] = field(default_factory=list)
    globals: list[bytes] = field(default_factory=list)
    exports: list[bytes] = field(default_factory=list)
    export_names: set[bytes] = field(default_factory=set)
    start: int | None = None
    memory_pages: int = 0
    memories: int = 0
    table_elements: int = 0
    sections: dict[int, bytes] = field(default_factory=dict)
    bodies: list[tuple[int, int]] = field(default_factory=list)  # (start, end) in data


_ORDER = (1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 10, 11)
_PARSED = (1, 2, 3, 4, 5, 6, 7, 8, 10)  # elements, data and data count are kept as they are


def _parse(data: bytes, known: dict[int, int]) -> _Module:
    if data[:8] != b"\x00asm\x01\x00\x00\x00":
        raise MeteringError("not a WebAssembly 1.0 module")
    module, reader, last = _Module(), _Reader(data, 8), -1
    while not reader.done():
        section, size = reader.byte(), reader.u32()
        body = _Reader(data, reader.pos, reader.pos + size)
        if body.end > len(data):
            raise MeteringError("section runs past the module's end")
        reader.pos = body.end
        if section == 0:
            continue  # custom sections are dropped: they mean nothing to a run
        if section not in _ORDER or _ORDER.index(section) <= last:
            raise MeteringError(f"section {section} is unknown, repeated or out of order")
        last = _ORDER.index(section)
        module.sections[section] = data[body.pos : body.end]
        _parse_section(module, section, body, known)
        if not body.done() and section in _PARSED:
            raise MeteringError(f"section {section} has trailing bytes")
    if len(module.bodies) != len(module.functions):
        raise MeteringError("function and code sections disagree")
    return module


def _parse_section(module: _Module, section: int, body: _Reader, known: dict[int, int]) -> None:
    if section == 1:
        for _ in range(body.u32()):
            if body.byte() != 0x60:
                raise MeteringError("only function types are supported")
            params = tuple(_value_type(body) for _ in range(body.u32()))
            results = tuple(_value_type(body) for _ in range(body.u32()))
            module.types.append((params, results))
    elif section == 2:
        for _ in range(body.u32()):
            body.name()
            body.name()
            kind = body.byte()
            if kind == 0:
                module.imported_functions.append(body.u32())
            elif kind == 1:
                _value_type(body)
                module.imported_table_elements += _limits(body)
            elif kind == 2:
                module.imported_memory_pages += _limits(body)
                module.memories += 1
            elif kind == 3:
                _value_type(body)
                body.byte()
                module.imported_globals += 1
            else:
                raise MeteringError(f"import kind {kind} is not supported")
    elif section == 3:
        module.functions = [body.u32() for _ in range(body.u32())]
    elif section == 4:
        for _ in range(body.u32()):
            _value_type(body)
            module.table_elements += _limits(body)
    elif section == 5:
        for _ in range(body.u32()):
            module.memory_pages += _limits(body)
            module.memories += 1
    elif section == 6:
        for _ in range(body.u32()):
            begin = body.pos
            _value_type(body)
            body.byte()
            _skip_const_expr(body, known)
            module.globals.append(body.data[begin : body.pos])
    elif section == 7:
        for _ in range(body.u32()):
            begin = body.pos
            name = body.name()
            body.byte()
            body.u32()
            module.exports.append(body.data[begin : body.pos])
            module.export_names.add(name)
    elif section == 8:
        module.start = body.u32()
    elif section == 10:
        for _ in range(body.u32()):
            size = body.u32()
            module.bodies.append((body.pos, body.pos + size))
            body.bytes(size)
        if not body.done():
            raise MeteringError("code section has trailing bytes")


def _function_type(module: _Module, function: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if function >= len(module.functions):
        raise MeteringError("function index out of range")
    index = module.functions[function]
    if index >= len(module.types):
        raise MeteringError("type index out of range")
    return module.types[index]


def frame_weight(params: int, locals_: int, instructions: int) -> int:
    """Stack units a frame may take: 1 for the frame itself, and one per 8 slots.

    A slot is 8 bytes of native stack (no value is wider without SIMD). A frame holds at
    most its parameters, its locals and one value per instruction (the operand stack never
    holds more values than the instructions that pushed them, and each of the compiler's
    temporaries stands for an instruction): 8 slots fill a 64-byte unit, and the fixed part
    (return address, frame pointer, saved registers) fits the first unit."""
    return 1 + (params + locals_ + instructions + 7) // 8


class _Body:
    """One function body being rewritten."""

    def __init__(self, costs: dict[int, int], table: CostTable, fuel: int, helpers: dict):
        self.costs, self.table, self.fuel, self.helpers = costs, table, fuel, helpers
        self.pieces: list[bytes | None] = []
        self.slot, self.cost = -1, 0

    def open_block(self) -> None:
        self.pieces.append(None)
        self.slot, self.cost = len(self.pieces) - 1, 0

    def close_block(self) -> None:
        self.pieces[self.slot] = _charge_code(self.fuel, self.cost) if self.cost else b""

    def emit(self, code: bytes) -> None:
        self.pieces.append(code)


def _rewrite_body(
    data: bytes,
    span: tuple[int, int],
    signature: tuple[tuple[int, ...], tuple[int, ...]],
    wrapper_type: bytes,
    body: _Body,
    globals_: tuple[int, int],
) -> tuple[bytes, int]:
    depth = globals_[1]
    reader = _Reader(data, span[0], span[1])
    locals_ = 0
    for _ in range(reader.u32()):
        locals_ += reader.u32()
        _value_type(reader)
        if locals_ > 50_000:
            raise MeteringError("a function has more than 50,000 locals")
    header = data[span[0] : reader.pos]
    instructions = []
    while not reader.done():
        instructions.append(_decode(reader, body.costs))
    if not instructions or instructions[-1].op != _END:
        raise MeteringError("function body does not end with end")
    weight = frame_weight(len(signature[0]), locals_, len(instructions))
    leaf = weight <= LEAF_WEIGHT and not any(i.op in (_CALL, _CALL_INDIRECT) for i in instructions)
    enter = b"" if leaf else _depth_code(depth, weight, enter=True)
    leave = b"" if leaf else _depth_code(depth, weight, enter=False)
    body.emit(enter + b"\x02" + wrapper_type)
    body.open_block()
    nesting = 0  # constructs open inside the wrapper block
    for position, instruction in enumerate(instructions):
        op = instruction.op
        raw = data[instruction.start : instruction.end]
        if op == 0xFC:
            name, dynamic = _FC[instruction.sub]
            body.cost += getattr(body.table, name)
            if dynamic is not None:
                body.emit(bytes([_CALL]) + _uleb(body.helpers[dynamic]))
            body.emit(raw)
            continue
        body.cost += body.costs[op]
        if op == _MEMORY_GROW:  # the helper grows, then charges the pages granted
            raw = bytes([_CALL]) + _uleb(body.helpers["page"])
        if op == _END and nesting == 0:
            if position != len(instructions) - 1:
                raise MeteringError("code after the function's end")
            body.close_block()
            body.emit(b"\x0b" + leave + b"\x0b")
            break
        if op == _RETURN:
            raw = bytes([_BR]) + _uleb(nesting)
        body.emit(raw)
        if op in (_BLOCK, _LOOP, _IF):
            nesting += 1
        elif op == _END:
            nesting -= 1
        if op in (_BLOCK, _LOOP, _IF, _ELSE, _END, _BR, _BR_IF, _BR_TABLE, _RETURN, 0x00):
            body.close_block()
            body.open_block()
    code = header + b"".join(piece or b"" for piece in body.pieces)
    return _uleb(len(code)) + code, weight


def _block_type_for(module: _Module, results: tuple[int, ...], new_types: list[bytes]) -> bytes:
    if not results:
        return b"\x40"
    if len(results) == 1:
        return bytes(results)
    signature = ((), results)
    if signature in module.types:
        return _sleb(module.types.index(signature))
    module.types.append(signature)
    new_types.append(b"\x60\x00" + _uleb(len(results)) + bytes(results))
    return _sleb(len(module.types) - 1)


def meter(module_bytes: bytes, table: CostTable = COSTS) -> Metered:
    """The module with metering injected; raises `MeteringError` when it cannot be.

    The module should be valid (the sandbox validates it first): the rewrite keeps a valid
    module valid and does not check what validation checks."""
    if table.version != COST_TABLE_VERSION:
        raise MeteringError(f"cost table version {table.version} is not {COST_TABLE_VERSION}")
    data = bytes(module_bytes)
    costs = _opcode_costs(table)
    module = _parse(data, costs)
    for reserved in (FUEL_EXPORT, START_EXPORT):
        if reserved.encode() in module.export_names:
            raise MeteringError(f"the export name {reserved!r} is reserved")
    fuel_global = module.imported_globals + len(module.globals)
    depth_global = fuel_global + 1
    new_types: list[bytes] = []
    # Helpers: (param i32) (result i32), appended after every function.
    helper_type = len(module.types)
    module.types.append(((_I32,), (_I32,)))
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
    bodies, weights = [], []
    for index, span in enumerate(module.bodies):
        type_index = module.functions[index]
        if type_index >= len(module.types):
            raise MeteringError("type index out of range")
        signature = module.types[type_index]
        wrapper = _block_type_for(module, signature[1], new_types)
        body = _Body(costs, table, fuel_global, helpers)
        code, weight = _rewrite_body(
            data, span, signature, wrapper, body, (fuel_global, depth_global)
        )
        bodies.append(code)
        weights.append(weight)
    for name, (price, shift, cap) in helper_specs.items():
        if name == "page":
            code = _grow_helper_body(fuel_global, price) if has_memory else b"\x00\x20\x00\x0b"
        else:
            code = _helper_body(fuel_global, price, shift, cap)
        bodies.append(_uleb(len(code)) + code)

    sections = dict(module.sections)
    sections[1] = _vec(_entries(module.sections.get(1)) + new_types)
    sections[3] = _vec([_uleb(t) for t in module.functions] + [_uleb(helper_type)] * 4)
    sections[6] = _vec(
        [*module.globals, b"\x7e\x01\x42\x00\x0b", b"\x7f\x01\x41\x00\x0b"]
    )  # fuel (mut i64) = 0, depth (mut i32) = 0
    exports = [*module.exports, _uleb(len(FUEL_EXPORT)) + FUEL_EXPORT.encode() + b"\x03"]
    exports[-1] += _uleb(fuel_global)
    if module.start is not None:
        exports.append(_uleb(len(START_EXPORT)) + START_EXPORT.encode() + b"\x00")
        exports[-1] += _uleb(module.start)
    sections[7] = _vec(exports)
    sections.pop(8, None)
    sections[10] = _vec(bodies)
    out = bytearray(data[:8])
    for section in _ORDER:
        if section in sections:
            out += bytes([section]) + _uleb(len(sections[section])) + sections[section]
    pages = module.memory_pages + module.imported_memory_pages
    elements = module.table_elements + module.imported_table_elements
    setup = pages * table.memory_page + elements * table.table_element
    return Metered(
        bytes(out), setup, module.start is not None, len(module.functions), tuple(weights)
    )


def _entries(payload: bytes | None) -> list[bytes]:
    """The raw entries of a type section (each `0x60 params results`)."""
    if payload is None:
        return []
    reader, entries = _Reader(payload), []
    for _ in range(reader.u32()):
        begin = reader.pos
        reader.byte()
        for _ in range(2):
            for _ in range(reader.u32()):
                reader.byte()
        entries.append(payload[begin : reader.pos])
    return entries
