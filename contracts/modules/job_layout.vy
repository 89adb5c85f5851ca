# pragma version ~=0.4.3
"""
@title Job escrow layout
@custom:contract-name job_layout
@license GNU Affero General Public License v3.0 only
@notice The words JobEscrow packs, documented once, with the constants both JobEscrow and
        JobEscrowView use, the per-field helpers every contract reads and writes a job
        word through, and the pure decoders the view applies to JobEscrow's raw words.

        Job word (`_jobs[job_id]`):
        | bits     | k > 1                        | k = 1                                |
        | -------- | ---------------------------- | ------------------------------------ |
        | 0..7     | status (1 open, 2 disputed, 3 finalized, 4 cancelled)               |
        | 8..15    | replicas                                                            |
        | 16..55   | end of the current phase: the reveal window's, then (k = 1) the     |
        |          | challenge window's or the ruling period's                           |
        | 56..63   | accepted replicas            | the replica's status (0 none,        |
        |          |                              | 1 accepted, 2 committed, 3 revealed) |
        | 64..71   | committed replicas           | bits 64..255: the top 192 bits of    |
        | 72..79   | revealed replicas            | keccak256(abi_encode(provider,       |
        | 80..87   | votes of the leading result  | device nonce, digest)), the digest   |
        |          | (the result: `_leader`)      | zero, then the commitment, then the  |
        |          |                              | result                               |
        | 88..255  | unused                       | (the binding, above)                 |

        Assignment word of a k > 1 replica (`_assignments[job_id][slot]`), with its
        commitment, then result, in `_commitments[job_id][slot]`:
        | bits     | field                                      |
        | -------- | ------------------------------------------ |
        | 0..159   | provider                                   |
        | 160..167 | status (1 accepted, 2 committed, 3 revealed) |
        | 168..199 | device nonce (the device id is keccak256(abi_encode(provider, nonce))) |

        Requirements word (`IJobEscrow.Terms.requirements`, packed from
        `IJobEscrow.Requirements` at posting):
        | bits     | field            |
        | -------- | ---------------- |
        | 0..15    | min CPU cores    |
        | 16..47   | min memory (MB)  |
        | 48..55   | min GPU count    |
        | 56..87   | min VRAM (MB)    |
        | 88..103  | region (0 any)   |
        | 104..111 | attested only    |
        | 112..143 | compute seconds  |

        Device record (`_devices[device_id]`):
        | bits     | field                                        | width |
        | -------- | -------------------------------------------- | ----- |
        | 0..31    | running jobs                                 | 32    |
        | 32..63   | jobs completed                               | 32    |
        | 64..95   | jobs failed                                  | 32    |
        | 96..127  | jobs slashed                                 | 32    |
        | 128..255 | protocol fees of its jobs, not yet swept     | 128   |
"""

from interfaces import IJobEscrow
from contracts.modules import constants

_HOUR: constant(uint256) = constants.HOUR
_DAY: constant(uint256) = constants.DAY

# Parameter keys, their hard bounds and defaults.
PROTOCOL_FEE_BPS: constant(uint256) = 0
REVEAL_WINDOW: constant(uint256) = 1
CHALLENGE_WINDOW: constant(uint256) = 2
RULING_PERIOD: constant(uint256) = 3
DISPUTE_BOND_BPS: constant(uint256) = 4
KEEPER_BOUNTY_BPS: constant(uint256) = 5
MAX_JOB_DURATION: constant(uint256) = 6
MIN_COLLATERAL_BPS: constant(uint256) = 7
# The smallest protocol fee, in units of `RECORD_FEE_UNIT` wei, for which a completed job
# counts in its device's record: padding a record costs at least this fee per job.
RECORD_MIN_FEE: constant(uint256) = 8
PARAMETER_COUNT: constant(uint256) = 9
RECORD_FEE_UNIT: constant(uint256) = 10**12
LOW: constant(uint256[PARAMETER_COUNT]) = [0, 10 * 60, _HOUR, _HOUR, 100, 0, _HOUR, 0, 0]
HIGH: constant(uint256[PARAMETER_COUNT]) = [1_000, _DAY, 3 * _DAY, 3 * _DAY, 5_000, 2_000, 30 * _DAY, 50_000, 10_000_000]
DEFAULTS: constant(uint256[PARAMETER_COUNT]) = [250, _HOUR, _DAY, 2 * _DAY, 1_000, 1_000, 7 * _DAY, 5_000, 1_000]
# The bounds packed 24 bits a key (every bound is below 2**24, which JobEscrow's
# constructor checks): a runtime check reads one constant word instead of building an array.
PARAM_BITS: constant(uint256) = 24
LOW_PACKED: constant(uint256) = LOW[0] | LOW[1] << 24 | LOW[2] << 48 | LOW[3] << 72 | LOW[4] << 96 | LOW[5] << 120 | LOW[6] << 144 | LOW[7] << 168 | LOW[8] << 192
HIGH_PACKED: constant(uint256) = HIGH[0] | HIGH[1] << 24 | HIGH[2] << 48 | HIGH[3] << 72 | HIGH[4] << 96 | HIGH[5] << 120 | HIGH[6] << 144 | HIGH[7] << 168 | HIGH[8] << 192

# Custody accounts JobEscrow keeps its deposits in when the payment token is the staked
# token (custody accounts of ComputeToken): a deposit goes to the shard of the depositor's
# address (its low bits), so deposits and withdrawals of different users rarely write one
# balance word. A power of two.
ESCROW_SHARDS: constant(uint256) = 1024
# @notice Most replicas a job can ask for.
MAX_REPLICAS: constant(uint256) = 9
# @notice Longest a job spec can be, in bytes.
MAX_SPEC_LENGTH: constant(uint256) = 4096
# @notice Longest the guardian can pause new work for at a time.
MAX_PAUSE: constant(uint256) = 14 * _DAY

# Job status (the job word's low byte; `IJobEscrow.JobState.status`).
STATUS_OPEN: constant(uint256) = 1
STATUS_DISPUTED: constant(uint256) = 2
STATUS_FINALIZED: constant(uint256) = 3
STATUS_CANCELLED: constant(uint256) = 4

# Replica status (an assignment word's status byte, or a k = 1 job word's bits 56..63).
REPLICA_ACCEPTED: constant(uint256) = 1
REPLICA_COMMITTED: constant(uint256) = 2
REPLICA_REVEALED: constant(uint256) = 3

# Job word fields.
REPLICAS_AT: constant(uint256) = 8
PHASE_AT: constant(uint256) = 16
ACCEPTED_AT: constant(uint256) = 56
COMMITTED_AT: constant(uint256) = 64
REVEALED_AT: constant(uint256) = 72
LEADER_AT: constant(uint256) = 80
BINDING_AT: constant(uint256) = 64
BELOW_BINDING: constant(uint256) = 2**BINDING_AT - 1

# Assignment word fields.
ASSIGNMENT_STATUS_AT: constant(uint256) = 160
ASSIGNMENT_NONCE_AT: constant(uint256) = 168

# Requirements word fields.
REQ_MEMORY_AT: constant(uint256) = constants.MEMORY_AT
REQ_GPU_AT: constant(uint256) = constants.GPU_AT
REQ_VRAM_AT: constant(uint256) = constants.VRAM_AT
REQ_REGION_AT: constant(uint256) = constants.REGION_AT
REQ_ATTESTED_AT: constant(uint256) = constants.ATTESTED_AT
REQ_SECONDS_AT: constant(uint256) = constants.SECONDS_AT

# Device record: four counters of this many bits, then the fees it accrued.
RECORD_BITS: constant(uint256) = 32
RECORD_FEES_AT: constant(uint256) = 128
RECORD_COUNTERS: constant(uint256) = 2**128 - 1

U8: constant(uint256) = constants.U8
U16: constant(uint256) = constants.U16
U24: constant(uint256) = constants.U24
U32: constant(uint256) = constants.U32
U40: constant(uint256) = constants.U40
U64: constant(uint256) = constants.U64
ADDRESS_MASK: constant(uint256) = constants.ADDRESS_MASK


# ---------------------------------------------------------------- job word fields
# The job word is read and written only through these helpers (JobEscrow, JobEscrowView,
# JobDisputes): each names one field of the table above. `add_*` moves a count (or, k = 1,
# the replica's status) up by `n`; the caller knows it stays below 2**8.


@internal
@pure
def new_job(replicas: uint256, phase_end: uint256) -> uint256:
    """
    @notice The word of a job just posted: open, `replicas` replicas, none accepted.
    """
    return STATUS_OPEN | (replicas << REPLICAS_AT) | (phase_end << PHASE_AT)


@internal
@pure
def status(word: uint256) -> uint256:
    return word & U8


@internal
@pure
def with_status(word: uint256, new_status: uint256) -> uint256:
    return (word & ~U8) | new_status


@internal
@pure
def replicas(word: uint256) -> uint256:
    return (word >> REPLICAS_AT) & U8


@internal
@pure
def phase_end(word: uint256) -> uint256:
    return (word >> PHASE_AT) & U40


@internal
@pure
def with_phase_end(word: uint256, end: uint256) -> uint256:
    return (word & ~(U40 << PHASE_AT)) | (end << PHASE_AT)


@internal
@pure
def accepted(word: uint256) -> uint256:
    """
    @notice Accepted replicas (k > 1), or the replica's status (k = 1).
    """
    return (word >> ACCEPTED_AT) & U8


@internal
@pure
def add_accepted(word: uint256, n: uint256) -> uint256:
    return word + (n << ACCEPTED_AT)


@internal
@pure
def committed(word: uint256) -> uint256:
    return (word >> COMMITTED_AT) & U8


@internal
@pure
def add_committed(word: uint256) -> uint256:
    return word + (1 << COMMITTED_AT)


@internal
@pure
def revealed(word: uint256) -> uint256:
    return (word >> REVEALED_AT) & U8


@internal
@pure
def add_revealed(word: uint256) -> uint256:
    return word + (1 << REVEALED_AT)


@internal
@pure
def leader_votes(word: uint256) -> uint256:
    return (word >> LEADER_AT) & U8


@internal
@pure
def with_leader_votes(word: uint256, votes: uint256) -> uint256:
    return (word & ~(U8 << LEADER_AT)) | (votes << LEADER_AT)


@internal
@pure
def binds(word: uint256, provider: address, device_nonce: uint256, digest: bytes32) -> bool:
    """
    @notice Whether a k = 1 job's word binds this replica: its top 192 bits are those of
            keccak256(abi_encode(provider, device nonce, digest)).
    """
    return word >> BINDING_AT == convert(keccak256(abi_encode(provider, device_nonce, digest)), uint256) >> BINDING_AT


@internal
@pure
def with_binding(word: uint256, provider: address, device_nonce: uint256, digest: bytes32) -> uint256:
    """
    @notice The word binding this replica instead (see `binds`): the hash's top bits, in place.
    """
    return (word & BELOW_BINDING) | (convert(keccak256(abi_encode(provider, device_nonce, digest)), uint256) & ~BELOW_BINDING)


# ---------------------------------------------------------------- assignment word fields
# JobEscrowView's decoder reads a replica's word through these; JobEscrow decodes it in
# place with the offsets above (helpers there would cost it runtime code it has no room for).


@internal
@pure
def assignment_provider(replica: uint256) -> address:
    return convert(replica & ADDRESS_MASK, address)


@internal
@pure
def assignment_status(replica: uint256) -> uint256:
    return (replica >> ASSIGNMENT_STATUS_AT) & U8


@internal
@pure
def assignment_nonce(replica: uint256) -> uint256:
    return (replica >> ASSIGNMENT_NONCE_AT) & U32


# ---------------------------------------------------------------- decoders (JobEscrowView)


@internal
@pure
def job_state(word: uint256, leader: bytes32) -> IJobEscrow.JobState:
    """
    @notice A job word decoded; `leader` is the leading result (read only when it has votes).
    """
    k: uint256 = self.replicas(word)
    accepted_count: uint256 = self.accepted(word)
    committed_count: uint256 = 0
    revealed_count: uint256 = 0
    votes: uint256 = 0
    leading_result: bytes32 = empty(bytes32)
    if k == 1:
        # The replica's status: accepted, committed, revealed.
        committed_count = convert(accepted_count >= REPLICA_COMMITTED, uint256)
        revealed_count = convert(accepted_count == REPLICA_REVEALED, uint256)
        accepted_count = convert(accepted_count != 0, uint256)
    else:
        committed_count = self.committed(word)
        revealed_count = self.revealed(word)
        votes = self.leader_votes(word)
        if votes != 0:
            leading_result = leader
    return IJobEscrow.JobState(
        status=convert(self.status(word), uint8),
        replicas=convert(k, uint8),
        accepted=convert(accepted_count, uint8),
        committed=convert(committed_count, uint8),
        revealed=convert(revealed_count, uint8),
        phase_end=convert(self.phase_end(word), uint40),
        leader_votes=convert(votes, uint8),
        leading_result=leading_result,
    )


@internal
@pure
def assignment(word: uint256, slot: uint256, replica: uint256, commitment: bytes32) -> IJobEscrow.Assignment:
    """
    @notice Replica `slot` of the job whose word is `word`, from its assignment word and
            commitment. A k = 1 replica is a hash in the job word: only its status.
    """
    if self.replicas(word) == 1:
        replica_status: uint256 = 0
        if slot == 0:
            replica_status = self.accepted(word)
        return IJobEscrow.Assignment(
            provider=empty(address),
            status=convert(replica_status, uint8),
            device_nonce=0,
            device_id=empty(bytes32),
            commitment_or_result=empty(bytes32),
        )
    if slot >= self.accepted(word):
        return empty(IJobEscrow.Assignment)
    provider: address = self.assignment_provider(replica)
    device_nonce: uint256 = self.assignment_nonce(replica)
    return IJobEscrow.Assignment(
        provider=provider,
        status=convert(self.assignment_status(replica), uint8),
        device_nonce=convert(device_nonce, uint64),
        device_id=keccak256(abi_encode(provider, device_nonce)),
        commitment_or_result=commitment,
    )


@internal
@pure
def device_record(record: uint256) -> IJobEscrow.DeviceRecord:
    """
    @notice A device record decoded.
    """
    return IJobEscrow.DeviceRecord(
        running=record & U32,
        completed=(record >> RECORD_BITS) & U32,
        failed=(record >> (2 * RECORD_BITS)) & U32,
        slashed=(record >> (3 * RECORD_BITS)) & U32,
    )


@internal
@pure
def bound(packed: uint256, key: uint256) -> uint256:
    """
    @notice Parameter `key`'s bound from `LOW_PACKED` or `HIGH_PACKED`.
    """
    return (packed >> (key * PARAM_BITS)) & U24


@internal
@pure
def deposit_shard(account: address) -> uint256:
    """
    @dev The deposit shard of `account`: its address's low bits.
    """
    return convert(account, uint256) % ESCROW_SHARDS


@internal
@pure
def shard_key(shard: uint256) -> address:
    """
    @dev The key of deposit shard `shard` among JobEscrow's custody accounts: the shard
         number as an address.
    """
    return convert(convert(shard, uint160), address)
