"""`computeshare delegator`: delegations to provider pools."""

from __future__ import annotations

import click

from computeshare.cli.common import (
    amount_argument,
    approve_max_option,
    chain_now,
    connect,
    say,
    show,
    tokens,
    when,
)
from computeshare.cli.read import send_command


@click.group()
def delegator():
    """Delegate stake to providers and share their income."""


@send_command(delegator, "delegate")
@click.argument("provider_address")
@amount_argument
@click.option(
    "--min-cut",
    type=click.IntRange(0, 10_000),
    default=None,
    help="Least delegator cut you accept, in basis points (default: the provider's cut now).",
)
@approve_max_option
def delegator_delegate(account, manifest, provider_address, amount, min_cut, approve_max):
    """Delegate AMOUNT tokens to PROVIDER_ADDRESS's pool (approves exactly AMOUNT first).

    The tokens warm up first (Staking's WARMUP): they bear the pool's slashes but earn
    nothing until `activate` turns them into shares; `cancel-warmup` sends them thawing
    like `undelegate`. The transaction reverts if the provider's cut, or one it
    scheduled, is below --min-cut."""
    cs = connect(manifest, account)
    cs.delegate(provider_address, amount, min_cut=min_cut, approve_max=approve_max)
    if min_cut is None:  # the library's default: the provider's cut then, as now
        min_cut = cs.staking.delegator_cut(provider_address)
    position = cs.staking.delegation(provider_address, account)
    say(
        f"warming up: {show(position.warming)} tokens at a cut of at least {min_cut / 100:g}%; "
        f"activate {when(position.warm_until, chain_now())}",
        warming=position.warming, min_cut_bps=min_cut, warm_until=position.warm_until,
    )  # fmt: skip


@send_command(delegator, "activate")
@click.argument("provider_address")
def delegator_activate(account, manifest, provider_address):
    """Turn your warmed-up tokens at PROVIDER_ADDRESS into pool shares."""
    cs = connect(manifest, account)
    shares = cs.activate(provider_address)
    worth = cs.share_value(provider_address, shares)
    say(f"shares received: {shares:,} (worth {show(worth)} tokens)", shares=shares, worth=worth)


@send_command(delegator, "cancel-warmup")
@click.argument("provider_address")
def delegator_cancel_warmup(account, manifest, provider_address):
    """Send tokens warming up at PROVIDER_ADDRESS thawing (then `withdraw`)."""
    cs = connect(manifest, account)
    cancelled = cs.cancel_warmup(provider_address)
    say(
        f"thawing {show(cancelled['amount'])} tokens: withdrawable "
        f"{when(cancelled['unlock_at'], chain_now())}",
        thawing=cancelled["amount"], unlock_at=cancelled["unlock_at"],
    )  # fmt: skip


@send_command(delegator, "undelegate")
@click.argument("provider_address")
@click.argument("shares", type=click.IntRange(1), required=False)
@click.option(
    "--tokens",
    "amount",
    callback=lambda ctx, param, value: None if value is None else tokens(value),
    help="undelegate the shares worth at most AMOUNT tokens at the pool's price now",
    metavar="AMOUNT",
)
@click.option("--all", "everything", is_flag=True, help="undelegate every share you hold")
def delegator_undelegate(account, manifest, provider_address, shares, amount, everything):
    """Start thawing part of your delegation to PROVIDER_ADDRESS: SHARES (raw pool
    shares), --tokens AMOUNT (rounded down to whole shares, never more than AMOUNT) or
    --all. The tokens unlock after the thawing period (then `withdraw`)."""
    if sum((shares is not None, amount is not None, everything)) != 1:
        raise click.UsageError(
            "give SHARES, --tokens AMOUNT or --all"
            if shares is None and amount is None and not everything
            else "give only one of SHARES, --tokens and --all"
        )
    cs = connect(manifest, account)
    event = cs.undelegate(provider_address, shares, tokens=amount, everything=everything)
    say(
        f"thawing {show(event['amount'])} tokens ({event['shares']:,} shares): withdrawable "
        f"{when(event['unlock_at'], chain_now())}",
        shares=event["shares"], thawing=event["amount"], unlock_at=event["unlock_at"],
    )  # fmt: skip


@send_command(delegator, "withdraw")
@click.argument("provider_address")
def delegator_withdraw(account, manifest, provider_address):
    """Withdraw a thawed delegation from PROVIDER_ADDRESS."""
    cs = connect(manifest, account)
    withdrawn = cs.withdraw_delegation(provider_address)
    say(f"withdrawn: {show(withdrawn)} tokens", withdrawn=withdrawn)
