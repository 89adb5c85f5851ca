"""Trees over the network: `fetch_tree` (verified chunk by chunk, resumable, bounded) and
`ChunkServer` (`serve`), the two ends of one wire format.

Wire format (served by `ChunkServer`, fetched by `fetch_tree`). A source URI is an http(s)
base ending in "/" (e.g. "http://host:8710/cas/"); chunk i of a tree is

    GET {uri}{root}/{i}    ->  200, Content-Length = the chunk's exact length,
                               body = the chunk's raw bytes,
                               X-Proof: the proof's hashes as hex, joined by "," (may be empty)

and 404 for a root the server does not hold or an index past the end (`ChunkServer` serves
under "/cas/"). One request per connection. The fetcher gives each chunk one deadline for
the whole exchange (connect, TLS, head, body), reads a head of at most `MAX_HEAD` bytes and
exactly the chunk's length of body, refuses a Transfer-Encoding, and never follows a
redirect; a chunk is written only once its proof checks against the root. Sources are tried
in order, or spread over chunks (several replicas serving one output). A pack larger than
the caller's `max_size` (and `MAX_SIZE`) is refused before the first request. IPFS-gateway
URIs ("https://gw/ipfs/<cid>") are not supported (a CID names a different DAG).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import os
import re
import socket
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from computeshare.cas.cache import Cache, check_root
from computeshare.cas.tree import (
    CHUNK,
    HASH,
    HEADER,
    MAX_SIZE,
    CasError,
    MerkleTree,
    PackError,
    TreeFetchError,
    _verified_leaf,
    chunk_count,
    chunk_length,
    leaf_hash,
    merkle_root,
    open_pack,
)


@dataclasses.dataclass
class _Source:
    uri: str
    scheme: str
    host: str
    port: int | None
    prefix: str
    failures: int = 0
    dropped: str = ""  # why this source is no longer asked
    last_error: str = ""


def _source(uri: str) -> _Source:
    if not isinstance(uri, str) or len(uri) > 2048:
        raise CasError(f"{str(uri)[:70]!r} is not a URI")
    if "/ipfs/" in uri or uri.startswith("ipfs:"):
        raise CasError(f"{uri[:70]}: IPFS sources are not supported (use an http(s) chunk URI)")
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CasError(f"{uri[:70]!r} is not an http(s) URI")
    if parts.query or parts.fragment:
        raise CasError(f"{uri[:70]!r}: a chunk URI has no query or fragment")
    try:
        port = parts.port
    except ValueError:
        raise CasError(f"{uri[:70]!r} has a bad port") from None
    prefix = parts.path if parts.path.endswith("/") else parts.path + "/"
    return _Source(uri, parts.scheme, parts.hostname, port, prefix)


MAX_HEAD = 16_384  # a chunk answer's status line and headers (a proof is at most ~4 KiB)
_TLS = None


def _tls():
    global _TLS
    if _TLS is None:
        import ssl

        _TLS = ssl.create_default_context()
    return _TLS


def _parse_head(head: bytes) -> tuple[int, str, dict[str, str]]:
    """An answer's status line and headers -> (status, reason, lowercased name -> value)."""
    try:
        lines = head.decode("latin-1").split("\r\n")
        version, status, *reason = lines[0].split(" ", 2)
        if not version.startswith("HTTP/1.") or not (status.isdigit() and len(status) == 3):
            raise ValueError
    except ValueError:
        raise CasError(f"not an HTTP answer: {head[:40]!r}") from None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise CasError(f"a malformed header line: {line[:40]!r}")
        name, value = name.lower(), value.strip()
        if name in headers and headers[name] != value:
            raise CasError(f"two different {name} headers")
        headers[name] = value
    return int(status), (reason[0] if reason else ""), headers


def _get_chunk(source: _Source, root: str, index: int, length: int, seconds: float):
    """(chunk, proof) from one source, or CasError. The whole exchange (connecting, TLS,
    the answer's head and body) has `seconds`; the head is at most `MAX_HEAD` bytes and the
    body exactly the chunk's length; no redirect is followed."""
    deadline = time.monotonic() + seconds

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        return remaining

    request = (
        f"GET {source.prefix}{root}/{index} HTTP/1.1\r\nHost: {source.host}\r\n"
        "Connection: close\r\nAccept-Encoding: identity\r\n\r\n"
    ).encode()
    default_port = 443 if source.scheme == "https" else 80
    try:
        sock = socket.create_connection((source.host, source.port or default_port), left())
        with contextlib.ExitStack() as closing:
            closing.callback(sock.close)
            if source.scheme == "https":
                sock = _tls().wrap_socket(sock, server_hostname=source.host)
                closing.callback(sock.close)
            sock.sendall(request)
            head = bytearray()
            while (end := head.find(b"\r\n\r\n")) < 0:
                if len(head) > MAX_HEAD:
                    raise CasError(f"an answer head longer than {MAX_HEAD} bytes")
                sock.settimeout(left())
                piece = sock.recv(MAX_HEAD + 4)
                if not piece:
                    raise CasError("closed before the answer's head ended")
                head += piece
            status, reason, headers = _parse_head(bytes(head[:end]))
            if status != 200:
                if 300 <= status < 400:
                    where = headers.get("location", "")[:60]
                    raise CasError(f"redirected ({status} to {where!r}): not followed")
                raise CasError(f"answered {status} {reason[:40]}")
            if "transfer-encoding" in headers:
                raise CasError("sent a Transfer-Encoding (a chunk has an exact Content-Length)")
            declared = headers.get("content-length", "")
            if not declared.isdigit() or int(declared) != length:
                raise CasError(f"sent {declared or 'no'} Content-Length for a {length}-byte chunk")
            proof_text = headers.get("x-proof", "")
            if len(proof_text) > 64 * 65:
                raise CasError("a proof longer than 64 hashes")
            try:
                proof = [bytes.fromhex(h) for h in proof_text.split(",")] if proof_text else []
            except ValueError:
                raise CasError("a proof that is not hex") from None
            body = bytearray(length)
            view = memoryview(body)
            rest = head[end + 4 :]
            if len(rest) > length:
                raise CasError(f"sent more than the {length}-byte chunk")
            view[: len(rest)] = rest
            got = len(rest)
            while got < length:  # straight into the buffer, each read within the deadline
                sock.settimeout(left())
                n = sock.recv_into(view[got:])
                if not n:
                    raise CasError(f"closed after {got} of {length} bytes")
                got += n
            return body, proof
    except CasError:
        raise
    except TimeoutError:
        raise CasError(f"took longer than {seconds:g} s for one chunk") from None
    except (OSError, ValueError) as error:
        raise CasError(f"{type(error).__name__}: {str(error)[:80]}") from None


def fetch_tree(
    root: str,
    size: int,
    uris: Sequence[str],
    cache: Cache,
    *,
    max_size: int,
    seconds_per_chunk: float = 10.0,
    workers: int = 4,
    max_failures: int = 3,
    spread: bool = False,
) -> Path:
    """Fetches the pack (`root`, `size`) into `cache` and returns its path.

    The size is checked against `max_size` (the caller's policy) and the quota before any
    request. Chunks are fetched by `workers` threads and each is verified against the root
    before it is written; sources are tried in order (with `spread`, chunk i starts at
    source i mod n: several replicas serving one output share the load). A source that
    serves a chunk not matching the root is dropped at once, one that fails otherwise
    `max_failures` times in a row is dropped, and a chunk is given up after `max_failures`
    rounds over the sources (with a short back-off between rounds). Each request is bounded
    by `seconds_per_chunk` and the chunk's exact length. Verified chunks stay in the partial
    file, so a later call resumes. The complete pack must parse (`open_pack`) before it
    enters the cache."""
    check_root(root)
    if not isinstance(size, int) or isinstance(size, bool) or size < HEADER:
        raise CasError(f"{size!r} is not a pack size (at least {HEADER} bytes)")
    if size > min(max_size, MAX_SIZE):
        limit = min(max_size, MAX_SIZE)
        raise CasError(f"the tree is {size} bytes, more than the {limit} this policy allows")
    found = _cached(cache, root, size)
    if found is not None:
        return found
    sources = [_source(u) for u in uris]
    if not sources:
        raise CasError("no source URI for the tree")
    root_bytes = bytes.fromhex(root)
    part = cache.dir / "partial" / f"{root}.part"
    leaves_path = part.with_suffix(".leaves")
    with open(part.with_suffix(".lock"), "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one download of a root at a time, per machine
        try:
            found = _cached(cache, root, size)  # another process may have fetched it
            if found is not None:
                return found
            with cache._locked():
                extra = part.stat().st_size if part.exists() else 0
                cache._make_room(size, keep=root, extra=extra)
                fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
                os.ftruncate(fd, size)
            try:
                leaves = _resume(fd, leaves_path, size)
                _download(
                    fd, leaves_path, leaves, root, root_bytes, size, sources,
                    seconds_per_chunk, max(1, workers), max_failures, spread,
                )  # fmt: skip
            finally:
                os.close(fd)
            if merkle_root(leaves) != root_bytes:  # every leaf was verified: cannot happen
                raise TreeFetchError("the verified chunks do not add up to the root")
            try:
                open_pack(part)
            except PackError as error:
                part.unlink(missing_ok=True)
                leaves_path.unlink(missing_ok=True)
                raise TreeFetchError(
                    f"the tree matches its root but is not a pack: {error}"
                ) from None
            dest = cache.pack_path(root)
            os.replace(leaves_path, dest.with_suffix(".leaves"))
            os.replace(part, dest)
            return dest
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _cached(cache: Cache, root: str, size: int) -> Path | None:
    found = cache.get(root)
    if found is not None and found.stat().st_size != size:
        raise CasError(f"the cache holds {root[:16]}… with another size")
    return found


def _resume(fd: int, leaves_path: Path, size: int) -> list[bytes | None]:
    """The leaves of chunks already verified: a recorded leaf counts only if the partial
    file's chunk still hashes to it (the record may have outlived the data after a crash)."""
    count = chunk_count(size)
    leaves: list[bytes | None] = [None] * count
    try:
        raw = leaves_path.read_bytes()
    except FileNotFoundError:
        raw = b""
    if len(raw) != HASH * count:
        leaves_path.write_bytes(bytes(HASH * count))
        return leaves
    for i in range(count):
        recorded = raw[i * HASH : (i + 1) * HASH]
        if recorded != bytes(HASH):
            data = os.pread(fd, chunk_length(size, i), i * CHUNK)
            if leaf_hash(data) == recorded:
                leaves[i] = recorded
    return leaves


def _download(
    fd, leaves_path, leaves, root, root_bytes, size, sources, seconds, workers, max_failures,
    spread,
) -> None:  # fmt: skip
    missing = [i for i, leaf in enumerate(leaves) if leaf is None]
    if not missing:
        return
    lock = threading.Lock()
    stop = threading.Event()
    record = os.open(leaves_path, os.O_WRONLY)
    todo = iter(missing)

    def fetch_one(index: int) -> None:
        length = chunk_length(size, index)
        start = index % len(sources) if spread else 0
        order = sources[start:] + sources[:start]
        for attempt in range(max_failures):
            if attempt:
                time.sleep(min(1.0, 0.05 * 2**attempt))  # a transient failure: back off
            for source in order:
                if stop.is_set():
                    return
                if source.dropped:
                    continue
                try:
                    chunk, proof = _get_chunk(source, root, index, length, seconds)
                except CasError as error:
                    with lock:
                        source.failures += 1
                        source.last_error = str(error)
                        if source.failures >= max_failures:
                            source.dropped = str(error)
                    continue
                leaf = _verified_leaf(root_bytes, size, index, chunk, proof)
                if leaf is None:  # a lie, not an accident: never asked again
                    with lock:
                        source.dropped = f"chunk {index} does not match the root"
                    continue
                os.pwrite(fd, chunk, index * CHUNK)
                os.pwrite(record, leaf, index * HASH)
                leaves[index] = leaf
                with lock:
                    source.failures = 0  # failures in a row drop a source
                return
        reasons = "; ".join(f"{s.uri}: {s.dropped or s.last_error}" for s in sources)
        raise TreeFetchError(f"no source served chunk {index} of {root[:16]}…: {reasons}")

    def worker() -> None:
        while not stop.is_set():
            with lock:
                index = next(todo, None)
            if index is None:
                return
            try:
                fetch_one(index)
            except BaseException:
                stop.set()
                raise

    pool = ThreadPoolExecutor(workers)
    try:
        futures = [pool.submit(worker) for _ in range(min(workers, len(missing)))]
        for future in futures:
            future.result()
    except BaseException:
        stop.set()  # the others finish their chunk and stop (also on Ctrl-C)
        raise
    finally:
        pool.shutdown(wait=True)
        os.close(record)


_CHUNK_PATH = re.compile(r"^/cas/([0-9a-f]{64})/(\d{1,12})$")


class Chunks:
    """The chunks of a cache's complete packs with their proofs, as an ASGI app answering
    `GET /cas/{root}/{i}` (see the module docstring): served by `ChunkServer`, and mounted
    by the agent's result server beside its results."""

    def __init__(self, cache: Cache):
        self.cache = cache
        self.requests = 0  # chunk requests answered 200, for tests and measurements
        self._trees: OrderedDict[str, tuple[MerkleTree, int]] = OrderedDict()
        self._tree_lock = threading.Lock()

    async def __call__(self, scope, receive, send) -> None:
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import Response

        if scope["type"] != "http":
            return
        status, headers, body = 404, [], b"no such chunk\n"
        if scope["method"] not in ("GET", "HEAD"):
            status, body = 405, b"GET only\n"
        else:
            match = _CHUNK_PATH.match(scope["path"])
            served = None
            if match:  # file reads (and a first proof tree) off the event loop
                served = await run_in_threadpool(self.chunk, match.group(1), int(match.group(2)))
            if served is not None:
                body, proof_hex = served
                status, headers = 200, [(b"x-proof", proof_hex.encode())]
                self.requests += 1
        response = Response(body, status, media_type="application/octet-stream")
        response.raw_headers.extend(headers)
        await response(scope, receive, send)

    def _tree(self, root: str) -> tuple[MerkleTree, int] | None:
        with self._tree_lock:
            if root in self._trees:
                self._trees.move_to_end(root)
                return self._trees[root]
        if not self.cache.has(root):
            return None
        size = self.cache.pack_path(root).stat().st_size
        tree = MerkleTree(self.cache.leaves(root))
        if tree.root.hex() != root or tree.chunks != chunk_count(size):
            return None  # a damaged pack or sidecar is not served
        with self._tree_lock:
            self._trees[root] = (tree, size)
            while len(self._trees) > 64:
                self._trees.popitem(last=False)
        return tree, size

    def chunk(self, root: str, index: int) -> tuple[bytes, str] | None:
        """Chunk `index` of the pack `root` and its proof (hex, comma-joined); None if this
        cache does not hold it whole."""
        found = self._tree(root)
        if found is None:
            return None
        tree, size = found
        if index >= tree.chunks:
            return None
        try:
            with open(self.cache.pack_path(root), "rb") as f:
                data = os.pread(f.fileno(), chunk_length(size, index), index * CHUNK)
        except OSError:
            return None
        if len(data) != chunk_length(size, index):
            return None
        return data, ",".join(h.hex() for h in tree.proof(index))


class ChunkServer:
    """Serves the complete packs of a cache (or store), chunk by chunk with proofs, at
    `{url}/cas/{root}/{i}` (`Chunks`): read-only, GET only, one request per connection,
    bounded for hostile clients as the result server is (`results.GuardedServer`)."""

    def __init__(self, cache: Cache, host: str = "127.0.0.1", port: int = 0):
        from computeshare.results import GuardedServer

        self.cache = cache
        self.chunks = Chunks(cache)
        self._server = GuardedServer(self.chunks, host, port, "chunk server")
        self.address, self.max_connections = self._server.address, self._server.max_connections
        self.url = f"{self._server.url}/cas/"

    @property
    def requests(self) -> int:
        """Chunk requests answered 200."""
        return self.chunks.requests

    @property
    def connections(self) -> int:
        return self._server.connections

    def start(self) -> ChunkServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> ChunkServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(cache: Cache, address: str) -> ChunkServer:
    """`HOST:PORT` -> a started chunk server over `cache`."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit() or int(port) > 65535:
        raise CasError(f"{address!r} is not HOST:PORT")
    try:
        return ChunkServer(cache, host, int(port)).start()
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise CasError(f"{address} is already in use") from None
        raise CasError(f"cannot serve at {address}: {error.strerror}") from None
