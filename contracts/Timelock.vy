# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title Timelock
@custom:contract-name Timelock
@license GNU Affero General Public License v3.0 only
@notice Holds the treasury and owns every parameter and role of ComputeShare. It runs
        what the governor scheduled, and nothing else, once `delay` has passed and before
        `grace_period` more has passed.

        The external interface is OpenZeppelin's TimelockController's (`scheduleBatch`,
        `executeBatch`, `cancel`, `hashOperationBatch`, `getMinDelay`, `getTimestamp`,
        `getOperationState`, `isOperation*`, and the events `CallScheduled`, `CallSalt`,
        `CallExecuted`, `Cancelled`, `MinDelayChange`), with the governor as its only
        proposer, executor and canceller, so tools that read a TimelockController read it.
        snekmate's `timelock_controller` is not reused: its names are snake_case (not the
        ABI those tools call), its `update_delay` has no bounds, it has no grace period,
        and its role registry is not needed when one governor holds every role.

        - An operation's id is `hashOperationBatch(targets, values, payloads, predecessor,
          salt)`: the governor schedules the calls and must present the very same calls
          to execute them, so even a faulty governor cannot run anything that did not
          wait out the delay.
        - Differences from TimelockController: a `delay` below the minimum is raised to
          it rather than refused; each operation expires `grace_period` after it becomes
          ready (both fixed when it is scheduled), and an expired operation reads as
          unset (`getTimestamp` 0, `getOperationState` Unset) and can never run.
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
# analysis: timestamp_dependence: delays and grace periods last days; the seconds a block producer can shift a timestamp do not change which operation may run.

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

# TimelockController's `OperationState` numbering.
STATE_UNSET: public(constant(uint8)) = 0
STATE_WAITING: public(constant(uint8)) = 1
STATE_READY: public(constant(uint8)) = 2
STATE_DONE: public(constant(uint8)) = 3

_MAX_RETURN: constant(uint256) = 1024
_U128: constant(uint256) = 2**128 - 1
# `_windows` value of an executed operation (TimelockController's `_DONE_TIMESTAMP`).
_DONE: constant(uint256) = 1


# @notice The only account that may schedule, execute and cancel operations.
governor: public(address)
# @notice Least seconds between scheduling an operation and the earliest time it may run.
delay: public(uint256)
# @notice Seconds after that during which it may still run; afterwards it expires.
grace_period: public(uint256)
# Each operation's window, fixed when it is scheduled: the time from which it may run
# (low 128 bits) and the time it expires (high 128 bits); `_DONE` once executed; zero
# when never scheduled or cancelled.
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
    log ITimelock.MinDelayChange(oldDuration=0, newDuration=delay_)
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
def scheduleBatch(
    targets: DynArray[address, MAX_ACTIONS],
    values: DynArray[uint256, MAX_ACTIONS],
    payloads: DynArray[Bytes[MAX_CALLDATA], MAX_ACTIONS],
    predecessor: bytes32,
    salt: bytes32,
    delay: uint256,
) -> (uint256, uint256):
    """
    @notice Schedules the calls to run after `max(delay, getMinDelay())` and before
            `grace_period` more, both read now: later changes of either never move this
            operation's window. Governor only.
    @param targets Contracts to call, 1 to `MAX_ACTIONS`.
    @param values Wei sent with each call, from this contract's balance.
    @param payloads Calldata of each call.
    @param predecessor An operation that must be done first, or zero.
    @param salt Distinguishes operations with the same calls.
    @param delay Seconds to wait; less than the minimum waits the minimum.
    @return uint256 The time from which it may run.
    @return uint256 The time it expires.
    """
    assert msg.sender == self.governor, "timelock: caller is not the governor"
    count: uint256 = len(targets)
    assert count != 0 and len(values) == count and len(payloads) == count, "timelock: invalid operation length"
    operation: bytes32 = self._hash_operation_batch(targets, values, payloads, predecessor, salt)
    assert self._state(operation) == STATE_UNSET, "timelock: operation already scheduled"
    wait: uint256 = max(delay, self.delay)
    assert wait <= MAX_DELAY, "timelock: delay out of bounds"
    ready_at: uint256 = block.timestamp + wait
    expires_at: uint256 = ready_at + self.grace_period
    self._windows[operation] = ready_at | (expires_at << 128)
    for i: uint256 in range(count, bound=MAX_ACTIONS):
        log ITimelock.CallScheduled(
            id=operation,
            index=i,
            target=targets[i],
            value=values[i],
            data=payloads[i],
            predecessor=predecessor,
            delay=wait,
        )
    if salt != empty(bytes32):
        log ITimelock.CallSalt(id=operation, salt=salt)
    return ready_at, expires_at


@external
@payable
def executeBatch(
    targets: DynArray[address, MAX_ACTIONS],
    values: DynArray[uint256, MAX_ACTIONS],
    payloads: DynArray[Bytes[MAX_CALLDATA], MAX_ACTIONS],
    predecessor: bytes32,
    salt: bytes32,
):
    """
    @notice Runs a scheduled operation once its delay has passed and before it expires.
            Governor only. The operation is marked done before any call; a failing call
            reverts the whole operation with that call's revert reason.
    @param targets Contracts to call.
    @param values Wei sent with each call, from this contract's balance.
    @param payloads Calldata of each call.
    @param predecessor The operation that must be done first, or zero.
    @param salt The salt it was scheduled with.
    """
    assert msg.sender == self.governor, "timelock: caller is not the governor"
    operation: bytes32 = self._hash_operation_batch(targets, values, payloads, predecessor, salt)
    window: uint256 = self._windows[operation]
    assert window > _DONE, "timelock: operation not scheduled"
    assert block.timestamp >= window & _U128, "timelock: operation not ready"
    assert block.timestamp < window >> 128, "timelock: operation expired"
    assert predecessor == empty(bytes32) or self._windows[predecessor] == _DONE, "timelock: missing dependency"
    self._windows[operation] = _DONE
    for i: uint256 in range(len(targets), bound=MAX_ACTIONS):
        success: bool = False
        response: Bytes[_MAX_RETURN] = b""
        # analysis: send_in_loop: the calls are the proposal's actions, at most MAX_ACTIONS; one failing reverts them all.
        success, response = raw_call(
            targets[i], payloads[i], max_outsize=_MAX_RETURN, value=values[i], revert_on_failure=False
        )
        if not success:
            raw_revert(response)
        log ITimelock.CallExecuted(id=operation, index=i, target=targets[i], value=values[i], data=payloads[i])


@external
def cancel(id: bytes32):
    """
    @notice Deletes a pending operation (waiting or ready). Governor only (it cancels
            for the guardian and for proposers).
    @param id The operation.
    """
    assert msg.sender == self.governor, "timelock: caller is not the governor"
    state: uint8 = self._state(id)
    assert state == STATE_WAITING or state == STATE_READY, "timelock: operation not pending"
    self._windows[id] = 0
    log ITimelock.Cancelled(id=id)


@external
@reentrant
def set_delay(new_delay: uint256):
    """
    @notice Changes the minimum delay. The timelock itself only (an executed proposal).
    @param new_delay Seconds, within [`MIN_DELAY`, `MAX_DELAY`].
    """
    assert msg.sender == self, "timelock: caller is not the timelock"
    self._check_delay(new_delay)
    log ITimelock.MinDelayChange(oldDuration=self.delay, newDuration=new_delay)
    self.delay = new_delay


@external
@reentrant
def set_grace_period(new_grace_period: uint256):
    """
    @notice Changes the grace period of operations scheduled from now on. The timelock
            itself only.
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
    @notice Hands scheduling and execution to another governor. The timelock itself only.
    @param new_governor The new governor, not the zero address.
    """
    assert msg.sender == self, "timelock: caller is not the timelock"
    assert new_governor != empty(address), "timelock: zero governor"
    log ITimelock.GovernorSet(previous_governor=self.governor, new_governor=new_governor)
    self.governor = new_governor


# ---------------------------------------------------------------- views (TimelockController names)


@external
@view
def getMinDelay() -> uint256:
    """
    @notice Least seconds an operation waits (also `delay`).
    @return uint256 The minimum delay.
    """
    return self.delay


@external
@view
def getTimestamp(id: bytes32) -> uint256:
    """
    @notice When an operation becomes ready: 0 if unset (never scheduled, cancelled or
            expired), 1 once done.
    @param id The operation.
    @return uint256 A timestamp, or 0 or 1.
    """
    window: uint256 = self._windows[id]
    if window > _DONE and block.timestamp >= window >> 128:
        return 0
    return window & _U128


@external
@view
def getOperationState(id: bytes32) -> uint8:
    """
    @notice State of an operation, numbered as TimelockController's `OperationState`.
    @param id The operation.
    @return uint8 Unset 0 (also once expired), Waiting 1, Ready 2, Done 3.
    """
    return self._state(id)


@external
@view
def isOperation(id: bytes32) -> bool:
    """
    @notice Whether the operation is scheduled, ready or done.
    @param id The operation.
    @return bool True unless unset.
    """
    return self._state(id) != STATE_UNSET


@external
@view
def isOperationPending(id: bytes32) -> bool:
    """
    @notice Whether the operation waits or is ready.
    @param id The operation.
    @return bool True if it may still run.
    """
    state: uint8 = self._state(id)
    return state == STATE_WAITING or state == STATE_READY


@external
@view
def isOperationReady(id: bytes32) -> bool:
    """
    @notice Whether the operation may run now.
    @param id The operation.
    @return bool True if ready.
    """
    return self._state(id) == STATE_READY


@external
@view
def isOperationDone(id: bytes32) -> bool:
    """
    @notice Whether the operation ran.
    @param id The operation.
    @return bool True if done.
    """
    return self._state(id) == STATE_DONE


@external
@view
def expires_at(id: bytes32) -> uint256:
    """
    @notice Time a scheduled operation expires, fixed when it was scheduled.
    @param id The operation.
    @return uint256 A timestamp (zero: never scheduled, cancelled or done).
    """
    window: uint256 = self._windows[id]
    if window == _DONE:
        return 0
    return window >> 128


@external
@pure
def hashOperationBatch(
    targets: DynArray[address, MAX_ACTIONS],
    values: DynArray[uint256, MAX_ACTIONS],
    payloads: DynArray[Bytes[MAX_CALLDATA], MAX_ACTIONS],
    predecessor: bytes32,
    salt: bytes32,
) -> bytes32:
    """
    @notice Id of the operation these calls form, as TimelockController computes it.
    @param targets Contracts to call.
    @param values Wei sent with each call.
    @param payloads Calldata of each call.
    @param predecessor The operation that must be done first, or zero.
    @param salt The salt.
    @return bytes32 keccak256 of their ABI encoding.
    """
    return self._hash_operation_batch(targets, values, payloads, predecessor, salt)


@internal
@pure
def _hash_operation_batch(
    targets: DynArray[address, MAX_ACTIONS],
    values: DynArray[uint256, MAX_ACTIONS],
    payloads: DynArray[Bytes[MAX_CALLDATA], MAX_ACTIONS],
    predecessor: bytes32,
    salt: bytes32,
) -> bytes32:
    return keccak256(abi_encode(targets, values, payloads, predecessor, salt))


@internal
@view
def _state(id: bytes32) -> uint8:
    window: uint256 = self._windows[id]
    if window == 0:
        return STATE_UNSET
    if window == _DONE:
        return STATE_DONE
    if block.timestamp >= window >> 128:
        # Expired: it can never run, and reads as unset.
        return STATE_UNSET
    if block.timestamp < window & _U128:
        return STATE_WAITING
    return STATE_READY


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
