"""ABI export from a source checkout: every deployable contract's ABI to interfaces/abi/,
and a `.vyi` interface compiled by the project's vyper (`make abi`, tests/test_interfaces.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from computeshare.abi import contract_abi
from devtools import PROJECT_ROOT

ABI_DIR = PROJECT_ROOT / "interfaces" / "abi"


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


def deployables() -> list[str]:
    """Names of the deployable contracts (top-level files of contracts/)."""
    return sorted(p.stem for p in (PROJECT_ROOT / "contracts").glob("*.vy"))


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
