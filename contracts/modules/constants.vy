# pragma version ~=0.4.3
"""
@title Shared constants
@custom:contract-name constants
@license GNU Affero General Public License v3.0 only
@notice Units and layouts more than one contract uses, declared once.

        Numeric spec word (DeviceRegistry's `_spec`) and, for the fields they share, a
        job's requirements word (`job_layout`): the same offsets and widths, so a
        requirement compares with the spec field it bounds.
        | bits     | spec field          | requirement      | width |
        | -------- | ------------------- | ---------------- | ----- |
        | 0..15    | cpu_cores           | min CPU cores    | 16    |
        | 16..47   | memory_mb           | min memory (MB)  | 32    |
        | 48..55   | gpu_count           | min GPU count    | 8     |
        | 56..87   | vram_mb             | min VRAM (MB)    | 32    |
        | 88..103  | region              | region (0 any)   | 16    |
        | 104..119 | max_concurrent_jobs | attested only (104..111) |  |
        | 120..215 | price_per_second    | compute seconds (112..143) |  |
"""

HOUR: constant(uint256) = 3600
DAY: constant(uint256) = 86400
YEAR: constant(uint256) = 365 * DAY
# @notice Basis points in one.
BPS: constant(uint256) = 10_000
# @notice One protocol token (18 decimals).
TOKEN: constant(uint256) = 10**18

MEMORY_AT: constant(uint256) = 16
GPU_AT: constant(uint256) = 48
VRAM_AT: constant(uint256) = 56
REGION_AT: constant(uint256) = 88
# Requirements word only.
ATTESTED_AT: constant(uint256) = 104
SECONDS_AT: constant(uint256) = 112

U8: constant(uint256) = 2**8 - 1
U16: constant(uint256) = 2**16 - 1
U24: constant(uint256) = 2**24 - 1
U32: constant(uint256) = 2**32 - 1
U40: constant(uint256) = 2**40 - 1
U48: constant(uint256) = 2**48 - 1
U64: constant(uint256) = 2**64 - 1
U96: constant(uint256) = 2**96 - 1
ADDRESS_MASK: constant(uint256) = 2**160 - 1
