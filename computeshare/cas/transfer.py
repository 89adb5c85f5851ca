"""Trees over the network: `fetch_tree` (verified chunk by chunk, resumable, bounded),
`ChunkServer` (`serve`) and `write_static`: two forms of one layout, fetched alike.

A source URI is an http(s) base ending in "/" (e.g. "http://host:8710/cas/"); chunk i of
a tree is `GET {uri}{root}/{i}`, answered 200 with Content-Length = the chunk's exact length
and the chunk's raw bytes (404 for a root the source does not hold or an index past the end).

Proof form (served by `ChunkServer`, under "/cas/"): the answer also carries
`X-Proof: the proof's hashes as hex, joined by ","` (may be empty); the chunk is checked
against the root with that proof.

Static form (written by `write_static`, `computeshare data add DIR --static OUT`): plain
files any static host serves unchanged (nginx, S3, `python -m http.server`, an IPFS gateway
once the folder is added to IPFS):

    {base}/{root}/leaves   the tree's leaf hashes, all of them concatenated (32 bytes a chunk)
    {base}/{root}/{i}      chunk i's raw bytes

A chunk answer with no X-Proof header is checked against the leaves file instead: fetched
once per tree from that source (`GET {uri}{root}/leaves`, exactly 32 bytes per chunk of the
declared size, within `seconds_per_chunk` per MiB of it, under the same rules as a chunk)
and trusted only once `merkle_root(leaves) == root`; a chunk is then good when its leaf hash
is the leaves file's entry. The verified leaves are kept beside the partial download
(`partial/<root>.hashes`), so a resumed download does not fetch them again. Proof and
static sources mix freely in one fetch.

IPFS. "https://gw/ipfs/<cid>/" (a path gateway; or a subdomain gateway's
"https://<cid>.ipfs.gw/") is an http(s) source like any other: the folder `OUT` added with
`ipfs add -r` gives the CID. "ipfs://<cid>/" is fetched through the gateway given as
`ipfs_gateway` or in $COMPUTESHARE_IPFS_GATEWAY (e.g. "http://127.0.0.1:8080"), as
"{gateway}/ipfs/<cid>/"; with no gateway configured such a source is skipped, and a fetch
with no other source is refused saying so. A gateway that redirects (some move path
requests to their subdomain form) is not followed: give the form it serves directly.

Bounds, for every request: one request per connection; one deadline for the whole
exchange (connect, TLS, head, body); a head of at most `MAX_HEAD` bytes and exactly the
expected length of body; no Transfer-Encoding; no redirect followed; a chunk is written
only once it checks against the root. Sources are tried in order, or spread over chunks
(several replicas serving one output). A pack larger than the caller's `max_size` (and
`MAX_SIZE`) is refused before the first request.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import socket
import threading
import time
import urllib.parse
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
    PackError,
    TreeFetchError,
    _verified_leaf,
    chunk_count,
    chunk_length,
    leaf_hash,
    merkle_root,
    open_pack,
)

IPFS_GATEWAY_ENV = "COMPUTESHARE_IPFS_GATEWAY"
_CID = re.compile(r"^[A-Za-z0-9]{8,128}$")
_IPFS_REST = re.compile(r"^([A-Za-z0-9._~-]+/)*$")


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


class _NoGateway(CasError):
    """An ipfs:// source while no gateway is configured (the source is skipped)."""


def ipfs_uri(uri: str, gateway: str | None) -> str:
    """ "ipfs://<cid>/[dir/...]" -> "{gateway}/ipfs/<cid>/[dir/...]"; CasError if it is
    malformed, `_NoGateway` if `gateway` is None or empty."""
    cid, _, rest = uri.removeprefix("ipfs://").partition("/")
    dots = {".", ".."}.intersection(rest.split("/"))
    if not _CID.match(cid) or not _IPFS_REST.match(rest) or dots:
        raise CasError(f"{uri[:70]!r} is not ipfs://<cid>/ (a CID, then folders ending in /)")
    if not gateway:
        raise _NoGateway(
            f"{uri[:70]}: no IPFS gateway is configured (set {IPFS_GATEWAY_ENV}, "
            "e.g. http://127.0.0.1:8080, or give an https://gateway/ipfs/<cid>/ URI)"
        )
    parts = urllib.parse.urlsplit(gateway)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise CasError(f"the IPFS gateway {gateway[:70]!r} is not an http(s) URI")
    return f"{gateway.rstrip('/')}/ipfs/{cid}/{rest}"


def _source(uri: str, gateway: str | None = None) -> _Source:
    if not isinstance(uri, str) or len(uri) > 2048:
        raise CasError(f"{str(uri)[:70]!r} is not a URI")
    named = uri
    if uri.startswith("ipfs://"):
        uri = ipfs_uri(uri, gateway)
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CasError(f"{named[:70]!r} is not an http(s) or ipfs:// URI")
    if parts.query or parts.fragment:
        raise CasError(f"{named[:70]!r}: a chunk URI has no query or fragment")
    try:
        port = parts.port
    except ValueError:
        raise CasError(f"{named[:70]!r} has a bad port") from None
    prefix = parts.path if parts.path.endswith("/") else parts.path + "/"
    return _Source(named, parts.scheme, parts.hostname, port, prefix)


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


def _get(source: _Source, name: str, length: int, seconds: float, what: str = "chunk"):
    """(body, proof) of `GET {prefix}{name}` from one source, or CasError; proof is None when
    the answer has no X-Proof header (a static source). The whole exchange (connecting, TLS,
    the answer's head and body) has `seconds`; the head is at most `MAX_HEAD` bytes and the
    body exactly `length` bytes; no redirect is followed."""
    deadline = time.monotonic() + seconds

    def left() -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        return remaining

    request = (
        f"GET {source.prefix}{name} HTTP/1.1\r\nHost: {source.host}\r\n"
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
                raise CasError(f"sent a Transfer-Encoding (a {what} has an exact Content-Length)")
            declared = headers.get("content-length", "")
            if not declared.isdigit() or int(declared) != length:
                raise CasError(f"sent {declared or 'no'} Content-Length for a {length}-byte {what}")
            proof = None
            if "x-proof" in headers:
                proof_text = headers["x-proof"]
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
                raise CasError(f"sent more than the {length}-byte {what}")
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
        raise CasError(f"took longer than {seconds:g} s for one {what}") from None
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
    ipfs_gateway: str | None = None,
) -> Path:
    """Fetches the pack (`root`, `size`) into `cache` and returns its path.

    The size is checked against `max_size` (the caller's policy) and the quota before any
    request. Chunks are fetched by `workers` threads and each is verified against the root
    before it is written; sources are tried in order (with `spread`, chunk i starts at
    source i mod n: several replicas serving one output share the load). A source that
    serves a chunk not matching the root is dropped at once, one that fails otherwise
    `max_failures` times in a row is dropped, and a chunk is given up after `max_failures`
    rounds over the sources (with a short back-off between rounds). Each request is bounded
    by `seconds_per_chunk` and the chunk's exact length. A static source's chunks are checked
    against its leaves file, itself checked against the root (see the module docstring).
    "ipfs://" URIs go through `ipfs_gateway` (default: $COMPUTESHARE_IPFS_GATEWAY); without
    one they are skipped. Verified chunks stay in the partial file, so a later call
    resumes. The complete pack must parse (`open_pack`) before it enters the cache."""
    check_root(root)
    if not isinstance(size, int) or isinstance(size, bool) or size < HEADER:
        raise CasError(f"{size!r} is not a pack size (at least {HEADER} bytes)")
    if size > min(max_size, MAX_SIZE):
        limit = min(max_size, MAX_SIZE)
        raise CasError(f"the tree is {size} bytes, more than the {limit} this policy allows")
    found = _cached(cache, root, size)
    if found is not None:
        return found
    if ipfs_gateway is None:
        ipfs_gateway = os.environ.get(IPFS_GATEWAY_ENV)
    sources, skipped = [], []
    for uri in uris:
        try:
            sources.append(_source(uri, ipfs_gateway))
        except _NoGateway as error:
            skipped.append(str(error))
    if not sources:
        raise CasError(skipped[0] if skipped else "no source URI for the tree")
    root_bytes = bytes.fromhex(root)
    part = cache.dir / "partial" / f"{root}.part"
    leaves_path = part.with_suffix(".leaves")
    hashes_path = part.with_suffix(".hashes")
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
                static = _StaticLeaves(root, root_bytes, size, hashes_path, seconds_per_chunk)
                _download(
                    fd, leaves_path, leaves, root, root_bytes, size, sources,
                    seconds_per_chunk, max(1, workers), max_failures, spread, static,
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
                hashes_path.unlink(missing_ok=True)
                raise TreeFetchError(
                    f"the tree matches its root but is not a pack: {error}"
                ) from None
            dest = cache.pack_path(root)
            os.replace(leaves_path, dest.with_suffix(".leaves"))
            os.replace(part, dest)
            hashes_path.unlink(missing_ok=True)
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


class _Lie(CasError):
    """A source served bytes that do not match the root: it is never asked again."""


class _Waited(CasError):
    """The leaves fetch this call waited for failed: not counted again against the source."""


class _StaticLeaves:
    """A tree's leaf hashes from a static source's `{root}/leaves`: fetched once (the first
    chunk answer without a proof asks its source), trusted only once their Merkle root is the
    tree's root, and kept at `path` for a resumed download."""

    def __init__(self, root: str, root_bytes: bytes, size: int, path: Path, seconds: float):
        self.root, self.root_bytes, self.path = root, root_bytes, path
        self.length = HASH * chunk_count(size)
        self.seconds = seconds * max(1, -(-self.length // CHUNK))  # the chunks' rate
        self.lock = threading.Lock()
        self.hashes: bytes | None = None
        self.attempts, self.last = 0, (None, CasError())
        with contextlib.suppress(OSError):
            kept = path.read_bytes()
            if len(kept) == self.length and self._matches(kept):
                self.hashes = kept

    def _matches(self, raw) -> bool:
        return merkle_root([raw[i : i + HASH] for i in range(0, len(raw), HASH)]) == self.root_bytes

    def leaf(self, source: _Source, index: int) -> bytes:
        """Chunk `index`'s leaf hash, from the verified leaves (fetched from `source` first if
        none are held yet); CasError if they cannot be had, `_Lie` if they do not match. A
        call that waited while the same source failed to give them shares that outcome
        (`_Waited`, or the lie) instead of asking again."""
        seen = self.attempts
        with self.lock:  # one fetch of the leaves at a time; the other workers wait for it
            if self.hashes is None:
                if source.dropped:
                    raise _Waited(source.dropped)
                if self.attempts != seen and self.last[0] is source:
                    error = self.last[1]
                    raise (_Lie if isinstance(error, _Lie) else _Waited)(str(error))
                self.attempts += 1
                try:
                    raw, _ = _get(
                        source, f"{self.root}/leaves", self.length, self.seconds, "leaves file"
                    )
                    if not self._matches(raw):
                        source.dropped = "its leaves file does not match the root"
                        raise _Lie(source.dropped)
                except CasError as error:
                    self.last = (source, error)
                    raise
                temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
                temp.write_bytes(raw)
                os.replace(temp, self.path)
                self.hashes = bytes(raw)
        return self.hashes[index * HASH : (index + 1) * HASH]


def _download(
    fd, leaves_path, leaves, root, root_bytes, size, sources, seconds, workers, max_failures,
    spread, static,
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
                    chunk, proof = _get(source, f"{root}/{index}", length, seconds)
                    if proof is None:  # a static source: checked against the leaves file
                        leaf = leaf_hash(chunk)
                        if leaf != static.leaf(source, index):
                            leaf = None
                    else:
                        leaf = _verified_leaf(root_bytes, size, index, chunk, proof)
                except _Lie as error:
                    with lock:
                        source.dropped = str(error)
                    continue
                except _Waited as error:
                    source.last_error = str(error)
                    continue
                except CasError as error:
                    with lock:
                        source.failures += 1
                        source.last_error = str(error)
                        if source.failures >= max_failures:
                            source.dropped = str(error)
                    continue
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
