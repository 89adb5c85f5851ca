"""The agent's result server under hostile clients: every attack here runs against a real
server over loopback with real sockets, bounded in count and time.

The endpoint is public on chain, so anyone may trickle, flood, send huge headers or an
endless body, or sit on idle connections. What must hold: connections and whole requests are
bounded, honest requests are still answered, and the agent keeps the descriptors it needs to
run its jobs (a worker's files, its journal) whatever the clients do. Distinct clients are
distinct loopback addresses (127.0.0.2, 127.0.0.3, ...: all of 127/8 is loopback on Linux).
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import textwrap
import time
import urllib.parse

import pytest

from computeshare.agent import Journal
from computeshare.results import ResultServer, fetch_result
from computeshare.sandbox import RunResult

JOB = bytes(range(32))
KEY = "0x" + JOB.hex()
RESULT = RunResult(0, 1_234, b"the output")
REQUEST = f"GET /results/{KEY} HTTP/1.1\r\nHost: agent\r\n\r\n".encode()

DEADLINE = 5  # seconds a whole request may take, first byte to last (SECURITY.md)
CAP = 64  # connections held at most when the descriptor limit leaves room (1,024 or more)
PER_ADDRESS = 8  # connections one client address holds at most


def source(n: int) -> str:
    """The n-th attacking client's address (n >= 2; 127.0.0.1 is the honest client's)."""
    return f"127.0.0.{n}"


@pytest.fixture
def served(tmp_path):
    """A started server whose journal holds one revealed result; yields (server, address)."""
    journal = Journal(tmp_path / "journal.json")
    journal.jobs[KEY] = {"result": RESULT.to_json(), "revealed": True}
    server = ResultServer(journal).start()
    url = urllib.parse.urlsplit(server.url)
    try:
        yield server, (url.hostname, url.port)
    finally:
        server.stop()


def connect(address, client: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(address, timeout=5, source_address=(client, 0))


def closed(sock: socket.socket) -> bool:
    """Whether the server has closed this connection (end of stream or reset); drains what
    it sent without blocking."""
    timeout = sock.gettimeout()
    sock.setblocking(False)  # a socket with a timeout would wait for data, not say "none"
    try:
        while True:
            if sock.recv(65_536) == b"":
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        if sock.fileno() != -1:
            sock.settimeout(timeout)


def held(socks) -> int:
    return sum(not closed(sock) for sock in socks)


def honest(server) -> float:
    """Seconds an honest client takes to fetch the result (which must be right)."""
    began = time.monotonic()
    assert fetch_result(server.url, JOB, {RESULT.digest()}) == RESULT
    return time.monotonic() - began


def close_all(socks) -> None:
    for sock in socks:
        sock.close()


def test_tricklers_are_shed_by_a_deadline_on_the_whole_request(served):
    """20 clients each send a byte every half second, well inside any per-read timeout: each
    is cut off once its whole request has taken the deadline."""
    server, address = served
    socks = [connect(address, source(2 + n)) for n in range(20)]
    began, shed_at, sent = time.monotonic(), {}, 0
    try:
        while len(shed_at) < len(socks) and time.monotonic() - began < DEADLINE + 4:
            for sock in socks:
                if sock in shed_at:
                    continue
                try:
                    sock.send(REQUEST[sent % 20 : sent % 20 + 1])  # never a whole request
                except OSError:
                    shed_at[sock] = time.monotonic() - began
                    continue
                if closed(sock):
                    shed_at[sock] = time.monotonic() - began
            sent += 1
            assert honest(server) < 1
            time.sleep(0.5)
        assert len(shed_at) == len(socks), f"{len(socks) - len(shed_at)} still held"
        assert max(shed_at.values()) < DEADLINE + 1.5
    finally:
        close_all(socks)


def test_a_flood_beyond_the_cap_holds_at_most_the_cap(served):
    """Three times the cap in silent connections from 24 addresses: at most the cap stay
    open, and an honest client is still answered at once."""
    server, address = served
    socks = [connect(address, source(2 + n % 24)) for n in range(3 * CAP)]
    try:
        time.sleep(0.3)
        assert held(socks) <= CAP
        assert honest(server) < 1
    finally:
        close_all(socks)


def test_one_address_holds_at_most_its_share(served):
    """200 connections from one address leave it its share; another client is untouched."""
    server, address = served
    neighbour = [connect(address, source(3)) for _ in range(4)]
    socks = [connect(address, source(2)) for _ in range(200)]
    try:
        time.sleep(0.3)
        assert held(socks) <= PER_ADDRESS
        assert held(neighbour) == len(neighbour), "another address's connections stay"
        assert honest(server) < 1
    finally:
        close_all(socks + neighbour)


def test_an_attacker_refilling_the_cap_cannot_keep_an_honest_client_out(served):
    """Many addresses keep the server full, reopening what it drops; an honest request,
    arriving while it is full, is answered each time."""
    server, address = served
    socks, latencies = [], []
    try:
        for round_ in range(5):
            socks += [connect(address, source(2 + (round_ * CAP + n) % 200)) for n in range(CAP)]
            latencies.append(honest(server))
        assert held(socks) <= CAP
        assert max(latencies) < 1, latencies
    finally:
        close_all(socks)


def test_huge_headers_are_refused_early(served):
    """Header lines without end, sent at full speed: the server refuses them (400) and
    closes within a second, having taken no more than loopback's buffers hold."""
    server, address = served
    sock = connect(address, source(2))
    sent, line = 0, b"X-Filler: " + b"a" * 1_000 + b"\r\n"
    began = time.monotonic()
    try:
        sock.sendall(f"GET /results/{KEY} HTTP/1.1\r\n".encode())
        with pytest.raises(OSError):
            while sent < 64 << 20 and time.monotonic() - began < DEADLINE + 3:
                sock.sendall(line)
                sent += len(line)
        assert time.monotonic() - began < 1
        assert sent < 16 << 20
    finally:
        sock.close()
    assert honest(server) < 1


@pytest.mark.parametrize(
    "head",
    [
        f"POST /results/{KEY} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        f"GET /results/{KEY} HTTP/1.1\r\nHost: a\r\nContent-Length: 1000000000000\r\n\r\n",
    ],
    ids=["chunked", "content-length"],
)
def test_an_endless_body_is_cut_off(served, head):
    """A body sent at full speed for ever: the connection ends within the deadline."""
    server, address = served
    sock = connect(address, source(2))
    chunk = b"4000\r\n" + b"b" * 0x4000 + b"\r\n" if "chunked" in head else b"b" * 0x4000
    began = time.monotonic()
    try:
        sock.sendall(head.encode())
        with pytest.raises(OSError):
            while time.monotonic() - began < DEADLINE + 3:
                sock.sendall(chunk)
        assert time.monotonic() - began < DEADLINE + 1.5
    finally:
        sock.close()
    assert honest(server) < 1


def test_idle_keep_alive_connections_are_not_kept(served):
    """100 clients, one after another, ask once over HTTP/1.1 (keep-alive by default) and
    then sit on the connection: each is answered, and none is kept."""
    _, address = served
    socks, answers, deadline = [], [], time.monotonic() + 10
    try:
        for n in range(100):
            sock = connect(address, source(2 + n % 20))
            socks.append(sock)
            sock.sendall(REQUEST)
            answer = b""
            while b"\r\n\r\n" not in answer:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                data = sock.recv(4_096)
                if not data:
                    break
                answer += data
            answers.append(answer.split(b"\r\n", 1)[0])
        assert set(answers) == {b"HTTP/1.1 200 OK"}
        time.sleep(0.5)
        assert held(socks) == 0
    finally:
        close_all(socks)


AGENT = textwrap.dedent(
    """
    import json, os, resource, sys, tempfile, threading, time
    from pathlib import Path

    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    from computeshare import worker
    from computeshare.agent import Journal
    from computeshare.results import ResultServer
    from computeshare.sandbox import RunResult
    from computeshare.workloads import encode_spec

    folder = Path(tempfile.mkdtemp())
    journal = Journal(folder / "journal.json")
    journal.jobs[sys.argv[1]] = {"result": RunResult(0, 1_234, b"the output").to_json(),
                                 "revealed": True}
    server = ResultServer(journal).start()
    print(server.url, server.max_connections, flush=True)
    sys.stdin.readline()  # the attack has begun
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
    spec = encode_spec("sha256-chain", {"seed": "computeshare", "rounds": 2_000})
    runs, errors, peak, held = 0, [], 0, 0
    give_up = time.monotonic() + 60
    while not stop.is_set() and time.monotonic() < give_up:
        try:
            worker.run(spec, None, 10)  # a worker: two files and a process
            journal.save()
            with open(folder / "scratch", "wb") as scratch:
                scratch.write(b"x")
            runs += 1
        except Exception as error:
            errors.append(f"{type(error).__name__}: {error}"[:120])
        peak = max(peak, len(os.listdir("/proc/self/fd")))
        held = max(held, server.connections)
    print(json.dumps({"runs": runs, "errors": errors[:5], "peak": peak, "held": held}))
    server.stop()
    """
)


def test_the_agent_keeps_its_descriptors_under_a_flood():
    """An agent process limited to 256 descriptors serves results while an attacker keeps
    300 connections open to it (more than its limit) from 30 addresses, reopening what it
    sheds: the agent keeps running workers and saving its journal, an honest client is
    answered throughout, and the server holds at most its cap."""
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT, KEY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    socks, latencies, opened = [], [], 0
    try:
        url, cap = agent.stdout.readline().split()
        assert url.startswith("http://127.0.0.1:") and int(cap) == 32, (url, cap)
        parts = urllib.parse.urlsplit(url)
        agent.stdin.write("go\n")
        agent.stdin.flush()
        began = time.monotonic()
        while time.monotonic() - began < 8:
            for _ in range(50):
                with contextlib.suppress(OSError):  # refused or reset: the server shed it
                    socks.append(connect((parts.hostname, parts.port), source(2 + opened % 30)))
                opened += 1
            while len(socks) > 300:
                socks.pop(0).close()
            asked = time.monotonic()
            assert fetch_result(url, JOB, {RESULT.digest()}) == RESULT
            latencies.append(time.monotonic() - asked)
        agent.stdin.write("stop\n")
        agent.stdin.flush()
        report = json.loads(agent.stdout.readline())
        assert report["errors"] == [] and report["runs"] >= 3, report
        assert report["held"] <= int(cap), report
        assert report["peak"] < 128, report  # the server's quarter of 256, and its own
        assert max(latencies) < 3, latencies
        print(f"opened {opened}, {report}, honest {min(latencies):.3f}-{max(latencies):.3f} s")
    finally:
        close_all(socks)
        agent.kill()
        agent.wait()
