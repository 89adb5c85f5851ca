"""The event index: the suite's events in SQL, for the CLI's tables, the dashboard and lookups.

    index = EventIndex.open("deployments/local-31337.sqlite", manifest, web3)
    index.sync()                       # paged eth_getLogs from where it stopped
    index.jobs(limit=20)               # newest first, with status and replicas

SQLite is the default store (a file next to the manifest); PostgreSQL (`postgresql://...`,
through psycopg 3) once a market outgrows one file. The schema is the same on both: uint256
figures as decimal text (above either database's 64-bit integers), ids and hashes as hex
text, strings from events with NUL turned into U+FFFD (PostgreSQL's text cannot hold it).

How it follows the chain:
- `eth_getLogs` over all suite contracts, `page` blocks at a time; a node that refuses the
  range (public RPCs cap it) halves the page until it answers.
- Each page is written in one database transaction together with the cursor (the last block
  read), so a run cut off anywhere resumes where it stopped, and re-reading a page replaces
  its rows instead of duplicating them (idempotent).
- Reorgs: the hash of the cursor block and of every block holding an event is kept. Before
  reading on, every kept block within `confirmations` of the head is compared with the
  node's; from the lowest block that changed, every row is deleted and read again. A reorg
  deeper than `confirmations` blocks is not detected: choose it above the chain's finality
  depth (the default, 64, is two Ethereum epochs).
- Every table is insert-only and keyed by the block and log index of the event that wrote
  the row, so a rollback is one `DELETE ... WHERE block >= n` per table. Current state is
  read as "the newest row"; figures the events do not carry (a pool's stake, a device's
  record, a proposal's state, the treasury's balance) are read from the contracts' views at
  the page's last block and kept as snapshot rows the same way.

Everything read from the node is untrusted: logs from other addresses are ignored, a log
that does not decode is skipped and counted, and nothing in an event is executed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from eth_abi import decode as abi_decode
from eth_utils import event_abi_to_log_topic, to_checksum_address
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
)
from sqlalchemy import Index as SqlIndex
from sqlalchemy import text as sql_text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.types import TypeDecorator

from computeshare.governance import CANCELED, DEFEATED, EXECUTED, EXPIRED, STATE_NAMES
from computeshare.jobs import OUTCOMES

SCHEMA_VERSION = 2  # 2: fee sweeps by devices, proposals by hashed id
DEFAULT_PAGE = 2_000
DEFAULT_CONFIRMATIONS = 64
# The steps that decide a job's status, and the status each leaves it in.
DECIDING = {
    "cancelled": "cancelled",
    "disputed": "disputed",
    "ruled": "open",
    "settled": "finalized",
}
DEVICE_STATUS = {1: "active", 2: "paused", 3: "retired"}
PROPOSAL_STATES = STATE_NAMES
FINAL_PROPOSAL_STATES = {CANCELED, DEFEATED, EXPIRED, EXECUTED}

# PostgreSQL: the advisory lock that serialises writers of one index (page writes, rollbacks,
# creating the schema); SQLite's own database lock does that there.
WRITER_LOCK = 0x636F6D7075746573  # "computes"

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


class _Moved(Exception):
    """The page cannot be written as read; sync resumes at `resume`."""

    def __init__(self, resume: int):
        super().__init__(resume)
        self.resume = resume


def _hex(value: Any) -> str:
    return "0x" + bytes(value).hex()


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value) if abs(value) >= 2**53 else value
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _type(item: dict) -> str:
    """The ABI type to decode with; strings as bytes (Vyper does not check that a `String`
    is UTF-8, and one bad byte must not hide an event: `_named` decodes them leniently)."""
    if item["type"].startswith("tuple"):
        inner = ",".join(_type(c) for c in item["components"])
        return f"({inner}){item['type'][5:]}"
    if item["type"].startswith("string"):
        return "bytes" + item["type"][6:]
    return item["type"]


def _named(item: dict, value: Any) -> Any:
    """A decoded tuple as a dict of its component names (recursively)."""
    if item["type"] == "tuple":
        return {c["name"]: _named(c, v) for c, v in zip(item["components"], value, strict=True)}
    if item["type"].startswith("tuple["):
        inner = {**item, "type": "tuple"}
        return [_named(inner, v) for v in value]
    if item["type"] == "address":
        return _checksum(value)
    if item["type"] == "string":
        return bytes(value).decode("utf-8", "replace")
    if item["type"] == "string[]":
        return [bytes(v).decode("utf-8", "replace") for v in value]
    return value


@lru_cache(maxsize=65_536)
def _checksum(address: str) -> str:
    """Checksummed address (cached: the same few thousand accounts recur in every page)."""
    return to_checksum_address(address)


@dataclass
class Decoder:
    """topic0 -> (contract name, event ABI), for the suite's addresses only."""

    by_address: dict[str, str]
    by_topic: dict[tuple[str, bytes], dict] = field(default_factory=dict)

    @classmethod
    def from_manifest(cls, manifest: dict) -> Decoder:
        by_address = {
            entry["address"].lower(): name for name, entry in manifest["contracts"].items()
        }
        decoder = cls(by_address)
        for name, abi in manifest.get("abis", {}).items():
            for item in abi:
                if item.get("type") == "event":
                    decoder.by_topic[(name, event_abi_to_log_topic(item))] = item
        return decoder

    def decode(self, log: dict) -> tuple[str, str, dict] | None:
        contract = self.by_address.get(log["address"].lower())
        topics = [bytes.fromhex(t[2:]) for t in log["topics"]]
        if contract is None or not topics:
            return None
        item = self.by_topic.get((contract, topics[0]))
        if item is None:
            return None
        indexed = [i for i in item["inputs"] if i["indexed"]]
        plain = [i for i in item["inputs"] if not i["indexed"]]
        if len(indexed) != len(topics) - 1:
            return None
        args: dict[str, Any] = {}
        for spec, topic in zip(indexed, topics[1:], strict=True):
            (args[spec["name"]],) = abi_decode([_type(spec)], topic)
        values = abi_decode([_type(i) for i in plain], bytes.fromhex(log["data"][2:]))
        for spec, value in zip(plain, values, strict=True):
            args[spec["name"]] = value
        return (
            contract,
            item["name"],
            {i["name"]: _named(i, args[i["name"]]) for i in item["inputs"]},
        )


@dataclass
class Page:
    """What one page of logs adds: rows per table and what to snapshot at its last block."""

    rows: dict[Table, list[dict]] = field(default_factory=lambda: defaultdict(list))
    providers: set[str] = field(default_factory=set)
    devices: set[str] = field(default_factory=set)
    delegations: set[tuple[str, str]] = field(default_factory=set)
    proposals: set[int] = field(default_factory=set)
    revalue: set[str] = field(default_factory=set)  # providers whose share price moved
    hashes: dict[int, str] = field(default_factory=dict)  # block -> hash its logs carry
    skipped: int = 0
    count: int = 0


@dataclass
class SyncReport:
    first: int
    last: int
    events: int
    skipped: int
    rolled_back: int
    seconds: float
    rolled_back_from: int | None = None  # the first block read again after a reorg


class EventIndex:
    """One deployment's events in one database; `sync` brings it up to the node's head."""

    def __init__(
        self,
        engine: Engine,
        manifest: dict,
        web3,
        *,
        page: int = DEFAULT_PAGE,
        confirmations: int = DEFAULT_CONFIRMATIONS,
    ):
        self.engine = engine
        self.manifest = manifest
        self.web3 = web3
        self.page = page
        self.confirmations = confirmations
        self.decoder = Decoder.from_manifest(manifest)
        self.addresses = sorted(to_checksum_address(a) for a in self.decoder.by_address)
        self._contracts: dict[str, Any] = {}
        try:
            with engine.begin() as db:  # two processes opening a new database: one creates it
                _lock(db)
                metadata.create_all(db)
        except OperationalError as error:  # no server, wrong credentials, no such database
            where = engine.url.render_as_string(hide_password=True)
            raise IndexFailure(
                f"cannot open the index database {where}: {_line(error.orig)}"
            ) from None
        self._bind()

    # ------------------------------------------------------------ opening

    @classmethod
    def open(cls, where: str | Path, manifest: dict, web3, **options) -> EventIndex:
        """`where` is a SQLAlchemy URL or a file path (SQLite). `postgresql://` and
        `postgres://` URLs go through psycopg 3 (the driver this package installs)."""
        url = database_url(where)
        # Several processes may share one SQLite file: wait for its lock, don't fail.
        connect_args = {"timeout": 30} if url.startswith("sqlite") else {}
        engine = create_engine(url, connect_args=connect_args)
        if url.startswith("sqlite"):
            # WAL: readers (the dashboard, `show`) never block the writer's commit.
            event.listen(engine, "connect", _wal)
        return cls(engine, manifest, web3, **options)

    @staticmethod
    def default_path(manifest_path: Path) -> Path:
        """deployments/<network>-<chain id>.json -> deployments/<network>-<chain id>.sqlite"""
        return Path(manifest_path).with_suffix(".sqlite")

    def _bind(self) -> None:
        identity = {
            "schema": str(SCHEMA_VERSION),
            "chain_id": str(self.manifest.get("chain_id")),
            "escrow": self.manifest["contracts"]["JobEscrow"]["address"],
        }
        with self.engine.begin() as db:
            _lock(db)
            stored = dict(db.execute(select(meta.c.key, meta.c.value)).all())
            for key, value in identity.items():
                if key in stored and stored[key] != value:
                    raise IndexFailure(
                        f"this index holds {key} {stored[key]}, not {value}: "
                        "delete it or choose another file"
                    )
                if key not in stored:
                    db.execute(insert(meta).values(key=key, value=value))

    @property
    def start_block(self) -> int:
        return min(int(e["block"]) for e in self.manifest["contracts"].values() if e.get("block"))

    def cursor(self) -> int:
        """The last block read (the block before the deployment when nothing is)."""
        with self.engine.connect() as db:
            value = db.execute(select(meta.c.value).where(meta.c.key == "cursor")).scalar()
        return int(value) if value is not None else self.start_block - 1

    # ------------------------------------------------------------ following the chain

    def sync(
        self, to_block: int | None = None, progress: Callable[[int, int, int], None] | None = None
    ) -> SyncReport:
        """Reads every block up to `to_block` (default: the head); returns what it did."""
        began = time.monotonic()
        head = self._call(lambda: self.web3.eth.block_number)
        target = head if to_block is None else min(to_block, head)
        rolled_from = self._check_reorg(head)
        rolled_back = 0 if rolled_from is None else self.cursor_before_rollback - rolled_from + 1
        first = self.cursor() + 1
        start, total, skipped = first, 0, 0
        page = self.page
        retries = 0
        while start <= target:
            end = min(start + page - 1, target)
            try:
                logs = self._get_logs(start, end)
            except Exception as error:  # a capped range, a slow answer: try a smaller page
                from computeshare.rpc import NodeTimeout, node_trouble

                if isinstance(error, NodeTimeout):  # a slow range, or a hung node?
                    self._call(lambda: self.web3.eth.block_number)  # raises if hung
                elif node_trouble(error):
                    raise IndexFailure(f"the node did not answer: {_line(error)}") from error
                if page > 1:
                    page = max(1, page // 2)
                    continue
                raise IndexFailure(
                    f"the node refused eth_getLogs at block {start}: {error}"
                ) from None
            parsed = self._parse(logs, start, end)
            try:
                self._write(start, end, parsed)
            except _Moved as moved:  # a reorg under the page, or another writer: re-read
                # another writer ahead is progress; a page that keeps moving is not
                retries = 0 if moved.resume > start else retries + 1
                if retries > 5:
                    raise IndexFailure(f"the chain keeps changing under block {start}") from None
                start = moved.resume
                continue
            total += parsed.count
            skipped += parsed.skipped
            if progress is not None:
                progress(end, target, total)
            start = end + 1
        return SyncReport(
            first, target, total, skipped, rolled_back, time.monotonic() - began, rolled_from
        )

    def _get_logs(self, start: int, end: int) -> list[dict]:
        """Raw `eth_getLogs` (hex strings, no client-side formatting: it is the hot path)."""
        params = {"address": self.addresses, "fromBlock": hex(start), "toBlock": hex(end)}
        answer = self.web3.provider.make_request("eth_getLogs", [params])
        if "error" in answer:
            raise ValueError(answer["error"].get("message", answer["error"]))
        return answer["result"]

    def _call(self, fetch: Callable[[], Any]) -> Any:
        try:
            return fetch()
        except Exception as error:  # the cause is kept: computeshare.rpc tells node trouble
            raise IndexFailure(f"the node did not answer: {_line(error)}") from error

    def _check_reorg(self, head: int) -> int | None:
        """Compares the kept block hashes within `confirmations` of the cursor with the
        node's, newest first. Every block above the newest one that still matches may have
        changed (only blocks with events and page ends are kept), so rows are rolled back
        from the start of the page holding the block after it. Returns the first block to
        read again, or None."""
        cursor = self.cursor_before_rollback = self.cursor()
        floor = max(self.start_block, cursor - self.confirmations + 1)
        with self.engine.connect() as db:
            kept = db.execute(
                select(blocks.c.number, blocks.c.hash)
                .where(blocks.c.number >= floor)
                .order_by(blocks.c.number.desc())
            ).all()
        if not kept:
            return None
        matched = None
        for number, stored_hash in kept:
            block = (
                self._call(lambda n=number: self.web3.eth.get_block(n)) if number <= head else None
            )
            if block is not None and _hex(block["hash"]) == stored_hash:
                matched = number
                break
        if matched == kept[0][0]:
            return None  # the newest kept block is unchanged, so is every block below it
        changed = min(floor if matched is None else matched + 1, head + 1)
        with self.engine.connect() as db:
            page_start = db.execute(
                select(func.max(pages.c.start)).where(pages.c.start <= changed)
            ).scalar()
        start = min(changed, page_start) if page_start is not None else changed
        self.rollback(start)
        return start

    def rollback(self, block: int) -> None:
        """Forgets every row from `block` on; the next sync reads them again."""
        with self.engine.begin() as db:
            _lock(db)
            for table in EVENT_TABLES:
                db.execute(delete(table).where(table.c.block >= block))
            db.execute(delete(blocks).where(blocks.c.number >= block))
            db.execute(delete(pages).where(pages.c.start >= block))
            self._set_cursor(db, block - 1)

    def _set_cursor(self, db, block: int) -> None:
        db.execute(delete(meta).where(meta.c.key == "cursor"))
        db.execute(insert(meta).values(key="cursor", value=str(block)))

    def _parse(self, logs: Iterable[dict], start: int, end: int) -> Page:
        page = Page()
        seen: set[tuple[int, int]] = set()
        for log in logs:
            try:  # everything from the node is checked before it is used
                where = {
                    "block": int(log["blockNumber"], 16),
                    "log_index": int(log["logIndex"], 16),
                }
                if (
                    log.get("removed")
                    or not start <= where["block"] <= end
                    or not 0 <= where["log_index"] < 1 << 30
                    or (where["block"], where["log_index"]) in seen
                ):
                    raise ValueError("a log outside the page, removed, or repeated")
                seen.add((where["block"], where["log_index"]))
                decoded = self.decoder.decode(log)
                block_hash = str(log["blockHash"]).lower()
            except Exception:  # malformed data from the node: skipped, counted
                decoded = None
            if decoded is None:
                page.skipped += 1
                continue
            page.hashes[where["block"]] = block_hash
            contract, name, args = decoded
            page.rows[events].append(
                {
                    **where,
                    "tx": log["transactionHash"],
                    "contract": contract,
                    "name": name,
                    "args": _jsonable(args),
                }
            )
            handler = HANDLERS.get((contract, name)) or HANDLERS.get(("*", name))
            if handler is not None:
                handler(page, where, args, contract)
            page.count += 1
        return page

    def _write(self, start: int, end: int, page: Page) -> None:
        headers = self._headers(sorted(set(page.hashes) | {end}))
        by_number = {h["number"]: h["hash"] for h in headers}
        if any(by_number.get(n) != h for n, h in page.hashes.items()):
            raise _Moved(start)  # logs and headers from different forks: read the page again
        snapshots = self._snapshots(end, page, by_number[end])
        with self.engine.begin() as db:
            _lock(db)  # then the cursor read is the last writer's
            cursor = db.execute(select(meta.c.value).where(meta.c.key == "cursor")).scalar()
            if cursor is not None and int(cursor) != start - 1:
                raise _Moved(int(cursor) + 1)  # another process moved the cursor meanwhile
            for table in EVENT_TABLES:  # a page read again replaces its rows
                db.execute(delete(table).where(table.c.block.between(start, end)))
            db.execute(delete(blocks).where(blocks.c.number.between(start, end)))
            db.execute(delete(pages).where(pages.c.start >= start))
            for table, rows in list(page.rows.items()) + snapshots:
                if rows:
                    db.execute(insert(table), rows)
            db.execute(insert(blocks), headers)
            db.execute(insert(pages).values(start=start, end=end))
            self._set_cursor(db, end)

    def _headers(self, numbers: list[int]) -> list[dict]:
        found = []
        for chunk in range(0, len(numbers), 200):
            with self.web3.batch_requests() as batch:
                for number in numbers[chunk : chunk + 200]:
                    batch.add(self.web3.eth.get_block(number))
                answers = batch.execute()
            for block in answers:
                found.append(
                    {
                        "number": int(block["number"]),
                        "hash": _hex(block["hash"]),
                        "timestamp": int(block["timestamp"]),
                    }
                )
        return found

    # ------------------------------------------------------------ snapshots from views

    def contract(self, name: str):
        if name not in self._contracts:
            entry = self.manifest["contracts"][name]
            self._contracts[name] = self.web3.eth.contract(
                address=to_checksum_address(entry["address"]), abi=self.manifest["abis"][name]
            )
        return self._contracts[name]

    def _snapshots(self, block: int, page: Page, block_hash: str) -> list[tuple[Table, list[dict]]]:
        at = {"block_identifier": block_hash}  # the views of exactly the block read
        key = {"block": block, "log_index": 1 << 30}  # after every event of the block
        if not all(
            int(e.get("block") or 0) <= block for e in self.manifest["contracts"].values()
        ):  # mid-deployment: the views are not all there yet, and nothing uses them
            return []
        staking = self.contract("Staking")
        pools = []
        for n, provider in enumerate(sorted(page.providers)):
            p = staking.functions.pool(provider).call(**at)
            pools.append(
                {
                    **key,
                    "log_index": key["log_index"] + n,
                    "provider": provider,
                    "own_stake": str(p[0]),
                    "locked": str(p[1]),
                    "own_thawing": str(p[2]),
                    "delegated": str(p[4]),
                    "delegated_thawing": str(p[6]),
                    "cut_bps": p[8],
                    "pending_cut_bps": p[9],
                    "pending_cut_at": p[10],
                }
            )
        pairs = set(page.delegations)
        if page.revalue:  # income and slashes move every delegator's value
            with self.engine.connect() as db:
                pairs |= set(
                    db.execute(
                        select(delegations.c.provider, delegations.c.delegator)
                        .where(delegations.c.provider.in_(page.revalue))
                        .distinct()
                    ).all()
                )
        positions = []
        for n, (provider, delegator) in enumerate(sorted(pairs)):
            d = staking.functions.delegation(provider, delegator).call(**at)
            positions.append(
                {
                    **key,
                    "log_index": key["log_index"] + n,
                    "provider": provider,
                    "delegator": delegator,
                    "shares": str(d[0]),
                    "value": str(d[1]),
                    "thawing": str(d[2]),
                    "unlock_at": d[3],
                }
            )
        view = self.contract("JobEscrowView")
        records = []
        for n, device_id in enumerate(sorted(page.devices)):
            r = view.functions.device_record(bytes.fromhex(device_id[2:])).call(**at)
            records.append(
                {
                    **key,
                    "log_index": key["log_index"] + n,
                    "device_id": device_id,
                    "running": r[0],
                    "completed": r[1],
                    "failed": r[2],
                    "slashed": r[3],
                }
            )
        governor = self.contract("Governor")
        live = page.proposals | self._live_proposals()
        states = []
        for n, proposal_id in enumerate(sorted(live)):
            state = governor.functions.state(proposal_id).call(**at)
            against, for_, abstain = governor.functions.proposalVotes(proposal_id).call(**at)
            try:
                quorum = governor.functions.proposalQuorum(proposal_id).call(**at)
            except Exception:  # before its snapshot the quorum is not known yet
                quorum = 0
            states.append(
                {
                    **key,
                    "log_index": key["log_index"] + n,
                    "proposal_id": str(proposal_id),
                    "state": state,
                    "against": str(against),
                    "for_": str(for_),
                    "abstain": str(abstain),
                    "quorum": str(quorum),
                    "deadline": governor.functions.proposalDeadline(proposal_id).call(**at),
                    "eta": governor.functions.proposalEta(proposal_id).call(**at),
                }
            )
        balances = []
        if page.count:
            escrow = self.contract("JobEscrow")
            where = escrow.functions.treasury().call(**at)
            balance = self.contract("ComputeToken").functions.balanceOf(where).call(**at)
            balances.append({**key, "address": where, "balance": str(balance)})
        return [
            (pool_snapshots, pools),
            (delegations, positions),
            (device_records, records),
            (proposal_snapshots, states),
            (treasury, balances),
        ]

    def _live_proposals(self) -> set[int]:
        latest = self._latest(proposal_snapshots, "proposal_id")
        with self.engine.connect() as db:
            rows = db.execute(select(latest.c.proposal_id, latest.c.state)).all()
            known = db.execute(select(proposals.c.proposal_id)).scalars().all()
        final = {int(p) for p, state in rows if state in FINAL_PROPOSAL_STATES}
        return {int(p) for p in known} - final

    # ------------------------------------------------------------ queries

    @staticmethod
    def _latest(table: Table, *keys: str):
        """The newest row per key, as a subquery."""
        newest = (
            select(
                *(table.c[k] for k in keys),
                func.max(table.c.block * (1 << 31) + table.c.log_index).label("at"),
            )
            .group_by(*(table.c[k] for k in keys))
            .subquery()
        )
        joined = table.join(
            newest,
            (table.c.block * (1 << 31) + table.c.log_index == newest.c.at)
            & _and(table.c[k] == newest.c[k] for k in keys),
        )
        return select(table).select_from(joined).subquery()

    def _rows(self, query) -> list[dict]:
        with self.engine.connect() as db:
            return [dict(row._mapping) for row in db.execute(query)]

    def _times(self, numbers: Iterable[int]) -> dict[int, int]:
        numbers = set(numbers)
        if not numbers:
            return {}
        with self.engine.connect() as db:
            rows = db.execute(
                select(blocks.c.number, blocks.c.timestamp).where(blocks.c.number.in_(numbers))
            ).all()
        return dict(rows)

    def head_time(self) -> int:
        with self.engine.connect() as db:
            value = db.execute(
                select(blocks.c.timestamp).order_by(blocks.c.number.desc()).limit(1)
            ).scalar()
        return int(value or 0)

    def resolve(self, table: Table, column: str, prefix: str) -> str:
        """A full id from an unambiguous hex prefix (at least 6 hex digits)."""
        text = prefix.lower().removeprefix("0x")
        if len(text) < 6 or any(c not in "0123456789abcdef" for c in text):
            raise IndexFailure(f"{prefix!r} is not an id or a prefix of at least 6 hex digits")
        with self.engine.connect() as db:
            found = (
                db.execute(
                    select(table.c[column])
                    .where(table.c[column].like(f"0x{text}%"))
                    .distinct()
                    .limit(2)
                )
                .scalars()
                .all()
            )
        if not found:
            raise IndexFailure(f"no {column.replace('_', ' ')} starts with 0x{text}")
        if len(found) > 1:
            what = column.removesuffix("_id")
            raise IndexFailure(
                f"0x{text} is ambiguous: several {what}s start with it; give more digits"
            )
        return found[0]

    def job_terms(self, job_id: str) -> dict | None:
        with self.engine.connect() as db:
            return db.execute(select(jobs.c.terms).where(jobs.c.job_id == job_id)).scalar()

    def _status_query(self):
        """(job_id, status) of every job that left `open`, from its newest deciding step."""
        deciding = (
            select(job_steps)
            .where(job_steps.c.step.in_(("cancelled", "disputed", "ruled", "settled")))
            .subquery()
        )
        newest = self._latest(deciding, "job_id")
        status = case(
            (newest.c.step == "settled", "finalized"),
            (newest.c.step == "ruled", "open"),
            else_=newest.c.step,
        )
        return select(newest.c.job_id, status.label("status")).subquery()

    def jobs(self, *, limit: int = 50, offset: int = 0, status: str | None = None) -> list[dict]:
        """Newest jobs first, with their status and each replica's state."""
        decided = self._status_query()
        state = func.coalesce(decided.c.status, "open").label("status")
        query = (
            select(jobs, state)
            .select_from(jobs.outerjoin(decided, decided.c.job_id == jobs.c.job_id))
            .order_by(jobs.c.block.desc(), jobs.c.log_index.desc())
            .limit(limit)
            .offset(offset)
        )
        if status is not None:
            query = query.where(state == status)
        rows = self._rows(query)
        replica_states = self._replica_states([r["job_id"] for r in rows])
        times = self._times(r["block"] for r in rows)
        for row in rows:
            row["replica_states"] = replica_states.get(row["job_id"], {})
            row["posted_at"] = times.get(row["block"])
        return rows

    def job_count(self) -> dict[str, int]:
        """How many jobs are in each status."""
        decided = self._status_query()
        state = func.coalesce(decided.c.status, "open")
        query = (
            select(state, func.count())
            .select_from(jobs.outerjoin(decided, decided.c.job_id == jobs.c.job_id))
            .group_by(state)
        )
        with self.engine.connect() as db:
            return {status: count for status, count in db.execute(query).all()}

    def _replica_states(self, ids: list[str]) -> dict[str, dict[int, str]]:
        """slot -> its latest state (accepted, committed, revealed, then paid/slashed/...)."""
        state: dict[str, dict[int, str]] = defaultdict(dict)
        if not ids:
            return state
        with self.engine.connect() as db:
            rows = db.execute(
                select(job_steps.c.job_id, job_steps.c.step, job_steps.c.slot, job_steps.c.detail)
                .where(job_steps.c.job_id.in_(ids))
                .order_by(job_steps.c.block, job_steps.c.log_index)
            ).all()
        for job_id, step, slot, detail in rows:
            if step in ("accepted", "committed", "revealed"):
                state[job_id][slot] = step
            elif step == "submitted":
                state[job_id][0] = "revealed"
            elif step == "replica_settled":
                state[job_id][slot] = OUTCOMES.get(detail.get("outcome"), "settled")
        return state

    def posted(self, first: int, last: int) -> list[tuple[bytes, dict, bytes]]:
        """(job id, terms, spec) of every job posted in blocks `first`..`last`, in order."""
        query = (
            select(jobs.c.job_id, jobs.c.terms, jobs.c.spec)
            .where(jobs.c.block.between(first, last))
            .order_by(jobs.c.block, jobs.c.log_index)
        )
        return [
            (bytes.fromhex(j[2:]), terms, bytes.fromhex(spec[2:]))
            for j, terms, spec in self._rows_raw(query)
        ]

    def single_replica(self, job_id: str) -> tuple[str, int, bytes] | None:
        """A k = 1 job's replica as JobEscrow binds it: (provider, device nonce, digest), the
        digest zero, then the commitment, then the result; None if nobody accepted it."""
        query = (
            select(job_steps.c.step, job_steps.c.actor, job_steps.c.detail)
            .where(job_steps.c.job_id == job_id)
            .where(job_steps.c.step.in_(("accepted", "committed", "revealed", "submitted")))
            .order_by(job_steps.c.block, job_steps.c.log_index)
        )
        replica = None
        for step, actor, detail in self._rows_raw(query):
            if step == "accepted":
                replica = (actor, int(detail["device_nonce"]), b"\x00" * 32)
            elif replica is not None and step == "committed":
                replica = (replica[0], replica[1], bytes.fromhex(detail["commitment"][2:]))
            elif replica is not None and step == "revealed":
                replica = (replica[0], replica[1], bytes.fromhex(detail["result_hash"][2:]))
        return replica

    def _rows_raw(self, query) -> list[tuple]:
        with self.engine.connect() as db:
            return [tuple(row) for row in db.execute(query)]

    def job(self, job_id: str) -> dict | None:
        with self.engine.connect() as db:
            row = db.execute(select(jobs).where(jobs.c.job_id == job_id)).first()
        if row is None:
            return None
        job = dict(row._mapping)
        job["replica_states"] = self._replica_states([job_id]).get(job_id, {})
        steps = self._rows(
            select(job_steps)
            .where(job_steps.c.job_id == job_id)
            .order_by(job_steps.c.block, job_steps.c.log_index)
        )
        job["status"] = "open"  # from its own newest deciding step (no scan of all jobs)
        for step in steps:
            if step["step"] in DECIDING:
                job["status"] = DECIDING[step["step"]]
        job["replica_list"] = self._rows(
            select(replicas).where(replicas.c.job_id == job_id).order_by(replicas.c.slot)
        )
        job["settlements"] = self._rows(select(settlements).where(settlements.c.job_id == job_id))
        job["settlement"] = next(
            iter(self._rows(select(settled).where(settled.c.job_id == job_id))), None
        )
        job["result"] = next(
            iter(self._rows(select(results).where(results.c.job_id == job_id))), None
        )
        if job["result"] is not None:
            job["result"]["fuel"] = int(job["result"]["fuel"])  # stored as text: a uint64
        times = self._times([job["block"], *(s["block"] for s in steps)])
        job["posted_at"] = times.get(job["block"])
        for step in steps:
            step["time"] = times.get(step["block"])
        job["steps"] = steps
        return job

    def devices(self) -> list[dict]:
        spec = self._latest(devices, "device_id")
        status = self._latest(device_status, "device_id")
        record = self._latest(device_records, "device_id")
        rows = self._rows(select(spec).order_by(spec.c.block, spec.c.log_index))
        states = {r["device_id"]: r["status"] for r in self._rows(select(status))}
        records = {r["device_id"]: r for r in self._rows(select(record))}
        audit_rows = self._rows(select(audits).order_by(audits.c.block, audits.c.log_index))
        audited: dict[str, set] = defaultdict(set)
        for a in audit_rows:  # a device holds one audit: the newest, until revoked
            audited[a["device_id"]] = set() if a["revoked"] else {a["auditor"]}
        for row in rows:
            r = records.get(row["device_id"], {})
            row["status"] = DEVICE_STATUS.get(states.get(row["device_id"], 1), "?")
            row["auditors"] = sorted(audited[row["device_id"]])
            for k in ("running", "completed", "failed", "slashed"):
                row[k] = r.get(k, 0)
        return rows

    def pools(self) -> list[dict]:
        latest = self._latest(pool_snapshots, "provider")
        rows = self._rows(select(latest).order_by(latest.c.provider))
        earned = defaultdict(int)
        for r in self._rows(select(income.c.provider, income.c.amount)):
            earned[r["provider"]] += int(r["amount"])
        lost = defaultdict(int)
        for r in self._rows(select(slashes.c.provider, slashes.c.total)):
            lost[r["provider"]] += int(r["total"])
        positions = self.delegation_list()
        for row in rows:
            row["income"] = earned[row["provider"]]
            row["slashed"] = lost[row["provider"]]
            row["delegators"] = sum(
                1 for d in positions if d["provider"] == row["provider"] and int(d["shares"]) > 0
            )
        return rows

    def delegation_list(self, provider: str | None = None) -> list[dict]:
        latest = self._latest(delegations, "provider", "delegator")
        query = select(latest)
        if provider is not None:
            query = query.where(latest.c.provider == provider)
        return self._rows(query.order_by(latest.c.provider, latest.c.delegator))

    def slash_list(self) -> list[dict]:
        rows = self._rows(select(slashes).order_by(slashes.c.block))
        times = self._times(r["block"] for r in rows)
        for r in rows:
            r["time"] = times.get(r["block"])
        return rows

    def proposals(self) -> list[dict]:
        latest = self._latest(proposal_snapshots, "proposal_id")
        snaps = {r["proposal_id"]: r for r in self._rows(select(latest))}
        rows = self._rows(select(proposals).order_by(proposals.c.block, proposals.c.log_index))
        for row in rows:
            snap = snaps.get(row["proposal_id"], {})
            row.update(
                {k: v for k, v in snap.items() if k not in ("block", "log_index", "proposal_id")}
            )
            row["state_name"] = PROPOSAL_STATES[snap["state"]] if snap else "?"
        return rows

    def proposal(self, proposal_id: str) -> dict | None:
        found = [p for p in self.proposals() if p["proposal_id"] == str(proposal_id)]
        if not found:
            return None
        row = found[0]
        row["votes"] = self._rows(
            select(votes).where(votes.c.proposal_id == str(proposal_id)).order_by(votes.c.block)
        )
        row["decoded"] = [self.decode_action(a) for a in row["actions"]]
        return row

    def decode_action(self, action: dict) -> str:
        """`Contract.function(arg=value, ...)` for a suite contract, else the raw call."""
        target = to_checksum_address(action["target"])
        name = self.decoder.by_address.get(target.lower())
        data = bytes.fromhex(action["calldata"].removeprefix("0x"))
        value = int(action["value"])
        if name is None or len(data) < 4:
            return f"call {target} with {len(data)} bytes, value {value}"
        try:
            function, args = self.contract(name).decode_function_input(data)
        except Exception:
            return f"{name}: unknown call 0x{data[:4].hex()}"
        shown = ", ".join(f"{k}={_jsonable(v)}" for k, v in args.items())
        return f"{name}.{function.fn_name}({shown})" + (f" with {value} wei" if value else "")

    def fee_list(self) -> list[dict]:
        rows = self._rows(
            select(settlements.c.block, settlements.c.fee).where(settlements.c.fee != "0")
        )
        times = self._times(r["block"] for r in rows)
        for r in rows:
            r["time"] = times.get(r["block"])
        return rows

    def treasury_balance(self) -> tuple[str | None, int]:
        rows = self._rows(select(treasury).order_by(treasury.c.block.desc()).limit(1))
        return (rows[0]["address"], int(rows[0]["balance"])) if rows else (None, 0)

    def counts(self) -> dict[str, int]:
        with self.engine.connect() as db:
            return {
                t.name: db.execute(select(func.count()).select_from(t)).scalar()
                for t in (events, jobs, devices, proposals, votes, slashes)
            }


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


def _lock(db: Connection) -> None:
    """Serialises the writers of one PostgreSQL database until this transaction ends (READ
    COMMITTED would otherwise let two of them read the same cursor and write one page twice;
    SQLite takes its database lock at the first write)."""
    if db.dialect.name == "postgresql":
        db.execute(sql_text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITER_LOCK})


def _wal(connection, record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _and(conditions):
    conditions = list(conditions)
    result = conditions[0]
    for c in conditions[1:]:
        result = result & c
    return result


# ---------------------------------------------------------------- event handlers


def _device(page: Page, where: dict, a: dict, contract: str) -> None:
    spec = a["spec"]
    page.rows[devices].append(
        {
            **where,
            "device_id": _hex(a["device_id"]),
            "owner": a["owner"],
            "nonce": a.get("nonce"),
            "cpus": spec["cpu_cores"],
            "memory_mb": spec["memory_mb"],
            "gpus": spec["gpu_count"],
            "gpu_model": bytes(spec["gpu_model"]).rstrip(b"\0").decode("utf-8", "replace"),
            "vram_mb": spec["vram_mb"],
            "region": spec["region"],
            "price_per_second": str(spec["price_per_second"]),
            "max_jobs": spec["max_concurrent_jobs"],
            "attestation": _hex(spec["attestation"]),
            "uri": a["metadata_uri"],
        }
    )
    page.devices.add(_hex(a["device_id"]))


def _device_updated(page: Page, where: dict, a: dict, contract: str) -> None:
    with_nonce = dict(a)
    with_nonce.setdefault("nonce", None)
    _device(page, where, with_nonce, contract)


def _device_status(page: Page, where: dict, a: dict, contract: str) -> None:
    page.rows[device_status].append(
        {**where, "device_id": _hex(a["device_id"]), "status": a["new_status"]}
    )


def _audit(revoked: int):
    def handle(page: Page, where: dict, a: dict, contract: str) -> None:
        page.rows[audits].append(
            {
                **where,
                "device_id": _hex(a["device_id"]),
                "auditor": a.get("auditor") or a.get("by"),
                "hardware_hash": _hex(a["hardware_hash"]) if "hardware_hash" in a else None,
                "revoked": revoked,
            }
        )

    return handle


def _job_posted(page: Page, where: dict, a: dict, contract: str) -> None:
    t = a["terms"]
    page.rows[jobs].append(
        {
            **where,
            "job_id": _hex(a["job_id"]),
            "client": a["client"],
            "terms": _jsonable(t),
            "replicas": t["replicas"],
            "price": str(t["price_per_replica"]),
            "collateral": str(t["collateral_per_replica"]),
            "deadline": t["deadline"],
            "spec": _hex(a["spec"]),
        }
    )


def _step(step: str, actor: str | None = None, slot: bool = False):
    def handle(page: Page, where: dict, a: dict, contract: str) -> None:
        detail = {
            k: _jsonable(v)
            for k, v in a.items()
            if k not in ("job_id", "slot", actor or "", "output")
        }
        if "output" in a:
            detail["output_bytes"] = len(a["output"])
        page.rows[job_steps].append(
            {
                **where,
                "job_id": _hex(a["job_id"]),
                "step": step,
                "slot": a.get("slot") if slot else None,
                "actor": a.get(actor) if actor else None,
                "detail": detail,
            }
        )
        if "device_id" in a:
            page.devices.add(_hex(a["device_id"]))
        if "provider" in a:
            page.providers.add(a["provider"])

    return handle


def _accepted(page: Page, where: dict, a: dict, contract: str) -> None:
    _step("accepted", "provider", slot=True)(page, where, a, contract)
    page.rows[replicas].append(
        {
            **where,
            "job_id": _hex(a["job_id"]),
            "slot": a["slot"],
            "provider": a["provider"],
            "device_id": _hex(a["device_id"]),
            "device_nonce": a["device_nonce"],
            "collateral": str(a["collateral"]),
        }
    )


def _submitted(page: Page, where: dict, a: dict, contract: str) -> None:
    _step("submitted")(page, where, a, contract)
    page.rows[results].append(
        {
            **where,
            "job_id": _hex(a["job_id"]),
            "status": a["status"],
            "fuel": str(a["fuel"]),
            "output_hash": _hex(a["output_hash"]),
            "output": _hex(a["output"]),
        }
    )


def _replica_settled(page: Page, where: dict, a: dict, contract: str) -> None:
    _step("replica_settled", "provider", slot=True)(page, where, a, contract)
    page.rows[settlements].append(
        {
            **where,
            "job_id": _hex(a["job_id"]),
            "slot": a["slot"],
            "provider": a["provider"],
            "device_id": _hex(a["device_id"]),
            "outcome": a["outcome"],
            "paid": str(a["paid"]),
            "fee": str(a["fee"]),
            "slashed": str(a["slashed"]),
        }
    )


def _job_settled(page: Page, where: dict, a: dict, contract: str) -> None:
    _step("settled", "keeper")(page, where, a, contract)
    page.rows[settled].append(
        {
            **where,
            "job_id": _hex(a["job_id"]),
            "keeper": a["keeper"],
            "result_hash": _hex(a["result_hash"]),
            **{k: str(a[k]) for k in ("paid", "fees", "refunded", "compensation", "bounty")},
        }
    )


def _stake(kind: str):
    def handle(page: Page, where: dict, a: dict, contract: str) -> None:
        provider = a["provider"]
        delegator = a.get("delegator")
        page.providers.add(provider)
        if delegator:
            page.delegations.add((provider, delegator))
        page.rows[stake_events].append(
            {
                **where,
                "provider": provider,
                "delegator": delegator,
                "kind": kind,
                "amount": str(a.get("amount", a.get("cut_bps", 0))),
            }
        )

    return handle


def _income(page: Page, where: dict, a: dict, contract: str) -> None:
    page.providers.add(a["provider"])
    page.revalue.add(a["provider"])
    page.rows[income].append(
        {
            **where,
            "provider": a["provider"],
            "payer": a["payer"],
            "amount": str(a["amount"]),
            "to_delegators": str(a["to_delegators"]),
        }
    )


def _slashed(page: Page, where: dict, a: dict, contract: str) -> None:
    page.providers.add(a["provider"])
    page.revalue.add(a["provider"])
    own = a["from_own_stake"] + a["from_own_thawing"]
    delegated = a["from_delegated"] + a["from_delegated_thawing"] + a["from_warming"]
    page.rows[slashes].append(
        {
            **where,
            "provider": a["provider"],
            "beneficiary": a["beneficiary"],
            "own": str(own),
            "delegated": str(delegated),
            "reward": str(a["reward"]),
            "total": str(own + delegated),
        }
    )


def _fees(page: Page, where: dict, a: dict, contract: str) -> None:
    page.rows[fees].append(
        {**where, "devices": a["devices"], "amount": str(a["amount"]), "treasury": a["treasury"]}
    )


def _proposal(page: Page, where: dict, a: dict, contract: str) -> None:
    actions = [
        {"target": t, "value": str(v), "signature": s, "calldata": _hex(c)}
        for t, v, s, c in zip(
            a["targets"], a["values"], a["signatures"], a["calldatas"], strict=False
        )
    ]
    page.rows[proposals].append(
        {
            **where,
            "proposal_id": str(a["proposalId"]),
            "proposer": a["proposer"],
            "actions": actions,
            "vote_start": a["voteStart"],
            "vote_end": a["voteEnd"],
            "description": a["description"],
        }
    )
    page.proposals.add(a["proposalId"])


def _vote(page: Page, where: dict, a: dict, contract: str) -> None:
    page.rows[votes].append(
        {
            **where,
            "proposal_id": str(a["proposalId"]),
            "voter": a["voter"],
            "support": a["support"],
            "weight": str(a["weight"]),
            "reason": a["reason"],
        }
    )
    page.proposals.add(a["proposalId"])


def _proposal_step(page: Page, where: dict, a: dict, contract: str) -> None:
    page.proposals.add(a["proposalId"])


def _parameter(page: Page, where: dict, a: dict, contract: str) -> None:
    page.rows[parameters].append(
        {
            **where,
            "contract": contract,
            "key": str(a["key"]),
            "old": str(a["old_value"]),
            "new": str(a["new_value"]),
        }
    )


HANDLERS: dict[tuple[str, str], Callable[[Page, dict, dict, str], None]] = {
    ("DeviceRegistry", "DeviceRegistered"): _device,
    ("DeviceRegistry", "DeviceUpdated"): _device_updated,
    ("DeviceRegistry", "DeviceStatusChanged"): _device_status,
    ("DeviceRegistry", "DeviceAudited"): _audit(0),
    ("DeviceRegistry", "AuditRevoked"): _audit(1),
    ("JobEscrow", "JobPosted"): _job_posted,
    ("JobEscrow", "JobCancelled"): _step("cancelled", "client"),
    ("JobEscrow", "ReplicaAccepted"): _accepted,
    ("JobEscrow", "ResultCommitted"): _step("committed", "provider", slot=True),
    ("JobEscrow", "ResultRevealed"): _step("revealed", "provider", slot=True),
    ("JobEscrow", "ResultSubmitted"): _submitted,
    ("JobEscrow", "Disputed"): _step("disputed", "client"),
    ("JobEscrow", "Ruled"): _step("ruled", "arbiter"),
    ("JobEscrow", "ReplicaSettled"): _replica_settled,
    ("JobEscrow", "JobSettled"): _job_settled,
    ("JobEscrow", "FeesSwept"): _fees,
    ("Staking", "Staked"): _stake("staked"),
    ("Staking", "ThawRequested"): _stake("thaw"),
    ("Staking", "ThawCancelled"): _stake("thaw_cancelled"),
    ("Staking", "Withdrawn"): _stake("withdrawn"),
    ("Staking", "Delegated"): _stake("delegated"),
    ("Staking", "DelegationActivated"): _stake("activated"),
    ("Staking", "WarmupCancelled"): _stake("warmup_cancelled"),
    ("Staking", "Undelegated"): _stake("undelegated"),
    ("Staking", "UndelegationCancelled"): _stake("undelegation_cancelled"),
    ("Staking", "DelegationWithdrawn"): _stake("delegation_withdrawn"),
    ("Staking", "DelegatorCutScheduled"): _stake("cut_scheduled"),
    ("Staking", "CollateralLocked"): _stake("locked"),
    ("Staking", "CollateralUnlocked"): _stake("unlocked"),
    ("Staking", "IncomeAdded"): _income,
    ("Staking", "Slashed"): _slashed,
    ("Governor", "ProposalCreated"): _proposal,
    ("Governor", "VoteCast"): _vote,
    ("Governor", "VoteCastWithParams"): _vote,
    ("Governor", "ProposalQueued"): _proposal_step,
    ("Governor", "ProposalExecuted"): _proposal_step,
    ("Governor", "ProposalCanceled"): _proposal_step,
    ("Governor", "ProposalExtended"): _proposal_step,
    ("*", "ParameterChanged"): _parameter,
}


def _line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
