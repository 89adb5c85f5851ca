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


NEW_WORD_GAS = 20_000  # an SSTORE that creates a storage word costs at least this
_CALLS = ("CALL", "STATICCALL", "DELEGATECALL", "CALLCODE")


def gas_breakdown(struct_logs: list[dict], to: str, names: dict[str, str]) -> dict[str, int]:
    """Split one transaction's execution by where the gas went, from a geth-style
    `debug_traceTransaction` (`structLogs` with stacks): storage words created, other
    storage reads and writes, events and call costs, each by the contract whose code ran
    (`names` maps lower-case addresses to names), and every other opcode (memory, hashing,
    arithmetic) under "rest". Intrinsic costs and refunds are not in the steps: see
    `receipt_breakdown`."""
    out: dict[str, int] = {}

    def add(key: str, gas: int) -> None:
        out[key] = out.get(key, 0) + gas

    frames = [names.get(to.lower(), to.lower())]
    for i, step in enumerate(struct_logs):
        depth, op, cost = step["depth"], step["op"], step["gasCost"]
        del frames[depth:]
        here = frames[-1]
        if op == "SSTORE" and cost >= NEW_WORD_GAS:
            add("new storage words", cost)
        elif op in ("SLOAD", "SSTORE"):
            add(f"{here}: storage", cost)
        elif op.startswith("LOG"):
            add(f"{here}: events", cost)
        elif op in _CALLS:
            target = "0x" + step["stack"][-2][2:].rjust(40, "0")[-40:]
            callee = names.get(target.lower(), target.lower())
            add(f"{callee}: calls into it", _call_own_cost(struct_logs, i))
            frames.append(callee)
        else:
            add("rest", cost)
    return out


def receipt_breakdown(provider, receipt, names: dict[str, str]) -> dict[str, int]:
    """`gas_breakdown` of a mined transaction (traced through the node's
    `debug_traceTransaction`), plus its intrinsic costs and the storage refunds it earned
    (zero or negative): the parts add up to the receipt's gasUsed exactly."""
    trace = provider.make_request(
        "debug_traceTransaction", [receipt.txn_hash, {"disableMemory": True}]
    )
    parts = gas_breakdown(trace["structLogs"], receipt.receiver, names)
    parts["base (21,000 per transaction)"] = TX_BASE_GAS
    parts["calldata"] = calldata_gas(bytes(receipt.transaction.data))
    parts["refunds"] = receipt.gas_used - sum(parts.values())
    return parts


def _call_own_cost(steps: list[dict], i: int) -> int:
    """What a call opcode itself costs (account access, memory): the gas it took from its
    frame minus what ran inside the callee."""
    call, depth = steps[i], steps[i]["depth"]
    j = i + 1
    while j < len(steps) and steps[j]["depth"] > depth:
        j += 1
    if j == len(steps):
        return call["gasCost"]
    taken = call["gas"] - steps[j]["gas"]
    if j == i + 1:  # no code ran (a precompile or an account without code)
        return taken
    first, last = steps[i + 1], steps[j - 1]
    inside = first["gas"] - (last["gas"] - last["gasCost"])
    return taken - inside
