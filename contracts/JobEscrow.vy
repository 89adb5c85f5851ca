# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title Job escrow
@custom:contract-name JobEscrow
@license GNU Affero General Public License v3.0 only
@notice Clients escrow payment for compute jobs; providers accept replicas with
        eligible devices (locking collateral in Staking), commit to a result, then
        reveal it. With k > 1 replicas, a result the revealed replicas agree on, when
        they are a strict majority of k, settles at once; dissent or too few reveals
        go to the arbiter, whose ruling pays the replicas it shows right and slashes
        the others (no ruling in time: no one is paid or slashed for a result). With
        k = 1 the result is optimistic and the client may dispute it within a challenge
        window, posting a bond, for the arbiter to rule on. Disputes and rulings go
        through JobDisputes, which checks who may dispute (the client) and rule (an
        arbiter), holds the bonds, and calls this contract's one entry point for them,
        `arbitrate` (its ARBITER role).
        Settlement pays providers with the accepted result (minus the protocol fee),
        refunds the client for every replica not paid, slashes no-shows and replicas
        shown wrong from their own stake, and shares a bounded part of what the
        provider lost between the client and the caller. Payments are pulled: everyone withdraws their balance. A provider's
        income is credited to its balance here, less its delegators' cut, which
        Staking takes into the pool in the same settlement (staked token only).

        Jobs: a job's terms (client, client nonce, spec hash, requirements, price,
        collateral, replicas, deadline, and the reveal window, challenge window and fee
        fixed when it was posted) are emitted in `JobPosted` and never stored; the job id
        is `keccak256(abi_encode(terms))`, and every later call passes the terms back,
        checked against the id. No global counter. What changes is one storage word per
        job: status, replica counts and the end of the current phase. A k = 1 job keeps
        its one replica in that word too, as a 192-bit hash binding the provider, its
        device and its commitment (then its result); the calls that need the replica
        (`commit`, `reveal`, settlement) take it back the same way. A k > 1 replica is
        two words (provider/status/device nonce, commitment then result). Each device's
        record (running jobs, then jobs completed, failed and slashed: its reputation)
        is one word, which settlement moves in the same write that frees the device's
        capacity, and which also accrues the protocol fees of the jobs it completed:
        settlement writes no word another device's settlement writes (no fee pool), and
        anyone sweeps devices' fees to the treasury in batches (`sweep_fees`).

        Direct matching of a provider's signed offer lives in OfferBook, which calls
        `post_matched` (MATCHER role).

        Commitments bind the committer: `keccak256(abi_encode(job_id, provider,
        result_hash, salt))`, so a replica cannot copy another's commitment.

        The guardian may pause new jobs and acceptances until a time it sets (bounded);
        withdrawals, refunds, commits, reveals, disputes, rulings and settlement always work.
"""

# Static analysis (vyper-guard, `make analyze`), contract-wide:
# analysis: missing_nonreentrant: `# pragma nonreentrancy on` makes every external function nonreentrant (tests/test_hostile_tokens.py: a token calling back is refused).
# analysis: timestamp_dependence: windows, deadlines and expiries last minutes to days; the seconds a block producer can shift a timestamp do not change who may act.
# analysis: shadowed_state_variable: the flagged assignments in `__init__` set immutables; there is no local variable.

from ethereum.ercs import IERC20
from interfaces import IAccess
from interfaces import IComputeToken
from interfaces import IDeviceRegistry
from interfaces import IJobEscrow
from interfaces import IStaking
from snekmate.auth import ownable
from contracts.modules import access
from contracts.modules import governed
from contracts.modules import guardianship
from contracts.modules import job_layout
from contracts.modules import constants

implements: IJobEscrow

initializes: ownable
initializes: access[ownable := ownable]
initializes: guardianship

exports: (
    ownable.owner,
    ownable.transfer_ownership,
    access.roles,
    access.set_roles,
    guardianship.guardian,
    guardianship.guardian_expiry,
    guardianship.guardian_pause_used,
    guardianship.MAX_GUARDIAN_PAUSE,
)
# `renounce_ownership` is intentionally not exported: parameters and roles must stay governable.


# Parameter keys, bounds and defaults (`job_layout`, shared with JobEscrowView).
PROTOCOL_FEE_BPS: constant(uint256) = job_layout.PROTOCOL_FEE_BPS
REVEAL_WINDOW: constant(uint256) = job_layout.REVEAL_WINDOW
CHALLENGE_WINDOW: constant(uint256) = job_layout.CHALLENGE_WINDOW
RULING_PERIOD: constant(uint256) = job_layout.RULING_PERIOD
DISPUTE_BOND_BPS: constant(uint256) = job_layout.DISPUTE_BOND_BPS
KEEPER_BOUNTY_BPS: constant(uint256) = job_layout.KEEPER_BOUNTY_BPS
MAX_JOB_DURATION: constant(uint256) = job_layout.MAX_JOB_DURATION
MIN_COLLATERAL_BPS: constant(uint256) = job_layout.MIN_COLLATERAL_BPS
RECORD_MIN_FEE: constant(uint256) = job_layout.RECORD_MIN_FEE
_PARAMETER_COUNT: constant(uint256) = job_layout.PARAMETER_COUNT
_HIGH: constant(uint256[_PARAMETER_COUNT]) = job_layout.HIGH
_DEFAULT: constant(uint256[_PARAMETER_COUNT]) = job_layout.DEFAULTS


MAX_REPLICAS: constant(uint256) = job_layout.MAX_REPLICAS
MAX_SPEC_LENGTH: constant(uint256) = job_layout.MAX_SPEC_LENGTH
MAX_PAUSE: constant(uint256) = job_layout.MAX_PAUSE
_SHARDS: constant(uint256) = job_layout.ESCROW_SHARDS
# @notice Most devices one `sweep_fees` call takes.
MAX_SWEEP: public(constant(uint256)) = 64
# Parameters are packed 24 bits each (every bound is below 2**24) with the end of a pause
# (40 bits) above them, so a job step reads all its settings in one storage load.
_PARAM_BITS: constant(uint256) = 24
_PAUSE_SHIFT: constant(uint256) = 216
_PARAMS_MASK: constant(uint256) = 2**216 - 1
# A device's record, one word (`job_layout`): running jobs, jobs completed, failed and
# slashed (32 bits each), then its protocol fees not yet swept (bits 128..255).
# Settlement moves a job from running to its outcome and adds its fee in one write, and
# the word never returns to zero once used, so each later acceptance rewrites a live word
# (2,900 gas) instead of creating one (20,000).

# Job and replica status (`job_layout`; JobEscrowView exports them).
_OPEN: constant(uint256) = job_layout.STATUS_OPEN
_DISPUTED: constant(uint256) = job_layout.STATUS_DISPUTED
_FINALIZED: constant(uint256) = job_layout.STATUS_FINALIZED
_CANCELLED: constant(uint256) = job_layout.STATUS_CANCELLED
_ACCEPTED: constant(uint256) = job_layout.REPLICA_ACCEPTED
_COMMITTED: constant(uint256) = job_layout.REPLICA_COMMITTED
_REVEALED: constant(uint256) = job_layout.REPLICA_REVEALED

# Settlement outcomes of a replica (also the order of the counters in a device record).
_OUTCOME_COMPLETED: constant(uint8) = 0
_OUTCOME_FAILED: constant(uint8) = 1
_OUTCOME_SLASHED: constant(uint8) = 2

# Ruling of a dispute (`arbitrate`): none yet (opens one), for the client, for the
# provider (k > 1: the result `replica.digest` names).
_RULING_NONE: constant(uint256) = 0
_RULING_CLIENT: constant(uint256) = 1
_RULING_PROVIDER: constant(uint256) = 2

_BALANCE_MASK: constant(uint256) = 2**192 - 1
_ACCOUNT_NONCE_AT: constant(uint256) = 192
_NONCE_ONE: constant(uint256) = 1 << _ACCOUNT_NONCE_AT
# The job word is laid out in `job_layout` and read and written only through its
# per-field helpers. A k > 1 replica's word and a device's record (tables also there) are
# decoded in place with `job_layout`'s offsets: their helpers would cost about 300 bytes of
# runtime code, more than this contract's 4 KiB margin leaves (test_modules).


# @notice The payment token.
TOKEN: public(immutable(address))
# @notice Staking, where collateral is locked and slashed and income credited.
STAKING: public(immutable(address))
# @notice The device registry.
REGISTRY: public(immutable(address))
# @notice True when the payment token is the staked token: the delegators' cut of a
#         provider's income then goes to its pool in Staking (the rest to the provider's
#         balance here), so delegators share it.
PAYS_INTO_POOL: public(immutable(bool))
_STAKE_TOKEN: immutable(address)

# @notice Receives swept protocol fees (the DAO timelock).
treasury: public(address)

# parameter `key` at bit 24 * key | paused until << _PAUSE_SHIFT (216)
_config: uint256
# balance (192 bits) | job nonce << 192
_accounts: HashMap[address, uint256]
_jobs: HashMap[bytes32, uint256]
_leader: HashMap[bytes32, bytes32]
_assignments: HashMap[bytes32, HashMap[uint256, uint256]]
_commitments: HashMap[bytes32, HashMap[uint256, bytes32]]
_votes: HashMap[bytes32, HashMap[bytes32, uint256]]
# running | completed << 32 | failed << 64 | slashed << 96 | fees << 128 (`device_record`)
_devices: HashMap[bytes32, uint256]



@deploy
def __init__(token: address, staking: IStaking, registry: IDeviceRegistry, treasury: address):
    """
    @notice Deploys the escrow with default parameters; the deployer is the owner until
            it hands ownership to the DAO timelock.
    @param token The payment token (the protocol token, or e.g. a stablecoin).
    @param staking Staking; this contract needs its LOCKER and SLASHER roles.
    @param registry DeviceRegistry, which says whether a device may take a job.
    @param treasury Receiver of protocol fees.
    """
    ownable.__init__()
    assert token != empty(address), "job_escrow: zero token"
    assert staking.address != empty(address) and registry.address != empty(address), "job_escrow: zero address"
    assert treasury != empty(address), "job_escrow: zero treasury"
    # A dispute must be settled before staked collateral could thaw out of reach.
    assert _HIGH[CHALLENGE_WINDOW] + _HIGH[RULING_PERIOD] <= staticcall staking.MIN_THAWING_PERIOD(), "job_escrow: dispute outlives thawing"
    TOKEN = token
    STAKING = staking.address
    REGISTRY = registry.address
    _STAKE_TOKEN = staticcall staking.TOKEN()
    PAYS_INTO_POOL = token == _STAKE_TOKEN
    self.treasury = treasury
    for key: uint256 in range(_PARAMETER_COUNT):
        assert _HIGH[key] <= constants.U24, "job_escrow: bound too wide to pack"
        self._set_parameter(key, _DEFAULT[key])
    if PAYS_INTO_POOL:
        assert extcall IERC20(token).approve(staking.address, max_value(uint256), default_return_value=True), "job_escrow: approve failed"


# ---------------------------------------------------------------- balances


@external
def deposit(amount: uint256) -> uint256:
    """
    @notice Moves `amount` payment tokens from the caller into its escrow balance.
            The balance grows by what actually arrived (fee-on-transfer tokens).
    @param amount Amount to transfer in.
    @return uint256 Amount credited.
    """
    # analysis: missing_input_validation: `_deposit` refuses zero and credits only what arrived.
    return self._deposit(msg.sender, amount)


@external
def withdraw(amount: uint256):
    """
    @notice Pays `amount` of the caller's unlocked escrow balance out. Never paused.
            Paying in the staked token, the tokens come from the caller's own deposit
            shard first (see `withdraw_from_shard`).
    @param amount Amount in wei.
    """
    # analysis: missing_input_validation: `_withdraw` refuses zero and more than the caller's balance.
    self._withdraw(amount, job_layout.deposit_shard(msg.sender))


@external
def withdraw_from_shard(amount: uint256, shard: uint256):
    """
    @notice As `withdraw`, taking the tokens from deposit shard `shard` first (then the
            shards after it, in turn): a provider paid by clients of other shards names
            one that holds the amount (`JobEscrowView.shard_balances`), so withdrawals
            of different users write different balance words. Never paused.
    @param amount Amount in wei.
    @param shard A deposit shard, taken modulo `JobEscrowView.ESCROW_SHARDS`.
    """
    # analysis: missing_input_validation: `_withdraw` refuses zero and more than the caller's balance; any shard number names a shard.
    self._withdraw(amount, shard % _SHARDS)


@external
@reentrant
def fund(provider: address, amount: uint256):
    """
    @notice Makes this contract's own token balance hold at least `amount`, from its
            deposit shards, so Staking can collect the delegators' income this
            contract holds for `provider`'s pool (it pulls from that balance). STAKING
            only; moves tokens between this contract's own accounts, so its books do
            not change. Reentrant: Staking collects inside a slash this contract's
            settlement asks for.
    @param provider The pool whose income is collected; its shard is tried first.
    @param amount Amount in wei.
    """
    # analysis: missing_input_validation: STAKING only, asking for income its books say this contract holds; moving tokens between this contract's own accounts changes no books.
    if msg.sender != STAKING:
        self._revert("job_escrow: caller is not staking")
    if PAYS_INTO_POOL:
        # Books never exceed holdings (every credit came from a deposit or a slash), so
        # the shards hold what this balance lacks (were it not, Staking's pull from it
        # would revert).
        held: uint256 = staticcall IERC20(TOKEN).balanceOf(self)
        if held < amount:
            extcall IComputeToken(TOKEN).custody_gather(job_layout.deposit_shard(provider), _SHARDS, self, amount - held)


# ---------------------------------------------------------------- clients


@external
def post(
    spec: Bytes[4096],
    requirements: IJobEscrow.Requirements,
    price_per_replica: uint256,
    replicas: uint256,
    deadline: uint256,
    collateral_per_replica: uint256,
) -> bytes32:
    """
    @notice Posts a job paid from the caller's escrow balance: `price_per_replica *
            replicas` is locked until settlement. `JobPosted` emits the job's terms,
            which every later call on the job passes back.
    @param spec The job spec (workload and input); emitted, only its hash is stored.
    @param requirements What a device must offer; `compute_seconds` prices the job for
           devices: a device matches when its price per second times `compute_seconds`
           is at most `price_per_replica`.
    @param price_per_replica Payment per replica, not zero.
    @param replicas 1 (optimistic) to `MAX_REPLICAS` (majority of replicas).
    @param deadline Commit deadline, in the future and within `MAX_JOB_DURATION`.
    @param collateral_per_replica Stake each provider locks, at least
           `MIN_COLLATERAL_BPS` of the price.
    @return bytes32 The job id.
    """
    job_id: bytes32 = empty(bytes32)
    terms: IJobEscrow.Terms = empty(IJobEscrow.Terms)
    job_id, terms = self._post(msg.sender, spec, requirements, price_per_replica, replicas, deadline, collateral_per_replica, True)
    return job_id


@external
def post_with_permit(
    spec: Bytes[4096],
    requirements: IJobEscrow.Requirements,
    price_per_replica: uint256,
    replicas: uint256,
    deadline: uint256,
    collateral_per_replica: uint256,
    permit_deadline: uint256,
    v: uint8,
    r: bytes32,
    s: bytes32,
) -> bytes32:
    """
    @notice `post`, paid in the same transaction from the caller's wallet through an
            EIP-2612 permit for exactly the job's payment.
    @param spec See `post`.
    @param requirements See `post`.
    @param price_per_replica See `post`.
    @param replicas See `post`.
    @param deadline See `post`.
    @param collateral_per_replica See `post`.
    @param permit_deadline The permit's deadline.
    @param v Permit signature v.
    @param r Permit signature r.
    @param s Permit signature s.
    @return bytes32 The job id.
    """
    amount: uint256 = price_per_replica * replicas
    # analysis: unsafe_raw_call: a failed permit is expected (front-run copies); `_deposit` then fails on the allowance if there is none.
    # Anyone can copy a permit from the mempool and submit it first; the allowance is then
    # already in place, so a failed permit is an error only when there is no allowance.
    permitted: bool = raw_call(
        TOKEN,
        abi_encode(
            msg.sender,
            self,
            amount,
            permit_deadline,
            v,
            r,
            s,
            method_id=method_id("permit(address,address,uint256,uint256,uint8,bytes32,bytes32)"),
        ),
        revert_on_failure=False,
    )
    if not permitted:
        if staticcall IERC20(TOKEN).allowance(msg.sender, self) < amount:
            self._revert("job_escrow: permit failed and no allowance")
    self._deposit(msg.sender, amount)
    job_id: bytes32 = empty(bytes32)
    terms: IJobEscrow.Terms = empty(IJobEscrow.Terms)
    job_id, terms = self._post(msg.sender, spec, requirements, price_per_replica, replicas, deadline, collateral_per_replica, True)
    return job_id


@external
def post_matched(
    client: address,
    spec: Bytes[4096],
    deadline: uint256,
    provider: address,
    device_nonce: uint256,
    price: uint256,
    collateral: uint256,
) -> bytes32:
    """
    @notice Posts a k = 1 job for `client`, already accepted by `provider`'s device at
            the price and collateral of the provider's signed offer. MATCHER only (the
            OfferBook, which checked the offer's signature and that `client` is the
            caller the offer names, so nobody can charge another client).
    @param client The client who pays, from its escrow balance.
    @param spec The job spec.
    @param deadline Commit deadline.
    @param provider The provider that signed the offer.
    @param device_nonce Its device.
    @param price The offered price.
    @param collateral The offered collateral.
    @return bytes32 The job id.
    """
    if IAccess.Role.MATCHER not in access.roles[msg.sender]:
        self._revert("job_escrow: caller is not a matcher")
    no_requirements: IJobEscrow.Requirements = empty(IJobEscrow.Requirements)
    job_id: bytes32 = empty(bytes32)
    terms: IJobEscrow.Terms = empty(IJobEscrow.Terms)
    job_id, terms = self._post(client, spec, no_requirements, price, 1, deadline, collateral, False)
    self._accept(job_id, terms, provider, device_nonce, False)
    return job_id


@external
def cancel(terms: IJobEscrow.Terms):
    """
    @notice Cancels a job of the caller that no provider has accepted; the whole
            payment returns to the caller's balance.
    @param terms The job's terms, as `JobPosted` emitted them.
    """
    job_id: bytes32 = empty(bytes32)
    word: uint256 = 0
    job_id, word = self._load(terms)
    self._check_client(terms.client)
    self._check_open(word)
    if job_layout.accepted(word) != 0:
        self._revert("job_escrow: job already accepted")
    refund: uint256 = terms.price_per_replica * terms.replicas
    self._jobs[job_id] = job_layout.with_status(word, _CANCELLED)
    self._accounts[msg.sender] += refund
    log IJobEscrow.JobCancelled(job_id=job_id, client=msg.sender, refunded=refund)


# ---------------------------------------------------------------- providers


@external
def accept(terms: IJobEscrow.Terms, device_nonce: uint256) -> uint256:
    """
    @notice Takes the next replica of an open job with the caller's device number
            `device_nonce`, locking `collateral_per_replica` of the caller's free stake.
    @param terms The job's terms, as `JobPosted` emitted them.
    @param device_nonce The device's nonce in the registry (its id is keccak256(caller, nonce)).
    @return uint256 The replica slot, used to commit and reveal.
    """
    return self._accept(keccak256(abi_encode(terms)), terms, msg.sender, device_nonce, True)


@external
def commit(terms: IJobEscrow.Terms, slot: uint256, device_nonce: uint256, commitment: bytes32):
    """
    @notice Commits to a result before the deadline:
            `keccak256(abi_encode(job_id, provider, result_hash, salt))`.
    @param terms The job's terms.
    @param slot The caller's replica slot.
    @param device_nonce The device the caller accepted the replica with.
    @param commitment The commitment.
    """
    job_id: bytes32 = empty(bytes32)
    word: uint256 = 0
    job_id, word = self._load(terms)
    self._check_open(word)
    self._check_commit_deadline(terms.deadline)
    committed: uint256 = 1
    if terms.replicas == 1:
        replica_status: uint256 = job_layout.accepted(word)
        self._check_replica(slot == 0 and replica_status != 0)
        self._check_uncommitted(replica_status == _ACCEPTED)
        self._check_replica(job_layout.binds(word, msg.sender, device_nonce, empty(bytes32)))
        word = job_layout.with_binding(word, msg.sender, device_nonce, commitment)
        word = job_layout.add_accepted(word, 1)  # accepted -> committed
    else:
        assignment: uint256 = self._own_replica(job_id, slot, word, device_nonce)
        self._check_uncommitted(((assignment >> job_layout.ASSIGNMENT_STATUS_AT) & job_layout.U8) == _ACCEPTED)
        self._commitments[job_id][slot] = commitment
        self._assignments[job_id][slot] = assignment + (1 << job_layout.ASSIGNMENT_STATUS_AT)  # accepted -> committed
        committed = job_layout.committed(word) + 1
        word = job_layout.add_committed(word)
    if committed == terms.replicas:
        # Every replica committed: the reveal phase starts now.
        word = job_layout.with_phase_end(word, block.timestamp + terms.reveal_window)
    self._jobs[job_id] = word
    log IJobEscrow.ResultCommitted(job_id=job_id, provider=msg.sender, slot=slot, commitment=commitment)


@external
def reveal(terms: IJobEscrow.Terms, slot: uint256, device_nonce: uint256, result_hash: bytes32, salt: bytes32):
    """
    @notice Reveals the committed result, once every replica committed or the
            deadline passed, and before the reveal window closes.
    @param terms The job's terms.
    @param slot The caller's replica slot.
    @param device_nonce The device the caller accepted the replica with.
    @param result_hash The result hash committed to.
    @param salt The salt committed with it.
    """
    job_id: bytes32 = empty(bytes32)
    word: uint256 = 0
    job_id, word = self._load(terms)
    self._check_open(word)
    expected: bytes32 = keccak256(abi_encode(job_id, msg.sender, result_hash, salt))
    if terms.replicas == 1:
        # Only a committed replica can reveal, and then every replica has committed.
        self._check_committed(slot == 0 and job_layout.accepted(word) == _COMMITTED)
        self._check_reveal_open(block.timestamp < job_layout.phase_end(word))
        self._check_reveal(job_layout.binds(word, msg.sender, device_nonce, expected))
        word = job_layout.with_binding(word, msg.sender, device_nonce, result_hash)
        # committed -> revealed; optimistic: the challenge window opens, in the same write.
        word = job_layout.with_phase_end(job_layout.add_accepted(word, 1), block.timestamp + terms.challenge_window)
        self._result_in(msg.sender, device_nonce)
    else:
        assignment: uint256 = self._own_replica(job_id, slot, word, device_nonce)
        self._check_committed(((assignment >> job_layout.ASSIGNMENT_STATUS_AT) & job_layout.U8) == _COMMITTED)
        if not (job_layout.committed(word) == terms.replicas or block.timestamp >= terms.deadline):
            self._revert("job_escrow: reveal not open")
        self._check_reveal_open(block.timestamp < job_layout.phase_end(word))
        self._check_reveal(self._commitments[job_id][slot] == expected)
        self._commitments[job_id][slot] = result_hash
        self._assignments[job_id][slot] = assignment + (1 << job_layout.ASSIGNMENT_STATUS_AT)  # committed -> revealed
        word = job_layout.add_revealed(word)
        votes: uint256 = self._votes[job_id][result_hash] + 1
        self._votes[job_id][result_hash] = votes
        if votes > job_layout.leader_votes(word):
            word = job_layout.with_leader_votes(word, votes)
            self._leader[job_id] = result_hash
    self._jobs[job_id] = word
    log IJobEscrow.ResultRevealed(job_id=job_id, provider=msg.sender, slot=slot, result_hash=result_hash)


@external
def submit(terms: IJobEscrow.Terms, device_nonce: uint256, status: uint8, fuel: uint64, output_hash: bytes32, output: Bytes[4096]):
    """
    @notice Submits a k = 1 job's result directly, before the deadline: with no other
            replica to copy from, it needs no commit-reveal. The result is the run's
            status, the fuel it used and its output's hash; its hash,
            `keccak256(abi_encode(status, fuel, output_hash))`, is what the replica is
            bound to and a dispute is about. A short output travels in the
            `ResultSubmitted` event (empty when it is long or private: the provider serves
            it). The challenge window opens.
    @param terms The job's terms.
    @param device_nonce The device the caller accepted the replica with.
    @param status The run's status (0 ok, 1 trap, 2 out of fuel, 3 invalid).
    @param fuel The fuel the run used.
    @param output_hash keccak256 of the output.
    @param output The output itself, or empty.
    """
    job_id: bytes32 = empty(bytes32)
    word: uint256 = 0
    job_id, word = self._load(terms)
    self._check_open(word)
    self._check_commit_deadline(terms.deadline)
    self._check_replica(terms.replicas == 1 and job_layout.accepted(word) == _ACCEPTED and job_layout.binds(word, msg.sender, device_nonce, empty(bytes32)))
    if not (len(output) == 0 or keccak256(output) == output_hash):
        self._revert("job_escrow: output does not match its hash")
    result_hash: bytes32 = keccak256(abi_encode(status, fuel, output_hash))
    word = job_layout.with_binding(word, msg.sender, device_nonce, result_hash)
    # accepted -> revealed, and the challenge window opens, in the same write.
    word = job_layout.with_phase_end(job_layout.add_accepted(word, 2), block.timestamp + terms.challenge_window)
    self._jobs[job_id] = word
    self._result_in(msg.sender, device_nonce)
    log IJobEscrow.ResultRevealed(job_id=job_id, provider=msg.sender, slot=0, result_hash=result_hash)
    log IJobEscrow.ResultSubmitted(job_id=job_id, status=status, fuel=fuel, output_hash=output_hash, output=output)


# ---------------------------------------------------------------- settlement


@external
def finalize(terms: IJobEscrow.Terms, replica: IJobEscrow.Replica):
    """
    @notice Settles a job whose outcome is known: every replica revealed (k > 1), or
            the challenge window passed undisputed (k = 1), or a dispute's ruling
            period passed unruled (k = 1: the result then stands, and the client
            reclaims its bond from JobDisputes; k > 1: nobody is paid or slashed for a
            result), or the reveal window closed.
            A k > 1 job whose revealed replicas disagree, or are too few for a strict
            majority, is not settled but sent to the arbiter: it becomes disputed for
            `RULING_PERIOD`. Anyone may call; a caller that triggers slashing earns
            `KEEPER_BOUNTY_BPS` of the slash reward.
    @param terms The job's terms.
    @param replica For k = 1, its replica as the events show it (provider, device nonce,
           and the zero digest, the commitment or the result); ignored for k > 1.
    """
    job_id: bytes32 = empty(bytes32)
    word: uint256 = 0
    job_id, word = self._load(terms)
    status: uint256 = job_layout.status(word)
    if not (status == _OPEN or status == _DISPUTED):
        self._revert("job_escrow: job not open")
    # k = 1: the reveal window, then the challenge window or the ruling period.
    ready: bool = block.timestamp >= job_layout.phase_end(word)
    if terms.replicas > 1 and status == _OPEN and job_layout.revealed(word) == terms.replicas:
        ready = True
    if not ready:
        self._revert("job_escrow: not ready to settle")
    self._settle(job_id, word, terms, replica, _RULING_NONE, msg.sender)


@external
def expire(terms: IJobEscrow.Terms, replica: IJobEscrow.Replica):
    """
    @notice Settles a job once its reveal window has closed, whatever state it is in:
            the client is refunded for missing and failed replicas, providers that did
            not reveal are slashed, and the caller earns the keeper bounty. A k > 1 job
            whose revealed replicas disagree or are too few for a majority goes to the
            arbiter instead (see `finalize`).
    @param terms The job's terms.
    @param replica For k = 1, its replica (see `finalize`); ignored for k > 1.
    """
    job_id: bytes32 = empty(bytes32)
    word: uint256 = 0
    job_id, word = self._load(terms)
    self._check_open(word)
    # k = 1 and revealed: the phase is the challenge window; otherwise the reveal window.
    if block.timestamp < job_layout.phase_end(word):
        if terms.replicas == 1 and job_layout.accepted(word) == _REVEALED:
            self._revert("job_escrow: challenge window still open")
        self._revert("job_escrow: reveal window still open")
    self._settle(job_id, word, terms, replica, _RULING_NONE, msg.sender)


@external
def arbitrate(terms: IJobEscrow.Terms, replica: IJobEscrow.Replica, ruling: uint256, account: address, bond: uint256):
    """
    @notice JobDisputes' one entry point (ARBITER role: JobDisputes alone holds it), which
            checks who calls it and keeps the clients' dispute bonds. `ruling` zero opens
            the dispute of a k = 1 job's result by its client `account` (who locked `bond`
            in JobDisputes) within the challenge window: the arbiter then has
            `RULING_PERIOD`. Otherwise it settles a disputed job by the ruling of the
            arbiter `account` within the ruling period (`account` earns the keeper bounty).
            k = 1: for the client (1), the provider is slashed and the client refunded; for
            the provider (2), it is paid. k > 1 (replicas that revealed different results):
            the replicas that revealed `replica.digest`, the result the arbiter found right
            (a deterministic workload is re-run), are paid; the others are slashed.
    @param terms The job's terms.
    @param replica k = 1: its replica (see `finalize`). k > 1: only `digest` is read.
    @param ruling 0 opens a dispute, 1 rules for the client, 2 for the provider (k > 1: 2).
    @param account The disputing client, or the ruling arbiter.
    @param bond The client's bond (for `Disputed`); zero for a ruling.
    """
    if IAccess.Role.ARBITER not in access.roles[msg.sender]:
        self._revert("job_escrow: caller is not an arbiter")
    job_id: bytes32 = empty(bytes32)
    word: uint256 = 0
    job_id, word = self._load(terms)
    phase_end: uint256 = job_layout.phase_end(word)
    if ruling == _RULING_NONE:
        if terms.replicas != 1:
            self._revert("job_escrow: only optimistic jobs are disputed")
        if not (job_layout.status(word) == _OPEN and job_layout.accepted(word) == _REVEALED):
            self._revert("job_escrow: no result to dispute")
        if block.timestamp >= phase_end:
            self._revert("job_escrow: challenge window closed")
        self._escalate(job_id, word, account, bond)
        return
    if job_layout.status(word) != _DISPUTED:
        self._revert("job_escrow: job not disputed")
    if block.timestamp >= phase_end:
        self._revert("job_escrow: ruling period over")
    log IJobEscrow.Ruled(job_id=job_id, arbiter=account, for_client=ruling == _RULING_CLIENT)
    self._settle(job_id, word, terms, replica, ruling, account)


@external
def sweep_fees(device_ids: DynArray[bytes32, MAX_SWEEP]) -> uint256:
    """
    @notice Moves the protocol fees the devices accrued to the treasury, in one
            transfer. Anyone may call (a keeper batches the devices that earned fees,
            from `ReplicaSettled` events).
    @param device_ids Up to `MAX_SWEEP` devices; unknown ones and repeats add nothing.
    @return uint256 Amount swept.
    """
    amount: uint256 = 0
    for device_id: bytes32 in device_ids:
        record: uint256 = self._devices[device_id]
        owed: uint256 = record >> job_layout.RECORD_FEES_AT
        if owed != 0:
            # The counters stay: the word stays live for the device's next job.
            self._devices[device_id] = record & job_layout.RECORD_COUNTERS
            amount += owed
    treasury: address = self.treasury
    log IJobEscrow.FeesSwept(devices=len(device_ids), amount=amount, treasury=treasury)
    if amount != 0:
        self._pay(treasury, amount, job_layout.deposit_shard(treasury))
    return amount


# ---------------------------------------------------------------- governance and guardian


@external
def set_parameter(key: uint256, new_value: uint256):
    """
    @notice Sets parameter `key` within its hard bounds. Owner (DAO timelock) only.
    @param key A parameter key (`PROTOCOL_FEE_BPS`, ...).
    @param new_value The value, within `parameter_bounds(key)`.
    """
    ownable._check_owner()
    governed._check_bounds(key, new_value, job_layout.bound(job_layout.LOW_PACKED, key), job_layout.bound(job_layout.HIGH_PACKED, key), _PARAMETER_COUNT)
    self._set_parameter(key, new_value)


@external
def set_treasury(new_treasury: address):
    """
    @notice Sets the receiver of protocol fees. Owner only.
    @param new_treasury The treasury: not the zero address, nor (paying in the staked
           token) a custody account, which the token refuses to pay into.
    """
    # analysis: missing_zero_address_check: the zero address is refused on the next line (through `_revert`, which the analyzer does not follow).
    ownable._check_owner()
    if new_treasury == empty(address):
        self._revert("job_escrow: zero treasury")
    if PAYS_INTO_POOL:
        # analysis: cei_violation: a view of the token (a staticcall, which cannot change state), read before the write; under the reentrancy lock.
        if staticcall IComputeToken(TOKEN).is_custody_account(new_treasury):
            self._revert("job_escrow: treasury is a custody account")
    log IJobEscrow.TreasurySet(previous_treasury=self.treasury, new_treasury=new_treasury)
    self.treasury = new_treasury


@external
def set_guardian(new_guardian: address, expiry: uint256):
    """
    @notice Appoints (or, with the zero address, removes) the guardian until `expiry`.
            Owner only.
    @param new_guardian The guardian.
    @param expiry When its power to pause ends, at most `MAX_GUARDIAN_TERM` from now.
    """
    # analysis: unprotected_state_change, missing_zero_address_check: owner (timelock) only, by the next line; the zero address removes the guardian.
    ownable._check_owner()
    guardianship._appoint(new_guardian, expiry)


@external
def pause(until: uint256):
    """
    @notice Refuses new jobs and acceptances until `until` (at most `MAX_PAUSE` from
            now). The owner, or the guardian during its appointment: the time its pause
            adds (beyond a running pause) is charged to its `MAX_GUARDIAN_PAUSE` budget.
    @param until End of the pause.
    """
    if not (until > block.timestamp and until <= block.timestamp + MAX_PAUSE):
        self._revert("job_escrow: pause out of bounds")
    if not self._check_pauser():
        running: uint256 = max(self._config >> _PAUSE_SHIFT, block.timestamp)
        if until > running:
            guardianship._charge_pause(until - running)
    self._config = (self._config & _PARAMS_MASK) | (until << _PAUSE_SHIFT)
    log IJobEscrow.PausedUntil(by=msg.sender, until=until)


@external
def unpause():
    """
    @notice Ends a pause now. The guardian, during its appointment, or the owner.
    """
    self._check_pauser()
    self._config = self._config & _PARAMS_MASK
    log IJobEscrow.PausedUntil(by=msg.sender, until=0)


# ---------------------------------------------------------------- views


@external
@view
def balanceOf(account: address) -> uint256:
    """
    @notice Unlocked escrow balance of `account`, withdrawable now.
    @param account The account.
    @return uint256 Amount in wei.
    """
    return self._accounts[account] & _BALANCE_MASK


@external
@view
def paused_until() -> uint256:
    """
    @notice New jobs and acceptances are refused until this time.
    @return uint256 A timestamp (zero: not paused).
    """
    return self._config >> _PAUSE_SHIFT


@external
@view
def job_nonce(client: address) -> uint256:
    """
    @notice The nonce `client`'s next job will use.
    @param client The client.
    @return uint256 The nonce.
    """
    return self._accounts[client] >> _ACCOUNT_NONCE_AT


@external
@view
def job_words(job_id: bytes32, slot: uint256, device_id: bytes32) -> uint256[5]:
    """
    @notice Raw words for JobEscrowView, which decodes them (layout in `job_layout`).
    @param job_id A job.
    @param slot One of its replica slots (k > 1).
    @param device_id A device.
    @return uint256[5] The job word, its leading result (k > 1), the assignment word of
            `slot` and its commitment then result (k > 1), and the device's record.
    """
    return [
        self._jobs[job_id],
        convert(self._leader[job_id], uint256),
        self._assignments[job_id][slot],
        convert(self._commitments[job_id][slot], uint256),
        self._devices[device_id],
    ]


@external
@view
def fees(device_id: bytes32) -> uint256:
    """
    @notice Protocol fees a device's completed jobs accrued, not yet swept.
    @param device_id The device.
    @return uint256 Amount in wei.
    """
    return self._devices[device_id] >> job_layout.RECORD_FEES_AT


@external
@view
def parameter(key: uint256) -> uint256:
    """
    @notice Current value of parameter `key`.
    @param key A parameter key.
    @return uint256 Its value.
    """
    assert key < _PARAMETER_COUNT, "parameters: unknown parameter"
    return self._param(self._config, key)


# ---------------------------------------------------------------- internal


@internal
def _deposit(account: address, amount: uint256) -> uint256:
    self._check_amount(amount)
    # analysis: cei_violation: credit what arrived, measured around the transfer (fee-on-transfer tokens); under the reentrancy lock.
    received: uint256 = amount
    moved: bool = False
    if PAYS_INTO_POOL:
        # The staked token, which moves exact amounts (Staking relies on it too), into
        # the depositor's shard: deposits of users in different shards write different
        # balance words.
        moved = extcall IComputeToken(TOKEN).custody_deposit(account, job_layout.shard_key(job_layout.deposit_shard(account)), amount, default_return_value=True)
    else:
        # Any token: credit what arrived (fee-on-transfer tokens).
        before: uint256 = staticcall IERC20(TOKEN).balanceOf(self)
        moved = extcall IERC20(TOKEN).transferFrom(account, self, amount, default_return_value=True)
        received = staticcall IERC20(TOKEN).balanceOf(self) - before
    if not moved:
        self._revert("job_escrow: transferFrom failed")
    if received == 0:
        self._revert("job_escrow: nothing received")
    word: uint256 = self._accounts[account] + received
    if word & _BALANCE_MASK < received:
        self._revert("job_escrow: balance overflow")
    self._accounts[account] = word
    log IJobEscrow.Deposited(account=account, amount=received, balance=word & _BALANCE_MASK)
    return received


@internal
def _post(
    client: address,
    spec: Bytes[4096],
    requirements: IJobEscrow.Requirements,
    price: uint256,
    replicas: uint256,
    deadline: uint256,
    collateral: uint256,
    priced_by_device: bool,
) -> (bytes32, IJobEscrow.Terms):
    config: uint256 = self._config
    self._check_unpaused(config)
    if not (replicas != 0 and replicas <= MAX_REPLICAS):
        self._revert("job_escrow: replicas out of range")
    if price == 0:
        self._revert("job_escrow: zero price")
    if not (price <= constants.U96 and collateral <= constants.U96):
        self._revert("job_escrow: amount too large")
    if collateral * constants.BPS < price * self._param(config, MIN_COLLATERAL_BPS):
        self._revert("job_escrow: collateral below minimum")
    if deadline <= block.timestamp:
        self._revert("job_escrow: deadline in the past")
    if deadline > block.timestamp + self._param(config, MAX_JOB_DURATION):
        self._revert("job_escrow: deadline too far")
    if len(spec) == 0:
        self._revert("job_escrow: empty spec")
    if priced_by_device:
        # No registered device could ever match these.
        if not (
            requirements.min_cpu_cores <= 4096
            and requirements.min_memory_mb <= 16 * 1024 * 1024
            and requirements.min_gpu_count <= 64
            and requirements.min_vram_mb <= 1024 * 1024
            and requirements.region <= 999
            and requirements.compute_seconds != 0
            and price >= convert(requirements.compute_seconds, uint256)
        ):
            self._revert("job_escrow: no device can satisfy the job")

    locked: uint256 = price * replicas
    account: uint256 = self._accounts[client]
    if account & _BALANCE_MASK < locked:
        self._revert("job_escrow: insufficient balance")
    # analysis: integer_overflow: see the bound below.
    # Cannot wrap: the balance holds at least `locked`, and the nonce counts jobs.
    self._accounts[client] = unsafe_add(unsafe_sub(account, locked), _NONCE_ONE)

    # The windows and the fee in force now are part of the terms: a job runs under the
    # rules it was posted under.
    reveal_window: uint256 = self._param(config, REVEAL_WINDOW)
    terms: IJobEscrow.Terms = IJobEscrow.Terms(
        client=client,
        nonce=account >> _ACCOUNT_NONCE_AT,
        spec_hash=keccak256(spec),
        requirements=self._pack_requirements(requirements),
        price_per_replica=price,
        collateral_per_replica=collateral,
        replicas=replicas,
        deadline=deadline,
        reveal_window=reveal_window,
        challenge_window=self._param(config, CHALLENGE_WINDOW),
        fee_bps=self._param(config, PROTOCOL_FEE_BPS),
    )
    job_id: bytes32 = keccak256(abi_encode(terms))
    self._jobs[job_id] = job_layout.new_job(replicas, deadline + reveal_window)
    log IJobEscrow.JobPosted(job_id=job_id, client=client, terms=terms, spec=spec)
    return job_id, terms


@internal
def _accept(job_id: bytes32, terms: IJobEscrow.Terms, provider: address, device_nonce: uint256, priced_by_device: bool) -> uint256:
    self._check_unpaused(self._config)
    word: uint256 = self._jobs[job_id]
    self._check_open(word)
    if block.timestamp >= terms.deadline:
        self._revert("job_escrow: deadline passed")
    # For k = 1 this is the replica's status: any acceptance takes the only slot.
    slot: uint256 = job_layout.accepted(word)
    if slot >= terms.replicas:
        self._revert("job_escrow: all replicas taken")
    # Replica words keep 32 bits of device nonce (a provider's devices are numbered from 0).
    if device_nonce > constants.U32:
        self._revert("job_escrow: no such device")

    device_id: bytes32 = keccak256(abi_encode(provider, device_nonce))
    budget: uint256 = max_value(uint256)
    if priced_by_device:
        budget = terms.price_per_replica
    # analysis: cei_violation: a view of the registry, fixed at deploy; nothing can change state in between.
    capacity: uint256 = staticcall IDeviceRegistry(REGISTRY).check_fit(device_id, provider, terms.requirements, budget)
    record: uint256 = self._devices[device_id]
    if record & job_layout.U32 >= capacity:
        self._revert("job_escrow: device at capacity")

    if terms.replicas == 1:
        # The replica's status and binding share the job's word.
        word = job_layout.with_binding(job_layout.add_accepted(word, 1), provider, device_nonce, empty(bytes32))
    else:
        # A provider takes at most one replica of a job, or redundancy means nothing.
        for i: uint256 in range(MAX_REPLICAS):
            if i >= slot:
                break
            if convert(self._assignments[job_id][i] & job_layout.ADDRESS_MASK, address) == provider:
                self._revert("job_escrow: provider already on job")
        self._assignments[job_id][slot] = convert(provider, uint256) | (_ACCEPTED << job_layout.ASSIGNMENT_STATUS_AT) | (device_nonce << job_layout.ASSIGNMENT_NONCE_AT)
        word = job_layout.add_accepted(word, 1)
    self._jobs[job_id] = word
    # analysis: integer_overflow: running jobs stay below the device's 16-bit capacity (checked above), so adding one cannot carry.
    self._devices[device_id] = unsafe_add(record, 1)
    collateral: uint256 = terms.collateral_per_replica
    log IJobEscrow.ReplicaAccepted(job_id=job_id, provider=provider, slot=slot, device_id=device_id, device_nonce=device_nonce, collateral=collateral)
    extcall IStaking(STAKING).lock(provider, collateral)
    return slot


@internal
def _settle(job_id: bytes32, word: uint256, terms: IJobEscrow.Terms, replica: IJobEscrow.Replica, ruling: uint256, keeper: address):
    """
    @dev Pays, refunds and slashes every replica of a job, once, in steps: whether the job
         settles now and against which result; the job marked settled, before any
         external call; each accepted replica's outcome (`_revealed_outcome`), its
         device's record (`_count`) and its collateral (`_release` or `_slash`); then the
         client's refund and compensation and `keeper`'s bounty (`_close`).
    """
    replicas: uint256 = terms.replicas
    # k = 1: the replica's status, else the accepted replicas.
    accepted: uint256 = job_layout.accepted(word)
    solo_status: uint256 = accepted
    # k > 1: a result is decided when the revealed replicas agree and are a strict
    # majority of k, or by the arbiter's ruling (`replica.digest` names the right result).
    votes: uint256 = job_layout.leader_votes(word)
    revealed_count: uint256 = job_layout.revealed(word)
    decided: bool = ruling != _RULING_NONE or (votes * 2 > replicas and votes == revealed_count)
    if replicas == 1 and accepted != 0:
        # The k = 1 replica comes back as calldata: it must be the one the job holds.
        if not job_layout.binds(word, replica.provider, replica.device_nonce, replica.digest):
            self._revert("job_escrow: replica does not match the job")
        accepted = 1
    elif not decided and revealed_count != 0 and job_layout.status(word) == _OPEN:
        # k > 1 replicas revealed different results, or too few of them for a majority.
        # A vote is evidence, not proof: the arbiter rules within the ruling period
        # (`rule`), else nobody is paid or slashed for a result.
        self._escalate(job_id, word, terms.client, 0)
        return
    self._jobs[job_id] = job_layout.with_status(word, _FINALIZED)

    # The result revealed replicas are held to: the leading one (k > 1, agreed), the
    # arbiter's (`replica.digest`), or the k = 1 replica's own. The accepted result
    # (`JobSettled`) is that one when it is decided (k > 1) or stands (k = 1: revealed, not
    # ruled for the client); with none, nobody is paid and only no-shows are slashed.
    leader: bytes32 = replica.digest
    if replicas > 1 and ruling == _RULING_NONE and decided:
        leader = self._leader[job_id]
    result: bytes32 = empty(bytes32)
    if replicas > 1:
        if decided:
            result = leader
    elif solo_status == _REVEALED and ruling != _RULING_CLIENT:
        result = leader
    price: uint256 = terms.price_per_replica
    collateral: uint256 = terms.collateral_per_replica
    fee: uint256 = price * terms.fee_bps // constants.BPS
    # A completed job counts in its device's record only when it paid the protocol at
    # least the floor, so padding a record costs that much per job.
    counts: bool = fee >= self._param(self._config, RECORD_MIN_FEE) * job_layout.RECORD_FEE_UNIT

    completed: uint256 = 0
    reward: uint256 = 0
    # analysis: send_in_loop, cei_violation: the job is already final (above); the loop is bounded by MAX_REPLICAS and calls only Staking, fixed at deploy and nonreentrant.
    for slot: uint256 in range(MAX_REPLICAS):
        if slot >= accepted:
            break
        # The replica: k = 1 from the calldata checked above, k > 1 from its word.
        provider: address = replica.provider
        device_nonce: uint256 = replica.device_nonce
        status: uint256 = solo_status
        if replicas > 1:
            assignment: uint256 = self._assignments[job_id][slot]
            provider = convert(assignment & job_layout.ADDRESS_MASK, address)
            device_nonce = (assignment >> job_layout.ASSIGNMENT_NONCE_AT) & job_layout.U32
            status = (assignment >> job_layout.ASSIGNMENT_STATUS_AT) & job_layout.U8
        # Never revealed: slashed.
        outcome: uint8 = _OUTCOME_SLASHED
        if status == _REVEALED:
            outcome = self._revealed_outcome(job_id, slot, replicas, decided, ruling, leader)
        device_id: bytes32 = keccak256(abi_encode(provider, device_nonce))
        # A k = 1 result left its device's running count when it came in (`_result_in`).
        self._count(device_id, outcome, fee, counts, replicas > 1 or status != _REVEALED)
        replica_paid: uint256 = 0
        replica_fee: uint256 = 0
        replica_slashed: uint256 = 0
        if outcome == _OUTCOME_COMPLETED:
            completed += 1
            replica_fee = fee
            replica_paid = price - fee
            self._release(provider, collateral, replica_paid)
        elif outcome == _OUTCOME_FAILED:
            extcall IStaking(STAKING).release(provider, collateral, 0)
        else:
            slash_reward: uint256 = 0
            replica_slashed, slash_reward = self._slash(provider, collateral, price)
            reward += slash_reward
        log IJobEscrow.ReplicaSettled(
            job_id=job_id,
            provider=provider,
            device_id=device_id,
            slot=slot,
            outcome=outcome,
            paid=replica_paid,
            fee=replica_fee,
            slashed=replica_slashed,
        )
    self._close(job_id, terms.client, keeper, result, replicas, completed, price, fee, reward)


@internal
@view
def _revealed_outcome(job_id: bytes32, slot: uint256, replicas: uint256, decided: bool, ruling: uint256, leader: bytes32) -> uint8:
    """
    @dev A revealed replica's outcome. k = 1: completed, unless ruled for the client.
         k > 1: failed when no result is decided (no ruling in time), completed when it
         revealed the decided result, slashed when it revealed another.
    """
    if replicas == 1:
        if ruling == _RULING_CLIENT:
            return _OUTCOME_SLASHED
        return _OUTCOME_COMPLETED
    if not decided:
        return _OUTCOME_FAILED
    if self._commitments[job_id][slot] == leader:
        return _OUTCOME_COMPLETED
    return _OUTCOME_SLASHED


@internal
def _count(device_id: bytes32, outcome: uint8, fee: uint256, counts: bool, running: bool):
    """
    @dev Moves a settled replica in its device's record from the running jobs (unless it
         left them already: `running` false) to its outcome's counter, adding a completed
         job's fee; a completed job below the record floor (`counts` false) adds only its
         fee. A counter would need 2**32 jobs of one device to overflow; a price is below
         2**96, so 2**32 jobs could not fill the fees' 128 bits.
    """
    counted: bool = True
    added_fee: uint256 = 0
    if outcome == _OUTCOME_COMPLETED:
        counted = counts
        added_fee = fee
    added: uint256 = (convert(counted, uint256) << (job_layout.RECORD_BITS * (convert(outcome, uint256) + 1))) | (added_fee << job_layout.RECORD_FEES_AT)
    # analysis: integer_overflow: the running count holds this job unless it left (`running` false), so subtracting cannot borrow; the checked add guards the fees at the top.
    self._devices[device_id] = unsafe_sub(self._devices[device_id], convert(running, uint256)) + added


@internal
def _release(provider: address, collateral: uint256, amount: uint256):
    """
    @dev A completed replica: its collateral unlocked and `amount` (the price less the
         fee) paid, the delegators' cut into the pool (paid in the staked token only),
         the rest to the provider's balance here.
    """
    # analysis: cei_violation: the job is already final (`_settle` marks it before any call); Staking is fixed at deploy and nonreentrant, and the cut it took is known only after the call.
    income: uint256 = 0
    if PAYS_INTO_POOL:
        income = amount
    cut: uint256 = extcall IStaking(STAKING).release(provider, collateral, income)
    if amount != cut:
        self._accounts[provider] += amount - cut


@internal
def _slash(provider: address, collateral: uint256, price: uint256) -> (uint256, uint256):
    """
    @dev A replica slashed: its collateral taken from the provider's stake; returns the
         amount slashed and the reward that came to this contract. The pool's income
         held here leaves first, so the balance measured around the slash moves by its
         reward alone.
    """
    extcall IStaking(STAKING).collect_income(provider)
    before: uint256 = staticcall IERC20(_STAKE_TOKEN).balanceOf(self)
    slashed: uint256 = extcall IStaking(STAKING).slash(provider, collateral, collateral, self, price)
    return slashed, staticcall IERC20(_STAKE_TOKEN).balanceOf(self) - before


@internal
def _close(job_id: bytes32, client: address, keeper: address, result: bytes32, replicas: uint256, completed: uint256, price: uint256, fee: uint256, reward: uint256):
    """
    @dev The job's money once its replicas are settled: every replica not completed
         (accepted or not) refunded to the client, and the slash reward split into the
         keeper's bounty and the client's compensation.
    """
    refunded: uint256 = (replicas - completed) * price
    bounty: uint256 = 0
    if reward != 0:
        bounty = reward * self._param(self._config, KEEPER_BOUNTY_BPS) // constants.BPS
    compensation: uint256 = reward - bounty
    # Zero credits are skipped: each costs a storage load.
    owed: uint256 = refunded
    if PAYS_INTO_POOL:
        owed += compensation
        if bounty != 0:
            self._accounts[keeper] += bounty
    if owed != 0:
        self._accounts[client] += owed
    if not PAYS_INTO_POOL:
        if compensation != 0:
            self._transfer(_STAKE_TOKEN, client, compensation)
        if bounty != 0:
            self._transfer(_STAKE_TOKEN, keeper, bounty)
    log IJobEscrow.JobSettled(
        job_id=job_id,
        client=client,
        keeper=keeper,
        result_hash=result,
        paid=completed * (price - fee),
        fees=completed * fee,
        refunded=refunded,
        compensation=compensation,
        bounty=bounty,
    )


@internal
def _escalate(job_id: bytes32, word: uint256, client: address, bond: uint256):
    """
    @dev Makes the job disputed for the ruling period: a k = 1 client's dispute, or k > 1
         replicas that disagree or are too few for a majority.
    """
    ruling_end: uint256 = block.timestamp + self._param(self._config, RULING_PERIOD)
    self._jobs[job_id] = job_layout.with_phase_end(job_layout.with_status(word, _DISPUTED), ruling_end)
    log IJobEscrow.Disputed(job_id=job_id, client=client, bond=bond, ruling_end=ruling_end)


@internal
def _set_parameter(key: uint256, new_value: uint256):
    config: uint256 = self._config
    offset: uint256 = key * _PARAM_BITS
    old: uint256 = (config >> offset) & constants.U24
    self._config = (config & ~(constants.U24 << offset)) | (new_value << offset)
    log governed.ParameterChanged(key=key, old_value=old, new_value=new_value)


@internal
@pure
def _revert(reason: String[64]):
    """
    @dev Reverts with `reason`. Every check of this contract fails through here, as
         `if <failed>: self._revert("job_escrow: ...")`: the reason's text is written only
         when a check fails, and the code that encodes a reason exists once instead of at
         each of some fifty checks (2,662 bytes of runtime code, at no gas to a call that
         passes its checks).
    """
    raise reason


@internal
@pure
def _param(config: uint256, key: uint256) -> uint256:
    return (config >> (key * _PARAM_BITS)) & constants.U24


@internal
@view
def _load(terms: IJobEscrow.Terms) -> (bytes32, uint256):
    """
    @dev The id and word of the job with these terms; only `_post` writes a word, so a
         word that is not zero proves the terms are the job's.
    """
    job_id: bytes32 = keccak256(abi_encode(terms))
    word: uint256 = self._jobs[job_id]
    if word == 0:
        self._revert("job_escrow: no such job")
    return job_id, word


@internal
@view
def _check_pauser() -> bool:
    """
    @dev Reverts unless the caller is the owner or the guardian during its appointment;
         returns whether it is the owner.
    """
    if msg.sender == ownable.owner:
        return True
    if not guardianship._is_active(msg.sender):
        self._revert("job_escrow: caller cannot pause")
    return False


@internal
@pure
def _check_open(word: uint256):
    """
    @dev One copy of the check (and its reason) that five job steps make; the checks
         below likewise keep one copy of a reason several functions give.
    """
    if job_layout.status(word) != _OPEN:
        self._revert("job_escrow: job not open")


@internal
@view
def _check_unpaused(config: uint256):
    if block.timestamp < config >> _PAUSE_SHIFT:
        self._revert("job_escrow: paused")


@internal
@view
def _check_client(client: address):
    if client != msg.sender:
        self._revert("job_escrow: caller is not the client")


@internal
@view
def _check_commit_deadline(deadline: uint256):
    if block.timestamp >= deadline:
        self._revert("job_escrow: commit deadline passed")


@internal
@pure
def _check_amount(amount: uint256):
    if amount == 0:
        self._revert("job_escrow: zero amount")


@internal
@pure
def _check_replica(ok: bool):
    if not ok:
        self._revert("job_escrow: caller has no such replica")


@internal
@pure
def _check_uncommitted(ok: bool):
    if not ok:
        self._revert("job_escrow: already committed")


@internal
@pure
def _check_committed(ok: bool):
    if not ok:
        self._revert("job_escrow: nothing to reveal")


@internal
@pure
def _check_reveal_open(ok: bool):
    if not ok:
        self._revert("job_escrow: reveal window closed")


@internal
@pure
def _check_reveal(ok: bool):
    if not ok:
        self._revert("job_escrow: reveal does not match commitment")


@internal
@pure
def _check_moved(moved: bool):
    if not moved:
        self._revert("job_escrow: transfer failed")


@internal
@view
def _own_replica(job_id: bytes32, slot: uint256, word: uint256, device_nonce: uint256) -> uint256:
    """
    @dev The caller's replica word of a k > 1 job, for commit and reveal.
    """
    assignment: uint256 = 0
    if slot < job_layout.accepted(word):
        assignment = self._assignments[job_id][slot]
    self._check_replica(convert(assignment & job_layout.ADDRESS_MASK, address) == msg.sender and ((assignment >> job_layout.ASSIGNMENT_NONCE_AT) & job_layout.U32) == device_nonce)
    return assignment


@internal
def _result_in(provider: address, device_nonce: uint256):
    """
    @dev A k = 1 result is in: the job leaves its device's running count, so the
         challenge window (days) holds none of the device's capacity; `_settle` then
         counts its outcome alone.
    """
    device_id: bytes32 = keccak256(abi_encode(provider, device_nonce))
    # analysis: integer_overflow: the replica was accepted with this device, which counted it as running, so subtracting one cannot borrow.
    self._devices[device_id] = unsafe_sub(self._devices[device_id], 1)


@internal
def _withdraw(amount: uint256, first: uint256):
    self._check_amount(amount)
    word: uint256 = self._accounts[msg.sender]
    balance: uint256 = word & _BALANCE_MASK
    if balance < amount:
        self._revert("job_escrow: amount exceeds balance")
    self._accounts[msg.sender] = word - amount
    log IJobEscrow.Withdrawn(account=msg.sender, amount=amount, balance=balance - amount)
    self._pay(msg.sender, amount, first)


@internal
def _pay(to: address, amount: uint256, first: uint256):
    """
    @dev Pays `amount` of the payment token to `to`. With shards: from shard `first`
         when it holds the amount (a client taking back its deposit from its own shard,
         the common case), else from the shards in turn from `first` on, then from this
         contract's own balance (slash compensation): paid straight out of the shards,
         a payment writes no word another payment out of other shards writes. The token
         searches the shards in one call (`custody_gather`: at most one read of each).
    """
    left: uint256 = amount
    if PAYS_INTO_POOL:
        left = extcall IComputeToken(TOKEN).custody_gather(first, _SHARDS, to, amount)
        if left == 0:
            return
    self._transfer(TOKEN, to, left)


@internal
def _transfer(token: address, to: address, amount: uint256):
    # analysis: incorrect_erc20_return: the returned bool (True when the token returns nothing) is checked in `_check_moved`.
    self._check_moved(extcall IERC20(token).transfer(to, amount, default_return_value=True))


@internal
@pure
def _pack_requirements(r: IJobEscrow.Requirements) -> uint256:
    attested: uint256 = 0
    if r.attested_only:
        attested = 1
    return (
        convert(r.min_cpu_cores, uint256)
        | (convert(r.min_memory_mb, uint256) << job_layout.REQ_MEMORY_AT)
        | (convert(r.min_gpu_count, uint256) << job_layout.REQ_GPU_AT)
        | (convert(r.min_vram_mb, uint256) << job_layout.REQ_VRAM_AT)
        | (convert(r.region, uint256) << job_layout.REQ_REGION_AT)
        | (attested << job_layout.REQ_ATTESTED_AT)
        | (convert(r.compute_seconds, uint256) << job_layout.REQ_SECONDS_AT)
    )
