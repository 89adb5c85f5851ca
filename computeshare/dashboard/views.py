"""The dashboard: a read-only web UI over the event index (`computeshare.index`).

    app = create_app(index)                  # a Starlette app
    serve(index, "127.0.0.1", 8000)          # the same, under uvicorn
    write_static(index, "build/report")      # every page as HTML files with relative links

Pages are rendered on the server from the Jinja2 templates beside this module, with
autoescaping on: whatever an event carries (a device's metadata URI, a proposal's
description, a vote's reason, a job's spec and output) is hostile input and is shown as
text, never as markup, and only an http(s) URI becomes a link. The charts are inline SVG
drawn here. A page loads no script, no stylesheet file, no font and nothing from another
host, so the pages written by `write_static` open from disk with no server and no network.

The index is only read: `create_app(index, sync_interval=s)` also follows the chain by
calling `index.sync()` every `s` seconds in a background thread.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup
from sqlalchemy import Text, cast, select
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from computeshare import index as ix
from computeshare.constants import TOKEN
from computeshare.format import duration, hex_id, tokens, utc_text
from computeshare.jobs import OUTCOMES

log = logging.getLogger(__name__)

PAGE_SIZE = 25
JOB_STATUSES = ("open", "disputed", "finalized", "cancelled")
STATUS_COLOURS = {
    "open": "#2f6fd1",
    "disputed": "#d9822b",
    "finalized": "#2e9a5a",
    "cancelled": "#8a8f98",
}
SUPPORT = {0: "against", 1: "for", 2: "abstain"}
RUN_STATUS = {0: "ok", 1: "trap", 2: "out of fuel", 3: "invalid"}  # computeshare.sandbox
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


# ---------------------------------------------------------------- formatting


def amount(wei: int | str | None) -> Markup:
    """An amount in tokens; the exact wei in the `data` element's value (and its tooltip)."""
    if wei is None:
        return Markup("&ndash;")
    value = int(wei)
    return Markup('<data value="{0}" title="{0} wei">{1}</data>').format(value, tokens(value))


def utc(timestamp: int | None) -> Markup:
    """A chain timestamp as a human UTC time in a `time` element."""
    if not timestamp:
        return Markup("&ndash;")
    moment = datetime.fromtimestamp(int(timestamp), UTC)
    return Markup('<time datetime="{}">{}</time>').format(
        moment.strftime("%Y-%m-%dT%H:%M:%SZ"), utc_text(timestamp)
    )


def relative(timestamp: int | None, now: int) -> str:
    """ "in 3 h 10 min" or "2 d ago", against the chain's time."""
    if not timestamp or not now:
        return ""
    delta = int(timestamp) - int(now)
    return f"in {duration(delta)}" if delta > 0 else f"{duration(delta)} ago"


def percent(bps: int | None) -> str:
    """Basis points as a percentage: 250 -> "2.5 %", 1000 -> "10 %"."""
    text = f"{Decimal(int(bps or 0)) / 100:f}"
    return (text.rstrip("0").rstrip(".") if "." in text else text) + " %"


def text_of(value: Any) -> str:
    """A bytes field (a GPU model) as text: NUL padding dropped, invalid UTF-8 replaced."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).rstrip(b"\0").decode("utf-8", errors="replace")
    return "" if value is None else str(value)


def web_link(uri: str | None) -> str | None:
    """The URI if it is http(s) with a host (safe as a link), else None (shown as text)."""
    if not uri or any(c.isspace() or ord(c) < 32 for c in uri):
        return None
    try:
        parts = urlsplit(uri)
    except ValueError:
        return None
    return uri if parts.scheme in ("http", "https") and parts.netloc else None


def mib(value: int | None) -> str:
    value = int(value or 0)
    return f"{value / 1024:,.0f} GiB" if value >= 1024 and value % 1024 == 0 else f"{value:,} MiB"


def proposal_label(proposal_id: str | int) -> str:
    """A proposal id (OpenZeppelin's `hashProposal`) in its short hex form, which every
    command takes as a prefix."""
    return hex_id(proposal_id, full=False)


def decoded_output(hex_text: str | None) -> str | None:
    """An output's bytes as text when they are printable UTF-8, else None."""
    if not hex_text:
        return None
    raw = bytes.fromhex(hex_text.removeprefix("0x"))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text and all(c.isprintable() or c in "\n\t" for c in text) else None


def spec_summary(spec_hex: str) -> dict:
    """A job spec as the agent reads it: its workload and input if it validates, else why
    not; and its text (specs are JSON) when it is UTF-8."""
    from computeshare.workloads import WorkloadError, decode_spec

    raw = bytes.fromhex(spec_hex.removeprefix("0x"))
    summary: dict[str, Any] = {"bytes": len(raw), "workload": None, "problem": None}
    try:
        summary["text"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        summary["text"] = None
    try:
        job = decode_spec(raw)
    except WorkloadError as error:
        summary["problem"] = str(error)
    except Exception as error:  # a spec is hostile: whatever it does, the page still renders
        summary["problem"] = f"not a workload spec ({type(error).__name__})"
    else:
        summary["workload"] = job.workload
        summary["encrypted"] = job.encrypt_to is not None
        summary["input"] = job.input.model_dump_json(indent=2)
    if summary["text"] is not None and len(summary["text"]) > 2_000:
        summary["text"] = summary["text"][:2_000] + " …"
    return summary


# ---------------------------------------------------------------- charts (inline SVG)


@dataclass(frozen=True)
class Buckets:
    """Equal time buckets covering [first, last]: hours, days, weeks, months or years."""

    start: int
    size: int
    count: int

    @classmethod
    def covering(cls, times: Iterable[int], most: int = 24) -> Buckets | None:
        times = [int(t) for t in times if t]
        if not times:
            return None
        first, last = min(times), max(times)
        for size in (3_600, 6 * 3_600, 86_400, 7 * 86_400, 30 * 86_400, 365 * 86_400):
            start = first - first % size
            count = (last - start) // size + 1
            if count <= most:
                return cls(start, size, count)
        size = math.ceil((last - first + 1) / most)
        return cls(first, size, (last - first) // size + 1)

    def of(self, timestamp: int) -> int:
        return min(max((int(timestamp) - self.start) // self.size, 0), self.count - 1)

    def label(self, i: int) -> str:
        moment = datetime.fromtimestamp(self.start + i * self.size, UTC)
        return moment.strftime("%Y-%m-%d %H:%M" if self.size < 86_400 else "%Y-%m-%d")

    def totals(self, pairs: Iterable[tuple[int, float]]) -> list[float]:
        sums = [0.0] * self.count
        for timestamp, value in pairs:
            sums[self.of(timestamp)] += value
        return sums


WIDTH, HEIGHT = 640, 220
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 14, 40


def _nice(top: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `top` (at least 1)."""
    if top <= 1:
        return 1.0
    power = 10 ** math.floor(math.log10(top))
    for step in (1, 2, 5, 10):
        if step * power >= top:
            return float(step * power)
    return float(10 * power)


def _number(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _frame(chart_id: str, title: str, description: str, body: list[str], ymax: float) -> Markup:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        Markup(
            '<svg class="chart" viewBox="0 0 {w} {h}" role="img" '
            'aria-labelledby="{id}-title {id}-desc" font-size="13" '
            'font-family="system-ui, sans-serif">'
        ).format(w=WIDTH, h=HEIGHT, id=chart_id),
        Markup('<title id="{}-title">{}</title>').format(chart_id, title),
        Markup('<desc id="{}-desc">{}</desc>').format(chart_id, description),
    ]
    for fraction in (0, 0.5, 1):
        y = TOP + plot_h * (1 - fraction)
        parts.append(
            Markup(
                '<line x1="{x1}" x2="{x2}" y1="{y:.1f}" y2="{y:.1f}" stroke="currentColor" '
                'stroke-opacity="{o}"/><text x="{tx}" y="{ty:.1f}" text-anchor="end" '
                'fill="currentColor">{label}</text>'
            ).format(
                x1=LEFT,
                x2=WIDTH - RIGHT,
                y=y,
                o=0.6 if fraction == 0 else 0.15,
                tx=LEFT - 6,
                ty=y + 4,
                label=_number(ymax * fraction),
            )
        )
    parts.extend(Markup(p) for p in body)
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def _x_labels(buckets: Buckets) -> list[Markup]:
    plot_w = WIDTH - LEFT - RIGHT
    step = max(1, math.ceil(buckets.count / 6))
    labels = []
    for i in range(0, buckets.count, step):
        x = LEFT + plot_w * (i + 0.5) / buckets.count
        labels.append(
            Markup(
                '<text x="{:.1f}" y="{}" text-anchor="middle" fill="currentColor">{}</text>'
            ).format(x, HEIGHT - BOTTOM + 16, buckets.label(i))
        )
    return labels


def bar_chart(
    chart_id: str,
    title: str,
    buckets: Buckets,
    series: dict[str, list[float]],
    colours: dict[str, str],
    unit: str,
) -> Markup:
    """Stacked bars, one per bucket, one colour per series; each bar has a tooltip."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    totals = [sum(values[i] for values in series.values()) for i in range(buckets.count)]
    ymax = _nice(max(totals, default=0))
    slot = plot_w / buckets.count
    body: list[Markup] = []
    for i in range(buckets.count):
        height_so_far = 0.0
        for name, values in series.items():
            value = values[i]
            if not value:
                continue
            h = value / ymax * plot_h
            body.append(
                Markup(
                    '<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{c}">'
                    "<title>{label}: {value} {unit} {name}</title></rect>"
                ).format(
                    x=LEFT + i * slot + slot * 0.15,
                    y=TOP + plot_h - height_so_far - h,
                    w=slot * 0.7,
                    h=h,
                    c=colours.get(name, "#2f6fd1"),
                    label=buckets.label(i),
                    value=_number(value),
                    unit=unit,
                    name=name,
                )
            )
            height_so_far += h
    body.extend(_x_labels(buckets))
    what = ", ".join(series)
    description = f"{unit} per {duration(buckets.size)} from {buckets.label(0)}: {what}"
    return _frame(chart_id, title, description, body, ymax)


def step_chart(
    chart_id: str, title: str, buckets: Buckets, points: list[tuple[int, float]], colour: str
) -> Markup:
    """A value over time as a step line (the treasury's balance), a dot at each reading."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    ymax = _nice(max((v for _, v in points), default=0))
    first, last = buckets.start, buckets.start + buckets.count * buckets.size

    def x(t: int) -> float:
        return LEFT + plot_w * (t - first) / max(last - first, 1)

    def y(v: float) -> float:
        return TOP + plot_h - v / ymax * plot_h

    body: list[Markup] = []
    if points:
        path = [f"M{x(points[0][0]):.1f},{y(points[0][1]):.1f}"]
        for t, v in points[1:]:
            path.append(f"H{x(t):.1f}V{y(v):.1f}")
        path.append(f"H{x(last):.1f}")
        body.append(
            Markup('<path d="{}" fill="none" stroke="{}" stroke-width="2"/>').format(
                "".join(path), colour
            )
        )
        for t, v in points:
            body.append(
                Markup(
                    '<circle cx="{:.1f}" cy="{:.1f}" r="3" fill="{}"><title>{}: {} tokens'
                    "</title></circle>"
                ).format(x(t), y(v), colour, utc_text(t), _number(v))
            )
    body.extend(_x_labels(buckets))
    return _frame(chart_id, title, "tokens at each reading over time", body, ymax)


# ---------------------------------------------------------------- links


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


class SyncStatus:
    """What the server's follower knows of the chain: the head block its last successful
    sync reached, when that was, and the last sync's failure, if it failed. A page shows
    how far behind the index is, and a warning when the last sync failed or is older than
    `STALE_INTERVALS` sync intervals."""

    STALE_INTERVALS = 3

    def __init__(self, interval: float, clock: Callable[[], float] = time.time):
        self.interval, self.clock = interval, clock
        self.head: int | None = None
        self.synced_at: float | None = None
        self.failed_at: float | None = None
        self.error: str | None = None
        self.lock = threading.Lock()

    def succeeded(self, head: int) -> None:
        with self.lock:
            self.head, self.synced_at, self.failed_at, self.error = head, self.clock(), None, None

    def failed(self, error: BaseException) -> None:
        from computeshare.rpc import first_line

        with self.lock:
            self.failed_at, self.error = self.clock(), first_line(error)

    def view(self, indexed: int) -> dict:
        """The figures a page shows: head, indexed block, blocks behind, seconds since the
        last sync, and the warning (None when the index is current)."""
        with self.lock:
            now = self.clock()
            age = None if self.synced_at is None else max(0, round(now - self.synced_at))
            head = self.head
            warning = None
            if self.error is not None:
                warning = f"last sync failed {max(0, round(now - self.failed_at))} s ago: "
                warning += f"{self.error}. The figures below may be out of date."
            elif age is None or age > self.STALE_INTERVALS * self.interval + 1:
                warning = (
                    "the index has not synced "
                    + ("yet" if age is None else f"for {age} s")
                    + f" (every {self.interval:g} s expected). The figures may be out of date."
                )
        behind = None if head is None else max(0, head - indexed)
        return {"head": head, "indexed": indexed, "behind": behind, "age": age, "warning": warning}


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
        sources = [r for r in replicas if r["state"] in ("revealed", "completed")]
        return {
            "title": f"Job {job_id}",
            "job": job,
            "spec": spec_summary(job["spec"]),
            "replicas": replicas,
            "revealed": revealed,
            "sources": sources or replicas,
            "output_text": decoded_output(job["result"]["output"]) if job["result"] else None,
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


# ---------------------------------------------------------------- the server


def _secured(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def create_app(index: ix.EventIndex, *, sync_interval: float | None = None) -> Starlette:
    """The dashboard over `index` as a Starlette app (read-only). With `sync_interval`,
    a background thread also calls `index.sync()` every that many seconds."""
    status = SyncStatus(sync_interval) if sync_interval else None
    site = Site(index, status=status)
    links = Links()

    def page(
        current: str, template: str, build: Callable[[Request], dict | Response]
    ) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                context = build(request)
            except NotFound as missing:
                return _secured(HTMLResponse(site.error(str(missing), links), status_code=404))
            if isinstance(context, Response):
                return context
            return _secured(HTMLResponse(site.render(template, context, links, current)))

        return endpoint

    def jobs(request: Request) -> dict:
        status = request.query_params.get("status") or None
        number = request.query_params.get("page") or "1"
        if not number.isdigit():
            raise NotFound(f"{number!r} is not a page number")
        return site.jobs(status, int(number))

    def job(request: Request) -> dict | Response:
        job_id = request.path_params["job_id"]
        if JOB_ID.match(job_id.lower()) and job_id != job_id.lower():
            return RedirectResponse(links("job", job_id.lower()))
        if not JOB_ID.match(job_id):
            return RedirectResponse(links("job", site.resolve_job(job_id)))
        return site.job(job_id)

    def not_found(request: Request, exc: Exception) -> Response:
        message = f"there is no page at {request.url.path}"
        if isinstance(exc, HTTPException) and exc.status_code != 404:
            message = exc.detail
            return _secured(
                HTMLResponse(site.error(message, links, exc.status_code), exc.status_code)
            )
        return _secured(HTMLResponse(site.error(message, links), status_code=404))

    def failed(request: Request, exc: Exception) -> Response:
        log.exception("dashboard page %s failed", request.url.path)
        message = "this page could not be rendered; the server's log has the details"
        return _secured(HTMLResponse(site.error(message, links, 500), status_code=500))

    routes = [
        Route("/", page("overview", "overview.html", lambda r: site.overview())),
        Route("/devices", page("devices", "devices.html", lambda r: site.devices())),
        Route("/jobs", page("jobs", "jobs.html", jobs)),
        Route("/jobs/{job_id}", page("jobs", "job.html", job)),
        Route("/pools", page("pools", "pools.html", lambda r: site.pools())),
        Route(
            "/pools/{provider}",
            page("pools", "pool.html", lambda r: site.pool(r.path_params["provider"])),
        ),
        Route("/proposals", page("proposals", "proposals.html", lambda r: site.proposals())),
        Route(
            "/proposals/{proposal_id}",
            page(
                "proposals", "proposal.html", lambda r: site.proposal(r.path_params["proposal_id"])
            ),
        ),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette):
        stop = threading.Event()
        worker = None
        if sync_interval:
            worker = threading.Thread(
                target=_follow,
                args=(index, sync_interval, stop, status),
                name="index-sync",
                daemon=True,
            )
            worker.start()
        try:
            yield
        finally:
            stop.set()
            if worker is not None:
                worker.join(timeout=30)

    return Starlette(
        routes=routes,
        exception_handlers={HTTPException: not_found, Exception: failed},
        lifespan=lifespan,
    )


def _follow(
    index: ix.EventIndex,
    interval: float,
    stop: threading.Event,
    status: SyncStatus | None = None,
) -> None:
    """Syncs every `interval` seconds; while the node fails, backs off (up to 60 s) and
    logs one line when it goes and one when it is back."""
    from computeshare.rpc import Backoff, first_line, node_trouble

    backoff = Backoff(log.warning)
    while not stop.wait(max(interval, backoff.delay)):
        try:
            report = index.sync()
        except Exception as error:  # a node that went away: say so once, try again later
            if status is not None:
                status.failed(error)
            if node_trouble(error):
                backoff.failed(error)
            else:
                log.warning("index sync failed: %s", first_line(error))
            continue
        backoff.succeeded()
        if status is not None:
            status.succeeded(report.last)


def serve(
    index: ix.EventIndex,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    sync_interval: float | None = None,
    log_level: str = "warning",
) -> None:
    """Serves the dashboard until interrupted."""
    import uvicorn

    uvicorn.run(
        create_app(index, sync_interval=sync_interval),
        host=host,
        port=port,
        log_level=log_level,
        server_header=False,
    )


# ---------------------------------------------------------------- a static snapshot


def write_static(index: ix.EventIndex, out_dir: str | Path) -> list[Path]:
    """Renders every page to `out_dir` as HTML files with relative links (index.html,
    devices.html, jobs.html and its pages, jobs/<id>.html, pools.html, pools/<address>.html,
    proposals.html, proposals/<id>.html), so the snapshot opens from disk with no server.
    Returns the files written."""
    out = Path(out_dir)
    site = Site(index, snapshot=True)
    written: list[Path] = []

    def write(name: str, template: str, context: dict, current: str) -> None:
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        html = site.render(template, context, Links(static=True, depth=name.count("/")), current)
        path.write_text(html, encoding="utf-8")
        written.append(path)

    write("index.html", "overview.html", site.overview(), "overview")
    write("devices.html", "devices.html", site.devices(), "devices")
    for status in (None, *JOB_STATUSES):
        first = site.jobs(status, 1)
        for number in range(1, first["pages"] + 1):
            context = first if number == 1 else site.jobs(status, number)
            write(jobs_file(status, number), "jobs.html", context, "jobs")
    with index.engine.connect() as db:
        job_ids = db.execute(select(ix.jobs.c.job_id).order_by(ix.jobs.c.block)).scalars().all()
    for job_id in job_ids:
        if JOB_ID.match(job_id):
            write(f"jobs/{job_id}.html", "job.html", site.job(job_id), "jobs")
    pools = site.pools()
    write("pools.html", "pools.html", pools, "pools")
    for pool in pools["pools"]:
        if ADDRESS.match(pool["provider"]):
            write(
                f"pools/{pool['provider']}.html", "pool.html", site.pool(pool["provider"]), "pools"
            )
    proposals = site.proposals()
    write("proposals.html", "proposals.html", proposals, "proposals")
    for proposal in proposals["proposals"]:
        if proposal["proposal_id"].isdecimal():
            pid = hex_id(proposal["proposal_id"])
            write(f"proposals/{pid}.html", "proposal.html", site.proposal(pid), "proposals")
    (out / "snapshot.json").write_text(
        json.dumps(
            {"block": index.cursor(), "chain_time": index.head_time(), "pages": len(written)},
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    return written
