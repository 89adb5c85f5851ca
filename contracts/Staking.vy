# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title Staking
@custom:contract-name Staking
@license GNU Affero General Public License v3.0 only
@notice Provider pools of the protocol token: a provider's own bonded stake, a
        delegation pool in shares, and the stake thawing out of both.

        - Own stake: a plain amount. Collateral for jobs is locked against it and
          cannot thaw while locked.
        - Warm-up: delegated tokens first wait `WARMUP` in a warming share pool of
          their own, bearing slashes like the pool but earning nothing; then anyone
          activates them into shares at the pool's price. They leave only through
          thawing (`cancel_warmup`), so they are at risk from the moment they are
          delegated. Income follows that risk: a delegation shares only income that
          settles after its warm-up, which the default sets longer than a job can
          live, so every job whose income it shares was accepted while its tokens
          were already slashable; waiting to activate only forgoes income.
        - Delegation pool: delegators hold shares; income raises the value of a
          share, a slash lowers it, both O(1) whatever the number of delegators.
        - Thawing: a provider's thawing stake is one bucket with one unlock time;
          delegators' thawing stake is another share pool, so it stays slashable
          pro rata until withdrawn. A new thaw request restarts the clock of the
          caller's bucket: every token waits the full thawing period.
        - Slashing (by accounts with the SLASHER role): the provider pays first,
          from its own stake (its locked collateral is part of it), then from its
          own thawing stake; delegators bear only what exceeds both, bonded,
          thawing and warming delegated stake pro rata, so neither undelegating nor
          cancelling a warm-up after a fault dodges it. A beneficiary's share is taken only from what the provider
          itself lost and is capped by the caller, so no one profits from slashing
          a provider it controls; the rest goes to the treasury or is burned.

        Votes: staked tokens keep their voting power for their owner. This contract
        is ComputeToken's vault: it reports each owner's bonded units to the token,
        which counts them with the owner's balance under the owner's delegation.
        A provider's units follow its own and thawing stake exactly (stake, income,
        slash, withdrawal). A delegator's units are what it delegated, until it
        withdraws: a pool slash or income changes what its shares are worth, not
        its votes, because no O(1) update could reach every delegator.

        Custody: each pool's tokens (own, thawing, warming and delegated stake, and
        collected income) sit in a token account of their own, ComputeToken's
        custody account keyed by the provider, which only this contract can move
        (`IComputeToken.custody_*`). No balance word is shared by every staker, so
        stakes and delegations to different providers touch disjoint storage.

        Share price uses a virtual offset (as OpenZeppelin's ERC-4626): minting
        `amount * (shares + 10**6) // (tokens + 1)` makes donation attacks on a
        pool's first delegator unprofitable.
"""

# Static analysis (vyper-guard, `make analyze`), contract-wide:
# analysis: missing_nonreentrant: `# pragma nonreentrancy on` makes every external function nonreentrant (tests/test_hostile_tokens.py: a token calling back is refused).
# analysis: timestamp_dependence: windows, deadlines and expiries last minutes to days; the seconds a block producer can shift a timestamp do not change who may act.
# analysis: shadowed_state_variable: the flagged assignments in `__init__` set immutables; there is no local variable.

from interfaces import IAccess
from interfaces import IComputeToken
from interfaces import IJobEscrow
from interfaces import IStaking
from snekmate.auth import ownable
from contracts.modules import access
from contracts.modules import governed
from contracts.modules import constants

implements: IStaking

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


# Parameter keys (see `parameter_bounds`).
THAWING_PERIOD: public(constant(uint256)) = 0
MAX_DELEGATION_RATIO: public(constant(uint256)) = 1
MIN_DELEGATION: public(constant(uint256)) = 2
MIN_PROVIDER_STAKE: public(constant(uint256)) = 3
BENEFICIARY_SHARE_BPS: public(constant(uint256)) = 4
BURN_SLASHED: public(constant(uint256)) = 5
CUT_CHANGE_DELAY: public(constant(uint256)) = 6
WARMUP: public(constant(uint256)) = 7
_PARAMETER_COUNT: constant(uint256) = 8

# @notice The thawing period can never be shorter than this: it bounds JobEscrow's dispute
#         window and ruling period from above (JobEscrow checks this at deploy).
MIN_THAWING_PERIOD: public(constant(uint256)) = 7 * constants.DAY

_LOW: constant(DynArray[uint256, governed.MAX_KEYS]) = [
    MIN_THAWING_PERIOD, 1, constants.TOKEN, constants.TOKEN, 0, 0, constants.DAY, constants.DAY
]
_HIGH: constant(DynArray[uint256, governed.MAX_KEYS]) = [
    60 * constants.DAY, 50, 100_000 * constants.TOKEN, 1_000_000 * constants.TOKEN, 5_000, 1, 30 * constants.DAY, 60 * constants.DAY
]
# The default warm-up, 11 days, is longer than a job lives under JobEscrow's defaults
# (7-day deadline + 1-hour reveal window + 2-day ruling period or 1-day challenge window).
_DEFAULT: constant(DynArray[uint256, governed.MAX_KEYS]) = [
    14 * constants.DAY, 10, 100 * constants.TOKEN, 1_000 * constants.TOKEN, 2_500, 0, 7 * constants.DAY, 11 * constants.DAY
]

# A pool's stored `locked` word:
#
#   | bits     | field                                                   |
#   | -------- | ------------------------------------------------------- |
#   | 0..127   | locked collateral                                       |
#   | 128..254 | delegators' income `income_holder` still holds for the  |
#   |          | pool (below 2**127: every token of the supply fits)     |
#   | 255      | in use: set once the pool locked collateral             |
#
# The in-use bit keeps the word from returning to zero: every later lock rewrites a live
# word (2,900 gas) instead of creating one (20,000), as OpenZeppelin's ReentrancyGuard
# keeps 1/2 instead of 0/1. Settlement writes this word anyway, so the delegators' cut
# it leaves with JobEscrow costs no other write, and no token moves. Read through
# `_locked` and `_owed`; the views report the amounts alone.
_IN_USE: constant(uint256) = 1 << 255
_LOCKED_MASK: constant(uint256) = 2**128 - 1
_OWED_AT: constant(uint256) = 128
_OWED_MASK: constant(uint256) = 2**127 - 1
_VIRTUAL_SHARES: constant(uint256) = 10**6
# A delegation's warm-up position, one word (`Delegation.warm`):
#
#   | bits     | field                                                     |
#   | -------- | --------------------------------------------------------- |
#   | 0..191   | shares of the pool's warming share pool (about 10**6 per  |
#   |          | wei at the first price: the fixed supply needs 2**110)    |
#   | 192..255 | when the tokens may join the pool; kept when the warm-up  |
#   |          | is cancelled, as the earliest time its tokens, thawing,   |
#   |          | may rejoin the pool                                       |
#
# and the delegation's voting units, one word (`Delegation.units`), which `delegate_to`
# writes anyway:
#
#   | bits     | field                                                     |
#   | -------- | --------------------------------------------------------- |
#   | 0..127   | units of the whole position, in the pool and warming up   |
#   |          | (the fixed supply, 10**27, is below 2**90)                |
#   | 128..255 | of them, the units delegated into the warm-up; valid only |
#   |          | while the warm word holds shares (activation leaves them  |
#   |          | behind instead of writing this word)                      |
#
# Read and written only through `_warm_shares`, `_warm_until`, `_pack_warm`, `_all_units`,
# `_warming_units` and `_pack_units`.
_WARM_SHARES_MASK: constant(uint256) = 2**192 - 1
_WARM_UNTIL_AT: constant(uint256) = 192
_UNITS_MASK: constant(uint256) = 2**128 - 1
_WARMING_UNITS_AT: constant(uint256) = 128
_VIRTUAL_TOKENS: constant(uint256) = 1


# @notice The protocol token staked here.
TOKEN: public(immutable(address))

# @notice Receives slashed stake that is neither rewarded nor burned (the DAO timelock).
treasury: public(address)

# @notice The locker whose settlements leave the delegators' cut with it (JobEscrow), set
#         once by the owner; Staking collects a pool's cut from it before a slash, and
#         before a payment the pool's custody account could not make without it. Other
#         lockers' cuts are pulled at once.
income_holder: public(address)

_pools: HashMap[address, IStaking.Pool]
_delegations: HashMap[address, HashMap[address, IStaking.Delegation]]



@deploy
def __init__(token: IComputeToken, treasury: address):
    """
    @notice Deploys Staking for `token` with default parameters; the deployer is the
            owner until it hands ownership to the DAO timelock.
    @param token The protocol token.
    @param treasury Receiver of slashed stake that is not burned.
    """
    ownable.__init__()
    assert token.address != empty(address), "staking: zero token"
    assert treasury != empty(address), "staking: zero treasury"
    TOKEN = token.address
    self.treasury = treasury
    governed.__init__(_LOW, _HIGH, _DEFAULT)


# ---------------------------------------------------------------- provider


@external
def stake(amount: uint256):
    """
    @notice Bonds `amount` of the caller's tokens as its own provider stake.
            The caller must have approved this contract.
    @param amount Amount in wei; the resulting own stake must reach `MIN_PROVIDER_STAKE`.
    """
    assert amount != 0, "staking: zero amount"
    own: uint256 = self._pools[msg.sender].own_stake + amount
    assert own >= governed._get(MIN_PROVIDER_STAKE), "staking: stake below minimum"
    self._pools[msg.sender].own_stake = own
    log IStaking.Staked(provider=msg.sender, amount=amount, own_stake=own)
    self._pull(msg.sender, msg.sender, amount)
    self._bond(msg.sender, amount)


@external
def request_thaw(amount: uint256):
    """
    @notice Moves `amount` of the caller's free own stake into its thawing bucket and
            (re)starts the bucket's clock: all of it unlocks one thawing period from now.
    @param amount Amount in wei, at most own stake minus locked collateral.
    """
    assert amount != 0, "staking: zero amount"
    own: uint256 = self._pools[msg.sender].own_stake
    assert own - self._locked(msg.sender) >= amount, "staking: amount exceeds free stake"
    thawing: uint256 = self._pools[msg.sender].own_thawing + amount
    unlock_at: uint256 = block.timestamp + governed._get(THAWING_PERIOD)
    self._pools[msg.sender].own_stake = own - amount
    self._pools[msg.sender].own_thawing = thawing
    self._pools[msg.sender].own_unlock_at = unlock_at
    log IStaking.ThawRequested(provider=msg.sender, amount=amount, thawing=thawing, unlock_at=unlock_at)


@external
def cancel_thaw():
    """
    @notice Bonds the caller's whole thawing bucket again as own stake.
    """
    amount: uint256 = self._pools[msg.sender].own_thawing
    assert amount != 0, "staking: nothing thawing"
    own: uint256 = self._pools[msg.sender].own_stake + amount
    self._pools[msg.sender].own_stake = own
    self._pools[msg.sender].own_thawing = 0
    self._pools[msg.sender].own_unlock_at = 0
    log IStaking.ThawCancelled(provider=msg.sender, amount=amount, own_stake=own)


@external
def withdraw():
    """
    @notice Pays the caller its thawed own stake once the unlock time has passed.
    """
    amount: uint256 = self._pools[msg.sender].own_thawing
    assert amount != 0, "staking: nothing thawing"
    assert block.timestamp >= self._pools[msg.sender].own_unlock_at, "staking: still thawing"
    self._pools[msg.sender].own_thawing = 0
    self._pools[msg.sender].own_unlock_at = 0
    log IStaking.Withdrawn(provider=msg.sender, amount=amount)
    self._unbond(msg.sender, amount)
    self._push(msg.sender, msg.sender, amount)


@external
def set_delegator_cut(cut_bps: uint256):
    """
    @notice Sets the share of the caller's income that goes to its delegators. With
            delegators in the pool or warming up the change applies after
            `CUT_CHANGE_DELAY`, so they can leave first; with none it applies at once.
    @param cut_bps Share in basis points, at most 10,000.
    """
    assert cut_bps <= constants.BPS, "staking: cut above 100%"
    self._settle_cut(msg.sender)
    effective_at: uint256 = block.timestamp
    if self._pools[msg.sender].delegated_shares == 0 and self._pools[msg.sender].warming_shares == 0:
        self._pools[msg.sender].delegator_cut_bps = cut_bps
        # An older scheduled change must not land later over this one.
        self._pools[msg.sender].pending_cut_bps = 0
        self._pools[msg.sender].pending_cut_at = 0
    else:
        effective_at += governed._get(CUT_CHANGE_DELAY)
        self._pools[msg.sender].pending_cut_bps = cut_bps
        self._pools[msg.sender].pending_cut_at = effective_at
    log IStaking.DelegatorCutScheduled(provider=msg.sender, cut_bps=cut_bps, effective_at=effective_at)


# ---------------------------------------------------------------- delegator


@external
def delegate_to(provider: address, amount: uint256, min_cut_bps: uint256) -> uint256:
    """
    @notice Delegates `amount` of the caller's tokens to `provider`: they warm up for
            `WARMUP` as shares of the pool's warming share pool (earning nothing,
            bearing slashes like the pool; `cancel_warmup` sends them thawing), then
            `activate` turns them into pool shares. A warm-up position still running
            restarts its clock. Reverts when the provider's cut, or a cut it has
            scheduled, is below `min_cut_bps`.
    @param provider A provider with own stake.
    @param amount At least `MIN_DELEGATION`; the pool may hold at most
           `MAX_DELEGATION_RATIO` times the provider's own stake (checked now and when
           the tokens join).
    @param min_cut_bps The smallest delegator cut the caller accepts, in basis points.
    @return uint256 The value of the caller's tokens warming up at `provider`.
    """
    assert amount >= governed._get(MIN_DELEGATION), "staking: delegation below minimum"
    # The cut in force, and a scheduled one not yet in force, must both reach the minimum.
    cut: uint256 = self._pools[provider].delegator_cut_bps
    pending_at: uint256 = self._pools[provider].pending_cut_at
    if pending_at != 0:
        pending: uint256 = self._pools[provider].pending_cut_bps
        cut = pending if block.timestamp >= pending_at else min(cut, pending)
    assert cut >= min_cut_bps, "staking: delegator cut below minimum"
    assert self._pools[provider].own_stake != 0, "staking: provider has no stake"
    # Warming tokens do not hold room in the pool (they may never join, and could squat
    # it): the cap is checked here and again when they join.
    assert self._pools[provider].delegated_tokens + amount <= self._cap(provider), "staking: delegation over cap"
    self._activate(provider, msg.sender)
    warm: uint256 = self._delegations[provider][msg.sender].warm
    tokens: uint256 = self._pools[provider].warming_tokens + amount
    total: uint256 = self._pools[provider].warming_shares
    shares: uint256 = self._to_shares(amount, tokens - amount, total)
    assert shares != 0, "staking: delegation too small"
    total += shares
    warm_shares: uint256 = self._warm_shares(warm) + shares
    # Only a warming pool slashed to (almost) nothing prices a share low enough to overflow.
    assert warm_shares <= _WARM_SHARES_MASK, "staking: warming shares overflow"
    self._pools[provider].warming_tokens = tokens
    self._pools[provider].warming_shares = total
    self._delegations[provider][msg.sender].warm = self._pack_warm(
        warm_shares, block.timestamp + governed._get(WARMUP)
    )
    units: uint256 = self._delegations[provider][msg.sender].units
    self._delegations[provider][msg.sender].units = self._pack_units(
        self._all_units(units) + amount, self._warming_units(units, warm) + amount
    )
    log IStaking.Delegated(provider=provider, delegator=msg.sender, amount=amount, shares=0)
    self._pull(provider, msg.sender, amount)
    self._bond(msg.sender, amount)
    return self._to_tokens(warm_shares, tokens, total)


@external
def activate(provider: address, delegator: address) -> uint256:
    """
    @notice Turns `delegator`'s warmed-up tokens at `provider` into pool shares at the
            pool's price, if the pool has room for them under its cap. Anyone may call;
            `delegate_to`, `undelegate` and `cancel_undelegation` also do it first when
            there is room. The tokens bore the pool's slashes while they warmed up, so
            when they join changes only the income they forgo, never the risk.
    @param provider The provider.
    @param delegator The delegator.
    @return uint256 Shares minted.
    """
    warm: uint256 = self._delegations[provider][delegator].warm
    assert self._warm_shares(warm) != 0, "staking: nothing warming"
    assert block.timestamp >= self._warm_until(warm), "staking: still warming up"
    joined: bool = False
    shares: uint256 = 0
    joined, shares = self._activate(provider, delegator)
    assert joined, "staking: delegation over cap"
    return shares


@external
def cancel_warmup(provider: address) -> uint256:
    """
    @notice Moves the caller's tokens warming up at `provider` (during the warm-up, or
            after it while they have not joined the pool) into its thawing position,
            as `undelegate` does with pool shares: they were slashable since they
            were delegated and stay so until withdrawn (`withdraw_delegation`), so no
            one escapes a slash it sees coming by leaving a warm-up. The caller's
            thawing position unlocks one thawing period from now; it cannot rejoin the
            pool (`cancel_undelegation`) before the cancelled warm-up would have ended.
    @param provider The provider.
    @return uint256 Tokens moved to thawing.
    """
    warm: uint256 = self._delegations[provider][msg.sender].warm
    warm_shares: uint256 = self._warm_shares(warm)
    assert warm_shares != 0, "staking: nothing warming"
    tokens: uint256 = self._pools[provider].warming_tokens
    total: uint256 = self._pools[provider].warming_shares
    amount: uint256 = self._to_tokens(warm_shares, tokens, total)
    self._pools[provider].warming_tokens = tokens - amount
    self._pools[provider].warming_shares = total - warm_shares
    # The clock stays: the earliest time these tokens may rejoin the pool.
    self._delegations[provider][msg.sender].warm = self._pack_warm(0, self._warm_until(warm))
    units: uint256 = self._delegations[provider][msg.sender].units
    warming_units: uint256 = self._warming_units(units, warm)
    self._delegations[provider][msg.sender].units = self._pack_units(self._all_units(units) - warming_units, 0)
    self._delegations[provider][msg.sender].thaw_units += warming_units
    thaw_shares: uint256 = 0
    unlock_at: uint256 = 0
    thaw_shares, unlock_at = self._thaw(provider, msg.sender, amount)
    log IStaking.WarmupCancelled(
        provider=provider, delegator=msg.sender, amount=amount, thaw_shares=thaw_shares, unlock_at=unlock_at
    )
    return amount


@external
def undelegate(provider: address, shares: uint256) -> uint256:
    """
    @notice Moves `shares` of the caller's delegation to `provider` into thawing; the
            caller's thawing position there unlocks one thawing period from now.
    @param provider The provider.
    @param shares Shares to undelegate, at most the caller's.
    @return uint256 Tokens moved to thawing.
    """
    assert shares != 0, "staking: zero shares"
    self._activate(provider, msg.sender)
    held: uint256 = self._delegations[provider][msg.sender].shares
    assert shares <= held, "staking: shares exceed delegation"
    tokens: uint256 = self._pools[provider].delegated_tokens
    total: uint256 = self._pools[provider].delegated_shares
    amount: uint256 = self._to_tokens(shares, tokens, total)
    self._pools[provider].delegated_tokens = tokens - amount
    self._pools[provider].delegated_shares = total - shares
    self._delegations[provider][msg.sender].shares = held - shares
    # The undelegated shares take their part of the active position's voting units to
    # thawing (units still warming up stay).
    units: uint256 = self._delegations[provider][msg.sender].units
    warming_units: uint256 = self._warming_units(units, self._delegations[provider][msg.sender].warm)
    moved_units: uint256 = (self._all_units(units) - warming_units) * shares // held
    self._delegations[provider][msg.sender].units = self._pack_units(self._all_units(units) - moved_units, warming_units)
    self._delegations[provider][msg.sender].thaw_units += moved_units

    thaw_shares: uint256 = 0
    unlock_at: uint256 = 0
    thaw_shares, unlock_at = self._thaw(provider, msg.sender, amount)
    log IStaking.Undelegated(
        provider=provider,
        delegator=msg.sender,
        shares=shares,
        amount=amount,
        thaw_shares=thaw_shares,
        unlock_at=unlock_at,
    )
    return amount


@external
def cancel_undelegation(provider: address) -> uint256:
    """
    @notice Bonds the caller's whole thawing position at `provider` into the
            delegation pool again (subject to the delegation cap). While a warm-up of
            the caller's at `provider` runs, or one it cancelled would still run, the
            tokens rejoin through that warm-up instead (slashable, earning nothing,
            joining when it ends): a cancelled warm-up cannot skip its clock.
    @param provider The provider.
    @return uint256 Pool shares minted (0 when the tokens rejoined the warm-up).
    """
    self._activate(provider, msg.sender)
    amount: uint256 = self._take_thawing(provider, msg.sender)
    assert amount != 0, "staking: nothing thawing"
    thaw_units: uint256 = self._delegations[provider][msg.sender].thaw_units
    self._delegations[provider][msg.sender].thaw_units = 0
    warm: uint256 = self._delegations[provider][msg.sender].warm
    warm_until: uint256 = self._warm_until(warm)
    units: uint256 = self._delegations[provider][msg.sender].units
    all_units: uint256 = self._all_units(units) + thaw_units
    warming_units: uint256 = self._warming_units(units, warm)
    shares: uint256 = 0
    if block.timestamp < warm_until:
        tokens: uint256 = self._pools[provider].warming_tokens
        total: uint256 = self._pools[provider].warming_shares
        warm_shares: uint256 = self._to_shares(amount, tokens, total)
        self._pools[provider].warming_tokens = tokens + amount
        self._pools[provider].warming_shares = total + warm_shares
        warm_shares += self._warm_shares(warm)
        assert warm_shares <= _WARM_SHARES_MASK, "staking: warming shares overflow"
        self._delegations[provider][msg.sender].warm = self._pack_warm(warm_shares, warm_until)
        warming_units += thaw_units
    else:
        warm_until = 0
        shares = self._add_delegation(provider, msg.sender, amount)
    self._delegations[provider][msg.sender].units = self._pack_units(all_units, warming_units)
    log IStaking.UndelegationCancelled(
        provider=provider, delegator=msg.sender, amount=amount, shares=shares, warm_until=warm_until
    )
    return shares


@external
def withdraw_delegation(provider: address) -> uint256:
    """
    @notice Pays the caller its thawed delegation at `provider` once unlocked.
    @param provider The provider.
    @return uint256 Tokens paid.
    """
    assert block.timestamp >= self._delegations[provider][msg.sender].unlock_at, "staking: still thawing"
    amount: uint256 = self._take_thawing(provider, msg.sender)
    assert amount != 0, "staking: nothing thawing"
    units: uint256 = self._delegations[provider][msg.sender].thaw_units
    self._delegations[provider][msg.sender].thaw_units = 0
    log IStaking.DelegationWithdrawn(provider=provider, delegator=msg.sender, amount=amount)
    self._unbond(msg.sender, units)
    self._push(provider, msg.sender, amount)
    return amount


# ---------------------------------------------------------------- income, collateral, slashing


@external
def add_income(provider: address, amount: uint256):
    """
    @notice Credits `amount` of the caller's tokens as income of `provider`: the
            delegator cut raises the value of the pool's shares, the rest adds to the
            provider's own stake. The caller must have approved this contract.
    @param provider The provider.
    @param amount Amount in wei.
    """
    assert amount != 0, "staking: zero amount"
    self._settle_cut(provider)
    to_delegators: uint256 = 0
    if self._pools[provider].delegated_shares != 0:
        to_delegators = amount * self._pools[provider].delegator_cut_bps // constants.BPS
        self._pools[provider].delegated_tokens += to_delegators
    self._pools[provider].own_stake += amount - to_delegators
    log IStaking.IncomeAdded(provider=provider, payer=msg.sender, amount=amount, to_delegators=to_delegators)
    self._pull(provider, msg.sender, amount)
    self._bond(provider, amount - to_delegators)


@external
def lock(provider: address, amount: uint256):
    """
    @notice Locks `amount` of `provider`'s free own stake as job collateral. LOCKER only.
    @param provider The provider.
    @param amount Amount in wei, at most its own stake minus what is already locked.
    """
    # analysis: missing_input_validation: LOCKER/SLASHER only (JobEscrow); the amounts are checked against the pool below.
    assert IAccess.Role.LOCKER in access.roles[msg.sender], "staking: caller is not a locker"
    word: uint256 = self._pools[provider].locked
    locked: uint256 = (word & _LOCKED_MASK) + amount
    assert locked <= self._pools[provider].own_stake, "staking: insufficient free stake"
    self._pools[provider].locked = (word & ~_LOCKED_MASK) | locked | _IN_USE
    log IStaking.CollateralLocked(provider=provider, locker=msg.sender, amount=amount, locked=locked)


@external
def release(provider: address, amount: uint256, income: uint256) -> uint256:
    """
    @notice Settles one job's collateral and income in a call: releases up to `amount`
            of `provider`'s locked collateral (all of it when a slash shrank the stake
            below `amount`) and, when the pool has
            delegators, takes their cut of `income` from the caller into the pool
            (as `add_income`, for that cut only). The caller pays the provider the
            rest itself, so a pool without delegators moves no tokens. LOCKER only;
            the caller must have approved this contract.
    @param provider The provider.
    @param amount Collateral to release, in wei.
    @param income The job's payment to the provider after fees, in wei (0 if none).
    @return uint256 The delegators' cut taken from the caller.
    """
    # analysis: missing_input_validation: LOCKER only (JobEscrow); the amounts are checked against the pool below.
    assert IAccess.Role.LOCKER in access.roles[msg.sender], "staking: caller is not a locker"
    word: uint256 = self._pools[provider].locked
    locked: uint256 = word & _LOCKED_MASK
    released: uint256 = min(amount, locked)
    owed: uint256 = self._owed(word)
    log IStaking.CollateralUnlocked(provider=provider, locker=msg.sender, amount=released, locked=locked - released)
    cut: uint256 = 0
    if income != 0 and self._pools[provider].delegated_shares != 0:
        self._settle_cut(provider)
        cut = income * self._pools[provider].delegator_cut_bps // constants.BPS
    pull: bool = False
    if cut != 0:
        self._pools[provider].delegated_tokens += cut
        log IStaking.IncomeAdded(provider=provider, payer=msg.sender, amount=cut, to_delegators=cut)
        if msg.sender == self.income_holder:
            # The cut stays with the caller until a slash, `collect_income`, or a
            # payment the pool's custody account could not make without it.
            owed += cut
            assert owed <= _OWED_MASK, "staking: income overflow"
        else:
            pull = True
    self._pools[provider].locked = (locked - released) | (owed << _OWED_AT) | _IN_USE
    if pull:
        self._pull(provider, msg.sender, cut)
    return cut


@external
def slash(provider: address, amount: uint256, unlock_amount: uint256, beneficiary: address, max_reward: uint256) -> uint256:
    """
    @notice Slashes up to `amount` from `provider`'s pool and releases `unlock_amount`
            of the collateral this slash settles. SLASHER only. The provider pays
            first: its own stake, then its own thawing stake. Delegators bear only
            the rest, bonded, thawing and warming delegated stake pro rata, and never
            more than the pool holds. The beneficiary (none if zero) receives
            `BENEFICIARY_SHARE_BPS` of what the provider itself lost, at most
            `max_reward`; the rest is burned or sent to the treasury (`BURN_SLASHED`).
            So a beneficiary never gains more than half of what the provider lost,
            and nothing from delegators.
    @param provider The provider.
    @param amount Amount to slash in wei.
    @param unlock_amount Collateral released by this slash.
    @param beneficiary Harmed party or challenger, or the zero address.
    @param max_reward The most the beneficiary may receive, in wei.
    @return uint256 Amount actually slashed.
    """
    # analysis: missing_input_validation: SLASHER only (JobEscrow); the amounts are checked against the pool below.
    assert IAccess.Role.SLASHER in access.roles[msg.sender], "staking: caller is not a slasher"
    # The pool's delegated tokens may leave below: its income first (the word below then
    # holds no income).
    self._collect(provider)
    pool: IStaking.Pool = self._pool(provider)

    # The provider's own stake first (its locked collateral is part of it), then its
    # own thawing stake.
    from_own: uint256 = min(amount, pool.own_stake)
    from_own_thawing: uint256 = min(amount - from_own, pool.own_thawing)
    # Delegators only beyond that, bonded, thawing and warming pro rata: stake that was
    # delegated when the fault happened bears it whether or not it left or joined since.
    outside: uint256 = pool.thawing_tokens + pool.warming_tokens
    delegated: uint256 = pool.delegated_tokens + outside
    from_delegators: uint256 = min(amount - from_own - from_own_thawing, delegated)
    from_delegated: uint256 = 0
    if delegated != 0:
        from_delegated = from_delegators * pool.delegated_tokens // delegated
    # The rest, ceil(from_delegators * outside / delegated), is at most `outside`; of it the
    # warming tokens bear their part rounded down, the thawing tokens the rest:
    # ceil(rest * thawing / outside), at most the thawing tokens.
    rest: uint256 = from_delegators - from_delegated
    from_warming: uint256 = 0
    if outside != 0:
        from_warming = rest * pool.warming_tokens // outside
    from_delegated_thawing: uint256 = rest - from_warming

    own: uint256 = pool.own_stake - from_own
    self._pools[provider].own_stake = own
    self._pools[provider].delegated_tokens = pool.delegated_tokens - from_delegated
    self._pools[provider].own_thawing = pool.own_thawing - from_own_thawing
    self._pools[provider].thawing_tokens = pool.thawing_tokens - from_delegated_thawing
    if from_warming != 0:
        self._pools[provider].warming_tokens = pool.warming_tokens - from_warming
    # Locked collateral never exceeds own stake.
    self._pools[provider].locked = min(pool.locked - min(unlock_amount, pool.locked), own) | _IN_USE

    provider_lost: uint256 = from_own + from_own_thawing
    slashed: uint256 = provider_lost + from_delegators
    reward: uint256 = 0
    if beneficiary != empty(address):
        reward = min(provider_lost * governed._get(BENEFICIARY_SHARE_BPS) // constants.BPS, max_reward)
    remainder: uint256 = slashed - reward
    burned: bool = governed._get(BURN_SLASHED) == 1
    log IStaking.Slashed(
        provider=provider,
        beneficiary=beneficiary,
        from_own_stake=from_own,
        from_delegated=from_delegated,
        from_own_thawing=from_own_thawing,
        from_delegated_thawing=from_delegated_thawing,
        from_warming=from_warming,
        reward=reward,
        remainder=remainder,
        burned=burned,
    )
    self._unbond(provider, provider_lost)
    if reward != 0:
        self._push(provider, beneficiary, reward)
    if remainder != 0:
        if burned:
            extcall IComputeToken(TOKEN).custody_burn(provider, remainder)
        else:
            self._push(provider, self.treasury, remainder)
    return slashed


# ---------------------------------------------------------------- governance


@external
def set_parameter(key: uint256, new_value: uint256):
    """
    @notice Sets parameter `key` within its hard bounds. Owner (DAO timelock) only.
    @param key One of the parameter keys (`THAWING_PERIOD`, ...).
    @param new_value The value, within `parameter_bounds(key)`.
    """
    ownable._check_owner()
    governed._set_checked(key, new_value)


@external
def set_treasury(new_treasury: address):
    """
    @notice Sets the receiver of slashed stake that is not burned. Owner only.
    @param new_treasury The treasury: not the zero address, not a custody account (the
           token refuses payments into one, so every slash would revert).
    """
    ownable._check_owner()
    assert new_treasury != empty(address), "staking: zero treasury"
    # analysis: cei_violation: a view of the staked token (a staticcall, which cannot change state), read before the write; under the reentrancy lock.
    assert not staticcall IComputeToken(TOKEN).is_custody_account(new_treasury), "staking: treasury is a custody account"
    log IStaking.TreasurySet(previous_treasury=self.treasury, new_treasury=new_treasury)
    self.treasury = new_treasury


@external
def set_income_holder(holder: address):
    """
    @notice Names the locker whose settlements leave the delegators' cut with it
            (JobEscrow), so a settlement moves no tokens. Owner only, once: the cut
            already left with a holder is collected from it.
    @param holder The locker; it must have approved this contract for good, and answer
           `fund(provider, amount)` (gathering the income into its own balance first).
    """
    ownable._check_owner()
    assert self.income_holder == empty(address), "staking: income holder already set"
    assert holder != empty(address), "staking: zero income holder"
    self.income_holder = holder
    log IStaking.IncomeHolderSet(holder=holder)


@external
def collect_income(provider: address) -> uint256:
    """
    @notice Pulls the delegators' income `income_holder` holds for `provider`'s pool into
            the pool's custody account. Anyone may call; a slash does it first, and a
            payment the custody account could not make without it.
    @param provider The provider.
    @return uint256 Tokens pulled.
    """
    return self._collect(provider)


# ---------------------------------------------------------------- views


@external
@view
def uncollected_income(provider: address) -> uint256:
    """
    @notice Delegators' income of `provider`'s pool that `income_holder` still holds
            (part of the pool's delegated tokens).
    @param provider The provider.
    @return uint256 Tokens.
    """
    return self._owed(self._pools[provider].locked)


@external
@view
def thawing_period() -> uint256:
    """
    @notice How long stake thaws before it can be withdrawn.
    @return uint256 Seconds.
    """
    return governed._get(THAWING_PERIOD)


@external
@view
def pool(provider: address) -> IStaking.Pool:
    """
    @notice Everything Staking holds for `provider`.
    @param provider The provider.
    @return Pool Its pool.
    """
    return self._pool(provider)


@external
@view
def bonded_stake(provider: address) -> uint256:
    """
    @notice Stake backing `provider`'s work: own stake plus delegated stake.
    @param provider The provider.
    @return uint256 Amount in wei.
    """
    return self._pools[provider].own_stake + self._pools[provider].delegated_tokens


@external
@view
def free_stake(provider: address) -> uint256:
    """
    @notice Own stake of `provider` that is not locked as collateral.
    @param provider The provider.
    @return uint256 Amount in wei.
    """
    return self._pools[provider].own_stake - self._locked(provider)


@external
@view
def delegator_cut(provider: address) -> uint256:
    """
    @notice Share of `provider`'s income that goes to its delegators now.
    @param provider The provider.
    @return uint256 Basis points.
    """
    pending_at: uint256 = self._pools[provider].pending_cut_at
    if pending_at != 0 and block.timestamp >= pending_at:
        return self._pools[provider].pending_cut_bps
    return self._pools[provider].delegator_cut_bps


@external
@view
def delegation(provider: address, delegator: address) -> IStaking.DelegationView:
    """
    @notice `delegator`'s position at `provider`: shares and their value, its
            thawing stake with the time it unlocks, the votes it carries, and the
            value of its tokens warming up with the time they can be activated (with
            nothing warming, a time still to come is when a cancelled warm-up would
            have ended: its thawing tokens rejoin the pool only through a warm-up
            until then).
    @param provider The provider.
    @param delegator The delegator.
    @return DelegationView The position.
    """
    position: IStaking.Delegation = self._delegations[provider][delegator]
    return IStaking.DelegationView(
        shares=position.shares,
        value=self._to_tokens(
            position.shares, self._pools[provider].delegated_tokens, self._pools[provider].delegated_shares
        ),
        thawing=self._to_tokens(
            position.thaw_shares, self._pools[provider].thawing_tokens, self._pools[provider].thawing_shares
        ),
        unlock_at=position.unlock_at,
        votes=self._all_units(position.units) + position.thaw_units,
        warming=self._to_tokens(
            self._warm_shares(position.warm), self._pools[provider].warming_tokens, self._pools[provider].warming_shares
        ),
        warm_until=self._warm_until(position.warm),
    )


# ---------------------------------------------------------------- internal


@internal
@view
def _locked(provider: address) -> uint256:
    return self._pools[provider].locked & _LOCKED_MASK


@internal
@pure
def _owed(word: uint256) -> uint256:
    """
    @dev The income `income_holder` holds, from a pool's stored `locked` word.
    """
    return (word >> _OWED_AT) & _OWED_MASK


@internal
@view
def _pool(provider: address) -> IStaking.Pool:
    pool: IStaking.Pool = self._pools[provider]
    pool.locked &= _LOCKED_MASK
    return pool


@internal
@pure
def _to_shares(amount: uint256, tokens: uint256, shares: uint256) -> uint256:
    return amount * (shares + _VIRTUAL_SHARES) // (tokens + _VIRTUAL_TOKENS)


@internal
@pure
def _to_tokens(shares: uint256, tokens: uint256, total_shares: uint256) -> uint256:
    return shares * (tokens + _VIRTUAL_TOKENS) // (total_shares + _VIRTUAL_SHARES)


@internal
def _add_delegation(provider: address, delegator: address, amount: uint256) -> uint256:
    assert self._pools[provider].own_stake != 0, "staking: provider has no stake"
    tokens: uint256 = self._pools[provider].delegated_tokens
    assert tokens + amount <= self._cap(provider), "staking: delegation over cap"
    total: uint256 = self._pools[provider].delegated_shares
    shares: uint256 = self._to_shares(amount, tokens, total)
    assert shares != 0, "staking: delegation too small"
    self._pools[provider].delegated_tokens = tokens + amount
    self._pools[provider].delegated_shares = total + shares
    self._delegations[provider][delegator].shares += shares
    log IStaking.Delegated(provider=provider, delegator=delegator, amount=amount, shares=shares)
    return shares


@internal
@view
def _cap(provider: address) -> uint256:
    """
    @dev The most `provider`'s delegation pool may hold: `MAX_DELEGATION_RATIO` times its
         own stake. Warming tokens are not counted (they hold no room).
    """
    return self._pools[provider].own_stake * governed._get(MAX_DELEGATION_RATIO)


@internal
@pure
def _warm_shares(warm: uint256) -> uint256:
    return warm & _WARM_SHARES_MASK


@internal
@pure
def _warm_until(warm: uint256) -> uint256:
    return warm >> _WARM_UNTIL_AT


@internal
@pure
def _pack_warm(shares: uint256, warm_until: uint256) -> uint256:
    """
    @dev Callers keep `shares` below 2**192.
    """
    return shares | (warm_until << _WARM_UNTIL_AT)


@internal
@pure
def _all_units(units: uint256) -> uint256:
    return units & _UNITS_MASK


@internal
@pure
def _warming_units(units: uint256, warm: uint256) -> uint256:
    """
    @dev The units delegated into the warm-up, from the `units` and `warm` words: none
         when the warm word holds no shares (they joined the pool or were cancelled).
    """
    if warm & _WARM_SHARES_MASK == 0:
        return 0
    return units >> _WARMING_UNITS_AT


@internal
@pure
def _pack_units(all_units: uint256, warming_units: uint256) -> uint256:
    """
    @dev Both fit in 128 bits: units never exceed the fixed supply.
    """
    return all_units | (warming_units << _WARMING_UNITS_AT)


@internal
def _activate(provider: address, delegator: address) -> (bool, uint256):
    """
    @dev Moves `delegator`'s warmed-up tokens at `provider` out of the warming share
         pool into the pool as shares at the pool's price, and returns (True, shares
         minted); (False, 0) when none are warming, the warm-up still runs or the pool
         has no room for them under its cap (an exit is never blocked by this).
    """
    warm: uint256 = self._delegations[provider][delegator].warm
    warm_shares: uint256 = self._warm_shares(warm)
    if warm_shares == 0 or block.timestamp < self._warm_until(warm):
        return False, 0
    warming: uint256 = self._pools[provider].warming_tokens
    warm_total: uint256 = self._pools[provider].warming_shares
    amount: uint256 = self._to_tokens(warm_shares, warming, warm_total)
    tokens: uint256 = self._pools[provider].delegated_tokens
    if tokens + amount > self._cap(provider):
        return False, 0
    total: uint256 = self._pools[provider].delegated_shares
    shares: uint256 = self._to_shares(amount, tokens, total)
    self._pools[provider].warming_tokens = warming - amount
    self._pools[provider].warming_shares = warm_total - warm_shares
    self._pools[provider].delegated_tokens = tokens + amount
    self._pools[provider].delegated_shares = total + shares
    self._delegations[provider][delegator].warm = 0
    self._delegations[provider][delegator].shares += shares
    log IStaking.DelegationActivated(provider=provider, delegator=delegator, amount=amount, shares=shares)
    return True, shares


@internal
def _thaw(provider: address, delegator: address, amount: uint256) -> (uint256, uint256):
    """
    @dev Adds `amount` tokens (already taken out of the pool or its warm-up) to
         `delegator`'s thawing position at `provider` and restarts the position's
         clock; returns the thawing shares minted and the new unlock time.
    """
    tokens: uint256 = self._pools[provider].thawing_tokens
    total: uint256 = self._pools[provider].thawing_shares
    shares: uint256 = self._to_shares(amount, tokens, total)
    self._pools[provider].thawing_tokens = tokens + amount
    self._pools[provider].thawing_shares = total + shares
    unlock_at: uint256 = block.timestamp + governed._get(THAWING_PERIOD)
    self._delegations[provider][delegator].thaw_shares += shares
    self._delegations[provider][delegator].unlock_at = unlock_at
    return shares, unlock_at


@internal
def _take_thawing(provider: address, delegator: address) -> uint256:
    """
    @dev Removes `delegator`'s whole thawing position at `provider` from the thawing
         pool and returns its value in tokens.
    """
    thaw_shares: uint256 = self._delegations[provider][delegator].thaw_shares
    if thaw_shares == 0:
        return 0
    tokens: uint256 = self._pools[provider].thawing_tokens
    total: uint256 = self._pools[provider].thawing_shares
    amount: uint256 = self._to_tokens(thaw_shares, tokens, total)
    self._pools[provider].thawing_tokens = tokens - amount
    self._pools[provider].thawing_shares = total - thaw_shares
    self._delegations[provider][delegator].thaw_shares = 0
    self._delegations[provider][delegator].unlock_at = 0
    return amount


@internal
def _collect(provider: address) -> uint256:
    """
    @dev Pulls the delegators' income `income_holder` holds for `provider`'s pool into
         its custody account (see `_push`).
    """
    word: uint256 = self._pools[provider].locked
    owed: uint256 = self._owed(word)
    if owed != 0:
        self._pools[provider].locked = word & ~(_OWED_MASK << _OWED_AT)
        holder: address = self.income_holder
        log IStaking.IncomeCollected(provider=provider, holder=holder, amount=owed)
        # The holder (JobEscrow) keeps its deposits in shards: it first gathers the
        # income into the balance this contract pulls from.
        extcall IJobEscrow(holder).fund(provider, owed, skip_contract_check=True)
        self._pull(provider, holder, owed)
    return owed


@internal
def _settle_cut(provider: address):
    """
    @dev Applies a scheduled delegator cut whose time has come.
    """
    pending_at: uint256 = self._pools[provider].pending_cut_at
    if pending_at != 0 and block.timestamp >= pending_at:
        self._pools[provider].delegator_cut_bps = self._pools[provider].pending_cut_bps
        self._pools[provider].pending_cut_bps = 0
        self._pools[provider].pending_cut_at = 0


@internal
def _bond(owner: address, amount: uint256):
    if amount != 0:
        extcall IComputeToken(TOKEN).add_bonded(owner, amount)


@internal
def _unbond(owner: address, amount: uint256):
    if amount != 0:
        extcall IComputeToken(TOKEN).sub_bonded(owner, amount)


@internal
def _pull(provider: address, account: address, amount: uint256):
    """
    @dev Moves `amount` of `account`'s tokens (on its allowance to this contract) into
         `provider`'s custody account: each pool's tokens sit in a token account of
         their own, so stakes in different pools write different words.
    """
    assert extcall IComputeToken(TOKEN).custody_deposit(
        account, provider, amount, default_return_value=True
    ), "staking: transferFrom failed"


@internal
def _push(provider: address, account: address, amount: uint256):
    """
    @dev Pays `amount` to `account` out of `provider`'s custody account. The account
         holds the pool's buckets less the delegators' income `income_holder` still
         keeps; only when that leaves too little is the income collected first, so a
         payment rarely writes the holder's balance word.
    """
    if not extcall IComputeToken(TOKEN).custody_withdraw(provider, account, amount, default_return_value=True):
        self._collect(provider)
        assert extcall IComputeToken(TOKEN).custody_withdraw(
            provider, account, amount, default_return_value=True
        ), "staking: transfer failed"
