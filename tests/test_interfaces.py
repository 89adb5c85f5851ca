"""interfaces/I<Name>.vyi must describe exactly the external API of contracts/<Name>.vy."""

from __future__ import annotations

import pytest

from computeshare.abi import PROJECT_ROOT, interface_abi, signatures

DEPLOYABLES = sorted(p.stem for p in (PROJECT_ROOT / "contracts").glob("*.vy"))


def test_every_deployable_has_an_interface():
    assert DEPLOYABLES, "no contracts found"
    for name in DEPLOYABLES:
        assert (PROJECT_ROOT / "interfaces" / f"I{name}.vyi").exists(), name


@pytest.mark.parametrize("name", DEPLOYABLES)
def test_interface_matches_contract_abi(project, name):
    contract_abi = [
        item.model_dump(by_alias=True, mode="json")
        for item in getattr(project, name).contract_type.abi
    ]
    vyi_abi = interface_abi(PROJECT_ROOT / "interfaces" / f"I{name}.vyi")
    in_contract, in_interface = signatures(contract_abi), signatures(vyi_abi)
    assert in_contract - in_interface == set(), "missing from the interface"
    assert in_interface - in_contract == set(), "in the interface but not the contract"
