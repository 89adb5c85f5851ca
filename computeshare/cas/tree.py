"""Content-addressed trees: packs, their Merkle roots, a chunk server, a verifying fetcher and
a cache with a byte quota.

A *tree* is a directory of regular files (no symlinks, devices, sockets or FIFOs; empty
directories are dropped). It travels as one canonical byte stream, its *pack*:

    b"CSPK\\x01" | u32 count | count entries | the files' bytes, concatenated in entry order
    entry = u16 path_len | path | u64 size          (integers little endian)

Entries are sorted by the path's UTF-8 bytes, strictly (no duplicates). A path is relative
POSIX UTF-8: no empty, "." or ".." component, no leading "/", no NUL, each component at most
255 bytes, the whole path at most 4,096 bytes, and no path is also a directory of another
("a" and "a/b" cannot both be files). The pack's length is exactly the header plus the sum
of the sizes. `open_pack` checks all of that against a hostile file, and also bounds the
entries at `MAX_ENTRIES` (`pack_dir` refuses larger trees).

Merkle root. The pack is cut into `CHUNK` = 1 MiB chunks (the last may be short). Leaf =
sha256(b"\\x00" + chunk); node = sha256(b"\\x01" + left + right); a level's odd last node is
carried up unchanged. A tree is named by (root, size): the root as 64 hex digits and the
pack's length in bytes; the number of chunks is ceil(size / CHUNK), so a proof needs no
more than the index and the size. A chunk's proof is the list of its sibling hashes from
the leaf level up, one per level where the node has a sibling (none where it is carried).

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

A job's `/input` is served straight from a cached pack: `open_pack(path).files()` gives
relative path -> (pack file, offset, size); pin the pack (`Cache.pinned`) while the job runs.

Cache layout (one directory, shared by every process of a machine: replicas, the arbiter):
    packs/<root>.pack     complete, verified packs (mtime = last use, for LRU eviction)
    packs/<root>.leaves   their leaf hashes (32 bytes per chunk), for serving proofs
    partial/<root>.part   a download in progress (sparse, full size)
    partial/<root>.leaves verified leaf hashes so far (zeros = missing), for resuming
    pins/<root>/<pid>-<n> a pack in use by a running job: never evicted while its process lives
    lock                  flock'ed around quota bookkeeping and eviction
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import itertools
import os
import re
import socket
import stat
import struct
import tempfile
import threading
import time
import urllib.parse
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

MAGIC = b"CSPK\x01"
HEADER = len(MAGIC) + 4  # magic and the u32 count: the smallest pack
CHUNK = 1 << 20
MAX_ENTRIES = 1 << 20  # files in one tree (a policy bound: the entries are held in memory)
MAX_SIZE = 1 << 42  # 4 TiB: the largest pack fetched, whatever a caller's policy says
MAX_PATH = 4096
MAX_COMPONENT = 255
HASH = 32
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_ROOT = re.compile(r"^[0-9a-f]{64}$")


class CasError(ValueError):
    """A tree, pack, proof, download or cache operation was refused (one-line message)."""


class PackError(CasError):
    """A directory cannot be packed, or a file is not a valid pack."""


class TreeFetchError(CasError):
    """No source served a tree that matches its root and size within the policy's bounds."""


class CacheFull(CasError):
    """The cache cannot make room within its quota (the rest is pinned or in use)."""


# ------------------------------------------------------------------------------ Merkle


def leaf_hash(chunk) -> bytes:
    h = hashlib.sha256(b"\x00")
    h.update(chunk)
    return h.digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def chunk_count(size: int) -> int:
    return -(-size // CHUNK)


def chunk_length(size: int, index: int) -> int:
    """The length of chunk `index` of a pack of `size` bytes."""
    return min(CHUNK, size - index * CHUNK)


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    if not leaves:
        raise CasError("a tree has at least one chunk")
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        below = levels[-1]
        above = [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
        if len(below) % 2:
            above.append(below[-1])
        levels.append(above)
    return levels


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """The root over leaf hashes (see the module docstring)."""
    return _levels(leaves)[-1][0]


class MerkleTree:
    """All levels over a pack's leaf hashes (32 bytes per MiB of pack), for serving proofs."""

    def __init__(self, leaves: Sequence[bytes]):
        self.levels = _levels(leaves)
        self.root = self.levels[-1][0]
        self.chunks = len(self.levels[0])

    def proof(self, index: int) -> list[bytes]:
        if not 0 <= index < self.chunks:
            raise CasError(f"chunk {index} is past the end ({self.chunks} chunks)")
        path = []
        for level in self.levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                path.append(level[sibling])
            index //= 2
        return path


def proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Chunk `index`'s proof: its sibling hashes, leaf level first."""
    return MerkleTree(leaves).proof(index)


def verify_chunk(root: bytes, size: int, index: int, chunk, proof: Sequence[bytes]) -> bool:
    """Whether `chunk` is chunk `index` of the pack named by (`root`, `size`)."""
    return _verified_leaf(root, size, index, chunk, proof) is not None


def _verified_leaf(root, size, index, chunk, proof) -> bytes | None:
    """`chunk`'s leaf hash if it is chunk `index` of (`root`, `size`), else None."""
    count = chunk_count(size)
    if size < HEADER or not 0 <= index < count or len(chunk) != chunk_length(size, index):
        return None
    leaf = leaf_hash(chunk)
    node, width, remaining = leaf, count, list(proof)
    while width > 1:
        if index ^ 1 < width:
            if not remaining:
                return None
            sibling = remaining.pop(0)
            if len(sibling) != HASH:
                return None
            node = node_hash(node, sibling) if index % 2 == 0 else node_hash(sibling, node)
        index //= 2
        width = (width + 1) // 2
    return leaf if not remaining and node == bytes(root) else None


def leaves_of_file(path: Path | str) -> tuple[list[bytes], int]:
    """(leaf hashes, size) of a file, read a chunk at a time."""
    leaves, size, buffer = [], 0, bytearray(CHUNK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while True:
            got = _fill(f, view)
            if not got:
                break
            leaves.append(leaf_hash(view[:got]))
            size += got
            if got < CHUNK:
                break
    return leaves, size


def root_of_file(path: Path | str) -> tuple[str, int]:
    """(root hex, size) of a pack file (or any file), streamed a chunk at a time."""
    leaves, size = leaves_of_file(path)
    if size < HEADER:
        raise PackError(f"{path}: {size} bytes is shorter than a pack header")
    return merkle_root(leaves).hex(), size


def _fill(f, view: memoryview) -> int:
    """Reads into `view` until it is full or the file ends; the bytes read."""
    got = 0
    while got < len(view):
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    return got


# ------------------------------------------------------------------------------ packs


def check_path(raw: bytes) -> str:
    """A pack path's bytes -> the path, or PackError (see the module docstring)."""
    if not raw:
        raise PackError("an empty path")
    if len(raw) > MAX_PATH:
        raise PackError(f"a path of {len(raw)} bytes (at most {MAX_PATH})")
    if b"\x00" in raw:
        raise PackError(f"a path with a NUL byte: {raw[:60]!r}")
    if raw.startswith(b"/"):
        raise PackError(f"an absolute path: {raw[:60]!r}")
    for part in raw.split(b"/"):
        if part in (b"", b".", b".."):
            raise PackError(f"a path with an empty, '.' or '..' component: {raw[:60]!r}")
        if len(part) > MAX_COMPONENT:
            raise PackError(f"a path component of {len(part)} bytes (at most {MAX_COMPONENT})")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise PackError(f"a path that is not UTF-8: {raw[:60]!r}") from None


def _check_entries(paths: Sequence[bytes]) -> None:
    """Sorted strictly, and no file is also another's directory."""
    dirs: set[bytes] = set()
    for i, raw in enumerate(paths):
        if i and paths[i - 1] >= raw:
            raise PackError(f"entries are not sorted or repeat a path at {raw[:60]!r}")
        parts = raw.split(b"/")
        for n in range(1, len(parts)):
            dirs.add(b"/".join(parts[:n]))
    clash = dirs.intersection(paths)
    if clash:
        raise PackError(f"{min(clash)[:60]!r} is both a file and a directory")


@dataclasses.dataclass(frozen=True)
class Entry:
    path: str
    offset: int  # in the pack
    size: int


@dataclasses.dataclass(frozen=True)
class PackInfo:
    root: str  # 64 hex digits
    size: int  # the pack's length in bytes
    entries: int  # files in the tree
    path: Path  # the pack file

    @property
    def root_bytes(self) -> bytes:
        """The root as 32 bytes (e.g. a run's `output_root`)."""
        return bytes.fromhex(self.root)

    def spec(self, uris: Sequence[str] = ()) -> dict:
        """The spec form: {"root", "size", "uris"}."""
        return {"root": self.root, "size": self.size, "uris": list(uris)}


class _ChunkSink:
    """Writes a stream to a file while hashing it in CHUNK pieces."""

    def __init__(self, out):
        self.out, self.leaves, self.size = out, [], 0
        self.buffer = bytearray(CHUNK)
        self.view = memoryview(self.buffer)
        self.fill = 0

    def _flush(self) -> None:
        piece = self.view[: self.fill]
        self.leaves.append(leaf_hash(piece))
        self.out.write(piece)
        self.size += self.fill
        self.fill = 0

    def write(self, data: bytes) -> None:
        data = memoryview(data)
        while data:
            n = min(len(data), CHUNK - self.fill)
            self.view[self.fill : self.fill + n] = data[:n]
            self.fill += n
            data = data[n:]
            if self.fill == CHUNK:
                self._flush()

    def copy_from(self, f, size: int, name: str) -> None:
        """Exactly `size` bytes from `f`, else PackError (the file changed)."""
        left = size
        while left:
            want = min(left, CHUNK - self.fill)
            got = _fill(f, self.view[self.fill : self.fill + want])
            if got < want:
                raise PackError(f"{name} shrank while it was packed")
            self.fill += got
            left -= got
            if self.fill == CHUNK:
                self._flush()
        if f.read(1):
            raise PackError(f"{name} grew while it was packed")

    def close(self) -> None:
        if self.fill:
            self._flush()


def _walk(directory: Path) -> list[tuple[bytes, int]]:
    """(path bytes, size) of every regular file under `directory`, sorted; PackError for
    anything else. Names are read as bytes, so a non-UTF-8 name is seen and refused."""
    top = os.fsencode(directory)
    found: list[tuple[bytes, int]] = []
    stack = [b""]
    while stack:
        rel = stack.pop()
        where = os.path.join(top, rel) if rel else top
        try:
            with os.scandir(where) as it:
                items = list(it)
        except OSError as error:
            raise PackError(f"cannot read {os.fsdecode(where)}: {error.strerror}") from None
        for item in items:
            name = rel + b"/" + item.name if rel else item.name
            shown = os.fsdecode(name)
            mode = item.stat(follow_symlinks=False).st_mode
            if stat.S_ISLNK(mode):
                raise PackError(f"{shown} is a symbolic link (a tree holds regular files only)")
            if stat.S_ISDIR(mode):
                stack.append(name)
            elif stat.S_ISREG(mode):
                check_path(name)
                found.append((name, item.stat(follow_symlinks=False).st_size))
                if len(found) > MAX_ENTRIES:
                    raise PackError(f"more than {MAX_ENTRIES} files")
            else:
                raise PackError(f"{shown} is not a regular file or a directory")
    found.sort()
    return found


def pack_dir(directory: Path | str, out: Path | str) -> PackInfo:
    """Packs the tree at `directory` into the file `out` (written beside it, then renamed),
    streaming: a chunk of file data in memory at a time. Returns its root and size."""
    directory, out = Path(directory), Path(out)
    if not directory.is_dir() or directory.is_symlink():
        raise PackError(f"{directory} is not a directory")
    files = _walk(directory)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=out.parent, prefix=".packing-")
    try:
        with open(fd, "wb", buffering=0) as f:
            sink = _ChunkSink(f)
            sink.write(MAGIC + _U32.pack(len(files)))
            for raw, size in files:
                sink.write(_U16.pack(len(raw)) + raw + _U64.pack(size))
            for raw, size in files:
                name = os.fsdecode(raw)
                try:
                    handle = os.open(directory / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
                except OSError as error:
                    raise PackError(f"cannot open {name}: {error.strerror}") from None
                with open(handle, "rb", buffering=0) as src:
                    if not stat.S_ISREG(os.fstat(handle).st_mode):
                        raise PackError(f"{name} is no longer a regular file")
                    sink.copy_from(src, size, name)
            sink.close()
        os.replace(temp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    root = merkle_root(sink.leaves)
    _write_leaves(out.with_suffix(".leaves"), sink.leaves)
    return PackInfo(root.hex(), sink.size, len(files), out)


def _write_leaves(path: Path, leaves: Sequence[bytes]) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temp.write_bytes(b"".join(leaves))
    os.replace(temp, path)


class Pack:
    """A parsed, validated pack file: its entries and where each file's bytes lie."""

    def __init__(self, path: Path, entries: list[Entry], size: int):
        self.path, self.entries, self.size = path, entries, size

    def files(self) -> dict[str, tuple[Path, int, int]]:
        """relative path -> (pack file, offset, size): the sandbox's `/input` form."""
        return {e.path: (self.path, e.offset, e.size) for e in self.entries}

    def read(self, name: str) -> bytes:
        entry = next((e for e in self.entries if e.path == name), None)
        if entry is None:
            raise KeyError(name)
        with open(self.path, "rb") as f:
            return os.pread(f.fileno(), entry.size, entry.offset)


class _Reader:
    """Bounded reads from the head of a pack file (buffered)."""

    def __init__(self, f, length: int):
        self.f, self.length, self.at = f, length, 0

    def take(self, n: int, what: str) -> bytes:
        if self.at + n > self.length:
            raise PackError(f"the pack ends inside {what} (at byte {self.at})")
        data = self.f.read(n)
        if len(data) != n:
            raise PackError(f"the pack ends inside {what} (at byte {self.at})")
        self.at += n
        return data


def open_pack(path: Path | str) -> Pack:
    """Parses and validates the pack at `path` (hostile input: see the module docstring)."""
    path = Path(path)
    try:
        f = open(path, "rb")  # noqa: SIM115
    except OSError as error:
        raise PackError(f"cannot open {path}: {error.strerror}") from None
    with f:
        length = os.fstat(f.fileno()).st_size
        reader = _Reader(f, length)
        if reader.take(len(MAGIC), "the magic") != MAGIC:
            raise PackError(f"{path.name} is not a pack (bad magic or version)")
        (count,) = _U32.unpack(reader.take(4, "the count"))
        if count > MAX_ENTRIES:
            raise PackError(f"{count} entries (at most {MAX_ENTRIES})")
        if HEADER + count * (2 + 1 + 8) > length:
            raise PackError(f"{count} entries cannot fit in {length} bytes")
        raws, sizes, total = [], [], 0
        for _ in range(count):
            (n,) = _U16.unpack(reader.take(2, "an entry"))
            raw = reader.take(n, "an entry's path")
            check_path(raw)
            (size,) = _U64.unpack(reader.take(8, "an entry's size"))
            total += size
            if reader.at + total > length:
                raise PackError(f"the sizes add up past the pack's {length} bytes")
            raws.append(raw)
            sizes.append(size)
        if reader.at + total != length:
            raise PackError(f"{length - reader.at - total} bytes after the last file")
    _check_entries(raws)
    entries, offset = [], reader.at
    for raw, size in zip(raws, sizes, strict=True):
        entries.append(Entry(raw.decode(), offset, size))
        offset += size
    return Pack(path, entries, length)


def unpack(pack: Pack, directory: Path | str) -> None:
    """Writes the pack's files under `directory`, which must not exist or be empty. Paths
    were validated by `open_pack` and every file is created anew (O_EXCL, O_NOFOLLOW) under
    directories this call made, so nothing is written outside `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if directory.is_symlink() or any(directory.iterdir()):
        raise PackError(f"{directory} is not an empty directory")
    top = directory.resolve()
    with open(pack.path, "rb") as src:
        for entry in pack.entries:
            check_path(entry.path.encode())
            target = top / entry.path
            parent = target.parent
            parent.mkdir(parents=True, exist_ok=True)
            if parent.resolve() != parent or not parent.is_relative_to(top):
                raise PackError(f"{entry.path} would leave {directory}")
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with open(fd, "wb") as dst:
                left, offset = entry.size, entry.offset
                while left:
                    try:
                        sent = os.copy_file_range(src.fileno(), fd, min(left, 1 << 30), offset)
                    except OSError:  # another file system, an old kernel: copy by hand
                        sent = os.write(fd, os.pread(src.fileno(), min(left, CHUNK), offset))
                    if sent <= 0:
                        raise PackError(f"{pack.path} ended inside {entry.path}")
                    left -= sent
                    offset += sent
                dst.flush()


# ------------------------------------------------------------------------------ cache


def check_root(root: str) -> str:
    if not isinstance(root, str) or not _ROOT.match(root):
        raise CasError(f"{str(root)[:70]!r} is not a root (64 lowercase hex digits)")
    return root


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Cache:
    """Verified packs by root, within `quota` bytes (None: unbounded, e.g. a publisher's
    store). Evicts the least recently used complete packs that no live process has pinned,
    then abandoned partial downloads. Safe to share between processes of one machine."""

    _pins = itertools.count()

    def __init__(self, directory: Path | str, quota: int | None = None):
        self.dir = Path(directory)
        self.quota = quota
        for sub in ("packs", "partial", "pins"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)

    def pack_path(self, root: str) -> Path:
        return self.dir / "packs" / f"{check_root(root)}.pack"

    def has(self, root: str, size: int | None = None) -> bool:
        try:
            found = self.pack_path(root).stat().st_size
        except FileNotFoundError:
            return False
        return size is None or found == size

    def get(self, root: str) -> Path | None:
        """The complete pack's path (marked as just used), or None."""
        path = self.pack_path(root)
        try:
            os.utime(path)
        except FileNotFoundError:
            return None
        return path

    def open(self, root: str) -> Pack:
        """The complete pack of `root`, parsed (pin it while a job reads it)."""
        path = self.get(root)
        if path is None:
            raise CasError(f"{root[:16]}… is not in the cache")
        return open_pack(path)

    def roots(self) -> list[str]:
        return sorted(p.stem for p in (self.dir / "packs").glob("*.pack"))

    def leaves(self, root: str) -> list[bytes]:
        """The leaf hashes of a complete pack (from its sidecar, else by reading it)."""
        path = self.pack_path(root)
        raw = b""
        with contextlib.suppress(FileNotFoundError):
            raw = path.with_suffix(".leaves").read_bytes()
        size = path.stat().st_size
        if len(raw) == HASH * chunk_count(size):
            return [raw[i : i + HASH] for i in range(0, len(raw), HASH)]
        leaves, _ = leaves_of_file(path)
        _write_leaves(path.with_suffix(".leaves"), leaves)
        return leaves

    def add_dir(self, directory: Path | str) -> PackInfo:
        """Packs a directory into the cache (quota permitting)."""
        fd, temp = tempfile.mkstemp(dir=self.dir / "partial", prefix=".add-", suffix=".pack")
        os.close(fd)
        temp = Path(temp)
        try:
            info = pack_dir(directory, temp)
            dest = self.pack_path(info.root)
            with self._locked():
                if self.get(dest.stem) is not None:  # already held: only marked as used
                    return dataclasses.replace(info, path=dest)
                self._make_room(info.size, keep=info.root)
                os.replace(temp.with_suffix(".leaves"), dest.with_suffix(".leaves"))
                os.replace(temp, dest)
        finally:
            temp.unlink(missing_ok=True)
            temp.with_suffix(".leaves").unlink(missing_ok=True)
        return dataclasses.replace(info, path=dest)

    # ---- pinning

    @contextlib.contextmanager
    def pinned(self, root: str) -> Iterator[Path]:
        """Pins a complete pack for the duration (a running job's input or output)."""
        token = self.pin(root)
        try:
            path = self.get(root)
            if path is None:
                raise CasError(f"{root[:16]}… is not in the cache")
            yield path
        finally:
            self.unpin(token)

    def pin(self, root: str) -> Path:
        """Marks `root` in use by this process until `unpin` (or until the process ends)."""
        where = self.dir / "pins" / check_root(root)
        where.mkdir(exist_ok=True)
        token = where / f"{os.getpid()}-{next(self._pins)}"
        token.touch()
        return token

    def unpin(self, token: Path) -> None:
        token.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            token.parent.rmdir()

    def is_pinned(self, root: str) -> bool:
        where = self.dir / "pins" / root
        try:
            tokens = list(where.iterdir())
        except FileNotFoundError:
            return False
        live = False
        for token in tokens:
            pid = token.name.partition("-")[0]
            if pid.isdigit() and _alive(int(pid)):
                live = True
            else:
                token.unlink(missing_ok=True)  # its process ended
        return live

    # ---- quota

    @contextlib.contextmanager
    def _locked(self):
        with open(self.dir / "lock", "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def used(self) -> int:
        """Bytes held: complete packs, plus each partial download at its full size."""
        total = 0
        for sub, pattern in (("packs", "*.pack"), ("partial", "*.part")):
            for p in (self.dir / sub).glob(pattern):
                with contextlib.suppress(FileNotFoundError):
                    total += p.stat().st_size
        return total

    def _busy_partial(self, part: Path) -> bool:
        """Whether another download holds this partial file's lock."""
        try:
            f = open(part.with_suffix(".lock"), "a+b")  # noqa: SIM115
        except OSError:
            return True
        with f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f, fcntl.LOCK_UN)
            return False

    def _make_room(self, size: int, keep: str, extra: int = 0) -> None:
        """Evicts until `size` more bytes fit (`extra` of them already counted in `used`)."""
        if self.quota is None:
            return
        if size > self.quota:
            raise CacheFull(f"{size} bytes exceed the cache's quota of {self.quota}")
        free = self.quota - (self.used() - extra)
        if free >= size:
            return
        candidates = []
        for p in (self.dir / "packs").glob("*.pack"):
            if p.stem != keep:
                with contextlib.suppress(FileNotFoundError):
                    st = p.stat()
                    candidates.append((0, st.st_mtime, p, st.st_size))
        for p in (self.dir / "partial").glob("*.part"):
            if p.stem != keep:
                with contextlib.suppress(FileNotFoundError):
                    st = p.stat()
                    candidates.append((1, st.st_mtime, p, st.st_size))
        for _, _, p, length in sorted(candidates, key=lambda c: (c[0], c[1])):
            if free >= size:
                break
            if p.suffix == ".pack" and self.is_pinned(p.stem):
                continue
            if p.suffix == ".part" and self._busy_partial(p):
                continue
            p.unlink(missing_ok=True)
            p.with_suffix(".leaves").unlink(missing_ok=True)
            free += length
        if free < size:
            raise CacheFull(
                f"{size} bytes do not fit in the cache's quota of {self.quota} "
                f"({self.quota - free} bytes are pinned or being downloaded)"
            )

    def evict(self, root: str) -> bool:
        """Removes a complete pack unless it is pinned; whether it was removed."""
        with self._locked():
            if self.is_pinned(root):
                return False
            path = self.pack_path(root)
            path.with_suffix(".leaves").unlink(missing_ok=True)
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            return True

    def partial_chunks(self, root: str, size: int) -> int:
        """Verified chunks a partial download of `root` holds."""
        try:
            raw = (self.dir / "partial" / f"{check_root(root)}.leaves").read_bytes()
        except FileNotFoundError:
            return 0
        return sum(1 for i in range(0, len(raw), HASH) if raw[i : i + HASH] != bytes(HASH))


# ------------------------------------------------------------------------------ fetching


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


# ------------------------------------------------------------------------------ serving

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
