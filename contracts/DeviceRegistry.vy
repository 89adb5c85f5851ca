# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title Device registry
@custom:contract-name DeviceRegistry
@license GNU Affero General Public License v3.0 only
@notice Providers register compute devices (CPU, memory, GPUs, region, price per
        compute-second, concurrency, a TEE measurement or hardware fingerprint, and a
        metadata URI), then update, pause, resume or retire them.

        A device is eligible for work while it is active and its provider's bonded
        stake in Staking covers `MIN_STAKE_PER_DEVICE` for each of its active devices.
        Auditors appointed by the DAO vouch for a device's hardware attributes; the
        audit binds to a hash of those attributes, so it lapses when they change
        (price and concurrency are not hardware and do not void it). A device's job
        record (running jobs and outcomes) is kept by JobEscrow, which settles jobs:
        `JobEscrowView.device_record`.

        Ids are `keccak256(owner, owner's device nonce)`: no global counter, so
        providers never contend for the same storage slot. Events carry every field,
        so an indexer can rebuild the registry from logs alone.

        Storage per device: a header word `owner | status << 160 | registered_at << 168`,
        a spec word (the numeric fields), the GPU model, the attestation, the URI and
        an audit record.
"""

# Static analysis (vyper-guard, `make analyze`), contract-wide:
# analysis: timestamp_dependence: windows, deadlines and expiries last minutes to days; the seconds a block producer can shift a timestamp do not change who may act.
# analysis: shadowed_state_variable: the flagged assignments in `__init__` set immutables; there is no local variable.

from interfaces import IAccess
from interfaces import IDeviceRegistry
from interfaces import IStaking
from snekmate.auth import ownable
from contracts.modules import access
from contracts.modules import governed
from contracts.modules import constants

implements: IDeviceRegistry

initializes: ownable
initializes: access[ownable := ownable]
initializes: governed

exports: (
    ownable.owner,
    ownable.transfer_ownership,
    access.roles,
    access.set_roles,
    governed.parameter,
    governed.parameter_bounds,
)
# `renounce_ownership` is intentionally not exported: parameters and roles must stay governable.


# Status of a device.
STATUS_ACTIVE: public(constant(uint8)) = 1
STATUS_PAUSED: public(constant(uint8)) = 2
STATUS_RETIRED: public(constant(uint8)) = 3

# Parameter keys.
MIN_STAKE_PER_DEVICE: public(constant(uint256)) = 0
_PARAMETER_COUNT: constant(uint256) = 1
_LOW: constant(DynArray[uint256, governed.MAX_KEYS]) = [constants.TOKEN]
_HIGH: constant(DynArray[uint256, governed.MAX_KEYS]) = [1_000_000 * constants.TOKEN]
_DEFAULT: constant(DynArray[uint256, governed.MAX_KEYS]) = [1_000 * constants.TOKEN]

# Hard bounds of a spec.
MAX_CPU_CORES: public(constant(uint16)) = 4096
MAX_MEMORY_MB: public(constant(uint32)) = 16 * 1024 * 1024
MAX_GPU_COUNT: public(constant(uint8)) = 64
MAX_VRAM_MB: public(constant(uint32)) = 1024 * 1024
MAX_REGION: public(constant(uint16)) = 999
MAX_PRICE_PER_SECOND: public(constant(uint96)) = 10**24
MAX_CONCURRENT_JOBS: public(constant(uint16)) = 1024
MAX_URI_LENGTH: public(constant(uint256)) = 256

# Registry-only fields of the spec word (the shared ones are in `constants`), the header
# word and the audit word.
_CONCURRENCY_AT: constant(uint256) = 104
_PRICE_AT: constant(uint256) = 120
_HEADER_STATUS_AT: constant(uint256) = 160
_REGISTERED_AT: constant(uint256) = 168
_AUDITED_AT: constant(uint256) = 160


# @notice The staking contract whose bonded stake makes devices eligible.
STAKING: public(immutable(address))

# @notice Devices registered by each owner (its next device nonce).
device_count: public(HashMap[address, uint256])
# @notice Active devices of each owner, each needing `MIN_STAKE_PER_DEVICE` of bonded stake.
active_devices: public(HashMap[address, uint256])

_header: HashMap[bytes32, uint256]
_spec: HashMap[bytes32, uint256]
_gpu_model: HashMap[bytes32, bytes32]
_attestation: HashMap[bytes32, bytes32]
_metadata_uri: HashMap[bytes32, String[1024]]
_audit: HashMap[bytes32, uint256]
_audited_hash: HashMap[bytes32, bytes32]



@deploy
def __init__(staking: IStaking):
    """
    @notice Deploys the registry; the deployer is the owner until it hands ownership
            to the DAO timelock.
    @param staking The staking contract.
    """
    ownable.__init__()
    assert staking.address != empty(address), "device_registry: zero staking"
    STAKING = staking.address
    governed.__init__(_LOW, _HIGH, _DEFAULT)


# ---------------------------------------------------------------- providers


@external
def register(spec: IDeviceRegistry.Spec, metadata_uri: String[1024]) -> bytes32:
    """
    @notice Registers a device of the caller, active at once.
    @param spec The device's spec, within the hard bounds.
    @param metadata_uri Where its description lives, at most `MAX_URI_LENGTH` bytes.
    @return bytes32 The device id, `keccak256(abi_encode(caller, nonce))`.
    """
    self._check_spec(spec, metadata_uri)
    nonce: uint256 = self.device_count[msg.sender]
    device_id: bytes32 = keccak256(abi_encode(msg.sender, nonce))
    self.device_count[msg.sender] = nonce + 1
    self._header[device_id] = self._pack_header(msg.sender, STATUS_ACTIVE, block.timestamp)
    self._store_spec(device_id, spec, metadata_uri)
    active: uint256 = self.active_devices[msg.sender] + 1
    self.active_devices[msg.sender] = active
    log IDeviceRegistry.DeviceRegistered(device_id=device_id, owner=msg.sender, nonce=nonce, spec=spec, metadata_uri=metadata_uri)
    log IDeviceRegistry.DeviceStatusChanged(
        device_id=device_id, owner=msg.sender, previous_status=0, new_status=STATUS_ACTIVE, active_devices=active
    )
    return device_id


@external
def update(device_id: bytes32, spec: IDeviceRegistry.Spec, metadata_uri: String[1024]):
    """
    @notice Replaces the spec and URI of one of the caller's devices that is not
            retired. Changing hardware attributes voids the device's audit.
    @param device_id The device.
    @param spec The new spec.
    @param metadata_uri The new URI.
    """
    header: uint256 = self._owned(device_id)
    assert self._status(header) != STATUS_RETIRED, "device_registry: device retired"
    self._check_spec(spec, metadata_uri)
    self._store_spec(device_id, spec, metadata_uri)
    log IDeviceRegistry.DeviceUpdated(device_id=device_id, owner=msg.sender, spec=spec, metadata_uri=metadata_uri)


@external
def pause(device_id: bytes32):
    """
    @notice Takes one of the caller's active devices out of service for a while.
    @param device_id The device.
    """
    self._set_status(device_id, STATUS_ACTIVE, STATUS_PAUSED)


@external
def resume(device_id: bytes32):
    """
    @notice Puts one of the caller's paused devices back into service.
    @param device_id The device.
    """
    self._set_status(device_id, STATUS_PAUSED, STATUS_ACTIVE)


@external
def retire(device_id: bytes32):
    """
    @notice Retires one of the caller's devices for good.
    @param device_id The device, active or paused.
    """
    header: uint256 = self._owned(device_id)
    status: uint8 = self._status(header)
    assert status != STATUS_RETIRED, "device_registry: device retired"
    active: uint256 = self.active_devices[msg.sender]
    if status == STATUS_ACTIVE:
        active -= 1
        self.active_devices[msg.sender] = active
    self._header[device_id] = self._pack_header(msg.sender, STATUS_RETIRED, self._registered_at(header))
    log IDeviceRegistry.DeviceStatusChanged(
        device_id=device_id, owner=msg.sender, previous_status=status, new_status=STATUS_RETIRED, active_devices=active
    )


# ---------------------------------------------------------------- auditors


@external
def audit(device_id: bytes32, hardware_hash: bytes32):
    """
    @notice An auditor vouches for the hardware attributes of a registered device.
            AUDITOR only. `hardware_hash` must be the device's current
            `hardware_hash`, so the auditor vouches for exactly what it checked.
    @param device_id The device, not retired.
    @param hardware_hash The hash the auditor checked.
    """
    assert IAccess.Role.AUDITOR in access.roles[msg.sender], "device_registry: caller is not an auditor"
    header: uint256 = self._header[device_id]
    assert header != 0, "device_registry: unknown device"
    assert self._status(header) != STATUS_RETIRED, "device_registry: device retired"
    assert hardware_hash == self._hardware_hash(device_id), "device_registry: attributes changed"
    self._audit[device_id] = convert(msg.sender, uint256) | (block.timestamp << _AUDITED_AT)
    self._audited_hash[device_id] = hardware_hash
    log IDeviceRegistry.DeviceAudited(device_id=device_id, auditor=msg.sender, hardware_hash=hardware_hash)


@external
def revoke_audit(device_id: bytes32):
    """
    @notice Withdraws a device's audit: by the auditor that made it, or the owner (the DAO).
    @param device_id The device.
    """
    auditor: address = convert(self._audit[device_id] & constants.ADDRESS_MASK, address)
    assert auditor != empty(address), "device_registry: not audited"
    assert msg.sender == auditor or msg.sender == ownable.owner, "device_registry: caller cannot revoke"
    self._audit[device_id] = 0
    self._audited_hash[device_id] = empty(bytes32)
    log IDeviceRegistry.AuditRevoked(device_id=device_id, by=msg.sender)


# ---------------------------------------------------------------- governance


@external
def set_parameter(key: uint256, new_value: uint256):
    """
    @notice Sets parameter `key` within its hard bounds. Owner (DAO timelock) only.
    @param key `MIN_STAKE_PER_DEVICE`.
    @param new_value The value, within `parameter_bounds(key)`.
    """
    ownable._check_owner()
    governed._set_checked(key, new_value)


# ---------------------------------------------------------------- views


@external
@view
def device_id_of(owner: address, nonce: uint256) -> bytes32:
    """
    @notice Id of `owner`'s `nonce`-th device.
    @param owner The owner.
    @param nonce The device nonce.
    @return bytes32 The id.
    """
    return keccak256(abi_encode(owner, nonce))


@external
@view
def device(device_id: bytes32) -> IDeviceRegistry.Device:
    """
    @notice Everything the registry knows of a device.
    @param device_id The device.
    @return Device The device (all zero if unknown).
    """
    header: uint256 = self._header[device_id]
    audit: uint256 = self._audit[device_id]
    owner: address = self._owner(header)
    return IDeviceRegistry.Device(
        owner=owner,
        status=self._status(header),
        registered_at=convert(self._registered_at(header), uint48),
        spec=self._load_spec(device_id),
        metadata_uri=self._metadata_uri[device_id],
        auditor=convert(audit & constants.ADDRESS_MASK, address),
        audited_at=convert(audit >> _AUDITED_AT, uint48),
        audited_hash=self._audited_hash[device_id],
        attested=self._attested(device_id),
        eligible=self._eligible(header),
    )


@external
@view
def check_fit(device_id: bytes32, provider: address, requirements: uint256, budget: uint256) -> uint256:
    """
    @notice Checks that `provider`'s device `device_id` may take a job with these
            requirements for at most `budget` per replica, and reverts naming the
            first rule it breaks. JobEscrow calls it on every acceptance; a provider's
            agent calls it before sending one. The requirements word shares the
            numeric spec word's offsets (`constants`), so each field is compared in
            place.
    @param device_id The device.
    @param provider Who accepts: the device's owner.
    @param requirements The job's packed requirements (`IJobEscrow.Terms.requirements`).
    @param budget The most the job pays a replica (the maximum when an offer set the price).
    @return uint256 The device's concurrency cap (`max_concurrent_jobs`).
    """
    header: uint256 = self._header[device_id]
    assert self._owner(header) == provider and provider != empty(address), "device_registry: no such device"
    assert self._eligible(header), "device_registry: device not eligible"
    spec: uint256 = self._spec[device_id]
    assert (
        spec & constants.U16 >= requirements & constants.U16
        and (spec >> constants.MEMORY_AT) & constants.U32 >= (requirements >> constants.MEMORY_AT) & constants.U32
        and (spec >> constants.GPU_AT) & constants.U8 >= (requirements >> constants.GPU_AT) & constants.U8
        and (spec >> constants.VRAM_AT) & constants.U32 >= (requirements >> constants.VRAM_AT) & constants.U32
    ), "device_registry: device below requirements"
    region: uint256 = (requirements >> constants.REGION_AT) & constants.U16
    assert region == 0 or (spec >> constants.REGION_AT) & constants.U16 == region, "device_registry: device in another region"
    if (requirements >> constants.ATTESTED_AT) & constants.U8 != 0:
        assert self._attested(device_id), "device_registry: device not audited"
    seconds: uint256 = (requirements >> constants.SECONDS_AT) & constants.U32
    assert (spec >> _PRICE_AT) * seconds <= budget, "device_registry: device too expensive"
    return (spec >> _CONCURRENCY_AT) & constants.U16


@external
@view
def is_eligible(device_id: bytes32) -> bool:
    """
    @notice Whether the device may take work now.
    @param device_id The device.
    @return bool Active and covered by its provider's bonded stake.
    """
    return self._eligible(self._header[device_id])


@external
@view
def hardware_hash(device_id: bytes32) -> bytes32:
    """
    @notice Hash of the device's hardware attributes, which auditors vouch for:
            keccak256(abi_encode(cpu_cores, memory_mb, gpu_count, gpu_model, vram_mb,
            region, attestation)).
    @param device_id The device.
    @return bytes32 The hash.
    """
    return self._hardware_hash(device_id)


# ---------------------------------------------------------------- internal


@internal
@pure
def _check_spec(spec: IDeviceRegistry.Spec, metadata_uri: String[1024]):
    assert spec.cpu_cores != 0 and spec.cpu_cores <= MAX_CPU_CORES, "device_registry: cpu cores out of range"
    assert spec.memory_mb != 0 and spec.memory_mb <= MAX_MEMORY_MB, "device_registry: memory out of range"
    assert spec.gpu_count <= MAX_GPU_COUNT, "device_registry: gpu count out of range"
    if spec.gpu_count == 0:
        assert spec.gpu_model == empty(bytes32) and spec.vram_mb == 0, "device_registry: gpu fields without gpus"
    else:
        assert spec.gpu_model != empty(bytes32), "device_registry: gpu model missing"
        assert spec.vram_mb != 0 and spec.vram_mb <= MAX_VRAM_MB, "device_registry: vram out of range"
    assert spec.region != 0 and spec.region <= MAX_REGION, "device_registry: region out of range"
    assert spec.price_per_second != 0 and spec.price_per_second <= MAX_PRICE_PER_SECOND, "device_registry: price out of range"
    assert spec.max_concurrent_jobs != 0 and spec.max_concurrent_jobs <= MAX_CONCURRENT_JOBS, "device_registry: concurrency out of range"
    assert len(metadata_uri) <= MAX_URI_LENGTH, "device_registry: metadata uri too long"


@internal
def _store_spec(device_id: bytes32, spec: IDeviceRegistry.Spec, metadata_uri: String[1024]):
    self._spec[device_id] = (
        convert(spec.cpu_cores, uint256)
        | (convert(spec.memory_mb, uint256) << constants.MEMORY_AT)
        | (convert(spec.gpu_count, uint256) << constants.GPU_AT)
        | (convert(spec.vram_mb, uint256) << constants.VRAM_AT)
        | (convert(spec.region, uint256) << constants.REGION_AT)
        | (convert(spec.max_concurrent_jobs, uint256) << _CONCURRENCY_AT)
        | (convert(spec.price_per_second, uint256) << _PRICE_AT)
    )
    self._gpu_model[device_id] = spec.gpu_model
    self._attestation[device_id] = spec.attestation
    self._metadata_uri[device_id] = metadata_uri


@internal
@view
def _load_spec(device_id: bytes32) -> IDeviceRegistry.Spec:
    spec: IDeviceRegistry.Spec = self._unpack_spec(self._spec[device_id])
    spec.gpu_model = self._gpu_model[device_id]
    spec.attestation = self._attestation[device_id]
    return spec


@internal
@pure
def _unpack_spec(packed: uint256) -> IDeviceRegistry.Spec:
    """
    @dev The numeric fields of the packed spec word; `gpu_model` and `attestation`,
         stored apart, are left zero.
    """
    return IDeviceRegistry.Spec(
        cpu_cores=convert(packed & constants.U16, uint16),
        memory_mb=convert((packed >> constants.MEMORY_AT) & constants.U32, uint32),
        gpu_count=convert((packed >> constants.GPU_AT) & constants.U8, uint8),
        gpu_model=empty(bytes32),
        vram_mb=convert((packed >> constants.VRAM_AT) & constants.U32, uint32),
        region=convert((packed >> constants.REGION_AT) & constants.U16, uint16),
        price_per_second=convert(packed >> _PRICE_AT, uint96),
        max_concurrent_jobs=convert((packed >> _CONCURRENCY_AT) & constants.U16, uint16),
        attestation=empty(bytes32),
    )


@internal
@view
def _hardware_hash(device_id: bytes32) -> bytes32:
    spec: IDeviceRegistry.Spec = self._load_spec(device_id)
    return keccak256(
        abi_encode(
            spec.cpu_cores, spec.memory_mb, spec.gpu_count, spec.gpu_model, spec.vram_mb, spec.region, spec.attestation
        )
    )


@internal
@view
def _attested(device_id: bytes32) -> bool:
    audited: bytes32 = self._audited_hash[device_id]
    return audited != empty(bytes32) and audited == self._hardware_hash(device_id)


@internal
@view
def _eligible(header: uint256) -> bool:
    if self._status(header) != STATUS_ACTIVE:
        return False
    owner: address = self._owner(header)
    required: uint256 = governed._get(MIN_STAKE_PER_DEVICE) * self.active_devices[owner]
    return staticcall IStaking(STAKING).bonded_stake(owner) >= required


@internal
def _set_status(device_id: bytes32, expected: uint8, new_status: uint8):
    header: uint256 = self._owned(device_id)
    status: uint8 = self._status(header)
    if expected == STATUS_ACTIVE:
        assert status == STATUS_ACTIVE, "device_registry: device not active"
    else:
        assert status == STATUS_PAUSED, "device_registry: device not paused"
    active: uint256 = self.active_devices[msg.sender]
    if new_status == STATUS_ACTIVE:
        active += 1
    else:
        active -= 1
    self.active_devices[msg.sender] = active
    self._header[device_id] = self._pack_header(msg.sender, new_status, self._registered_at(header))
    log IDeviceRegistry.DeviceStatusChanged(
        device_id=device_id, owner=msg.sender, previous_status=status, new_status=new_status, active_devices=active
    )


@internal
@view
def _owned(device_id: bytes32) -> uint256:
    header: uint256 = self._header[device_id]
    assert header != 0, "device_registry: unknown device"
    assert self._owner(header) == msg.sender, "device_registry: caller is not the device owner"
    return header


@internal
@pure
def _pack_header(owner: address, status: uint8, registered_at: uint256) -> uint256:
    return convert(owner, uint256) | (convert(status, uint256) << _HEADER_STATUS_AT) | (registered_at << _REGISTERED_AT)


@internal
@pure
def _owner(header: uint256) -> address:
    return convert(header & constants.ADDRESS_MASK, address)


@internal
@pure
def _status(header: uint256) -> uint8:
    return convert((header >> _HEADER_STATUS_AT) & constants.U8, uint8)


@internal
@pure
def _registered_at(header: uint256) -> uint256:
    return header >> _REGISTERED_AT
