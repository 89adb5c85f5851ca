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
