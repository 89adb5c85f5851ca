"""Commands that read, or send, without loading ape when they can.

`read_command(group, name)` is `command(group, name, signer=False)` for a command that only
reads; `send_command(group, name)` is `command(group, name)` for one that sends. When its
`--network` names a node by URI, or a network whose node URI ape-config.yaml gives, the
command runs over plain JSON-RPC (`computeshare.reader`, `computeshare.sender`): ape's
plugins and network machinery, some 3 s of start-up, are never loaded. Any other network is
connected through ape exactly as every other command is. A read's body asks
`Deployment(manifest)` for what it reads; a send's body asks `connect(manifest, account)`
for the deployment and `send` for each transaction, the same either way: without ape,
`--account` is resolved by `computeshare.accounts.load_account` (ape's keystore and test
accounts) and `connect` answers a `ComputeShare` over `computeshare.sender.PlainChain`.
"""

from __future__ import annotations

import contextvars
import functools
import os
from pathlib import Path

import click

from computeshare.cli.options import (
    ACCOUNT_HELP,
    NO_ACCOUNT,
    ChainCommand,
    _from_environment,
    account_option,
    check_network,
    manifest_option,
    network_argument,
)
from computeshare.cli.output import OUTPUT, json_option
from computeshare.cli.sending import _known_errors, ape_message, friendly, node_message, step
from computeshare.reader import Reader, ReadError, resolve
from computeshare.rpc import NodeTimeout

_READER: contextvars.ContextVar[Reader | None] = contextvars.ContextVar("reader", default=None)


# Set (to anything but 0): every command goes through ape, even where it could go without
# (to compare the two ways, or to step around a node that plain JSON-RPC does not suit).
THROUGH_APE = "COMPUTESHARE_THROUGH_APE"

_LIGHT = "computeshare.light"  # ctx.meta key: (URI, network name) of a read without ape
# What stands for ape's --network (and its --provider-settings) in a read without ape.
_PLAIN_NETWORK = click.Option(["--network"], expose_value=False, help="the node's URI")


def light_reader() -> Reader | None:
    """The command's `Reader` when it runs without ape, else None."""
    return _READER.get()


def _plain_account(ctx: click.Context, param: click.Parameter, value: str | None):
    """ape's `--account` without ape: the same accounts, the same words when it names none."""
    from computeshare.accounts import AccountError, UnknownAccount, load_account

    if value is None:
        if ctx.resilient_parsing or not param.required_account:
            return None
        raise click.UsageError(NO_ACCOUNT, ctx)
    try:
        return load_account(value)
    except (UnknownAccount, AccountError) as error:
        raise click.BadParameter(str(error), ctx, param) from None


def _plain_account_option(required: bool) -> click.Option:
    """What stands for ape's --account in a command that sends (or reads) without ape."""
    option = click.Option(
        ["--account"], callback=_plain_account, metavar="ALIAS", help=ACCOUNT_HELP
    )
    option.required_account = required  # checked by the callback, as ape's option does
    return option


_PLAIN_ACCOUNT, _PLAIN_OPTIONAL_ACCOUNT = _plain_account_option(True), _plain_account_option(False)


class ReadCommand(ChainCommand):
    """A `ChainCommand` that reads (and sends) over JSON-RPC, without ape, when its network
    allows. The choice is made per invocation (`ctx.meta`): a command object that once
    parsed through ape (which adds its own network options to it) still runs without ape
    next. Without ape, its `--account` (if it takes one) is `_PLAIN_ACCOUNT`."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        if ctx.meta.get(_LIGHT) is None:
            return params
        ape_options = ("network", "provider_settings")
        plain = [_PLAIN_NETWORK]
        for param in params:
            if param.name == "account":
                required = getattr(param, "required_account", True)
                plain.append(_PLAIN_ACCOUNT if required else _PLAIN_OPTIONAL_ACCOUNT)
        return [p for p in params if p.name not in (*ape_options, "account")] + plain

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = [*_from_environment(self, args), *args]
        check_network(ctx, args)
        network = network_argument(args)
        light = None
        through_ape = os.environ.get(THROUGH_APE, "0").strip() not in ("", "0")
        if network is not None and "--help" not in args and not ctx.resilient_parsing:
            light = None if through_ape else resolve(network)
        if light is None:
            return super().parse_args(ctx, args)
        ctx.meta[_LIGHT] = light
        return click.Command.parse_args(self, ctx, args)

    def invoke(self, ctx: click.Context):
        light = ctx.meta.get(_LIGHT)
        if light is None:
            return super().invoke(ctx)
        try:
            reader = Reader(*light)
            from computeshare.sender import max_fee, receipt_timeout

            receipt_timeout(), max_fee()
        except ValueError as error:  # a bad COMPUTESHARE_RPC_TIMEOUT or _RECEIPT_TIMEOUT
            raise click.UsageError(str(error), ctx) from None
        token = _READER.set(reader)
        try:
            with step("reading"):
                return click.Command.invoke(self, ctx)
        finally:
            _READER.reset(token)


def _read_message(error: BaseException) -> str:
    """A failed read as one line; a node that is down, or hung on its first request, in the
    words ape's connection check gets (`ape_message`), so the message does not depend on
    which way the command read."""
    reader = _READER.get()
    first = reader is not None and reader.rpc.answered == 0
    if first and isinstance(error, ConnectionError | NodeTimeout):
        return ape_message(Exception(f"No (supported) node found on '{reader.rpc.uri}'"))
    return node_message(error) or str(error)


def _read_friendly(func):
    """`friendly` for a read: without ape loaded, known failures become one line here
    (a node that is down or hung, a missing manifest, an index that cannot open)."""
    checked = friendly(func)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if _READER.get() is None:
            return checked(*args, **kwargs)
        try:
            value = func(*args, **kwargs)
            OUTPUT.flush()
            return value
        except click.ClickException:
            raise
        except (ReadError, *_known_errors()) as error:
            raise click.ClickException(_read_message(error)) from None

    return wrapper


def read_command(group, name: str):
    """A read-only subcommand of `group` with --network, --manifest and --json."""

    def decorate(func):
        func = json_option(manifest_option(_read_friendly(func)))
        return group.command(name, cls=ReadCommand)(func)

    return decorate


def send_command(group, name: str, *, optional_account: bool = False):
    """A subcommand of `group` that sends, with --network, --manifest, --json and
    --account (optional for `optional_account`: a read of an account's): through ape, or
    without it where its network allows (`ReadCommand`)."""

    def decorate(func):
        func = json_option(manifest_option(_read_friendly(func)))
        func = account_option(required=not optional_account)(func)
        return group.command(name, cls=ReadCommand)(func)

    return decorate


class Deployment:
    """What a read needs of a deployment, from JSON-RPC (`Reader`) or from ape
    (`ComputeShare`): its event index and its governed parameters."""

    def __init__(self, manifest: Path | None):
        self.path = manifest
        self.reader = _READER.get()

    def open_index(self, db: str | None = None):
        if self.reader is None:
            from computeshare.cli.sending import connect

            return connect(self.path).open_index(db)
        from computeshare.index import EventIndex

        manifest = self.reader.manifest(self.path)
        where = db if db is not None else EventIndex.default_path(manifest.path)
        return EventIndex.open(where, manifest, self.reader.rpc)

    def parameters(self) -> list[dict]:
        if self.reader is None:
            from computeshare.cli.sending import connect

            return connect(self.path).parameters()
        from computeshare.params import parameter_rows

        manifest = self.reader.manifest(self.path)
        return parameter_rows(lambda contract, key: self.reader.parameter(manifest, contract, key))
