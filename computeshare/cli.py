"""`computeshare`: one command line for every role, with ape's `--network` and `--account`.

    computeshare provider register --network ethereum:sepolia:node --account me --gpus 2
    computeshare client post --workload sha256-chain --input '{"seed": "a", "rounds": 10}' ...
    computeshare gov propose --set JobEscrow.PROTOCOL_FEE_BPS=100 --description "Lower fee"
    computeshare show jobs --network ethereum:sepolia:node
    computeshare agent --account me --journal agent.json

Bad input ends in a one-line message: local checks run first and send nothing when they
already know a call would fail; a revert from the chain is shown as its reason.
"""

from __future__ import annotations

import functools
import json
import sys
import time
from decimal import Decimal, DecimalException, InvalidOperation
from pathlib import Path

import click
from ape import accounts, chain
from ape.cli import ConnectedProviderCommand, account_option
from ape.exceptions import ApeException, ContractLogicError

from computeshare.agent import Agent, AgentError, Journal, Policy
from computeshare.client import ALIASES, STATUS_NAMES, ClientError, ComputeShare
from computeshare.deploy import DeployError, parse_value
from computeshare.gas import format_table
from computeshare.governance import STATE_NAMES, Action, call, rehearse
from computeshare.params import parameter
from computeshare.results import ResultError, start_server
from computeshare.specs import device_spec, job_requirements
from computeshare.workloads import CATALOGUE, WorkloadError, encode_spec, public_key, wasm_spec

TOKEN = 10**18
SUPPORT = {"against": 0, "for": 1, "abstain": 2}
ALIAS_OF = {name: alias for alias, name in ALIASES.items()}


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


def show(amount: int) -> str:
    return f"{Decimal(amount) / TOKEN:,.4f}".rstrip("0").rstrip(".")


def hex32(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise click.BadParameter(f"{text!r} is not a 32-byte hex id")
    return raw


def friendly(func):
    """Turns known failures into one-line messages instead of tracebacks."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ContractLogicError as error:
            raise click.ClickException(f"reverted: {error.message}") from None
        except (
            AgentError, ClientError, DeployError, ResultError, WorkloadError, ValueError,
            LookupError, OSError,
        ) as error:  # fmt: skip
            raise click.ClickException(str(error)) from None
        except ApeException as error:
            raise click.ClickException(str(error).splitlines()[0]) from None

    return wrapper


amount_argument = click.argument("amount", callback=lambda ctx, param, value: tokens(value))


def require(have: int, need: int, what: str) -> None:
    """Stops with `<what> is <have> tokens` when `have` < `need`: nothing is sent."""
    if have < need:
        raise click.ClickException(f"{what} is {show(have)} tokens")


manifest_option = click.option(
    "--manifest",
    type=click.Path(dir_okay=False, path_type=Path),
    help="deployment manifest (default: deployments/<network>-<chain id>.json)",
)


def connect(manifest: Path | None, account=None) -> ComputeShare:
    if manifest is not None:
        return ComputeShare.from_manifest(manifest, account)
    return ComputeShare.connected(account)


def command(group, name: str, *, signer: bool = True):
    """A subcommand of `group` connected to --network, with --manifest and, for commands
    that send transactions, --account."""

    def decorate(func):
        func = friendly(func)
        func = manifest_option(func)
        if signer:
            func = account_option()(func)
        return group.command(name, cls=ConnectedProviderCommand)(func)

    return decorate


class OneLineErrors(click.Group):
    """Every error, usage errors included, is a single `Error: ...` line."""

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.ClickException as error:
            click.echo(f"Error: {error.format_message()}", err=True)
            sys.exit(error.exit_code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)


@click.group(cls=OneLineErrors)
def main():
    """ComputeShare: providers, delegators, clients, governance and read-only views."""


# ---------------------------------------------------------------- provider


@main.group()
def provider():
    """Register and run devices, bond and unbond stake."""


@command(provider, "register")
@click.option("--cpus", type=click.IntRange(1, 65_535), default=32, show_default=True)
@click.option("--memory-mb", type=click.IntRange(1), default=128 * 1024, show_default=True)
@click.option("--gpus", type=click.IntRange(0, 255), default=2, show_default=True)
@click.option("--gpu-model", help="[default: nvidia-a100-80gb with GPUs, none without]")
@click.option("--vram-mb", type=click.IntRange(0), help="[default: 81920 with GPUs, 0 without]")
@click.option("--region", type=click.IntRange(0, 65_535), default=276, show_default=True)
@click.option("--price-per-second", default="0.001", show_default=True, help="tokens")
@click.option("--max-jobs", type=click.IntRange(1, 65_535), default=4, show_default=True)
@click.option("--uri", default="", help="metadata URI")
def provider_register(
    account, manifest, cpus, memory_mb, gpus, gpu_model, vram_mb, region, price_per_second,
    max_jobs, uri,
):  # fmt: skip
    """Register a device (needs free stake of MIN_STAKE_PER_DEVICE per device)."""
    if gpu_model is None:
        gpu_model = "nvidia-a100-80gb" if gpus else ""
    if vram_mb is None:
        vram_mb = 80 * 1024 if gpus else 0
    cs = connect(manifest, account)
    if len(gpu_model.encode()) > 32:
        raise click.BadParameter("at most 32 bytes", param_hint="--gpu-model")
    per_device = cs.registry.parameter(0)
    needed = per_device * (cs.registry.active_devices(account) + 1)
    if cs.staking.bonded_stake(account) < needed:
        raise click.ClickException(
            f"stake {show(needed)} tokens first (`computeshare provider stake`): "
            f"each active device needs {show(per_device)}"
        )
    spec = device_spec(
        cpu_cores=cpus,
        memory_mb=memory_mb,
        gpu_count=gpus,
        gpu_model=gpu_model.encode().ljust(32, b"\x00"),
        vram_mb=vram_mb,
        region=region,
        price_per_second=tokens(price_per_second),
        max_concurrent_jobs=max_jobs,
    )
    device_id = cs.register_device(spec, uri)
    click.echo(f"device 0x{device_id.hex()}")


def _device_action(action: str):
    @command(provider, action)
    @click.argument("device_id", callback=lambda ctx, param, value: hex32(value))
    def run(account, manifest, device_id):
        cs = connect(manifest, account)
        if cs.registry.device(device_id).owner != account.address:
            raise click.ClickException("not your device")
        getattr(cs.registry, action)(device_id, sender=account)
        click.echo(f"device 0x{device_id.hex()}: {action}d")

    run.__doc__ = f"{action.capitalize()} one of your devices."
    return run


for _action in ("pause", "resume", "retire"):
    _device_action(_action)


@command(provider, "stake")
@amount_argument
def provider_stake(account, manifest, amount):
    """Bond AMOUNT tokens as your own stake."""
    cs = connect(manifest, account)
    require(cs.token.balanceOf(account), amount, "balance")
    cs.stake(amount)
    click.echo(f"bonded stake: {show(cs.staking.bonded_stake(account))} tokens")


@command(provider, "thaw")
@amount_argument
def provider_thaw(account, manifest, amount):
    """Start thawing AMOUNT tokens of free stake (withdrawable after the thawing period)."""
    cs = connect(manifest, account)
    require(cs.staking.free_stake(account), amount, "free stake")
    cs.staking.request_thaw(amount, sender=account)
    click.echo(f"thawing {show(amount)} tokens for {cs.staking.thawing_period()} seconds")


@command(provider, "withdraw")
def provider_withdraw(account, manifest):
    """Withdraw stake whose thawing period has passed."""
    cs = connect(manifest, account)
    receipt = cs.staking.withdraw(sender=account)
    click.echo(f"withdrawn in tx {receipt.txn_hash}")


# ---------------------------------------------------------------- delegator


@main.group()
def delegator():
    """Delegate stake to providers and share their income."""


@command(delegator, "delegate")
@click.argument("provider_address")
@amount_argument
def delegator_delegate(account, manifest, provider_address, amount):
    """Delegate AMOUNT tokens to PROVIDER_ADDRESS's pool."""
    cs = connect(manifest, account)
    if amount < cs.staking.parameter(2):
        raise click.ClickException(f"the minimum delegation is {show(cs.staking.parameter(2))}")
    require(cs.token.balanceOf(account), amount, "balance")
    cs._approve(cs.staking, amount)
    receipt = cs.staking.delegate_to(provider_address, amount, sender=account)
    click.echo(f"shares received: {receipt.return_value}")


@command(delegator, "undelegate")
@click.argument("provider_address")
@click.argument("shares", type=click.IntRange(1))
def delegator_undelegate(account, manifest, provider_address, shares):
    """Start thawing SHARES of your delegation to PROVIDER_ADDRESS."""
    cs = connect(manifest, account)
    receipt = cs.staking.undelegate(provider_address, shares, sender=account)
    click.echo(f"thawing {show(receipt.return_value)} tokens")


@command(delegator, "withdraw")
@click.argument("provider_address")
def delegator_withdraw(account, manifest, provider_address):
    """Withdraw a thawed delegation from PROVIDER_ADDRESS."""
    cs = connect(manifest, account)
    receipt = cs.staking.withdraw_delegation(provider_address, sender=account)
    click.echo(f"withdrawn: {show(receipt.return_value)} tokens")


# ---------------------------------------------------------------- client


@main.group()
def client():
    """Deposit, post and follow jobs."""


@command(client, "deposit")
@amount_argument
def client_deposit(account, manifest, amount):
    """Deposit AMOUNT tokens into your JobEscrow balance."""
    cs = connect(manifest, account)
    require(cs.token.balanceOf(account), amount, "balance")
    cs.deposit(amount)
    click.echo(f"escrow balance: {show(cs.escrow.balanceOf(account))} tokens")


@command(client, "withdraw")
@amount_argument
def client_withdraw(account, manifest, amount):
    """Withdraw AMOUNT tokens of your unlocked JobEscrow balance."""
    cs = connect(manifest, account)
    require(cs.escrow.balanceOf(account), amount, "escrow balance")
    cs.escrow.withdraw(amount, sender=account)
    click.echo(f"escrow balance: {show(cs.escrow.balanceOf(account))} tokens")


@command(client, "post")
@click.option("--workload", help="sha256-chain or matrix-power (with --input), or wasm")
@click.option("--input", "payload", help="the workload's input as JSON")
@click.option(
    "--wasm",
    "module",
    help=f"a wasm module: a catalogue name ({', '.join(CATALOGUE)}) or a .wasm file (inline)",
)
@click.option("--stdin", "stdin_hex", default="", help="the wasm module's stdin, as hex")
@click.option("--fuel", type=click.IntRange(1), help="the wasm run's fuel limit")
@click.option("--encrypt-to", help="a public key (hex): providers serve the output encrypted")
@click.option("--price", required=True, help="tokens per replica")
@click.option("--replicas", type=click.IntRange(1, 9), default=1, show_default=True)
@click.option("--duration", type=click.IntRange(60), default=3_600, show_default=True)
@click.option("--collateral", help="tokens per replica (default: the price)")
@click.option("--min-gpus", type=click.IntRange(0, 255), default=0, show_default=True)
@click.option("--compute-seconds", type=click.IntRange(1), default=60, show_default=True)
def client_post(
    account, manifest, workload, payload, module, stdin_hex, fuel, encrypt_to, price, replicas,
    duration, collateral, min_gpus, compute_seconds,
):  # fmt: skip
    """Post a job; payment for every replica is locked from your escrow balance. The spec is
    checked against its workload's schema (and a wasm module compiled) before anything is
    sent."""
    recipient = public_key(encrypt_to) if encrypt_to else None
    spec = _job_spec(workload, payload, module, stdin_hex, fuel, recipient)
    cs = connect(manifest, account)
    price_wei = tokens(price)
    collateral_wei = tokens(collateral) if collateral else price_wei
    needed = price_wei * replicas - cs.escrow.balanceOf(account)
    if needed > cs.token.balanceOf(account):
        raise click.ClickException(f"needs {show(needed)} more tokens than you hold")
    requirements = job_requirements(
        min_cpu_cores=1, min_memory_mb=1, min_gpu_count=min_gpus, min_vram_mb=0,
        compute_seconds=compute_seconds,
    )  # fmt: skip
    job_id = cs.post_job(
        spec,
        requirements,
        price=price_wei,
        replicas=replicas,
        duration=duration,
        collateral=collateral_wei,
    )
    click.echo(f"job 0x{job_id.hex()}")


def _job_spec(workload, payload, module, stdin_hex, fuel, recipient) -> bytes:
    if module is not None or workload == "wasm":
        if module is None or fuel is None or payload is not None:
            raise click.UsageError("a wasm job takes --wasm and --fuel (and --stdin), not --input")
        try:
            stdin = bytes.fromhex(stdin_hex.removeprefix("0x"))
        except ValueError:
            raise click.BadParameter("not hex", param_hint="--stdin") from None
        raw = module if module in CATALOGUE else Path(module).read_bytes()
        return wasm_spec(raw, stdin, fuel=fuel, encrypt_to=recipient)
    if workload is None or payload is None:
        raise click.UsageError("give --workload and --input, or --wasm and --fuel")
    try:
        data = json.loads(payload)
    except ValueError as error:
        raise click.BadParameter(f"not JSON: {error}", param_hint="--input") from None
    return encode_spec(workload, data, recipient)


def _job_command(action: str, doc: str):
    @command(client, action)
    @click.argument("job_id", callback=lambda ctx, param, value: hex32(value))
    def run(account, manifest, job_id):
        cs = connect(manifest, account)
        if cs.jobs.terms(job_id)[0] != account.address:
            raise click.ClickException("not your job")
        getattr(cs.jobs, action)(job_id, sender=account)
        click.echo(f"job 0x{job_id.hex()}: {STATUS_NAMES[cs.escrow_view.job(job_id).status]}")

    run.__doc__ = doc


_job_command("cancel", "Cancel a job nobody accepted; everything is refunded.")
_job_command("dispute", "Dispute an optimistic result within its challenge window (posts a bond).")


@command(client, "status", signer=False)
@click.argument("job_id", callback=lambda ctx, param, value: hex32(value))
@click.option("--watch", is_flag=True, help="follow the job until it is final")
def client_status(manifest, job_id, watch):
    """Show a job (or follow it with --watch)."""
    cs = connect(manifest)
    if cs.escrow_view.job(job_id).status == 0:
        raise click.ClickException("no such job")
    views = cs.watch_job(job_id) if watch else [cs.job(job_id)]
    for view in views:
        click.echo(
            f"{view['status_name']}: replicas {view['replicas']}, accepted {view['accepted']}, "
            f"committed {view['committed']}, revealed {view['revealed']} "
            f"{view['replica_states']}"
        )


@command(client, "result", signer=False)
@click.argument("job_id", callback=lambda ctx, param, value: hex32(value))
@click.option("--endpoint", multiple=True, help="result endpoint (default: the device's URI)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="output file")
@click.option(
    "--key",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="the private key file from `client keygen` (for an encrypted output)",
)
def client_result(manifest, job_id, endpoint, out, key):
    """Fetch a job's output from its provider and check it against the chain."""
    private = bytes.fromhex(key.read_text().strip()) if key else None
    result = connect(manifest).result(job_id, list(endpoint), private)
    click.echo(f"{result.status_name}, fuel {result.fuel:,}, {len(result.output)} bytes")
    if out is not None:
        out.write_bytes(result.output)
    else:
        click.echo(result.output.hex())


@client.command("keygen")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def client_keygen(path):
    """Write a new private key to PATH (mode 600) and print its public key, for
    `client post --encrypt-to` and `client result --key`."""
    from coincurve import PrivateKey

    if path.exists():
        raise click.ClickException(f"{path} exists: not overwritten")
    key = PrivateKey()
    path.touch(mode=0o600)
    path.write_text(key.secret.hex() + "\n")
    click.echo(key.public_key.format(compressed=True).hex())


# ---------------------------------------------------------------- governance


@main.group()
def gov():
    """Propose, vote, queue and execute."""


proposal_options = [
    click.option("--set", "settings", multiple=True, help="Contract.PARAMETER=value (repeatable)"),
    click.option("--grant", nargs=2, multiple=True, help="RECIPIENT AMOUNT: pay from the treasury"),
    click.option("--description", required=True),
]


def with_proposal_options(func):
    for option in reversed(proposal_options):
        func = option(func)
    return func


def proposal_actions(cs: ComputeShare, settings, grant) -> list[Action]:
    """The actions of `--set` and `--grant`, with every value checked against its bounds."""
    actions: list[Action] = []
    for setting in settings:
        target, _, value = setting.partition("=")
        contract, _, name = target.partition(".")
        p = parameter(contract, name)
        amount = p.check(parse_value(value))
        actions.append(call(getattr(cs, ALIAS_OF[p.contract]), "set_parameter", p.key, amount))
    for recipient, amount in grant:
        actions.append(call(cs.token, "transfer", recipient, tokens(amount)))
    if not actions:
        raise click.UsageError("nothing to propose: give --set or --grant")
    return actions


@command(gov, "propose")
@with_proposal_options
def gov_propose(account, manifest, settings, grant, description):
    """Propose parameter changes and treasury grants (bounds are checked before sending)."""
    cs = connect(manifest, account)
    actions = proposal_actions(cs, settings, grant)
    votes = cs.token.getVotes(account)
    threshold = cs.governor.proposalThreshold()
    if votes < threshold:
        raise click.ClickException(
            f"you have {show(votes)} votes; proposing needs {show(threshold)}"
        )
    receipt = cs.governor.propose(
        [a.target for a in actions],
        [a.value for a in actions],
        [a.calldata for a in actions],
        description,
        sender=account,
    )
    click.echo(f"proposal {receipt.return_value}")


@command(gov, "rehearse", signer=False)
@with_proposal_options
@click.option(
    "--voter",
    "voters",
    multiple=True,
    help="holder who proposes and votes for (repeatable; default: the initial token holder)",
)
def gov_rehearse(manifest, settings, grant, description, voters):
    """Rehearse a proposal on a fork: propose, vote, queue, wait and execute, then show
    what changed. The upstream network is never touched."""
    if not chain.provider.network.is_fork:
        raise click.ClickException(
            f"rehearse runs on a fork (e.g. --network ethereum:{chain.provider.network.name}"
            "-fork:foundry): it impersonates voters and moves the clock"
        )
    cs = connect(manifest)
    actions = proposal_actions(cs, settings, grant)
    voters = list(voters) or [cs.manifest["contracts"]["ComputeToken"]["args"][0]]
    targets = [setting.partition("=")[0] for setting in settings]
    readers = {target: _parameter_reader(cs, target) for target in targets}
    for recipient, _ in grant:
        readers[f"balance of {recipient}"] = lambda r=recipient: show(cs.token.balanceOf(r))
    before = {what: read() for what, read in readers.items()}
    rehearse(cs.governor, cs.token, chain, accounts, voters, actions, description)
    click.echo(f"proposal {cs.governor.proposalCount()} executed on the fork")
    for what, read in readers.items():
        click.echo(f"  {what}: {before[what]} -> {read()}")


def _parameter_reader(cs: ComputeShare, target: str):
    p = parameter(*target.split(".", 1))
    contract = getattr(cs, ALIAS_OF[p.contract])
    return lambda: contract.parameter(p.key)


def _check_exists(cs, proposal_id: int) -> None:
    if proposal_id > cs.governor.proposalCount():
        raise click.ClickException(f"no proposal {proposal_id}")


@command(gov, "vote")
@click.argument("proposal_id", type=click.IntRange(1))
@click.argument("support", type=click.Choice(list(SUPPORT)))
@click.option("--reason", default="")
def gov_vote(account, manifest, proposal_id, support, reason):
    """Vote for, against or abstain on PROPOSAL_ID."""
    cs = connect(manifest, account)
    _check_exists(cs, proposal_id)
    state = cs.governor.state(proposal_id)
    if STATE_NAMES[state] != "Active":
        raise click.ClickException(f"proposal {proposal_id} is {STATE_NAMES[state]}, not Active")
    cs.vote(proposal_id, SUPPORT[support], reason)
    click.echo(f"voted {support} on {proposal_id}")


def _gov_step(action: str, want: str):
    @command(gov, action)
    @click.argument("proposal_id", type=click.IntRange(1))
    def run(account, manifest, proposal_id):
        cs = connect(manifest, account)
        _check_exists(cs, proposal_id)
        state = STATE_NAMES[cs.governor.state(proposal_id)]
        if state != want:
            raise click.ClickException(f"proposal {proposal_id} is {state}, not {want}")
        getattr(cs.governor, action)(proposal_id, sender=account)
        click.echo(f"proposal {proposal_id}: {STATE_NAMES[cs.governor.state(proposal_id)]}")

    run.__doc__ = f"{action.capitalize()} a {want.lower()} proposal."


_gov_step("queue", "Succeeded")
_gov_step("execute", "Queued")


@command(gov, "status", signer=False)
@click.argument("proposal_id", type=click.IntRange(1))
def gov_status(manifest, proposal_id):
    """Show a proposal's state, votes and timeline."""
    cs = connect(manifest)
    _check_exists(cs, proposal_id)
    against, for_, abstain = cs.governor.proposalVotes(proposal_id)
    click.echo(
        format_table(
            [
                {
                    "proposal": proposal_id,
                    "state": STATE_NAMES[cs.governor.state(proposal_id)],
                    "for": show(for_),
                    "against": show(against),
                    "abstain": show(abstain),
                    "quorum": show(cs.governor.proposalQuorum(proposal_id)),
                    "deadline": cs.governor.proposalDeadline(proposal_id),
                    "eta": cs.governor.proposalEta(proposal_id),
                }
            ],
            ["proposal", "state", "for", "against", "abstain", "quorum", "deadline", "eta"],
        )
    )


# ---------------------------------------------------------------- read-only views


@main.group(name="show")
def show_group():
    """Read-only tables: devices, jobs, pools, proposals."""


def _events(contract, name: str, since: int):
    return getattr(contract, name).range(since, contract.chain_manager.blocks.height + 1)


def _start(cs, since: int | None) -> int:
    return since if since is not None else cs.manifest["contracts"]["JobEscrow"]["block"]


since_option = click.option("--since", type=click.IntRange(0), help="first block to read")


@command(show_group, "devices", signer=False)
@since_option
def show_devices(manifest, since):
    """Every registered device with its spec, status and record."""
    cs = connect(manifest)
    rows = []
    for event in _events(cs.registry, "DeviceRegistered", _start(cs, since)):
        device = cs.registry.device(event.device_id)
        record = cs.escrow_view.device_record(event.device_id)
        rows.append(
            {
                "device": "0x" + bytes(event.device_id).hex()[:10],
                "owner": device.owner[:10],
                "status": {1: "active", 2: "paused", 3: "retired"}.get(device.status, "?"),
                "cpus": device.spec.cpu_cores,
                "gpus": device.spec.gpu_count,
                "region": device.spec.region,
                "running": record.running,
                "done": record.completed,
                "failed": record.failed,
                "slashed": record.slashed,
            }
        )
    click.echo(format_table(rows, list(rows[0]) if rows else ["device"]))


@command(show_group, "jobs", signer=False)
@since_option
def show_jobs(manifest, since):
    """Every posted job with its status and replicas."""
    cs = connect(manifest)
    rows = []
    for event in _events(cs.escrow, "JobPosted", _start(cs, since)):
        view = cs.job(cs.jobs.remember(event.terms))
        rows.append(
            {
                "job": "0x" + bytes(event.job_id).hex()[:10],
                "client": event.client[:10],
                "k": view["replicas"],
                "price": show(view["price_per_replica"]),
                "status": view["status_name"],
                "replicas": ",".join(view["replica_states"]) or "-",
            }
        )
    click.echo(format_table(rows, list(rows[0]) if rows else ["job"]))


@command(show_group, "pools", signer=False)
@since_option
def show_pools(manifest, since):
    """Every provider pool: own stake, delegated stake, locked collateral."""
    cs = connect(manifest)
    owners = {e.owner for e in _events(cs.registry, "DeviceRegistered", _start(cs, since))}
    rows = []
    for owner in sorted(owners):
        pool = cs.staking.pool(owner)
        rows.append(
            {
                "provider": owner,
                **{k: show(v) if isinstance(v, int) else v for k, v in pool.items()},
            }
        )
    click.echo(format_table(rows, list(rows[0]) if rows else ["provider"]))


@command(show_group, "proposals", signer=False)
def show_proposals(manifest):
    """Every proposal with its state and tally."""
    cs = connect(manifest)
    rows = []
    for proposal_id in range(1, cs.governor.proposalCount() + 1):
        against, for_, abstain = cs.governor.proposalVotes(proposal_id)
        rows.append(
            {
                "proposal": proposal_id,
                "proposer": cs.governor.proposalProposer(proposal_id)[:10],
                "state": STATE_NAMES[cs.governor.state(proposal_id)],
                "for": show(for_),
                "against": show(against),
                "abstain": show(abstain),
            }
        )
    click.echo(format_table(rows, list(rows[0]) if rows else ["proposal"]))


# ---------------------------------------------------------------- agent


@main.command(cls=ConnectedProviderCommand)
@account_option()
@manifest_option
@click.option("--device", "device_id", help="device id (default: your first device)")
@click.option("--journal", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--policy", type=click.Path(dir_okay=False, path_type=Path), help="policy YAML")
@click.option("--serve", help="serve results at HOST:PORT (e.g. 127.0.0.1:8700)")
@click.option("--faulty", is_flag=True, help="return wrong results (to demonstrate slashing)")
@click.option("--poll", type=float, default=1.0, show_default=True, help="seconds")
@click.option("--steps", type=click.IntRange(1), help="stop after this many polls")
@friendly
def agent(account, manifest, device_id, journal, policy, serve, faulty, poll, steps):
    """Serve your device's jobs: validate, accept, run, commit, reveal, finalize; resumable."""
    from ape.logging import logger

    logger.set_level("WARNING")  # no per-transaction INFO lines
    rules = Policy.load(policy)
    book = Journal.open(journal, from_block=0)
    cs = connect(manifest, account)
    if device_id is None:
        if cs.registry.device_count(account) == 0:
            raise click.ClickException("you have no device: `computeshare provider register`")
        device = bytes(cs.registry.device_id_of(account, 0))
    else:
        device = hex32(device_id)
    if cs.registry.device(device).owner != account.address:
        raise click.ClickException(f"device 0x{device.hex()[:10]} is not {account.address}'s")
    if not journal.exists():
        book.from_block = cs.manifest["contracts"]["JobEscrow"]["block"]
    prefix = f"[{account.address[:8]}]"
    runner = Agent(
        cs,
        account,
        device,
        book,
        faulty=faulty,
        policy=rules,
        log=lambda message: click.echo(f"{prefix} {message}"),
    )
    server = start_server(book, serve) if serve else None
    where = f", results at {server.url}" if server else ""
    click.echo(f"{prefix} serving device 0x{device.hex()[:10]}{where}")
    count = 0
    try:
        while steps is None or count < steps:
            runner.step()
            count += 1
            time.sleep(poll)
    finally:
        runner.close()
        if server is not None:
            server.stop()
