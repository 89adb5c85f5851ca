# pragma version ~=0.4.3
"""
@title HostileToken
@custom:contract-name HostileToken
@license GNU Affero General Public License v3.0 only
@notice Test fixture, never deployed by the protocol: an ERC20 that misbehaves the ways
        real tokens do, to test JobEscrow (any payment token) and Staking against them.
        `mode` picks the behaviour:
        - `NORMAL`: a plain ERC20;
        - `RETURNS_FALSE`: transfers move nothing and return False;
        - `TAKES_FEE`: transfers burn `FEE_BPS` of the amount on the way;
        - `REVERTS_ON_ZERO`: a zero-amount transfer reverts;
        - `REENTERS`: before moving tokens, calls `hook_target` with `hook_data` and
          records whether that inner call succeeded.
        It also answers the vault hooks Staking calls on the protocol token
        (`add_bonded`, `sub_bonded`, and the custody calls, with one custody account
        per caller and key: deposits and withdrawals move as `mode` says, burns
        plainly), so Staking and JobEscrow can hold it. Its custody views take the
        custodian, as ComputeToken's do.
"""

NORMAL: public(constant(uint256)) = 0
RETURNS_FALSE: public(constant(uint256)) = 1
TAKES_FEE: public(constant(uint256)) = 2
REVERTS_ON_ZERO: public(constant(uint256)) = 3
REENTERS: public(constant(uint256)) = 4
FEE_BPS: public(constant(uint256)) = 100

event Transfer:
    sender: indexed(address)
    receiver: indexed(address)
    value: uint256

event Approval:
    owner: indexed(address)
    spender: indexed(address)
    value: uint256

event ModeSet:
    mode: uint256

event HookSet:
    target: indexed(address)
    data: Bytes[512]

event BondedChanged:
    owner: indexed(address)
    bonded: uint256

event Reentered:
    target: indexed(address)
    success: bool
    response: Bytes[256]

# @notice The behaviour (see above); anyone may change it, it is a test fixture.
mode: public(uint256)
# @notice The call a `REENTERS` token makes during each transfer.
hook_target: public(address)
hook_data: public(Bytes[512])
# @notice How many reentrant calls were tried, and how many went through.
reentries: public(uint256)
reentries_succeeded: public(uint256)

balanceOf: public(HashMap[address, uint256])
allowance: public(HashMap[address, HashMap[address, uint256]])
totalSupply: public(uint256)
bonded_of: public(HashMap[address, uint256])


@deploy
def __init__(holder: address, supply: uint256):
    """
    @notice Mints `supply` to `holder`.
    @param holder Receiver of the whole supply.
    @param supply Amount in wei.
    """
    self.balanceOf[holder] = supply
    self.totalSupply = supply
    log Transfer(sender=empty(address), receiver=holder, value=supply)


@external
def set_mode(new_mode: uint256):
    """
    @notice Switches the behaviour.
    @param new_mode One of the mode constants.
    """
    assert new_mode <= REENTERS, "hostile_token: unknown mode"
    self.mode = new_mode
    log ModeSet(mode=new_mode)


@external
def set_hook(target: address, data: Bytes[512]):
    """
    @notice Sets the call a `REENTERS` token makes during each transfer.
    @param target Contract to call back into.
    @param data Calldata of the call.
    """
    self.hook_target = target
    self.hook_data = data
    log HookSet(target=target, data=data)


@external
def call(target: address, data: Bytes[512]) -> Bytes[256]:
    """
    @notice Makes a call as this token contract, outside any transfer: how tests give the
            token an escrow balance or a stake of its own, and show that the call the hook
            makes succeeds when it is not reentrant.
    @param target Contract to call.
    @param data Calldata.
    @return Bytes[256] The call's return data.
    """
    return raw_call(target, data, max_outsize=256)


@external
def approve(spender: address, amount: uint256) -> bool:
    """
    @notice Sets `spender`'s allowance over the caller's tokens.
    @param spender The spender.
    @param amount Allowance in wei.
    @return bool True.
    """
    self.allowance[msg.sender][spender] = amount
    log Approval(owner=msg.sender, spender=spender, value=amount)
    return True


@external
def transfer(receiver: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` from the caller, as `mode` says.
    @param receiver The receiver.
    @param amount Amount in wei.
    @return bool False in `RETURNS_FALSE` mode, else True.
    """
    return self._transfer(msg.sender, receiver, amount)


@external
def transferFrom(owner: address, receiver: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` from `owner` on its allowance, as `mode` says.
    @param owner The payer.
    @param receiver The receiver.
    @param amount Amount in wei.
    @return bool False in `RETURNS_FALSE` mode, else True.
    """
    if self.mode != RETURNS_FALSE:
        allowed: uint256 = self.allowance[owner][msg.sender]
        if allowed != max_value(uint256):
            assert allowed >= amount, "hostile_token: allowance exceeded"
            self.allowance[owner][msg.sender] = allowed - amount
    return self._transfer(owner, receiver, amount)


@external
def burn(amount: uint256):
    """
    @notice Destroys `amount` of the caller's tokens.
    @param amount Amount in wei.
    """
    self.balanceOf[msg.sender] -= amount
    self.totalSupply -= amount
    log Transfer(sender=msg.sender, receiver=empty(address), value=amount)


@external
@view
def custody_account(custodian: address, key: address) -> address:
    """
    @notice The custody account of `custodian` under `key`.
    @param custodian Any caller of the `custody_*` functions.
    @param key The custodian's key.
    @return address The account.
    """
    return self._custody_account(custodian, key)


@external
@view
def is_custody_account(account: address) -> bool:
    """
    @notice Always False: this fixture does not mark its custody accounts.
    @param account The account.
    @return bool False.
    """
    return False


@external
@view
def custody_balance(custodian: address, key: address) -> uint256:
    """
    @notice Tokens in `custodian`'s custody account `key`.
    @param custodian Any caller of the `custody_*` functions.
    @param key The custodian's key.
    @return uint256 Its balance.
    """
    return self.balanceOf[self._custody_account(custodian, key)]


@external
def custody_deposit(owner: address, key: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` from `owner`, on its allowance to the caller, into the
            caller's custody account `key`, as `mode` says.
    @param owner The payer.
    @param key The caller's key.
    @param amount Amount in wei.
    @return bool False in `RETURNS_FALSE` mode, else True.
    """
    if self.mode != RETURNS_FALSE:
        allowed: uint256 = self.allowance[owner][msg.sender]
        if allowed != max_value(uint256):
            assert allowed >= amount, "hostile_token: allowance exceeded"
            self.allowance[owner][msg.sender] = allowed - amount
    return self._transfer(owner, self._custody_account(msg.sender, key), amount)


@external
def custody_withdraw(key: address, receiver: address, amount: uint256) -> bool:
    """
    @notice Moves `amount` out of the caller's custody account `key`, as `mode` says;
            False, moving nothing, when the account holds less.
    @param key The caller's key.
    @param receiver The receiver.
    @param amount Amount in wei.
    @return bool False in `RETURNS_FALSE` mode, else True.
    """
    account: address = self._custody_account(msg.sender, key)
    if self.balanceOf[account] < amount:
        return False
    return self._transfer(account, receiver, amount)


@external
def custody_burn(key: address, amount: uint256):
    """
    @notice Destroys `amount` held in the caller's custody account `key`.
    @param key The caller's key.
    @param amount Amount in wei.
    """
    account: address = self._custody_account(msg.sender, key)
    self.balanceOf[account] -= amount
    self.totalSupply -= amount
    log Transfer(sender=account, receiver=empty(address), value=amount)


@external
def add_bonded(owner: address, amount: uint256):
    """
    @notice Staking's vault hook: counts `amount` as bonded for `owner`.
    @param owner The staker.
    @param amount Amount in wei.
    """
    self.bonded_of[owner] += amount
    log BondedChanged(owner=owner, bonded=self.bonded_of[owner])


@external
def sub_bonded(owner: address, amount: uint256):
    """
    @notice Staking's vault hook: stops counting `amount` as bonded for `owner`.
    @param owner The staker.
    @param amount Amount in wei.
    """
    self.bonded_of[owner] -= amount
    log BondedChanged(owner=owner, bonded=self.bonded_of[owner])


@internal
@pure
def _custody_account(custodian: address, key: address) -> address:
    digest: uint256 = convert(keccak256(abi_encode(custodian, key)), uint256)
    return convert(convert(digest & convert(max_value(uint160), uint256), uint160), address)


@internal
def _transfer(sender: address, receiver: address, amount: uint256) -> bool:
    mode: uint256 = self.mode
    if mode == RETURNS_FALSE:
        return False
    if mode == REVERTS_ON_ZERO:
        assert amount != 0, "hostile_token: zero transfer"
    if mode == REENTERS and self.hook_target != empty(address):
        self.reentries += 1
        success: bool = False
        response: Bytes[256] = b""
        success, response = raw_call(
            self.hook_target, self.hook_data, max_outsize=256, revert_on_failure=False
        )
        if success:
            self.reentries_succeeded += 1
        log Reentered(target=self.hook_target, success=success, response=response)
    fee: uint256 = amount * FEE_BPS // 10_000 if mode == TAKES_FEE else 0
    self.balanceOf[sender] -= amount
    self.balanceOf[receiver] += amount - fee
    self.totalSupply -= fee
    log Transfer(sender=sender, receiver=receiver, value=amount - fee)
    return True
