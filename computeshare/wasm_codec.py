"""WebAssembly's binary format, as much as the metering reads and writes.

`parse` reads a module's sections into a `Module` (types, imports, functions, globals,
exports, start, the functions an element segment or constant expression names, the code
section's bodies), checking section order and sizes; `decode` reads one instruction with
its immediates (refusing any the metering does not price); `uleb`, `sleb` and `vec` encode.
Errors are `MeteringError`: the module is malformed or uses a feature not supported.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class MeteringError(ValueError):
    """The module cannot be metered: malformed, or uses a feature the table does not price."""


# ---------------------------------------------------------------- binary reading


class Reader:
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


def uleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def sleb(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        done = (value == 0 and not byte & 0x40) or (value == -1 and byte & 0x40)
        out.append(byte | (0 if done else 0x80))
        if done:
            return bytes(out)


def vec(items: list[bytes]) -> bytes:
    return uleb(len(items)) + b"".join(items)


I32, I64, F32, F64 = 0x7F, 0x7E, 0x7D, 0x7C
VALUE_TYPES = {I32, I64, F32, F64, 0x70, 0x6F}  # and funcref, externref


def value_type(reader: Reader) -> int:
    kind = reader.byte()
    if kind not in VALUE_TYPES:
        raise MeteringError(f"value type 0x{kind:02x} is not supported")
    return kind


def limits(reader: Reader) -> int:
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
BLOCK, LOOP, IF, ELSE, END = 0x02, 0x03, 0x04, 0x05, 0x0B
BR, BR_IF, BR_TABLE, RETURN, UNREACHABLE = 0x0C, 0x0D, 0x0E, 0x0F, 0x00
CALL, CALL_INDIRECT = 0x10, 0x11
MEMORY_GROW = 0x40
REF_FUNC = 0xD2

# 0xFC sub-opcodes the metering prices: saturating float to int (0-7), bulk memory and
# table instructions (8-17).
FC_SUPPORTED = frozenset(range(18))


@dataclass
class Instruction:
    op: int
    start: int
    end: int
    sub: int = -1  # the 0xFC sub-opcode
    index: int = 0  # br, br_if: the label; call, ref.func: the function
    targets: tuple[int, ...] = ()  # br_table: its labels, the default last
    block_type: int | None = None  # block, loop, if: -64 empty, a value type, or a type index


def read_block_type(reader: Reader) -> int:
    first = reader.data[reader.pos] if reader.pos < reader.end else -1
    if first == 0x40:
        reader.pos += 1
        return -64
    if first in VALUE_TYPES:
        reader.pos += 1
        return -first
    index = reader.signed(33)
    if index < 0:
        raise MeteringError("malformed block type")
    return index


def read_memarg(reader: Reader) -> None:
    if reader.u32() >= 64:
        raise MeteringError("memory indices (multi-memory) are not supported")
    reader.u32()


def decode(reader: Reader, known: dict[int, int]) -> Instruction:
    start = reader.pos
    op = reader.byte()
    instruction = Instruction(op, start, start)
    if op == 0xFC:
        instruction.sub = reader.u32()
        if instruction.sub not in FC_SUPPORTED:
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
    elif op in (BLOCK, LOOP, IF):
        instruction.block_type = read_block_type(reader)
    elif op in (BR, BR_IF, CALL, REF_FUNC):
        instruction.index = reader.u32()
    elif op == BR_TABLE:
        instruction.targets = tuple(reader.u32() for _ in range(reader.u32() + 1))
    elif op == CALL_INDIRECT:
        reader.u32()
        reader.u32()
    elif op == 0x1C:
        for _ in range(reader.u32()):
            value_type(reader)
    elif op in (0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26):
        reader.u32()
    elif 0x28 <= op <= 0x3E:
        read_memarg(reader)
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


def const_expr(reader: Reader, known: dict[int, int]) -> set[int]:
    """Reads a constant expression; returns the functions it names (ref.func)."""
    named = set()
    while (instruction := decode(reader, known)).op != END:
        if instruction.op == REF_FUNC:
            named.add(instruction.index)
    return named


def element_functions(reader: Reader, known: dict[int, int]) -> set[int]:
    """The functions an element section names (any of its eight segment forms)."""
    named = set()
    for _ in range(reader.u32()):
        flags = reader.u32()
        if flags > 7:
            raise MeteringError(f"element segment kind {flags} is not supported")
        if flags & 1 == 0:  # active: a table index (flag 2), an offset
            if flags & 2:
                reader.u32()
            named |= const_expr(reader, known)
        if flags & 3:
            reader.byte()  # element kind or reference type
        for _ in range(reader.u32()):
            if flags & 4:
                named |= const_expr(reader, known)
            else:
                named.add(reader.u32())
    return named


@dataclass
class Module:
    types: list[tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=list)
    imported_functions: list[int] = field(default_factory=list)
    imported_globals: int = 0
    imported_memory_pages: int = 0
    imported_table_elements: int = 0
    functions: list[int] = field(default_factory=list)
    globals: list[bytes] = field(default_factory=list)
    exports: list[bytes] = field(default_factory=list)
    export_names: set[bytes] = field(default_factory=set)
    referenced: set[int] = field(default_factory=set)  # functions reachable but by a call
    start: int | None = None
    memory_pages: int = 0
    memories: int = 0
    table_elements: int = 0
    sections: dict[int, bytes] = field(default_factory=dict)
    bodies: list[tuple[int, int]] = field(default_factory=list)  # (start, end) in data


SECTION_ORDER = (1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 10, 11)
PARSED_SECTIONS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10)  # data and data count are kept as they are


def parse(data: bytes, known: dict[int, int]) -> Module:
    if data[:8] != b"\x00asm\x01\x00\x00\x00":
        raise MeteringError("not a WebAssembly 1.0 module")
    module, reader, last = Module(), Reader(data, 8), -1
    while not reader.done():
        section, size = reader.byte(), reader.u32()
        body = Reader(data, reader.pos, reader.pos + size)
        if body.end > len(data):
            raise MeteringError("section runs past the module's end")
        reader.pos = body.end
        if section == 0:
            continue  # custom sections are dropped: they mean nothing to a run
        if section not in SECTION_ORDER or SECTION_ORDER.index(section) <= last:
            raise MeteringError(f"section {section} is unknown, repeated or out of order")
        last = SECTION_ORDER.index(section)
        module.sections[section] = data[body.pos : body.end]
        _parse_section(module, section, body, known)
        if not body.done() and section in PARSED_SECTIONS:
            raise MeteringError(f"section {section} has trailing bytes")
    if len(module.bodies) != len(module.functions):
        raise MeteringError("function and code sections disagree")
    return module


def _parse_section(module: Module, section: int, body: Reader, known: dict[int, int]) -> None:
    if section == 1:
        for _ in range(body.u32()):
            if body.byte() != 0x60:
                raise MeteringError("only function types are supported")
            params = tuple(value_type(body) for _ in range(body.u32()))
            results = tuple(value_type(body) for _ in range(body.u32()))
            module.types.append((params, results))
    elif section == 2:
        for _ in range(body.u32()):
            body.name()
            body.name()
            kind = body.byte()
            if kind == 0:
                module.imported_functions.append(body.u32())
            elif kind == 1:
                value_type(body)
                module.imported_table_elements += limits(body)
            elif kind == 2:
                module.imported_memory_pages += limits(body)
                module.memories += 1
            elif kind == 3:
                value_type(body)
                body.byte()
                module.imported_globals += 1
            else:
                raise MeteringError(f"import kind {kind} is not supported")
    elif section == 3:
        module.functions = [body.u32() for _ in range(body.u32())]
    elif section == 4:
        for _ in range(body.u32()):
            value_type(body)
            module.table_elements += limits(body)
    elif section == 5:
        for _ in range(body.u32()):
            module.memory_pages += limits(body)
            module.memories += 1
    elif section == 6:
        for _ in range(body.u32()):
            begin = body.pos
            value_type(body)
            body.byte()
            module.referenced |= const_expr(body, known)
            module.globals.append(body.data[begin : body.pos])
    elif section == 7:
        for _ in range(body.u32()):
            begin = body.pos
            name = body.name()
            kind, index = body.byte(), body.u32()
            if kind == 0:
                module.referenced.add(index)
            module.exports.append(body.data[begin : body.pos])
            module.export_names.add(name)
    elif section == 8:
        module.start = body.u32()
        module.referenced.add(module.start)
    elif section == 9:
        module.referenced |= element_functions(body, known)
    elif section == 10:
        for _ in range(body.u32()):
            size = body.u32()
            module.bodies.append((body.pos, body.pos + size))
            body.bytes(size)
        if not body.done():
            raise MeteringError("code section has trailing bytes")


def function_type(module: Module, function: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    if function >= len(module.functions):
        raise MeteringError("function index out of range")
    index = module.functions[function]
    if index >= len(module.types):
        raise MeteringError("type index out of range")
    return module.types[index]


def block_type_for(module: Module, results: tuple[int, ...], new_types: list[bytes]) -> bytes:
    if not results:
        return b"\x40"
    if len(results) == 1:
        return bytes(results)
    signature = ((), results)
    if signature in module.types:
        return sleb(module.types.index(signature))
    module.types.append(signature)
    new_types.append(b"\x60\x00" + uleb(len(results)) + bytes(results))
    return sleb(len(module.types) - 1)


def type_entries(payload: bytes | None) -> list[bytes]:
    """The raw entries of a type section (each `0x60 params results`)."""
    if payload is None:
        return []
    reader, entries = Reader(payload), []
    for _ in range(reader.u32()):
        begin = reader.pos
        reader.byte()
        for _ in range(2):
            for _ in range(reader.u32()):
                reader.byte()
        entries.append(payload[begin : reader.pos])
    return entries


def read_body(
    data: bytes, span: tuple[int, int], known: dict[int, int]
) -> tuple[int, bytes, int, list[Instruction]]:
    """A function body: its count of local groups, their declaration's bytes (after the
    count), its count of locals, and its instructions (the last one its `end`)."""
    reader = Reader(data, span[0], span[1])
    locals_, groups = 0, reader.u32()
    declared = reader.pos
    for _ in range(groups):
        locals_ += reader.u32()
        value_type(reader)
        if locals_ > 50_000:
            raise MeteringError("a function has more than 50,000 locals")
    declaration = data[declared : reader.pos]
    instructions = []
    while not reader.done():
        instructions.append(decode(reader, known))
    if not instructions or instructions[-1].op != END:
        raise MeteringError("function body does not end with end")
    return groups, declaration, locals_, instructions


def encode(sections: dict[int, bytes]) -> bytes:
    """A module from its sections' payloads (by id), in the order the format wants."""
    out = bytearray(b"\x00asm\x01\x00\x00\x00")
    for section in SECTION_ORDER:
        if section in sections:
            out += bytes([section]) + uleb(len(sections[section])) + sections[section]
    return bytes(out)
