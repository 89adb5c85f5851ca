# pragma version ~=0.4.3
"""
@title ComputeShare protocol token
@custom:contract-name ComputeToken
@license GNU Affero General Public License v3.0 only
@notice ERC-20 with EIP-2612 `permit`, ERC-5805 vote delegation and ERC-6372
        clock in timestamp mode, so governance front-ends and wallets that speak
        OpenZeppelin's `ERC20Votes` / `ERC20Permit` interfaces work unchanged.

        Storage layout. Every account owns one 256-bit word in `_account`:
            bits   0..95   balance            (uint96)
            bits  96..191  bonded units       (uint96, tokens the vault holds for it)
            bits 192..221  signature nonce    (uint30, shared by permit and delegateBySig)
            bits 222..253  checkpoint count   (uint32, as a delegatee)
            bits 254..255  delegation mode    (0 none, 1 self, 2 another address,
                                               3 a custody account of a custodian)
        A transfer between accounts that are undelegated or self-delegated
        therefore reads and writes exactly the two account words; only accounts
        delegating to a third party keep their delegatee in `_delegatee`.
        Vote checkpoints pack time and value in one slot: `timestamp << 208 | votes`
        (uint48 + uint208), keyed by `account << 32 | index`. Total supply checkpoints use the same store under the
        zero address, which can never be a delegatee (delegating to it means
        "no delegate"), so one binary search serves both.

        Supply. The deployer mints the initial supply; later minting is the
        owner's alone (the DAO timelock once the DAO exists) and is capped per
        365-day epoch at `MAX_INFLATION_BPS` of the supply at the epoch's start.
        Every balance, and so the supply, fits in 96 bits (`MAX_SUPPLY`).

        Bonded votes. Tokens staked in the protocol keep their voting power for
        their owner. The vault (Staking, set once by the owner) holds those tokens
        but can never delegate, so its balance carries no votes; instead it reports
        each owner's bonded units (`add_bonded` / `sub_bonded`), and an account's
        voting units are its balance plus its bonded units, following its
        delegation like the balance does.

        Custody accounts. Any contract may keep the tokens it holds for others in
        accounts of its own, one per key it chooses (Staking: one per provider pool;
        JobEscrow: one per shard of its deposits), at addresses derived from its
        address and the key (`custody_account`): it is their custodian, and only
        it can move their tokens. They are ordinary
        accounts to every reader (`balanceOf`, `Transfer` logs, the supply is the sum
        of all balances), but marked by the delegation mode: no transfer, transfer
        on an allowance, burn or delegation starts from them (an allowance may be
        set, but is never spendable); only their custodian moves their tokens
        (`custody_deposit`, `custody_withdraw`, `custody_gather`, `custody_burn`), never
        into another custody account, where its books could not follow them. Opening one
        needs no permission: no one but its custodian can reach it, and it holds what
        its custodian put in, from owners who approved that custodian, plus whatever
        anyone transferred to its address. Such a donation is the custodian's to move,
        opened or not (nobody holds the key of an address derived from the custodian's),
        so no balance anyone places makes a custody call revert. So stakes in different
        pools write different words: no balance word of the vault is shared by every
        staker, and transactions of independent stakers (and of clients depositing
        into different shards) run in parallel. Their balances carry no votes; the
        owners' bonded units do.

        No function of this contract makes an external call (ecrecover is a
        precompile), so there is nothing to re-enter and no reentrancy lock.
@custom:attribution The EIP-712 domain, ECDSA recovery and ownership modules
        are snekmate's (pcaversaccio/snekmate v0.1.2, AGPL-3.0-only). The
        checkpoint look-up follows OpenZeppelin's `Checkpoints.upperLookupRecent`.
"""

# Static analysis (vyper-guard, `make analyze`), contract-wide:
# analysis: integer_overflow: each `unsafe_*` operation has a `# Cannot wrap` comment above it giving the bound that makes it safe (amounts stay under MAX_SUPPLY, checkpoint counts and indices under 2**32).
# analysis: missing_input_validation: the external entry points validate in the internal function they call (`_transfer`, `_approve`, `_mint`, the vault check of `add_bonded`).

from ethereum.ercs import IERC20
from ethereum.ercs import IERC20Detailed
from interfaces import IComputeToken
from snekmate.auth import ownable
from snekmate.utils import eip712_domain_separator
from contracts.modules import signatures
from contracts.modules import constants

implements: IERC20
implements: IERC20Detailed
implements: IComputeToken

initializes: ownable
initializes: eip712_domain_separator

exports: (
    ownable.owner,
    ownable.transfer_ownership,
    # Kept on purpose: the DAO may renounce minting for good by renouncing ownership.
    ownable.renounce_ownership,
    eip712_domain_separator.eip712Domain,
)


name: public(constant(String[25])) = "ComputeShare Token"
symbol: public(constant(String[5])) = "CSHR"
decimals: public(constant(uint8)) = 18

# @notice Largest possible supply: every balance is a uint96.
MAX_SUPPLY: public(constant(uint256)) = 2**96 - 1
# @notice Owner minting per 365-day epoch, in basis points of the supply at the epoch start.
MAX_INFLATION_BPS: public(constant(uint256)) = 500
# @notice Length of a minting epoch.
MINT_EPOCH: public(constant(uint256)) = constants.YEAR
# @notice Most numbered custody accounts one `custody_gather` reads (JobEscrow's 1,024
#         deposit shards).
MAX_GATHER: public(constant(uint256)) = 1024

_EIP712_NAME: constant(String[50]) = "ComputeShare Token"
_EIP712_VERSION: constant(String[20]) = "1"
_PERMIT_TYPEHASH: constant(bytes32) = keccak256(
    "Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"
)
_DELEGATION_TYPEHASH: constant(bytes32) = keccak256(
    "Delegation(address delegatee,uint256 nonce,uint256 expiry)"
)

_BALANCE_MASK: constant(uint256) = 2**96 - 1
_U30: constant(uint256) = 2**30 - 1
_BONDED_SHIFT: constant(uint256) = 96
_NONCE_SHIFT: constant(uint256) = 192
_NONCE_ONE: constant(uint256) = 1 << 192
_COUNT_SHIFT: constant(uint256) = 222
_COUNT_ONE: constant(uint256) = 1 << 222
_MODE_SHIFT: constant(uint256) = 254
_MODE_CLEAR: constant(uint256) = ~(3 << 254)
_MODE_NONE: constant(uint256) = 0
_MODE_SELF: constant(uint256) = 1
_MODE_OTHER: constant(uint256) = 2
_MODE_CUSTODY: constant(uint256) = 3
# Domain of the custody account addresses: keccak256(tag, custodian, key), low 160 bits.
_CUSTODY_TAG: constant(bytes32) = keccak256("ComputeShare custody account")

_VALUE_BITS: constant(uint256) = 208
_VALUE_MASK: constant(uint256) = 2**208 - 1
# Key of the total supply checkpoints in `_checkpoints`.
_SUPPLY_KEY: constant(address) = empty(address)


_account: HashMap[address, uint256]
_delegatee: HashMap[address, address]
# Checkpoint `i` of `key` lives at `_checkpoints[key << 32 | i]`: one hash per access, and
# collision-free since an address has 160 bits and every index is below 2**32.
_checkpoints: HashMap[uint256, uint256]

# @notice ERC-20 allowances; `max_value(uint256)` is never decreased.
allowance: public(HashMap[address, HashMap[address, uint256]])
# @notice Current total supply.
totalSupply: public(uint256)

# @notice Holds staked tokens for their owners and reports their bonded units (Staking).
vault: public(address)

# @notice Start of the current minting epoch.
mint_epoch_start: public(uint256)
# @notice Most the owner may mint in the current epoch.
mint_epoch_cap: public(uint256)
# @notice Minted by the owner in the current epoch.
mint_epoch_minted: public(uint256)



@deploy
def __init__(initial_holder: address, initial_supply: uint256):
    """
    @notice Deploys the token, mints `initial_supply` to `initial_holder` and
            opens the first minting epoch. The deployer becomes the owner.
    @param initial_holder Receiver of the initial supply.
    @param initial_supply Initial supply in wei, at most `MAX_SUPPLY`.
    """
    ownable.__init__()
    eip712_domain_separator.__init__(_EIP712_NAME, _EIP712_VERSION)
    assert initial_holder != empty(address), "compute_token: mint to the zero address"
    self._mint(initial_holder, initial_supply)
    self._start_mint_epoch()


# ---------------------------------------------------------------- ERC-20


@external
@view
def balanceOf(owner: address) -> uint256:
    """
    @notice Token balance of `owner`.
    @param owner The account.
    @return uint256 Its balance.
    """
    return self._account[owner] & _BALANCE_MASK


@external
def transfer(to: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` from the caller to `to`, and the votes with it.
    @param to Receiver, not the zero address.
    @param amount Amount in wei.
    @return bool True.
    """
    self._transfer(msg.sender, to, amount, False)
    return True


@external
def transferFrom(owner: address, to: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` from `owner` to `to` using the caller's allowance.
    @param owner Account debited.
    @param to Receiver, not the zero address.
    @param amount Amount in wei.
    @return bool True.
    """
    self._spend_allowance(owner, msg.sender, amount)
    self._transfer(owner, to, amount, False)
    return True


@external
def approve(spender: address, amount: uint256) -> bool:
    """
    @notice Lets `spender` move up to `amount` of the caller's tokens.
    @param spender Approved account, not the zero address.
    @param amount Allowance in wei; `max_value(uint256)` never decreases.
    @return bool True.
    """
    self._approve(msg.sender, spender, amount)
    return True


@external
def permit(
    owner: address,
    spender: address,
    amount: uint256,
    deadline: uint256,
    v: uint8,
    r: bytes32,
    s: bytes32,
):
    """
    @notice EIP-2612: sets `spender`'s allowance over `owner`'s tokens from
            `owner`'s EIP-712 signature, which uses `owner`'s current nonce.
    @param owner Signer and token owner.
    @param spender Approved account.
    @param amount Allowance in wei.
    @param deadline Last timestamp at which the signature is valid.
    @param v Signature recovery id.
    @param r Signature r.
    @param s Signature s.
    """
    assert block.timestamp <= deadline, "compute_token: expired deadline"
    nonce: uint256 = self._use_nonce(owner)
    digest: bytes32 = eip712_domain_separator._hash_typed_data_v4(
        keccak256(abi_encode(_PERMIT_TYPEHASH, owner, spender, amount, nonce, deadline))
    )
    signer: address = signatures._recover(digest, v, r, s)
    assert signer == owner, "compute_token: invalid signature"
    self._approve(owner, spender, amount)


@external
@view
def nonces(owner: address) -> uint256:
    """
    @notice Next signature nonce of `owner`, shared by `permit` and `delegateBySig`.
    @param owner The account.
    @return uint256 The nonce the next signature must use.
    """
    return (self._account[owner] >> _NONCE_SHIFT) & _U30


@external
@view
def DOMAIN_SEPARATOR() -> bytes32:
    """
    @notice EIP-712 domain separator of this token on this chain.
    @return bytes32 The separator.
    """
    return eip712_domain_separator._domain_separator_v4()


# ---------------------------------------------------------------- supply


@external
def mint(to: address, amount: uint256):
    """
    @notice Owner-only minting, capped per epoch at `MAX_INFLATION_BPS` of the
            supply at the epoch's start. A call after the epoch ends opens a new one.
    @param to Receiver, not the zero address.
    @param amount Amount in wei.
    """
    ownable._check_owner()
    assert to != empty(address), "compute_token: mint to the zero address"
    if block.timestamp >= self.mint_epoch_start + MINT_EPOCH:
        self._start_mint_epoch()
    minted: uint256 = self.mint_epoch_minted + amount
    assert minted <= self.mint_epoch_cap, "compute_token: mint exceeds inflation cap"
    self.mint_epoch_minted = minted
    # analysis: missing_event_emission: `_mint` logs Transfer.
    self._mint(to, amount)


@external
def burn(amount: uint256):
    """
    @notice Destroys `amount` of the caller's tokens, and the votes they carried.
    @param amount Amount in wei.
    """
    self._burn(msg.sender, amount, False)


@external
@view
def mintable() -> uint256:
    """
    @notice What the owner could mint now under the inflation cap.
    @return uint256 Amount in wei.
    """
    if block.timestamp >= self.mint_epoch_start + MINT_EPOCH:
        return min(self.totalSupply * MAX_INFLATION_BPS // constants.BPS, MAX_SUPPLY - self.totalSupply)
    return min(self.mint_epoch_cap - self.mint_epoch_minted, MAX_SUPPLY - self.totalSupply)


# ---------------------------------------------------------------- bonded votes


@external
def set_vault(new_vault: address):
    """
    @notice Names the vault whose holdings vote for their owners. Owner only, once:
            bonded units are only meaningful while one vault reports them.
    @param new_vault The vault (Staking); it must not delegate.
    """
    ownable._check_owner()
    assert self.vault == empty(address), "compute_token: vault already set"
    assert new_vault != empty(address), "compute_token: zero vault"
    assert (self._account[new_vault] >> _MODE_SHIFT) & 3 == _MODE_NONE, "compute_token: the vault delegates"
    self.vault = new_vault
    log IComputeToken.VaultSet(vault=new_vault)


@external
def add_bonded(owner: address, amount: uint256):
    """
    @notice Counts `amount` more of the vault's tokens as `owner`'s voting units,
            which go to `owner`'s delegatee. Vault only.
    @param owner The account the tokens are held for.
    @param amount Units in wei.
    """
    assert msg.sender == self.vault, "compute_token: caller is not the vault"
    word: uint256 = self._account[owner]
    previous: uint256 = (word >> _BONDED_SHIFT) & _BALANCE_MASK
    units: uint256 = previous + amount
    assert units <= MAX_SUPPLY, "compute_token: bonded units overflow"
    # Cannot carry out of the bonded bits: units <= MAX_SUPPLY was just checked.
    self._account[owner] = unsafe_add(word, amount << _BONDED_SHIFT)
    log IComputeToken.BondedChanged(owner=owner, previous_units=previous, new_units=units)
    self._move_votes(empty(address), self._delegate_of(owner, word), amount)


@external
def sub_bonded(owner: address, amount: uint256):
    """
    @notice Stops counting `amount` of `owner`'s bonded units (the vault paid or
            slashed the tokens behind them). Vault only.
    @param owner The account the tokens were held for.
    @param amount Units in wei, at most its bonded units.
    """
    assert msg.sender == self.vault, "compute_token: caller is not the vault"
    word: uint256 = self._account[owner]
    previous: uint256 = (word >> _BONDED_SHIFT) & _BALANCE_MASK
    assert previous >= amount, "compute_token: bonded units underflow"
    # Cannot wrap: the bonded bits hold at least `amount`.
    self._account[owner] = unsafe_sub(word, amount << _BONDED_SHIFT)
    log IComputeToken.BondedChanged(owner=owner, previous_units=previous, new_units=unsafe_sub(previous, amount))
    self._move_votes(self._delegate_of(owner, word), empty(address), amount)


@external
@view
def bonded_of(owner: address) -> uint256:
    """
    @notice Tokens the vault holds for `owner`, which vote with `owner`'s delegation.
    @param owner The account.
    @return uint256 Its bonded units in wei.
    """
    return (self._account[owner] >> _BONDED_SHIFT) & _BALANCE_MASK


# ---------------------------------------------------------------- custody accounts


@external
@view
def custody_account(custodian: address, key: address) -> address:
    """
    @notice The account in which `custodian` keeps the tokens it holds under `key`
            (Staking: the pool of provider `key`; JobEscrow: a shard of its deposits).
    @param custodian The contract whose account it is.
    @param key The custodian's key.
    @return address The custody account.
    """
    return self._custody_account(custodian, key)


@external
@view
def is_custody_account(account: address) -> bool:
    """
    @notice Whether `account` is a custody account (opened by a deposit).
    @param account The account.
    @return bool True for a custody account.
    """
    return self._account[account] >> _MODE_SHIFT == _MODE_CUSTODY


@external
@view
def custody_balance(custodian: address, key: address) -> uint256:
    """
    @notice Tokens in `custodian`'s custody account `key`.
    @param custodian The contract whose account it is.
    @param key The custodian's key.
    @return uint256 Its balance in wei.
    """
    return self._account[self._custody_account(custodian, key)] & _BALANCE_MASK


@external
def custody_deposit(owner: address, key: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` of `owner`'s tokens into the caller's custody account
            `key`, on `owner`'s allowance to the caller, as `transferFrom` would. The
            account is marked as custody on first use (an address that delegates is
            refused: it cannot be one).
    @param owner Account debited; it must have approved the caller.
    @param key The caller's key.
    @param amount Amount in wei.
    @return bool True.
    """
    custody: address = self._custody_account(msg.sender, key)
    word: uint256 = self._account[custody]
    if word >> _MODE_SHIFT != _MODE_CUSTODY:
        assert word >> _MODE_SHIFT == _MODE_NONE, "compute_token: custody account delegates"
        self._account[custody] = word | (_MODE_CUSTODY << _MODE_SHIFT)
        log IComputeToken.CustodyOpened(custodian=msg.sender, key=key, account=custody)
    self._spend_allowance(owner, msg.sender, amount)
    self._transfer(owner, custody, amount, False)
    return True


@external
def custody_withdraw(key: address, to: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` out of the caller's custody account `key` to `to`.
            Returns False, moving nothing, when the account holds less than `amount`
            (the custodian may then refill it and try again, in one call instead of a
            balance read before every payment). An account the caller never opened is
            its own too: what anyone sent to its address is the caller's to move, so a
            donation never makes a custody call revert. Reverts for a receiver that is a
            custody account.
    @param key The caller's key.
    @param to Receiver: not the zero address, not a custody account.
    @param amount Amount in wei.
    @return bool True when the tokens moved.
    """
    custody: address = self._custody_account(msg.sender, key)
    if self._account[custody] & _BALANCE_MASK < amount:
        return False
    # `_transfer` refuses any other custody account as the receiver of a custody payment.
    assert to != custody, "compute_token: pays a custody account"
    self._transfer(custody, to, amount, True)
    return True


@external
def custody_gather(first: uint256, count: uint256, to: address, amount: uint256) -> uint256:
    """
    @notice Pays up to `amount` to `to` out of the caller's numbered custody accounts,
            those keyed by the numbers below `count` (a number as an address, as
            JobEscrow keys its deposit shards): from account `first` on, then the next
            ones in turn (after `count - 1` comes 0), as much from each as it holds,
            until `amount` is paid. Opened or not, each is the caller's (see
            `custody_withdraw`). Each account is read once at most: a call costs at most
            `count` reads (about 2,500 gas each, 430 once read in the transaction), a
            debit and a `Transfer` from each account that held tokens, and one credit to
            `to` (one vote checkpoint however many accounts paid).
    @param first The number of the account read first, taken modulo `count`.
    @param count How many accounts the caller numbers, at most `MAX_GATHER`.
    @param to Receiver: not the zero address, not a custody account.
    @param amount Amount in wei.
    @return uint256 What the accounts could not pay (zero when they paid it all).
    """
    assert to != empty(address), "compute_token: transfer to the zero address"
    left: uint256 = amount
    if count == 0:
        return left
    index: uint256 = first % count
    sender: bytes32 = convert(msg.sender, bytes32)
    for _: uint256 in range(count, bound=MAX_GATHER):
        # `_custody_account`, inlined: this loop may read every account.
        digest: uint256 = convert(keccak256(abi_encode(_CUSTODY_TAG, sender, index)), uint256)
        custody: address = convert(convert(digest & convert(max_value(uint160), uint256), uint160), address)
        word: uint256 = self._account[custody]
        mode: uint256 = word >> _MODE_SHIFT
        # Mode 1 or 2: the address delegates, so someone holds a key colliding with it
        # and it was never the caller's account: skipped, as `custody_deposit` refuses it.
        if word & _BALANCE_MASK != 0 and mode != _MODE_SELF and mode != _MODE_OTHER:
            assert to != custody, "compute_token: pays a custody account"
            part: uint256 = min(word & _BALANCE_MASK, left)
            # Cannot wrap: the balance bits hold at least `part`. A custody account votes
            # for nobody, so no checkpoint moves on this side.
            self._account[custody] = unsafe_sub(word, part)
            log IComputeToken.Transfer(sender=custody, receiver=to, value=part)
            # Cannot wrap: part <= left.
            left = unsafe_sub(left, part)
            if left == 0:
                break
        # Cannot wrap: index < count <= MAX_GATHER.
        index = unsafe_add(index, 1)
        if index == count:
            index = 0
    # The receiver is credited once, whatever number of accounts paid it.
    gathered: uint256 = amount - left
    if gathered != 0:
        # Cannot carry out of the balance bits: balance + gathered <= totalSupply <= MAX_SUPPLY.
        to_word: uint256 = unsafe_add(self._account[to], gathered)
        assert to_word >> _MODE_SHIFT != _MODE_CUSTODY, "compute_token: pays a custody account"
        dst: address = self._delegate_of(to, to_word)
        if dst == to:
            to_word = self._checkpoint(dst, to_word, gathered, True)
        elif dst != empty(address):
            self._account[dst] = self._checkpoint(dst, self._account[dst], gathered, True)
        self._account[to] = to_word
    return left


@external
def custody_burn(key: address, amount: uint256):
    """
    @notice Destroys `amount` held in the caller's custody account `key`, opened or not
            (see `custody_withdraw`).
    @param key The caller's key.
    @param amount Amount in wei, at most the account's balance.
    """
    self._burn(self._custody_account(msg.sender, key), amount, True)


# ---------------------------------------------------------------- votes (ERC-5805, ERC-6372)


@external
@view
def clock() -> uint48:
    """
    @notice ERC-6372 clock: the block timestamp.
    @return uint48 Current timepoint.
    """
    return convert(block.timestamp, uint48)


@external
@view
def CLOCK_MODE() -> String[14]:
    """
    @notice ERC-6372 clock description.
    @return String "mode=timestamp".
    """
    return "mode=timestamp"


@external
@view
def delegates(account: address) -> address:
    """
    @notice Whom `account` delegates its votes to (zero: nobody).
    @param account The delegator.
    @return address Its delegatee.
    """
    return self._delegate_of(account, self._account[account])


@external
def delegate(delegatee: address):
    """
    @notice Delegates the caller's votes to `delegatee`; the zero address
            withdraws the delegation.
    @param delegatee New delegatee (the caller itself to vote directly).
    """
    self._delegate(msg.sender, delegatee)


@external
def delegateBySig(delegatee: address, nonce: uint256, expiry: uint256, v: uint8, r: bytes32, s: bytes32):
    """
    @notice Delegates the signer's votes from an EIP-712 `Delegation` signature.
    @param delegatee New delegatee.
    @param nonce The signer's current nonce.
    @param expiry Last timestamp at which the signature is valid.
    @param v Signature recovery id.
    @param r Signature r.
    @param s Signature s.
    """
    assert block.timestamp <= expiry, "compute_token: signature expired"
    digest: bytes32 = eip712_domain_separator._hash_typed_data_v4(
        keccak256(abi_encode(_DELEGATION_TYPEHASH, delegatee, nonce, expiry))
    )
    signer: address = signatures._recover(digest, v, r, s)
    assert self._use_nonce(signer) == nonce, "compute_token: invalid nonce"
    self._delegate(signer, delegatee)


@external
@view
def getVotes(account: address) -> uint256:
    """
    @notice Current votes of `account`.
    @param account The delegatee.
    @return uint256 Its votes.
    """
    if account == _SUPPLY_KEY:
        return 0
    n: uint256 = self._count(account)
    if n == 0:
        return 0
    base: uint256 = convert(account, uint256) << 32
    # Cannot wrap: n != 0 here.
    return self._checkpoints[base | unsafe_sub(n, 1)] & _VALUE_MASK


@external
@view
def getPastVotes(account: address, timepoint: uint256) -> uint256:
    """
    @notice Votes of `account` at the end of `timepoint` (a past timestamp).
    @param account The delegatee.
    @param timepoint A timestamp before the current one.
    @return uint256 Its votes then.
    """
    assert timepoint < block.timestamp, "compute_token: future lookup"
    if account == _SUPPLY_KEY:
        return 0
    return self._lookup(account, timepoint)


@external
@view
def getPastTotalSupply(timepoint: uint256) -> uint256:
    """
    @notice Total supply at the end of `timepoint` (a past timestamp).
    @param timepoint A timestamp before the current one.
    @return uint256 The supply then.
    """
    assert timepoint < block.timestamp, "compute_token: future lookup"
    return self._lookup(_SUPPLY_KEY, timepoint)


@external
@view
def numCheckpoints(account: address) -> uint32:
    """
    @notice Number of vote checkpoints of `account`.
    @param account The delegatee.
    @return uint32 The count.
    """
    if account == _SUPPLY_KEY:
        return 0
    return convert(self._count(account), uint32)


@external
@view
def checkpoints(account: address, pos: uint32) -> IComputeToken.Checkpoint:
    """
    @notice The `pos`-th vote checkpoint of `account`.
    @param account The delegatee.
    @param pos Index, below `numCheckpoints(account)`.
    @return Checkpoint Its timestamp and votes.
    """
    assert account != _SUPPLY_KEY and convert(pos, uint256) < self._count(account), "compute_token: no such checkpoint"
    base: uint256 = convert(account, uint256) << 32
    packed: uint256 = self._checkpoints[base | convert(pos, uint256)]
    return IComputeToken.Checkpoint(
        key=convert(packed >> _VALUE_BITS, uint48), value=convert(packed & _VALUE_MASK, uint208)
    )


# ---------------------------------------------------------------- internal


@internal
def _transfer(owner: address, to: address, amount: uint256, from_custody: bool):
    """
    @dev Moves `amount` from `owner` to `to`. Only a custodian's custody calls pass
         `from_custody`: every other caller is refused a custody account's tokens.
    """
    assert to != empty(address), "compute_token: transfer to the zero address"
    owner_word: uint256 = self._account[owner]
    self._check_custody(owner_word, from_custody)
    assert owner_word & _BALANCE_MASK >= amount, "compute_token: transfer amount exceeds balance"
    log IComputeToken.Transfer(sender=owner, receiver=to, value=amount)
    if owner == to or amount == 0:
        return
    # Cannot wrap: the balance bits hold at least `amount`.
    owner_word = unsafe_sub(owner_word, amount)
    # Cannot carry out of the balance bits: balance + amount <= totalSupply <= MAX_SUPPLY.
    to_word: uint256 = unsafe_add(self._account[to], amount)
    # A custodian pays out, never into a custody account, where no books could follow.
    assert not from_custody or to_word >> _MODE_SHIFT != _MODE_CUSTODY, "compute_token: pays a custody account"
    src: address = self._delegate_of(owner, owner_word)
    dst: address = self._delegate_of(to, to_word)
    # The delegatees' checkpoint counts live in account words: update the words this
    # transfer already holds in memory, so each account word is written exactly once.
    if src != dst:
        if src == owner:
            owner_word = self._checkpoint(src, owner_word, amount, False)
        elif src == to:
            to_word = self._checkpoint(src, to_word, amount, False)
        elif src != empty(address):
            self._account[src] = self._checkpoint(src, self._account[src], amount, False)
        if dst == to:
            to_word = self._checkpoint(dst, to_word, amount, True)
        elif dst == owner:
            owner_word = self._checkpoint(dst, owner_word, amount, True)
        elif dst != empty(address):
            self._account[dst] = self._checkpoint(dst, self._account[dst], amount, True)
    self._account[owner] = owner_word
    self._account[to] = to_word


@internal
def _burn(owner: address, amount: uint256, from_custody: bool):
    word: uint256 = self._account[owner]
    self._check_custody(word, from_custody)
    assert word & _BALANCE_MASK >= amount, "compute_token: burn amount exceeds balance"
    # Cannot wrap: the balance bits hold at least `amount`.
    self._account[owner] = unsafe_sub(word, amount)
    # analysis: unchecked_subtraction: checked arithmetic; the balance check above bounds it anyway.
    self.totalSupply -= amount
    self._account[_SUPPLY_KEY] = self._checkpoint(_SUPPLY_KEY, self._account[_SUPPLY_KEY], amount, False)
    log IComputeToken.Transfer(sender=owner, receiver=empty(address), value=amount)
    self._move_votes(self._delegate_of(owner, word), empty(address), amount)


@internal
@pure
def _check_custody(word: uint256, from_custody: bool):
    """
    @dev Refuses to move a custody account's tokens except on its custodian's custody
         calls, which pass `from_custody` with an account derived from the custodian's
         address: opened (mode 3) or not yet (mode 0, holding what anyone sent to it).
         Nobody holds such an address's key, so it never delegates unless someone found
         a key colliding with it: then it was never the custodian's (mode 1 or 2).
    """
    mode: uint256 = word >> _MODE_SHIFT
    if from_custody:
        assert mode == _MODE_CUSTODY or mode == _MODE_NONE, "compute_token: custody account delegates"
    else:
        assert mode != _MODE_CUSTODY, "compute_token: custody account"


@internal
@pure
def _custody_account(custodian: address, key: address) -> address:
    digest: bytes32 = keccak256(abi_encode(_CUSTODY_TAG, custodian, key))
    return convert(convert(convert(digest, uint256) & convert(max_value(uint160), uint256), uint160), address)


@internal
def _mint(to: address, amount: uint256):
    supply: uint256 = self.totalSupply + amount
    assert supply <= MAX_SUPPLY, "compute_token: supply cap exceeded"
    self.totalSupply = supply
    self._account[_SUPPLY_KEY] = self._checkpoint(_SUPPLY_KEY, self._account[_SUPPLY_KEY], amount, True)
    # Cannot carry out of the balance bits: balance + amount <= supply <= MAX_SUPPLY.
    self._account[to] = unsafe_add(self._account[to], amount)
    log IComputeToken.Transfer(sender=empty(address), receiver=to, value=amount)
    self._move_votes(empty(address), self._delegate_of(to, self._account[to]), amount)


@internal
def _start_mint_epoch():
    cap: uint256 = self.totalSupply * MAX_INFLATION_BPS // constants.BPS
    self.mint_epoch_start = block.timestamp
    self.mint_epoch_cap = cap
    self.mint_epoch_minted = 0
    log IComputeToken.MintEpochStarted(start=block.timestamp, cap=cap)


@internal
def _approve(owner: address, spender: address, amount: uint256):
    assert spender != empty(address), "compute_token: approve to the zero address"
    self.allowance[owner][spender] = amount
    log IComputeToken.Approval(owner=owner, spender=spender, value=amount)


@internal
def _spend_allowance(owner: address, spender: address, amount: uint256):
    current: uint256 = self.allowance[owner][spender]
    if current != max_value(uint256):
        assert current >= amount, "compute_token: insufficient allowance"
        # Cannot wrap: current >= amount, asserted above.
        self._approve(owner, spender, unsafe_sub(current, amount))


@internal
def _use_nonce(owner: address) -> uint256:
    word: uint256 = self._account[owner]
    nonce: uint256 = (word >> _NONCE_SHIFT) & _U30
    assert nonce != _U30, "compute_token: nonce exhausted"
    # Cannot carry into the count bits: the nonce is below 2**30 - 1.
    self._account[owner] = unsafe_add(word, _NONCE_ONE)
    return nonce


@internal
@view
def _delegate_of(account: address, word: uint256) -> address:
    mode: uint256 = word >> _MODE_SHIFT
    if mode == _MODE_SELF:
        return account
    if mode == _MODE_OTHER:
        return self._delegatee[account]
    # Nobody, and a custody account carries no votes.
    return empty(address)


@internal
def _delegate(account: address, delegatee: address):
    word: uint256 = self._account[account]
    assert word >> _MODE_SHIFT != _MODE_CUSTODY, "compute_token: custody account"
    previous: address = self._delegate_of(account, word)
    mode: uint256 = _MODE_OTHER
    # analysis: missing_zero_address_check: ERC-5805: delegating to the zero address withdraws the votes.
    if delegatee == empty(address):
        mode = _MODE_NONE
    elif delegatee == account:
        mode = _MODE_SELF
    if mode == _MODE_OTHER:
        self._delegatee[account] = delegatee
    elif (word >> _MODE_SHIFT) & 3 == _MODE_OTHER:
        self._delegatee[account] = empty(address)
    assert account != self.vault or mode == _MODE_NONE, "compute_token: the vault cannot delegate"
    self._account[account] = (word & _MODE_CLEAR) | (mode << _MODE_SHIFT)
    log IComputeToken.DelegateChanged(delegator=account, from_delegate=previous, to_delegate=delegatee)
    units: uint256 = (word & _BALANCE_MASK) + ((word >> _BONDED_SHIFT) & _BALANCE_MASK)
    self._move_votes(previous, delegatee, units)


@internal
def _move_votes(src: address, dst: address, amount: uint256):
    """
    @dev Moves `amount` votes between delegatees whose account words nobody in
         this call holds in memory (delegation changes, mint, burn).
    """
    if src == dst or amount == 0:
        return
    if src != empty(address):
        self._account[src] = self._checkpoint(src, self._account[src], amount, False)
    if dst != empty(address):
        self._account[dst] = self._checkpoint(dst, self._account[dst], amount, True)


@internal
def _checkpoint(key: address, word: uint256, amount: uint256, increase: bool) -> uint256:
    """
    @dev Adds or subtracts `amount` to the latest checkpoint of `key`, whose account
         word is `word`: overwrites that checkpoint when it was written at this
         timestamp, appends one otherwise. Logs vote changes (not supply changes).
    @return uint256 `word` with the checkpoint count updated; the caller stores it.
    """
    n: uint256 = (word >> _COUNT_SHIFT) & constants.U32
    base: uint256 = convert(key, uint256) << 32
    previous: uint256 = 0
    last_time: uint256 = 0
    if n != 0:
        # Cannot wrap: n != 0 here.
        last: uint256 = self._checkpoints[base | unsafe_sub(n, 1)]
        previous = last & _VALUE_MASK
        last_time = last >> _VALUE_BITS
    new: uint256 = 0
    if increase:
        new = previous + amount
    else:
        new = previous - amount
    packed: uint256 = (block.timestamp << _VALUE_BITS) | new
    if key != _SUPPLY_KEY:
        log IComputeToken.DelegateVotesChanged(delegate=key, previous_votes=previous, new_votes=new)
    if n != 0 and last_time == block.timestamp:
        # Cannot wrap: n != 0 here.
        self._checkpoints[base | unsafe_sub(n, 1)] = packed
        return word
    self._checkpoints[base | n] = packed
    # Cannot carry into the mode bits: at most one checkpoint is appended per
    # distinct timestamp, so the count stays below 2**32 for 136 years.
    return unsafe_add(word, _COUNT_ONE)


@internal
@view
def _count(key: address) -> uint256:
    return (self._account[key] >> _COUNT_SHIFT) & constants.U32


@internal
@view
def _lookup(key: address, timepoint: uint256) -> uint256:
    """
    @dev Value of the last checkpoint of `key` at or before `timepoint`. The
         latest checkpoint is tried first, then the last sqrt(n) ones, then a
         binary search: recent timepoints (a proposal's snapshot) stay cheap.
    """
    n: uint256 = self._count(key)
    if n == 0:
        return 0
    base: uint256 = convert(key, uint256) << 32
    # Cannot wrap: n != 0 here.
    last: uint256 = self._checkpoints[base | unsafe_sub(n, 1)]
    if last >> _VALUE_BITS <= timepoint:
        return last & _VALUE_MASK
    # Invariant: the answer is checkpoint `low - 1` once low == high (none if low == 0).
    low: uint256 = 0
    # Cannot wrap: n != 0 here.
    high: uint256 = unsafe_sub(n, 1)
    if n > 5:
        # Cannot wrap: isqrt(n) < n for n > 5.
        mid: uint256 = unsafe_sub(n, isqrt(n))
        if self._checkpoints[base | mid] >> _VALUE_BITS > timepoint:
            high = mid
        else:
            # Cannot wrap: mid < n < 2**32.
            low = unsafe_add(mid, 1)
    # n < 2**32, so 32 halvings always finish the search.
    for _: uint256 in range(32):
        if low >= high:
            break
        # Cannot wrap: low and high are below 2**32.
        mid: uint256 = unsafe_add(low, high) >> 1
        if self._checkpoints[base | mid] >> _VALUE_BITS > timepoint:
            high = mid
        else:
            # Cannot wrap: mid < n < 2**32.
            low = unsafe_add(mid, 1)
    if low == 0:
        return 0
    # Cannot wrap: low != 0 here.
    return self._checkpoints[base | unsafe_sub(low, 1)] & _VALUE_MASK
