# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title Timelock
@custom:contract-name Timelock
@license GNU Affero General Public License v3.0 only
@notice Holds the treasury and owns every parameter and role of ComputeShare. It runs
        what the governor queued, and nothing else, once `delay` has passed and before
        `grace_period` more has passed.

        - An operation is the hash of a proposal id and its actions: the governor queues
          the hash and must present the very same actions to execute it, so even a
          faulty governor cannot run anything that did not wait out the delay.
        - Only the timelock itself (that is, an executed proposal) changes its delay,
          grace period or governor, always within the hard bounds below: a captured DAO
          cannot set a zero delay.
        - The deployer may name the governor once (`initialize`); it holds no other power.

        The setters and `__default__` are `@reentrant` on purpose: executed proposals
        call them on this contract, and each checks `msg.sender == self` or only logs.

        Kept separate from the governor so the DAO can replace its voting rules
        (`set_governor`) without moving the treasury or re-wiring any contract.
"""

# Static analysis (vyper-guard, `make analyze`), contract-wide:
# analysis: missing_nonreentrant: `# pragma nonreentrancy on` makes every external function nonreentrant (tests/test_hostile_tokens.py: a token calling back is refused).

from interfaces import ITimelock
from contracts.modules import constants

implements: ITimelock


# @notice Hard bounds of `delay`.
MIN_DELAY: public(constant(uint256)) = constants.DAY
MAX_DELAY: public(constant(uint256)) = 30 * constants.DAY
# @notice Hard bounds of `grace_period`.
MIN_GRACE_PERIOD: public(constant(uint256)) = 7 * constants.DAY
MAX_GRACE_PERIOD: public(constant(uint256)) = 60 * constants.DAY
# @notice Most actions one operation may hold; bounds every loop here.
MAX_ACTIONS: public(constant(uint256)) = 10
# @notice Longest calldata of one action.
MAX_CALLDATA: public(constant(uint256)) = 1024

_MAX_RETURN: constant(uint256) = 1024
_U128: constant(uint256) = 2**128 - 1


# @notice The only account that may queue, execute and cancel operations.
governor: public(address)
# @notice Seconds between queueing an operation and the earliest time it may run.
delay: public(uint256)
# @notice Seconds after that during which it may still run; afterwards it expires.
grace_period: public(uint256)
# Each queued operation's window, fixed when it is queued: the time from which it may
# run (low 128 bits) and the time it expires (high 128 bits); zero when not queued.
_windows: HashMap[bytes32, uint256]

_initializer: address



@deploy
def __init__(delay_: uint256, grace_period_: uint256):
    """
    @notice Deploys the timelock. The deployer may then name the governor once.
    @param delay_ Initial delay in seconds, within [`MIN_DELAY`, `MAX_DELAY`].
    @param grace_period_ Initial grace period, within [`MIN_GRACE_PERIOD`, `MAX_GRACE_PERIOD`].
    """
    self._check_delay(delay_)
    self._check_grace_period(grace_period_)
    self.delay = delay_
    self.grace_period = grace_period_
    self._initializer = msg.sender
    log ITimelock.DelayChanged(previous_delay=0, new_delay=delay_)
    log ITimelock.GracePeriodChanged(previous_grace_period=0, new_grace_period=grace_period_)


@external
@payable
@reentrant
def __default__():
    """
    @notice Accepts ether for the treasury.
    """
    log ITimelock.Received(sender=msg.sender, amount=msg.value)


@external
def initialize(governor_: address):
    """
    @notice Names the governor. The deployer only, once; afterwards only the timelock
            itself can change it.
    @param governor_ The governor contract.
    """
    assert msg.sender == self._initializer, "timelock: caller is not the initializer"
    assert governor_ != empty(address), "timelock: zero governor"
    self._initializer = empty(address)
    log ITimelock.GovernorSet(previous_governor=self.governor, new_governor=governor_)
    self.governor = governor_


@external
def queue(operation: bytes32, proposal_id: uint256) -> (uint256, uint256):
    """
    @notice Queues `operation` to run after `delay` and before `delay + grace_period`,
            both read now: later changes of either never move this operation's window.
            Governor only.
    @param operation `hash_operation(proposal_id, targets, values, calldatas)`.
    @param proposal_id The proposal it comes from (for the event).
    @return uint256 The time from which it may run.
    @return uint256 The time it expires.
    """
    assert msg.sender == self.governor, "timelock: caller is not the governor"
    assert self._windows[operation] == 0, "timelock: operation already queued"
    ready_at: uint256 = block.timestamp + self.delay
    expires_at: uint256 = ready_at + self.grace_period
    self._windows[operation] = ready_at | (expires_at << 128)
    log ITimelock.OperationQueued(operation=operation, proposal_id=proposal_id, eta=ready_at)
    return ready_at, expires_at


@external
@payable
def execute(
    proposal_id: uint256,
    targets: DynArray[address, MAX_ACTIONS],
    values: DynArray[uint256, MAX_ACTIONS],
    calldatas: DynArray[Bytes[MAX_CALLDATA], MAX_ACTIONS],
):
    """
    @notice Runs a queued operation once its delay has passed and before it expires.
            Governor only. The operation is deleted before any call; a failing call
            reverts the whole operation with that call's revert reason.
    @param proposal_id The proposal the operation comes from.
    @param targets Contracts to call.
    @param values Wei sent with each call, from this contract's balance.
    @param calldatas Calldata of each call.
    """
    assert msg.sender == self.governor, "timelock: caller is not the governor"
    operation: bytes32 = self._hash_operation(proposal_id, targets, values, calldatas)
    window: uint256 = self._windows[operation]
    assert window != 0, "timelock: operation not queued"
    assert block.timestamp >= window & _U128, "timelock: operation not ready"
    assert block.timestamp < window >> 128, "timelock: operation expired"
    self._windows[operation] = 0
    total: uint256 = 0
    for i: uint256 in range(len(targets), bound=MAX_ACTIONS):
        total += values[i]
    log ITimelock.OperationExecuted(operation=operation, proposal_id=proposal_id, actions=len(targets), value=total)
    for i: uint256 in range(len(targets), bound=MAX_ACTIONS):
        success: bool = False
        response: Bytes[_MAX_RETURN] = b""
        # analysis: send_in_loop: the calls are the proposal's actions, at most MAX_ACTIONS; one failing reverts them all.
        success, response = raw_call(
            targets[i], calldatas[i], max_outsize=_MAX_RETURN, value=values[i], revert_on_failure=False
        )
        if not success:
            raw_revert(response)


@external
def cancel(operation: bytes32):
    """
    @notice Deletes a queued operation. Governor only (it cancels for the guardian).
    @param operation The operation.
    """
    assert msg.sender == self.governor, "timelock: caller is not the governor"
    assert self._windows[operation] != 0, "timelock: operation not queued"
    self._windows[operation] = 0
    log ITimelock.OperationCancelled(operation=operation)


@external
@reentrant
def set_delay(new_delay: uint256):
    """
    @notice Changes the delay. The timelock itself only (an executed proposal).
    @param new_delay Seconds, within [`MIN_DELAY`, `MAX_DELAY`].
    """
    assert msg.sender == self, "timelock: caller is not the timelock"
    self._check_delay(new_delay)
    log ITimelock.DelayChanged(previous_delay=self.delay, new_delay=new_delay)
    self.delay = new_delay


@external
@reentrant
def set_grace_period(new_grace_period: uint256):
    """
    @notice Changes the grace period. The timelock itself only.
    @param new_grace_period Seconds, within [`MIN_GRACE_PERIOD`, `MAX_GRACE_PERIOD`].
    """
    assert msg.sender == self, "timelock: caller is not the timelock"
    self._check_grace_period(new_grace_period)
    log ITimelock.GracePeriodChanged(previous_grace_period=self.grace_period, new_grace_period=new_grace_period)
    self.grace_period = new_grace_period


@external
@reentrant
def set_governor(new_governor: address):
    """
    @notice Hands queueing and execution to another governor. The timelock itself only.
    @param new_governor The new governor, not the zero address.
    """
    assert msg.sender == self, "timelock: caller is not the timelock"
    assert new_governor != empty(address), "timelock: zero governor"
    log ITimelock.GovernorSet(previous_governor=self.governor, new_governor=new_governor)
    self.governor = new_governor


@external
@view
def eta(operation: bytes32) -> uint256:
    """
    @notice Time from which a queued operation may run.
    @param operation The operation.
    @return uint256 A timestamp (zero: not queued).
    """
    return self._windows[operation] & _U128


@external
@view
def expires_at(operation: bytes32) -> uint256:
    """
    @notice Time a queued operation expires, fixed when it was queued.
    @param operation The operation.
    @return uint256 A timestamp (zero: not queued).
    """
    return self._windows[operation] >> 128


@external
@pure
def hash_operation(
    proposal_id: uint256,
    targets: DynArray[address, MAX_ACTIONS],
    values: DynArray[uint256, MAX_ACTIONS],
    calldatas: DynArray[Bytes[MAX_CALLDATA], MAX_ACTIONS],
) -> bytes32:
    """
    @notice The operation a proposal's actions form.
    @param proposal_id The proposal.
    @param targets Contracts to call.
    @param values Wei sent with each call.
    @param calldatas Calldata of each call.
    @return bytes32 keccak256 of their ABI encoding.
    """
    return self._hash_operation(proposal_id, targets, values, calldatas)


@internal
@pure
def _hash_operation(
    proposal_id: uint256,
    targets: DynArray[address, MAX_ACTIONS],
    values: DynArray[uint256, MAX_ACTIONS],
    calldatas: DynArray[Bytes[MAX_CALLDATA], MAX_ACTIONS],
) -> bytes32:
    return keccak256(abi_encode(proposal_id, targets, values, calldatas))


@internal
@pure
def _check_delay(new_delay: uint256):
    assert new_delay >= MIN_DELAY and new_delay <= MAX_DELAY, "timelock: delay out of bounds"


@internal
@pure
def _check_grace_period(new_grace_period: uint256):
    assert (
        new_grace_period >= MIN_GRACE_PERIOD and new_grace_period <= MAX_GRACE_PERIOD
    ), "timelock: grace period out of bounds"
