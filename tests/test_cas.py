"""Content-addressed trees (computeshare.cas): packs, Merkle proofs, the chunk server, the
verifying fetcher against honest and hostile loopback servers, resuming, the cache's quota,
eviction and pins, and `computeshare data add`."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from computeshare import cas
from computeshare.cas import (
    CHUNK,
    Cache,
    CacheFull,
    CasError,
    ChunkServer,
    PackError,
    TreeFetchError,
    fetch_tree,
    leaves_of_file,
    merkle_root,
    open_pack,
    pack_dir,
    proof,
    root_of_file,
    unpack,
    verify_chunk,
)

FAST = {"seconds_per_chunk": 1.0, "max_failures": 1}


def make_tree(top: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = top / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return top


def noise(n: int, seed: int = 0) -> bytes:
    out, counter = bytearray(), 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest() * 64
        counter += 1
    return bytes(out[:n])


TREE = {
    "a.txt": b"hello\n",
    "dir/b.bin": noise(3 * CHUNK + 12_345),
    "dir/sub/c": b"",
    "z": noise(70_000, 1),
}


@pytest.fixture
def tree(tmp_path) -> Path:
    top = make_tree(tmp_path / "tree", TREE)
    (top / "empty" / "nested").mkdir(parents=True)  # empty directories are dropped
    return top


@pytest.fixture
def store(tmp_path, tree):
    cache = Cache(tmp_path / "store")
    return cache, cache.add_dir(tree)


@pytest.fixture
def server(store):
    with ChunkServer(store[0]) as running:
        yield running


# ---------------------------------------------------------------- packs


def test_round_trip(tmp_path, tree):
    info = pack_dir(tree, tmp_path / "t.pack")
    assert info.entries == 4
    assert info.size == info.path.stat().st_size
    pack = open_pack(info.path)
    files = pack.files()
    assert sorted(files) == sorted(TREE)
    for name, (path, offset, size) in files.items():
        with open(path, "rb") as f:
            assert os.pread(f.fileno(), size, offset) == TREE[name]
    unpack(pack, tmp_path / "out")
    found = {
        str(p.relative_to(tmp_path / "out")): p.read_bytes()
        for p in (tmp_path / "out").rglob("*")
        if p.is_file()
    }
    assert found == TREE
    assert not (tmp_path / "out" / "empty").exists()
    with pytest.raises(PackError, match="not an empty directory"):
        unpack(pack, tmp_path / "out")


def test_layout_is_the_documented_format(tmp_path):
    top = make_tree(tmp_path / "t", {"b": b"BB", "a/x": b"A"})
    info = pack_dir(top, tmp_path / "p")
    expected = (
        b"CSPK\x01"
        + struct.pack("<I", 2)
        + struct.pack("<H", 3)
        + b"a/x"
        + struct.pack("<Q", 1)
        + struct.pack("<H", 1)
        + b"b"
        + struct.pack("<Q", 2)
        + b"ABB"
    )
    assert info.path.read_bytes() == expected
    assert info.root == hashlib.sha256(b"\x00" + expected).hexdigest()  # one chunk: the leaf


def test_root_is_deterministic(tmp_path):
    one = make_tree(tmp_path / "one", TREE)
    two = tmp_path / "two"
    for name in reversed(list(TREE)):  # created in another order
        make_tree(two, {name: TREE[name]})
    first = pack_dir(one, tmp_path / "1.pack")
    second = pack_dir(two, tmp_path / "2.pack")
    assert (first.root, first.size) == (second.root, second.size)
    assert root_of_file(first.path) == (first.root, first.size)
    (two / "z").write_bytes(TREE["z"][:-1] + b"!")
    assert pack_dir(two, tmp_path / "3.pack").root != first.root


def reference_root(leaves: list[bytes]) -> bytes:
    """The design's rule, written independently: pair up, carry an odd last node."""
    while len(leaves) > 1:
        pairs = [
            hashlib.sha256(b"\x01" + leaves[i] + leaves[i + 1]).digest()
            for i in range(0, len(leaves) - 1, 2)
        ]
        leaves = pairs + ([leaves[-1]] if len(leaves) % 2 else [])
    return leaves[0]


@pytest.mark.parametrize("chunks", [1, 2, 3, 5, 7, 8, 9])
def test_proofs(tmp_path, chunks):
    size = (chunks - 1) * CHUNK + 1_000
    data = noise(size, chunks)
    path = tmp_path / "blob"
    path.write_bytes(data)
    leaves, found = leaves_of_file(path)
    assert found == size and len(leaves) == chunks
    root = merkle_root(leaves)
    assert root == reference_root(leaves)
    for i in range(chunks):
        chunk = data[i * CHUNK : (i + 1) * CHUNK]
        path_ = proof(leaves, i)
        assert verify_chunk(root, size, i, chunk, path_)
        tampered = bytes([chunk[0] ^ 1]) + chunk[1:]
        assert not verify_chunk(root, size, i, tampered, path_)
        if i == chunks - 1:  # the size fixes the last chunk's length
            assert not verify_chunk(root, size + 1, i, chunk, path_)
            assert not verify_chunk(root, size - 1, i, chunk, path_)
        assert not verify_chunk(root, size, i, chunk, [*path_, bytes(32)])
        if path_:
            assert not verify_chunk(root, size, i, chunk, path_[:-1])
            assert not verify_chunk(root, size, i, chunk, [bytes(32), *path_[1:]])
        if chunks > 1:
            other = (i + 1) % chunks
            assert not verify_chunk(root, size, other, chunk, path_)
    assert not verify_chunk(root, size, chunks, b"x", [])


def test_pack_dir_refuses(tmp_path):
    top = make_tree(tmp_path / "t", {"ok": b"1"})
    (top / "link").symlink_to(top / "ok")
    with pytest.raises(PackError, match="link is a symbolic link"):
        pack_dir(top, tmp_path / "p")
    (top / "link").unlink()
    os.mkfifo(top / "pipe")
    with pytest.raises(PackError, match="pipe is not a regular file"):
        pack_dir(top, tmp_path / "p")
    (top / "pipe").unlink()
    (top / os.fsdecode(b"bad\xff")).write_bytes(b"")
    with pytest.raises(PackError, match="not UTF-8"):
        pack_dir(top, tmp_path / "p")
    with pytest.raises(PackError, match="is not a directory"):
        pack_dir(top / "ok", tmp_path / "p")
    assert not (tmp_path / "p").exists()
    assert not list(tmp_path.glob(".packing-*"))


def raw_pack(entries: list[tuple[bytes, int]], body: bytes | None = None, count=None) -> bytes:
    head = b"CSPK\x01" + struct.pack("<I", len(entries) if count is None else count)
    for path, size in entries:
        head += struct.pack("<H", len(path)) + path + struct.pack("<Q", size)
    if body is None:
        body = b"x" * sum(size for _, size in entries)
    return head + body


HOSTILE = {
    "empty file": (b"", "ends inside the magic"),
    "bad magic": (b"PK\x03\x04" + bytes(20), "not a pack"),
    "other version": (b"CSPK\x02" + bytes(4), "not a pack"),
    "short count": (b"CSPK\x01\x00", "ends inside the count"),
    "count past length": (raw_pack([(b"a", 1)], count=1_000), "cannot fit"),
    "count past the bound": (raw_pack([], count=0xFFFFFFFF), "at most"),
    "truncated entry": (raw_pack([(b"a" * 50, 1)])[:30], "ends inside an entry.s path"),
    "size past the end": (raw_pack([(b"a", 5)], b"xx"), "past the pack"),
    "size overflow": (raw_pack([(b"a", 2**64 - 1), (b"b", 2)], b"xx"), "past the pack"),
    "trailing bytes": (raw_pack([(b"a", 1)], b"xy"), "1 bytes after"),
    "unsorted": (raw_pack([(b"b", 1), (b"a", 1)]), "not sorted"),
    "duplicate": (raw_pack([(b"a", 1), (b"a", 1)]), "not sorted"),
    "dot dot": (raw_pack([(b"../etc/passwd", 1)]), "'..'"),
    "inner dot dot": (raw_pack([(b"a/../../b", 1)]), "'..'"),
    "dot": (raw_pack([(b"./a", 1)]), "'.'"),
    "absolute": (raw_pack([(b"/etc/passwd", 1)]), "absolute"),
    "NUL": (raw_pack([(b"a\x00b", 1)]), "NUL"),
    "empty component": (raw_pack([(b"a//b", 1)]), "empty"),
    "trailing slash": (raw_pack([(b"a/", 1)]), "empty"),
    "empty path": (raw_pack([(b"", 1)]), "empty path"),
    "not UTF-8": (raw_pack([(b"\xc3\x28", 1)]), "not UTF-8"),
    "long component": (raw_pack([(b"a" * 256, 1)]), "component of 256"),
    "long path": (raw_pack([(b"/".join([b"a" * 200] * 21), 1)]), "at most 4096"),
    "file and directory": (raw_pack([(b"a", 1), (b"a/b", 1)]), "both a file and a directory"),
    "deep file and directory": (
        raw_pack([(b"a/b", 1), (b"a/b-c", 1), (b"a/b/c/d", 1)]),
        "both a file and a directory",
    ),
}


@pytest.mark.parametrize("name", HOSTILE)
def test_open_pack_refuses_hostile_packs(tmp_path, name):
    data, message = HOSTILE[name]
    path = tmp_path / "hostile.pack"
    path.write_bytes(data)
    with pytest.raises(PackError, match=message):
        open_pack(path)


def test_open_pack_accepts_an_empty_tree(tmp_path):
    path = tmp_path / "empty.pack"
    path.write_bytes(raw_pack([]))
    assert open_pack(path).files() == {}
    assert root_of_file(path)[1] == 9


# ---------------------------------------------------------------- fetching


def test_fetch_and_cache_hit(tmp_path, store, server, tree):
    _, info = store
    cache = Cache(tmp_path / "cache", quota=10 * CHUNK)
    path = fetch_tree(info.root, info.size, [server.url], cache, max_size=1 << 30)
    assert path.read_bytes() == info.path.read_bytes()
    assert server.requests == 4  # 3 MiB + a bit: four chunks
    assert fetch_tree(info.root, info.size, [server.url], cache, max_size=1 << 30) == path
    assert server.requests == 4  # served from the cache
    with cache.pinned(info.root):
        inputs = cache.open(info.root).files()  # the sandbox's /input, straight from the pack
    assert inputs["a.txt"] == (path, inputs["a.txt"][1], 6)
    unpack(open_pack(path), tmp_path / "out")
    assert (tmp_path / "out" / "dir" / "b.bin").read_bytes() == TREE["dir/b.bin"]
    assert not list((tmp_path / "cache" / "partial").glob("*.part"))


class RawServer:
    """A loopback TCP server whose every connection is handled by `handle(conn)`: the
    hostile servers below. Counts connections."""

    def __init__(self, handle, with_request: bool = False):
        self.handle, self.connections, self.with_request = handle, 0, with_request
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/cas/"
        self.closed = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        while not self.closed.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn:
            try:
                request = conn.recv(65_536)
                self.handle(*((conn, request) if self.with_request else (conn,)))
            except OSError:
                pass

    def close(self):
        self.closed.set()
        self.sock.close()


@pytest.fixture
def raw_servers():
    made = []

    def make(handle, with_request: bool = False):
        made.append(RawServer(handle, with_request))
        return made[-1]

    yield make
    for server in made:
        server.close()


def head(length: int | None, extra: str = "", status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}"]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def fetch_fails(info, uris, tmp_path, message, seconds=6.0, **options):
    cache = Cache(tmp_path / "cache")
    started = time.monotonic()
    with pytest.raises(TreeFetchError, match=message):
        fetch_tree(info.root, info.size, uris, cache, max_size=1 << 30, **{**FAST, **options})
    assert time.monotonic() - started < seconds
    assert not cache.has(info.root)


def test_size_checked_before_any_request(tmp_path, store, raw_servers):
    _, info = store
    counting = raw_servers(lambda conn: None)
    with pytest.raises(CasError, match="more than the 1000 this policy allows"):
        fetch_tree(info.root, info.size, [counting.url], Cache(tmp_path / "c"), max_size=1_000)
    with pytest.raises(CacheFull, match="exceed the cache's quota"):
        fetch_tree(
            info.root, info.size, [counting.url], Cache(tmp_path / "c", CHUNK), max_size=1 << 40
        )
    time.sleep(0.1)
    assert counting.connections == 0


@pytest.mark.parametrize(
    "bad",
    ["", "ab" * 32 + "0", "AB" * 32, "../" * 21 + "x", "g" * 64],
)
def test_bad_roots_and_sizes_refused(tmp_path, bad):
    with pytest.raises(CasError, match="is not a root"):
        fetch_tree(bad, 100, ["http://127.0.0.1:1/"], Cache(tmp_path / "c"), max_size=1 << 30)


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("ftp://host/", "not an http"),
        ("file:///etc/", "not an http"),
        ("ipfs://not a cid/", "is not ipfs://<cid>/"),
        ("ipfs://bafybeigdyrzt5sfp7udm7hu76uh/../x/", "is not ipfs://<cid>/"),
        ("http://host/x?y=1", "no query"),
    ],
)
def test_bad_uris_refused(tmp_path, store, uri, message):
    _, info = store
    with pytest.raises(CasError, match=message):
        fetch_tree(info.root, info.size, [uri], Cache(tmp_path / "c"), max_size=1 << 30)


def test_wrong_size_refused(tmp_path, store, server):
    _, info = store
    cache = Cache(tmp_path / "cache")
    last = info.size - 3 * CHUNK  # the last chunk of a tree one byte longer has one more
    with pytest.raises(TreeFetchError, match=f"sent {last} Content-Length for a {last + 1}-"):
        fetch_tree(info.root, info.size + 1, [server.url], cache, max_size=1 << 30, **FAST)


def test_tampered_chunk_refused(tmp_path, store, server):
    _, info = store
    with open(info.path, "r+b") as f:  # the store's pack rots after its leaves were recorded
        f.seek(CHUNK + 5)
        byte = f.read(1)
        f.seek(CHUNK + 5)
        f.write(bytes([byte[0] ^ 0xFF]))
    fetch_fails(info, [server.url], tmp_path, "chunk 1 does not match the root")


def test_wrong_root_refused(tmp_path, store, raw_servers):
    _, info = store
    first = info.path.read_bytes()[:CHUNK]

    def liar(conn):  # the right length, the right proof shape, other bytes
        conn.sendall(head(CHUNK, "X-Proof: " + ",".join(["00" * 32] * 2) + "\r\n"))
        conn.sendall(b"\x00" * CHUNK if first[0] else b"\x01" * CHUNK)

    fetch_fails(info, [raw_servers(liar).url], tmp_path, "does not match the root")


def test_a_tree_that_is_not_a_pack_is_refused(tmp_path):
    """The bytes match their root, chunk by chunk, but do not parse as a pack."""
    junk = Cache(tmp_path / "junk")
    data = b"CSPK\x01" + struct.pack("<I", 1) + noise(CHUNK + 100)
    root, size = merkle_root([cas.leaf_hash(data[:CHUNK]), cas.leaf_hash(data[CHUNK:])]), len(data)
    junk.pack_path(root.hex()).write_bytes(data)
    cache = Cache(tmp_path / "cache")
    with ChunkServer(junk) as server, pytest.raises(TreeFetchError, match="is not a pack"):
        fetch_tree(root.hex(), size, [server.url], cache, max_size=1 << 30)
    assert not cache.has(root.hex()) and cache.used() == 0


def test_redirect_not_followed(tmp_path, store, server, raw_servers):
    _, info = store
    target = raw_servers(lambda conn: None)
    redirect = raw_servers(
        lambda conn: conn.sendall(head(0, f"Location: {server.url}{info.root}/0\r\n", "302 Found"))
    )
    fetch_fails(info, [redirect.url], tmp_path, r"redirected \(302")
    assert server.requests == 0 and target.connections == 0


def test_trickle_cut_off(tmp_path, store, raw_servers):
    _, info = store

    def trickle(conn):
        conn.sendall(head(CHUNK, "X-Proof: \r\n"))
        for _ in range(100):
            conn.sendall(b"x")
            time.sleep(0.1)

    fetch_fails(info, [raw_servers(trickle).url], tmp_path, "took longer than 1 s", seconds=4)


def test_trickled_head_cut_off(tmp_path, store, raw_servers):
    _, info = store

    def trickle(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for _ in range(100):
            conn.sendall(b"X: y\r\n")
            time.sleep(0.1)

    fetch_fails(info, [raw_servers(trickle).url], tmp_path, "took longer than 1 s", seconds=4)


def test_malformed_answers_refused(tmp_path, store, raw_servers):
    _, info = store
    answers = {
        b"SSH-2.0-OpenSSH\r\n\r\n": "not an HTTP answer",
        b"HTTP/1.1 200 OK\r\nbroken\r\n\r\n": "malformed header",
        head(CHUNK, "Content-Length: 5\r\n"): "two different content-length",
        head(CHUNK, "Transfer-Encoding: chunked\r\n"): "Transfer-Encoding",
        head(CHUNK, "X-Proof: zz\r\n"): "not hex",
        head(None, "", "404 Not Found"): "answered 404",
        head(CHUNK, "X-Proof: \r\n") + b"x" * 1000: "closed after 1000",
    }
    for answer, message in answers.items():
        server = raw_servers(lambda conn, answer=answer: conn.sendall(answer))
        fetch_fails(info, [server.url], tmp_path, message)


def test_silent_server_cut_off(tmp_path, store, raw_servers):
    _, info = store
    fetch_fails(
        info, [raw_servers(lambda conn: time.sleep(10)).url], tmp_path, "took longer", seconds=4
    )


def test_endless_streams_refused(tmp_path, store, raw_servers):
    _, info = store

    def endless_body(conn):  # no length: an endless body
        conn.sendall(head(None, "X-Proof: \r\n"))
        while True:
            conn.sendall(b"x" * 65_536)

    def endless_headers(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while True:
            conn.sendall(b"X-Junk: " + b"y" * 1_000 + b"\r\n")

    def endless_line(conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nX-Junk: ")
        while True:
            conn.sendall(b"y" * 65_536)

    def long_proof(conn):
        conn.sendall(head(CHUNK, "X-Proof: " + "ab" * 3_000 + "\r\n"))
        while True:
            conn.sendall(b"x" * 65_536)

    fetch_fails(info, [raw_servers(endless_body).url], tmp_path, "no Content-Length")
    fetch_fails(info, [raw_servers(endless_headers).url], tmp_path, "head longer than 16384")
    fetch_fails(info, [raw_servers(endless_line).url], tmp_path, "head longer than 16384")
    fetch_fails(info, [raw_servers(long_proof).url], tmp_path, "longer than 64 hashes")


def test_falls_back_to_the_next_source(tmp_path, store, server, raw_servers):
    _, info = store
    dead = socket.create_server(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()
    wrong = raw_servers(lambda conn: conn.sendall(head(3, "X-Proof: \r\n") + b"abc"))
    cache = Cache(tmp_path / "cache")
    uris = [f"http://127.0.0.1:{port}/cas/", wrong.url, server.url]
    path = fetch_tree(info.root, info.size, uris, cache, max_size=1 << 30, workers=1, **FAST)
    assert path.read_bytes() == info.path.read_bytes()
    assert wrong.connections == 1  # dropped after its first failure (max_failures=1)


def test_transient_failures_are_retried(tmp_path, store, server, raw_servers):
    """A source that fails now and then (a proxy that closes every other connection at
    once) is asked again after a short back-off; the tree arrives whole."""
    _, info = store
    seen = []

    def flaky(conn, request):
        seen.append(None)
        if len(seen) % 2:
            return
        with socket.create_connection(server.address) as up:
            up.sendall(request)
            while data := up.recv(65_536):
                conn.sendall(data)

    flaky_server = raw_servers(flaky, with_request=True)
    cache = Cache(tmp_path / "cache")
    path = fetch_tree(info.root, info.size, [flaky_server.url], cache, max_size=1 << 30, workers=1)
    assert path.read_bytes() == info.path.read_bytes()
    assert len(seen) == 8 and server.requests == 4


def test_several_sources_share_one_tree(tmp_path, store):
    source, info = store
    with ChunkServer(source) as one, ChunkServer(source) as two:
        cache = Cache(tmp_path / "cache")
        fetch_tree(info.root, info.size, [one.url, two.url], cache, max_size=1 << 30, spread=True)
        assert one.requests == 2 and two.requests == 2
    assert cache.get(info.root).read_bytes() == info.path.read_bytes()


def test_resume_after_interruption(tmp_path, raw_servers):
    """The way to the server breaks in the middle of chunk 8 (a proxy that passes seven
    whole answers and half of the eighth, then refuses); the next call fetches only the
    chunks the first did not verify."""
    top = make_tree(tmp_path / "big", {"data": noise(24 * CHUNK, 7)})
    source = Cache(tmp_path / "store")
    info = source.add_dir(top)
    chunks = cas.chunk_count(info.size)
    assert chunks == 25
    cache = Cache(tmp_path / "cache")
    with ChunkServer(source) as server:
        upstream = server.address
        passed = []

        def proxy(conn):
            passed.append(None)
            if len(passed) > 8:
                return  # the way is broken: closed at once
            limit = CHUNK // 2 if len(passed) == 8 else None
            request = f"GET /cas/{info.root}/{len(passed) - 1} HTTP/1.1\r\nHost: x\r\n\r\n"
            with socket.create_connection(upstream) as up:
                up.sendall(request.encode())
                sent = 0
                while (limit is None or sent < limit) and (data := up.recv(65_536)):
                    conn.sendall(data)
                    sent += len(data)

        broken = raw_servers(proxy)
        with pytest.raises(TreeFetchError, match="no source served chunk 7"):
            fetch_tree(
                info.root, info.size, [broken.url], cache, max_size=1 << 30, workers=1, **FAST
            )
        assert cache.partial_chunks(info.root, info.size) == 7
        assert not cache.has(info.root)
        before = server.requests
        path = fetch_tree(info.root, info.size, [server.url], cache, max_size=1 << 30)
        assert server.requests - before == chunks - 7  # only the missing chunks
    assert path.read_bytes() == info.path.read_bytes()


def test_resume_after_the_fetcher_is_killed(tmp_path, raw_servers):
    """A fetching process killed mid-way (SIGKILL: no clean-up at all) leaves its verified
    chunks; the next fetcher, in another process, asks only for the others."""
    top = make_tree(tmp_path / "big", {"data": noise(20 * CHUNK, 9)})
    source = Cache(tmp_path / "store")
    info = source.add_dir(top)
    chunks = cas.chunk_count(info.size)
    cache = Cache(tmp_path / "cache")
    with ChunkServer(source) as server:
        stopped, forwarding = threading.Event(), []

        def slow(conn, request):  # a slow way to the server: 100 ms an answer
            time.sleep(0.1)
            if stopped.is_set():  # the fetcher is gone: nothing more reaches the server
                return
            forwarding.append(request)
            try:
                with socket.create_connection(server.address) as up:
                    up.sendall(request)
                    while data := up.recv(65_536):
                        conn.sendall(data)
            finally:
                forwarding.remove(request)

        proxy = raw_servers(slow, with_request=True)
        code = (
            "import sys; from computeshare.cas import Cache, fetch_tree; "
            "fetch_tree(sys.argv[1], int(sys.argv[2]), [sys.argv[3]], Cache(sys.argv[4]), "
            "max_size=1 << 30, workers=1)"
        )
        fetcher = subprocess.Popen(
            [sys.executable, "-c", code, info.root, str(info.size), proxy.url, str(cache.dir)],
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
        )
        deadline = time.monotonic() + 60
        while cache.partial_chunks(info.root, info.size) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        fetcher.kill()
        fetcher.wait()
        stopped.set()  # and requests the proxy was still forwarding are answered first
        while forwarding and time.monotonic() < deadline:
            time.sleep(0.01)
        kept = cache.partial_chunks(info.root, info.size)
        assert 4 <= kept < chunks and not cache.has(info.root)
        before = server.requests
        path = fetch_tree(info.root, info.size, [server.url], cache, max_size=1 << 30)
        assert server.requests - before == chunks - kept
    assert path.read_bytes() == info.path.read_bytes()


def test_resume_rechecks_recorded_chunks(tmp_path, store, server):
    """A recorded chunk whose bytes did not survive (a crash before the data reached the
    disk) is fetched again."""
    _, info = store
    cache = Cache(tmp_path / "cache")
    part = cache.dir / "partial" / f"{info.root}.part"
    leaves, _ = leaves_of_file(info.path)
    part.write_bytes(info.path.read_bytes()[: 2 * CHUNK] + bytes(info.size - 2 * CHUNK))
    damaged = bytearray(b"".join(leaves))
    (cache.dir / "partial" / f"{info.root}.leaves").write_bytes(damaged)  # all "recorded"
    with open(part, "r+b") as f:
        f.seek(10)
        f.write(b"?")  # chunk 0 is damaged
    path = fetch_tree(info.root, info.size, [server.url], cache, max_size=1 << 30)
    assert server.requests == 3  # chunks 0, 2 and 3; chunk 1 was kept
    assert path.read_bytes() == info.path.read_bytes()


# ---------------------------------------------------------------- cache


def add(cache: Cache, tmp_path: Path, name: str, size: int):
    return cache.add_dir(make_tree(tmp_path / name, {"f": noise(size, hash(name) % 1000)}))


def test_quota_eviction_and_pins(tmp_path):
    cache = Cache(tmp_path / "cache", quota=3 * CHUNK)
    one = add(cache, tmp_path, "one", CHUNK)
    two = add(cache, tmp_path, "two", CHUNK)
    os.utime(one.path, (1, 1))  # `one` is the least recently used
    os.utime(two.path, (2, 2))
    cache.get(one.root)  # ... until it is used
    three = add(cache, tmp_path, "three", CHUNK)
    assert set(cache.roots()) == {one.root, three.root}  # `two` was evicted
    assert cache.add_dir(tmp_path / "three").root == three.root  # held already: no eviction
    assert set(cache.roots()) == {one.root, three.root}
    assert cache.used() <= cache.quota
    token = cache.pin(one.root)
    os.utime(one.path, (1, 1))
    four = add(cache, tmp_path, "four", CHUNK)
    assert set(cache.roots()) == {one.root, four.root}  # pinned `one` stayed, `three` went
    with cache.pinned(four.root) as path:
        assert path == four.path
        with pytest.raises(CacheFull, match="pinned"):
            add(cache, tmp_path, "five", CHUNK)
        assert not cache.evict(four.root)
    assert set(cache.roots()) == {one.root, four.root}
    cache.unpin(token)
    assert cache.evict(one.root)
    assert cache.roots() == [four.root]


def test_pins_of_ended_processes_are_ignored(tmp_path):
    cache = Cache(tmp_path / "cache", quota=2 * CHUNK)
    one = add(cache, tmp_path, "one", CHUNK)
    code = (
        "import sys; from computeshare.cas import Cache; print(Cache(sys.argv[1]).pin(sys.argv[2]))"
    )
    token = subprocess.run(
        [sys.executable, "-c", code, str(cache.dir), one.root],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
    ).stdout.strip()
    assert Path(token).exists()  # its process has ended
    assert cache.evict(one.root)
    assert not Path(token).exists()


def test_cache_shared_between_fetchers(tmp_path, store, server):
    """Fetchers sharing a cache directory (replicas, the arbiter) download a tree once, even
    at the same time."""
    _, info = store
    caches = [Cache(tmp_path / "shared", quota=1 << 30) for _ in range(3)]
    found, errors = [], []

    def run(cache):
        try:
            found.append(fetch_tree(info.root, info.size, [server.url], cache, max_size=1 << 30))
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(cache,)) for cache in caches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and len(set(found)) == 1 and len(found) == 3
    assert server.requests == 4


# ---------------------------------------------------------------- server and CLI


def http_get(url: str) -> bytes:
    host, _, rest = url.removeprefix("http://").partition("/")
    name, _, port = host.rpartition(":")
    with socket.create_connection((name, int(port)), timeout=5) as sock:
        sock.sendall(f"GET /{rest} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65_536):
            data += chunk
    return data


def test_server_answers_only_chunks(store, server):
    _, info = store
    base = server.url
    assert http_get(f"{base}{info.root}/3").startswith(b"HTTP/1.1 200")
    for bad in (f"{info.root}/4", f"{'0' * 64}/0", f"{info.root}/-1", "../../etc/passwd", ""):
        assert http_get(f"{base}{bad}").startswith(b"HTTP/1.1 404"), bad


def test_idle_connections_do_not_block_fetching(tmp_path, store, server):
    _, info = store
    idle = [socket.create_connection(server.address) for _ in range(40)]
    try:
        path = fetch_tree(
            info.root, info.size, [server.url], Cache(tmp_path / "c"), max_size=1 << 30
        )
        assert path.read_bytes() == info.path.read_bytes()
    finally:
        for sock in idle:
            sock.close()


def test_cli_data_fetch_errors(tmp_path, store, server):
    from computeshare.cli import main

    _, info = store
    runner = CliRunner()
    base = ["data", "fetch", info.root, str(info.size), server.url, "--cache", str(tmp_path)]
    result = runner.invoke(main, [*base, "--max-size", "1000"])
    assert result.exit_code == 1
    assert result.output == (
        f"Error: the tree is {info.size} bytes, more than the 1000 this policy allows\n"
    )
    result = runner.invoke(main, [*base, "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "z").read_bytes() == TREE["z"]


def test_cli_data_add(tmp_path, tree, store):
    from computeshare.cli import main

    _, info = store
    runner = CliRunner()
    result = runner.invoke(main, ["data", "add", str(tree), "--store", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert f"root {info.root}" in result.output
    assert f"size {info.size}" in result.output
    result = runner.invoke(
        main, ["data", "add", str(tree), "--store", str(tmp_path / "s"), "--json"]
    )
    spec = json.loads(result.output)
    assert (spec["root"], spec["size"], spec["entries"]) == (info.root, info.size, 4)
    (tree / "link").symlink_to("/etc/passwd")
    result = runner.invoke(main, ["data", "add", str(tree), "--store", str(tmp_path / "s")])
    assert result.exit_code == 1
    assert (
        result.output.strip() == "Error: link is a symbolic link (a tree holds regular files only)"
    )
