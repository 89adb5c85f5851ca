"""Constants and small functions the tests share (a helper module, not a test module).

Fixtures live in conftest.py, including the factory fixtures that fund accounts and post
and run jobs (`fund_client`, `fund_provider`, `post_job`, `run_replica`). Units come from
the package's own definition, so a test and the code it checks cannot disagree on them.
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager

from eth_utils import keccak
from hypothesis.stateful import RuleBasedStateMachine, invariant

from computeshare.constants import DAY, HOUR, TOKEN, Role, Support
from computeshare.governance import Proposal, call, description_hash, pass_proposal, propose
from computeshare.jobs import STATUS_DISPUTED, STATUS_OPEN, devices_with_fees, indexed_topics
from computeshare.params import parameter
from computeshare.signing import spec_hash
from computeshare.specs import device_spec, job_requirements
from tests.ape_speed import read_all

__all__ = ["DAY", "HOUR", "TOKEN"]  # re-exported from computeshare.constants

# ---------------------------------------------------------------- isolation


@contextmanager
def isolated(chain):
    """Runs the block on a snapshot of the chain and reverts to it afterwards, raising
    whatever the block raised. (ape's `chain.isolate()` swallows every exception raised in
    its block, a failed assertion included, so a check inside it can never fail.)"""
    snapshot = chain.snapshot()
    pending = chain.pending_timestamp
    try:
        yield
    finally:
        chain.restore(snapshot)
        chain.pending_timestamp = pending


# ---------------------------------------------------------------- units and roles

YEAR = 365 * DAY
INITIAL_SUPPLY = 1_000_000_000 * TOKEN  # ComputeToken's fixed initial supply

# Role flags of interfaces/IAccess.vyi (computeshare.constants.Role).
SLASHER, LOCKER, AUDITOR, ARBITER, MATCHER = (
    Role.SLASHER, Role.LOCKER, Role.AUDITOR, Role.ARBITER, Role.MATCHER,
)  # fmt: skip


def delegate(token, delegatee, sender):
    """Calls ERC-5805 `delegate`, which ape's `BaseAddress.delegate` (EIP-7702) shadows."""
    return token.invoke_transaction("delegate", delegatee, sender=sender)


def gpu_spec(**overrides) -> dict:
    """A valid GPU device spec for DeviceRegistry.register, with optional overrides."""
    return device_spec(**overrides)


def warm_delegation(staking, chain, provider, amount, sender, min_cut_bps=0):
    """Delegates `amount` of `sender`'s tokens to `provider`, waits out the warm-up and
    activates them into pool shares; returns the shares minted."""
    staking.delegate_to(provider, amount, min_cut_bps, sender=sender)
    chain.pending_timestamp += staking.parameter(STAKING_WARMUP)
    return staking.activate(provider, sender, sender=sender).return_value


STAKING_WARMUP = 7  # Staking's WARMUP parameter key


# ---------------------------------------------------------------- jobs

REQS = job_requirements()
SPEC = b'{"workload": "sha256-chain", "input": "00", "rounds": 1000}'
PRICE, COLLATERAL = 10 * TOKEN, 20 * TOKEN
GOOD, BAD = b"\xaa" * 32, b"\xbb" * 32
SALT = b"\x5a" * 32


def pool_holdings(token, provider) -> int:
    """Tokens in the custody account ComputeToken keeps for `provider`'s pool in Staking."""
    return token.balanceOf(token.custody_account(token.vault(), provider))


def pool_expected(staking, provider) -> int:
    """What `provider`'s custody account must hold: every bucket of its pool, less the
    delegators' income the income holder still keeps."""
    return bucketed(staking.pool(provider), staking.uncollected_income(provider))


def bucketed(pool, uncollected_income: int) -> int:
    """`pool_expected` from a `Staking.pool` answer and the pool's `uncollected_income`."""
    buckets = pool.own_stake + pool.own_thawing + pool.delegated_tokens + pool.thawing_tokens
    return buckets + pool.warming_tokens - uncollected_income


def custody_accounts(token, providers) -> list[str]:
    """The custody accounts of `providers`' pools under ComputeToken's vault, as the token
    computes them (`custody_account(vault(), provider)`): two batched requests."""
    (vault,) = read_all((token.vault,))
    return read_all(*((token.custody_account, vault, p) for p in providers))


def reveal(m, job, provider, slot, result, salt=SALT):
    """Reveals the `result` that `provider` committed in `slot` of `job`."""
    return m.jobs.reveal(job, slot, result, salt, sender=provider)


def offer_terms(provider, client, chain, **overrides) -> dict:
    """OfferBook terms `provider` (device nonce 0) offers `client`, valid for an hour: SPEC
    only, with a commit deadline 10 minutes to 7 days after the match."""
    offer = {
        "provider": provider.address,
        "device_nonce": 0,
        "client": client.address,
        "price": PRICE,
        "collateral": COLLATERAL,
        "spec_hash": spec_hash(SPEC),
        "min_duration": 10 * 60,
        "max_duration": 7 * DAY,
        "expiry": chain.pending_timestamp + HOUR,
        "nonce": 7,
    }
    offer.update(overrides)
    return offer


def _earning_pools(m) -> list[str]:
    return sorted({"0x" + t[-20:].hex() for t in indexed_topics(m.staking, "IncomeAdded")})


def escrow_holdings(m) -> int:
    """What JobEscrow holds in the payment token: its own balance and its deposit shards."""
    return m.escrow_view.holdings()


def escrow_owes(m, accounts, open_jobs=(), *, locked=None, fees=None) -> int:
    """What JobEscrow holds for others: the balances of `accounts`, the payment locked in
    each of `open_jobs` still open or disputed (dispute bonds are JobDisputes'), the unswept
    protocol fees,
    and the delegators' income it holds for Staking. A state machine passes `locked` and
    `fees` from its own model instead of reading them."""
    pools = _earning_pools(m)
    answers = read_all(
        *((m.escrow.balanceOf, a) for a in accounts),
        *((m.staking.uncollected_income, p) for p in pools),
    )
    owed = sum(answers)  # balances and the income held
    if locked is None:
        locked = 0
        for job in open_jobs:
            info = m.jobs.view(job)
            if info.status in (STATUS_OPEN, STATUS_DISPUTED):
                locked += info.price_per_replica * info.replicas
    if fees is None:
        fees = sum(m.escrow.fees(d) for d in devices_with_fees(m.escrow))
    return owed + locked + fees


# ---------------------------------------------------------------- governance

ESCROW_FEE = parameter("JobEscrow", "PROTOCOL_FEE_BPS").key


def fee_action(dao, bps):
    """A proposal action setting JobEscrow's protocol fee to `bps`."""
    return call(dao.escrow, "set_parameter", ESCROW_FEE, bps)


def at_least(chain, timestamp):
    """Mines a block at `timestamp`, or the next block if time is already past it."""
    chain.pending_timestamp = max(timestamp, chain.blocks.head.timestamp + 1)
    chain.mine()


def to_active(dao, chain, proposal_id):
    at_least(chain, dao.governor.proposalSnapshot(proposal_id) + 1)


def to_end(dao, chain, proposal_id):
    at_least(chain, dao.governor.proposalDeadline(proposal_id) + 1)


def queued(dao, chain, proposer, actions, voters, description="queued") -> Proposal:
    """A proposal of `actions` that `voters` passed and `proposer` queued (a `Proposal`:
    the id, carrying the actions and description that `execute` and `cancel` take)."""
    g = dao.governor
    proposal = propose(g, proposer, actions, description)
    to_active(dao, chain, proposal)
    for voter in voters:
        g.castVote(proposal, Support.FOR, sender=voter)
    to_end(dao, chain, proposal)
    g.queue(*proposal.args(), sender=proposer)
    return proposal


ZERO32 = b"\x00" * 32  # no timelock predecessor


def timelock_salt(governor, proposal: Proposal) -> bytes:
    """The salt the Governor schedules `proposal` with, as OpenZeppelin's
    GovernorTimelockControl: bytes20(governor) XOR keccak256(description)."""
    governor_bits = int(str(governor.address), 16) << 96
    salt = governor_bits ^ int.from_bytes(description_hash(proposal.description), "big")
    return salt.to_bytes(32, "big")


def operation_id(governor, proposal: Proposal) -> bytes:
    """The Timelock operation of `proposal`: TimelockController's `hashOperationBatch` of its
    actions, no predecessor and the governor's salt, computed here, not by the contract."""
    from eth_abi import encode as abi_encode

    targets, values, calldatas, _ = proposal.args()
    return keccak(
        abi_encode(
            ["address[]", "uint256[]", "bytes[]", "bytes32", "bytes32"],
            [targets, values, calldatas, ZERO32, timelock_salt(governor, proposal)],
        )
    )


def appoint_guardian(dao, chain, guardian, voters, term=180 * DAY):
    """Appoints `guardian` in the Governor by proposal, which also registers JobEscrow as a
    contract whose guardian changes the guardian cannot cancel; returns its expiry."""
    g = dao.governor
    expiry = chain.pending_timestamp + 30 * DAY + term
    actions = [
        call(g, "set_guardian", guardian, expiry),
        call(g, "set_guardianship_contract", dao.escrow, True),
    ]
    pass_proposal(g, chain, voters[0], voters, actions, "appoint the guardian")
    return expiry


# ---------------------------------------------------------------- state machines

# Examples and steps each state machine ran, printed at the end of the run (conftest.py).
COVERAGE: dict[str, Counter] = {}


class CountedMachine(RuleBasedStateMachine):
    """A state machine that counts its examples and steps for the end-of-run report."""

    def __init__(self):
        super().__init__()
        self._coverage = COVERAGE.setdefault(type(self).__name__, Counter())
        self._coverage["examples"] += 1
        self._coverage["steps"] -= 1  # invariants run once before the first step

    @invariant()
    def count_step(self):
        self._coverage["steps"] += 1


def one_line_error(result, expected: str) -> None:
    """A command that failed with one line holding `expected`, and no traceback."""
    assert result.exit_code != 0, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert expected in lines[0], lines[0]
