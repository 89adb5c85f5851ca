"""interfaces/I<Name>.vyi and interfaces/abi/<Name>.json must describe exactly the external API
of contracts/<Name>.vy."""

from __future__ import annotations

import pytest

from computeshare.abi import contract_abi, signatures
from devtools import PROJECT_ROOT
from devtools.abi_export import ABI_DIR, abi_text, deployables, interface_abi

DEPLOYABLES = deployables()


def test_every_deployable_has_an_interface():
    assert DEPLOYABLES, "no contracts found"
    for name in DEPLOYABLES:
        assert (PROJECT_ROOT / "interfaces" / f"I{name}.vyi").exists(), name


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_interface_matches_contract_abi(project, name):
    vyi_abi = interface_abi(PROJECT_ROOT / "interfaces" / f"I{name}.vyi")
    in_contract, in_interface = signatures(contract_abi(project, name)), signatures(vyi_abi)
    assert in_contract - in_interface == set(), "missing from the interface"
    assert in_interface - in_contract == set(), "in the interface but not the contract"


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_abi_json_matches_build(project, name):
    path = ABI_DIR / f"{name}.json"
    assert path.exists(), f"{path.name} missing: run `make abi`"
    assert path.read_text() == abi_text(contract_abi(project, name)), "stale: run `make abi`"


def test_no_abi_json_without_contract():
    assert sorted(p.stem for p in ABI_DIR.glob("*.json")) == DEPLOYABLES
