"""Results between agent and client: what is served, when, and what a client accepts. Every
server here is a real HTTP server on loopback."""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time

import pytest

from computeshare import fetch
from computeshare.agent import Journal
from computeshare.results import ResultError, ResultServer, agreed_results, fetch_result
from computeshare.sandbox import RunResult

JOB = bytes(range(32))
KEY = "0x" + JOB.hex()
RESULT = RunResult(0, 1_234, b"the output")


@pytest.fixture
def hostile_server():
    """Answers each path with a handler from `routes`: {path: callable(handler)}."""
    routes: dict = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            routes[self.path](self)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield routes, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def reply(body: bytes, status: int = 200, headers: dict | None = None):
    def answer(handler):
        handler.send_response(status)
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(body)

    return answer


def json_result(**fields) -> bytes:
    return json.dumps({**RESULT.to_json(), **fields}).encode()


def test_the_agreed_result_is_the_settled_one_or_a_strict_majority():
    a, b = b"\x0a" * 32, b"\x0b" * 32
    assert agreed_results(a, [a, b, b], 3) == {a}, "settled: only the settled result"
    with pytest.raises(ResultError, match="settled without an agreed result"):
        agreed_results(b"\x00" * 32, [a], 1)  # e.g. ruled for the client
    assert agreed_results(None, [a], 1) == {a}
    assert agreed_results(None, [a, b, b], 3) == {b}
    with pytest.raises(ResultError, match="no result is agreed yet"):
        agreed_results(None, [a, b], 3)  # one vote each of three: no majority
    with pytest.raises(ResultError, match="no result is agreed yet"):
        agreed_results(None, [a, b], 2)


@pytest.mark.parametrize(
    "body",
    [
        json_result(status=-1),
        json_result(status=7),
        json_result(fuel=2**256),
        json_result(fuel=-1),
        b'{"status": 0, "fuel": Infinity, "output": ""}',
        b'{"status": 1e308, "fuel": 1, "output": ""}',
        json_result(output="zz"),
        b"[]",
        b"not json",
        b"x" * 300_000,
    ],
    ids=[
        "negative-status",
        "unknown-status",
        "huge-fuel",
        "negative-fuel",
        "infinity",
        "float-status",
        "bad-hex",
        "not-an-object",
        "not-json",
        "too-large",
    ],
)
def test_a_malformed_answer_is_refused_with_a_reason(hostile_server, body):
    routes, base = hostile_server
    routes[f"/results/{KEY}"] = reply(body)
    with pytest.raises(ResultError):
        fetch_result(base, JOB, {RESULT.digest()})


def test_a_tampered_answer_is_refused_and_the_honest_one_taken(hostile_server):
    routes, base = hostile_server
    routes[f"/results/{KEY}"] = reply(json_result(output=b"forged".hex()))
    with pytest.raises(ResultError, match="does not match the chain"):
        fetch_result(base, JOB, {RESULT.digest()})
    routes[f"/results/{KEY}"] = reply(json_result())
    assert fetch_result(base, JOB, {RESULT.digest()}) == RESULT


def test_a_trickling_server_is_cut_off_at_the_deadline(hostile_server):
    routes, base = hostile_server

    def trickle(handler):
        handler.send_response(200)
        handler.end_headers()
        for _ in range(40):
            handler.wfile.write(b" ")
            handler.wfile.flush()
            time.sleep(0.1)

    routes["/slow"] = trickle
    began = time.monotonic()
    with pytest.raises(fetch.FetchError, match="longer than 1 s"):
        fetch.get(f"{base}/slow", 1_000, 1)
    assert time.monotonic() - began < 2.5


def test_a_redirect_is_not_followed(hostile_server):
    routes, base = hostile_server
    routes["/module"] = reply(b"", 302, {"Location": "ftp://127.0.0.1/module"})
    with pytest.raises(fetch.FetchError, match="redirected"):
        fetch.get(f"{base}/module", 1_000, 5)
    with pytest.raises(fetch.FetchError, match="not an http"):
        fetch.get("file:///etc/passwd", 1_000, 5)


def test_a_result_is_served_only_once_revealed_or_settled(tmp_path):
    journal = Journal(tmp_path / "journal.json")
    journal.jobs[KEY] = {"result": RESULT.to_json()}
    server = ResultServer(journal).start()
    try:
        with pytest.raises(ResultError, match="404"):
            fetch_result(server.url, JOB, {RESULT.digest()})  # committed, not yet revealed
        journal.jobs[KEY]["revealed"] = True
        assert fetch_result(server.url, JOB, {RESULT.digest()}) == RESULT
        journal.done[KEY] = journal.jobs.pop(KEY)
        assert fetch_result(server.url, JOB, {RESULT.digest()}) == RESULT
    finally:
        server.stop()


def test_an_idle_connection_does_not_hold_the_result_server(tmp_path):
    server = ResultServer(Journal(tmp_path / "journal.json")).start()
    try:
        idle = socket.create_connection(server.address)
        idle.sendall(b"GET /results/")  # and never finishes the request
        idle.settimeout(10)
        began = time.monotonic()
        assert idle.recv(1_024) == b"", "the server closes it"
        assert time.monotonic() - began < 8
    finally:
        server.stop()
