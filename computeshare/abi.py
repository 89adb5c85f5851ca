"""ABI helpers: compile an interface file, and compare ABIs independent of order."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from eth_utils import keccak

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


ABI_DIR = PROJECT_ROOT / "interfaces" / "abi"


def deployables() -> list[str]:
    """Names of the deployable contracts (top-level files of contracts/)."""
    return sorted(p.stem for p in (PROJECT_ROOT / "contracts").glob("*.vy"))


def contract_abi(project, name: str) -> list[dict]:
    """The ABI of a compiled contract of `project`, as JSON-ready dicts in source order."""
    return [
        item.model_dump(by_alias=True, mode="json", exclude_none=True)
        for item in getattr(project, name).contract_type.abi
    ]


def abi_text(abi: list[dict]) -> str:
    """The canonical text of an ABI file: indented JSON with a trailing newline."""
    return json.dumps(abi, indent=2) + "\n"


def export_abis(project, directory: Path = ABI_DIR) -> list[Path]:
    """Writes interfaces/abi/<Name>.json for every deployable; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name in deployables():
        path = directory / f"{name}.json"
        path.write_text(abi_text(contract_abi(project, name)))
        written.append(path)
    return written


def selectors(abi: list[dict]) -> dict[bytes, str]:
    """4-byte selector -> function name, for every function of an ABI."""
    return {
        keccak(text=f"{item['name']}({','.join(_type(p) for p in item['inputs'])})")[:4]: item[
            "name"
        ]
        for item in abi
        if item.get("type") == "function"
    }
