"""The serving end of the wire format (`computeshare.cas.transfer` is the fetching end):
`Chunks` and `ChunkServer` answer `GET /cas/{root}/{i}` with the chunk and its proof, and
`write_static` lays a tree out for any static file host (`<root>/leaves`, `<root>/<i>`).
"""

from __future__ import annotations

import errno
import os
import re
import threading
from collections import OrderedDict
from pathlib import Path

from computeshare.cas.cache import Cache, check_root
from computeshare.cas.tree import (
    CHUNK,
    CasError,
    MerkleTree,
    chunk_count,
    chunk_length,
    leaf_hash,
    merkle_root,
)

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


def _static_holds(target: Path, leaves_raw: bytes, size: int) -> bool:
    """Whether `target` already holds the static layout of this tree (by names and sizes)."""
    try:
        if (target / "leaves").read_bytes() != leaves_raw:
            return False
        names = {p.name for p in target.iterdir()}
        count = chunk_count(size)
        if names != {"leaves", *map(str, range(count))}:
            return False
        return all((target / str(i)).stat().st_size == chunk_length(size, i) for i in range(count))
    except OSError:
        return False


def write_static(cache: Cache, root: str, out: Path | str) -> Path:
    """Writes the static layout of the complete pack `root` (see the module docstring) under
    the folder `out`: `out/<root>/leaves` and `out/<root>/<i>`, each chunk checked against
    its leaf as it is copied (a damaged pack is not published). Written beside the target,
    then renamed; a target already holding the same layout is kept. Returns `out/<root>`."""
    path = cache.get(check_root(root))
    if path is None:
        raise CasError(f"{root[:16]}… is not in the store")
    size = path.stat().st_size
    leaves = cache.leaves(root)
    if merkle_root(leaves) != bytes.fromhex(root):
        raise CasError(f"the store's {root[:16]}… does not match its root (damaged)")
    leaves_raw = b"".join(leaves)
    out = Path(out)
    target = out / root
    if target.exists():
        if _static_holds(target, leaves_raw, size):
            return target
        raise CasError(f"{target} exists and does not hold this tree (remove it first)")
    out.mkdir(parents=True, exist_ok=True)
    temp = out / f".{root}.{os.getpid()}.tmp"
    temp.mkdir()
    try:
        with open(path, "rb", buffering=0) as pack:
            for i, leaf in enumerate(leaves):
                data = os.pread(pack.fileno(), chunk_length(size, i), i * CHUNK)
                if len(data) != chunk_length(size, i) or leaf_hash(data) != leaf:
                    raise CasError(f"chunk {i} of the store's {root[:16]}… is damaged")
                (temp / str(i)).write_bytes(data)
        (temp / "leaves").write_bytes(leaves_raw)
        os.rename(temp, target)
    except BaseException:
        for p in temp.iterdir():
            p.unlink()
        temp.rmdir()
        raise
    return target
