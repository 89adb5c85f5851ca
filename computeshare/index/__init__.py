"""The event index: the suite's events in SQL, for the CLI's tables, the dashboard and lookups.

    index = EventIndex.open("deployments/local-31337.sqlite", manifest, web3)
    index.sync()                       # paged eth_getLogs from where it stopped
    index.jobs(limit=20)               # newest first, with status and replicas

SQLite is the default store (a file next to the manifest); PostgreSQL (`postgresql://...`,
through psycopg 3) once a market outgrows one file.

One module a concern:
- `schema`: the tables, their metadata and column types, `database_url`;
- `sync`: `EventIndex`, opening a database and following the chain (pages, reorgs, snapshots);
- `handlers`: decoding logs and each event's rows;
- `queries`: `IndexQueries`, the reads (`EventIndex` inherits them).

Every public name is importable from `computeshare.index` itself.
"""

from computeshare.constants import DEVICE_STATUS
from computeshare.index.handlers import HANDLERS, Decoder, Page
from computeshare.index.queries import IndexQueries
from computeshare.index.schema import (
    DECIDING,
    EVENT_TABLES,
    FINAL_PROPOSAL_STATES,
    PROPOSAL_STATES,
    SCHEMA_VERSION,
    EventText,
    IndexFailure,
    audits,
    blocks,
    database_url,
    delegations,
    device_records,
    device_status,
    devices,
    events,
    fees,
    income,
    job_steps,
    jobs,
    meta,
    metadata,
    pages,
    parameters,
    pool_snapshots,
    proposal_snapshots,
    proposals,
    replicas,
    results,
    settled,
    settlements,
    slashes,
    stake_events,
    treasury,
    votes,
)
from computeshare.index.sync import (
    DEFAULT_CONFIRMATIONS,
    DEFAULT_PAGE,
    WRITER_LOCK,
    EventIndex,
    SyncReport,
)

__all__ = [
    "DECIDING",
    "DEFAULT_CONFIRMATIONS",
    "DEFAULT_PAGE",
    "DEVICE_STATUS",
    "EVENT_TABLES",
    "FINAL_PROPOSAL_STATES",
    "HANDLERS",
    "PROPOSAL_STATES",
    "SCHEMA_VERSION",
    "WRITER_LOCK",
    "Decoder",
    "EventIndex",
    "EventText",
    "IndexFailure",
    "IndexQueries",
    "Page",
    "SyncReport",
    "audits",
    "blocks",
    "database_url",
    "delegations",
    "device_records",
    "device_status",
    "devices",
    "events",
    "fees",
    "income",
    "job_steps",
    "jobs",
    "meta",
    "metadata",
    "pages",
    "parameters",
    "pool_snapshots",
    "proposal_snapshots",
    "proposals",
    "replicas",
    "results",
    "settled",
    "settlements",
    "slashes",
    "stake_events",
    "treasury",
    "votes",
]
