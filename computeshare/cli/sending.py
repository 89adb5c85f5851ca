"""Sending and what can go wrong: `send` (a transaction with gas headroom and a progress
line), `step` (the transient progress line) and `sleep`, `connect` (the client that says its
steps and sends so), `require`, and one-line errors for every known failure (`friendly`,
`node_message`, `ape_message`, `quiet_ape`).

Nothing here loads ape, web3 or the agent at import time: each group's `--help` stays
fast.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sys
import time
from pathlib import Path

import click

from computeshare.cli.output import OUTPUT, _terminal
from computeshare.format import tokens as show


class _Progress:
    """One transient status line on stderr, only when stderr is a terminal. Steps nest: an
    inner step replaces the text until it ends; a step without text hides the line."""

    def __init__(self):
        self.live = None
        self.texts: list[str | None] = []

    @staticmethod
    def _render(text: str | None):
        from rich.spinner import Spinner
        from rich.text import Text

        return Spinner("dots", text) if text else Text("")

    @contextlib.contextmanager
    def step(self, text: str | None):
        if not _terminal(sys.stderr):
            yield
            return
        from rich.console import Console
        from rich.live import Live

        self.texts.append(text)
        started = self.live is None
        if started:
            self.live = Live(
                self._render(text),
                console=Console(stderr=True),
                transient=True,
                refresh_per_second=12.5,
                redirect_stdout=_terminal(sys.stdout),
                redirect_stderr=True,
            )
            self.live.start()
        else:
            self.live.update(self._render(text), refresh=True)
        try:
            yield
        finally:
            self.texts.pop()
            if started:
                self.live.stop()
                self.live = None
            else:
                self.live.update(self._render(self.texts[-1]), refresh=True)

    @contextlib.contextmanager
    def paused(self):
        """No status line while a prompt waits for the user."""
        if self.live is None:
            yield
            return
        self.live.stop()
        try:
            yield
        finally:
            self.live.start()


_progress = _Progress()
step = _progress.step


GAS_HEADROOM, GAS_EXTRA = 1.5, 50_000  # as the agent's


def send(what: str, method, *args, **kwargs):
    """Sends a transaction with a progress line while it waits for its receipt. A contract
    method is sent with gas headroom over its estimate: the estimate runs against the
    latest block, and a transfer by a holder with delegated votes writes a new vote
    checkpoint when its block's timestamp is later, which costs more.

    An account of ape's keystore signing without ape (`computeshare.sender`) is unlocked
    first, its passphrase prompt (if any) shown without the progress line."""
    owner = kwargs.get("sender") or getattr(getattr(method, "__self__", None), "account", None)
    if hasattr(owner, "load_key"):
        with _progress.paused():
            owner.load_key()
    with step(f"{what}: waiting for the transaction"):
        if "gas" not in kwargs and hasattr(method, "estimate_gas_cost"):
            estimate = method.estimate_gas_cost(*args, sender=kwargs["sender"])
            kwargs["gas"] = int(estimate * GAS_HEADROOM) + GAS_EXTRA
        from computeshare.onchain import send as send_within_the_fee_cap

        return send_within_the_fee_cap(method, *args, **kwargs)


# ---------------------------------------------------------------- errors


def _known_errors() -> tuple[type[BaseException], ...]:
    """The project's own error classes, from the modules already loaded (an error class
    whose module was never imported cannot have been raised)."""
    names = {
        "computeshare.agent": "AgentError",
        "computeshare.exceptions": "ComputeShareError",
        "computeshare.deploy": "DeployError",
        "computeshare.index": "IndexFailure",
        "computeshare.reader": "ReadError",  # and sender's SendError: a fee over the cap
        "computeshare.results": "ResultError",
        "computeshare.workloads": "WorkloadError",
    }
    found = [getattr(sys.modules[m], n) for m, n in names.items() if m in sys.modules]
    return (*found, ValueError, LookupError, OSError)


_NO_NODE = re.compile(r"No \(supported\) node found on '([^']+)'")
_NO_URI = re.compile(r"Missing URI for network '([^']+)' on '([^']+)'")


def ape_message(error: Exception) -> str:
    """An ape error as one line, with what to do where it is a set-up problem."""
    text = str(error).strip()
    if match := _NO_NODE.search(text):
        from computeshare.rpc import request_timeout

        return (
            f"no node answers at {match[1]} (waited up to {request_timeout():g} s): start one "
            "there (e.g. `anvil`) or pass the --network of the node that has your deployment"
        )
    if match := _NO_URI.search(text):
        return (
            f"no RPC URI configured for {match[2]}:{match[1]}: set `node: {match[2]}: "
            f"{match[1]}: uri:` in ape-config.yaml, or pass --network https://<your RPC>"
        )
    return text.splitlines()[0] if text else type(error).__name__


def friendly(func):
    """Turns known failures into one-line messages instead of tracebacks."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from ape.exceptions import ApeException, ContractLogicError

        try:
            with step(None):  # the connection is made: the command shows its own steps
                value = func(*args, **kwargs)
            OUTPUT.flush()
            return value
        except ContractLogicError as error:
            raise click.ClickException(f"reverted: {error.message}") from None
        except click.ClickException:
            raise
        except _known_errors() as error:
            raise click.ClickException(node_message(error) or str(error)) from None
        except ApeException as error:
            raise click.ClickException(node_message(error) or ape_message(error)) from None

    return wrapper


def node_message(error: BaseException) -> str | None:
    """A hung or unreachable node's error as one line, or None for any other error."""
    from computeshare.rpc import first_line, node_trouble

    if not node_trouble(error):
        return None
    if _NO_NODE.search(str(error)):
        return ape_message(error)
    return f"node trouble: {first_line(error)}"


@contextlib.contextmanager
def quiet_ape():
    """While a command runs: no call trace on a revert (ape prints one to the process's
    stdout before raising; the error is shown as its reason instead), no per-transaction
    INFO lines (commands say what they did) and no retry warnings (a failure is one line)."""
    from ape.logging import logger
    from ape_ethereum.trace import Trace

    show, level = Trace.show, logger.level
    Trace.show = lambda self, *args, **kwargs: None
    logger.set_level("ERROR")
    try:
        yield
    finally:
        Trace.show = show
        logger.set_level(level)


def connect(manifest: Path | None, account=None):
    """The deployment on the connected chain, as a `ComputeShare` client that says its
    steps (approvals, deposits) and sends with a progress line. A command running without
    ape (`computeshare.cli.read`) gets the same client over JSON-RPC
    (`computeshare.sender.PlainChain`): the same checks, contracts and calls."""
    from computeshare.cli.read import light_reader
    from computeshare.client import ComputeShare

    if (reader := light_reader()) is not None:
        from computeshare.sender import PlainChain, Transactor

        chain = PlainChain(Transactor(reader.rpc, reader.chain_id))
        cs = ComputeShare(reader.manifest(manifest), account, chain=chain)
    elif manifest is not None:
        _unlock_from_environment(account)
        cs = ComputeShare.from_manifest(manifest, account)
    else:
        _unlock_from_environment(account)
        cs = ComputeShare.connected(account)
    # Steps said on stdout (stderr under --json), sent with a progress line.
    cs.say = (lambda text: click.echo(text, err=True)) if OUTPUT.json else click.echo
    cs.transact = send
    return cs


def _unlock_from_environment(account) -> None:
    """An account of ape's keystore signs without prompts when `APE_ACCOUNTS_<alias>_PASSPHRASE`
    is set (ape's own convention for `unlock`), as it does on the path without ape; a wrong
    passphrase ends the command ("Invalid password")."""
    import os

    alias = getattr(account, "alias", None)
    keystore = alias and hasattr(account, "set_autosign")
    if keystore and os.environ.get(f"APE_ACCOUNTS_{alias}_PASSPHRASE"):
        account.set_autosign(True)


def require(have: int, need: int, what: str) -> None:
    """Stops with `<what> is <have> tokens` when `have` < `need`: nothing is sent."""
    if have < need:
        raise click.ClickException(f"{what} is {show(have)} tokens")


def sleep(seconds: float, text: str) -> None:
    with step(text):
        time.sleep(seconds)
