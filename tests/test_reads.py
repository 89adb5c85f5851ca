"""Reads without ape: `computeshare show ...` by URI over plain JSON-RPC (computeshare.reader).

The answers must be those the SDK gives through ape, the process must never import ape, and a
node that answers nonsense gets one line, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from computeshare.cli import main
from computeshare.client import ComputeShare
from computeshare.reader import JsonRpc, NodeError, resolve
from computeshare.rpc import NodeTimeout

ROOT = Path(__file__).parent.parent

PROBE = """
import json, sys
from computeshare.cli import main
try:
    main(sys.argv[1:], standalone_mode=False)
finally:
    # ape's plugins (ape_ethereum, ape_foundry, ...) and its network manager, and web3
    heavy = ("ape_", "ape.managers", "web3")
    loaded = sorted(m for m in sys.modules if m.startswith(heavy))
    print(json.dumps({"heavy": loaded[:5]}), file=sys.stderr)
"""


def probe(*args: str, env: dict | None = None) -> tuple[int, str, dict]:
    """Runs the command in a process of its own: (exit code, stdout, what it imported)."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
    )
    last = done.stderr.strip().splitlines()[-1]
    return done.returncode, done.stdout, json.loads(last)


@pytest.mark.parametrize("command", ["jobs", "devices", "pools", "proposals", "params"])
def test_a_show_command_by_uri_never_loads_ape(deployed_manifest, chain, command):
    """Nor web3: a page with staking events reads the pools' views through web3, so the
    index is brought up to the head first; a read that finds nothing new loads neither."""
    where = ("--network", chain.provider.uri, "--manifest", deployed_manifest)
    assert probe("show", "jobs", *where)[0] == 0
    code, out, seen = probe("show", command, "--json", *where)
    assert code == 0, out
    assert "rows" in json.loads(out)
    assert seen["heavy"] == [], seen


def test_parameters_read_over_json_rpc_are_the_sdks(deployed_manifest, chain):
    runner = CliRunner()
    where = ["--network", chain.provider.uri, "--manifest", str(deployed_manifest)]
    result = runner.invoke(main, ["show", "params", "--json", *where], catch_exceptions=False)
    rows = json.loads(result.output)["rows"]
    sdk = ComputeShare.from_manifest(deployed_manifest).parameters()
    assert [r["raw"] for r in rows] == [p["value"] for p in sdk]
    assert [r["parameter"] for r in rows] == [f"{p['contract']}.{p['name']}" for p in sdk]
    assert len(rows) == 23


def test_networks_resolve_by_uri_or_configured_node(tmp_path, monkeypatch):
    config = tmp_path / "ape-config.yaml"
    config.write_text("node:\n  ethereum:\n    devnet:\n      uri: ${SOME_NODE_URI}\n")
    assert resolve("http://127.0.0.1:8545") == ("http://127.0.0.1:8545", "custom")
    assert resolve("ethereum:devnet", config) is None  # its variable is unset: ape says so
    monkeypatch.setenv("SOME_NODE_URI", "http://10.0.0.1:8545")
    assert resolve("ethereum:devnet", config) == ("http://10.0.0.1:8545", "devnet")
    assert resolve("ethereum:devnet:node", config) == ("http://10.0.0.1:8545", "devnet")
    # ape's own providers, forks and unknown networks are read through ape
    for network in ("ethereum:devnet:foundry", "ethereum:devnet-fork", "ethereum:local", "x"):
        assert resolve(network, config) is None, network


def test_an_unset_node_variable_is_named(deployed_manifest):
    """`--network ethereum:devnet` without COMPUTESHARE_DEVNET_URI: one line naming it."""
    env = {k: v for k, v in os.environ.items() if k != "COMPUTESHARE_DEVNET_URI"}
    for args in (("show", "jobs"), ("token", "balance", "0x" + "11" * 20)):
        done = subprocess.run(
            [Path(sys.executable).with_name("computeshare"), *args, "--network", "ethereum:devnet"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
            env=env,
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode != 0 and len(lines) == 1, done.stderr
        assert "COMPUTESHARE_DEVNET_URI" in lines[0] and "not set" in lines[0], lines[0]


class Hostile(BaseHTTPRequestHandler):
    """A node whose every answer is wrong in its own way, chosen by the request's method."""

    answers: ClassVar[dict[str, bytes]] = {
        "eth_chainId": b"this is not json",
        "eth_blockNumber": b'{"jsonrpc": "2.0", "id": 1, "error": {"code": -1, "message": "no"}}',
        "eth_call": b"[1, 2, 3]",
        "eth_getBlockByNumber": b'"a string"',
    }

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        method = body[0]["method"] if isinstance(body, list) else body["method"]
        answer = self.answers.get(method, b"{}")
        if isinstance(body, list):
            answer = b'[{"jsonrpc": "2.0", "id": 999, "result": "0x1"}]'
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


@pytest.fixture
def hostile():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_node_answering_nonsense_gets_one_line(hostile):
    rpc = JsonRpc(hostile, timeout=5)
    for method, reason in (
        ("eth_chainId", "did not answer JSON"),
        ("eth_blockNumber", "eth_blockNumber: no"),
        ("eth_call", "not an object"),
    ):
        with pytest.raises(NodeError, match=reason):
            rpc.request(method, [])
    with pytest.raises(NodeError, match="different number"):
        rpc.batch([("eth_blockNumber", []), ("eth_blockNumber", [])])
    with pytest.raises(NodeError, match="not an object"):
        rpc.batch([("eth_blockNumber", [])])  # one answer, under the wrong id
    for command in ("jobs", "params"):
        done = subprocess.run(
            [Path(sys.executable).with_name("computeshare"), "show", command],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
            env={**os.environ, "COMPUTESHARE_NETWORK": hostile},
        )
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1, done.stderr
        assert "Traceback" not in done.stderr and "did not answer JSON" in lines[0], lines[0]


def test_a_read_through_ape_then_by_uri_in_one_process(deployed_manifest, chain):
    """ape adds its own --network to a command object it parses; the next read by URI in
    the same process (a script, a test runner) must still read without ape."""
    runner = CliRunner()
    where = ["--manifest", str(deployed_manifest)]
    through_ape = runner.invoke(main, ["show", "jobs", *where, "--network", "ethereum:nonsense"])
    assert through_ape.exit_code != 0 and "nonsense" in through_ape.output
    result = runner.invoke(
        main, ["show", "jobs", "--json", *where, "--network", chain.provider.uri]
    )
    assert result.exit_code == 0, result.output
    assert "rows" in json.loads(result.output)


def test_a_plain_table_is_laid_out_as_rich_lays_it_out():
    """Off a terminal, tables are written without loading rich; the layout is the one rich
    gives a boxless table (first column left, the rest right), cell for cell."""
    import io
    import random
    import string

    from rich.console import Console
    from rich.table import Table

    from computeshare.cli.output import _plain_table

    def rich_plain(rows, columns):
        grid = Table(box=None, show_edge=False, pad_edge=False, header_style="")
        for index, column in enumerate(columns):
            grid.add_column(column, justify="left" if index == 0 else "right", no_wrap=True)
        for row in rows:
            grid.add_row(*(str(row.get(column, "")) for column in columns))
        console = Console(
            file=io.StringIO(), width=100_000, no_color=True, markup=False, emoji=False
        )
        with console.capture() as captured:
            console.print(grid)
        return "\n".join(line.rstrip() for line in captured.get().splitlines()).rstrip("\n")

    rng = random.Random(7)
    text = string.ascii_letters + string.digits + " ,.-:%"
    for _ in range(300):
        columns = [
            "".join(rng.choices(text, k=rng.randint(1, 12))) for _ in range(rng.randint(1, 6))
        ]
        rows = [
            {c: "".join(rng.choices(text, k=rng.randint(0, 15))) for c in columns}
            for _ in range(rng.randint(0, 5))
        ]
        assert _plain_table(rows, columns) == rich_plain(rows, columns), (rows, columns)


class Endless(BaseHTTPRequestHandler):
    """A node whose answer never ends: a trickle (a byte at a time, each well within the
    socket timeout) or a flood (megabytes a second, forever)."""

    protocol_version = "HTTP/1.0"

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.end_headers()
        piece, pause = (b" ", 0.2) if self.path == "/trickle" else (b" " * (1 << 20), 0)
        try:
            while True:
                self.wfile.write(piece)
                self.wfile.flush()
                time.sleep(pause)
        except OSError:  # the reader gave up
            pass

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("path", ["/trickle", "/flood"])
def test_an_answer_that_never_ends_is_cut_off(path):
    """A socket timeout bounds each read, not the answer: a node trickling a byte within
    each timeout, or flooding, would hold a read (and fill memory) forever."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Endless)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rpc = JsonRpc(f"http://127.0.0.1:{server.server_address[1]}{path}", timeout=1)
        began = time.monotonic()
        with pytest.raises((NodeError, NodeTimeout)):
            rpc.request("eth_blockNumber")
        assert time.monotonic() - began < 30
    finally:
        server.shutdown()


class Redirecting(BaseHTTPRequestHandler):
    """A node that sends every request elsewhere."""

    def do_POST(self):
        self.send_response(302)
        self.send_header("Location", "http://127.0.0.1:1/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_redirect_from_the_node_is_refused():
    """The answer must come from the node the command names, not from where it points."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rpc = JsonRpc(f"http://127.0.0.1:{server.server_address[1]}", timeout=2)
        with pytest.raises(NodeError, match="redirect"):
            rpc.request("eth_blockNumber")
    finally:
        server.shutdown()


class OddNumbers(BaseHTTPRequestHandler):
    """A node whose quantities are not hex strings: a JSON number, text, a negative."""

    answers: ClassVar[dict[str, str]] = {"/number": "5", "/text": '"zz"', "/negative": '"-0x1"'}

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = f'{{"jsonrpc": "2.0", "id": 1, "result": {self.answers[self.path]}}}'.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("path", ["/number", "/text", "/negative"])
def test_a_quantity_that_is_not_hex_is_the_nodes_error(path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), OddNumbers)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rpc = JsonRpc(f"http://127.0.0.1:{server.server_address[1]}{path}", timeout=2)
        for ask in (rpc.chain_id, rpc.block_number):
            with pytest.raises(NodeError, match="not a quantity"):
                ask()
    finally:
        server.shutdown()
