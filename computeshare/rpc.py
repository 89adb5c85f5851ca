"""Node trouble: a bounded wait on every RPC request, and a backoff while the node fails.

ape's node provider talks to a URI through web3's `HTTPProvider` with a 30-minute request
timeout, which web3 retries five times and its `AutoProvider` once more: a node that accepts
connections and never answers (a hung process, a SIGSTOPped anvil) holds a command for
hours. `bounded()` makes every request of a provider it connects wait at most
`request_timeout()` seconds (COMPUTESHARE_RPC_TIMEOUT, default 5), retried only when the
node refused the connection, never when it did not answer. ape-foundry's own provider takes
`foundry: request_timeout:` in ape-config.yaml; `bound()` sets it on a connected one too.

`Backoff` is what a long-running loop (the provider agent, the dashboard's follower) keeps:
the wait doubles from 1 s up to 60 s while the node fails, and one line is logged when it
goes ("node unreachable: ..., retrying with backoff") and one when it is back ("node back
after N s"), never one per failed request.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable

TIMEOUT_VARIABLE = "COMPUTESHARE_RPC_TIMEOUT"
DEFAULT_TIMEOUT = 5.0
# A refused connection (the node restarting) is retried this often, quickly; a request the
# node accepted and did not answer is never retried: it already took the whole timeout.
REFUSED_RETRIES = 3


def request_timeout() -> float:
    """Seconds an RPC request may take: COMPUTESHARE_RPC_TIMEOUT, or 5."""
    text = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value <= 3600:
        raise ValueError(f"{TIMEOUT_VARIABLE}={text!r}: give seconds between 0 and 3600")
    return value


def _http_provider(uri: str, headers: dict, timeout: float):
    """web3's HTTPProvider waiting `timeout` seconds per request: a refused connection is
    retried REFUSED_RETRIES times within a second, a timeout raises `NodeTimeout` at once."""
    import requests
    from web3 import HTTPProvider

    provider = HTTPProvider(
        endpoint_uri=uri,
        request_kwargs={"headers": headers, "timeout": timeout},
        exception_retry_configuration=None,
    )
    post = provider._make_request

    def make_request(method, data):
        for attempt in range(REFUSED_RETRIES + 1):
            try:
                return post(method, data)
            except requests.exceptions.Timeout as error:  # ConnectTimeout included
                raise NodeTimeout(uri, timeout) from error
            except requests.exceptions.ConnectionError:
                if attempt == REFUSED_RETRIES:
                    raise
                time.sleep(0.1 * 2**attempt)
        raise AssertionError("unreachable")

    provider._make_request = make_request
    return provider


class NodeTimeout(OSError):
    """The node accepted a request and did not answer it in time."""

    def __init__(self, uri: str, timeout: float):
        super().__init__(
            f"the node at {uri} did not answer within {timeout:g} s "
            f"({TIMEOUT_VARIABLE} sets the wait)"
        )
        self.uri, self.timeout = uri, timeout


def bound(provider, timeout: float | None = None) -> None:
    """Gives a connected (or connecting) provider's HTTP requests `timeout` seconds each."""
    from web3 import HTTPProvider
    from web3.providers.auto import AutoProvider

    timeout = request_timeout() if timeout is None else timeout
    web3 = getattr(provider, "_web3", None)
    if web3 is None:
        return
    inner = web3.provider
    uri = getattr(provider, "http_uri", None) or getattr(provider, "uri", None)
    if isinstance(inner, AutoProvider | HTTPProvider) and uri and str(uri).startswith("http"):
        headers = (
            inner._request_kwargs.get("headers")
            if isinstance(inner, HTTPProvider) and inner._request_kwargs
            else None
        ) or HTTPProvider.get_request_headers()
        web3.provider = _http_provider(str(uri), headers, timeout)
    settings = getattr(provider, "settings", None)
    if settings is not None and hasattr(settings, "request_timeout"):
        with contextlib.suppress(Exception):  # a frozen settings model: its web3 is bounded
            settings.request_timeout = max(1, round(timeout))


@contextlib.contextmanager
def bounded(timeout: float | None = None):
    """While it is open, every node provider ape connects has bounded requests (from its
    first, the connection check, on)."""
    from ape_ethereum.provider import EthereumNodeProvider

    timeout = request_timeout() if timeout is None else timeout
    original = EthereumNodeProvider._set_web3

    def _set_web3(self):
        original(self)
        bound(self, timeout)

    EthereumNodeProvider._set_web3 = _set_web3
    try:
        yield timeout
    finally:
        EthereumNodeProvider._set_web3 = original


def node_trouble(error: BaseException) -> bool:
    """Whether `error` says the node is unreachable or hung (not that a call failed)."""
    from ape.exceptions import ProviderNotConnectedError

    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, NodeTimeout | ProviderNotConnectedError | ConnectionError):
            return True
        with contextlib.suppress(ImportError):
            import requests

            if isinstance(error, requests.exceptions.ConnectionError | requests.Timeout):
                return True
        text = str(error)
        if "No (supported) node found" in text or "Max retries exceeded" in text:
            return True
        error = error.__cause__ or error.__context__
    return False


def first_line(error: BaseException) -> str:
    if isinstance(error, NodeTimeout):
        return str(error)
    text = str(error).strip()
    if "Max retries exceeded" in text or "Connection refused" in text:
        return "connection refused"
    return (text.splitlines() or [type(error).__name__])[0]


class Backoff:
    """The wait of a loop whose node may fail: `failed()` after a step the node failed,
    `succeeded()` after one it answered; `delay` is how long to wait before the next step."""

    def __init__(
        self,
        log: Callable[[str], None],
        *,
        first: float = 1.0,
        cap: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.log, self.first, self.cap, self.clock = log, first, cap, clock
        self.failures = 0
        self.down_since: float | None = None

    @property
    def down(self) -> bool:
        return self.down_since is not None

    @property
    def delay(self) -> float:
        """Seconds until the next attempt: 0 while the node answers, else 1, 2, 4 ... 60."""
        if not self.failures:
            return 0.0
        return min(self.cap, self.first * 2 ** (self.failures - 1))

    def failed(self, error: BaseException) -> None:
        if self.down_since is None:
            self.down_since = self.clock()
            self.log(
                f"node unreachable: {first_line(error)}; retrying with backoff "
                f"({self.first:g} s doubling to {self.cap:g} s)"
            )
        self.failures += 1

    def succeeded(self) -> None:
        if self.down_since is not None:
            self.log(f"node back after {self.clock() - self.down_since:.0f} s")
        self.down_since, self.failures = None, 0
