"""The catalogue's wasm kernels written again in plain Python, from their WAT comments: the
tests check each module against these, and the sandbox benchmark times them side by side."""

from __future__ import annotations

import struct
from collections.abc import Iterator

M64 = 2**64 - 1


def xorshift64(state: int) -> Iterator[int]:
    """Successive xorshift64 states (13, 7, 17) after `state`; the seed 0 is replaced by 1."""
    state = state or 1
    while True:
        state ^= (state << 13) & M64
        state ^= state >> 7
        state ^= (state << 17) & M64
        yield state


def splitmix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def hash_chain(rounds: int, seed: bytes) -> bytes:
    state = 0xCBF29CE484222325
    for byte in seed:
        state = ((state ^ byte) * 0x100000001B3) & M64
    for i in range(rounds):
        state = splitmix64(state ^ i)
    return struct.pack("<Q", state)


def monte_carlo(seed: int, samples: int) -> bytes:
    draws = xorshift64(seed)
    inside = sum(
        (next(draws) >> 33) ** 2 + (next(draws) >> 33) ** 2 < 2**62 for _ in range(samples)
    )
    return struct.pack("<QQ", inside, samples)


def matmul(n: int, seed: int) -> bytes:
    draws = xorshift64(seed)
    a = [[next(draws) & 0xFFFF for _ in range(n)] for _ in range(n)]
    b = [[next(draws) & 0xFFFF for _ in range(n)] for _ in range(n)]
    cells = [sum(a[i][k] * b[k][j] for k in range(n)) & M64 for i in range(n) for j in range(n)]
    return struct.pack(f"<{n * n}Q", *cells)
