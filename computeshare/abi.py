"""ABI helpers: a compiled contract's ABI, selectors, and ABIs compared independent of order."""

from __future__ import annotations

from eth_utils import keccak


def _params(params: list[dict], with_indexed: bool = False) -> tuple:
    return tuple(
        (p.get("name", ""), _type(p), bool(p.get("indexed")))
        if with_indexed
        else (p.get("name", ""), _type(p))
        for p in params
    )


def _type(param: dict) -> str:
    if param["type"].startswith("tuple"):
        inner = ",".join(_type(c) for c in param.get("components", []))
        return f"({inner}){param['type'][5:]}"
    return param["type"]


def signatures(abi: list[dict]) -> set[tuple]:
    """Order-free summary of an ABI: functions (mutability, outputs) and events (`indexed`)."""
    out: set[tuple] = set()
    for item in abi:
        kind = item.get("type")
        if kind == "function":
            out.add(
                (
                    "function",
                    item["name"],
                    tuple(_type(p) for p in item.get("inputs", [])),
                    tuple(_type(p) for p in item.get("outputs", [])),
                    item.get("stateMutability"),
                )
            )
        elif kind == "event":
            out.add(("event", item["name"], _params(item["inputs"], with_indexed=True)))
    return out


def contract_abi(project, name: str) -> list[dict]:
    """The ABI of a compiled contract of `project`, as JSON-ready dicts in source order."""
    return [
        item.model_dump(by_alias=True, mode="json", exclude_none=True)
        for item in getattr(project, name).contract_type.abi
    ]


def selectors(abi: list[dict]) -> dict[bytes, str]:
    """4-byte selector -> function name, for every function of an ABI."""
    return {
        keccak(text=f"{item['name']}({','.join(_type(p) for p in item['inputs'])})")[:4]: item[
            "name"
        ]
        for item in abi
        if item.get("type") == "function"
    }
