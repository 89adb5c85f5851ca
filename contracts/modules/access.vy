# pragma version ~=0.4.3
"""
@title Role-based access
@custom:contract-name access
@license GNU Affero General Public License v3.0 only
@notice Role flags per account, granted and revoked by the owner (the DAO timelock).
        Contracts check roles themselves, so each revert names the contract:
        `assert IAccess.Role.SLASHER in access.roles[msg.sender], "staking: caller is not a slasher"`.
"""

from interfaces import IAccess
from snekmate.auth import ownable

implements: IAccess

uses: ownable


# @notice Roles held by each account.
roles: public(HashMap[address, IAccess.Role])


event RolesSet:
    account: indexed(address)
    previous_roles: IAccess.Role
    new_roles: IAccess.Role


@external
def set_roles(account: address, new_roles: IAccess.Role):
    """
    @notice Replaces the roles of `account` (an empty flag revokes all). Owner only.
    @param account The account, not the zero address.
    @param new_roles Its roles from now on.
    """
    ownable._check_owner()
    assert account != empty(address), "access: zero address"
    previous: IAccess.Role = self.roles[account]
    self.roles[account] = new_roles
    log RolesSet(account=account, previous_roles=previous, new_roles=new_roles)
