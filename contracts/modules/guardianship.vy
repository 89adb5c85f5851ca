# pragma version ~=0.4.3
"""
@title Guardianship
@custom:contract-name guardianship
@license GNU Affero General Public License v3.0 only
@notice An emergency role the DAO appoints until an expiry, shared by JobEscrow (it may
        pause new work) and the Governor (it may cancel proposals). The contract that
        initializes this module decides who appoints (its owner, or the timelock) and
        what an active guardian may do; the term bound, the expiry check and the
        `GuardianSet` event are here once. A guardian whose term has ended has no power.
        Its pauses (JobEscrow's) add up to at most `MAX_GUARDIAN_PAUSE` per appointment,
        so re-pausing cannot stop new work for a whole term.
"""

from contracts.modules import constants

# @notice Longest appointment.
MAX_GUARDIAN_TERM: public(constant(uint256)) = 365 * constants.DAY

# @notice Most time the guardian's pauses may cover in total during one appointment.
MAX_GUARDIAN_PAUSE: public(constant(uint256)) = 30 * constants.DAY

# @notice The guardian (the zero address when there is none).
guardian: public(address)
# @notice End of the guardian's appointment.
guardian_expiry: public(uint256)
# @notice Pause time the guardian has used during its current appointment.
guardian_pause_used: public(uint256)


event GuardianSet:
    guardian: indexed(address)
    expiry: uint256


@internal
def _appoint(new_guardian: address, expiry: uint256):
    """
    @dev Appoints (or, with the zero address, removes) the guardian until `expiry`, at
         most `MAX_GUARDIAN_TERM` from now. The caller checks who may appoint.
    """
    assert expiry <= block.timestamp + MAX_GUARDIAN_TERM, "guardian: term too long"
    self.guardian = new_guardian
    self.guardian_expiry = expiry
    self.guardian_pause_used = 0
    log GuardianSet(guardian=new_guardian, expiry=expiry)


@internal
@view
def _is_active(account: address) -> bool:
    """
    @dev Whether `account` is the guardian and its appointment has not ended.
    """
    return account == self.guardian and block.timestamp < self.guardian_expiry


@internal
def _charge_pause(seconds: uint256):
    """
    @dev Spends `seconds` of the guardian's pause budget for this appointment.
    """
    used: uint256 = self.guardian_pause_used + seconds
    assert used <= MAX_GUARDIAN_PAUSE, "guardian: pause budget spent"
    self.guardian_pause_used = used
