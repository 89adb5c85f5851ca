"""Reading a deployment: where its manifest lives and what it records.

A manifest is the JSON record `ape run deploy` writes, one per network and chain id:
every contract's address, deploy block, constructor arguments and ABI, the configuration
(roles, parameters) and the steps done. `Manifest` reads and saves it; the accessors give
typed values, so no caller indexes the JSON by hand. Nothing here needs a source checkout,
a compiler or ape: manifests are found under `$COMPUTESHARE_DEPLOYMENTS`, else under
`deployments/` of the current directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from computeshare.exceptions import ManifestError

FORMAT = 1
# Contracts whose owner role goes to the timelock in a governed deployment.
OWNED = ("ComputeToken", "Staking", "DeviceRegistry", "JobEscrow", "JobDisputes")
DEPLOYMENTS_ENV = "COMPUTESHARE_DEPLOYMENTS"


def deployments_dir() -> Path:
    """Where manifests live: `$COMPUTESHARE_DEPLOYMENTS`, else `./deployments`."""
    return Path(os.environ.get(DEPLOYMENTS_ENV) or Path.cwd() / "deployments")


def manifest_path(network_name: str, chain_id: int, directory: Path | None = None) -> Path:
    """`<directory>/<network>-<chain id>.json` (by default in `deployments_dir()`)."""
    return Path(directory or deployments_dir()) / f"{network_name}-{chain_id}.json"


def network_manifest_path(network_name: str, chain_id: int, directory: Path | None = None) -> Path:
    """The manifest of the connected network: its own, or, for a fork without one
    (`sepolia-fork`), its upstream's."""
    path = manifest_path(network_name, chain_id, directory)
    if path.exists():
        return path
    return manifest_path(network_name.removesuffix("-fork"), chain_id, directory)


def shape_problem(data: Any) -> str | None:
    """What keeps `data` (parsed JSON) from being a manifest the accessors can read, or
    None. Only the fields present are checked: a deployment under way records them in turn."""
    if not isinstance(data, dict):
        return f"its top level is {type(data).__name__}, not an object"
    kinds = {
        "contracts": dict, "steps": dict, "abis": dict, "config": dict,
        "complete": bool, "chain_id": int, "network": str, "deployer": str,
    }  # fmt: skip
    for key, kind in kinds.items():
        value = data.get(key)
        if value is not None and (
            not isinstance(value, kind) or (kind is int and isinstance(value, bool))
        ):
            return f"{key!r} is {type(value).__name__}, not {_JSON_NAMES[kind]}"
    for name, entry in (data.get("contracts") or {}).items():
        if not isinstance(entry, dict) or not isinstance(entry.get("address"), str):
            return f"contract {name!r} has no address"
        block = entry.get("block") or 0
        if isinstance(block, bool) or not (isinstance(block, int) or str(block).isdigit()):
            return f"the block of contract {name!r} is not a number"
    for name, abi in (data.get("abis") or {}).items():
        if not isinstance(abi, list):
            return f"the ABI of {name!r} is not a list"
    for name, step in (data.get("steps") or {}).items():
        if not isinstance(step, dict):
            return f"step {name!r} is not an object"
    return None


_JSON_NAMES = {dict: "an object", bool: "true or false", int: "a number", str: "a string"}


class Manifest(Mapping):
    """The record of one deployment on one chain; saved after every step when it has a path.
    It reads as the JSON mapping too (`manifest["contracts"]`), for code that stores it."""

    def __init__(self, path: Path | None, data: Mapping | None = None):
        self.path = Path(path) if path is not None else None
        if isinstance(data, Manifest):
            data = data.data
        self.data: dict = data if data is not None else {}

    @classmethod
    def open(cls, path: Path | None) -> Manifest:
        """The manifest at `path`, or an empty one to be written there. A file that cannot
        be read, is not JSON or is JSON of another shape raises `ManifestError` naming it."""
        if path is None or not Path(path).exists():
            return cls(path)
        path = Path(path)
        try:
            data = json.loads(path.read_bytes().decode())
        except OSError as error:
            raise ManifestError(f"cannot read the manifest {path}: {error.strerror}") from None
        except ValueError as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise ManifestError(f"the manifest {path} is not JSON ({error})") from None
        if (problem := shape_problem(data)) is not None:
            raise ManifestError(f"{path} is not a deployment manifest: {problem}")
        return cls(path, data)

    @classmethod
    def deployment(cls, path: Path | str, chain_id: int) -> Manifest:
        """The complete deployment at `path` for chain `chain_id`; `ManifestError` saying
        what to do when there is none, it is incomplete or it is another chain's."""
        path = Path(path)
        if not path.exists():
            raise ManifestError(f"no deployment manifest at {path}: run `ape run deploy` first")
        manifest = cls.open(path)
        if not manifest.complete:
            raise ManifestError(f"deployment in {path} is incomplete: re-run `ape run deploy`")
        if manifest.chain_id != chain_id:
            raise ManifestError(f"{path} is for chain {manifest.chain_id}, connected to {chain_id}")
        return manifest

    def save(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.data, indent=2) + "\n")
            tmp.replace(self.path)  # atomic: a cut-off run never leaves half a manifest

    # -- the JSON mapping

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.data)

    def __len__(self) -> int:
        return len(self.data)

    # -- the deployment

    @property
    def contracts(self) -> dict[str, dict]:
        return self.data.setdefault("contracts", {})

    @property
    def steps(self) -> dict[str, dict]:
        return self.data.setdefault("steps", {})

    @property
    def abis(self) -> dict[str, list[dict]]:
        return self.data.setdefault("abis", {})

    @property
    def complete(self) -> bool:
        return bool(self.data.get("complete"))

    @property
    def chain_id(self) -> int | None:
        return self.data.get("chain_id")

    @property
    def network(self) -> str | None:
        return self.data.get("network")

    @property
    def deployer(self) -> str | None:
        return self.data.get("deployer")

    @property
    def config(self) -> dict:
        """The deployment's configuration as recorded (`DeployConfig.as_dict()`)."""
        return self.data.get("config") or {}

    def names(self) -> list[str]:
        """The deployed contracts' names, in deployment order."""
        return list(self.contracts)

    def has(self, name: str) -> bool:
        return name in self.contracts

    def address(self, name: str) -> str:
        return self.contracts[name]["address"]

    def abi(self, name: str) -> list[dict]:
        return self.abis[name]

    def block(self, name: str) -> int:
        """The block `name` was deployed in (0 when the manifest does not say)."""
        return int(self.contracts[name].get("block") or 0)

    def args(self, name: str) -> list:
        """`name`'s constructor arguments (addresses as strings)."""
        return list(self.contracts[name].get("args") or [])

    @property
    def transactions(self) -> int:
        """How many transactions the deployment sent (contracts and steps, as recorded)."""
        entries = [*self.contracts.values(), *self.steps.values()]
        return sum(1 for entry in entries if entry.get("tx"))

    @property
    def start_block(self) -> int:
        """The first block of the deployment: no event of it is older."""
        blocks = [int(entry["block"]) for entry in self.contracts.values() if entry.get("block")]
        return min(blocks, default=0)

    @property
    def initial_holder(self) -> str:
        """Who received the initial token supply (ComputeToken's first argument)."""
        return self.args("ComputeToken")[0]

    # -- roles and parameters set at deployment

    @property
    def arbiter(self) -> str | None:
        return self.config.get("arbiter")

    @property
    def guardian(self) -> str | None:
        return (self.config.get("guardian") or {}).get("address")

    @property
    def parameters(self) -> dict[str, dict[str, int]]:
        """Parameters set at deployment, by contract and constant name."""
        return self.config.get("parameters") or {}
