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
import select
import socket
import statistics
import subprocess
import sys
import textwrap
import time
import urllib.parse

import pytest

from computeshare.agent import Journal
from computeshare.results import (
    MAX_CONNECTIONS,
    PER_CLIENT,
    REQUEST_SECONDS,
    ResultServer,
    _client,
    connection_bounds,
    fetch_result,
)
from computeshare.sandbox import MAX_OUTPUT_BYTES, RunResult

JOB = bytes(range(32))
KEY = "0x" + JOB.hex()
RESULT = RunResult(0, 1_234, b"the output")
REQUEST = f"GET /results/{KEY} HTTP/1.1\r\nHost: agent\r\n\r\n".encode()
DEADLINE, CAP = REQUEST_SECONDS, MAX_CONNECTIONS  # CAP: this process's limit is >= 1,024


def source(n: int) -> str:
    """The n-th attacking client's address (n >= 2; 127.0.0.1 is the honest client's)."""
    return f"127.0.0.{n}"


@pytest.fixture
def result_server(tmp_path):
    """Starts a server over a journal holding `result` as revealed; stops it afterwards."""
    started = []

    def start(result: RunResult = RESULT) -> ResultServer:
        journal = Journal(tmp_path / f"journal{len(started)}.json")
        journal.jobs[KEY] = {"result": result.to_json(), "revealed": True}
        started.append(ResultServer(journal).start())
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def served(result_server):
    """A started server and its address."""
    server = result_server()
    assert server.max_connections == CAP
    return server, server.address


def connect(address, client: str = "127.0.0.1") -> socket.socket:
    return socket.create_connection(address, timeout=5, source_address=(client, 0))


def open_many(address, count: int, clients: range) -> list[socket.socket]:
    """`count` connections from the addresses `source(n)`, n in `clients` in turn, opened
    together as an attacker would (not each waiting for its handshake); waits up to 5 s
    for the handshakes."""
    socks = []
    for n in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.bind((source(clients[n % len(clients)]), 0))
        sock.connect_ex(address)
        socks.append(sock)
    deadline = time.monotonic() + 5
    pending = list(socks)
    while pending and time.monotonic() < deadline:
        _, writable, _ = select.select([], pending, [], 0.1)
        pending = [sock for sock in pending if sock not in writable]
    return socks


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


def held_once_taken_in(server, socks, count: int, bound: int) -> int:
    """How many of `socks` are open once the server has taken in `count` connections (each
    held, or pushed out by a bound). Connections the kernel has queued look open to their
    clients until the server's loop accepts them, and on a busy machine that loop may run
    late: it is waited for, at most 3 s, and the closes it then schedules at most 0.5 s
    more, all well inside the request deadline (so no connection is cut by that instead).
    A server without bounds takes them all in at once and holds them."""
    deadline = time.monotonic() + 3
    while server.connections + server.shed < count and time.monotonic() < deadline:
        time.sleep(0.02)
    deadline = time.monotonic() + 0.5
    while (open_ := held(socks)) > bound and time.monotonic() < deadline:
        time.sleep(0.02)
    return open_


def read_until_closed(sock: socket.socket, seconds: float = 3) -> bytes:
    """Everything the server sends before it closes (at most `seconds`)."""
    data, deadline = b"", time.monotonic() + seconds
    with contextlib.suppress(OSError):
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65_536)
            if not chunk:
                break
            data += chunk
    return data


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
    socks = open_many(address, 3 * CAP, range(2, 26))
    try:
        assert held_once_taken_in(server, socks, len(socks), CAP) <= CAP
        assert server.connections <= CAP
        assert honest(server) < 1
    finally:
        close_all(socks)


def test_one_address_holds_at_most_its_share(served):
    """200 connections from one address leave it its share; another client is untouched."""
    server, address = served
    neighbour = open_many(address, 4, range(3, 4))
    socks = open_many(address, 200, range(2, 3))
    try:
        count = len(socks) + len(neighbour)
        assert held_once_taken_in(server, socks, count, PER_CLIENT) <= PER_CLIENT
        assert held(neighbour) == len(neighbour), "another address's connections stay"
        assert honest(server) < 1
    finally:
        close_all(socks + neighbour)


def test_an_attacker_refilling_the_cap_cannot_keep_an_honest_client_out(served):
    """Many addresses keep the server full, opening a cap's worth again before each honest
    request: the honest request, arriving while it is full, is answered each time."""
    server, address = served
    socks, latencies = [], []
    try:
        for round_ in range(5):
            socks += open_many(address, CAP, range(2 + 40 * round_, 42 + 40 * round_))
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


def test_clients_that_never_read_their_answers_do_not_hold_the_server(result_server):
    """20 clients with small receive windows ask for the largest result there can be and
    never read it: the server is free of them by the deadline (on loopback the kernel takes
    the whole answer, so they are gone at once; a larger one would be cut at the deadline)."""
    server = result_server(RunResult(0, 1, b"\xff" * MAX_OUTPUT_BYTES))
    socks = []
    try:
        began = time.monotonic()
        for n in range(20):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4_096)
            sock.bind((source(2 + n), 0))
            sock.connect(server.address)
            sock.sendall(REQUEST)
            socks.append(sock)
        while server.connections and time.monotonic() - began < DEADLINE + 2:
            time.sleep(0.1)
        assert server.connections == 0
        assert time.monotonic() - began < DEADLINE + 1
    finally:
        close_all(socks)


def test_pipelined_requests_get_one_answer(served):
    """1,000 requests in one write: one answer, then the connection closes."""
    _, address = served
    sock = connect(address, source(2))
    try:
        sock.sendall(REQUEST * 1_000)
        answer = read_until_closed(sock)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.count(b"HTTP/1.1") == 1


@pytest.mark.parametrize(
    "request_, status",
    [
        (
            f"GET /results/{KEY} HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
            "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            b"HTTP/1.1 200",
        ),
        ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"HTTP/1.1 404"),
        ("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + "\x00" * 64, b"HTTP/1.1 400"),
        (f"DELETE /results/{KEY} HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 405"),
        ("GET /results/../../etc/passwd HTTP/1.1\r\nHost: a\r\n\r\n", b"HTTP/1.1 404"),
    ],
    ids=["websocket", "http2", "tls", "delete", "traversal"],
)
def test_anything_but_a_plain_get_gets_a_plain_answer_and_a_close(served, request_, status):
    """A websocket upgrade, HTTP/2, TLS, another method or path: one plain HTTP/1.1 answer
    (never a 101 or a switch of protocol), and the connection closes."""
    _, address = served
    sock = connect(address, source(2))
    try:
        sock.sendall(request_.encode("latin-1"))
        answer = read_until_closed(sock)
    finally:
        sock.close()
    assert answer.startswith(status), answer[:80]


def test_stop_is_prompt_under_attack(result_server):
    """Stopping the server while tricklers and non-readers hold it takes under 3 s, and
    leaves nothing listening."""
    server = result_server(RunResult(0, 1, b"\xff" * MAX_OUTPUT_BYTES))
    socks = open_many(server.address, CAP // 2, range(2, 30))
    for sock in socks[: CAP // 4]:
        with contextlib.suppress(OSError):
            sock.send(REQUEST)  # and never read the answer
    for sock in socks[CAP // 4 :]:
        with contextlib.suppress(OSError):
            sock.send(b"GET /res")
    try:
        time.sleep(0.3)
        began = time.monotonic()
        server.stop()
        assert time.monotonic() - began < 3
        assert not server._thread.is_alive()
        with pytest.raises(ConnectionRefusedError):
            connect(server.address).close()
    finally:
        close_all(socks)


def test_an_ipv6_server_is_bounded_the_same(tmp_path):
    """On ::1: honest clients answered, its URL bracketed, its one client held to its share."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    journal = Journal(tmp_path / "journal.json")
    journal.jobs[KEY] = {"result": RESULT.to_json(), "revealed": True}
    server = ResultServer(journal, "::1").start()
    socks = []
    try:
        assert server.url == f"http://[::1]:{server.address[1]}"
        for _ in range(3 * PER_CLIENT):
            socks.append(socket.create_connection(server.address, timeout=5))
        assert held_once_taken_in(server, socks, len(socks), PER_CLIENT) <= PER_CLIENT
        assert server.connections <= PER_CLIENT
        assert honest(server) < 1  # the honest client is ::1 too: it pushes out the oldest
    finally:
        close_all(socks)
        server.stop()


def test_the_bounds_follow_the_descriptor_limit():
    """The server's share is at most a quarter of the descriptor limit, connections and a
    burst of accepts together; too low a limit is an error, not a server that starves."""
    assert connection_bounds(256) == (32, 32)
    assert connection_bounds(1_024) == (64, 128)
    assert connection_bounds(1 << 20) == (64, 128)
    for limit in (64, 100, 256, 1_000, 4_096):
        connections, backlog = connection_bounds(limit)
        assert connections + backlog <= limit // 4 and connections >= PER_CLIENT
    with pytest.raises(ValueError, match="raise `ulimit -n`"):
        connection_bounds(63)


def test_a_client_is_an_ipv4_address_or_an_ipv6_64():
    """One host with a /64 cannot take the server by using many of its addresses."""
    assert _client(("2001:db8::1", 1, 0, 0)) == _client(("2001:db8::ffff:2", 2, 0, 0))
    assert _client(("2001:db8::1", 1, 0, 0)) != _client(("2001:db8:0:1::1", 1, 0, 0))
    assert _client(("::ffff:192.0.2.7", 1, 0, 0)) == _client(("192.0.2.7", 9)) == "192.0.2.7"
    assert _client(("192.0.2.7", 1)) != _client(("192.0.2.8", 1))
    assert _client(None) == "?"


class Flood:
    """An attacker keeping `size` connections open from `clients` addresses: opens up to
    `BURST` a step without waiting for their handshakes (more at once would only overflow
    the listen queue), trickles a byte of a request on each every second (so that no
    per-read timeout fires), and replaces those the server closes."""

    BURST = 40

    def __init__(self, address, size: int, clients: int):
        self.address, self.size, self.clients = address, size, clients
        self.socks: list[socket.socket] = []
        self.opened = 0
        self.trickled = 0.0

    def step(self) -> None:
        self.socks = [sock for sock in self.socks if not closed(sock) or sock.close()]
        for _ in range(min(self.BURST, self.size - len(self.socks))):
            sock = socket.socket()
            sock.setblocking(False)
            sock.bind((source(2 + self.opened % self.clients), 0))
            sock.connect_ex(self.address)
            self.socks.append(sock)
            self.opened += 1
        if time.monotonic() - self.trickled > 1:
            self.trickled = time.monotonic()
            for sock in self.socks:
                with contextlib.suppress(OSError):  # not connected yet, or shed
                    sock.send(b"G")

    def close(self) -> None:
        close_all(self.socks)


def test_the_agent_keeps_its_descriptors_under_a_flood():
    """An agent process limited to 256 descriptors serves results while an attacker keeps
    300 connections open to it (more than its limit) from 30 addresses, in bursts: the agent
    keeps running workers and saving its journal, the server holds at most its cap, and an
    honest client is answered throughout, without waiting on a dropped handshake."""
    agent = subprocess.Popen(
        [sys.executable, "-c", AGENT, KEY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    flood, latencies = None, []
    try:
        url, cap = agent.stdout.readline().split()
        assert url.startswith("http://127.0.0.1:") and int(cap) == 32, (url, cap)
        parts = urllib.parse.urlsplit(url)
        flood = Flood((parts.hostname, parts.port), 300, 30)
        agent.stdin.write("go\n")
        agent.stdin.flush()
        began = time.monotonic()
        while time.monotonic() - began < 8:
            flood.step()  # a burst of new connections, then at once an honest request
            asked = time.monotonic()
            assert fetch_result(url, JOB, {RESULT.digest()}) == RESULT
            latencies.append(time.monotonic() - asked)
            time.sleep(0.1)
        agent.stdin.write("stop\n")
        agent.stdin.flush()
        report = json.loads(agent.stdout.readline())
        honest = f"{min(latencies):.3f}-{max(latencies):.3f} s"
        print(f"opened {flood.opened}, {report}, honest {honest}")
        assert report["errors"] == [] and report["runs"] >= 3, report
        assert report["held"] <= int(cap), report
        assert report["peak"] < 128, report  # the server's quarter of 256, and its own
        # a full listen queue would drop the honest handshake: answered after 1 s or more
        assert statistics.median(latencies) < 0.5 and max(latencies) < 3, latencies
    finally:
        if flood is not None:
            flood.close()
        agent.kill()
        agent.wait()
