"""`computeshare delegator`: delegations to provider pools."""

from __future__ import annotations

import click

from computeshare.cli.common import (
    amount_argument,
    approve,
    approve_max_option,
    chain_now,
    command,
    connect,
    require,
    send,
    show,
    when,
)


@click.group()
def delegator():
    """Delegate stake to providers and share their income."""


@command(delegator, "delegate")
@click.argument("provider_address")
@amount_argument
@approve_max_option
def delegator_delegate(account, manifest, provider_address, amount, approve_max):
    """Delegate AMOUNT tokens to PROVIDER_ADDRESS's pool (approves exactly AMOUNT first)."""
    from computeshare.params import parameter

    cs = connect(manifest, account)
    minimum = cs.staking.parameter(parameter("Staking", "MIN_DELEGATION").key)
    if amount < minimum:
        raise click.ClickException(f"the minimum delegation is {show(minimum)}")
    require(cs.token.balanceOf(account), amount, "balance")
    approve(cs, account, cs.staking, "Staking", amount, approve_max)
    receipt = send("delegating", cs.staking.delegate_to, provider_address, amount, sender=account)
    click.echo(f"shares received: {receipt.return_value}")


@command(delegator, "undelegate")
@click.argument("provider_address")
@click.argument("shares", type=click.IntRange(1))
def delegator_undelegate(account, manifest, provider_address, shares):
    """Start thawing SHARES of your delegation to PROVIDER_ADDRESS."""
    cs = connect(manifest, account)
    receipt = send("undelegating", cs.staking.undelegate, provider_address, shares, sender=account)
    position = cs.staking.delegation(provider_address, account)
    click.echo(
        f"thawing {show(receipt.return_value)} tokens: withdrawable "
        f"{when(position.unlock_at, chain_now())}"
    )


@command(delegator, "withdraw")
@click.argument("provider_address")
def delegator_withdraw(account, manifest, provider_address):
    """Withdraw a thawed delegation from PROVIDER_ADDRESS."""
    cs = connect(manifest, account)
    receipt = send("withdrawing", cs.staking.withdraw_delegation, provider_address, sender=account)
    click.echo(f"withdrawn: {show(receipt.return_value)} tokens")
