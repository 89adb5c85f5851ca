# pragma version ~=0.4.3
"""
@title Bounded parameters
@custom:contract-name bounded_params
@license GNU Affero General Public License v3.0 only
@notice Governance parameters as a key -> value store. The contract that initializes this
        module owns the keys and their hard bounds; it checks the bounds (so the revert
        names it) and then calls `_set`. One `ParameterChanged` event for every change
        lets indexers and the CLI follow all parameters of all contracts the same way.
"""

_values: HashMap[uint256, uint256]


event ParameterChanged:
    key: indexed(uint256)
    old_value: uint256
    new_value: uint256


@internal
def _set(key: uint256, new_value: uint256):
    old: uint256 = self._values[key]
    self._values[key] = new_value
    log ParameterChanged(key=key, old_value=old, new_value=new_value)


@internal
@view
def _get(key: uint256) -> uint256:
    return self._values[key]
