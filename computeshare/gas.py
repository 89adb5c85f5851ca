"""Gas accounting: what a transaction costs beyond what the protocol charges to carry it."""

from __future__ import annotations

TX_BASE_GAS = 21_000
CALLDATA_ZERO_BYTE_GAS = 4
CALLDATA_NONZERO_BYTE_GAS = 16


def calldata_gas(data: bytes) -> int:
    """Standard calldata cost (EIP-2028): 4 gas per zero byte, 16 per non-zero byte."""
    zeros = data.count(0)
    return zeros * CALLDATA_ZERO_BYTE_GAS + (len(data) - zeros) * CALLDATA_NONZERO_BYTE_GAS


def intrinsic_gas(data: bytes) -> int:
    """Intrinsic cost of a call transaction without an access list."""
    return TX_BASE_GAS + calldata_gas(data)


def execution_gas(gas_used: int, data: bytes) -> int:
    """Gas above the intrinsic cost: what the contract itself costs."""
    return gas_used - intrinsic_gas(data)


def gas_row(label: str, receipt, peer: int | None = None) -> dict:
    """One benchmark row: gasUsed, gas above intrinsic, and the change against a peer figure."""
    above = execution_gas(receipt.gas_used, bytes(receipt.transaction.data))
    row = {"operation": label, "gas_used": receipt.gas_used, "above_intrinsic": above}
    if peer:
        row["peer"] = peer
        row["vs_peer"] = f"{(above - peer) / peer:+.1%}"
    return row


def format_table(rows: list[dict], columns: list[str]) -> str:
    """Plain-text table, right-aligned numbers, for benchmark output and the README."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = "  ".join(
        c.ljust(w) if i == 0 else c.rjust(w)
        for i, (c, w) in enumerate(zip(columns, widths, strict=True))
    )
    out = [line, "  ".join("-" * w for w in widths)]
    for row in cells:
        out.append(
            "  ".join(
                v.ljust(w) if i == 0 else v.rjust(w)
                for i, (v, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return "\n".join(out)
