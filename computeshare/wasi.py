"""WASI preview1 (`wasi_snapshot_preview1`) for the sandbox: every function, deterministic.

Why one module: `Host` implements one ABI, wasi_snapshot_preview1, whose 46 functions
(`FUNCTIONS`) share one state: the fd table, the in-memory trees of the three preopens with
their quotas, the virtual clock and the fuel counter. Split by function family, every call
would reach across modules for that state; the rules below hold for all of them at once.

`Host` serves one run. A module may import any of the preview1 functions (`FUNCTIONS`);
all of them behave the same on every replica, engine and optimisation level:

- args: `["job", *args]`; environment: the caller's `(key, value)` pairs, in order.
- Clocks are virtual: every clock reads `fuel used so far + time slept` nanoseconds (one fuel
  is one virtual nanosecond, whatever the floor), REALTIME adds `EPOCH_NS`
  (2025-01-01T00:00:00Z). Resolution 1 ns. Time never goes backwards.
- `random_get` is a deterministic stream seeded by the job (`seed`): SHAKE-256 in counter
  mode, blocks of 64 KiB. It is not secret: anyone knowing the job id can compute it.
- `poll_oneoff`: fd subscriptions are ready at once (reads report the bytes left); with
  clock subscriptions only, virtual time jumps to the earliest deadline (a sleep costs its
  host call, not fuel, and no wall-clock time) and the due ones fire.
- Files: three preopened directories, fd 3 `/input` (read-only, files served straight
  from byte ranges of host files with pread), fd 4 `/output` (real files under the
  caller's empty `output_dir`, `output_quota` bytes and `MAX_OUTPUT_FILES` entries at
  most; read-only and empty without one) and fd 5 `/tmp` (in memory, `TMP_QUOTA` bytes,
  `MAX_TMP_FILES` entries). Directory listings are sorted by name bytes, with "." and
  "..". Timestamps are `EPOCH_NS` unless the program sets them. fds 0, 1, 2 are stdin
  (the job's input), stdout (the result's output) and stderr (discarded).
- Paths are resolved lexically inside the directory fd they are relative to: absolute
  paths and `..` above that directory get ENOTCAPABLE, names are UTF-8 without NUL,
  components at most `MAX_NAME_BYTES`, paths at most `MAX_PATH_BYTES`. There are no
  symlinks and none can be made: `path_symlink` and `path_link` give ENOTSUP,
  `path_readlink` EINVAL. The host never follows a host symlink: /output's tree is modelled
  in memory and mirrored under the directory the host opened (O_NOFOLLOW, dir fds).
- Writes to /input give EROFS; a write, truncate or create past a quota or entry limit
  gives ENOSPC and changes nothing. Renames stay inside one preopen (EXDEV otherwise).
- Sockets (`sock_*`) give ENOTSUP; `proc_raise` traps; `proc_exit` ends the run;
  `sched_yield`, `fd_sync`, `fd_datasync` and `fd_advise` succeed and do nothing.

Every call charges fuel before it does any work: `HOST_CALL_FUEL`, plus `IOVEC_FUEL` per
iovec or poll subscription, `BYTE_FUEL` per byte moved in memory or path byte read,
`FILE_BYTE_FUEL` per byte of a host file read or written, and `RANDOM_BYTE_FUEL` per
random byte. Errors are WASI errnos; a fault in the module's
arguments (a pointer outside memory) is EFAULT. A failure of the host's own files (an input
file shorter than promised, a full disk) raises `HostError` out of the run: it is not the
module's result and must not be committed.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import stat
import struct
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import wasmtime

MODULE = "wasi_snapshot_preview1"

# Host calls are metered like instructions, charged before the host does any work: a fixed
# cost per call and per iovec (a call costs the host 16 to 150 us in Python, wasmtime's
# trampoline included, scripts/bench_wasi.py; 1,000,000 fuel is 143 us at the floor
# `metering.R_FLOOR`), and a cost per byte moved (in memory, about 0.8 ns a byte of a 64 KiB
# write to /tmp: 8 fuel, 24 * 10**9 fuel a second with the call's charge). They are part of
# the cost table (`metering.COST_TABLE_VERSION`).
HOST_CALL_FUEL = 1_000_000
IOVEC_FUEL = 10_000
BYTE_FUEL = 8
# A byte of a host file (/input read, /output written): 4 ns at the floor, 250 MB/s, what a
# cold SSD read or write-back under memory pressure sustains (the page cache is faster).
FILE_BYTE_FUEL = 28
# A path byte (split and looked up component by component, in Python) and a directory
# entry (sorted when the directory changed, or listed): what the host spends on them
# (version 3 raised both five-fold with the floor; a create and close of a file in /tmp,
# two calls and its path, 54 us here, burns 37 * 10**9 fuel a second).
PATH_BYTE_FUEL = 1_000
DIRENT_FUEL = 25_000
RANDOM_BYTE_FUEL = 64  # SHAKE-256 output: about 6 ns a byte, 10.7 * 10**9 fuel a second
MAX_IOVECS = 1_024
MAX_OUTPUT_BYTES = 64 << 10  # stdout

EPOCH_NS = 1_735_689_600 * 10**9  # 2025-01-01T00:00:00Z
_MOST_SLEPT = (1 << 63) - EPOCH_NS - (1 << 52)  # the fuel used stays below 2**52
MAX_OPEN_FDS = 1_024
MAX_PATH_BYTES = 4_096
MAX_NAME_BYTES = 255
MAX_ARGS_BYTES = 64 << 10  # argv and environ together, NULs included
DEFAULT_OUTPUT_QUOTA = 1 << 30
MAX_OUTPUT_FILES = 10_000  # files and directories under /output
TMP_QUOTA = 256 << 20
MAX_TMP_FILES = 10_000
MAX_IO_BYTES = 1 << 30  # one read or write moves at most this much (a short count)
RANDOM_BLOCK = 64 << 10
_RANDOM_DOMAIN = b"computeshare-wasi-random-v1"

# errno
SUCCESS, ACCES, BADF, EXIST, FAULT, INVAL, ILSEQ, IO = 0, 2, 8, 20, 21, 28, 25, 29
ISDIR, MFILE, NAMETOOLONG, NOENT, NOSPC, NOTDIR, NOTEMPTY = 31, 33, 37, 44, 51, 54, 55
NOTSUP, PERM, ROFS, SPIPE, XDEV, NOTCAPABLE = 58, 63, 69, 70, 75, 76
# file types
FT_UNKNOWN, FT_CHAR, FT_DIR, FT_FILE = 0, 2, 3, 4
# rights
R_FD_DATASYNC, R_FD_READ, R_FD_SEEK, R_FD_TELL, R_FD_WRITE = 1, 2, 4, 32, 64
R_FD_ALLOCATE, R_FD_READDIR, R_FD_FILESTAT_SET_SIZE = 1 << 8, 1 << 14, 1 << 22
RIGHTS_ALL = (1 << 30) - 1
_WRITE_RIGHTS = R_FD_WRITE | R_FD_ALLOCATE | R_FD_FILESTAT_SET_SIZE
# oflags, fdflags, fstflags
O_CREAT, O_DIRECTORY, O_EXCL, O_TRUNC = 1, 2, 4, 8
FDFLAG_APPEND = 1
_FST_ATIM, _FST_ATIM_NOW, _FST_MTIM, _FST_MTIM_NOW = 1, 2, 4, 8

_U32, _U64 = 0xFFFF_FFFF, (1 << 64) - 1
_I, _L = wasmtime.ValType.i32(), wasmtime.ValType.i64()

# name -> (params, results): the whole of wasi_snapshot_preview1.
FUNCTIONS: dict[str, tuple[list[wasmtime.ValType], list[wasmtime.ValType]]] = {
    name: ([{"i": _I, "l": _L}[c] for c in params], [_I] if result else [])
    for name, params, result in [
        ("args_get", "ii", True),
        ("args_sizes_get", "ii", True),
        ("environ_get", "ii", True),
        ("environ_sizes_get", "ii", True),
        ("clock_res_get", "ii", True),
        ("clock_time_get", "ili", True),
        ("fd_advise", "illi", True),
        ("fd_allocate", "ill", True),
        ("fd_close", "i", True),
        ("fd_datasync", "i", True),
        ("fd_fdstat_get", "ii", True),
        ("fd_fdstat_set_flags", "ii", True),
        ("fd_fdstat_set_rights", "ill", True),
        ("fd_filestat_get", "ii", True),
        ("fd_filestat_set_size", "il", True),
        ("fd_filestat_set_times", "illi", True),
        ("fd_pread", "iiili", True),
        ("fd_prestat_get", "ii", True),
        ("fd_prestat_dir_name", "iii", True),
        ("fd_pwrite", "iiili", True),
        ("fd_read", "iiii", True),
        ("fd_readdir", "iiili", True),
        ("fd_renumber", "ii", True),
        ("fd_seek", "ilii", True),
        ("fd_sync", "i", True),
        ("fd_tell", "ii", True),
        ("fd_write", "iiii", True),
        ("path_create_directory", "iii", True),
        ("path_filestat_get", "iiiii", True),
        ("path_filestat_set_times", "iiiilli", True),
        ("path_link", "iiiiiii", True),
        ("path_open", "iiiiillii", True),
        ("path_readlink", "iiiiii", True),
        ("path_remove_directory", "iii", True),
        ("path_rename", "iiiiii", True),
        ("path_symlink", "iiiii", True),
        ("path_unlink_file", "iii", True),
        ("poll_oneoff", "iiii", True),
        ("proc_exit", "i", False),
        ("proc_raise", "i", True),
        ("sched_yield", "", True),
        ("random_get", "ii", True),
        ("sock_accept", "iii", True),
        ("sock_recv", "iiiiii", True),
        ("sock_send", "iiiii", True),
        ("sock_shutdown", "ii", True),
    ]
}


class HostError(RuntimeError):
    """The host could not serve the run (its own files failed): no result to commit."""


class Exit(Exception):
    def __init__(self, code: int):
        self.code = code


class OutputLimit(Exception):
    """stdout would pass `MAX_OUTPUT_BYTES`."""


class OutOfFuel(Exception):
    pass


class Raised(Exception):
    """proc_raise: the program signalled itself; a trap."""


class _Errno(Exception):
    def __init__(self, code: int):
        self.code = code


def _syscall(method):
    """Errors as errnos; the host's own I/O failures as `HostError`."""

    @functools.wraps(method)
    def wrapper(self, caller, *args):
        try:
            return method(self, caller, *args)
        except _Errno as error:
            return error.code
        except OSError as error:
            raise HostError(f"host file system: {error}") from None

    return wrapper


class _Counter:
    """The fuel global read and written through wasmtime's C API directly: the wrapper's
    `Global.value`/`set_value` convert types on every access, a third of a host call's
    cost. Same semantics (an i64 global of the store)."""

    def __init__(self, store: wasmtime.Store, fuel: wasmtime.Global):
        from wasmtime import _ffi as ffi

        self._ffi = ffi
        self._context = store._context()
        self._global = ctypes.byref(fuel._global)
        self._raw = ffi.wasmtime_val_t()
        self._raw.kind = ffi.WASMTIME_I64.value
        self._ref = ctypes.byref(self._raw)

    @classmethod
    def of(cls, store: wasmtime.Store, fuel: wasmtime.Global) -> _Counter | bool:
        """A counter when this wasmtime's internals are as expected, else False."""
        try:
            counter = cls(store, fuel)
            if counter.get() != fuel.value(store):
                return False
        except (ImportError, AttributeError, TypeError):
            return False
        return counter

    def get(self) -> int:
        self._ffi.wasmtime_global_get(self._context, self._global, self._ref)
        return self._raw.of.i64

    def set(self, value: int) -> None:
        self._raw.kind = self._ffi.WASMTIME_I64.value
        self._raw.of.i64 = value
        error = self._ffi.wasmtime_global_set(self._context, self._global, self._ref)
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)


class _Mount:
    def __init__(self, name: str, dev: int, writable: bool, quota: int, most: int):
        self.name, self.dev, self.writable, self.quota, self.most = name, dev, writable, quota, most
        self.used, self.entries = 0, 0
        self.root_fd: int | None = None  # /output's host directory
        self.root: _Node


class _Node:
    __slots__ = (
        "atim",
        "children",
        "data",
        "host_fd",
        "ino",
        "links",
        "listing",
        "mount",
        "mtim",
        "name",
        "opens",
        "parent",
        "size",
        "source",
    )

    def __init__(self, ino: int, mount: _Mount, parent: _Node | None, name: bytes, is_dir: bool):
        self.ino, self.mount, self.parent, self.name = ino, mount, parent, name
        self.children: dict[bytes, _Node] | None = {} if is_dir else None
        self.listing: list[bytes] | None = None  # sorted names, cached
        self.size = 0
        self.data = bytearray()  # /tmp files
        self.source: tuple[str, int] | None = None  # /input files: (host path, offset)
        self.links, self.opens = 1, 0
        self.host_fd: int | None = None  # /output files, while open
        self.atim = self.mtim = EPOCH_NS

    @property
    def is_dir(self) -> bool:
        return self.children is not None

    def relative(self) -> bytes:
        """The lexical path from the mount's root."""
        parts, node = [], self
        while node.parent is not None:
            parts.append(node.name)
            node = node.parent
        return b"/".join(reversed(parts))


class _Fd:
    __slots__ = ("flags", "inheriting", "kind", "node", "pos", "preopen", "rights")

    def __init__(self, kind: str, node: _Node | None, rights: int, inheriting: int = 0):
        self.kind, self.node, self.pos = kind, node, 0
        self.rights, self.inheriting, self.flags = rights, inheriting, 0
        self.preopen: bytes | None = None


def _check_name(name: bytes) -> None:
    if len(name) > MAX_NAME_BYTES:
        raise _Errno(NAMETOOLONG)


def _valid_relative(path: str) -> bool:
    raw = path.encode("utf-8", "surrogatepass")
    parts = raw.split(b"/")
    return (
        0 < len(raw) <= MAX_PATH_BYTES
        and b"\0" not in raw
        and all(p not in (b"", b".", b"..") and len(p) <= MAX_NAME_BYTES for p in parts)
    )


class Host:
    """One run's WASI: stdin, stdout, args, environment, clocks, randomness and files."""

    def __init__(
        self,
        store: wasmtime.Store,
        stdin: bytes = b"",
        *,
        args: Sequence[str] = (),
        env: Iterable[tuple[str, str]] = (),
        inputs: Mapping[str, tuple[Path | str, int, int]] | None = None,
        output_dir: Path | str | None = None,
        output_quota: int = DEFAULT_OUTPUT_QUOTA,
        seed: bytes = b"",
    ):
        self.store, self.stdin, self.cursor, self.output = store, bytes(stdin), 0, bytearray()
        self.fuel: wasmtime.Global | None = None  # the metering's counter, once instantiated
        self.memory: wasmtime.Memory | None = None  # the module's memory, once instantiated
        self.limit = 0  # the run's fuel limit: the clocks read limit - counter
        self._counter: _Counter | bool | None = None  # fast access to `fuel`, once known
        self.slept = 0
        self.argv = [self._c_string(a, "argument") for a in ["job", *args]]
        self.environ = []
        for key, value in env:
            if not key or "=" in key:
                raise ValueError(f"environment variable name {key!r} is not valid")
            self.environ.append(self._c_string(f"{key}={value}", "environment variable"))
        if sum(map(len, self.argv)) + sum(map(len, self.environ)) > MAX_ARGS_BYTES:
            raise ValueError(f"arguments and environment exceed {MAX_ARGS_BYTES} bytes")
        self.seed = bytes(seed)
        self._random, self._random_block = b"", 0
        self._inos = 0
        self._input_fds: dict[str, int] = {}
        self.input = self._mount("/input", 1, False, 0, 0)
        writable = output_dir is not None
        self.output_mount = self._mount("/output", 2, writable, output_quota, MAX_OUTPUT_FILES)
        self.tmp = self._mount("/tmp", 3, True, TMP_QUOTA, MAX_TMP_FILES)
        self.fds: dict[int, _Fd] = {
            0: _Fd("stdin", None, R_FD_READ),
            1: _Fd("stdout", None, R_FD_WRITE),
            2: _Fd("stderr", None, R_FD_WRITE),
        }
        for number, mount in ((3, self.input), (4, self.output_mount), (5, self.tmp)):
            fd = _Fd("dir", mount.root, RIGHTS_ALL, RIGHTS_ALL)
            fd.preopen = mount.name.encode()
            self.fds[number] = fd
        for path, (host_path, offset, size) in sorted(
            (inputs or {}).items(), key=lambda item: item[0].encode("utf-8", "surrogatepass")
        ):
            self._add_input(path, str(host_path), int(offset), int(size))
        if output_dir is not None:
            self._open_output(Path(output_dir))

    # ------------------------------------------------------------ set-up and tear-down

    @staticmethod
    def _c_string(text: str, what: str) -> bytes:
        if "\0" in text:
            raise ValueError(f"{what} {text!r} holds a NUL")
        return text.encode("utf-8") + b"\0"

    def _node(self, mount: _Mount, parent: _Node | None, name: bytes, is_dir: bool) -> _Node:
        self._inos += 1
        return _Node(self._inos, mount, parent, name, is_dir)

    def _mount(self, name: str, dev: int, writable: bool, quota: int, most: int) -> _Mount:
        mount = _Mount(name, dev, writable, quota, most)
        mount.root = self._node(mount, None, b"", True)
        return mount

    def _add_input(self, path: str, host_path: str, offset: int, size: int) -> None:
        if not _valid_relative(path) or offset < 0 or size < 0:
            raise ValueError(f"input {path!r} is not a valid relative path and byte range")
        node = self.input.root
        *dirs, name = path.encode().split(b"/")
        for part in dirs:
            assert node.children is not None
            child = node.children.get(part)
            if child is None:
                child = node.children[part] = self._node(self.input, node, part, True)
            elif not child.is_dir:
                raise ValueError(f"input {path!r} lies under the file {part.decode()!r}")
            node = child
        assert node.children is not None
        if name in node.children:
            raise ValueError(f"input {path!r} is given twice or is also a directory")
        leaf = node.children[name] = self._node(self.input, node, name, False)
        leaf.size, leaf.source = size, (host_path, offset)

    def _open_output(self, path: Path) -> None:
        try:
            root = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as error:
            raise ValueError(f"output directory {path}: {error.strerror}") from None
        if os.listdir(root):
            os.close(root)
            raise ValueError(f"output directory {path} is not empty")
        self.output_mount.root_fd = root

    def close(self) -> None:
        """Releases the host's file descriptors (the /output files stay)."""
        for fd in self.fds.values():
            if fd.node is not None and fd.node.host_fd is not None:
                os.close(fd.node.host_fd)
                fd.node.host_fd = None
        self.fds.clear()
        for host_fd in self._input_fds.values():
            os.close(host_fd)
        self._input_fds.clear()
        if self.output_mount.root_fd is not None:
            os.close(self.output_mount.root_fd)
            self.output_mount.root_fd = None

    def linker(self, engine: wasmtime.Engine) -> wasmtime.Linker:
        """A linker defining every preview1 function on this host."""
        linker = wasmtime.Linker(engine)
        for name, (params, results) in FUNCTIONS.items():
            func_type = wasmtime.FuncType(params, results)
            linker.define_func(MODULE, name, func_type, getattr(self, name), access_caller=True)
        return linker

    # ------------------------------------------------------------ fuel, memory, time

    def _charge(self, amount: int) -> None:
        """Takes `amount` fuel from the metering's counter; below zero the run stops (out of
        fuel), as the module's own charges do."""
        left = self._fuel_left() - amount
        self._set_fuel(left)
        if left < 0:
            raise OutOfFuel

    def _fuel_left(self) -> int:
        assert self.fuel is not None, "no host call runs before the fuel is set"
        if self._counter is None:
            self._counter = _Counter.of(self.store, self.fuel)
        if self._counter is False:
            return self.fuel.value(self.store)
        return self._counter.get()

    def _set_fuel(self, value: int) -> None:
        if self._counter:
            self._counter.set(value)
        else:
            assert self.fuel is not None
            self.fuel.set_value(self.store, wasmtime.Val.i64(value))

    def _view(self, caller) -> memoryview:
        """The module's whole memory, writable; valid until the call returns."""
        memory = self.memory
        if memory is None:
            found = caller.get("memory")
            memory = found if isinstance(found, wasmtime.Memory) else None
        if memory is None:
            return memoryview(bytearray())
        size = memory.data_len(caller)
        if size == 0:
            return memoryview(bytearray())
        base = ctypes.addressof(memory.data_ptr(caller).contents)
        return memoryview((ctypes.c_ubyte * size).from_address(base)).cast("B")

    @staticmethod
    def _span(view: memoryview, address: int, length: int) -> memoryview:
        address, length = address & _U32, length & _U32
        if address + length > len(view):
            raise _Errno(FAULT)
        return view[address : address + length]

    def _put(self, view: memoryview, address: int, data: bytes) -> None:
        self._span(view, address, len(data))[:] = data

    def _put_u32(self, view: memoryview, address: int, value: int) -> None:
        self._put(view, address, struct.pack("<I", value & _U32))

    def _put_u64(self, view: memoryview, address: int, value: int) -> None:
        self._put(view, address, struct.pack("<Q", value & _U64))

    def _iovecs(self, view: memoryview, iovs: int, count: int) -> list[memoryview]:
        """The iovec array as views of memory, charged for before it is read."""
        count &= _U32
        self._charge(HOST_CALL_FUEL + IOVEC_FUEL * min(count, MAX_IOVECS))
        if count > MAX_IOVECS:
            raise _Errno(FAULT)
        raw = self._span(view, iovs, 8 * count)
        return [self._span(view, start, length) for start, length in struct.iter_unpack("<II", raw)]

    def _elapsed(self) -> int:
        used = self.limit - self._fuel_left() if self.fuel is not None else 0
        return max(0, used) + self.slept

    def _clock(self, clock_id: int) -> int:
        if clock_id & _U32 > 3:
            raise _Errno(INVAL)
        return self._elapsed() + (EPOCH_NS if clock_id == 0 else 0)

    # ------------------------------------------------------------ fds and paths

    def _fd(self, fd: int) -> _Fd:
        found = self.fds.get(fd & _U32)
        if found is None:
            raise _Errno(BADF)
        return found

    def _dir_fd(self, fd: int) -> _Fd:
        found = self._fd(fd)
        if found.kind != "dir":
            raise _Errno(NOTDIR if found.kind == "file" else BADF)
        return found

    def _file_fd(self, fd: int) -> _Fd:
        found = self._fd(fd)
        if found.kind == "dir":
            raise _Errno(ISDIR)
        return found

    def _path(self, view: memoryview, address: int, length: int) -> bytes:
        """A path argument, charged per byte before it is read."""
        length &= _U32
        self._charge(PATH_BYTE_FUEL * min(length, MAX_PATH_BYTES + 1))
        if length > MAX_PATH_BYTES:
            raise _Errno(NAMETOOLONG)
        raw = bytes(self._span(view, address, length))
        if b"\0" in raw:
            raise _Errno(INVAL)
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise _Errno(ILSEQ) from None
        return raw

    @staticmethod
    def _resolve(base: _Node, raw: bytes) -> tuple[_Node | None, bytes | None, _Node | None]:
        """(parent directory, last name, node or None) of a path relative to `base`; the
        name is None when the path names a directory by "." or "..". Nothing escapes
        `base`: an absolute path or ".." above it is ENOTCAPABLE."""
        if raw.startswith(b"/"):
            raise _Errno(NOTCAPABLE)
        if not raw:
            raise _Errno(NOENT)
        parts = [p for p in raw.split(b"/") if p]
        trailing = raw.endswith(b"/")
        stack = [base]
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            node = stack[-1]
            assert node.children is not None
            if part == b".":
                if last:
                    return None, None, node
                continue
            if part == b"..":
                if len(stack) == 1:
                    raise _Errno(NOTCAPABLE)
                stack.pop()
                if last:
                    return None, None, stack[-1]
                continue
            child = node.children.get(part)
            if last:
                if child is not None and trailing and not child.is_dir:
                    raise _Errno(NOTDIR)
                return node, part, child
            if child is None:
                raise _Errno(NOENT)
            if not child.is_dir:
                raise _Errno(NOTDIR)
            stack.append(child)
        return None, None, stack[-1]  # only "." parts

    def _lookup(self, view, fd: int, address: int, length: int):
        base = self._dir_fd(fd)
        raw = self._path(view, address, length)
        assert base.node is not None
        return (*self._resolve(base.node, raw), raw)

    def _new_fd(self, entry: _Fd) -> int:
        number = next(n for n in range(len(self.fds) + 1) if n not in self.fds)
        self.fds[number] = entry
        return number

    # ------------------------------------------------------------ file contents

    def _input_fd(self, node: _Node) -> int:
        assert node.source is not None
        path = node.source[0]
        host_fd = self._input_fds.get(path)
        if host_fd is None:
            host_fd = self._input_fds[path] = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        return host_fd

    @staticmethod
    def _trim(buffers: list[memoryview], amount: int) -> list[memoryview]:
        out = []
        for buffer in buffers:
            if amount <= 0:
                break
            if len(buffer):
                out.append(buffer[:amount])
                amount -= len(out[-1])
        return out

    @staticmethod
    def _host_io(function, host_fd: int, buffers: list[memoryview], position: int) -> None:
        """preadv/pwritev until every buffer is done; a short host file is a host fault."""
        while buffers:
            done = function(host_fd, buffers, position)
            if done <= 0:
                raise OSError(IO, "short read or write on a host file")
            position += done
            while buffers and done >= len(buffers[0]):
                done -= len(buffers[0])
                buffers.pop(0)
            if done:
                buffers[0] = buffers[0][done:]

    def _read_node(self, node: _Node, buffers: list[memoryview], pos: int) -> int:
        wanted = min(sum(len(b) for b in buffers), MAX_IO_BYTES)
        amount = max(0, min(wanted, node.size - pos))
        on_disk = node.source is not None or node.host_fd is not None
        self._charge((FILE_BYTE_FUEL if on_disk else BYTE_FUEL) * amount)
        buffers = self._trim(buffers, amount)
        if node.source is not None:
            self._host_io(os.preadv, self._input_fd(node), buffers, node.source[1] + pos)
        elif node.host_fd is not None:
            self._host_io(os.preadv, node.host_fd, buffers, pos)
        else:
            with memoryview(node.data) as data:
                for buffer in buffers:
                    buffer[:] = data[pos : pos + len(buffer)]
                    pos += len(buffer)
        return amount

    def _grow(self, node: _Node, size: int) -> None:
        """Checks a node may reach `size` bytes under its mount's quota."""
        if not node.mount.writable:
            raise _Errno(ROFS)
        if size > node.size and node.mount.used + size - node.size > node.mount.quota:
            raise _Errno(NOSPC)

    def _resize(self, node: _Node, size: int) -> None:
        self._grow(node, size)
        if node.host_fd is not None:
            os.ftruncate(node.host_fd, size)
        elif size < len(node.data):
            del node.data[size:]
        else:
            node.data.extend(bytes(size - len(node.data)))
        node.mount.used += size - node.size
        node.size = size

    def _write_node(self, node: _Node, buffers: list[memoryview], pos: int) -> int:
        buffers = self._trim(buffers, MAX_IO_BYTES)
        total = sum(len(b) for b in buffers)
        end = pos + total
        self._grow(node, end)
        rate = FILE_BYTE_FUEL if node.host_fd is not None else BYTE_FUEL
        self._charge(rate * total + BYTE_FUEL * max(0, pos - node.size))  # and the gap filled
        if node.host_fd is not None:
            self._host_io(os.pwritev, node.host_fd, buffers, pos)
        else:
            if pos > len(node.data):
                node.data.extend(bytes(pos - len(node.data)))
            for buffer in buffers:
                node.data[pos : pos + len(buffer)] = buffer
                pos += len(buffer)
        if end > node.size:
            node.mount.used += end - node.size
            node.size = end
        return total

    def _release(self, node: _Node) -> None:
        """Frees a file's bytes once it is neither linked nor open."""
        if node.links == 0 and node.opens == 0 and not node.is_dir:
            node.mount.used -= node.size
            node.data = bytearray()

    def _close_node(self, node: _Node | None) -> None:
        if node is None or node.is_dir:
            return
        node.opens -= 1
        if node.opens == 0 and node.host_fd is not None:
            os.close(node.host_fd)
            node.host_fd = None
        self._release(node)

    def _open_node(self, node: _Node) -> None:
        if node.mount.root_fd is not None and not node.is_dir and node.host_fd is None:
            flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC
            node.host_fd = os.open(node.relative(), flags, dir_fd=node.mount.root_fd)
        node.opens += 1

    def _link(self, parent: _Node, name: bytes, is_dir: bool) -> _Node:
        """Creates a file or directory `name` in `parent` (host side too, for /output)."""
        mount = parent.mount
        if not mount.writable:
            raise _Errno(ROFS)
        _check_name(name)
        if mount.entries >= mount.most:
            raise _Errno(NOSPC)
        node = self._node(mount, parent, name, is_dir)
        if mount.root_fd is not None:
            relative = node.relative()
            if is_dir:
                os.mkdir(relative, 0o755, dir_fd=mount.root_fd)
            else:
                flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                os.close(os.open(relative, flags, 0o644, dir_fd=mount.root_fd))
        assert parent.children is not None
        parent.children[name] = node
        parent.listing = None
        mount.entries += 1
        return node

    def _unlink(self, node: _Node) -> None:
        """Removes a node from its directory (the host side is done by the caller)."""
        parent = node.parent
        assert parent is not None and parent.children is not None
        del parent.children[node.name]
        parent.listing = None
        node.links = 0
        node.mount.entries -= 1
        self._release(node)

    def _filestat(self, node: _Node | None) -> bytes:
        if node is None:  # stdio
            return struct.pack("<QQB7xQQQQQ", 0, 0, FT_UNKNOWN, 1, 0, 0, 0, 0)
        kind = FT_DIR if node.is_dir else FT_FILE
        return struct.pack(
            "<QQB7xQQQQQ",
            node.mount.dev,
            node.ino,
            kind,
            node.links,
            node.size,
            node.atim,
            node.mtim,
            node.mtim,
        )

    # ------------------------------------------------------------ args, environ

    def _sizes(self, caller, strings: list[bytes], count_at: int, size_at: int) -> int:
        self._charge(HOST_CALL_FUEL)
        view = self._view(caller)
        self._put_u32(view, count_at, len(strings))
        self._put_u32(view, size_at, sum(map(len, strings)))
        return SUCCESS

    def _strings(self, caller, strings: list[bytes], pointers: int, buffer: int) -> int:
        self._charge(HOST_CALL_FUEL + BYTE_FUEL * (sum(map(len, strings)) + 4 * len(strings)))
        view = self._view(caller)
        address = buffer & _U32
        for index, string in enumerate(strings):
            self._put_u32(view, pointers + 4 * index, address)
            self._put(view, address, string)
            address += len(string)
        return SUCCESS

    @_syscall
    def args_sizes_get(self, caller, count: int, size: int) -> int:
        return self._sizes(caller, self.argv, count, size)

    @_syscall
    def args_get(self, caller, pointers: int, buffer: int) -> int:
        return self._strings(caller, self.argv, pointers, buffer)

    @_syscall
    def environ_sizes_get(self, caller, count: int, size: int) -> int:
        return self._sizes(caller, self.environ, count, size)

    @_syscall
    def environ_get(self, caller, pointers: int, buffer: int) -> int:
        return self._strings(caller, self.environ, pointers, buffer)

    # ------------------------------------------------------------ clocks, random, poll

    @_syscall
    def clock_res_get(self, caller, clock_id: int, out: int) -> int:
        self._charge(HOST_CALL_FUEL)
        self._clock(clock_id)
        self._put_u64(self._view(caller), out, 1)
        return SUCCESS

    @_syscall
    def clock_time_get(self, caller, clock_id: int, precision: int, out: int) -> int:
        self._charge(HOST_CALL_FUEL)
        self._put_u64(self._view(caller), out, self._clock(clock_id))
        return SUCCESS

    @_syscall
    def random_get(self, caller, buffer: int, length: int) -> int:
        length &= _U32
        self._charge(HOST_CALL_FUEL + RANDOM_BYTE_FUEL * length)
        target = self._span(self._view(caller), buffer, length)
        done = 0
        while done < length:
            if not self._random:
                counter = self._random_block.to_bytes(8, "little")
                seeded = _RANDOM_DOMAIN + len(self.seed).to_bytes(4, "little") + self.seed
                self._random = hashlib.shake_256(seeded + counter).digest(RANDOM_BLOCK)
                self._random_block += 1
            take = min(length - done, len(self._random))
            target[done : done + take] = self._random[:take]
            self._random = self._random[take:]
            done += take
        return SUCCESS

    @_syscall
    def poll_oneoff(self, caller, subscriptions: int, events: int, count: int, out: int) -> int:
        count &= _U32
        self._charge(HOST_CALL_FUEL + IOVEC_FUEL * min(count, 1 << 26))
        if count == 0:
            raise _Errno(INVAL)
        view = self._view(caller)
        raw = bytes(self._span(view, subscriptions, 48 * count))
        self._span(view, events, 32 * count)  # room for every event, checked up front
        now = self._elapsed()
        clocks, ready = [], []
        for index in range(count):
            userdata, tag = struct.unpack_from("<QB", raw, 48 * index)
            if tag == 0:
                clock_id, timeout, _, flags = struct.unpack_from("<I4xQQH", raw, 48 * index + 16)
                if clock_id > 3:
                    ready.append(struct.pack("<QHB5xQH6x", userdata, INVAL, 0, 0, 0))
                    continue
                base = EPOCH_NS if clock_id == 0 else 0
                due = timeout - base if flags & 1 else now + timeout
                clocks.append((due, userdata))
            elif tag in (1, 2):
                (fd,) = struct.unpack_from("<I", raw, 48 * index + 16)
                entry = self.fds.get(fd)
                error, left = (BADF, 0) if entry is None else (SUCCESS, self._left(entry))
                ready.append(struct.pack("<QHB5xQH6x", userdata, error, tag, left, 0))
            else:
                ready.append(struct.pack("<QHB5xQH6x", userdata, INVAL, tag, 0, 0))
        if not ready and clocks:
            earliest = min(due for due, _ in clocks)
            if earliest > now:
                # Capped so that every clock stays below 2**63 ns and never wraps.
                self.slept = min(self.slept + earliest - now, _MOST_SLEPT)
                now = self._elapsed()
        fired = [struct.pack("<QHB5xQH6x", u, 0, 0, 0, 0) for due, u in clocks if due <= now]
        produced = ready + fired
        self._put(view, events, b"".join(produced))
        self._put_u32(view, out, len(produced))
        return SUCCESS

    def _left(self, entry: _Fd) -> int:
        if entry.kind == "stdin":
            return len(self.stdin) - self.cursor
        if entry.kind == "file" and entry.node is not None:
            return max(0, entry.node.size - entry.pos)
        return 0

    @_syscall
    def sched_yield(self, caller) -> int:
        self._charge(HOST_CALL_FUEL)
        return SUCCESS

    def proc_exit(self, caller, code: int) -> None:
        raise Exit(code & _U32)

    def proc_raise(self, caller, signal: int) -> int:
        self._charge(HOST_CALL_FUEL)
        raise Raised

    # ------------------------------------------------------------ reading and writing

    @_syscall
    def fd_read(self, caller, fd: int, iovs: int, count: int, nread: int) -> int:
        entry = self.fds.get(fd & _U32)
        if entry is None or entry.kind in ("stdout", "stderr"):
            self._charge(HOST_CALL_FUEL)
            return BADF
        view = self._view(caller)
        buffers = self._iovecs(view, iovs, count)
        if entry.kind == "dir":
            raise _Errno(ISDIR)
        if entry.kind == "stdin":
            wanted = min(sum(len(b) for b in buffers), MAX_IO_BYTES)
            total = min(wanted, len(self.stdin) - self.cursor)
            self._charge(BYTE_FUEL * total)
            for buffer in self._trim(buffers, total):
                buffer[:] = self.stdin[self.cursor : self.cursor + len(buffer)]
                self.cursor += len(buffer)
        else:
            if not entry.rights & R_FD_READ:
                raise _Errno(BADF)
            assert entry.node is not None
            total = self._read_node(entry.node, buffers, entry.pos)
            entry.pos += total
        self._put_u32(view, nread, total)
        return SUCCESS

    @_syscall
    def fd_pread(self, caller, fd: int, iovs: int, count: int, offset: int, nread: int) -> int:
        entry = self._fd(fd)
        view = self._view(caller)
        buffers = self._iovecs(view, iovs, count)
        if entry.kind == "dir":
            raise _Errno(ISDIR)
        if entry.kind != "file":
            raise _Errno(SPIPE)
        if not entry.rights & R_FD_READ:
            raise _Errno(BADF)
        assert entry.node is not None
        self._put_u32(view, nread, self._read_node(entry.node, buffers, offset & _U64))
        return SUCCESS

    @_syscall
    def fd_write(self, caller, fd: int, iovs: int, count: int, nwritten: int) -> int:
        entry = self.fds.get(fd & _U32)
        if entry is None or entry.kind == "stdin":
            self._charge(HOST_CALL_FUEL)
            return BADF
        view = self._view(caller)
        buffers = self._iovecs(view, iovs, count)
        if entry.kind == "dir":
            raise _Errno(ISDIR)
        if entry.kind in ("stdout", "stderr"):
            total = sum(len(b) for b in buffers)
            if total > MAX_OUTPUT_BYTES:
                # More than stdout may ever hold (and possibly more than the u32 reply holds).
                if entry.kind == "stdout":
                    raise OutputLimit
                return INVAL
            if entry.kind == "stdout" and len(self.output) + total > MAX_OUTPUT_BYTES:
                raise OutputLimit
            self._charge(BYTE_FUEL * total)
            if entry.kind == "stdout":
                for buffer in buffers:
                    self.output += buffer
        else:
            if not entry.rights & R_FD_WRITE:
                raise _Errno(BADF)
            assert entry.node is not None
            position = entry.node.size if entry.flags & FDFLAG_APPEND else entry.pos
            total = self._write_node(entry.node, buffers, position)
            entry.pos = position + total
        self._put_u32(view, nwritten, total)
        return SUCCESS

    @_syscall
    def fd_pwrite(self, caller, fd: int, iovs: int, count: int, offset: int, out: int) -> int:
        entry = self._fd(fd)
        view = self._view(caller)
        buffers = self._iovecs(view, iovs, count)
        if entry.kind == "dir":
            raise _Errno(ISDIR)
        if entry.kind != "file":
            raise _Errno(SPIPE)
        if not entry.rights & R_FD_WRITE:
            raise _Errno(BADF)
        assert entry.node is not None
        self._put_u32(view, out, self._write_node(entry.node, buffers, offset & _U64))
        return SUCCESS

    @_syscall
    def fd_seek(self, caller, fd: int, offset: int, whence: int, out: int) -> int:
        self._charge(HOST_CALL_FUEL)
        entry = self._file_fd(fd)
        if entry.kind != "file":
            raise _Errno(SPIPE)
        assert entry.node is not None
        whence &= _U32
        if whence > 2:
            raise _Errno(INVAL)
        base = (0, entry.pos, entry.node.size)[whence]
        if base + offset < 0 or base + offset > _U64 >> 1:
            raise _Errno(INVAL)
        entry.pos = base + offset
        self._put_u64(self._view(caller), out, entry.pos)
        return SUCCESS

    @_syscall
    def fd_tell(self, caller, fd: int, out: int) -> int:
        self._charge(HOST_CALL_FUEL)
        entry = self._file_fd(fd)
        if entry.kind != "file":
            raise _Errno(SPIPE)
        self._put_u64(self._view(caller), out, entry.pos)
        return SUCCESS

    @_syscall
    def fd_close(self, caller, fd: int) -> int:
        self._charge(HOST_CALL_FUEL)
        entry = self._fd(fd)
        del self.fds[fd & _U32]
        self._close_node(entry.node)
        return SUCCESS

    @_syscall
    def fd_renumber(self, caller, fd: int, to: int) -> int:
        self._charge(HOST_CALL_FUEL)
        entry, target = self._fd(fd), self._fd(to)
        if entry is not target:
            self._close_node(target.node)
            self.fds[to & _U32] = entry
            del self.fds[fd & _U32]
        return SUCCESS

    def _nothing(self, fd: int) -> int:
        self._charge(HOST_CALL_FUEL)
        self._fd(fd)
        return SUCCESS

    @_syscall
    def fd_sync(self, caller, fd: int) -> int:
        return self._nothing(fd)

    @_syscall
    def fd_datasync(self, caller, fd: int) -> int:
        return self._nothing(fd)

    @_syscall
    def fd_advise(self, caller, fd: int, offset: int, length: int, advice: int) -> int:
        self._nothing(fd)
        if advice & _U32 > 5:
            raise _Errno(INVAL)
        return SUCCESS

    @_syscall
    def fd_allocate(self, caller, fd: int, offset: int, length: int) -> int:
        self._charge(HOST_CALL_FUEL)
        entry = self._file_fd(fd)
        if entry.kind != "file":
            raise _Errno(SPIPE)
        if not entry.rights & R_FD_WRITE:
            raise _Errno(BADF)
        assert entry.node is not None
        end = (offset & _U64) + (length & _U64)
        if end > entry.node.size:
            self._grow(entry.node, end)
            self._charge(BYTE_FUEL * (end - entry.node.size))
            self._resize(entry.node, end)
        return SUCCESS

    @_syscall
    def fd_filestat_set_size(self, caller, fd: int, size: int) -> int:
        self._charge(HOST_CALL_FUEL)
        entry = self._file_fd(fd)
        if entry.kind != "file":
            raise _Errno(INVAL)
        if not entry.rights & R_FD_WRITE:
            raise _Errno(INVAL)
        assert entry.node is not None
        size &= _U64
        self._grow(entry.node, size)
        self._charge(BYTE_FUEL * max(0, size - entry.node.size))
        self._resize(entry.node, size)
        return SUCCESS

    # ------------------------------------------------------------ descriptors' state

    @_syscall
    def fd_fdstat_get(self, caller, fd: int, out: int) -> int:
        self._charge(HOST_CALL_FUEL)
        entry = self._fd(fd)
        kind = {"dir": FT_DIR, "file": FT_FILE}.get(entry.kind, FT_UNKNOWN)
        data = struct.pack("<BxHxxxxQQ", kind, entry.flags, entry.rights, entry.inheriting)
        self._put(self._view(caller), out, data)
        return SUCCESS

    @_syscall
    def fd_fdstat_set_flags(self, caller, fd: int, flags: int) -> int:
        self._charge(HOST_CALL_FUEL)
        self._fd(fd).flags = flags & 0x1F
        return SUCCESS

    @_syscall
    def fd_fdstat_set_rights(self, caller, fd: int, rights: int, inheriting: int) -> int:
        self._charge(HOST_CALL_FUEL)
        entry = self._fd(fd)
        rights, inheriting = rights & _U64, inheriting & _U64
        if rights & ~entry.rights or inheriting & ~entry.inheriting:
            raise _Errno(NOTCAPABLE)
        entry.rights, entry.inheriting = rights, inheriting
        return SUCCESS

    @_syscall
    def fd_filestat_get(self, caller, fd: int, out: int) -> int:
        self._charge(HOST_CALL_FUEL)
        self._put(self._view(caller), out, self._filestat(self._fd(fd).node))
        return SUCCESS

    def _set_times(self, node: _Node | None, atim: int, mtim: int, flags: int) -> None:
        flags &= _U32
        if (flags & _FST_ATIM and flags & _FST_ATIM_NOW) or (
            flags & _FST_MTIM and flags & _FST_MTIM_NOW
        ):
            raise _Errno(INVAL)
        if node is None:
            return
        if not node.mount.writable:
            raise _Errno(ROFS)
        now = self._clock(0)
        if flags & (_FST_ATIM | _FST_ATIM_NOW):
            node.atim = now if flags & _FST_ATIM_NOW else atim & _U64
        if flags & (_FST_MTIM | _FST_MTIM_NOW):
            node.mtim = now if flags & _FST_MTIM_NOW else mtim & _U64

    @_syscall
    def fd_filestat_set_times(self, caller, fd: int, atim: int, mtim: int, flags: int) -> int:
        self._charge(HOST_CALL_FUEL)
        self._set_times(self._fd(fd).node, atim, mtim, flags)
        return SUCCESS

    @_syscall
    def fd_prestat_get(self, caller, fd: int, out: int) -> int:
        self._charge(HOST_CALL_FUEL)
        entry = self._fd(fd)
        if entry.preopen is None:
            raise _Errno(BADF)
        self._put(self._view(caller), out, struct.pack("<BxxxI", 0, len(entry.preopen)))
        return SUCCESS

    @_syscall
    def fd_prestat_dir_name(self, caller, fd: int, path: int, length: int) -> int:
        self._charge(HOST_CALL_FUEL)
        entry = self._fd(fd)
        if entry.preopen is None:
            raise _Errno(BADF)
        if length & _U32 < len(entry.preopen):
            raise _Errno(NAMETOOLONG)
        self._put(self._view(caller), path, entry.preopen)
        return SUCCESS

    @_syscall
    def fd_readdir(self, caller, fd: int, buffer: int, length: int, cookie: int, out: int) -> int:
        self._charge(HOST_CALL_FUEL)
        entry = self._dir_fd(fd)
        node = entry.node
        assert node is not None and node.children is not None
        view = self._view(caller)
        length, cookie = length & _U32, cookie & _U64
        target = self._span(view, buffer, length)
        if node.listing is None:
            self._charge(DIRENT_FUEL * len(node.children))
            node.listing = sorted(node.children)
        # At most one entry per 24 bytes of the buffer (an entry's fixed part), and one more.
        most = max(0, min(len(node.listing) + 2 - cookie, length // 24 + 1))
        self._charge(DIRENT_FUEL * most)
        parent = node.parent or node
        chunks, size = [], 0
        for index in range(cookie, cookie + most):
            if size >= length:
                break
            if index < 2:
                name, child = (b".", node) if index == 0 else (b"..", parent)
            else:
                name = node.listing[index - 2]
                child = node.children[name]
            kind = FT_DIR if child.is_dir else FT_FILE
            chunks.append(struct.pack("<QQIB3x", index + 1, child.ino, len(name), kind) + name)
            size += len(chunks[-1])
        data = b"".join(chunks)[:length]
        self._charge(BYTE_FUEL * len(data))
        target[: len(data)] = data
        self._put_u32(view, out, len(data))
        return SUCCESS

    # ------------------------------------------------------------ paths

    @_syscall
    def path_open(
        self,
        caller,
        fd: int,
        dirflags: int,
        path: int,
        length: int,
        oflags: int,
        rights: int,
        inheriting: int,
        fdflags: int,
        out: int,
    ) -> int:
        self._charge(HOST_CALL_FUEL)
        view = self._view(caller)
        parent, name, node, raw = self._lookup(view, fd, path, length)
        oflags, rights, inheriting = oflags & 0xF, rights & RIGHTS_ALL, inheriting & RIGHTS_ALL
        writing = bool(rights & _WRITE_RIGHTS or oflags & O_TRUNC)
        if len(self.fds) >= MAX_OPEN_FDS:
            raise _Errno(MFILE)
        if node is None:
            if not oflags & O_CREAT:
                raise _Errno(NOENT)
            if oflags & O_DIRECTORY:
                raise _Errno(INVAL)
            if raw.endswith(b"/"):
                raise _Errno(ISDIR)
            assert parent is not None and name is not None
            node = self._link(parent, name, is_dir=False)
        else:
            if oflags & O_CREAT and oflags & O_EXCL:
                raise _Errno(EXIST)
            if oflags & O_DIRECTORY and not node.is_dir:
                raise _Errno(NOTDIR)
            if node.is_dir and (writing or oflags & O_CREAT):
                raise _Errno(ISDIR)
            if writing and not node.mount.writable:
                raise _Errno(ROFS)
        self._open_node(node)
        try:
            if oflags & O_TRUNC and node.size:
                self._resize(node, 0)
        except _Errno:
            self._close_node(node)
            raise
        entry = _Fd("dir" if node.is_dir else "file", node, rights, inheriting)
        entry.flags = fdflags & 0x1F
        number = self._new_fd(entry)
        self._put_u32(view, out, number)
        return SUCCESS

    @_syscall
    def path_filestat_get(self, caller, fd: int, flags: int, path: int, length: int, out: int):
        self._charge(HOST_CALL_FUEL)
        view = self._view(caller)
        node = self._lookup(view, fd, path, length)[2]
        if node is None:
            raise _Errno(NOENT)
        self._put(view, out, self._filestat(node))
        return SUCCESS

    @_syscall
    def path_filestat_set_times(
        self, caller, fd: int, flags: int, path: int, length: int, atim: int, mtim: int, fst: int
    ) -> int:
        self._charge(HOST_CALL_FUEL)
        node = self._lookup(self._view(caller), fd, path, length)[2]
        if node is None:
            raise _Errno(NOENT)
        self._set_times(node, atim, mtim, fst)
        return SUCCESS

    @_syscall
    def path_create_directory(self, caller, fd: int, path: int, length: int) -> int:
        self._charge(HOST_CALL_FUEL)
        parent, name, node, _ = self._lookup(self._view(caller), fd, path, length)
        if node is not None or parent is None or name is None:
            raise _Errno(EXIST)
        self._link(parent, name, is_dir=True)
        return SUCCESS

    @_syscall
    def path_unlink_file(self, caller, fd: int, path: int, length: int) -> int:
        self._charge(HOST_CALL_FUEL)
        _, name, node, raw = self._lookup(self._view(caller), fd, path, length)
        if node is None:
            raise _Errno(NOENT)
        if name is None or node.is_dir:
            raise _Errno(ISDIR)
        if raw.endswith(b"/"):
            raise _Errno(NOTDIR)
        if not node.mount.writable:
            raise _Errno(ROFS)
        if node.mount.root_fd is not None:
            os.unlink(node.relative(), dir_fd=node.mount.root_fd)
        self._unlink(node)
        return SUCCESS

    @_syscall
    def path_remove_directory(self, caller, fd: int, path: int, length: int) -> int:
        self._charge(HOST_CALL_FUEL)
        _, name, node, _ = self._lookup(self._view(caller), fd, path, length)
        if node is None:
            raise _Errno(NOENT)
        if not node.is_dir:
            raise _Errno(NOTDIR)
        if name is None:
            raise _Errno(INVAL)
        if not node.mount.writable:
            raise _Errno(ROFS)
        if node.children:
            raise _Errno(NOTEMPTY)
        if node.mount.root_fd is not None:
            os.rmdir(node.relative(), dir_fd=node.mount.root_fd)
        self._unlink(node)
        return SUCCESS

    @_syscall
    def path_rename(
        self, caller, fd: int, old: int, old_length: int, new_fd: int, new: int, new_length: int
    ) -> int:
        self._charge(HOST_CALL_FUEL)
        view = self._view(caller)
        _, old_name, source, old_raw = self._lookup(view, fd, old, old_length)
        parent, name, target, new_raw = self._lookup(view, new_fd, new, new_length)
        if source is None:
            raise _Errno(NOENT)
        if old_name is None or name is None or parent is None:
            raise _Errno(INVAL)
        if source.mount is not parent.mount:
            raise _Errno(XDEV)
        if not source.mount.writable:
            raise _Errno(ROFS)
        if not source.is_dir and (old_raw.endswith(b"/") or new_raw.endswith(b"/")):
            raise _Errno(NOTDIR)
        if target is source:
            return SUCCESS
        _check_name(name)
        ancestor: _Node | None = parent
        while ancestor is not None:
            if ancestor is source:
                raise _Errno(INVAL)  # a directory into itself
            ancestor = ancestor.parent
        if target is not None:
            if source.is_dir and not target.is_dir:
                raise _Errno(NOTDIR)
            if target.is_dir and not source.is_dir:
                raise _Errno(ISDIR)
            if target.children:
                raise _Errno(NOTEMPTY)
        root = source.mount.root_fd
        if root is not None:
            new_relative = (parent.relative() + b"/" + name).lstrip(b"/")
            os.rename(source.relative(), new_relative, src_dir_fd=root, dst_dir_fd=root)
        if target is not None:
            self._unlink(target)
        old_parent = source.parent
        assert old_parent is not None and old_parent.children is not None
        assert parent.children is not None
        del old_parent.children[source.name]
        old_parent.listing = parent.listing = None
        source.parent, source.name = parent, name
        parent.children[name] = source
        return SUCCESS

    @_syscall
    def path_readlink(
        self, caller, fd: int, path: int, length: int, buffer: int, size: int, out: int
    ) -> int:
        self._charge(HOST_CALL_FUEL)
        node = self._lookup(self._view(caller), fd, path, length)[2]
        raise _Errno(NOENT if node is None else INVAL)  # there are no symlinks

    @_syscall
    def path_symlink(self, caller, old: int, old_length: int, fd: int, new: int, length: int):
        self._charge(HOST_CALL_FUEL)
        raise _Errno(NOTSUP)

    @_syscall
    def path_link(self, caller, fd: int, flags: int, old: int, old_length: int, *rest: int):
        self._charge(HOST_CALL_FUEL)
        raise _Errno(NOTSUP)

    # ------------------------------------------------------------ sockets: none

    @_syscall
    def sock_accept(self, caller, fd: int, flags: int, out: int) -> int:
        self._charge(HOST_CALL_FUEL)
        raise _Errno(NOTSUP)

    @_syscall
    def sock_recv(self, caller, *args: int) -> int:
        self._charge(HOST_CALL_FUEL)
        raise _Errno(NOTSUP)

    @_syscall
    def sock_send(self, caller, *args: int) -> int:
        self._charge(HOST_CALL_FUEL)
        raise _Errno(NOTSUP)

    @_syscall
    def sock_shutdown(self, caller, fd: int, how: int) -> int:
        self._charge(HOST_CALL_FUEL)
        raise _Errno(NOTSUP)


def output_files(output_dir: Path | str) -> dict[str, bytes]:
    """The regular files under an output directory after a run, by relative path."""
    root = Path(output_dir)
    found = {}
    for path in sorted(root.rglob("*")):
        if stat.S_ISREG(path.lstat().st_mode):
            found[path.relative_to(root).as_posix()] = path.read_bytes()
    return found
