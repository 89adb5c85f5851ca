"""`computeshare token`: ComputeToken balances, transfers and voting delegation.

Tokens carry votes only once delegated (ERC-5805), to oneself or to another holder: a
fresh deployment's holder has a balance and no votes until `token delegate`.
"""

from __future__ import annotations

import click

from computeshare.cli.common import (
    address,
    amount_argument,
    connect,
    require,
    say,
    send,
    show,
)
from computeshare.cli.read import send_command


@click.group()
def token():
    """Balances, transfers and voting delegation."""


@send_command(token, "transfer")
@click.argument("to")
@amount_argument
def token_transfer(account, manifest, to, amount):
    """Send AMOUNT tokens to address TO."""
    to = address(to)
    cs = connect(manifest, account)
    require(cs.token.balanceOf(account), amount, "balance")
    send("transferring", cs.token.transfer, to, amount, sender=account)
    balance = cs.token.balanceOf(account)
    say(f"sent {show(amount)} tokens to {to}", sent=amount, to=to)
    say(f"your balance: {show(balance)} tokens", balance=balance)


@send_command(token, "delegate")
@click.argument("to", required=False)
def token_delegate(account, manifest, to):
    """Delegate your votes to address TO (default: yourself). Your whole balance, now and
    later, counts as TO's votes from the next second on; a proposal counts the votes held
    at its snapshot."""
    from computeshare.governance import method

    to = address(to) if to else account.address
    cs = connect(manifest, account)
    if cs.token.delegates(account) == to:
        raise click.ClickException(f"your votes already go to {to}")
    # ERC-5805 `delegate`, which ape's `BaseAddress.delegate` (EIP-7702) shadows.
    send("delegating votes", method(cs.token, "delegate"), to, sender=account)
    who = "yourself" if to == account.address else to
    balance, votes = cs.token.balanceOf(account), cs.token.getVotes(to)
    say(
        f"votes delegated to {who}: {show(balance)} tokens; {to} now has {show(votes)} votes",
        delegate=to, balance=balance, votes=votes,
    )  # fmt: skip


@send_command(token, "balance", optional_account=True)
@click.argument("holder", metavar="[ADDRESS]", required=False)
def token_balance(account, manifest, holder):
    """Show ADDRESS's (or --account's) balance, votes and delegate."""
    if holder is None and account is None:
        raise click.UsageError("give an ADDRESS or --account")
    holder = address(holder) if holder else account.address
    cs = connect(manifest)
    delegate = raw_delegate = cs.token.delegates(holder)
    if int(delegate, 16) == 0:
        delegate = "nobody (`computeshare token delegate` turns the balance into votes)"
    elif delegate == holder:
        delegate = "itself"
    balance, votes = cs.token.balanceOf(holder), cs.token.getVotes(holder)
    escrow = cs.escrow.balanceOf(holder)
    say(f"address:  {holder}", address=holder)
    say(f"balance:  {show(balance)} tokens", balance=balance)
    say(f"votes:    {show(votes)}", votes=votes)
    say(f"delegate: {delegate}", delegate=raw_delegate)
    say(f"escrow:   {show(escrow)} tokens (JobEscrow balance)", escrow_balance=escrow)
