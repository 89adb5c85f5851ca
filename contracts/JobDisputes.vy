# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title Job disputes
@custom:contract-name JobDisputes
@license GNU Affero General Public License v3.0 only
@notice Disputes and rulings of JobEscrow's jobs, kept out of the escrow (which holds the
        jobs' money and must stay under the contract size limit). A client disputes the
        result of its k = 1 job within the challenge window here, locking a bond of
        JobEscrow's `DISPUTE_BOND_BPS` of the price in this contract; an arbiter (ARBITER
        role here) rules on a disputed job within the ruling period, k = 1 or k > 1
        replicas that disagreed. JobEscrow trusts this contract, through its ARBITER
        role, for one entry point, `arbitrate`, which checks the job's state (result,
        windows, status), marks the dispute and settles a ruling: this contract checks
        who may act, and keeps the bonds.

        Bonds: ruled for the client, it gets its bond back; for the provider, the
        provider receives it; unruled (the ruling period passed, `JobEscrow.finalize`
        settled the job and the result stood), the client takes it back (`reclaim`).
        Payments are pulled: a bond released is credited to its receiver here, who
        withdraws it (`withdraw`), so no receiver can block a ruling.
"""

# Static analysis (vyper-guard, `make analyze`), contract-wide:
# analysis: missing_nonreentrant: `# pragma nonreentrancy on` makes every external function nonreentrant.
# analysis: shadowed_state_variable: the flagged assignments in `__init__` set immutables; there is no local variable.

from ethereum.ercs import IERC20
from interfaces import IAccess
from interfaces import IJobDisputes
from interfaces import IJobEscrow
from snekmate.auth import ownable
from contracts.modules import access
from contracts.modules import constants
from contracts.modules import job_layout

implements: IJobDisputes

initializes: ownable
initializes: access[ownable := ownable]

exports: (
    ownable.owner,
    ownable.transfer_ownership,
    access.roles,
    access.set_roles,
)
# `renounce_ownership` is intentionally not exported: arbiters must stay governable.


# Rulings, as JobEscrow's `arbitrate` takes them.
_RULING_CLIENT: constant(uint256) = 1
_RULING_PROVIDER: constant(uint256) = 2


# @notice JobEscrow, whose disputes these are.
ESCROW: public(immutable(IJobEscrow))
# @notice The payment token bonds are paid in (JobEscrow's).
TOKEN: public(immutable(address))

# @notice The bond locked to dispute a job, until it is released (zero if none).
bond: public(HashMap[bytes32, uint256])
# @notice Bonds released to an account, withdrawable now.
balanceOf: public(HashMap[address, uint256])


@deploy
def __init__(escrow: IJobEscrow):
    """
    @notice Deploys the disputes of `escrow`; the deployer is the owner until it hands
            ownership to the DAO timelock. JobEscrow must grant this contract its
            ARBITER role.
    @param escrow The JobEscrow.
    """
    ownable.__init__()
    assert escrow.address != empty(address), "job_disputes: zero escrow"
    ESCROW = escrow
    TOKEN = staticcall escrow.TOKEN()


@external
def dispute(terms: IJobEscrow.Terms) -> uint256:
    """
    @notice Disputes the revealed result of the caller's k = 1 job within the challenge
            window, locking a bond of JobEscrow's `DISPUTE_BOND_BPS` of the price,
            pulled from the caller's wallet (approve this contract first). The arbiter
            then has JobEscrow's `RULING_PERIOD` to rule.
    @param terms The job's terms.
    @return uint256 The bond locked (what arrived).
    """
    assert terms.client == msg.sender, "job_disputes: caller is not the client"
    job_id: bytes32 = keccak256(abi_encode(terms))
    due: uint256 = terms.price_per_replica * staticcall ESCROW.parameter(job_layout.DISPUTE_BOND_BPS) // constants.BPS
    # analysis: cei_violation: the bond is what arrived, measured around the transfer (fee-on-transfer tokens), before it is recorded; under the reentrancy lock, and JobEscrow checks the job after.
    before: uint256 = staticcall IERC20(TOKEN).balanceOf(self)
    assert extcall IERC20(TOKEN).transferFrom(msg.sender, self, due, default_return_value=True), "job_disputes: transferFrom failed"
    locked: uint256 = staticcall IERC20(TOKEN).balanceOf(self) - before
    self.bond[job_id] = locked
    log IJobDisputes.BondLocked(job_id=job_id, client=msg.sender, bond=locked)
    # JobEscrow checks the job (k = 1, its result revealed, the challenge window open)
    # and marks it disputed; a second dispute finds it disputed already.
    extcall ESCROW.arbitrate(terms, empty(IJobEscrow.Replica), 0, msg.sender, locked)
    return locked


@external
def rule(terms: IJobEscrow.Terms, replica: IJobEscrow.Replica, for_client: bool):
    """
    @notice Rules on a disputed job within the ruling period; JobEscrow settles it.
            ARBITER only. k = 1: for the client, the provider is slashed, the client
            refunded and its bond returned; for the provider, it is paid and receives
            the bond. k > 1 (replicas that revealed different results): the replicas
            that revealed `replica.digest`, the result the arbiter found right (a
            deterministic workload is re-run), are paid; the others are slashed. The
            arbiter earns the keeper bounty of the slashes.
    @param terms The job's terms.
    @param replica k = 1: its replica, as `JobEscrow.finalize` takes it (JobEscrow
           checks it is the job's). k > 1: only `digest` is read.
    @param for_client k = 1: whether the result was wrong. Ignored for k > 1.
    """
    assert IAccess.Role.ARBITER in access.roles[msg.sender], "job_disputes: caller is not an arbiter"
    job_id: bytes32 = keccak256(abi_encode(terms))
    ruling: uint256 = _RULING_PROVIDER
    receiver: address = replica.provider
    if for_client:
        ruling = _RULING_CLIENT
        receiver = terms.client
    locked: uint256 = self.bond[job_id]
    if locked != 0:
        # k = 1: the provider is the replica JobEscrow checks against the job below, or
        # the whole ruling reverts.
        self.bond[job_id] = 0
        self.balanceOf[receiver] += locked
        log IJobDisputes.BondReleased(job_id=job_id, account=receiver, amount=locked)
    # analysis: cei_violation: the bond is released above, before the call; JobEscrow is fixed at deploy and nonreentrant.
    extcall ESCROW.arbitrate(terms, replica, ruling, msg.sender, 0)


@external
def reclaim(terms: IJobEscrow.Terms) -> uint256:
    """
    @notice Returns the bond of a dispute the arbiter did not rule on in time to its
            client's balance here, once JobEscrow settled the job (`finalize`: the
            result stood). Anyone may call.
    @param terms The job's terms.
    @return uint256 The bond returned.
    """
    job_id: bytes32 = keccak256(abi_encode(terms))
    locked: uint256 = self.bond[job_id]
    assert locked != 0, "job_disputes: no bond to reclaim"
    # A ruling released the bond already: a bond left on a settled job was not ruled on.
    words: uint256[5] = staticcall ESCROW.job_words(job_id, 0, empty(bytes32))
    assert job_layout.status(words[0]) == job_layout.STATUS_FINALIZED, "job_disputes: dispute not settled"
    self.bond[job_id] = 0
    self.balanceOf[terms.client] += locked
    log IJobDisputes.BondReleased(job_id=job_id, account=terms.client, amount=locked)
    return locked


@external
def withdraw() -> uint256:
    """
    @notice Pays the caller the bonds released to it.
    @return uint256 Amount paid.
    """
    amount: uint256 = self.balanceOf[msg.sender]
    assert amount != 0, "job_disputes: nothing to withdraw"
    self.balanceOf[msg.sender] = 0
    log IJobDisputes.Withdrawn(account=msg.sender, amount=amount)
    assert extcall IERC20(TOKEN).transfer(msg.sender, amount, default_return_value=True), "job_disputes: transfer failed"
    return amount
