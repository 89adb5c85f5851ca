"""docs/architecture.md against the code: every mechanically checkable claim is checked.

- every name in backquotes is a name in the code (a function, variable, constant, test,
  module or file), matched as a whole word;
- every storage word it lays out (`_name[key]`) is declared in a contract;
- its counts of deployable contracts and shared modules are the counts on disk;
- every bit table in section 2 starts each field at a position its contract uses: a shift or
  offset constant, or a literal `<< n` / `2**n`, of the contract (or the modules it uses).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "architecture.md").read_text()
CONTRACTS = ROOT / "contracts"
WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip


def _code_files() -> list[Path]:
    files = [*CONTRACTS.rglob("*.vy"), *CONTRACTS.rglob("*.vyi")]
    for folder in ("computeshare", "scripts", "tests", "devtools"):
        files += (ROOT / folder).rglob("*.py")
    return [*files, ROOT / "Makefile", ROOT / "pyproject.toml"]


def _code_words() -> set[str]:
    words: set[str] = set()
    for path in _code_files():
        words |= set(WORD.findall(path.read_text()))
        words.add(path.stem)
    return words


def test_every_name_in_backquotes_is_in_the_code():
    named = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)(?:\[[^`]*\]|\(\))?`", DOC))
    missing = sorted(named - _code_words())
    assert not missing, f"docs/architecture.md names what the code does not have: {missing}"


def test_every_storage_word_laid_out_is_declared():
    declared = set()
    for path in CONTRACTS.rglob("*.vy"):
        declared |= set(re.findall(r"^(\w+): (?:public\()?HashMap", path.read_text(), re.M))
    laid_out = set(re.findall(r"`(_\w+)\[[^`\]]*\]", DOC))
    missing = sorted(laid_out - declared)
    assert not missing, f"storage the docs lay out that no contract declares: {missing}"


def test_contract_and_module_counts():
    match = re.search(r"(\w+) deployable contracts \(Vyper [\d.]+\) and (\w+) shared modules", DOC)
    assert match, "the count sentence of section 1 is gone"
    contracts = len(list(CONTRACTS.glob("*.vy")))
    modules = len(list((CONTRACTS / "modules").glob("*.vy")))
    claimed = NUMBERS[match[1].lower()], NUMBERS[match[2].lower()]
    assert claimed == (contracts, modules)


def _positions(source: str) -> set[int]:
    """Bit positions a contract's source uses: shift and offset constants, `<< n`, `2**n`."""
    found = {0}
    for name, value in re.findall(r"^(\w+): constant\(uint\d+\) = (\d+)\s*$", source, re.M):
        if name.endswith(("_SHIFT", "_AT", "_BITS")):
            found.add(int(value))
    found |= {int(n) for n in re.findall(r"<<\s*(\d+)", source)}
    found |= {int(n) for n in re.findall(r"2\s*\*\*\s*(\d+)", source)}
    return found


def _sections() -> dict[str, str]:
    """Section 2's subsections by contract name."""
    part = DOC.split("## 2. Packed storage words", 1)[1].split("\n## 3.", 1)[0]
    chunks = re.split(r"^### (\w+)\s*$", part, flags=re.M)
    return dict(zip(chunks[1::2], chunks[2::2], strict=True))


def test_bit_tables_start_fields_where_the_contracts_do():
    modules = "".join(p.read_text() for p in (CONTRACTS / "modules").glob("*.vy"))
    wrong = []
    for contract, text in _sections().items():
        source = (CONTRACTS / f"{contract}.vy").read_text() + modules
        positions = _positions(source)
        for start, field in re.findall(r"^\| (\d+)\.\.\d+ \| ([^|]+)\|", text, re.M):
            if int(start) not in positions:
                wrong.append(f"{contract}: {field.strip()} at bit {start}")
    assert not wrong, f"bit tables whose fields start where no constant puts them: {wrong}"


def _tables(text: str, prefix: str = "") -> list[tuple[str | None, list[tuple[int, int]]]]:
    """Each markdown table of bit ranges (rows `| a..b | ...` after `prefix`, a regular
    expression; rows without a range continue the one above), in order, with the storage
    word the paragraph before it names first (`_name[...]`), or None."""
    tables, current, paragraph, name, fresh = [], [], [], None, True
    for line in text.splitlines():
        row = re.match(rf"^{prefix}\| (\d+)\.\.(\d+)\s*\|", line)
        if row:
            if not current:  # the paragraph before it, across the blank line between
                words = re.findall(r"`(_\w+)\[", " ".join(paragraph))
                name = words[0] if words else None
            current.append((int(row[1]), int(row[2])))
        elif current and re.match(rf"^{prefix}\|", line):
            continue  # a row's continuation
        else:
            if current:
                tables.append((name, current))
                current = []
            if not line.strip(" #"):
                fresh = True  # a blank line: the next text starts a new paragraph
            elif re.match(rf"^{prefix}\|", line):
                continue  # a table's header rows
            else:
                paragraph, fresh = ([line] if fresh else [*paragraph, line]), False
    return [*tables, (name, current)] if current else tables


def test_bit_tables_match_the_contracts_own_tables():
    """A contract that lays out a word in a comment table, or a shared module it imports in
    its docstring (`job_layout`), is the source; the docs' table of the same word (the
    storage word named before both, else the table starting with the same two fields)
    repeats its ranges exactly."""
    wrong = []
    for contract, text in _sections().items():
        source = (CONTRACTS / f"{contract}.vy").read_text()
        own = _tables(source, prefix="# ")
        for module in re.findall(r"^from contracts.modules import (\w+)", source, re.M):
            own += _tables((CONTRACTS / "modules" / f"{module}.vy").read_text(), r"\s+")
        for name, table in _tables(text):
            same = [t for n, t in own if name is not None and n == name]
            same = same or [t for _, t in own if t[:2] == table[:2]]
            if same and table not in same:
                wrong.append(f"{contract}: docs {name} {table} but the contract {same}")
    assert not wrong, "\n".join(wrong)
