"""Node trouble, with real processes on loopback: a node that accepts connections and never
answers, a real anvil stopped with SIGSTOP and one killed and started again from its state.

Every command ends within its request timeout with one line and no traceback; the provider
agent backs off while its node fails and says so once per change, never once per request;
the dashboard shows how far behind the chain its index is and warns when its sync fails.

These tests start their own anvil (not ape's test node, which they would freeze) and
deploy to it with `ape run deploy`, as a user would."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
EXECUTABLE = BIN / "computeshare"
ANVIL = shutil.which("anvil", path=f"{ROOT / 'node_modules' / '.bin'}:/work/main/node_modules/.bin")
TIMEOUT = 2  # COMPUTESHARE_RPC_TIMEOUT in these tests
# A command's start-up (imports, plugins) on a loaded 2-core machine, on top of its timeout.
START_UP = 12
CLIENT, PROVIDER = "0x90F79bf6EB2c4f870365E785982E1f101E93b906", "TEST::4"  # TEST::3, TEST::4


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Silent:
    """A node that accepts every connection and never answers (nor closes)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                self.held.append(self.sock.accept()[0])

    def close(self) -> None:
        for sock in [*self.held, self.sock]:
            sock.close()


class Anvil:
    """A real anvil on a free port whose state survives a kill (`--state`)."""

    def __init__(self, state: Path):
        self.state, self.port = state, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen(
            [ANVIL, "--port", str(self.port), "--silent", "--state", str(self.state)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # npm's `anvil` is a wrapper: signal the whole group
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return
            time.sleep(0.1)
        raise AssertionError("anvil did not start")

    def signal(self, number: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, number)

    def freeze(self) -> None:
        self.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.signal(signal.SIGCONT)

    def kill(self) -> None:
        """Stops it as an operator would (SIGTERM: it writes its state on the way out)."""
        self.thaw()
        self.signal(signal.SIGTERM)
        self.process.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the group's real anvil has let go of the port
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                time.sleep(0.1)
                continue
            return

    def close(self) -> None:
        self.thaw()
        self.signal(signal.SIGKILL)
        self.process.wait()


def environment(**extra) -> dict:
    env = {**os.environ, "COMPUTESHARE_RPC_TIMEOUT": str(TIMEOUT), **extra}
    env["PATH"] = f"{BIN}:{os.environ.get('PATH', '')}"
    for variable in ("COMPUTESHARE_NETWORK", "COMPUTESHARE_ACCOUNT", "COMPUTESHARE_TRACEBACK"):
        env.pop(variable, None)
    return env


def run(*args, network: str, manifest: Path | None = None, account: str | None = None):
    """`computeshare ARGS` in a process of its own: (exit code, stdout, stderr, seconds)."""
    extra = ["--network", network]
    extra += ["--manifest", str(manifest)] if manifest else []
    extra += ["--account", account] if account else []
    began = time.monotonic()
    done = subprocess.run(
        [str(EXECUTABLE), *args, *extra],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment(),
        cwd=ROOT,
    )
    return done.returncode, done.stdout, done.stderr, time.monotonic() - began


def one_line_failure(result, within: float) -> str:
    code, out, err, seconds = result
    assert code != 0, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("Error: "), lines
    assert seconds < within, f"{seconds:.1f} s: {lines[0]}"
    return lines[0]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    """A real anvil with the suite deployed; TEST::3 and TEST::4 hold tokens, TEST::4 has a
    device. Yields (anvil, manifest)."""
    if ANVIL is None:
        pytest.skip("anvil is not installed (make setup puts it in node_modules/.bin)")
    folder = tmp_path_factory.mktemp("node")
    anvil = Anvil(folder / "state.json")
    try:
        done = subprocess.run(
            [
                str(BIN / "ape"),
                "run",
                "deploy",
                "--network",
                anvil.url,
                "--account",
                "TEST::0",
                "--manifest-dir",
                str(folder),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            env=environment(),
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        manifest = folder / "custom-31337.json"
        for to in (CLIENT, "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65"):
            result = run(
                "token",
                "transfer",
                to,
                "10000",
                network=anvil.url,
                manifest=manifest,
                account="TEST::0",
            )
            assert result[0] == 0, result
        for args in (("provider", "stake", "5000"), ("provider", "register", "--gpus", "0")):
            result = run(*args, network=anvil.url, manifest=manifest, account=PROVIDER)
            assert result[0] == 0, result
        yield anvil, manifest
    finally:
        anvil.close()


@pytest.fixture
def silent():
    node = Silent()
    yield node
    node.close()


# ---------------------------------------------------------------- commands


@pytest.mark.parametrize(
    "args",
    [
        ("show", "jobs"),
        ("token", "transfer", CLIENT, "1", "--account", "TEST::0"),
        ("token", "balance", CLIENT),
        ("--rpc-timeout", "1", "show", "devices"),
    ],
)
def test_a_node_that_never_answers_ends_a_command_in_one_line(silent, args):
    line = one_line_failure(run(*args, network=silent.url), TIMEOUT + START_UP)
    assert f"no node answers at {silent.url}" in line, line


def test_a_bad_timeout_is_a_usage_error(silent):
    done = subprocess.run(
        [str(EXECUTABLE), "show", "jobs", "--network", silent.url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**environment(), "COMPUTESHARE_RPC_TIMEOUT": "soon"},
    )
    assert done.returncode == 2 and "COMPUTESHARE_RPC_TIMEOUT='soon'" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_stopped_anvil_ends_commands_in_one_line_and_a_thawed_one_answers(node):
    anvil, manifest = node
    assert run("show", "jobs", network=anvil.url, manifest=manifest)[0] == 0
    anvil.freeze()
    try:
        for args in (
            ("show", "jobs"),
            ("token", "transfer", CLIENT, "1", "--account", "TEST::0"),
        ):
            line = one_line_failure(
                run(*args, network=anvil.url, manifest=manifest), TIMEOUT + START_UP
            )
            assert "no node answers" in line or "did not answer within" in line, line
    finally:
        anvil.thaw()
    code, out, err, _ = run(
        "token", "transfer", CLIENT, "1", network=anvil.url, manifest=manifest, account="TEST::0"
    )
    assert code == 0 and f"sent 1 tokens to {CLIENT}" in out, err


def test_a_killed_anvil_is_one_line_at_once(node):
    anvil, manifest = node
    anvil.kill()
    try:
        line = one_line_failure(run("show", "jobs", network=anvil.url, manifest=manifest), START_UP)
        assert f"no node answers at {anvil.url}" in line, line
    finally:
        anvil.start()
    assert run("show", "jobs", network=anvil.url, manifest=manifest)[0] == 0


# ---------------------------------------------------------------- the provider agent


class Lines:
    """A process's stdout lines as they come, each with its arrival time."""

    def __init__(self, process: subprocess.Popen):
        self.lines: list[tuple[float, str]] = []
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process) -> None:
        for line in process.stdout:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def since(self, moment: float) -> list[str]:
        return [text for at, text in list(self.lines) if at >= moment]

    def wait_for(self, pattern: str, after: float, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for text in self.since(after):
                if re.search(pattern, text):
                    return text
            time.sleep(0.1)
        raise AssertionError(f"no line matching {pattern!r}: {self.since(after)}")


def test_the_agent_backs_off_while_its_node_fails_and_says_so_once(node, tmp_path):
    """The agent polls every 0.1 s. Its node is frozen for 8 s, then killed for 8 s and
    started again from its state: each outage is one 'node unreachable' line and one 'node
    back' line, nothing else, and the agent then accepts a job posted after it."""
    anvil, manifest = node
    agent = subprocess.Popen(
        [
            str(EXECUTABLE),
            "agent",
            "--journal",
            str(tmp_path / "agent.json"),
            "--poll",
            "0.1",
            "--network",
            anvil.url,
            "--manifest",
            str(manifest),
            "--account",
            PROVIDER,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment(),
        cwd=ROOT,
    )
    lines = Lines(agent)
    try:
        lines.wait_for("serving device", 0, 120)
        for outage, (stop, resume) in {
            "frozen": (anvil.freeze, anvil.thaw),
            "killed": (anvil.kill, anvil.start),
        }.items():
            began = time.monotonic()
            stop()
            lines.wait_for("node unreachable", began, TIMEOUT + 5)
            time.sleep(8)
            resume()
            lines.wait_for(r"node back after \d+ s", began, 20)
            time.sleep(1)
            said = lines.since(began)
            print(outage, said)
            assert len(said) == 2, (outage, said)
            assert "node unreachable" in said[0] and "retrying with backoff" in said[0], said
            assert "node back after" in said[1], said
        posted = time.monotonic()
        code, _, err, _ = run(
            "client",
            "post",
            "--workload",
            "sha256-chain",
            "--input",
            '{"seed": "a", "rounds": 10}',
            "--price",
            "10",
            network=anvil.url,
            manifest=manifest,
            account="TEST::3",
        )
        assert code == 0, err
        lines.wait_for("accepted replica", posted, 60)
        assert agent.poll() is None, "the agent is still running"
    finally:
        agent.terminate()
        agent.wait(timeout=30)


# ---------------------------------------------------------------- the dashboard


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def test_the_dashboard_shows_its_lag_and_warns_when_its_sync_fails(node, tmp_path):
    anvil, manifest = node
    port = free_port()
    dashboard = subprocess.Popen(
        [
            str(EXECUTABLE),
            "dashboard",
            "--port",
            str(port),
            "--sync-interval",
            "0.5",
            "--db",
            str(tmp_path / "index.sqlite"),
            "--network",
            anvil.url,
            "--manifest",
            str(manifest),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment(),
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        Lines(dashboard).wait_for("dashboard at", 0, 120)
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError):
                page = get(url)
                break
            assert time.monotonic() < deadline, "the dashboard never answered"
            time.sleep(0.2)
        time.sleep(1.5)
        page = get(url)
        assert re.search(r"index at block [\d,]+ of the chain's [\d,]+ \(0 behind\)", page), page
        assert 'role="alert"' not in page
        anvil.freeze()
        try:
            time.sleep(TIMEOUT + 3 * 0.5 + 1)
            page = get(url)  # served from the index while its node hangs
        finally:
            anvil.thaw()
        warning = re.search(r'<p class="stale" role="alert">(.*?)</p>', page, re.S)
        assert warning, page
        assert "last sync failed" in warning[1] and "did not answer" in warning[1], warning[1]
        assert re.search(r"synced \d+ s ago", page), page
        # the chain moves on; once the node answers again, the index catches up
        with urllib.request.urlopen(
            urllib.request.Request(
                anvil.url,
                data=b'{"jsonrpc": "2.0", "id": 1, "method": "anvil_mine", "params": ["0x5"]}',
                headers={"content-type": "application/json"},
            ),
            timeout=10,
        ):
            pass
        deadline = time.monotonic() + 20
        while 'role="alert"' in (page := get(url)) or "(0 behind)" not in page:
            assert time.monotonic() < deadline, page
            time.sleep(0.5)
    finally:
        dashboard.terminate()
        dashboard.wait(timeout=30)
