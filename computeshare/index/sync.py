"""Following the chain into the index: `EventIndex` (opening, `sync`, reorgs, snapshots
from the views; its reads are `IndexQueries`).

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
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Table, create_engine, delete, event, func, insert, select
from sqlalchemy import text as sql_text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from computeshare.index.handlers import HANDLERS, Decoder, Page, _checksum, _hex, _jsonable
from computeshare.index.queries import IndexQueries
from computeshare.index.schema import (
    EVENT_TABLES,
    FINAL_PROPOSAL_STATES,
    SCHEMA_VERSION,
    IndexFailure,
    blocks,
    database_url,
    delegations,
    device_records,
    events,
    meta,
    metadata,
    pages,
    pool_snapshots,
    proposal_snapshots,
    proposals,
    treasury,
)

DEFAULT_PAGE = 2_000
DEFAULT_CONFIRMATIONS = 64

# PostgreSQL: the advisory lock that serialises writers of one index (page writes, rollbacks,
# creating the schema); SQLite's own database lock does that there.
WRITER_LOCK = 0x636F6D7075746573  # "computes"


class _Moved(Exception):
    """The page cannot be written as read; sync resumes at `resume`."""

    def __init__(self, resume: int):
        super().__init__(resume)
        self.resume = resume


@dataclass
class SyncReport:
    first: int
    last: int
    events: int
    skipped: int
    rolled_back: int
    seconds: float
    rolled_back_from: int | None = None  # the first block read again after a reorg


class Node(Protocol):
    """What the index asks of a node: the head, block headers, logs, and a web3 for the
    views it reads at a block. `Web3Node` asks through web3 (ape's connection);
    `computeshare.reader.JsonRpc` asks over plain HTTP, so a read that finds nothing new
    loads neither web3 nor ape."""

    def block_number(self) -> int: ...

    def block(self, number: int) -> dict | None: ...

    def blocks(self, numbers: list[int]) -> list[dict]: ...

    def logs(self, params: dict) -> list[dict]: ...

    def web3(self) -> Any: ...


def _header(block: Any) -> dict:
    """A block as {number, hash (0x-hex), timestamp}, from web3's (ints, bytes) or from raw
    JSON-RPC (hex strings); anything else from the node raises."""

    def number(value: Any) -> int:
        return int(value, 16) if isinstance(value, str) else int(value)

    raw = block["hash"]
    block_hash = raw.lower() if isinstance(raw, str) else _hex(raw)
    if len(block_hash) != 66 or not block_hash.startswith("0x"):
        raise ValueError(f"a block hash of {len(block_hash)} characters")
    return {
        "number": number(block["number"]),
        "hash": block_hash,
        "timestamp": number(block["timestamp"]),
    }


class Web3Node:
    """A `Node` over a web3 instance."""

    def __init__(self, web3):
        self._web3 = web3

    def block_number(self) -> int:
        return self._web3.eth.block_number

    def block(self, number: int) -> dict | None:
        return self._web3.eth.get_block(number)

    def blocks(self, numbers: list[int]) -> list[dict]:
        with self._web3.batch_requests() as batch:
            for number in numbers:
                batch.add(self._web3.eth.get_block(number))
            return list(batch.execute())

    def logs(self, params: dict) -> list[dict]:
        """Raw `eth_getLogs` (hex strings, no client-side formatting: it is the hot path)."""
        answer = self._web3.provider.make_request("eth_getLogs", [params])
        if "error" in answer:
            raise ValueError(answer["error"].get("message", answer["error"]))
        return answer["result"]

    def web3(self):
        return self._web3


class EventIndex(IndexQueries):
    """One deployment's events in one database; `sync` brings it up to the node's head."""

    def __init__(
        self,
        engine: Engine,
        manifest: dict,
        node,
        *,
        page: int = DEFAULT_PAGE,
        confirmations: int = DEFAULT_CONFIRMATIONS,
    ):
        self.engine = engine
        self.manifest = manifest
        # a web3 (ape's `chain.provider.web3`) or a `Node`
        self.node: Node = Web3Node(node) if hasattr(node, "eth") else node
        self.page = page
        self.confirmations = confirmations
        self._decoder: Decoder | None = None
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

    @property
    def decoder(self) -> Decoder:
        """The suite's event ABIs by topic, built when first needed (a read that finds
        nothing new decodes nothing)."""
        if self._decoder is None:
            self._decoder = Decoder.from_manifest(self.manifest)
        return self._decoder

    @property
    def addresses(self) -> list[str]:
        return sorted(_checksum(a) for a in self.decoder.by_address)

    @property
    def web3(self):
        return self.node.web3()

    # ------------------------------------------------------------ opening

    @classmethod
    def open(cls, where: str | Path, manifest: dict, node, **options) -> EventIndex:
        """`where` is a SQLAlchemy URL or a file path (SQLite). `postgresql://` and
        `postgres://` URLs go through psycopg 3 (the driver this package installs)."""
        url = database_url(where)
        # Several processes may share one SQLite file: wait for its lock, don't fail.
        connect_args = {"timeout": 30} if url.startswith("sqlite") else {}
        engine = create_engine(url, connect_args=connect_args)
        if url.startswith("sqlite"):
            # WAL: readers (the dashboard, `show`) never block the writer's commit.
            event.listen(engine, "connect", _wal)
        return cls(engine, manifest, node, **options)

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
        head = self._call(self.node.block_number)
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
                    self._call(self.node.block_number)  # raises if hung
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
        return self.node.logs(params)

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
            block = self._call(lambda n=number: self.node.block(n)) if number <= head else None
            if block is not None and _header(block)["hash"] == stored_hash:
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
            found += [_header(b) for b in self.node.blocks(numbers[chunk : chunk + 200])]
        return found

    # ------------------------------------------------------------ snapshots from views

    def contract(self, name: str):
        if name not in self._contracts:
            entry = self.manifest["contracts"][name]
            self._contracts[name] = self.web3.eth.contract(
                address=_checksum(entry["address"]), abi=self.manifest["abis"][name]
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


def _line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
