"""`computeshare`: one command line for every role, with ape's `--network` and `--account`.

    computeshare token delegate --network http://127.0.0.1:8545 --account me
    computeshare provider register --network ethereum:sepolia:node --account me --gpus 2
    computeshare client post --workload sha256-chain --input '{"seed": "a", "rounds": 10}' ...
    computeshare offer sign --client 0xClient --price 2 --out offer.json ...
    computeshare gov propose --set JobEscrow.PROTOCOL_FEE_BPS=100 --description "Lower fee"
    computeshare show jobs --network ethereum:sepolia:node
    computeshare arbiter rule 0x1234abcd --for client --account arbiter
    computeshare agent --account me --journal agent.json

Bad input ends in a one-line message: local checks run first and send nothing when they
already know a call would fail; a revert from the chain is shown as its reason.

The group is lazy: `COMMANDS` names each subcommand's module, attribute and one-line help,
and a module is imported only when its command runs, so `computeshare --help` loads neither
ape nor web3. A command whose module is missing is left out of the listing.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys

import click

# name -> (module, attribute, one-line help). Each module holds one command or group.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "provider": (
        "computeshare.cli.provider",
        "provider",
        "Register and run devices, bond and unbond stake.",
    ),
    "delegator": (
        "computeshare.cli.delegator",
        "delegator",
        "Delegate stake to providers and share their income.",
    ),
    "client": ("computeshare.cli.client", "client", "Deposit, post, follow and settle jobs."),
    "offer": (
        "computeshare.cli.offer",
        "offer",
        "Signed provider offers: sign, match, cancel, list.",
    ),
    "token": ("computeshare.cli.token", "token", "Balances, transfers and voting delegation."),
    "gov": ("computeshare.cli.gov", "gov", "Propose, vote, queue and execute."),
    "show": (
        "computeshare.cli.show",
        "show_group",
        "Read-only tables: devices, jobs, pools, proposals.",
    ),
    "arbiter": (
        "computeshare.cli.arbiter",
        "arbiter",
        "List disputed jobs and rule on them (JobDisputes' ARBITER).",
    ),
    "agent": ("computeshare.cli.agent", "agent", "Serve your device's jobs (the provider agent)."),
    "run": ("computeshare.cli.run", "run", "Run a wasm module here exactly as a provider would."),
    "index": ("computeshare.cli.market", "index", "Follow the suite's events into an index."),
    "dashboard": ("computeshare.cli.market", "dashboard", "Serve a web dashboard over the index."),
    "data": ("computeshare.cli.data", "data", "Content-addressed trees: add, serve, fetch."),
}


def _available(module: str) -> bool:
    """Whether `module` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def _one_line(error: BaseException) -> str:
    """An unexpected error as one line; COMPUTESHARE_TRACEBACK=1 shows the traceback."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _flatten(message: str) -> str:
    """A message as one line: "Options:\na\nb" -> "Options: a, b"."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else message
    return f"{lines[0]} {', '.join(lines[1:])}"


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (see `COMMANDS`); every error,
    usage errors included, is a single `Error: ...` line."""

    def __init__(self, *args, lazy: dict[str, tuple[str, str, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        names = {name for name, (module, _, _) in self.lazy.items() if _available(module)}
        return sorted(names | set(super().list_commands(ctx)))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in self.lazy:
            return super().get_command(ctx, name)
        module, attribute, _ = self.lazy[name]
        if not _available(module):
            raise click.UsageError(f"`{name}` is not available in this installation ({module})")
        return getattr(importlib.import_module(module), attribute)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in self.lazy:
                rows.append((name, self.lazy[name][2]))
            else:
                command = super().get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(formatter.width)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.ClickException as error:
            click.echo(f"Error: {_flatten(error.format_message())}", err=True)
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        except Exception as error:
            if os.environ.get("COMPUTESHARE_TRACEBACK"):
                raise
            click.echo(
                f"Error: {_one_line(error)} (COMPUTESHARE_TRACEBACK=1 shows where)", err=True
            )
            sys.exit(1)


def _rpc_timeout(ctx: click.Context, param: click.Parameter, value: float | None) -> None:
    if value is not None:  # read by every command that connects (computeshare.rpc)
        os.environ["COMPUTESHARE_RPC_TIMEOUT"] = str(value)


@click.group(cls=LazyGroup, lazy=COMMANDS)
@click.option(
    "--rpc-timeout",
    type=click.FloatRange(0.1, 3600),
    expose_value=False,
    callback=_rpc_timeout,
    metavar="SECONDS",
    help="how long one request may wait on the node (env COMPUTESHARE_RPC_TIMEOUT, default 5)",
)
def main():
    """ComputeShare: providers, delegators, clients, governance and read-only views.

    Every command that reads the chain takes --network (e.g. http://127.0.0.1:8545 or
    ethereum:sepolia:node) and finds the deployment in deployments/<network>-<chain id>.json
    (custom-<chain id>.json for a URI), or in --manifest. A request the node does not
    answer within --rpc-timeout seconds ends the command with one line."""
