"""ABI helpers: compile an interface file, and compare ABIs independent of order."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def interface_abi(vyi: Path) -> list[dict]:
    """ABI of a `.vyi` interface, compiled by the project's vyper."""
    vyper = Path(sys.executable).with_name("vyper")
    out = subprocess.run(
        [str(vyper), "-p", str(PROJECT_ROOT), "-f", "abi", str(vyi)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout)


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
