# pragma version ~=0.4.3
"""
@title Job escrow view
@custom:contract-name JobEscrowView
@license GNU Affero General Public License v3.0 only
@notice Read-only views of JobEscrow's jobs, replicas and device records, decoded from the
        raw words JobEscrow returns (`job_words`) with the layout in
        `job_layout`. It holds no state and moves nothing: keeping the views here leaves
        room in JobEscrow, which holds the money, under the contract size limit (as
        curve-stablecoin's ControllerView does for its controller).
"""

# Static analysis (vyper-guard, `make analyze`), contract-wide:
# analysis: shadowed_state_variable: the flagged assignment in `__init__` sets the immutable; there is no local variable.

from ethereum.ercs import IERC20
from interfaces import IComputeToken
from interfaces import IJobEscrow
from interfaces import IJobEscrowView
from contracts.modules import job_layout

implements: IJobEscrowView

# @notice The escrow whose words this contract reads.
ESCROW: public(immutable(IJobEscrow))

# @notice Job status.
STATUS_OPEN: public(constant(uint256)) = job_layout.STATUS_OPEN
STATUS_DISPUTED: public(constant(uint256)) = job_layout.STATUS_DISPUTED
STATUS_FINALIZED: public(constant(uint256)) = job_layout.STATUS_FINALIZED
STATUS_CANCELLED: public(constant(uint256)) = job_layout.STATUS_CANCELLED
# @notice JobEscrow's parameter keys (`parameter`, `set_parameter`).
PROTOCOL_FEE_BPS: public(constant(uint256)) = job_layout.PROTOCOL_FEE_BPS
REVEAL_WINDOW: public(constant(uint256)) = job_layout.REVEAL_WINDOW
CHALLENGE_WINDOW: public(constant(uint256)) = job_layout.CHALLENGE_WINDOW
RULING_PERIOD: public(constant(uint256)) = job_layout.RULING_PERIOD
DISPUTE_BOND_BPS: public(constant(uint256)) = job_layout.DISPUTE_BOND_BPS
KEEPER_BOUNTY_BPS: public(constant(uint256)) = job_layout.KEEPER_BOUNTY_BPS
MAX_JOB_DURATION: public(constant(uint256)) = job_layout.MAX_JOB_DURATION
MIN_COLLATERAL_BPS: public(constant(uint256)) = job_layout.MIN_COLLATERAL_BPS
RECORD_MIN_FEE: public(constant(uint256)) = job_layout.RECORD_MIN_FEE
# @notice Most replicas a job can ask for.
MAX_REPLICAS: public(constant(uint256)) = job_layout.MAX_REPLICAS
# @notice Longest a job spec can be, in bytes.
MAX_SPEC_LENGTH: public(constant(uint256)) = job_layout.MAX_SPEC_LENGTH
# @notice Longest the guardian can pause new work for at a time.
MAX_PAUSE: public(constant(uint256)) = job_layout.MAX_PAUSE
# @notice Custody accounts ("shards") JobEscrow keeps deposits in, when it pays in the
#         staked token.
ESCROW_SHARDS: public(constant(uint256)) = job_layout.ESCROW_SHARDS
# @notice Replica status.
REPLICA_ACCEPTED: public(constant(uint256)) = job_layout.REPLICA_ACCEPTED
REPLICA_COMMITTED: public(constant(uint256)) = job_layout.REPLICA_COMMITTED
REPLICA_REVEALED: public(constant(uint256)) = job_layout.REPLICA_REVEALED


@deploy
def __init__(escrow: IJobEscrow):
    """
    @notice Reads `escrow`.
    @param escrow The JobEscrow.
    """
    ESCROW = escrow


@external
@view
def job(job_id: bytes32) -> IJobEscrow.JobState:
    """
    @notice What is stored for a job: its status, replica counts and the end of its
            current phase. The terms are in `JobPosted`; a k = 1 replica's provider,
            device and result are in its events.
    @param job_id The job.
    @return JobState The job's state (all zero if unknown).
    """
    words: uint256[5] = staticcall ESCROW.job_words(job_id, 0, empty(bytes32))
    return job_layout.job_state(words[0], convert(words[1], bytes32))


@external
@view
def assignment(job_id: bytes32, slot: uint256) -> IJobEscrow.Assignment:
    """
    @notice A replica of a job: provider, status, device, and its commitment (before
            reveal) or result (after). A k = 1 replica is stored as a hash: only its
            status is returned, the rest is in its events.
    @param job_id The job.
    @param slot The replica slot.
    @return Assignment The replica (all zero if none).
    """
    words: uint256[5] = staticcall ESCROW.job_words(job_id, slot, empty(bytes32))
    return job_layout.assignment(words[0], slot, words[2], convert(words[3], bytes32))


@external
@view
def device_record(device_id: bytes32) -> IJobEscrow.DeviceRecord:
    """
    @notice A device's job record: its running jobs (accepted, and for k = 1 not yet
            submitted or revealed; capped by its `max_concurrent_jobs`) and how its
            settled jobs ended (its reputation).
    @param device_id The device.
    @return DeviceRecord Running, completed, failed and slashed jobs.
    """
    words: uint256[5] = staticcall ESCROW.job_words(empty(bytes32), 0, device_id)
    return job_layout.device_record(words[4])


@external
@pure
def parameter_bounds(key: uint256) -> (uint256, uint256):
    """
    @notice Hard bounds of JobEscrow's parameter `key`.
    @param key A parameter key.
    @return uint256 Lowest allowed value.
    @return uint256 Highest allowed value.
    """
    assert key < job_layout.PARAMETER_COUNT, "parameters: unknown parameter"
    return job_layout.LOW[key], job_layout.HIGH[key]


@external
@pure
def job_id_of(terms: IJobEscrow.Terms) -> bytes32:
    """
    @notice Id of the job with these terms: `keccak256(abi_encode(terms))`. The id
            commits to the spec hash, so anyone holding the spec can check it.
    @param terms The terms.
    @return bytes32 The job id.
    """
    return keccak256(abi_encode(terms))


@external
@view
def deposit_shard(account: address) -> (uint256, address):
    """
    @notice The shard `account`'s deposits go to and its withdrawals come from first
            (when JobEscrow pays in the staked token), and the token account holding it.
    @param account The depositor.
    @return uint256 The shard (the address's low bits).
    @return address The shard's custody account in the token (zero without shards).
    """
    shard: uint256 = job_layout.deposit_shard(account)
    if not staticcall ESCROW.PAYS_INTO_POOL():
        return shard, empty(address)
    token: IComputeToken = IComputeToken(staticcall ESCROW.TOKEN())
    return shard, staticcall token.custody_account(ESCROW.address, job_layout.shard_key(shard))


@external
@view
def holdings() -> uint256:
    """
    @notice Payment tokens JobEscrow holds: its own balance plus, when it pays in the
            staked token, its deposit shards. Never less than what its books owe
            (balances, escrowed jobs, fees, income not yet collected). Reads
            every shard: for off-chain calls.
    @return uint256 Amount in wei.
    """
    total: uint256 = staticcall IERC20(staticcall ESCROW.TOKEN()).balanceOf(ESCROW.address)
    balances: DynArray[uint256, job_layout.ESCROW_SHARDS] = self._shard_balances()
    for balance: uint256 in balances:
        total += balance
    return total


@external
@view
def shard_balances() -> DynArray[uint256, job_layout.ESCROW_SHARDS]:
    """
    @notice What each deposit shard holds (empty without shards), so a withdrawal can
            name one that holds its amount (`JobEscrow.withdraw_from_shard`). Reads every
            shard: for off-chain calls.
    @return DynArray[uint256, 1024] Balance of shard i at index i, in wei.
    """
    return self._shard_balances()


@internal
@view
def _shard_balances() -> DynArray[uint256, job_layout.ESCROW_SHARDS]:
    balances: DynArray[uint256, job_layout.ESCROW_SHARDS] = []
    if staticcall ESCROW.PAYS_INTO_POOL():
        token: IComputeToken = IComputeToken(staticcall ESCROW.TOKEN())
        # analysis: send_in_loop: a view making staticcalls to the token, bounded by the shard count.
        for shard: uint256 in range(job_layout.ESCROW_SHARDS):
            balances.append(staticcall token.custody_balance(ESCROW.address, job_layout.shard_key(shard)))
    return balances
