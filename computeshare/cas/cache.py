"""`Cache`: the packs a machine holds, with a byte quota, LRU eviction and pins.

Cache layout (one directory, shared by every process of a machine: replicas, the arbiter):
    packs/<root>.pack     complete, verified packs (mtime = last use, for LRU eviction)
    packs/<root>.leaves   their leaf hashes (32 bytes per chunk), for serving proofs
    partial/<root>.part   a download in progress (sparse, full size)
    partial/<root>.leaves verified leaf hashes so far (zeros = missing), for resuming
    partial/<root>.hashes the tree's whole leaves file from a static source (verified)
    pins/<root>/<pid>-<n> a pack in use by a running job: never evicted while its process lives
    lock                  flock'ed around quota bookkeeping and eviction
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import itertools
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from computeshare.cas.tree import (
    HASH,
    CacheFull,
    CasError,
    Pack,
    PackInfo,
    _write_leaves,
    chunk_count,
    leaves_of_file,
    open_pack,
    pack_dir,
)

_ROOT = re.compile(r"^[0-9a-f]{64}$")


def check_root(root: str) -> str:
    if not isinstance(root, str) or not _ROOT.match(root):
        raise CasError(f"{str(root)[:70]!r} is not a root (64 lowercase hex digits)")
    return root


def alive(pid: int) -> bool:
    """A process with this id exists (one of another user's too)."""
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
            if pid.isdigit() and alive(int(pid)):
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
            p.with_suffix(".hashes").unlink(missing_ok=True)
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
