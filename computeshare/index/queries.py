"""The index's read queries (for the CLI, the dashboard, `JobBook` and the agent):
`IndexQueries`, the half of `EventIndex` that only reads what sync wrote.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import Table, case, func, select
from sqlalchemy.engine import Engine

from computeshare.constants import DEVICE_STATUS, OUTCOMES
from computeshare.index.handlers import Decoder, _checksum, _jsonable
from computeshare.index.schema import (
    DECIDING,
    PROPOSAL_STATES,
    IndexFailure,
    audits,
    blocks,
    delegations,
    device_records,
    device_status,
    devices,
    events,
    income,
    job_steps,
    jobs,
    pool_snapshots,
    proposal_snapshots,
    proposals,
    replicas,
    results,
    settled,
    settlements,
    slashes,
    treasury,
    votes,
)


class IndexQueries:
    """Reads of an index database; `EventIndex` (which brings it up to date) is one. Needs
    `engine`, `decoder` and `contract(name)` (the suite's contracts, for `decode_action`)."""

    engine: Engine
    decoder: Decoder

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
        target = _checksum(action["target"])
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


def _and(conditions):
    conditions = list(conditions)
    result = conditions[0]
    for c in conditions[1:]:
        result = result & c
    return result
