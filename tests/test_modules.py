"""The contract modules several contracts share: governed parameters (`governed`), the
guardian (`guardianship`) and the signature rule (`signatures`). One check, one revert
reason and one event wherever a module is used."""

from __future__ import annotations

import re
from pathlib import Path

import ape

from computeshare.constants import DeviceStatus, JobStatus, ProposalState, ReplicaStatus, Role
from computeshare.params import PARAMETERS
from computeshare.signing import sign_offer
from tests.helpers import DAY, SPEC, offer_terms

CONTRACTS = (
    "ComputeToken", "Staking", "DeviceRegistry", "JobEscrow", "JobEscrowView", "OfferBook",
    "JobDisputes", "Governor", "Timelock",
)  # fmt: skip
# secp256k1's group order: (r, n - s, the other v) is the malleable twin of a valid signature.
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def test_every_governed_contract_has_one_bounds_check(market, deployer, outsider):
    """DeviceRegistry, Staking and JobEscrow (packed) answer the same way: the bounds
    the Python side declares, one reason for an unknown key and one for a value out of
    bounds, and one `ParameterChanged` event."""
    contracts = {"DeviceRegistry": market.registry, "Staking": market.staking}
    contracts["JobEscrow"] = market.escrow
    for name, contract in contracts.items():
        declared = sorted(PARAMETERS[name].values(), key=lambda p: p.key)
        assert declared, name
        for param in declared:
            bounds_of = market.escrow_view if name == "JobEscrow" else contract
            assert tuple(bounds_of.parameter_bounds(param.key)) == (param.low, param.high)
        param = declared[0]
        count = len(declared)
        with ape.reverts("parameters: unknown parameter"):
            contract.set_parameter(count, param.low, sender=deployer)
        with ape.reverts("parameters: unknown parameter"):
            contract.parameter(count)
        with ape.reverts("parameters: out of bounds"):
            contract.set_parameter(param.key, param.high + 1, sender=deployer)
        if param.low > 0:
            with ape.reverts("parameters: out of bounds"):
                contract.set_parameter(param.key, param.low - 1, sender=deployer)
        with ape.reverts():
            contract.set_parameter(param.key, param.high, sender=outsider)
        old = contract.parameter(param.key)
        receipt = contract.set_parameter(param.key, param.high, sender=deployer)
        (event,) = receipt.decode_logs(contract.ParameterChanged)
        assert (event.key, event.old_value, event.new_value) == (param.key, old, param.high)
        assert contract.parameter(param.key) == param.high


def test_an_expired_guardian_has_no_power(market, deployer, guardian, chain):
    """A guardian's power ends with its term: it can neither pause nor lift a pause
    (it could lift one before), and the owner's pause stands."""
    escrow = market.escrow
    with ape.reverts("guardian: term too long"):
        escrow.set_guardian(guardian, chain.pending_timestamp + 366 * DAY, sender=deployer)
    expiry = chain.pending_timestamp + DAY
    receipt = escrow.set_guardian(guardian, expiry, sender=deployer)
    (event,) = receipt.decode_logs(escrow.GuardianSet)
    assert (event.guardian, event.expiry) == (guardian, expiry)
    escrow.pause(chain.pending_timestamp + DAY, sender=guardian)
    escrow.unpause(sender=guardian)
    chain.pending_timestamp = expiry
    with ape.reverts("job_escrow: caller cannot pause"):
        escrow.pause(chain.pending_timestamp + DAY, sender=guardian)
    escrow.pause(chain.pending_timestamp + 10 * DAY, sender=deployer)
    with ape.reverts("job_escrow: caller cannot pause"):
        escrow.unpause(sender=guardian)
    assert escrow.paused_until() > chain.pending_timestamp


def test_a_malleable_twin_of_a_signature_is_refused_not_reverted(
    market, client, providers, chain, chain_id
):
    """The signature rule takes only low-s ECDSA signatures (EIP-2): the high-s twin of
    a provider's valid offer signature is an invalid signature (the offer's own reason),
    and the original still matches."""
    provider = providers[0]
    offer = offer_terms(provider, client, chain)
    signature = sign_offer(
        provider.private_key, chain_id=chain_id, offer_book=market.offers.address, offer=offer
    )
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    twin = r + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - v])  # 27 <-> 28
    deadline = chain.pending_timestamp + DAY
    with ape.reverts("offer_book: invalid signature"):
        market.offers.match_offer(SPEC, deadline, offer, twin, sender=client)
    market.offers.match_offer(SPEC, deadline, offer, signature, sender=client)


def test_the_python_enums_are_the_contracts_numbers(market, dao):
    """computeshare.constants declares each status, role and state once for the Python
    side; each value is the number the contracts use."""
    view = market.escrow_view
    for status in JobStatus:
        if status is not JobStatus.NONE:
            assert getattr(view, f"STATUS_{status.name}")() == status
    for status in ReplicaStatus:
        if status is not ReplicaStatus.NONE:
            assert getattr(view, f"REPLICA_{status.name}")() == status
    for status in DeviceStatus:
        assert getattr(market.registry, f"STATUS_{status.name}")() == status
    for state in ProposalState:
        assert getattr(dao.governor, f"STATE_{state.name}")() == state
    # A Vyper flag's members are 1, 2, 4, ... in the order IAccess declares them.
    text = (Path(__file__).parents[1] / "interfaces" / "IAccess.vyi").read_text()
    members = re.search(r"^flag Role:\n((?:    .*\n|\n)+?)(?=\S)", text, re.M).group(1)
    names = [line.split("#")[0].strip() for line in members.splitlines()]
    names = [name for name in names if name]
    assert {name: 1 << i for i, name in enumerate(names)} == {r.name: r.value for r in Role}


def test_every_contract_fits_eip170_and_jobescrow_keeps_room(project):
    """EIP-170 caps deployed code at 24,576 bytes. JobEscrow, which the job steps live in,
    keeps at least 4 KiB of that free for the changes still to come. The history in bytes
    free: the module split made 2,091; replicated jobs' escalation to the arbiter, the
    bounded slash reward and the record floor took 476 of them; the deposit shards took
    1,522 more, of which keeping one copy of each revert reason several functions give won
    back 1,386, and the shard search moving into the token 183 (1,585 free at 22,991
    bytes). Failing every check through one revert path (`_revert`: a reason's text is
    written only when its check fails, and encoded by one copy of the code instead of
    fifty) won back 2,845, at no gas to a call whose checks pass (4,430 free at 20,146);
    disputes and rulings moving into JobDisputes, behind one entry point (`arbitrate`), 686
    more (5,116 free at 19,460). Reading and writing the job word through `job_layout`'s
    per-field helpers and `_settle` in steps took 852 (4,129 free at 20,447, from 19,595);
    the replica word's and device record's helpers, about 300 more, did not fit. k = 1
    commit-reveal, which `submit` made redundant, would free 245 more; it stays for now."""
    limit = 24_576
    sizes = {}
    for name in CONTRACTS:
        code = getattr(project, name).contract_type.runtime_bytecode.bytecode
        sizes[name] = len(bytes.fromhex(code.removeprefix("0x")))
    assert all(size <= limit for size in sizes.values()), sizes
    assert limit - sizes["JobEscrow"] >= 4_096, sizes
