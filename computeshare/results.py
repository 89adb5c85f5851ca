"""Results reach the client: the agent serves each run's output, the client checks it.

The chain holds only a run's digest (`RunResult.digest()`: status, fuel and the output's
hash). A provider's agent serves the whole result at `GET /results/0x<job id>` (JSON:
status, fuel, output as hex) from its journal; `fetch_result` asks an endpoint and accepts
the answer only if its digest is one the chain agreed on, so a tampered or stale output is
refused whoever serves it. When the spec named a public key (`encrypt_to`), the output is
served ECIES-encrypted to it (secp256k1, eciespy) and only that key's holder can read and
check it.
"""

from __future__ import annotations

import ipaddress
import json
import re
import resource
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from computeshare import fetch
from computeshare.sandbox import MAX_OUTPUT_BYTES, RunResult

FETCH_SECONDS = 10
_PATH = re.compile(r"^/results/0x([0-9a-f]{64})$")
_PROGRESS = re.compile(r"^/progress/0x([0-9a-f]{64})$")

# The result server's bounds. Its address is public on chain, so every client may be hostile.
REQUEST_SECONDS = 5  # a whole connection, first byte in to last byte out; then it is cut
MAX_CONNECTIONS = 64  # connections held at once, fewer under a low descriptor limit
MAX_ACCEPT_BURST = 128  # connections accepted in one turn of the loop (uvicorn's `backlog`)
LISTEN_QUEUE = 1_024  # connections the kernel queues until accepted: they hold no descriptor
PER_CLIENT = 8  # connections one client (an IPv4 address, an IPv6 /64) holds at once
MAX_HEADER_BYTES = 8_192  # a request line and headers longer than this are refused (400)
DESCRIPTOR_SHARE = 4  # the server holds at most a quarter of the process's descriptors


class ResultError(Exception):
    """No endpoint served a result that matches the chain."""


def connection_bounds(descriptor_limit: int | None = None) -> tuple[int, int]:
    """(connections held at most, connections accepted in one turn of the loop) for the
    result server, from the process's descriptor limit (RLIMIT_NOFILE, soft). The server's
    share is at most a quarter of it: the connections it holds, plus a burst accepted in
    one turn (each then admitted or pushed out at once); the agent keeps three quarters for
    its workers' files, its journal, its index and its node. 64 and 128 from a limit of
    1,024 up; 32 and 32 at 256."""
    if descriptor_limit is None:
        descriptor_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if descriptor_limit == resource.RLIM_INFINITY:
            descriptor_limit = 1 << 20
    share = descriptor_limit // DESCRIPTOR_SHARE
    connections = min(MAX_CONNECTIONS, share // 2)
    if connections < PER_CLIENT:
        raise ValueError(
            f"a descriptor limit of {descriptor_limit} leaves no room to serve results "
            f"(raise `ulimit -n` to {2 * DESCRIPTOR_SHARE * PER_CLIENT} or more)"
        )
    return connections, min(MAX_ACCEPT_BURST, share - connections)


def _client(peer) -> str:
    """Who a connection counts against: its IPv4 address, or its IPv6 /64 (one host often
    holds a whole /64)."""
    try:
        address = ipaddress.ip_address(peer[0])
    except (TypeError, ValueError, IndexError):
        return "?"
    if address.version == 6:
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class _Guard:
    """The connections a server holds, oldest first, overall and per client. A new
    connection over a bound pushes out the oldest one it competes with (its own client's
    oldest when that client is at `PER_CLIENT`, else the oldest of all): a client that holds
    connections without finishing a request loses them to new ones, while an honest request,
    answered in milliseconds, is rarely the oldest. Runs in the server's event loop only."""

    def __init__(self, cap: int, per_client: int):
        self.cap, self.per_client = cap, per_client
        self.open: dict[object, tuple] = {}  # connection -> (transport, client)
        self.by_client: dict[str, dict[object, None]] = {}
        self.shed = 0  # connections pushed out, for tests and measurements

    def admit(self, connection, transport) -> None:
        client = _client(transport.get_extra_info("peername"))
        own = self.by_client.setdefault(client, {})
        if len(own) >= self.per_client:
            self._push_out(next(iter(own)))
        elif len(self.open) >= self.cap:
            self._push_out(next(iter(self.open)))
        self.open[connection] = (transport, client)
        self.by_client.setdefault(client, {})[connection] = None

    def release(self, connection) -> None:
        entry = self.open.pop(connection, None)
        if entry is not None:
            own = self.by_client[entry[1]]
            del own[connection]
            if not own:
                del self.by_client[entry[1]]

    def _push_out(self, connection) -> None:
        transport = self.open[connection][0]
        self.release(connection)
        self.shed += 1
        transport.abort()  # closes now, discarding anything unsent


def _guarded_protocol(guard: _Guard):
    """uvicorn's h11 protocol, bounded: admitted by `guard`, and cut `REQUEST_SECONDS` after
    it was opened, whatever it is doing (reading a trickled request, an endless body, or
    writing an answer its client does not read). uvicorn has neither bound itself: it times
    out only idle keep-alive connections, and `limit_concurrency` answers 503 on connections
    it has already accepted and keeps."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._deadline = self.loop.call_later(REQUEST_SECONDS, transport.abort)
            guard.admit(self, transport)

        def connection_lost(self, exc) -> None:
            self._deadline.cancel()
            guard.release(self)
            super().connection_lost(exc)

    return GuardedH11Protocol


def _closing(app):
    """Every answer says `Connection: close`: one request per connection, no idle
    keep-alive connections to hold."""

    async def wrapped(scope, receive, send):
        async def send_closing(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k != b"connection"]
                message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        await app(scope, receive, send_closing)

    return wrapped


class GuardedServer:
    """An ASGI app served by uvicorn from a daemon thread, on a loopback or public address of
    the operator's choosing, bounded for hostile clients: at most 64 connections (fewer
    under a low descriptor limit: `connection_bounds`) and `PER_CLIENT` per client, each cut
    `REQUEST_SECONDS` after it opened, headers at most `MAX_HEADER_BYTES`; see `_Guard` for
    who is pushed out when a bound is reached. The result server and the chunk server
    (`cas.ChunkServer`) are two of these."""

    def __init__(self, app, host: str, port: int, name: str):
        import uvicorn

        self.max_connections, burst = connection_bounds()
        self._guard = _Guard(self.max_connections, PER_CLIENT)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.create_server((host, port), family=family, backlog=burst)
        self.address = self._socket.getsockname()[:2]
        shown = f"[{host}]" if family == socket.AF_INET6 else host
        self.url = f"http://{shown}:{self.address[1]}"
        self.name = name
        config = uvicorn.Config(
            _closing(app),
            http=_guarded_protocol(self._guard),
            loop="asyncio",  # its accept loop is the one `connection_bounds` counts on
            ws="none",
            lifespan="off",
            backlog=burst,  # asyncio accepts at most this many per turn of the loop
            h11_max_incomplete_event_size=MAX_HEADER_BYTES,
            timeout_keep_alive=1,
            timeout_graceful_shutdown=1,
            server_header=False,
            date_header=False,
            access_log=False,
            log_config=None,
            log_level="error",  # not a line per malformed request in the agent's output
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._socket]},
            name=name,
            daemon=True,
        )

    @property
    def connections(self) -> int:
        """The connections held now."""
        return len(self._guard.open)

    @property
    def shed(self) -> int:
        """The connections pushed out by a bound since the server started (not those cut by
        the request deadline)."""
        return self._guard.shed

    def start(self):
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the {self.name} at {self.url} did not start")
            time.sleep(0.01)
        # uvicorn gave its backlog to listen() too; a deeper queue costs no descriptor, and
        # Linux lets a listening socket's queue be resized.
        self._socket.listen(LISTEN_QUEUE)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._socket.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class ResultServer(GuardedServer):
    """Serves the results a journal holds, on a loopback or public address of the operator's
    choosing (a `GuardedServer`: Starlette app, bounded for hostile clients, since the
    address is public on chain). Read-only: GET on two
    path shapes, nothing else; one request per connection. With `progress` (the agent's
    `Agent.progress`), `GET /progress/0x<job id>` answers what the device does with the job
    (JSON: state, elapsed_seconds, fuel_limit); 404 for a job it knows nothing of. With
    `outputs` (a `cas` store), `GET /cas/<root>/<i>` answers the output trees' chunks."""

    def __init__(
        self,
        journal,
        host: str = "127.0.0.1",
        port: int = 0,
        progress: Callable[[str], dict | None] | None = None,
        outputs: Path | None = None,
    ):
        from starlette.applications import Starlette
        from starlette.responses import Response
        from starlette.routing import Route

        self.journal, self.progress = journal, progress

        async def answer(request) -> Response:
            match = _PROGRESS.match(request.url.path)
            if match:
                report = self.job_progress("0x" + match.group(1))
                body = json.dumps(report).encode() if report else b'{"error": "no such job"}'
                return Response(body, 200 if report else 404, media_type="application/json")
            match = _PATH.match(request.url.path)
            result = self.lookup("0x" + match.group(1)) if match else None
            body = json.dumps(result).encode() if result else b'{"error": "no such result"}'
            return Response(body, 200 if result else 404, media_type="application/json")

        app = Starlette(routes=[Route("/{path:path}", answer, methods=["GET"])])
        self.chunks = None
        if outputs is not None:  # output trees, chunk by chunk with proofs (`cas.Chunks`)
            from computeshare import cas

            self.chunks = cas.Chunks(cas.Cache(outputs))
            app = _with_chunks(app, self.chunks)
        super().__init__(app, host, port, "result server")

    def lookup(self, key: str) -> dict | None:
        """The result to serve, once it is public: after this replica revealed it (before
        that, another replica could copy it) or after the job settled."""
        live = self.journal.jobs.get(key)
        entry = live if live and live.get("revealed") else self.journal.done.get(key) or {}
        result = entry.get("result")
        if not isinstance(result, dict):
            return None
        served = {name: result[name] for name in ("status", "fuel", "output")}
        root = result.get("output_root")
        if root:  # the digest binds it; its files are served at /cas/<root>/<i>
            served["output_root"] = root
            pack = self.chunks.cache.get(root) if self.chunks is not None else None
            if pack is not None:
                served["output_size"] = pack.stat().st_size
        recipient = result.get("encrypt_to")
        if recipient:
            import ecies

            served["output"] = ecies.encrypt(recipient, bytes.fromhex(result["output"])).hex()
            if root:  # knowing the root is what lets one fetch the files: only the client
                served["output_root"] = ecies.encrypt(recipient, bytes.fromhex(root)).hex()
            served["encrypted"] = True
        return served

    def job_progress(self, key: str) -> dict | None:
        """The agent's progress report on a job; None without one (or if it failed)."""
        if self.progress is None:
            return None
        try:
            report = self.progress(key)
        except Exception:  # the agent's state moved under a read: answer as unknown
            return None
        return report if isinstance(report, dict) else None


def agreed_results(settled: bytes | None, revealed: list[bytes], replicas: int) -> set[bytes]:
    """The digests a client may accept: once the job settled, its settled result only (none
    if it settled without one: no majority, or a ruling against the provider); before,
    a k = 1 job's revealed result (optimistic: it may still be disputed) or a result that a
    strict majority of a k > 1 job's replicas revealed."""
    if settled is not None:
        if not any(settled):
            raise ResultError("the job settled without an agreed result")
        return {bytes(settled)}
    if replicas == 1:
        agreed = set(revealed[:1])
    else:
        agreed = {d for d in set(revealed) if 2 * revealed.count(d) > replicas}
    if not agreed:
        raise ResultError("no result is agreed yet")
    return agreed


def fetch_result(
    endpoint: str, job_id: bytes, agreed: set[bytes], private_key: bytes | None = None
) -> RunResult:
    """The result `endpoint` serves for the job, if its digest is in `agreed`; an encrypted
    output is decrypted with `private_key` first."""
    url = f"{endpoint.rstrip('/')}/results/0x{bytes(job_id).hex()}"
    try:
        answer = json.loads(fetch.get(url, 4 * MAX_OUTPUT_BYTES + 1_024, FETCH_SECONDS))
        sealed = answer.pop("output_root", None) if answer.get("encrypted") else None
        result = RunResult.from_json(answer)
        if not (0 <= result.status <= 3 and 0 <= result.fuel < 2**64):
            raise ValueError("status or fuel out of range")
    except (ValueError, KeyError, TypeError, AttributeError, ArithmeticError) as error:
        raise ResultError(f"{endpoint}: {str(error)[:80]}") from None
    if answer.get("encrypted"):
        if private_key is None:
            raise ResultError("the output is encrypted: give the key named in the spec")
        plain = unseal(private_key, result.output, endpoint)
        root = unseal(private_key, bytes.fromhex(sealed), endpoint) if sealed else b""
        result = RunResult(result.status, result.fuel, plain, root)
    if result.digest() not in agreed:
        raise ResultError(f"{endpoint} served a result that does not match the chain")
    return result


def unseal(private_key: bytes, sealed: bytes, endpoint: str = "the provider") -> bytes:
    """What the provider encrypted to the spec's `encrypt_to` key (ECIES)."""
    import ecies

    try:
        return ecies.decrypt(bytes(private_key), bytes(sealed))
    except (ValueError, TypeError):
        raise ResultError(f"{endpoint}: the output does not decrypt with this key") from None


def start_server(journal, address: str, progress=None, outputs: Path | None = None) -> ResultServer:
    """`HOST:PORT` -> a started server (with `progress`, it answers `/progress/` too; with
    `outputs`, the output trees of that store at `/cas/`)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{address!r} is not HOST:PORT")
    return ResultServer(journal, host, int(port), progress, outputs).start()


def _with_chunks(app, chunks):
    """`app`, with the paths under /cas/ answered by `chunks` (`cas.Chunks`)."""

    async def routed(scope, receive, send):
        target = chunks if scope.get("path", "").startswith("/cas/") else app
        await target(scope, receive, send)

    return routed
