"""The dashboard's pages as data: `Site` (each page's view model from the index, rendered
by its Jinja2 template) and `Links` (the URL of every page, on the server or in a static
snapshot); the formatters its templates use are `computeshare.dashboard.formatters`.

Templates are computeshare/templates/*.html, autoescaped: whatever an event carries (a
device's metadata URI, a proposal's description, a vote's reason, a job's spec and output)
is hostile input and is shown as text, never as markup, and only an http(s) URI becomes a
link.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from sqlalchemy import Text, cast, select

from computeshare import index as ix
from computeshare.constants import OUTCOMES, TOKEN
from computeshare.dashboard.charts import Buckets, bar_chart, step_chart
from computeshare.dashboard.formatters import (
    RUN_STATUS,
    amount,
    decoded_output,
    mib,
    percent,
    proposal_label,
    relative,
    requirements_text,
    result_verdict,
    ruling_text,
    spec_summary,
    text_of,
    utc,
    web_link,
)
from computeshare.format import duration, hex_id, tokens, utc_text

if TYPE_CHECKING:
    from computeshare.dashboard.app import SyncStatus

PAGE_SIZE = 25
JOB_STATUSES = ("open", "disputed", "finalized", "cancelled")
STATUS_COLOURS = {
    "open": "#2f6fd1",
    "disputed": "#d9822b",
    "finalized": "#2e9a5a",
    "cancelled": "#8a8f98",
}
SUPPORT = {0: "against", 1: "for", 2: "abstain"}
AMOUNT_KEYS = {"paid", "fee", "fees", "slashed", "collateral", "refunded", "compensation"}
AMOUNT_KEYS |= {"bounty", "bond"}
TIME_KEYS = {"ruling_end"}
JOB_ID = re.compile(r"^0x[0-9a-f]{64}$")
ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
PROPOSAL_ID = re.compile(r"^0x[0-9a-f]{64}$")
NAV = (
    ("overview", "Overview"),
    ("devices", "Devices"),
    ("jobs", "Jobs"),
    ("pools", "Pools"),
    ("proposals", "Proposals"),
)


class NotFound(Exception):
    """A page that does not exist (a bad id, an unknown status, a page past the end)."""


class Links:
    """URLs of the pages: absolute paths for the server; relative file names for a static
    snapshot (`depth` folders below its root), so the snapshot opens from disk."""

    def __init__(self, static: bool = False, depth: int = 0):
        self.static = static
        self.prefix = "../" * depth

    def __call__(self, page: str, key: str | None = None, /, **query: Any) -> str:
        if page == "proposal" and key is not None:
            key = hex_id(key)  # the index keeps the decimal form; pages use 0x-hex
        if not self.static:
            paths = {
                "overview": "/",
                "devices": "/devices",
                "jobs": "/jobs",
                "job": f"/jobs/{key}",
                "pools": "/pools",
                "pool": f"/pools/{key}",
                "proposals": "/proposals",
                "proposal": f"/proposals/{key}",
            }
            shown = {k: v for k, v in query.items() if v not in (None, "", 1)}
            return paths[page] + (f"?{urlencode(shown)}" if shown else "")
        if page == "jobs":
            return self.prefix + jobs_file(query.get("status"), query.get("page") or 1)
        files = {
            "overview": "index.html",
            "devices": "devices.html",
            "job": f"jobs/{key}.html",
            "pools": "pools.html",
            "pool": f"pools/{key}.html",
            "proposals": "proposals.html",
            "proposal": f"proposals/{key}.html",
        }
        return self.prefix + files[page]


def jobs_file(status: str | None, page: int) -> str:
    name = "jobs" + (f"-{status}" if status else "")
    return name + (f"-page-{page}" if page > 1 else "") + ".html"


# ---------------------------------------------------------------- pages


class Site:
    """Each page's data from the index, rendered by its template."""

    def __init__(
        self, index: ix.EventIndex, *, snapshot: bool = False, status: SyncStatus | None = None
    ):
        self.index = index
        self.status = status
        # A snapshot renders many pages of one moment: the lists every page needs are read
        # once. The server reads them again for each page, so a page is never stale.
        self._memo: dict[str, Any] | None = {} if snapshot else None
        self.env = Environment(
            loader=PackageLoader("computeshare", "templates"),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            amount=amount,
            tokens=tokens,
            utc=utc,
            utc_text=utc_text,
            duration=duration,
            percent=percent,
            text_of=text_of,
            mib=mib,
            proposal_label=proposal_label,
            hex_id=hex_id,
        )
        self.env.globals.update(
            web_link=web_link,
            status_colours=STATUS_COLOURS,
            support_names=SUPPORT,
            outcome_names=OUTCOMES,
            run_status=RUN_STATUS,
            nav=NAV,
            job_statuses=JOB_STATUSES,
        )

    # ------------------------------------------------------------ rendering

    def render(self, template: str, context: dict, links: Links, current: str) -> str:
        cursor = self.index.cursor()
        now = self.index.head_time()
        return self.env.get_template(template).render(
            **context,
            url=links,
            current=current,
            static=links.static,
            head_block=cursor,
            sync=self.status.view(cursor) if self.status is not None else None,
            now=now,
            relative=lambda t: relative(t, now),
            chain_id=self.index.manifest.get("chain_id"),
        )

    def error(self, message: str, links: Links, status: int = 404) -> str:
        title = "Not found" if status == 404 else "Something went wrong"
        return self.render(
            "error.html", {"title": title, "message": message, "status": status}, links, ""
        )

    # ------------------------------------------------------------ shared look-ups

    def _once(self, key: str, read: Callable[[], Any]) -> Any:
        if self._memo is None:
            return read()
        if key not in self._memo:
            self._memo[key] = read()
        return self._memo[key]

    def _devices(self) -> list[dict]:
        return [dict(d) for d in self._once("devices", self.index.devices)]

    def _pools(self) -> list[dict]:
        return [dict(p) for p in self._once("pools", self.index.pools)]

    def _slashes(self) -> list[dict]:
        return [dict(s) for s in self._once("slashes", self.index.slash_list)]

    def _pool_set(self) -> set[str]:
        return {p["provider"] for p in self._pools()}

    def _device_map(self) -> dict[str, dict]:
        return {d["device_id"]: d for d in self._devices()}

    def _rows(self, query) -> list[dict]:
        with self.index.engine.connect() as db:
            return [dict(row._mapping) for row in db.execute(query)]

    # ------------------------------------------------------------ overview

    def overview(self) -> dict:
        index = self.index
        devices = self._devices()
        device_states = Counter(d["status"] for d in devices)
        job_states = index.job_count()
        money = self._rows(select(ix.settlements.c.paid, ix.settlements.c.fee))
        paid = sum(int(r["paid"]) for r in money)
        fees = sum(int(r["fee"]) for r in money)
        slashes = self._slashes()
        slashed = sum(int(s["total"]) for s in slashes)
        treasury_address, treasury_balance = index.treasury_balance()
        charts = self._charts(slashes)
        return {
            "title": "Market overview",
            "device_count": len(devices),
            "device_states": dict(device_states),
            "job_total": sum(job_states.values()),
            "job_states": job_states,
            "paid": paid,
            "fees": fees,
            "slashed": slashed,
            "slash_count": len(slashes),
            "treasury_address": treasury_address,
            "treasury_balance": treasury_balance,
            "counts": index.counts(),
            "charts": charts,
        }

    def _charts(self, slashes: list[dict]) -> dict:
        """Jobs posted per period by status, fees per period, the treasury's balance and
        slashes per period, on one time axis from the first job to the chain's head."""
        index = self.index
        decided = index._status_query()
        posted = self._rows(
            select(ix.blocks.c.timestamp, decided.c.status)
            .select_from(
                ix.jobs.join(ix.blocks, ix.blocks.c.number == ix.jobs.c.block).outerjoin(
                    decided, decided.c.job_id == ix.jobs.c.job_id
                )
            )
            .order_by(ix.jobs.c.block)
        )
        fee_rows = index.fee_list()
        treasury = self._treasury_history()
        times = [r["timestamp"] for r in posted + treasury]
        times += [r["time"] for r in fee_rows + slashes if r["time"]]
        buckets = Buckets.covering([*times, index.head_time()] if times else [])
        if buckets is None:
            return {}
        by_status = {
            status: buckets.totals(
                (r["timestamp"], 1) for r in posted if (r["status"] or "open") == status
            )
            for status in JOB_STATUSES
        }
        by_status = {k: v for k, v in by_status.items() if any(v)}
        fee_series = buckets.totals((r["time"], int(r["fee"]) / TOKEN) for r in fee_rows)
        slash_series = buckets.totals((r["time"], int(r["total"]) / TOKEN) for r in slashes)
        balance = [(r["timestamp"], int(r["balance"]) / TOKEN) for r in treasury]
        table = [
            {
                "label": buckets.label(i),
                "jobs": {k: int(v[i]) for k, v in by_status.items()},
                "fees": fee_series[i],
                "slashed": slash_series[i],
            }
            for i in range(buckets.count)
        ]
        return {
            "jobs": bar_chart(
                "chart-jobs",
                "Jobs posted, by their status now",
                buckets,
                by_status,
                STATUS_COLOURS,
                "jobs",
            ),
            "fees": bar_chart(
                "chart-fees",
                "Protocol fees charged",
                buckets,
                {"fees": fee_series},
                {"fees": "#7a4fc9"},
                "tokens",
            ),
            "treasury": step_chart(
                "chart-treasury", "Treasury balance", buckets, balance, "#2e9a5a"
            ),
            "slashes": bar_chart(
                "chart-slashes",
                "Stake slashed",
                buckets,
                {"slashed": slash_series},
                {"slashed": "#c43d3d"},
                "tokens",
            ),
            "statuses": list(by_status),
            "period": duration(buckets.size),
            "table": table,
            "balance": balance,
        }

    def _treasury_history(self) -> list[dict]:
        """The treasury's balance after each token transfer to or from it (the index keeps
        every ComputeToken event), checked against the latest balance read from the token;
        if they differ (an index that began after the treasury's first transfer), the
        balance readings the index took at the end of each page it read instead."""
        address, balance = self.index.treasury_balance()
        events, blocks = ix.events, ix.blocks
        readings = self._rows(
            select(blocks.c.timestamp, ix.treasury.c.balance)
            .select_from(ix.treasury.join(blocks, blocks.c.number == ix.treasury.c.block))
            .order_by(ix.treasury.c.block, ix.treasury.c.log_index)
        )
        if address is None:
            return readings
        transfers = self._rows(
            select(blocks.c.timestamp, events.c.args)
            .select_from(events.join(blocks, blocks.c.number == events.c.block))
            .where(events.c.contract == "ComputeToken")
            .where(events.c.name == "Transfer")
            .where(cast(events.c.args, Text).ilike(f"%{address[2:]}%"))
            .order_by(events.c.block, events.c.log_index)
        )
        history, running, wanted = [], 0, address.lower()
        for row in transfers:
            args = row["args"] if isinstance(row["args"], dict) else json.loads(row["args"])
            value = int(args.get("value", 0))
            if str(args.get("receiver", "")).lower() == wanted:
                running += value
            if str(args.get("sender", "")).lower() == wanted:
                running -= value
            history.append({"timestamp": row["timestamp"], "balance": running})
        return history if history and running == balance else readings

    # ------------------------------------------------------------ devices

    def devices(self) -> dict:
        return {
            "title": "Devices",
            "devices": self._devices(),
            "pool_set": self._pool_set(),
        }

    # ------------------------------------------------------------ jobs

    def jobs(self, status: str | None = None, page: int = 1) -> dict:
        if status is not None and status not in JOB_STATUSES:
            raise NotFound(
                f"there is no job status {status!r}; the statuses are open, "
                "disputed, finalized and cancelled"
            )
        counts = self.index.job_count()
        total = counts.get(status, 0) if status else sum(counts.values())
        pages = max(1, math.ceil(total / PAGE_SIZE))
        if not 1 <= page <= pages:
            raise NotFound(f"there is no page {page}: the list has {pages}")
        rows = self.index.jobs(limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, status=status)
        return {
            "title": f"Jobs: {status}" if status else "Jobs",
            "jobs": rows,
            "status": status,
            "page": page,
            "pages": pages,
            "total": total,
            "counts": counts,
            "all_count": sum(counts.values()),
        }

    def job(self, job_id: str) -> dict:
        if not JOB_ID.match(job_id):
            raise NotFound(f"{job_id!r} is not a job id (0x and 64 hex digits)")
        job = self.index.job(job_id)
        if job is None:
            raise NotFound(f"no job {job_id} in the index")
        devices = self._device_map()
        settlements = {s["slot"]: s for s in job["settlements"]}
        replicas = []
        for replica in job["replica_list"]:
            slot = replica["slot"]
            device = devices.get(replica["device_id"], {})
            replicas.append(
                {
                    **replica,
                    "state": job["replica_states"].get(slot, "?"),
                    "settlement": settlements.get(slot),
                    "uri": device.get("uri"),
                    "steps": [s for s in job["steps"] if s["slot"] == slot],
                }
            )
        revealed = [s for s in job["steps"] if s["step"] == "revealed"]
        verdict = result_verdict(job)  # before the ruling's side is put in words
        replicas_wanted = int(job["terms"]["replicas"])
        for step in job["steps"]:
            if step["step"] == "ruled" and "for_client" in step["detail"]:
                step["detail"]["for_client"] = ruling_text(
                    step["detail"]["for_client"], replicas_wanted
                )
        sources = [r for r in replicas if r["state"] in ("revealed", "completed")]
        return {
            "title": f"Job {job_id}",
            "job": job,
            "spec": spec_summary(job["spec"]),
            "replicas": replicas,
            "revealed": revealed,
            "sources": sources or replicas,
            "output_text": decoded_output(job["result"]["output"]) if job["result"] else None,
            "result_status": verdict,
            "requirements": requirements_text(job["terms"]["requirements"]),
            "pool_set": self._pool_set(),
            "detail_amounts": AMOUNT_KEYS,
            "detail_times": TIME_KEYS,
        }

    def resolve_job(self, text: str) -> str:
        """A full job id from an unambiguous prefix (for a URL typed by hand)."""
        try:
            return self.index.resolve(ix.jobs, "job_id", text)
        except ix.IndexFailure as error:
            raise NotFound(str(error)) from None

    # ------------------------------------------------------------ pools

    def pools(self) -> dict:
        pools = self._pools()
        earned = self._earned()
        owners = Counter(d["owner"] for d in self._devices())
        for pool in pools:
            pool["earned"] = earned.get(pool["provider"], 0)
            pool["devices"] = owners.get(pool["provider"], 0)
        return {"title": "Provider pools", "pools": pools}

    def _earned(self) -> dict[str, int]:
        def read() -> dict[str, int]:
            earned: dict[str, int] = defaultdict(int)
            for r in self._rows(select(ix.settlements.c.provider, ix.settlements.c.paid)):
                earned[r["provider"]] += int(r["paid"])
            return earned

        return self._once("earned", read)

    def pool(self, provider: str) -> dict:
        if not ADDRESS.match(provider):
            raise NotFound(f"{provider!r} is not an address")
        found = [p for p in self._pools() if p["provider"].lower() == provider.lower()]
        if not found:
            raise NotFound(f"no pool for {provider} in the index")
        pool = found[0]
        address = pool["provider"]
        pool["earned"] = self._earned().get(address, 0)
        income = self._rows(
            select(ix.income).where(ix.income.c.provider == address).order_by(ix.income.c.block)
        )
        times = self.index._times(r["block"] for r in income)
        for r in income:
            r["time"] = times.get(r["block"])
        jobs_served = self._rows(
            select(ix.replicas.c.job_id, ix.replicas.c.slot, ix.replicas.c.device_id)
            .where(ix.replicas.c.provider == address)
            .order_by(ix.replicas.c.block.desc())
            .limit(PAGE_SIZE)
        )
        return {
            "title": f"Pool {address}",
            "pool": pool,
            "delegations": self.index.delegation_list(address),
            "slashes": [s for s in self._slashes() if s["provider"] == address],
            "income": income,
            "devices": [d for d in self._devices() if d["owner"] == address],
            "jobs_served": jobs_served,
        }

    # ------------------------------------------------------------ proposals

    def proposals(self) -> dict:
        return {"title": "Proposals", "proposals": self.index.proposals()}

    def proposal(self, proposal_id: str) -> dict:
        if not PROPOSAL_ID.match(proposal_id):
            raise NotFound(f"{proposal_id!r} is not a proposal id (0x and 64 hex digits)")
        proposal = self.index.proposal(str(int(proposal_id, 16)))
        if proposal is None:
            raise NotFound(f"no proposal {proposal_id} in the index")
        times = self.index._times(v["block"] for v in proposal["votes"])
        for vote in proposal["votes"]:
            vote["time"] = times.get(vote["block"])
        counted = int(proposal.get("for_") or 0) + int(proposal.get("abstain") or 0)
        return {
            "title": f"Proposal {proposal_label(proposal['proposal_id'])}",
            "proposal": proposal,
            "quorum_reached": counted >= int(proposal.get("quorum") or 0) > 0,
            "actions": list(zip(proposal["actions"], proposal["decoded"], strict=False)),
        }
