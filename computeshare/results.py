"""Results reach the client: the agent serves each run's output, the client checks it.

The chain holds only a run's digest (`RunResult.digest()`: status, fuel and the output's
hash). A provider's agent serves the whole result at `GET /results/0x<job id>` (JSON:
status, fuel, output as hex) from its journal; `fetch_result` asks an endpoint and accepts
the answer only if its digest is one the chain agreed on, so a tampered or stale output is
refused whoever serves it. When the spec named a public key (`encrypt_to`), the output is
served ECIES-encrypted to it (secp256k1, eciespy) and only that key's holder can read and
check it.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from computeshare import fetch
from computeshare.sandbox import MAX_OUTPUT_BYTES, RunResult

FETCH_SECONDS = 10
_PATH = re.compile(r"^/results/0x([0-9a-f]{64})$")


class ResultError(Exception):
    """No endpoint served a result that matches the chain."""


class ResultServer:
    """Serves the results a journal holds, on a loopback or public address of the operator's
    choosing, from a daemon thread. Read-only: GET on one path shape, nothing else."""

    def __init__(self, journal, host: str = "127.0.0.1", port: int = 0):
        self.journal = journal
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 5  # an idle or trickling client does not hold a thread

            def do_GET(self):
                match = _PATH.match(self.path)
                result = server.lookup("0x" + match.group(1)) if match else None
                body = json.dumps(result).encode() if result else b'{"error": "no such result"}'
                self.send_response(200 if result else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # no per-request lines in the agent's output
                pass

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def lookup(self, key: str) -> dict | None:
        """The result to serve, once it is public: after this replica revealed it (before
        that, another replica could copy it) or after the job settled."""
        live = self.journal.jobs.get(key)
        entry = live if live and live.get("revealed") else self.journal.done.get(key) or {}
        result = entry.get("result")
        if not isinstance(result, dict):
            return None
        served = {name: result[name] for name in ("status", "fuel", "output")}
        recipient = result.get("encrypt_to")
        if recipient:
            import ecies

            served["output"] = ecies.encrypt(recipient, bytes.fromhex(result["output"])).hex()
            served["encrypted"] = True
        return served

    def start(self) -> ResultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def agreed_results(settled: bytes | None, revealed: list[bytes], replicas: int) -> set[bytes]:
    """The digests a client may accept: once the job settled, its settled result only (none
    if it settled without one: no majority, or a ruling against the provider); before,
    a k = 1 job's revealed result (optimistic: it may still be disputed) or a result that a
    strict majority of a k > 1 job's replicas revealed."""
    if settled is not None:
        if not any(settled):
            raise ResultError("the job settled without an agreed result")
        return {bytes(settled)}
    if replicas == 1:
        agreed = set(revealed[:1])
    else:
        agreed = {d for d in set(revealed) if 2 * revealed.count(d) > replicas}
    if not agreed:
        raise ResultError("no result is agreed yet")
    return agreed


def fetch_result(
    endpoint: str, job_id: bytes, agreed: set[bytes], private_key: bytes | None = None
) -> RunResult:
    """The result `endpoint` serves for the job, if its digest is in `agreed`; an encrypted
    output is decrypted with `private_key` first."""
    url = f"{endpoint.rstrip('/')}/results/0x{bytes(job_id).hex()}"
    try:
        answer = json.loads(fetch.get(url, 4 * MAX_OUTPUT_BYTES + 1_024, FETCH_SECONDS))
        result = RunResult.from_json(answer)
        if not (0 <= result.status <= 3 and 0 <= result.fuel < 2**64):
            raise ValueError("status or fuel out of range")
    except (ValueError, KeyError, TypeError, AttributeError, ArithmeticError) as error:
        raise ResultError(f"{endpoint}: {str(error)[:80]}") from None
    if answer.get("encrypted"):
        if private_key is None:
            raise ResultError("the output is encrypted: give the key named in the spec")
        import ecies

        try:
            plain = ecies.decrypt(bytes(private_key), result.output)
        except ValueError:
            raise ResultError(f"{endpoint}: the output does not decrypt with this key") from None
        result = RunResult(result.status, result.fuel, plain)
    if result.digest() not in agreed:
        raise ResultError(f"{endpoint} served a result that does not match the chain")
    return result


def start_server(journal, address: str) -> ResultServer:
    """`HOST:PORT` -> a started server."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"{address!r} is not HOST:PORT")
    return ResultServer(journal, host, int(port)).start()
