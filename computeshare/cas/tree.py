"""Trees as bytes: packs and their Merkle roots, and the errors of the whole package.

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

A job's `/input` is served straight from a cached pack: `open_pack(path).files()` gives
relative path -> (pack file, offset, size); pin the pack (`Cache.pinned`) while the job runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import stat
import struct
import tempfile
from collections.abc import Sequence
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
