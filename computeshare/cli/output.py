"""What a command prints: `say` (text lines, or with `--json` one JSON object at its end:
`OUTPUT`, `json_option`, `plain`), `table`, `warn`, and how times and ids read (`when`,
`short_id`).

Nothing here loads ape, web3 or the agent at import time: each group's `--help` stays
fast.
"""

from __future__ import annotations

import io
import json
import shutil
import sys

import click

from computeshare.format import hex_id, when  # noqa: F401  (`when` is re-exported)


def chain_now() -> int:
    """The timestamp of the latest block: the clock contracts compare against."""
    from computeshare.cli.read import light_reader

    if (reader := light_reader()) is not None:
        return reader.now()
    from ape import chain

    return chain.blocks.head.timestamp


def short_id(raw: bytes, full: bool = False) -> str:
    return hex_id(raw, full)


def _terminal(stream) -> bool:
    """Whether `stream` is a terminal (seen through rich's proxy while a status shows)."""
    stream = getattr(stream, "rich_proxied_file", stream)
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def table(rows: list[dict], columns: list[str] | None = None) -> None:
    """Prints `rows` as a table with its column headers (even when empty). On a terminal
    it is drawn by rich; otherwise plain aligned text that scripts and tests can read."""
    columns = columns or (list(rows[0]) if rows else [])
    if OUTPUT.json:
        OUTPUT.record["rows"] = [{c: plain(row.get(c)) for c in columns} for row in rows]
        return
    if not _terminal(sys.stdout):
        click.echo(_plain_table(rows, columns))
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    grid = Table(box=box.SIMPLE_HEAD, header_style="bold", show_edge=False, pad_edge=False)
    for index, column in enumerate(columns):
        grid.add_column(column, justify="left" if index == 0 else "right", no_wrap=True)
    for row in rows:
        grid.add_row(*(str(row.get(column, "")) for column in columns))
    # Never truncate a cell (ids are copied from tables): as wide as the table needs.
    natural = Console(file=io.StringIO(), width=100_000).measure(grid).maximum
    width = max(natural, shutil.get_terminal_size().columns)
    Console(width=width, highlight=False, emoji=False, markup=False).print(grid)


def _plain_table(rows: list[dict], columns: list[str]) -> str:
    """The table as aligned plain text, as rich lays it out without a box (the first column
    left, the others right, two spaces between, no trailing blanks), without loading rich:
    what a script or a pipe reads. Widths count characters, not terminal cells."""
    if not columns:
        return ""
    cells = [list(columns)] + [[str(row.get(column, "")) for column in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = []
    for line in cells:
        first, *rest = (cell.rstrip() for cell in line)
        parts = [first.ljust(widths[0])]
        parts += [cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True)]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines).rstrip("\n")


class _Output:
    """What a command prints: text lines, or with `--json` one JSON object at its end made
    of the fields its lines carry (and `rows` for a table)."""

    def __init__(self):
        self.json = False
        self.record: dict = {}

    def say(self, text: str | None, **fields) -> None:
        """Prints `text` (None: nothing), or under --json adds `fields` to the object."""
        if self.json:
            self.record.update({key: plain(value) for key, value in fields.items()})
        elif text is not None:
            click.echo(text)

    def flush(self) -> None:
        if self.json:
            click.echo(json.dumps(self.record, sort_keys=True))
            self.record = {}


def plain(value):
    """A value as JSON has it: bytes as 0x-hex, big integers as decimal strings (JavaScript
    numbers lose precision above 2**53), containers element by element."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, bool) or value is None or isinstance(value, float | str):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**53 else str(value)
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return str(value)


OUTPUT = _Output()
say = OUTPUT.say


def _json_mode(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    OUTPUT.json, OUTPUT.record = bool(value), {}


json_option = click.option(
    "--json",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_json_mode,
    help="print one JSON object (ids as 0x-hex, amounts in wei as decimal strings)",
)


def warn(message: str) -> None:
    click.echo(f"Warning: {message}", err=True)
