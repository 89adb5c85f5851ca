"""What commands take: amounts, durations, ids and prefixes (parsed to one-line errors),
the options every group repeats (with COMPUTESHARE_NETWORK and COMPUTESHARE_ACCOUNT as
defaults), the job spec options, and the connected command class (`ChainCommand`, and
`command` that makes one).

Nothing here loads ape's managers, web3 or the agent at import time (only `ape.cli`, which
is light): each group's `--help` stays fast, and the chain is touched only by a command
that runs.
"""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal, DecimalException, InvalidOperation
from pathlib import Path

import click
from ape.cli import AccountAliasPromptChoice, ConnectedProviderCommand

from computeshare.cli.output import json_option, short_id
from computeshare.cli.sending import ape_message, friendly, node_message, quiet_ape, step
from computeshare.constants import DAY, HOUR, TOKEN

MIN_PREFIX = 6  # hex digits of an id prefix

# ---------------------------------------------------------------- amounts and durations


def tokens(text: str) -> int:
    """ "12.5" -> 12.5 tokens in wei; refuses zero, negatives and more than 18 decimals."""
    try:
        value = Decimal(text) * TOKEN
        if not value.is_finite():
            raise InvalidOperation
    except DecimalException:  # NaN, infinities, overflow
        raise click.BadParameter(f"{text!r} is not an amount") from None
    if value <= 0 or value != value.to_integral_value():
        raise click.BadParameter(f"{text!r} must be positive with at most 18 decimals")
    return int(value)


amount_argument = click.argument("amount", callback=lambda ctx, param, value: tokens(value))

_UNITS = {"s": 1, "m": 60, "h": HOUR, "d": DAY, "w": 7 * DAY}


class Duration(click.ParamType):
    """Seconds, or a duration such as 90s, 15m, 2h, 1d12h."""

    name = "DURATION"

    def convert(self, value, param, ctx) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text.isdigit():
            return int(text)
        parts = re.findall(r"(\d+)\s*([smhdw])", text)
        if not parts or re.sub(r"(\d+)\s*([smhdw])", "", text).strip():
            self.fail(f"{value!r} is not a duration (e.g. 3600, 90s, 15m, 2h, 1d12h)", param, ctx)
        return sum(int(number) * _UNITS[unit] for number, unit in parts)


# ---------------------------------------------------------------- ids


def id_prefix(text: str) -> str:
    """A full id or a prefix of at least MIN_PREFIX hex digits, as lowercase hex."""
    digits = text.lower().removeprefix("0x")
    if not re.fullmatch(r"[0-9a-f]*", digits) or not MIN_PREFIX <= len(digits) <= 64:
        raise click.BadParameter(
            f"{text!r} is not an id or a prefix of at least {MIN_PREFIX} hex digits"
        )
    return digits


def address(text: str) -> str:
    """`text` as a checksummed address, or a one-line error."""
    from eth_utils import is_address, to_checksum_address

    if not is_address(text):
        raise click.BadParameter(f"{text!r} is not an address")
    return to_checksum_address(text)


def match_prefix(ids: list[bytes], prefix: str, what: str) -> bytes:
    """The one id among `ids` that starts with `prefix` (hex digits)."""
    found = sorted({bytes(i) for i in ids if bytes(i).hex().startswith(prefix)})
    if not found:
        raise click.ClickException(f"no {what} id starts with 0x{prefix}")
    if len(found) > 1:
        shown = ", ".join(short_id(i) for i in found[:3]) + (", ..." if len(found) > 3 else "")
        raise click.ClickException(
            f"0x{prefix} is ambiguous: {len(found)} {what}s start with it ({shown}); "
            "give more digits"
        )
    return found[0]


def resolve_job(cs, text: str) -> bytes:
    """A job id from a full id or an unambiguous prefix (from `JobPosted` events)."""
    prefix = id_prefix(text)
    if len(prefix) == 64:
        return bytes.fromhex(prefix)
    index = _index(cs)
    if index is not None:
        from computeshare.index import jobs

        return bytes.fromhex(index.resolve(jobs, "job_id", prefix)[2:])
    with step("looking the job id up"):
        from computeshare.jobs import indexed_topics

        ids = indexed_topics(cs.escrow, "JobPosted", cs.jobs.start_block)
    return match_prefix(ids, prefix, "job")


def _index(cs):
    """The deployment's event index, synced (opened next to the manifest if need be); None
    for a deployment not read from a file."""
    if cs.index is None and cs.path is None:
        return None
    index = cs.index or cs.open_index()
    with step("updating the index"):
        index.sync()
    return index


def resolve_device(cs, text: str) -> bytes:
    """A device id from a full id or an unambiguous prefix (from `DeviceRegistered`)."""
    prefix = id_prefix(text)
    if len(prefix) == 64:
        return bytes.fromhex(prefix)
    index = _index(cs)
    if index is not None:
        from computeshare.index import devices

        return bytes.fromhex(index.resolve(devices, "device_id", prefix)[2:])
    since = cs.manifest.block("DeviceRegistry")
    with step("looking the device id up"):
        from computeshare.jobs import indexed_topics

        ids = indexed_topics(cs.registry, "DeviceRegistered", since)
    return match_prefix(ids, prefix, "device")


job_argument = click.argument(
    "job_id", metavar="JOB", callback=lambda ctx, param, value: id_prefix(value)
)
device_argument = click.argument(
    "device_id", metavar="DEVICE", callback=lambda ctx, param, value: id_prefix(value)
)
full_option = click.option("--full", is_flag=True, help="print whole ids, not their prefixes")


# Defaults for the options every chain command repeats; an option given on the line wins.
ENVIRONMENT = {"--network": "COMPUTESHARE_NETWORK", "--account": "COMPUTESHARE_ACCOUNT"}


def _given(args: list[str], option: str) -> bool:
    return any(arg == option or arg.startswith(f"{option}=") for arg in args)


def _from_environment(command: click.Command, args: list[str]) -> list[str]:
    """`--network` and `--account` from COMPUTESHARE_NETWORK and COMPUTESHARE_ACCOUNT (an
    ape account alias or TEST::n) for a command that takes them and was not given them."""
    # ape adds --network to a connected command while parsing: every one takes it.
    takes = {"--network", *(opt for param in command.params for opt in param.opts)}
    extra = []
    for option, variable in ENVIRONMENT.items():
        value = os.environ.get(variable, "").strip()
        if value and option in takes and not _given(args, option):
            extra += [option, value]
    return extra


NO_NETWORK = (
    "give --network (or set COMPUTESHARE_NETWORK): the node your deployment is on, e.g. "
    "--network http://127.0.0.1:8545 "
    "(manifest deployments/custom-<chain id>.json) or ethereum:sepolia:node "
    "(deployments/sepolia-11155111.json); manifests live in deployments/, or pass --manifest"
)


def network_argument(args: list[str]) -> str | None:
    """The value of the last `--network` in `args` (either form)."""
    found = None
    for i, arg in enumerate(args):
        if arg == "--network" and i + 1 < len(args):
            found = args[i + 1]
        elif arg.startswith("--network="):
            found = arg.split("=", 1)[1]
    return found


def check_network(ctx: click.Context, args: list[str]) -> None:
    """A network whose configured node URI needs an unset variable is a usage error that
    names the variable (ape's own words would be "Invalid uri: ${...}")."""
    from computeshare.reader import unset_variable

    network = network_argument(args)
    if network and "--help" not in args and (message := unset_variable(network)):
        raise click.UsageError(message, ctx)


class ChainCommand(ConnectedProviderCommand):
    """A command connected to `--network`. It refuses to start a throwaway local node when
    no network is given, and turns connection failures into one line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        args = [*_from_environment(self, args), *args]
        if not _given(args, "--network") and "--help" not in args and not ctx.resilient_parsing:
            # Checked before ape loads its plugins: the answer comes at once.
            raise click.UsageError(NO_NETWORK, ctx)
        check_network(ctx, args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context):
        from ape.exceptions import ApeException

        from computeshare.rpc import bounded, request_timeout

        try:
            timeout = request_timeout()
        except ValueError as error:  # a bad COMPUTESHARE_RPC_TIMEOUT
            raise click.UsageError(str(error), ctx) from None
        try:
            with quiet_ape(), bounded(timeout), step("connecting to the network"):
                return super().invoke(ctx)
        except ApeException as error:
            raise click.ClickException(node_message(error) or ape_message(error)) from None
        except OSError as error:
            if (message := node_message(error)) is None:
                raise
            raise click.ClickException(message) from None


manifest_option = click.option(
    "--manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    help="deployment manifest (default: deployments/<network>-<chain id>.json, "
    "custom-<chain id>.json for a URI)",
)


ACCOUNT_HELP = (
    "the account to act as: an ape account alias (`ape accounts list`; `ape accounts "
    "import ALIAS` makes one) or TEST::n on a local node [env COMPUTESHARE_ACCOUNT]"
)
NO_ACCOUNT = (
    "give --account ALIAS (or set COMPUTESHARE_ACCOUNT): an alias from `ape accounts list` "
    "(`ape accounts import ALIAS` makes one), or TEST::n on a local node"
)


def account_option(required: bool = True):
    """`--account`: an ape account alias or TEST::n, as ape's own option takes it, but never
    a prompt: a command that sends and was not given one stops with NO_ACCOUNT."""

    def check(ctx: click.Context, param: click.Parameter, value):
        if value is None and required and not ctx.resilient_parsing:
            raise click.UsageError(NO_ACCOUNT, ctx)
        return value

    option = click.option(
        "--account",
        type=AccountAliasPromptChoice(),
        callback=check,
        metavar="ALIAS",
        help=ACCOUNT_HELP + ("" if required else "; optional"),
    )

    def decorate(func):
        func = option(func)
        func.__click_params__[-1].required_account = required  # for the way without ape
        return func

    return decorate


def command(group, name: str, *, signer: bool = True, optional_signer: bool = False):
    """A subcommand of `group` connected to --network, with --manifest and, for commands
    that send transactions, --account (optional for `optional_signer`)."""

    def decorate(func):
        func = friendly(func)
        func = json_option(manifest_option(func))
        if signer or optional_signer:
            func = account_option(required=not optional_signer)(func)
        return group.command(name, cls=ChainCommand)(func)

    return decorate


approve_max_option = click.option(
    "--approve-max",
    is_flag=True,
    help="approve an unlimited amount instead of exactly what this needs",
)


# ---------------------------------------------------------------- job specs


def job_spec_options(func):
    """--workload/--input, or --wasm/--stdin/--fuel, and --encrypt-to."""
    options = [
        click.option("--workload", help="sha256-chain or matrix-power (with --input), or wasm"),
        click.option("--input", "payload", help="the workload's input as JSON"),
        click.option(
            "--wasm",
            "module",
            help="a wasm module: a catalogue name (hash-chain, matmul, monte-carlo, "
            "checked-div) or a .wasm file (inline)",
        ),
        click.option(
            "--python",
            "python",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="a Python script, run by the pinned CPython for WASI (computeshare.python_job); "
            "--input then names a directory for /input",
        ),
        click.option("--stdin", "stdin_hex", default="", help="the wasm module's stdin, as hex"),
        click.option(
            "--fuel",
            type=click.IntRange(1),
            help="the wasm run's fuel limit (at most 2.1 * 10**15: 83 hours at R_FLOOR)",
        ),
        click.option(
            "--encrypt-to", help="a public key (hex): providers serve the output encrypted"
        ),
        click.option(
            "--input-dir",
            "input_dir",
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            help="wasm: a directory mounted at /input (added to the data store)",
        ),
        click.option(
            "--data-uri",
            help="wasm: where providers fetch the input and module trees (the address of "
            "`computeshare data serve`, e.g. http://host:8710/cas/, or of a folder written by "
            "`computeshare data add --static`: https://host/path/, ipfs://CID/)",
        ),
        click.option("--arg", "args", multiple=True, help="wasm: a program argument (repeat)"),
        click.option("--env", "env", multiple=True, help="wasm: NAME=value (repeat)"),
        click.option("--output-limit", type=click.IntRange(0), help="wasm: most bytes in /output"),
        click.option("--memory-limit", type=click.IntRange(65_536), help="wasm: most memory"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def job_spec(
    workload, payload, module, stdin_hex, fuel, encrypt_to, input_dir=None, data_uri=None,
    args=(), env=(), output_limit=None, memory_limit=None, python=None,
) -> bytes:  # fmt: skip
    """The spec the options describe, checked as every provider checks it (its workload's
    schema, its size; a wasm module compiled) before anything is sent. A wasm module file
    too large to travel inline, and an input directory, are added to the data store
    ($COMPUTESHARE_STORE) and named by their trees at `data_uri`. A Python script
    (`python`) becomes a wasm job of the pinned interpreter on an input tree of its stdlib,
    the script and the directory `payload` or `input_dir` names (`python_job`)."""
    if python is not None:
        return _python_spec(
            workload, payload, module, stdin_hex, fuel, encrypt_to, input_dir, data_uri,
            args, env, output_limit, memory_limit, python,
        )  # fmt: skip
    from computeshare.workloads import (
        CATALOGUE,
        MAX_SPEC_BYTES,
        decode_spec,
        encode_spec,
        module_pack,
        public_key,
        wasm_spec,
    )

    recipient = public_key(encrypt_to) if encrypt_to else None
    if module is not None or workload == "wasm":
        if module is None or fuel is None or payload is not None:
            raise click.UsageError("a wasm job takes --wasm and --fuel (and --stdin), not --input")
        try:
            stdin = bytes.fromhex(stdin_hex.removeprefix("0x"))
        except ValueError:
            raise click.BadParameter("not hex", param_hint="--stdin") from None
        raw = module if isinstance(module, bytes) or module in CATALOGUE else None
        raw = raw if raw is not None else Path(module).read_bytes()
        by_tree = module not in CATALOGUE and len(raw) * 4 // 3 > MAX_SPEC_BYTES // 2
        if (by_tree or input_dir is not None) and not data_uri:
            raise click.UsageError(
                "give --data-uri: where providers fetch the module and input trees "
                "(`computeshare data serve` serves the store they are added to)"
            )
        trees = {}
        if by_tree or input_dir is not None:
            from computeshare import cas

            store = cas.Cache(Path(os.environ.get("COMPUTESHARE_STORE", DATA_STORE)).expanduser())
            try:
                if by_tree:
                    trees["module_tree"] = module_pack(raw, store).spec([data_uri])
                if input_dir is not None:
                    trees["inputs"] = store.add_dir(input_dir).spec([data_uri])
            except cas.CasError as error:
                raise click.ClickException(str(error)) from None
        spec = wasm_spec(
            raw, stdin, fuel=fuel, encrypt_to=recipient, args=args, env=env,
            output_limit=output_limit, memory_limit=memory_limit, **trees,
        )  # fmt: skip
    else:
        if workload is None or payload is None:
            raise click.UsageError("give --workload and --input, or --wasm and --fuel")
        try:
            data = json.loads(payload)
        except ValueError as error:
            raise click.BadParameter(f"not JSON: {error}", param_hint="--input") from None
        spec = encode_spec(workload, data, recipient)
    decode_spec(spec)
    return spec


def _python_spec(
    workload, payload, module, stdin_hex, fuel, encrypt_to, input_dir, data_uri, args, env,
    output_limit, memory_limit, python,
) -> bytes:  # fmt: skip
    import tempfile

    from computeshare import python_job

    if workload is not None or module is not None:
        raise click.UsageError("--python takes no --workload or --wasm")
    if payload is not None and input_dir is not None:
        raise click.UsageError("give the input directory once: --input or --input-dir")
    folder = Path(payload) if payload is not None else input_dir
    if folder is not None and not folder.is_dir():
        raise click.BadParameter(f"{folder} is not a directory", param_hint="--input")
    try:
        env = python_job.job_env(env)
        with tempfile.TemporaryDirectory(prefix="computeshare-python-") as scratch:
            tree = Path(scratch) / "input"
            found = python_job.job_tree(python, folder, tree)
            return job_spec(
                None, None, found.module, stdin_hex,
                fuel if fuel is not None else python_job.DEFAULT_FUEL, encrypt_to,
                input_dir=tree, data_uri=data_uri, args=python_job.job_args(args), env=env,
                output_limit=output_limit, memory_limit=memory_limit,
            )  # fmt: skip
    except (python_job.PythonJobError, OSError) as error:
        raise click.ClickException(str(error)) from None


DATA_STORE = "~/.computeshare/store"  # `computeshare data`'s default store
