"""`computeshare provider`: devices and the provider's own stake."""

from __future__ import annotations

import re
from decimal import Decimal

import click

from computeshare.cli.common import (
    amount_argument,
    approve_max_option,
    chain_now,
    connect,
    device_argument,
    resolve_device,
    say,
    show,
    tokens,
    when,
)
from computeshare.cli.read import send_command
from computeshare.constants import BPS


@click.group()
def provider():
    """Register and run devices, bond and unbond stake."""


# A device's spec options: (option, Spec field, type, default for `register`, help).
SPEC_OPTIONS = (
    ("--cpus", "cpu_cores", click.IntRange(1, 65_535), 32, None),
    ("--memory-mb", "memory_mb", click.IntRange(1), 128 * 1024, None),
    ("--gpus", "gpu_count", click.IntRange(0, 255), 2, None),
    ("--gpu-model", "gpu_model", None, None, "[default: nvidia-a100-80gb with GPUs, none without]"),
    ("--vram-mb", "vram_mb", click.IntRange(0), None, "[default: 81920 with GPUs, 0 without]"),
    ("--region", "region", click.IntRange(0, 65_535), 276, None),
    ("--price-per-second", "price_per_second", None, "0.001", "tokens"),
    ("--max-jobs", "max_concurrent_jobs", click.IntRange(1, 65_535), 4, None),
)


def spec_options(defaults: bool):
    """The spec options, with `register`'s defaults or (for `update`) none: an option
    not given is None."""

    def decorate(func):
        for flag, _, kind, default, text in reversed(SPEC_OPTIONS):
            if defaults:
                option = click.option(
                    flag, type=kind, default=default, show_default=default is not None, help=text
                )
            else:
                unit = "tokens; " if text == "tokens" else ""
                option = click.option(flag, type=kind, help=f"{unit}[default: unchanged]")
            func = option(func)
        return func

    return decorate


@send_command(provider, "register")
@spec_options(defaults=True)
@click.option("--uri", default="", help="metadata URI")
def provider_register(
    account, manifest, cpus, memory_mb, gpus, gpu_model, vram_mb, region, price_per_second,
    max_jobs, uri,
):  # fmt: skip
    """Register a device (needs free stake of MIN_STAKE_PER_DEVICE per device)."""
    from computeshare.specs import device_spec

    if gpu_model is None:
        gpu_model = "nvidia-a100-80gb" if gpus else ""
    if vram_mb is None:
        vram_mb = 80 * 1024 if gpus else 0
    spec = device_spec(
        cpu_cores=cpus,
        memory_mb=memory_mb,
        gpu_count=gpus,
        gpu_model=gpu_model.encode(),
        vram_mb=vram_mb,
        region=region,
        price_per_second=tokens(price_per_second),
        max_concurrent_jobs=max_jobs,
    )
    cs = connect(manifest, account)
    device = cs.register_device(spec, uri)
    say(f"device 0x{device.hex()}", device=device)


# What each device action does (its help text; DeviceRegistry's pause, resume and retire).
DEVICE_ACTIONS = {
    "pause": "Take one of your active devices out of service (no new jobs) until you resume it.",
    "resume": "Put one of your paused devices back into service.",
    "retire": "Retire one of your devices, active or paused, for good.",
}


def _device_action(action: str):
    def run(account, manifest, device_id):
        cs = connect(manifest, account)
        device_id = resolve_device(cs, device_id)
        cs.set_device_status(device_id, action)
        say(f"device 0x{device_id.hex()}: {action}d", device=device_id, action=action)

    # click reads the help text when the command is made: it is set before.
    run.__doc__ = f"{DEVICE_ACTIONS[action]} DEVICE: its id or a prefix of 6+ digits."
    return send_command(provider, action)(device_argument(run))


for _action in DEVICE_ACTIONS:
    _device_action(_action)


@send_command(provider, "stake")
@amount_argument
@approve_max_option
def provider_stake(account, manifest, amount, approve_max):
    """Bond AMOUNT tokens as your own stake (approves Staking for exactly AMOUNT first)."""
    cs = connect(manifest, account)
    cs.stake(amount, approve_max=approve_max)
    bonded = cs.staking.bonded_stake(account)
    say(f"bonded stake: {show(bonded)} tokens", bonded_stake=bonded)


@send_command(provider, "thaw")
@amount_argument
def provider_thaw(account, manifest, amount):
    """Start thawing AMOUNT tokens of free stake (withdrawable after the thawing period)."""
    cs = connect(manifest, account)
    cs.thaw(amount)
    pool = cs.staking.pool(account)
    say(
        f"thawing {show(pool.own_thawing)} tokens: withdrawable "
        f"{when(pool.own_unlock_at, chain_now())}",
        thawing=pool.own_thawing, unlock_at=pool.own_unlock_at,
    )  # fmt: skip


@send_command(provider, "withdraw")
def provider_withdraw(account, manifest):
    """Withdraw stake whose thawing period has passed."""
    cs = connect(manifest, account)
    withdrawn = cs.withdraw_stake()
    say(f"withdrawn: {show(withdrawn)} tokens", withdrawn=withdrawn)


@send_command(provider, "cancel-thaw")
def provider_cancel_thaw(account, manifest):
    """Bond your whole thawing own stake again (stops the thaw `provider thaw` started)."""
    cs = connect(manifest, account)
    event = cs.cancel_thaw()
    say(
        f"thaw cancelled: {show(event['amount'])} tokens bonded again; "
        f"own stake {show(event['own_stake'])} tokens",
        amount=event["amount"], own_stake=event["own_stake"],
    )  # fmt: skip


def cut_bps(text: str | None, bps: int | None) -> int:
    """The cut from CUT ("12.5%") or --bps, in basis points; one-line refusals."""
    if (text is None) == (bps is None):
        raise click.UsageError(
            "give the cut as a percentage (12.5%) or --bps N, not both"
            if text is not None
            else "give the cut: a percentage like 12.5%, or --bps N"
        )
    if bps is None:
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*", text)
        if match is None:
            raise click.BadParameter(
                f"{text!r} is not a percentage like 12.5% (or give --bps)", param_hint="CUT"
            )
        value = Decimal(match[1]) * 100
        if value != value.to_integral_value():
            raise click.BadParameter(f"{text} is not a whole basis point", param_hint="CUT")
        bps = int(value)
    if bps > BPS:
        raise click.BadParameter(f"a cut of {bps / 100:g}% is above 100%", param_hint="CUT")
    return bps


@send_command(provider, "set-cut")
@click.argument("cut", required=False)
@click.option("--bps", type=click.IntRange(0), help="the cut in basis points (10000 = 100%)")
def provider_set_cut(account, manifest, cut, bps):
    """Set the share of your income that goes to your delegators: CUT as a percentage
    (12.5%) or --bps N. With delegators in your pool (or warming up) it takes effect
    after CUT_CHANGE_DELAY, so they can leave first; with none, at once."""
    value = cut_bps(cut, bps)
    cs = connect(manifest, account)
    event = cs.set_delegator_cut(value)
    now = chain_now()
    effect = (
        "in force now"
        if event["effective_at"] <= now
        else f"takes effect {when(event['effective_at'], now)}"
    )
    say(
        f"delegator cut {event['cut_bps'] / 100:g}% ({event['cut_bps']} bps): {effect}",
        provider=event["provider"], cut_bps=event["cut_bps"], effective_at=event["effective_at"],
    )  # fmt: skip


# Spec fields as the options name them, for "updated (gpus 2 -> 4)".
_NAMES = {field: flag.removeprefix("--") for flag, field, *_ in SPEC_OPTIONS}
_NAMES["metadata_uri"] = "metadata-uri"


def _shown(field: str, value) -> str:
    if field == "price_per_second":
        return show(value)
    if isinstance(value, bytes):
        return value.rstrip(b"\x00").decode(errors="replace") or "none"
    return str(value) if value != "" else "none"


@send_command(provider, "update")
@device_argument
@spec_options(defaults=False)
@click.option("--metadata-uri", help="the device's new metadata URI")
def provider_update(
    account, manifest, device_id, cpus, memory_mb, gpus, gpu_model, vram_mb, region,
    price_per_second, max_jobs, metadata_uri,
):  # fmt: skip
    """Change one of your devices (DEVICE: its id or a prefix of 6+ digits): only the
    options given change, every other field keeps its current value (changing hardware
    voids the device's audit). --gpus 0 drops the GPU model and VRAM."""
    given = dict(zip(
        (field for _, field, *_ in SPEC_OPTIONS),
        (cpus, memory_mb, gpus, gpu_model, vram_mb, region, price_per_second, max_jobs),
        strict=True,
    ))  # fmt: skip
    changes = {field: value for field, value in given.items() if value is not None}
    if "price_per_second" in changes:
        changes["price_per_second"] = tokens(changes["price_per_second"])
    if "gpu_model" in changes and len(changes["gpu_model"].encode()) > 32:
        raise click.BadParameter("at most 32 bytes", param_hint="--gpu-model")
    cs = connect(manifest, account)
    device_id = resolve_device(cs, device_id)
    event = cs.update_device(device_id, changes, metadata_uri)
    changed = event["changed"]
    shown = ", ".join(
        f"{_NAMES[f]} {_shown(f, before)} -> {_shown(f, after)}"
        for f, (before, after) in changed.items()
    )
    say(
        f"device 0x{device_id.hex()}: updated ({shown})",
        device=device_id, owner=event["owner"], spec=event["spec"],
        metadata_uri=event["metadata_uri"], changed=list(changed),
    )  # fmt: skip
