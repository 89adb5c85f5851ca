"""The dashboard as a Starlette app: `create_app` (routes, the security headers, error pages,
the follower thread that keeps the index synced), `serve` (the same under uvicorn) and
`SyncStatus` (what the follower knows, which every page shows)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from computeshare import index as ix
from computeshare.dashboard.views import JOB_ID, Links, NotFound, Site

log = logging.getLogger("computeshare.dashboard")


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
