"""The index's schema: its tables (the same on SQLite and PostgreSQL), what their numbers
mean, and `database_url`.

uint256 figures are decimal text (above either database's 64-bit integers), ids and hashes
hex text, strings from events `EventText` (NUL turned into U+FFFD: PostgreSQL's text cannot
hold it). Every table of events is insert-only and keyed by the block and log index of the
event that wrote the row (`_table`), so a rollback is one `DELETE ... WHERE block >= n` per
table and current state is read as "the newest row".
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import JSON, BigInteger, Column, Integer, MetaData, String, Table, Text
from sqlalchemy import Index as SqlIndex
from sqlalchemy.types import TypeDecorator

from computeshare.governance import CANCELED, DEFEATED, EXECUTED, EXPIRED, STATE_NAMES

SCHEMA_VERSION = 2  # 2: fee sweeps by devices, proposals by hashed id
# The steps that decide a job's status, and the status each leaves it in.
DECIDING = {
    "cancelled": "cancelled",
    "disputed": "disputed",
    "ruled": "open",
    "settled": "finalized",
}
PROPOSAL_STATES = STATE_NAMES
FINAL_PROPOSAL_STATES = {CANCELED, DEFEATED, EXPIRED, EXECUTED}

metadata = MetaData()


class EventText(TypeDecorator):
    """A string from an event: any code point but NUL, which PostgreSQL's text cannot store
    (a device's URI or a proposal's description could otherwise stop the index)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def _table(name: str, *columns: Column, keys: tuple[str, ...] = ()) -> Table:
    """An insert-only table keyed by the event (block, log index) that wrote each row."""
    table = Table(
        name,
        metadata,
        Column("block", BigInteger, primary_key=True),
        Column("log_index", Integer, primary_key=True),
        *columns,
    )
    for key in keys:
        table.c[key].index = True
    return table


def _amount(name: str) -> Column:
    return Column(name, String(78), nullable=False, default="0")  # uint256 as decimal text


pages = Table(  # every page written: a rollback restarts at the start of a page
    "pages",
    metadata,
    Column("start", BigInteger, primary_key=True),
    Column("end", BigInteger, nullable=False),
)
meta = Table("meta", metadata, Column("key", String(64), primary_key=True), Column("value", Text))
blocks = Table(
    "blocks",
    metadata,
    Column("number", BigInteger, primary_key=True),
    Column("hash", String(66), nullable=False),
    Column("timestamp", BigInteger, nullable=False),
)
events = _table(
    "events",
    Column("tx", String(66)),
    Column("contract", String(32)),
    Column("name", String(64)),
    Column("args", JSON),
    keys=("name",),
)
devices = _table(
    "devices",
    Column("device_id", String(66)),
    Column("owner", String(42)),
    Column("nonce", BigInteger),
    Column("cpus", Integer),
    Column("memory_mb", BigInteger),
    Column("gpus", Integer),
    Column("gpu_model", EventText),
    Column("vram_mb", BigInteger),
    Column("region", Integer),
    _amount("price_per_second"),
    Column("max_jobs", Integer),
    Column("attestation", String(66)),
    Column("uri", EventText),
    keys=("device_id", "owner"),
)
device_status = _table(
    "device_status", Column("device_id", String(66)), Column("status", Integer), keys=("device_id",)
)
audits = _table(
    "audits",
    Column("device_id", String(66)),
    Column("auditor", String(42)),
    Column("hardware_hash", String(66)),
    Column("revoked", Integer),
    keys=("device_id",),
)
device_records = _table(
    "device_records",
    Column("device_id", String(66)),
    Column("running", BigInteger),
    Column("completed", BigInteger),
    Column("failed", BigInteger),
    Column("slashed", BigInteger),
    keys=("device_id",),
)
jobs = _table(
    "jobs",
    Column("job_id", String(66), unique=True),
    Column("client", String(42)),
    Column("terms", JSON),
    Column("replicas", Integer),
    _amount("price"),
    _amount("collateral"),
    Column("deadline", BigInteger),
    Column("spec", Text),
    keys=("client",),
)
job_steps = _table(
    "job_steps",
    Column("job_id", String(66)),
    Column("step", String(16)),
    Column("slot", Integer),
    Column("actor", String(42)),
    Column("detail", JSON),
    keys=("job_id",),
)
replicas = _table(
    "replicas",
    Column("job_id", String(66)),
    Column("slot", Integer),
    Column("provider", String(42)),
    Column("device_id", String(66)),
    Column("device_nonce", BigInteger),
    _amount("collateral"),
    keys=("job_id", "provider", "device_id"),
)
settlements = _table(
    "settlements",
    Column("job_id", String(66)),
    Column("slot", Integer),
    Column("provider", String(42)),
    Column("device_id", String(66)),
    Column("outcome", Integer),
    _amount("paid"),
    _amount("fee"),
    _amount("slashed"),
    keys=("job_id", "provider"),
)
results = _table(
    "results",
    Column("job_id", String(66)),
    Column("status", Integer),
    _amount("fuel"),  # uint64: above SQLite's signed 64-bit integers
    Column("output_hash", String(66)),
    Column("output", Text),
    keys=("job_id",),
)
settled = _table(
    "settled",
    Column("job_id", String(66), unique=True),
    Column("keeper", String(42)),
    Column("result_hash", String(66)),
    _amount("paid"),
    _amount("fees"),
    _amount("refunded"),
    _amount("compensation"),
    _amount("bounty"),
)
stake_events = _table(
    "stake_events",
    Column("provider", String(42)),
    Column("delegator", String(42)),
    Column("kind", String(24)),
    _amount("amount"),
    keys=("provider",),
)
pool_snapshots = _table(
    "pool_snapshots",
    Column("provider", String(42)),
    _amount("own_stake"),
    _amount("locked"),
    _amount("own_thawing"),
    _amount("delegated"),
    _amount("delegated_thawing"),
    Column("cut_bps", Integer),
    Column("pending_cut_bps", Integer),
    Column("pending_cut_at", BigInteger),
    keys=("provider",),
)
delegations = _table(
    "delegations",
    Column("provider", String(42)),
    Column("delegator", String(42)),
    _amount("shares"),
    _amount("value"),
    _amount("thawing"),
    Column("unlock_at", BigInteger),
    keys=("provider", "delegator"),
)
income = _table(
    "income",
    Column("provider", String(42)),
    Column("payer", String(42)),
    _amount("amount"),
    _amount("to_delegators"),
    keys=("provider",),
)
slashes = _table(
    "slashes",
    Column("provider", String(42)),
    Column("beneficiary", String(42)),
    _amount("own"),
    _amount("delegated"),
    _amount("reward"),
    _amount("total"),
    keys=("provider",),
)
fees = _table(
    "fees", Column("devices", BigInteger), _amount("amount"), Column("treasury", String(42))
)
treasury = _table("treasury", Column("address", String(42)), _amount("balance"))
proposals = _table(
    "proposals",
    Column("proposal_id", String(78), unique=True),
    Column("proposer", String(42)),
    Column("actions", JSON),
    Column("vote_start", BigInteger),
    Column("vote_end", BigInteger),
    Column("description", EventText),
)
proposal_snapshots = _table(
    "proposal_snapshots",
    Column("proposal_id", String(78)),
    Column("state", Integer),
    _amount("against"),
    _amount("for_"),
    _amount("abstain"),
    _amount("quorum"),
    Column("deadline", BigInteger),
    Column("eta", BigInteger),
    keys=("proposal_id",),
)
votes = _table(
    "votes",
    Column("proposal_id", String(78)),
    Column("voter", String(42)),
    Column("support", Integer),
    _amount("weight"),
    Column("reason", EventText),
    keys=("proposal_id",),
)
parameters = _table(
    "parameters",
    Column("contract", String(32)),
    Column("key", String(78)),
    _amount("old"),
    _amount("new"),
)
SqlIndex("job_steps_by_job_and_step", job_steps.c.job_id, job_steps.c.step)
EVENT_TABLES = [t for t in metadata.sorted_tables if "log_index" in t.c]


class IndexFailure(Exception):
    """A problem the index reports in one line (wrong deployment, node refusing)."""


def database_url(where: str | Path) -> str:
    """A SQLAlchemy URL: a path is a SQLite file; a bare PostgreSQL URL gets psycopg 3 (not
    SQLAlchemy's default psycopg2, which this package does not install)."""
    text = str(where)
    if "://" not in text:
        return f"sqlite:///{Path(text)}"
    scheme, rest = text.split("://", 1)
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return text
