"""Unit tests for DeviceRegistry: devices, status, eligibility, audits, reputation."""

from __future__ import annotations

import ape
import pytest
from eth_abi import encode
from eth_utils import keccak

from computeshare.jobs import pack_requirements
from computeshare.signing import device_id as local_device_id
from tests.helpers import STAKING_WARMUP, TOKEN, gpu_spec

MAX_BUDGET = 2**256 - 1

ACTIVE, PAUSED, RETIRED = 1, 2, 3
URI = "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"


def device_id(owner, nonce: int) -> bytes:
    return local_device_id(owner.address, nonce)


def spec_tuple(spec: dict) -> tuple:
    keys = ["cpu_cores", "memory_mb", "gpu_count", "gpu_model", "vram_mb", "region"]
    keys += ["price_per_second", "max_concurrent_jobs", "attestation"]
    return tuple(spec[k] for k in keys)


@pytest.fixture
def registered(registry, provider):
    receipt = registry.register(gpu_spec(), URI, sender=provider)
    return receipt.return_value


def test_register_stores_device_and_logs_everything(registry, provider, chain):
    spec = gpu_spec()
    receipt = registry.register(spec, URI, sender=provider)
    expected_id = device_id(provider, 0)
    assert receipt.return_value == expected_id
    assert registry.device_id_of(provider, 0) == expected_id
    (event,) = receipt.decode_logs(registry.DeviceRegistered)
    assert event.device_id == expected_id and event.owner == provider and event.nonce == 0
    assert tuple(event.spec) == spec_tuple(spec) and event.metadata_uri == URI
    (status,) = receipt.decode_logs(registry.DeviceStatusChanged)
    assert (status.previous_status, status.new_status, status.active_devices) == (0, ACTIVE, 1)
    device = registry.device(expected_id)
    assert device.owner == provider and device.status == ACTIVE
    assert device.registered_at == receipt.timestamp
    assert tuple(device.spec) == spec_tuple(spec) and device.metadata_uri == URI
    assert not device.attested
    assert registry.device_count(provider) == 1 and registry.active_devices(provider) == 1
    second = registry.register(
        gpu_spec(gpu_count=0, gpu_model=b"\x00" * 32, vram_mb=0), "", sender=provider
    )
    assert second.return_value == device_id(provider, 1)
    assert registry.active_devices(provider) == 2


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"cpu_cores": 0}, "cpu cores out of range"),
        ({"cpu_cores": 4097}, "cpu cores out of range"),
        ({"memory_mb": 0}, "memory out of range"),
        ({"memory_mb": 16 * 1024 * 1024 + 1}, "memory out of range"),
        ({"gpu_count": 65}, "gpu count out of range"),
        ({"gpu_count": 0}, "gpu fields without gpus"),
        ({"gpu_model": b"\x00" * 32}, "gpu model missing"),
        ({"vram_mb": 0}, "vram out of range"),
        ({"vram_mb": 1024 * 1024 + 1}, "vram out of range"),
        ({"region": 0}, "region out of range"),
        ({"region": 1000}, "region out of range"),
        ({"price_per_second": 0}, "price out of range"),
        ({"price_per_second": 10**24 + 1}, "price out of range"),
        ({"max_concurrent_jobs": 0}, "concurrency out of range"),
        ({"max_concurrent_jobs": 1025}, "concurrency out of range"),
    ],
)
def test_register_rejects_specs_out_of_range(registry, provider, overrides, reason):
    with ape.reverts(f"device_registry: {reason}"):
        registry.register(gpu_spec(**overrides), URI, sender=provider)
    assert registry.device_count(provider) == 0


def test_register_rejects_overlong_uri(registry, provider):
    with ape.reverts("device_registry: metadata uri too long"):
        registry.register(gpu_spec(), "x" * 257, sender=provider)
    registry.register(gpu_spec(), "x" * 256, sender=provider)


def test_update_replaces_spec(registry, registered, provider):
    new = gpu_spec(price_per_second=2 * 10**15, cpu_cores=64)
    receipt = registry.update(registered, new, "https://example.org/d.json", sender=provider)
    (event,) = receipt.decode_logs(registry.DeviceUpdated)
    assert (
        tuple(event.spec) == spec_tuple(new) and event.metadata_uri == "https://example.org/d.json"
    )
    device = registry.device(registered)
    assert tuple(device.spec) == spec_tuple(new)
    assert device.metadata_uri == "https://example.org/d.json"


def test_update_rejects_strangers_unknown_and_retired(registry, registered, provider, alice):
    with ape.reverts("device_registry: caller is not the device owner"):
        registry.update(registered, gpu_spec(), URI, sender=alice)
    with ape.reverts("device_registry: unknown device"):
        registry.update(b"\x01" * 32, gpu_spec(), URI, sender=provider)
    with ape.reverts("device_registry: region out of range"):
        registry.update(registered, gpu_spec(region=0), URI, sender=provider)
    registry.retire(registered, sender=provider)
    with ape.reverts("device_registry: device retired"):
        registry.update(registered, gpu_spec(), URI, sender=provider)


def test_pause_resume_retire(registry, registered, provider, alice):
    receipt = registry.pause(registered, sender=provider)
    (event,) = receipt.decode_logs(registry.DeviceStatusChanged)
    assert (event.previous_status, event.new_status, event.active_devices) == (ACTIVE, PAUSED, 0)
    with ape.reverts("device_registry: device not active"):
        registry.pause(registered, sender=provider)
    registry.resume(registered, sender=provider)
    assert registry.device(registered).status == ACTIVE and registry.active_devices(provider) == 1
    with ape.reverts("device_registry: device not paused"):
        registry.resume(registered, sender=provider)
    with ape.reverts("device_registry: caller is not the device owner"):
        registry.retire(registered, sender=alice)
    receipt = registry.retire(registered, sender=provider)
    (event,) = receipt.decode_logs(registry.DeviceStatusChanged)
    assert (event.previous_status, event.new_status, event.active_devices) == (ACTIVE, RETIRED, 0)
    for action in (registry.retire, registry.pause):
        with ape.reverts():
            action(registered, sender=provider)
    # A paused device retires without touching the active count twice.
    second = registry.register(gpu_spec(), URI, sender=provider).return_value
    registry.pause(second, sender=provider)
    registry.retire(second, sender=provider)
    assert registry.active_devices(provider) == 0


def test_eligibility_follows_stake_per_active_device(
    registry, staking, registered, provider, delegator, chain
):
    assert not registry.is_eligible(registered)
    staking.stake(1_000 * TOKEN, sender=provider)
    assert registry.is_eligible(registered)
    second = registry.register(gpu_spec(), URI, sender=provider).return_value
    assert not registry.is_eligible(registered) and not registry.is_eligible(second)
    # Delegated stake counts towards bonded stake once it has warmed up.
    staking.delegate_to(provider, 1_000 * TOKEN, 0, sender=delegator)
    assert not registry.is_eligible(registered)
    chain.pending_timestamp += staking.parameter(STAKING_WARMUP)
    staking.activate(provider, delegator, sender=delegator)
    assert registry.is_eligible(registered) and registry.is_eligible(second)
    registry.pause(second, sender=provider)
    assert not registry.is_eligible(second)
    assert (
        registry.check_fit(registered, provider, 0, MAX_BUDGET) == gpu_spec()["max_concurrent_jobs"]
    )
    with ape.reverts("device_registry: device not eligible"):
        registry.check_fit(second, provider, 0, MAX_BUDGET)


def test_check_fit_names_the_first_rule_a_device_breaks(
    registry, staking, registered, provider, auditor, alice
):
    """The registry's acceptance check, which JobEscrow and the agent both call: the
    requirements word shares the spec word's offsets, so each field is compared in place."""
    staking.stake(1_000 * TOKEN, sender=provider)
    spec = gpu_spec()
    exact = {
        "min_cpu_cores": spec["cpu_cores"],
        "min_memory_mb": spec["memory_mb"],
        "min_gpu_count": spec["gpu_count"],
        "min_vram_mb": spec["vram_mb"],
        "region": spec["region"],
        "attested_only": False,
        "compute_seconds": 600,
    }
    cost = spec["price_per_second"] * 600
    assert registry.check_fit(registered, provider, pack_requirements(exact), cost) == 4
    with ape.reverts("device_registry: no such device"):
        registry.check_fit(registered, alice, pack_requirements(exact), cost)
    for field, value, reason in (
        ("min_cpu_cores", spec["cpu_cores"] + 1, "device below requirements"),
        ("min_memory_mb", spec["memory_mb"] + 1, "device below requirements"),
        ("min_gpu_count", spec["gpu_count"] + 1, "device below requirements"),
        ("min_vram_mb", spec["vram_mb"] + 1, "device below requirements"),
        ("region", spec["region"] + 1, "device in another region"),
        ("attested_only", True, "device not audited"),
    ):
        with ape.reverts(f"device_registry: {reason}"):
            registry.check_fit(
                registered, provider, pack_requirements({**exact, field: value}), cost
            )
    with ape.reverts("device_registry: device too expensive"):
        registry.check_fit(registered, provider, pack_requirements(exact), cost - 1)
    # Region 0 is any region; an audit satisfies attested_only until the spec changes.
    assert registry.check_fit(registered, provider, pack_requirements({**exact, "region": 0}), cost)
    registry.audit(registered, registry.hardware_hash(registered), sender=auditor)
    attested = pack_requirements({**exact, "min_vram_mb": 40 * 1024, "attested_only": True})
    assert registry.check_fit(registered, provider, attested, cost) == 4
    registry.update(registered, gpu_spec(vram_mb=40 * 1024), URI, sender=provider)
    with ape.reverts("device_registry: device not audited"):
        registry.check_fit(registered, provider, attested, cost)


def test_audit_binds_to_hardware_attributes(registry, registered, provider, auditor, alice):
    hardware = registry.hardware_hash(registered)
    spec = gpu_spec()
    expected = keccak(
        encode(
            ["uint16", "uint32", "uint8", "bytes32", "uint32", "uint16", "bytes32"],
            [
                spec[k]
                for k in (
                    "cpu_cores",
                    "memory_mb",
                    "gpu_count",
                    "gpu_model",
                    "vram_mb",
                    "region",
                    "attestation",
                )
            ],
        )
    )
    assert hardware == expected
    with ape.reverts("device_registry: caller is not an auditor"):
        registry.audit(registered, hardware, sender=alice)
    with ape.reverts("device_registry: attributes changed"):
        registry.audit(registered, b"\x22" * 32, sender=auditor)
    receipt = registry.audit(registered, hardware, sender=auditor)
    (event,) = receipt.decode_logs(registry.DeviceAudited)
    assert (event.auditor, event.hardware_hash) == (auditor, hardware)
    device = registry.device(registered)
    assert device.attested and device.auditor == auditor and device.audited_at == receipt.timestamp
    # A new price keeps the audit; new hardware voids it.
    registry.update(registered, gpu_spec(price_per_second=5), URI, sender=provider)
    assert registry.device(registered).attested
    registry.update(registered, gpu_spec(vram_mb=40 * 1024), URI, sender=provider)
    assert not registry.device(registered).attested


def test_revoke_audit(registry, registered, auditor, deployer, alice):
    with ape.reverts("device_registry: not audited"):
        registry.revoke_audit(registered, sender=auditor)
    registry.audit(registered, registry.hardware_hash(registered), sender=auditor)
    with ape.reverts("device_registry: caller cannot revoke"):
        registry.revoke_audit(registered, sender=alice)
    receipt = registry.revoke_audit(registered, sender=deployer)
    (event,) = receipt.decode_logs(registry.AuditRevoked)
    assert event.by == deployer
    assert not registry.device(registered).attested


def test_audit_rejects_unknown_and_retired(registry, registered, provider, auditor):
    with ape.reverts("device_registry: unknown device"):
        registry.audit(b"\x01" * 32, b"\x00" * 32, sender=auditor)
    hardware = registry.hardware_hash(registered)
    registry.retire(registered, sender=provider)
    with ape.reverts("device_registry: device retired"):
        registry.audit(registered, hardware, sender=auditor)


def test_min_stake_parameter(registry, staking, registered, provider, deployer, alice):
    assert registry.parameter(0) == 1_000 * TOKEN
    assert registry.parameter_bounds(0) == (TOKEN, 1_000_000 * TOKEN)
    staking.stake(1_000 * TOKEN, sender=provider)
    assert registry.is_eligible(registered)
    registry.set_parameter(0, 2_000 * TOKEN, sender=deployer)
    assert not registry.is_eligible(registered)
    with ape.reverts("ownable: caller is not the owner"):
        registry.set_parameter(0, TOKEN, sender=alice)
    with ape.reverts("parameters: out of bounds"):
        registry.set_parameter(0, 0, sender=deployer)
    with ape.reverts("parameters: unknown parameter"):
        registry.set_parameter(1, TOKEN, sender=deployer)


def test_deploy_rejects_zero_staking(project, deployer):
    # Without its call-trace display: after an ABI-only contract type of DeviceRegistry was
    # cached (a deployment read from its manifest, in an earlier test of the same process),
    # ape's trace of a reverted deployment fails on its empty bytecode ("empty separator").
    from computeshare.cli.common import quiet_ape

    with quiet_ape(), ape.reverts("device_registry: zero staking"):
        deployer.deploy(project.DeviceRegistry, "0x0000000000000000000000000000000000000000")
