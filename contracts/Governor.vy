# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title Governor
@custom:contract-name Governor
@license GNU Affero General Public License v3.0 only
@notice Token holders govern ComputeShare. Proposals are lists of calls that the
        Timelock runs after a delay; votes are ComputeToken's ERC-5805 votes at the
        proposal's snapshot (timestamp clock), which include tokens bonded in Staking.
        The external interface follows OpenZeppelin's Governor (with GovernorStorage,
        GovernorCountingSimple, GovernorVotesQuorumFraction, GovernorPreventLateQuorum
        and GovernorTimelockControl) where the concepts match, so governance
        front-ends and scripts can read it.

        - A proposal's id is `hashProposal(targets, values, calldatas, descriptionHash)`,
          exactly as OpenZeppelin computes it. Actions are not stored: `ProposalCreated`
          carries them, and `queue`, `execute` and `cancel` take them again.
        - A description ending in `#proposer=0x<address>` may only be proposed by that
          address (OpenZeppelin's answer to front-running a proposal into its id and
          cancelling it, CVE-2023-34234).
        - The proposal threshold is checked at `clock() - 1`; a proposer has at most one
          live (not yet final) proposal.
        - The quorum fraction is checkpointed: a proposal's quorum is the fraction in force
          at its snapshot, so a later change cannot revive or kill it (OpenZeppelin
          CVE-2022-31198), and `quorum(timepoint)` answers for any past time.
        - A vote that first reaches quorum within `LATE_QUORUM_EXTENSION` of the deadline
          moves the deadline to that far from now; quorum is reached only once, so this
          happens at most once.
        - `Executed` is recorded before the call into the timelock.
        - The guardian, appointed by the DAO until an expiry, may cancel any proposal that
          is not final (a queued one included), except one that only replaces guardians
          of this system: the DAO can always replace it within one proposal cycle. It
          cannot move funds or call anything. Such a proposal's every action sends no
          ether and calls exactly `set_guardian(address,uint256)` on this contract or on
          a contract the DAO registered (`set_guardianship_contract`), naming a guardian
          other than that contract's current one; anything else beside it, or instead of
          it, leaves the proposal cancellable.
        - A queued proposal's window (eta and expiry) is the timelock's, fixed when it is
          queued: a later delay or grace-period change neither revives nor extends it.
        - ERC-165: answers for IGovernor (OpenZeppelin 5.x, with and without
          `getProposalId`) and ERC-165. The params variants of voting take params and
          ignore them, as GovernorCountingSimple does.
        - Every parameter has hard bounds in this contract; only the timelock sets them.
          `set_parameter` and `set_guardian` are `@reentrant` on purpose: the timelock
          calls them while `execute` holds the lock, and both check the caller first.

        Storage per proposal: one word holds snapshot, deadline, for-votes, flags, the
        late-quorum extension and the proposal's sequential number, so a vote for it
        reads and writes one proposal word; against and abstain votes share a second
        word; proposer, eta and expiry a third. A voter's account word holds its ballot
        nonce and its receipts for a run of 128 proposal numbers (older runs move to
        a word of their own), so a voter pays for a new storage word once, not once per
        vote, and a signed vote creates no nonce word of its own.
"""

# Static analysis (vyper-guard, `make analyze`), contract-wide:
# analysis: missing_nonreentrant: `# pragma nonreentrancy on` makes every external function nonreentrant (tests/test_hostile_tokens.py: a token calling back is refused).
# analysis: timestamp_dependence: windows, deadlines and expiries last minutes to days; the seconds a block producer can shift a timestamp do not change who may act.
# analysis: shadowed_state_variable: the flagged assignments in `__init__` set immutables; there is no local variable.

from interfaces import IComputeToken
from interfaces import IGovernor
from interfaces import ITimelock
from snekmate.utils import eip712_domain_separator
from contracts.modules import governed
from contracts.modules import guardianship
from contracts.modules import signatures
from contracts.modules import constants

implements: IGovernor

initializes: eip712_domain_separator
initializes: governed
initializes: guardianship

exports: (
    eip712_domain_separator.eip712Domain,
    governed.parameter,
    governed.parameter_bounds,
    guardianship.guardian,
    guardianship.guardian_expiry,
    guardianship.MAX_GUARDIAN_TERM,
)


# Parameter keys (see `parameter_bounds`).
VOTING_DELAY: public(constant(uint256)) = 0
VOTING_PERIOD: public(constant(uint256)) = 1
PROPOSAL_THRESHOLD: public(constant(uint256)) = 2
QUORUM_BPS: public(constant(uint256)) = 3
LATE_QUORUM_EXTENSION: public(constant(uint256)) = 4
_PARAMETER_COUNT: constant(uint256) = 5

_LOW: constant(DynArray[uint256, governed.MAX_KEYS]) = [1, constants.DAY, constants.TOKEN, 100, 3600]
_HIGH: constant(DynArray[uint256, governed.MAX_KEYS]) = [7 * constants.DAY, 30 * constants.DAY, 10_000_000 * constants.TOKEN, 5_000, 7 * constants.DAY]
_DEFAULT: constant(DynArray[uint256, governed.MAX_KEYS]) = [constants.DAY, 5 * constants.DAY, 100_000 * constants.TOKEN, 400, constants.DAY]

# @notice Most actions one proposal may hold (the timelock's bound).
MAX_ACTIONS: public(constant(uint256)) = 10
# @notice Longest calldata of one action.
MAX_CALLDATA: public(constant(uint256)) = 1024
# @notice Longest description, vote reason and vote params.
MAX_DESCRIPTION: public(constant(uint256)) = 2048
MAX_REASON: public(constant(uint256)) = 512
MAX_PARAMS: public(constant(uint256)) = 512
# @notice EIP-712 types of votes by signature (OpenZeppelin 5's).
BALLOT_TYPEHASH: public(constant(bytes32)) = keccak256(
    "Ballot(uint256 proposalId,uint8 support,address voter,uint256 nonce)"
)
EXTENDED_BALLOT_TYPEHASH: public(constant(bytes32)) = keccak256(
    "ExtendedBallot(uint256 proposalId,uint8 support,address voter,uint256 nonce,string reason,bytes params)"
)

# OpenZeppelin's `IGovernor.ProposalState` numbering.
STATE_PENDING: public(constant(uint8)) = 0
STATE_ACTIVE: public(constant(uint8)) = 1
STATE_CANCELED: public(constant(uint8)) = 2
STATE_DEFEATED: public(constant(uint8)) = 3
STATE_SUCCEEDED: public(constant(uint8)) = 4
STATE_QUEUED: public(constant(uint8)) = 5
STATE_EXPIRED: public(constant(uint8)) = 6
STATE_EXECUTED: public(constant(uint8)) = 7

_AGAINST: constant(uint8) = 0
_FOR: constant(uint8) = 1
_ABSTAIN: constant(uint8) = 2

# ERC-165 ids: ERC-165 itself; OpenZeppelin 5.x IGovernor (the XOR of its 27 function
# selectors, tests/test_governor_compat.py recomputes it); and the same without
# `getProposalId` (OpenZeppelin 5.0), which OpenZeppelin's Governor also answers for.
_ERC165_ID: constant(bytes4) = 0x01ffc9a7
_IGOVERNOR_ID: constant(bytes4) = 0xcdbdfcee
_IGOVERNOR_V50_ID: constant(bytes4) = 0x65455a86

# Proposal word:
# | bits     | field                      | width |
# | -------- | -------------------------- | ----- |
# | 0..47    | snapshot                   | 48    |
# | 48..95   | deadline                   | 48    |
# | 96..191  | for-votes                  | 96    |
# | 192..199 | flags (_CANCELED, ...)     | 8     |
# | 200..223 | late-quorum extension (s)  | 24    |
# | 224..255 | sequential number, from 1  | 32    |
_DEADLINE_SHIFT: constant(uint256) = 48
_FOR_SHIFT: constant(uint256) = 96
_EXTENSION_SHIFT: constant(uint256) = 200
_NUMBER_SHIFT: constant(uint256) = 224
_CANCELED: constant(uint256) = 1 << 192
_QUEUED: constant(uint256) = 2 << 192
_EXECUTED: constant(uint256) = 4 << 192
_EXTENDED: constant(uint256) = 8 << 192
_DEADLINE_CLEAR: constant(uint256) = ~(constants.U48 << 48)
_FOR_CLEAR: constant(uint256) = ~(constants.U96 << 96)
# Tally word: against | abstain << 96. Meta word: proposer | eta << 160 | expiry << 208.
_ABSTAIN_SHIFT: constant(uint256) = 96
_ETA_SHIFT: constant(uint256) = 160
_EXPIRY_SHIFT: constant(uint256) = 208
# Account word:
# | bits     | field                                                        | width |
# | -------- | ------------------------------------------------------------ | ----- |
# | 0..127   | receipts of proposal numbers run * 128 .. run * 128 + 127    | 128   |
# | 128..191 | run (the voter's latest)                                     | 64    |
# | 192..255 | ballot nonce                                                 | 64    |
_RUN_BITS: constant(uint256) = 7
_RUN_SHIFT: constant(uint256) = 128
_NONCE_SHIFT: constant(uint256) = 192
_RECEIPTS_MASK: constant(uint256) = 2**128 - 1
_RECEIPT_INDEX: constant(uint256) = 127
# Settings word: a packed copy of the four parameters `propose` reads, rewritten by
# `set_parameter` whenever one of them changes (`governed` keeps the values and bounds):
# voting delay | voting period << 32 | late-quorum extension << 64 | threshold << 96.
# Every bound fits: 7 days and 30 days below 2**32, 10M tokens below 2**160.
_PERIOD_SHIFT: constant(uint256) = 32
_SETTINGS_EXTENSION_SHIFT: constant(uint256) = 64
_THRESHOLD_SHIFT: constant(uint256) = 96
# Quorum checkpoint: timepoint | numerator << 48.
_NUMERATOR_SHIFT: constant(uint256) = 48
_SET_GUARDIAN: constant(Bytes[4]) = method_id("set_guardian(address,uint256)", output_type=Bytes[4])
# Selector and two ABI words: a longer or shorter calldata is not a plain guardian change.
_SET_GUARDIAN_LENGTH: constant(uint256) = 68
_GUARDIAN: constant(Bytes[4]) = method_id("guardian()", output_type=Bytes[4])
# Gas for reading a registered contract's `guardian()` (one cold storage read, ~2,400).
_GUARDIAN_READ_GAS: constant(uint256) = 30_000
_PROPOSER_MARKER: constant(Bytes[10]) = b"#proposer="
_SUFFIX: constant(uint256) = 52


# @notice The votes token (ComputeToken).
TOKEN: public(immutable(address))
# @notice Runs succeeded proposals and owns the protocol.
TIMELOCK: public(immutable(address))

# @notice Number of proposals ever made (OpenZeppelin GovernorStorage's name); each
#         proposal's sequential number runs from 1 to it.
proposalCount: public(uint256)

_proposals: HashMap[uint256, uint256]
_tallies: HashMap[uint256, uint256]
_meta: HashMap[uint256, uint256]
_latest: HashMap[address, uint256]
_accounts: HashMap[address, uint256]
# Receipts of a voter's earlier runs of 128 proposal numbers, by run.
_old_receipts: HashMap[address, HashMap[uint256, uint256]]
_quorum_checkpoints: HashMap[uint256, uint256]
_quorum_checkpoint_count: uint256
_settings: uint256
# @notice Contracts of this system, besides this one, whose `set_guardian` a proposal may
#         call without the guardian being able to cancel it (the DAO registers them).
guardianship_contract: public(HashMap[address, bool])



@deploy
def __init__(token: IComputeToken, timelock: ITimelock):
    """
    @notice Deploys the governor over `token`'s votes, executing through `timelock`,
            with default parameters.
    @param token ComputeToken.
    @param timelock The Timelock that will name this contract its governor.
    """
    assert token.address != empty(address), "governor: zero token"
    assert timelock.address != empty(address), "governor: zero timelock"
    eip712_domain_separator.__init__("ComputeShare Governor", "1")
    TOKEN = token.address
    TIMELOCK = timelock.address
    governed.__init__(_LOW, _HIGH, _DEFAULT)
    self._checkpoint_quorum(governed._get(QUORUM_BPS))
    self._pack_settings()


# ---------------------------------------------------------------- proposals


@external
def propose(
    targets: DynArray[address, MAX_ACTIONS],
    values: DynArray[uint256, MAX_ACTIONS],
    calldatas: DynArray[Bytes[MAX_CALLDATA], MAX_ACTIONS],
    description: String[MAX_DESCRIPTION],
) -> uint256:
    """
    @notice Proposes that the timelock make these calls. The caller needs
            `PROPOSAL_THRESHOLD` votes at `clock() - 1` and no other live proposal; a
            description ending in `#proposer=0x<address>` only that address may propose.
    @param targets Contracts to call, 1 to `MAX_ACTIONS`.
    @param values Wei to send with each call, from the timelock.
    @param calldatas Calldata of each call.
    @param description What the proposal does and why.
    @return uint256 The proposal id, `hashProposal(targets, values, calldatas,
            keccak256(description))`.
    """
    count: uint256 = len(targets)
    assert count != 0, "governor: empty proposal"
    assert len(values) == count and len(calldatas) == count, "governor: invalid proposal length"
    assert self._is_valid_description_for_proposer(msg.sender, description), "governor: restricted proposer"
    settings: uint256 = self._settings
    # analysis: cei_violation: a view of the protocol token's past votes, fixed at deploy.
    votes: uint256 = staticcall IComputeToken(TOKEN).getPastVotes(msg.sender, block.timestamp - 1)
    assert votes >= settings >> _THRESHOLD_SHIFT, "governor: proposer votes below threshold"
    latest: uint256 = self._latest[msg.sender]
    if latest != 0:
        assert self._is_final(self._state(latest)), "governor: proposer has a live proposal"

    proposal_id: uint256 = self._hash_proposal(targets, values, calldatas, keccak256(description))
    assert self._proposals[proposal_id] == 0, "governor: proposal already exists"
    number: uint256 = self.proposalCount + 1
    self.proposalCount = number
    snapshot: uint256 = block.timestamp + (settings & constants.U32)
    deadline: uint256 = snapshot + ((settings >> _PERIOD_SHIFT) & constants.U32)
    self._proposals[proposal_id] = (
        snapshot
        | (deadline << _DEADLINE_SHIFT)
        | (((settings >> _SETTINGS_EXTENSION_SHIFT) & constants.U32) << _EXTENSION_SHIFT)
        | (number << _NUMBER_SHIFT)
    )
    self._meta[proposal_id] = convert(msg.sender, uint256)
    self._latest[msg.sender] = proposal_id
    empty_signatures: DynArray[String[1], MAX_ACTIONS] = []
    for i: uint256 in range(count, bound=MAX_ACTIONS):
        empty_signatures.append("")
    log IGovernor.ProposalCreated(
        proposalId=proposal_id,
        proposer=msg.sender,
        targets=targets,
        values=values,
        signatures=empty_signatures,
        calldatas=calldatas,
        voteStart=snapshot,
        voteEnd=deadline,
        description=description,
    )
    return proposal_id


@external
def queue(
    targets: DynArray[address, MAX_ACTIONS],
    values: DynArray[uint256, MAX_ACTIONS],
    calldatas: DynArray[Bytes[MAX_CALLDATA], MAX_ACTIONS],
    descriptionHash: bytes32,
) -> uint256:
    """
    @notice Queues a succeeded proposal in the timelock (its `scheduleBatch`, with this
            governor's salt). Anyone may call.
    @param targets The proposal's targets.
    @param values The proposal's values.
    @param calldatas The proposal's calldatas.
    @param descriptionHash keccak256 of the proposal's description.
    @return uint256 The proposal id.
    """
    proposal_id: uint256 = self._hash_proposal(targets, values, calldatas, descriptionHash)
    assert self._state(proposal_id) == STATE_SUCCEEDED, "governor: proposal not successful"
    self._proposals[proposal_id] |= _QUEUED
    eta: uint256 = 0
    expires_at: uint256 = 0
    # The timelock waits at least its minimum delay: zero asks for exactly that.
    eta, expires_at = extcall ITimelock(TIMELOCK).scheduleBatch(
        targets, values, calldatas, empty(bytes32), self._salt(descriptionHash), 0
    )
    # The window is the timelock's, fixed now: later changes never revive or extend it.
    self._meta[proposal_id] |= (eta << _ETA_SHIFT) | (expires_at << _EXPIRY_SHIFT)
    log IGovernor.ProposalQueued(proposalId=proposal_id, etaSeconds=eta)
    return proposal_id


@external
@payable
def execute(
    targets: DynArray[address, MAX_ACTIONS],
    values: DynArray[uint256, MAX_ACTIONS],
    calldatas: DynArray[Bytes[MAX_CALLDATA], MAX_ACTIONS],
    descriptionHash: bytes32,
) -> uint256:
    """
    @notice Executes a queued proposal through the timelock once its delay has passed
            and before its grace period ends (the timelock checks both). Anyone may call;
            ether sent along is forwarded to the timelock.
    @param targets The proposal's targets.
    @param values The proposal's values.
    @param calldatas The proposal's calldatas.
    @param descriptionHash keccak256 of the proposal's description.
    @return uint256 The proposal id.
    """
    proposal_id: uint256 = self._hash_proposal(targets, values, calldatas, descriptionHash)
    # Queued, and neither executed nor cancelled since. The timelock checks the time: it
    # rejects the call before the eta ("operation not ready") and after the grace period.
    word: uint256 = self._proposals[proposal_id]
    assert word & (_QUEUED | _EXECUTED | _CANCELED) == _QUEUED, "governor: proposal not queued"
    self._proposals[proposal_id] = word | _EXECUTED
    log IGovernor.ProposalExecuted(proposalId=proposal_id)
    # analysis: locked_ether: ether sent along is forwarded to the timelock in the next line; the Governor keeps none.
    extcall ITimelock(TIMELOCK).executeBatch(
        targets, values, calldatas, empty(bytes32), self._salt(descriptionHash), value=msg.value
    )
    return proposal_id


@external
def cancel(
    targets: DynArray[address, MAX_ACTIONS],
    values: DynArray[uint256, MAX_ACTIONS],
    calldatas: DynArray[Bytes[MAX_CALLDATA], MAX_ACTIONS],
    descriptionHash: bytes32,
) -> uint256:
    """
    @notice Cancels a proposal: its proposer while it is pending, or the guardian during
            its appointment at any time before the proposal is final (queued included),
            unless every action of the proposal replaces the guardian of this contract or
            of a registered one (`guardianship_contract`).
    @param targets The proposal's targets.
    @param values The proposal's values.
    @param calldatas The proposal's calldatas.
    @param descriptionHash keccak256 of the proposal's description.
    @return uint256 The proposal id.
    """
    proposal_id: uint256 = self._hash_proposal(targets, values, calldatas, descriptionHash)
    state: uint8 = self._state(proposal_id)
    if guardianship._is_active(msg.sender):
        assert not self._is_final(state), "governor: proposal is final"
        # The DAO can always replace its guardian: a guardian cannot cancel that.
        assert not self._only_changes_guardians(targets, values, calldatas), "governor: guardian cannot cancel a guardian change"
    else:
        assert msg.sender == convert(self._meta[proposal_id] & constants.ADDRESS_MASK, address), "governor: caller cannot cancel"
        assert state == STATE_PENDING, "governor: proposal not pending"
    self._proposals[proposal_id] |= _CANCELED
    log IGovernor.ProposalCanceled(proposalId=proposal_id)
    if state == STATE_QUEUED:
        operation: bytes32 = keccak256(
            abi_encode(targets, values, calldatas, empty(bytes32), self._salt(descriptionHash))
        )
        extcall ITimelock(TIMELOCK).cancel(operation)
    return proposal_id


# ---------------------------------------------------------------- votes


@external
def castVote(proposalId: uint256, support: uint8) -> uint256:
    """
    @notice Votes on an active proposal with the caller's votes at its snapshot.
    @param proposalId The proposal.
    @param support 0 against, 1 for, 2 abstain.
    @return uint256 The weight counted.
    """
    weight: uint256 = self._cast_vote(proposalId, msg.sender, support)
    log IGovernor.VoteCast(voter=msg.sender, proposalId=proposalId, support=support, weight=weight, reason="")
    return weight


@external
def castVoteWithReason(proposalId: uint256, support: uint8, reason: String[MAX_REASON]) -> uint256:
    """
    @notice Votes like `castVote`, with a reason emitted in `VoteCast`.
    @param proposalId The proposal.
    @param support 0 against, 1 for, 2 abstain.
    @param reason Free text.
    @return uint256 The weight counted.
    """
    weight: uint256 = self._cast_vote(proposalId, msg.sender, support)
    log IGovernor.VoteCast(voter=msg.sender, proposalId=proposalId, support=support, weight=weight, reason=reason)
    return weight


@external
def castVoteWithReasonAndParams(
    proposalId: uint256, support: uint8, reason: String[MAX_REASON], params: Bytes[MAX_PARAMS]
) -> uint256:
    """
    @notice Votes like `castVoteWithReason`; this counting mode ignores `params`, which
            are emitted in `VoteCastWithParams` when not empty.
    @param proposalId The proposal.
    @param support 0 against, 1 for, 2 abstain.
    @param reason Free text.
    @param params Extra data for other counting modules.
    @return uint256 The weight counted.
    """
    weight: uint256 = self._cast_vote(proposalId, msg.sender, support)
    self._log_vote(msg.sender, proposalId, support, weight, reason, params)
    return weight


@external
def castVoteBySig(proposalId: uint256, support: uint8, voter: address, signature: Bytes[65]) -> uint256:
    """
    @notice Casts `voter`'s vote from its EIP-712 `Ballot` signature, which binds the
            proposal, the choice, the voter and the voter's current nonce. Contract
            voters sign through EIP-1271.
    @param proposalId The proposal.
    @param support 0 against, 1 for, 2 abstain.
    @param voter The voter who signed.
    @param signature 65-byte ECDSA signature, or what the voter's EIP-1271 check takes.
    @return uint256 The weight counted.
    """
    nonce: uint256 = self._use_nonce(voter)
    digest: bytes32 = eip712_domain_separator._hash_typed_data_v4(
        keccak256(abi_encode(BALLOT_TYPEHASH, proposalId, support, voter, nonce))
    )
    assert signatures._is_valid(voter, digest, signature), "governor: invalid signature"
    weight: uint256 = self._cast_vote(proposalId, voter, support)
    log IGovernor.VoteCast(voter=voter, proposalId=proposalId, support=support, weight=weight, reason="")
    return weight


@external
def castVoteWithReasonAndParamsBySig(
    proposalId: uint256,
    support: uint8,
    voter: address,
    reason: String[MAX_REASON],
    params: Bytes[MAX_PARAMS],
    signature: Bytes[65],
) -> uint256:
    """
    @notice Casts `voter`'s vote from its EIP-712 `ExtendedBallot` signature, which also
            binds the reason and the params.
    @param proposalId The proposal.
    @param support 0 against, 1 for, 2 abstain.
    @param voter The voter who signed.
    @param reason Free text.
    @param params Extra data for other counting modules (ignored here).
    @param signature 65-byte ECDSA signature, or what the voter's EIP-1271 check takes.
    @return uint256 The weight counted.
    """
    nonce: uint256 = self._use_nonce(voter)
    digest: bytes32 = eip712_domain_separator._hash_typed_data_v4(
        keccak256(
            abi_encode(
                EXTENDED_BALLOT_TYPEHASH, proposalId, support, voter, nonce, keccak256(reason), keccak256(params)
            )
        )
    )
    assert signatures._is_valid(voter, digest, signature), "governor: invalid signature"
    weight: uint256 = self._cast_vote(proposalId, voter, support)
    self._log_vote(voter, proposalId, support, weight, reason, params)
    return weight


# ---------------------------------------------------------------- DAO only


@external
@reentrant
def set_parameter(key: uint256, new_value: uint256):
    """
    @notice Sets parameter `key` within its hard bounds. Timelock only. A new quorum
            fraction applies to proposals whose snapshot is now or later.
    @param key One of the parameter keys (`VOTING_DELAY`, ...).
    @param new_value The value, within `parameter_bounds(key)`.
    """
    assert msg.sender == TIMELOCK, "governor: caller is not the timelock"
    governed._set_checked(key, new_value)
    if key == QUORUM_BPS:
        self._checkpoint_quorum(new_value)
    else:
        self._pack_settings()


@external
@reentrant
def set_guardian(new_guardian: address, expiry: uint256):
    """
    @notice Appoints (or, with the zero address, removes) the guardian until `expiry`.
            Timelock only.
    @param new_guardian The guardian.
    @param expiry End of the appointment, at most `MAX_GUARDIAN_TERM` from now.
    """
    # analysis: unprotected_state_change, missing_zero_address_check: timelock only, by the next line; the zero address removes the guardian.
    assert msg.sender == TIMELOCK, "governor: caller is not the timelock"
    guardianship._appoint(new_guardian, expiry)


@external
@reentrant
def set_guardianship_contract(target: address, registered: bool):
    """
    @notice Registers (or unregisters) `target` as a contract of this system with a
            guardian: a proposal that only replaces guardians of this contract and of
            registered ones cannot be cancelled by the guardian. Timelock only; the
            proposal that registers is itself cancellable. Register only contracts the
            timelock owns whose `set_guardian(address,uint256)` does nothing else.
    @param target The contract, e.g. JobEscrow.
    @param registered Whether it is registered from now on.
    """
    # analysis: unprotected_state_change: timelock only, by the next line.
    assert msg.sender == TIMELOCK, "governor: caller is not the timelock"
    assert target != empty(address), "governor: zero address"
    self.guardianship_contract[target] = registered
    log IGovernor.GuardianshipContractSet(target=target, registered=registered)


# ---------------------------------------------------------------- views (OpenZeppelin names)


@external
@pure
def supportsInterface(interfaceId: bytes4) -> bool:
    """
    @notice ERC-165: whether this contract implements `interfaceId`.
    @param interfaceId An ERC-165 interface id.
    @return bool True for ERC-165 and IGovernor (OpenZeppelin 5.x and 5.0).
    """
    return interfaceId == _ERC165_ID or interfaceId == _IGOVERNOR_ID or interfaceId == _IGOVERNOR_V50_ID


@external
@pure
def hashProposal(
    targets: DynArray[address, MAX_ACTIONS],
    values: DynArray[uint256, MAX_ACTIONS],
    calldatas: DynArray[Bytes[MAX_CALLDATA], MAX_ACTIONS],
    descriptionHash: bytes32,
) -> uint256:
    """
    @notice The id of the proposal these actions and description form.
    @param targets Contracts to call.
    @param values Wei sent with each call.
    @param calldatas Calldata of each call.
    @param descriptionHash keccak256 of the description.
    @return uint256 keccak256 of their ABI encoding.
    """
    return self._hash_proposal(targets, values, calldatas, descriptionHash)


@external
@view
def getProposalId(
    targets: DynArray[address, MAX_ACTIONS],
    values: DynArray[uint256, MAX_ACTIONS],
    calldatas: DynArray[Bytes[MAX_CALLDATA], MAX_ACTIONS],
    descriptionHash: bytes32,
) -> uint256:
    """
    @notice The id a proposal of these actions and description has (`hashProposal`).
    @param targets Contracts to call.
    @param values Wei sent with each call.
    @param calldatas Calldata of each call.
    @param descriptionHash keccak256 of the description.
    @return uint256 The proposal id.
    """
    return self._hash_proposal(targets, values, calldatas, descriptionHash)


@external
@pure
def name() -> String[21]:
    """
    @notice Name of this governor (also its EIP-712 domain name).
    @return String "ComputeShare Governor".
    """
    return "ComputeShare Governor"


@external
@pure
def version() -> String[1]:
    """
    @notice Version of this governor (also its EIP-712 domain version).
    @return String "1".
    """
    return "1"


@external
@pure
def COUNTING_MODE() -> String[32]:
    """
    @notice How votes are counted: for / against / abstain; for and abstain count
            toward quorum.
    @return String "support=bravo&quorum=for,abstain".
    """
    return "support=bravo&quorum=for,abstain"


@external
@view
def clock() -> uint48:
    """
    @notice ERC-6372 clock: the block timestamp, as the token's.
    @return uint48 Current timepoint.
    """
    return convert(block.timestamp, uint48)


@external
@pure
def CLOCK_MODE() -> String[14]:
    """
    @notice ERC-6372 clock description.
    @return String "mode=timestamp".
    """
    return "mode=timestamp"


@external
@view
def votingDelay() -> uint256:
    """
    @notice Seconds from proposal to snapshot.
    @return uint256 The voting delay.
    """
    return governed._get(VOTING_DELAY)


@external
@view
def votingPeriod() -> uint256:
    """
    @notice Seconds from snapshot to deadline.
    @return uint256 The voting period.
    """
    return governed._get(VOTING_PERIOD)


@external
@view
def proposalThreshold() -> uint256:
    """
    @notice Votes needed to propose.
    @return uint256 The threshold in wei of votes.
    """
    return governed._get(PROPOSAL_THRESHOLD)


@external
@view
def lateQuorumVoteExtension() -> uint48:
    """
    @notice How far a vote that first reaches quorum late pushes the deadline.
    @return uint48 Seconds.
    """
    return convert(governed._get(LATE_QUORUM_EXTENSION), uint48)


@external
@view
def quorumNumerator(timepoint: uint256 = max_value(uint256)) -> uint256:
    """
    @notice Quorum fraction, over `quorumDenominator()`, in force at `timepoint` (now
            when omitted).
    @param timepoint A timestamp.
    @return uint256 Basis points of the supply.
    """
    return self._quorum_numerator(timepoint)


@external
@pure
def quorumDenominator() -> uint256:
    """
    @notice Denominator of the quorum fraction.
    @return uint256 10,000.
    """
    return constants.BPS


@external
@view
def quorum(timepoint: uint256) -> uint256:
    """
    @notice Quorum at `timepoint`: the fraction then in force of the supply then.
    @param timepoint A past timestamp.
    @return uint256 Votes needed (for + abstain).
    """
    return self._quorum(timepoint)


@external
@view
def proposalQuorum(proposalId: uint256) -> uint256:
    """
    @notice Quorum of `proposalId`: `quorum` at its snapshot.
    @param proposalId A proposal whose snapshot has passed.
    @return uint256 Votes needed (for + abstain).
    """
    return self._quorum(self._proposal(proposalId) & constants.U48)


@external
@view
def getVotes(account: address, timepoint: uint256) -> uint256:
    """
    @notice Votes of `account` at `timepoint` (balance and bonded stake delegated to it).
    @param account The voter.
    @param timepoint A past timestamp.
    @return uint256 Its votes.
    """
    return staticcall IComputeToken(TOKEN).getPastVotes(account, timepoint)


@external
@view
def getVotesWithParams(account: address, timepoint: uint256, params: Bytes[MAX_PARAMS]) -> uint256:
    """
    @notice `getVotes`; this counting mode ignores `params`.
    @param account The voter.
    @param timepoint A past timestamp.
    @param params Ignored.
    @return uint256 Its votes.
    """
    return staticcall IComputeToken(TOKEN).getPastVotes(account, timepoint)


@external
@view
def state(proposalId: uint256) -> uint8:
    """
    @notice State of a proposal, numbered as OpenZeppelin's `ProposalState`.
    @param proposalId The proposal.
    @return uint8 Pending 0, Active 1, Canceled 2, Defeated 3, Succeeded 4, Queued 5,
            Expired 6, Executed 7.
    """
    return self._state(proposalId)


@external
@view
def proposalSnapshot(proposalId: uint256) -> uint256:
    """
    @notice Timepoint whose votes count for `proposalId`; voting opens after it.
    @param proposalId The proposal.
    @return uint256 The snapshot timestamp (zero for an unknown id).
    """
    return self._proposals[proposalId] & constants.U48


@external
@view
def proposalDeadline(proposalId: uint256) -> uint256:
    """
    @notice Last timepoint at which `proposalId` takes votes (after any extension).
    @param proposalId The proposal.
    @return uint256 The deadline timestamp (zero for an unknown id).
    """
    return (self._proposals[proposalId] >> _DEADLINE_SHIFT) & constants.U48


@external
@view
def proposalProposer(proposalId: uint256) -> address:
    """
    @notice Who made `proposalId`.
    @param proposalId The proposal.
    @return address The proposer (zero for an unknown id).
    """
    return convert(self._meta[proposalId] & constants.ADDRESS_MASK, address)


@external
@view
def proposalEta(proposalId: uint256) -> uint256:
    """
    @notice When a queued proposal may execute.
    @param proposalId The proposal.
    @return uint256 The timestamp, zero if not queued.
    """
    return (self._meta[proposalId] >> _ETA_SHIFT) & constants.U48


@external
@view
def proposalExpiry(proposalId: uint256) -> uint256:
    """
    @notice When a queued proposal expires unexecuted, fixed when it was queued.
    @param proposalId The proposal.
    @return uint256 The timestamp, zero if not queued.
    """
    return self._meta[proposalId] >> _EXPIRY_SHIFT


@external
@view
def proposalNumber(proposalId: uint256) -> uint256:
    """
    @notice The sequential number of `proposalId`, from 1 (zero for an unknown id).
    @param proposalId The proposal.
    @return uint256 Its number.
    """
    return self._proposals[proposalId] >> _NUMBER_SHIFT


@external
@pure
def proposalNeedsQueuing(proposalId: uint256) -> bool:
    """
    @notice Every proposal goes through the timelock.
    @param proposalId The proposal.
    @return bool True.
    """
    return True


@external
@view
def proposalVotes(proposalId: uint256) -> (uint256, uint256, uint256):
    """
    @notice Tallies of `proposalId`.
    @param proposalId The proposal.
    @return uint256 Against votes.
    @return uint256 For votes.
    @return uint256 Abstain votes.
    """
    word: uint256 = self._proposals[proposalId]
    tally: uint256 = self._tallies[proposalId]
    return tally & constants.U96, (word >> _FOR_SHIFT) & constants.U96, tally >> _ABSTAIN_SHIFT


@external
@view
def hasVoted(proposalId: uint256, account: address) -> bool:
    """
    @notice Whether `account` voted on `proposalId`.
    @param proposalId The proposal.
    @param account The voter.
    @return bool True once it voted.
    """
    number: uint256 = self._proposals[proposalId] >> _NUMBER_SHIFT
    if number == 0:
        return False
    bit: uint256 = 1 << (number & _RECEIPT_INDEX)
    word: uint256 = self._accounts[account]
    run: uint256 = number >> _RUN_BITS
    if run == (word >> _RUN_SHIFT) & constants.U64:
        return word & bit != 0
    return self._old_receipts[account][run] & bit != 0


@external
@view
def nonces(owner: address) -> uint256:
    """
    @notice Next nonce `owner` must sign into a ballot.
    @param owner The voter.
    @return uint256 Its nonce.
    """
    return self._accounts[owner] >> _NONCE_SHIFT


@external
@view
def latestProposalId(proposer: address) -> uint256:
    """
    @notice Most recent proposal of `proposer`.
    @param proposer The proposer.
    @return uint256 Its id, zero if none.
    """
    return self._latest[proposer]


@external
@view
def timelock() -> address:
    """
    @notice The timelock that executes proposals.
    @return address The timelock.
    """
    return TIMELOCK


@external
@view
def token() -> address:
    """
    @notice The votes token.
    @return address ComputeToken.
    """
    return TOKEN


# ---------------------------------------------------------------- internal


@internal
def _cast_vote(proposal_id: uint256, voter: address, support: uint8) -> uint256:
    """
    @dev Records `voter`'s vote and adds its weight to the tally; the caller logs it.
    """
    word: uint256 = self._proposals[proposal_id]
    snapshot: uint256 = word & constants.U48
    deadline: uint256 = (word >> _DEADLINE_SHIFT) & constants.U48
    assert (
        word != 0 and word & _CANCELED == 0 and block.timestamp > snapshot and block.timestamp <= deadline
    ), "governor: vote not currently active"
    assert support <= _ABSTAIN, "governor: invalid vote type"
    # The usual case inline: the proposal is in the voter's latest run of numbers.
    number: uint256 = word >> _NUMBER_SHIFT
    bit: uint256 = 1 << (number & _RECEIPT_INDEX)
    account: uint256 = self._accounts[voter]
    if number >> _RUN_BITS == (account >> _RUN_SHIFT) & constants.U64:
        assert account & bit == 0, "governor: vote already cast"
        self._accounts[voter] = account | bit
    else:
        self._record_receipt_in_another_run(voter, number, account)
    # analysis: cei_violation: a view of the protocol token's past votes, fixed at deploy.
    weight: uint256 = staticcall IComputeToken(TOKEN).getPastVotes(voter, snapshot)

    for_votes: uint256 = (word >> _FOR_SHIFT) & constants.U96
    if support == _FOR:
        for_votes += weight
        assert for_votes <= constants.U96, "governor: tally overflow"
        word = (word & _FOR_CLEAR) | (for_votes << _FOR_SHIFT)
    else:
        tally: uint256 = self._tallies[proposal_id]
        against: uint256 = tally & constants.U96
        abstain: uint256 = tally >> _ABSTAIN_SHIFT
        if support == _AGAINST:
            against += weight
        else:
            abstain += weight
        assert against <= constants.U96 and abstain <= constants.U96, "governor: tally overflow"
        self._tallies[proposal_id] = against | (abstain << _ABSTAIN_SHIFT)

    # Late quorum: only a for or abstain vote in the last `LATE_QUORUM_EXTENSION` seconds
    # can be the one that first reaches quorum and move the deadline.
    extension: uint256 = (word >> _EXTENSION_SHIFT) & constants.U24
    if support != _AGAINST and weight != 0 and block.timestamp + extension > deadline:
        counted: uint256 = for_votes + (self._tallies[proposal_id] >> _ABSTAIN_SHIFT)
        quorum: uint256 = self._quorum(snapshot)
        if counted >= quorum and counted - weight < quorum:
            deadline = block.timestamp + extension
            word = (word & _DEADLINE_CLEAR) | (deadline << _DEADLINE_SHIFT) | _EXTENDED
            log IGovernor.ProposalExtended(proposalId=proposal_id, extendedDeadline=convert(deadline, uint64))
    if support == _FOR or word & _EXTENDED != 0:
        self._proposals[proposal_id] = word
    return weight


@internal
def _log_vote(
    voter: address, proposal_id: uint256, support: uint8, weight: uint256, reason: String[MAX_REASON], params: Bytes[MAX_PARAMS]
):
    """
    @dev OpenZeppelin's rule: `VoteCast` without params, `VoteCastWithParams` with them.
    """
    if len(params) == 0:
        log IGovernor.VoteCast(voter=voter, proposalId=proposal_id, support=support, weight=weight, reason=reason)
    else:
        log IGovernor.VoteCastWithParams(
            voter=voter, proposalId=proposal_id, support=support, weight=weight, reason=reason, params=params
        )


@internal
def _record_receipt_in_another_run(voter: address, number: uint256, word: uint256):
    """
    @dev Marks proposal number `number`, outside the run of 128 numbers `voter`'s account
         word `word` holds, voted; reverts if it already was. Moving to a later run first
         keeps the earlier run's receipts in a word of their own.
    """
    bit: uint256 = 1 << (number & _RECEIPT_INDEX)
    run: uint256 = number >> _RUN_BITS
    current: uint256 = (word >> _RUN_SHIFT) & constants.U64
    if run > current:
        receipts: uint256 = word & _RECEIPTS_MASK
        if receipts != 0:
            self._old_receipts[voter][current] = receipts
        self._accounts[voter] = ((word >> _NONCE_SHIFT) << _NONCE_SHIFT) | (run << _RUN_SHIFT) | bit
    else:
        receipts: uint256 = self._old_receipts[voter][run]
        assert receipts & bit == 0, "governor: vote already cast"
        self._old_receipts[voter][run] = receipts | bit


@internal
def _use_nonce(voter: address) -> uint256:
    word: uint256 = self._accounts[voter]
    # The nonce has 64 bits; 2**64 signed votes are out of reach, and the sum would
    # revert rather than wrap.
    self._accounts[voter] = word + (1 << _NONCE_SHIFT)
    return word >> _NONCE_SHIFT


@internal
@view
def _proposal(proposal_id: uint256) -> uint256:
    word: uint256 = self._proposals[proposal_id]
    assert word != 0, "governor: unknown proposal"
    return word


@internal
def _pack_settings():
    self._settings = (
        governed._get(VOTING_DELAY)
        | (governed._get(VOTING_PERIOD) << _PERIOD_SHIFT)
        | (governed._get(LATE_QUORUM_EXTENSION) << _SETTINGS_EXTENSION_SHIFT)
        | (governed._get(PROPOSAL_THRESHOLD) << _THRESHOLD_SHIFT)
    )


@internal
def _checkpoint_quorum(numerator: uint256):
    """
    @dev Records `numerator` as the quorum fraction from now on (one checkpoint per
         second: a second change in the same second replaces the first).
    """
    count: uint256 = self._quorum_checkpoint_count
    checkpoint: uint256 = block.timestamp | (numerator << _NUMERATOR_SHIFT)
    if count != 0 and self._quorum_checkpoints[count - 1] & constants.U48 == block.timestamp:
        self._quorum_checkpoints[count - 1] = checkpoint
    else:
        self._quorum_checkpoints[count] = checkpoint
        self._quorum_checkpoint_count = count + 1


@internal
@view
def _quorum_numerator(timepoint: uint256) -> uint256:
    """
    @dev The numerator of the newest checkpoint at or before `timepoint` (zero before
         the first). The newest is checked first: the usual case is one read.
    """
    count: uint256 = self._quorum_checkpoint_count
    latest: uint256 = self._quorum_checkpoints[count - 1]
    if latest & constants.U48 <= timepoint:
        return latest >> _NUMERATOR_SHIFT
    # Binary search for the first checkpoint after `timepoint` among 0 .. count - 1;
    # 64 halvings cover any count.
    low: uint256 = 0
    high: uint256 = count - 1
    for _: uint256 in range(64):
        if low >= high:
            break
        middle: uint256 = (low + high) // 2
        if self._quorum_checkpoints[middle] & constants.U48 > timepoint:
            high = middle
        else:
            low = middle + 1
    if low == 0:
        return 0
    return self._quorum_checkpoints[low - 1] >> _NUMERATOR_SHIFT


@internal
@view
def _quorum(timepoint: uint256) -> uint256:
    supply: uint256 = staticcall IComputeToken(TOKEN).getPastTotalSupply(timepoint)
    return supply * self._quorum_numerator(timepoint) // constants.BPS


@internal
@view
def _state(proposal_id: uint256) -> uint8:
    word: uint256 = self._proposal(proposal_id)
    if word & _EXECUTED != 0:
        return STATE_EXECUTED
    if word & _CANCELED != 0:
        return STATE_CANCELED
    if block.timestamp <= word & constants.U48:
        return STATE_PENDING
    if block.timestamp <= (word >> _DEADLINE_SHIFT) & constants.U48:
        return STATE_ACTIVE
    if word & _QUEUED != 0:
        # Only a succeeded proposal is ever queued.
        if block.timestamp >= self._meta[proposal_id] >> _EXPIRY_SHIFT:
            return STATE_EXPIRED
        return STATE_QUEUED
    for_votes: uint256 = (word >> _FOR_SHIFT) & constants.U96
    tally: uint256 = self._tallies[proposal_id]
    if for_votes <= tally & constants.U96 or for_votes + (tally >> _ABSTAIN_SHIFT) < self._quorum(word & constants.U48):
        return STATE_DEFEATED
    return STATE_SUCCEEDED


@internal
@pure
def _is_final(state: uint8) -> bool:
    return (
        state == STATE_CANCELED or state == STATE_DEFEATED or state == STATE_EXPIRED or state == STATE_EXECUTED
    )


@internal
@pure
def _hash_proposal(
    targets: DynArray[address, MAX_ACTIONS],
    values: DynArray[uint256, MAX_ACTIONS],
    calldatas: DynArray[Bytes[MAX_CALLDATA], MAX_ACTIONS],
    description_hash: bytes32,
) -> uint256:
    return convert(keccak256(abi_encode(targets, values, calldatas, description_hash)), uint256)


@internal
@view
def _salt(description_hash: bytes32) -> bytes32:
    """
    @dev The timelock salt of a proposal, as OpenZeppelin's GovernorTimelockControl:
         this governor's address in the high 20 bytes, XOR the description hash.
    """
    return convert(convert(self, uint256) << 96 ^ convert(description_hash, uint256), bytes32)


@internal
@view
def _only_changes_guardians(
    targets: DynArray[address, MAX_ACTIONS],
    values: DynArray[uint256, MAX_ACTIONS],
    calldatas: DynArray[Bytes[MAX_CALLDATA], MAX_ACTIONS],
) -> bool:
    """
    @dev Whether every action replaces a guardian of this system: it sends no ether, its
         calldata is exactly `set_guardian(address,uint256)` with a clean address word,
         its target is this contract or a registered one, and the guardian it names is not
         the target's current one. One guardian read per action; a registered target that
         does not answer `guardian()` with an address (no code, a revert, anything else)
         fails the check rather than the cancel.
    """
    for i: uint256 in range(len(targets), bound=MAX_ACTIONS):
        calldata: Bytes[MAX_CALLDATA] = calldatas[i]
        if values[i] != 0 or len(calldata) != _SET_GUARDIAN_LENGTH or slice(calldata, 0, 4) != _SET_GUARDIAN:
            return False
        new_guardian: uint256 = convert(slice(calldata, 4, 32), uint256)
        if new_guardian > constants.ADDRESS_MASK:
            return False
        target: address = targets[i]
        current: uint256 = 0
        if target == self:
            current = convert(guardianship.guardian, uint256)
        elif self.guardianship_contract[target]:
            success: bool = False
            response: Bytes[32] = b""
            # analysis: unchecked_call: the outcome is checked right after the call; any failure keeps the proposal cancellable.
            # analysis: send_in_loop: static reads of `guardian()`, at most MAX_ACTIONS with 30,000 gas each; nothing is sent.
            success, response = raw_call(
                target,
                _GUARDIAN,
                max_outsize=32,
                gas=_GUARDIAN_READ_GAS,
                is_static_call=True,
                revert_on_failure=False,
            )
            if not success or len(response) != 32:
                return False
            current = convert(response, uint256)
            if current > constants.ADDRESS_MASK:
                return False
        else:
            return False
        if new_guardian == current:
            return False
    return True


@internal
@pure
def _is_valid_description_for_proposer(proposer: address, description: String[MAX_DESCRIPTION]) -> bool:
    """
    @dev OpenZeppelin's rule: a description ending in `#proposer=0x` and 40 hex digits
         (either case) may only be proposed by that address; any other description by
         anyone.
    """
    length: uint256 = len(description)
    if length < _SUFFIX:
        return True
    suffix: Bytes[_SUFFIX] = slice(convert(description, Bytes[MAX_DESCRIPTION]), length - _SUFFIX, _SUFFIX)
    if slice(suffix, 0, 10) != _PROPOSER_MARKER or slice(suffix, 10, 2) != b"0x":
        return True
    value: uint256 = 0
    for i: uint256 in range(12, _SUFFIX):
        char: uint256 = convert(slice(suffix, i, 1), uint256)
        digit: uint256 = 0
        if char >= 48 and char <= 57:
            digit = char - 48
        elif char >= 97 and char <= 102:
            digit = char - 87
        elif char >= 65 and char <= 70:
            digit = char - 55
        else:
            return True
        value = (value << 4) | digit
    return value == convert(proposer, uint256)
