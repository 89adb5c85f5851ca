"""Units, roles, statuses and outcomes, each defined once, as the contracts number them.

Every enum's values are the on-chain numbers, so `JobStatus.FINALIZED == 3` and a value
read from a view compares with a member directly. This module imports nothing outside the
standard library: the CLI's `--help` and the index load it without ape or web3.
"""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import NamedTuple

# ---------------------------------------------------------------- units

TOKEN = 10**18  # one token in its smallest unit (18 decimals)
HOUR = 3_600
DAY = 86_400
MAX_UINT = 2**256 - 1
BPS = 10_000  # basis points in one
# Most replicas a job may have (job_layout.vy's `MAX_REPLICAS`).
MAX_REPLICAS = 9
MAX_AMOUNT = 2**96 - 1  # a price or a collateral JobEscrow stores (uint96)
# Most devices one `JobEscrow.sweep_fees` call takes (`MAX_SWEEP`): each device's record
# accrues the protocol fees of its jobs (`fees(device_id)`).
MAX_SWEEP = 64
# JobEscrow's deposit shards (`JobEscrowView.ESCROW_SHARDS`): a deposit goes to the shard
# of the depositor's address, its value modulo this.
ESCROW_SHARDS = 1024


def amount_text(amount: int) -> str:
    """An approval's amount as words: "100" or "an unlimited amount of"."""
    from computeshare.format import tokens

    return "an unlimited amount of" if amount == MAX_UINT else tokens(amount)


# ---------------------------------------------------------------- roles


class Role(IntFlag):
    """Roles of Staking (SLASHER, LOCKER), DeviceRegistry (AUDITOR) and JobEscrow
    (ARBITER, MATCHER), as their `roles(account)` bit flags."""

    SLASHER = 1
    LOCKER = 2
    AUDITOR = 4
    ARBITER = 8
    MATCHER = 16


# ---------------------------------------------------------------- jobs


class JobStatus(IntEnum):
    """JobEscrow's job status (`JobEscrowView.job(id).status`)."""

    NONE = 0
    OPEN = 1
    DISPUTED = 2
    FINALIZED = 3
    CANCELLED = 4


class ReplicaStatus(IntEnum):
    """A replica's status (`JobEscrowView.assignment(id, slot).status`)."""

    NONE = 0
    ACCEPTED = 1
    COMMITTED = 2
    REVEALED = 3


class Outcome(IntEnum):
    """A replica's outcome, as JobEscrow reports it in `ReplicaSettled`."""

    COMPLETED = 0
    FAILED = 1
    SLASHED = 2


OUTCOMES = {outcome: outcome.name.lower() for outcome in Outcome}


def label(enum: type[IntEnum], value: int) -> str:
    """The lower-case name of `value` in `enum`, or the number itself if it has none."""
    try:
        return enum(value).name.lower()
    except ValueError:
        return str(value)


class Terms(NamedTuple):
    """A job's terms in JobEscrow's order (the `JobPosted` event, and the tuple every call
    after `post` takes back)."""

    client: str
    nonce: int
    spec_hash: bytes
    requirements: int
    price_per_replica: int
    collateral_per_replica: int
    replicas: int
    deadline: int
    reveal_window: int
    challenge_window: int
    fee_bps: int


class Replica(NamedTuple):
    """A k = 1 job's replica as JobEscrow binds it: the provider, its device nonce and a
    digest (zero, then the commitment, then the result hash)."""

    provider: str
    device_nonce: int
    digest: bytes


class DeviceStatus(IntEnum):
    """A device's status (`DeviceRegistry.STATUS_*`, `device(id).status`)."""

    ACTIVE = 1
    PAUSED = 2
    RETIRED = 3


DEVICE_STATUS = {status.value: status.name.lower() for status in DeviceStatus}


# An offer's defaults (`offers.sign_offer`, `offers.match_duration`, and `offer sign`'s and
# `offer match`'s options): its soonest commit deadline after the match, how long it can be
# matched, and a match's time to the commit deadline when none is asked for (within the
# offer's range, nearest this).
OFFER_MIN_DURATION = 10 * 60
OFFER_EXPIRY = HOUR
MATCH_DURATION = HOUR


# ---------------------------------------------------------------- governance


class ProposalState(IntEnum):
    """OpenZeppelin's ProposalState numbering, as `Governor.state()` returns it."""

    PENDING = 0
    ACTIVE = 1
    CANCELED = 2
    DEFEATED = 3
    SUCCEEDED = 4
    QUEUED = 5
    EXPIRED = 6
    EXECUTED = 7

    @property
    def label(self) -> str:
        """As the CLI and the dashboard show it: "Active", "Queued"."""
        return self.name.capitalize()


class Support(IntEnum):
    """A ballot's support (`castVote(proposal, support)`)."""

    AGAINST = 0
    FOR = 1
    ABSTAIN = 2
