"""Reads without ape: a deployment's manifest, event index and views over plain JSON-RPC.

`computeshare show ...` answers from the event index (`computeshare.index`), which asks a
node for little: the head's number, block headers, `eth_getLogs`, and for `show params`
one `eth_call` per parameter. Loading ape to ask it costs about 3 s before the first request
(its plugins and some 60 ecosystems parse `--network`); a `Reader` asks over HTTP with the
standard library, so a read costs the interpreter, the index's query and two requests.

A network is read this way when it names a node by URI (`http://127.0.0.1:8545`, manifest
`deployments/custom-<chain id>.json`) or is a network whose URI ape-config.yaml gives
(`node: ethereum: devnet: uri: ...`, manifest `deployments/devnet-<chain id>.json`). Any
other network (a fork ape starts, a provider plugin, a URI only ape's defaults know) is
read through ape as before: `resolve()` answers None for it.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from computeshare.manifest import Manifest, network_manifest_path
from computeshare.rpc import NodeTimeout, request_timeout

# An answer must be whole within this many request timeouts (the socket's timeout bounds
# each read, so a node trickling a byte at a time would otherwise hold a read forever) and at
# most this large (a node flooding an endless answer would otherwise fill the memory).
ANSWER_TIMEOUTS = 4
MAX_ANSWER_BYTES = 256 << 20

_QUANTITY = re.compile(r"^0x[0-9a-fA-F]{1,64}$")
_URI = re.compile(r"^https?://", re.IGNORECASE)
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ReadError(Exception):
    """A read the node cannot answer (a missing manifest is `ManifestError`)."""


class NodeError(ReadError):
    """The node answered a request with an error (`data`: the error's data, if it gave any,
    e.g. a revert's)."""

    data: Any = None


def _configured_uri(ecosystem: str, network: str, config: Path) -> str | None:
    """The URI ape-config.yaml gives `ecosystem:network` under `node:`, as written."""
    if not config.is_file():
        return None
    import yaml

    try:
        data = yaml.safe_load(config.read_text()) or {}
        uri = data["node"][ecosystem][network]["uri"]
    except (yaml.YAMLError, KeyError, TypeError):
        return None
    return uri if isinstance(uri, str) else None


def _named(network: str) -> tuple[str, str] | None:
    """(ecosystem, network) of `ecosystem:network` or `ecosystem:network:node`."""
    parts = network.strip().split(":")
    if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "node"):
        return None
    return (parts[0], parts[1]) if parts[0] and parts[1] else None


def unset_variable(network: str, config: Path | None = None) -> str | None:
    """What to do when `network`'s node URI in ape-config.yaml names an environment
    variable that is not set (ape would say "Invalid uri: ${...}"), else None."""
    named = _named(network)
    if named is None:
        return None
    config = config or Path("ape-config.yaml")
    uri = _configured_uri(*named, config)
    missing = [name for name in _VARIABLE.findall(uri or "") if not os.environ.get(name)]
    if not missing:
        return None
    return (
        f"{network} takes its node URI from ${missing[0]} ({config.name}: node: "
        f"{named[0]}: {named[1]}: uri: {uri}), which is not set: export "
        f"{missing[0]}=http://<host>:<port>, or pass --network http://<host>:<port>"
    )


def resolve(network: str, config: Path | None = None) -> tuple[str, str] | None:
    """(URI, the network's name in manifest file names) for a `--network` this module can
    read without ape, or None. `ethereum:devnet` and `ethereum:devnet:node` resolve through
    ape-config.yaml; forks and other providers do not."""
    network = network.strip()
    if _URI.match(network):
        return network, "custom"
    named = _named(network)
    if named is None or named[1].endswith("-fork") or named[1] == "local":
        return None
    uri = _configured_uri(*named, config or Path("ape-config.yaml"))
    if uri is None or any(not os.environ.get(v) for v in _VARIABLE.findall(uri)):
        return None  # unset variables: `unset_variable` says which
    uri = _VARIABLE.sub(lambda m: os.environ[m.group(1)], uri)
    return (uri, named[1]) if _URI.match(uri) else None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """The answer must come from the node named: a redirect is an error, never followed."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise NodeError(f"the node at {req.full_url} answered a redirect ({code}) to {newurl}")


_OPENER = urllib.request.build_opener(_NoRedirect)


class JsonRpc:
    """JSON-RPC 2.0 over HTTP, every request bounded by `timeout` seconds (by default
    COMPUTESHARE_RPC_TIMEOUT, as for ape's providers)."""

    def __init__(self, uri: str, timeout: float | None = None):
        self.uri = uri
        self.timeout = request_timeout() if timeout is None else timeout
        self._id = 0
        self.answered = 0  # requests the node answered (zero: it may not be there at all)
        self._web3 = None

    def _post(self, body: Any) -> Any:
        request = urllib.request.Request(
            self.uri,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "User-Agent": "computeshare"},
        )
        try:
            with _OPENER.open(request, timeout=self.timeout) as answer:
                body = self._body(answer, time.monotonic() + ANSWER_TIMEOUTS * self.timeout)
            self.answered += 1
            return json.loads(body)
        except TimeoutError:
            raise NodeTimeout(self.uri, self.timeout) from None
        except urllib.error.HTTPError as error:
            raise NodeError(f"the node at {self.uri} answered HTTP {error.code}") from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                raise NodeTimeout(self.uri, self.timeout) from None
            # ConnectionError: computeshare.rpc.node_trouble tells it is node trouble
            raise ConnectionError(f"the node at {self.uri}: {error.reason}") from None
        except json.JSONDecodeError:
            raise NodeError(f"the node at {self.uri} did not answer JSON") from None

    def _body(self, answer, deadline: float) -> bytes:
        """The answer's body, cut off past `MAX_ANSWER_BYTES` or `deadline`: the socket's
        timeout bounds each read, not the whole, and a node may trickle or flood."""
        parts, total = [], 0
        while chunk := answer.read1(1 << 16):
            total += len(chunk)
            if total > MAX_ANSWER_BYTES:
                raise NodeError(f"the node at {self.uri} answered over {MAX_ANSWER_BYTES:,} bytes")
            if time.monotonic() > deadline:
                raise NodeTimeout(self.uri, ANSWER_TIMEOUTS * self.timeout)
            parts.append(chunk)
        return b"".join(parts)

    def _message(self, method: str, params: list) -> dict:
        self._id += 1
        return {"jsonrpc": "2.0", "id": self._id, "method": method, "params": params}

    @staticmethod
    def _result(answer: Any, method: str) -> Any:
        if not isinstance(answer, dict):
            raise NodeError(f"{method}: the node answered {type(answer).__name__}, not an object")
        if "error" in answer:
            error = answer["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            failure = NodeError(f"{method}: {message}")
            failure.data = error.get("data") if isinstance(error, dict) else None
            raise failure
        return answer.get("result")

    def request(self, method: str, params: list | None = None) -> Any:
        """The result of one call; NodeError with the node's message when it failed."""
        return self._result(self._post(self._message(method, params or [])), method)

    def batch(self, calls: list[tuple[str, list]]) -> list[Any]:
        """The results of several calls in one HTTP request, in order."""
        if not calls:
            return []
        messages = [self._message(method, params) for method, params in calls]
        answers = self._post(messages)
        if not isinstance(answers, list) or len(answers) != len(messages):
            raise NodeError("the node answered a batch with a different number of results")
        by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
        return [self._result(by_id.get(m["id"]), m["method"]) for m in messages]

    def quantity(self, method: str, params: list | None = None) -> int:
        """A call whose result is a JSON-RPC quantity ("0x" and hex digits)."""
        found = self.request(method, params)
        if not isinstance(found, str) or not _QUANTITY.match(found):
            raise NodeError(f"{method}: the node answered {str(found)[:40]!r}, not a quantity")
        return int(found, 16)

    def chain_id(self) -> int:
        return self.quantity("eth_chainId")

    def block_number(self) -> int:
        return self.quantity("eth_blockNumber")

    # ------------------------------------------------ what the event index asks (its Node)

    def block(self, number: int) -> dict | None:
        return self.request("eth_getBlockByNumber", [hex(number), False])

    def blocks(self, numbers: list[int]) -> list[dict]:
        found = self.batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
        if not all(isinstance(block, dict) for block in found):
            raise NodeError("the node does not have every block it gave logs for")
        return found

    def logs(self, params: dict) -> list[dict]:
        found = self.request("eth_getLogs", [params])
        if not isinstance(found, list):
            raise NodeError(f"eth_getLogs answered {type(found).__name__}, not a list")
        return found

    def web3(self):
        """A web3 over the same node and timeout, made when first asked: the index reads
        views through it only for pages with staking events."""
        if self._web3 is None:
            from web3 import HTTPProvider, Web3

            self._web3 = Web3(HTTPProvider(self.uri, request_kwargs={"timeout": self.timeout}))
        return self._web3

    def call(self, to: str, data: bytes) -> bytes:
        """`eth_call` at the latest block."""
        result = self.request("eth_call", [{"to": to, "data": "0x" + data.hex()}, "latest"])
        return bytes.fromhex(str(result).removeprefix("0x"))


def _selector(signature: str) -> bytes:
    from Crypto.Hash import keccak

    return keccak.new(digest_bits=256, data=signature.encode()).digest()[:4]


class Reader:
    """One deployment read over JSON-RPC: its manifest, its event index and its views."""

    def __init__(self, uri: str, network_name: str, timeout: float | None = None):
        self.rpc = JsonRpc(uri, timeout)
        self.network_name = network_name
        self._chain_id: int | None = None

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = self.rpc.chain_id()
        return self._chain_id

    def now(self) -> int:
        """The latest block's timestamp."""
        block = self.rpc.request("eth_getBlockByNumber", ["latest", False])
        found = block.get("timestamp") if isinstance(block, dict) else None
        if not isinstance(found, str) or not _QUANTITY.match(found):
            raise NodeError(f"the latest block's timestamp is {str(found)[:40]!r}, not a quantity")
        return int(found, 16)

    def manifest(self, path: Path | None = None) -> Manifest:
        """The deployment's manifest: `path`, or the network's in deployments/, checked
        (`Manifest.deployment`: there, complete, and for this chain)."""
        if path is None:
            path = network_manifest_path(self.network_name, self.chain_id)
        return Manifest.deployment(path, self.chain_id)

    def parameter(self, manifest: Manifest, contract: str, key: int) -> int | None:
        """`contract.parameter(key)`, or None if the deployment has no such contract."""
        if not manifest.has(contract):
            return None
        data = _selector("parameter(uint256)") + key.to_bytes(32, "big")
        answer = self.rpc.call(manifest.address(contract), data)
        if len(answer) != 32:
            raise NodeError(f"{contract}.parameter({key}) answered {len(answer)} bytes")
        return int.from_bytes(answer, "big")
