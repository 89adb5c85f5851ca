"""Read-only commands that answer without loading ape when they can.

`read_command(group, name)` is `command(group, name, signer=False)` for a command that only
reads. When its `--network` names a node by URI, or a network whose node URI
ape-config.yaml gives, the command runs over plain JSON-RPC (`computeshare.reader`): ape's
plugins and network machinery, some 3 s of start-up, are never loaded. Any other network is
connected through ape exactly as every other command is. The command's body asks
`Deployment(manifest)` for what it reads, the same either way.
"""

from __future__ import annotations

import contextvars
import functools
from pathlib import Path

import click

from computeshare.cli.options import (
    ChainCommand,
    _from_environment,
    check_network,
    manifest_option,
    network_argument,
)
from computeshare.cli.output import OUTPUT, json_option
from computeshare.cli.sending import _known_errors, ape_message, friendly, node_message, step
from computeshare.reader import Reader, ReadError, resolve
from computeshare.rpc import NodeTimeout

_READER: contextvars.ContextVar[Reader | None] = contextvars.ContextVar("reader", default=None)


_LIGHT = "computeshare.light"  # ctx.meta key: (URI, network name) of a read without ape
# What stands for ape's --network (and its --provider-settings) in a read without ape.
_PLAIN_NETWORK = click.Option(["--network"], expose_value=False, help="the node's URI")


class ReadCommand(ChainCommand):
    """A `ChainCommand` that reads over JSON-RPC, without ape, when its network allows.
    The choice is made per invocation (`ctx.meta`): a command object that once parsed
    through ape (which adds its own network options to it) still reads without ape next."""

    def get_params(self, ctx: click.Context) -> list[click.Parameter]:
        params = super().get_params(ctx)
        if ctx.meta.get(_LIGHT) is None:
            return params
        ape_options = ("network", "provider_settings")
        return [p for p in params if p.name not in ape_options] + [_PLAIN_NETWORK]

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = [*_from_environment(self, args), *args]
        check_network(ctx, args)
        network = network_argument(args)
        light = None
        if network is not None and "--help" not in args and not ctx.resilient_parsing:
            light = resolve(network)
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
        except ValueError as error:  # a bad COMPUTESHARE_RPC_TIMEOUT
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
