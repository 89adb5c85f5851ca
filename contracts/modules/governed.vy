# pragma version ~=0.4.3
"""
@title Governed parameters
@custom:contract-name governed
@license GNU Affero General Public License v3.0 only
@notice Governance parameters as a key -> value store with hard bounds fixed at deploy,
        shared by DeviceRegistry, Staking and the Governor (JobEscrow packs its own into
        one word read by every job step, and checks them with `_check` here). The
        contract that initializes this module passes its keys' bounds and defaults,
        exports `parameter` and `parameter_bounds`, and writes `set_parameter` itself
        with its own caller check before `_set_checked`. One `ParameterChanged` event
        for every change lets indexers and the CLI follow every contract's parameters
        the same way.
"""

# @notice Most keys one contract may have.
MAX_KEYS: constant(uint256) = 8

_COUNT: immutable(uint256)
_LOW: immutable(uint256[MAX_KEYS])
_HIGH: immutable(uint256[MAX_KEYS])

_values: HashMap[uint256, uint256]


event ParameterChanged:
    key: indexed(uint256)
    old_value: uint256
    new_value: uint256


@deploy
def __init__(low: DynArray[uint256, MAX_KEYS], high: DynArray[uint256, MAX_KEYS], defaults: DynArray[uint256, MAX_KEYS]):
    """
    @dev Keys are 0 .. len(low) - 1; each default must lie within its bounds.
    """
    assert len(high) == len(low) and len(defaults) == len(low), "parameters: bad bounds"
    _COUNT = len(low)
    lows: uint256[MAX_KEYS] = empty(uint256[MAX_KEYS])
    highs: uint256[MAX_KEYS] = empty(uint256[MAX_KEYS])
    for key: uint256 in range(MAX_KEYS):
        if key >= len(low):
            break
        lows[key] = low[key]
        highs[key] = high[key]
        self._check_bounds(key, defaults[key], low[key], high[key], len(low))
        self._set(key, defaults[key])
    _LOW = lows
    _HIGH = highs


@external
@view
def parameter(key: uint256) -> uint256:
    """
    @notice Current value of parameter `key`.
    @param key A parameter key.
    @return uint256 Its value.
    """
    assert key < _COUNT, "parameters: unknown parameter"
    return self._values[key]


@external
@view
def parameter_bounds(key: uint256) -> (uint256, uint256):
    """
    @notice Hard bounds of parameter `key`.
    @param key A parameter key.
    @return uint256 Lowest allowed value.
    @return uint256 Highest allowed value.
    """
    assert key < _COUNT, "parameters: unknown parameter"
    return _LOW[key], _HIGH[key]


@internal
def _set_checked(key: uint256, new_value: uint256):
    """
    @dev Sets `key` after checking it exists and `new_value` is within its bounds.
    """
    assert key < _COUNT, "parameters: unknown parameter"
    self._check_bounds(key, new_value, _LOW[key], _HIGH[key], _COUNT)
    self._set(key, new_value)


@internal
def _set(key: uint256, new_value: uint256):
    old: uint256 = self._values[key]
    self._values[key] = new_value
    log ParameterChanged(key=key, old_value=old, new_value=new_value)


@internal
@view
def _get(key: uint256) -> uint256:
    return self._values[key]


@internal
@pure
def _check_bounds(key: uint256, new_value: uint256, low: uint256, high: uint256, count: uint256):
    """
    @dev The one bounds check (and its revert reasons) of every governed parameter.
    """
    assert key < count, "parameters: unknown parameter"
    assert new_value >= low and new_value <= high, "parameters: out of bounds"


@internal
def _changed(key: uint256, old_value: uint256, new_value: uint256):
    """
    @dev The event alone, for a contract that stores its parameters packed.
    """
    log ParameterChanged(key=key, old_value=old_value, new_value=new_value)
