"""A throwaway PostgreSQL server for tests: initdb into a temporary directory, `postgres` on
a free local port, one database per name asked for, everything removed at the end.

Debian's `postgresql` package provides the binaries (/usr/lib/postgresql/<version>/bin);
.ci/run installs it in the background. PostgreSQL refuses to run as root: as root the
server runs as the `postgres` user the package creates (else `nobody`)."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from tests import debian

PACKAGE = "postgresql"


def find_binaries() -> Path | None:
    """The directory holding initdb and postgres: $COMPUTESHARE_PG_BIN, Debian's newest
    /usr/lib/postgresql/<version>/bin, or PATH."""
    candidates = []
    if os.environ.get("COMPUTESHARE_PG_BIN"):
        candidates.append(Path(os.environ["COMPUTESHARE_PG_BIN"]))
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += versions
    if shutil.which("initdb"):
        candidates.append(Path(shutil.which("initdb")).resolve().parent)
    for directory in candidates:
        if all(os.access(directory / b, os.X_OK) for b in ("initdb", "postgres")):
            return directory
    return None


def install() -> str:
    """Debian's package (`tests.debian.install`); "" when done, else why not."""
    return debian.install(PACKAGE)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One server; `database(name)` creates a fresh database and returns its URL."""

    def __init__(self, binaries: Path):
        self.binaries = binaries
        self.user = None
        if os.geteuid() == 0:  # postgres will not run as root
            for name in ("postgres", "nobody"):
                with contextlib.suppress(KeyError):
                    self.user = pwd.getpwnam(name)
                    break
        # Not under pytest's tmp dirs: those are 0700 root, closed to the server's user.
        self.home = Path(tempfile.mkdtemp(prefix="computeshare-pg-"))
        self.data = self.home / "data"
        self.log = self.home / "server.log"
        if self.user is not None:
            os.chown(self.home, self.user.pw_uid, self.user.pw_gid)
        self.process: subprocess.Popen | None = None
        self.port = 0

    def _run(self, *args: str, **options) -> subprocess.CompletedProcess:
        return subprocess.run(
            args, capture_output=True, text=True, timeout=300, **self._as_user(), **options
        )

    def _as_user(self) -> dict:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def start(self) -> PostgresServer:
        done = self._run(
            str(self.binaries / "initdb"),
            "--pgdata",
            str(self.data),
            "--username",
            "postgres",
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
            cwd=self.home,
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()[-500:]}")
        for _ in range(5):  # another process may take the free port first
            self.port = _free_port()
            with self.log.open("ab") as log:
                self.process = subprocess.Popen(
                    [
                        str(self.binaries / "postgres"),
                        "-D",
                        str(self.data),
                        "-p",
                        str(self.port),
                        "-k",
                        str(self.home),
                        "-c",
                        "listen_addresses=127.0.0.1",
                        # a test database: nothing needs to survive a crash
                        "-c",
                        "fsync=off",
                        "-c",
                        "synchronous_commit=off",
                        "-c",
                        "full_page_writes=off",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=self.home,
                    **self._as_user(),
                )
            if self._ready():
                return self
            self.process.kill()
            self.process.wait()
        raise RuntimeError(f"postgres did not start: {self.log.read_text()[-800:]}")

    def _ready(self) -> bool:
        import psycopg

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                psycopg.connect(self._dsn("postgres"), connect_timeout=2).close()
                return True
            except psycopg.OperationalError:
                time.sleep(0.2)
        return False

    def _dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def database(self, name: str | None = None) -> str:
        """A new, empty database; its SQLAlchemy URL."""
        import psycopg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"not a plain database name: {name!r}")
        with psycopg.connect(self._dsn("postgres"), autocommit=True) as db:
            db.execute(f"CREATE DATABASE {name}")
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: closes the clients
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.home, ignore_errors=True)
