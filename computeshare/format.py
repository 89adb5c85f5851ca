"""How amounts, durations and times read, in the CLI, the dashboard, the demo and the library:
one format each."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

TOKEN = 10**18
_UNITS = (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1))


def tokens(wei: int | str) -> str:
    """Wei as tokens with thousands separators and at most 4 decimals: 5000 * 10**18 ->
    "5,000"; a non-zero amount below 0.0001 shows as "<0.0001"."""
    value = int(wei)
    if 0 < abs(value) < TOKEN // 10_000:
        return "<0.0001" if value > 0 else "-<0.0001"
    return f"{Decimal(value) / TOKEN:,.4f}".rstrip("0").rstrip(".")


def duration(seconds: int) -> str:
    """A span's two largest units: 11_520 -> "3h 12m", 59 -> "59s", 0 -> "0s"."""
    seconds = abs(int(seconds))
    parts = []
    for unit, size in _UNITS:
        if seconds >= size or (unit == "s" and not parts):
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def when(timestamp: int, now: int) -> str:
    """A chain timestamp as a UTC date and a countdown measured on the chain's clock:
    "2026-12-01 10:00 UTC, in 3h 12m" or "..., 5m ago"."""
    date = datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d %H:%M UTC")
    delta = int(timestamp) - int(now)
    if delta > 0:
        return f"{date}, in {duration(delta)}"
    if delta < 0:
        return f"{date}, {duration(-delta)} ago"
    return f"{date}, now"


def utc_text(timestamp: int | None) -> str:
    """A chain timestamp as "2026-12-06 20:48:30 UTC"; "-" for none."""
    if not timestamp:
        return "-"
    return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


SHORT_ID = 10  # hex digits of an id's short form


def hex_id(value: int | bytes | str, full: bool = True) -> str:
    """A job, device or proposal id as 0x-hex: all 64 digits, or with `full` false its short
    form, the first `SHORT_ID` digits (every command takes any unambiguous prefix).
    A decimal string (a proposal id as the index keeps it) is read as a number."""
    if isinstance(value, bytes | bytearray):
        digits = bytes(value).hex().rjust(64, "0")
    else:
        digits = f"{int(value):064x}"
    return "0x" + (digits if full else digits[:SHORT_ID])
