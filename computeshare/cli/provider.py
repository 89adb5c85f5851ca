"""`computeshare provider`: devices and the provider's own stake."""

from __future__ import annotations

import click

from computeshare.cli.common import (
    amount_argument,
    approve_max_option,
    chain_now,
    command,
    connect,
    device_argument,
    resolve_device,
    say,
    send,
    show,
    tokens,
    when,
)


@click.group()
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


def _device_action(action: str):
    @command(provider, action)
    @device_argument
    def run(account, manifest, device_id):
        cs = connect(manifest, account)
        device_id = resolve_device(cs, device_id)
        if cs.registry.device(device_id).owner != account.address:
            raise click.ClickException(f"device 0x{device_id.hex()} is not yours")
        send(f"{action} device", getattr(cs.registry, action), device_id, sender=account)
        say(f"device 0x{device_id.hex()}: {action}d", device=device_id, action=action)

    run.__doc__ = (
        f"{action.capitalize()} one of your devices (DEVICE: its id or a prefix of 6+ digits)."
    )
    return run


for _action in ("pause", "resume", "retire"):
    _device_action(_action)


@command(provider, "stake")
@amount_argument
@approve_max_option
def provider_stake(account, manifest, amount, approve_max):
    """Bond AMOUNT tokens as your own stake (approves Staking for exactly AMOUNT first)."""
    cs = connect(manifest, account)
    cs.stake(amount, approve_max=approve_max)
    bonded = cs.staking.bonded_stake(account)
    say(f"bonded stake: {show(bonded)} tokens", bonded_stake=bonded)


@command(provider, "thaw")
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


@command(provider, "withdraw")
def provider_withdraw(account, manifest):
    """Withdraw stake whose thawing period has passed."""
    cs = connect(manifest, account)
    withdrawn = cs.withdraw_stake()
    say(f"withdrawn: {show(withdrawn)} tokens", withdrawn=withdrawn)
