"""The main job: ComputeShare on a local node.

Starts anvil (through ape-foundry), deploys ComputeToken, hands tokens to a few holders who
delegate in different ways (self, to another holder, by signature), then prints balances,
votes and the gas each step used. The node stops when the script ends.
"""

from __future__ import annotations

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand

from computeshare.gas import format_table
from computeshare.signing import sign_delegation

TOKEN = 10**18
INITIAL_SUPPLY = 1_000_000_000 * TOKEN


def _step(message: str) -> None:
    click.echo(f"==> {message}")


@click.command(cls=ConnectedProviderCommand)
def cli():
    """Deploy ComputeToken on a local node and show balances and votes."""
    treasury, provider, client, delegator, voter = accounts.test_accounts[:5]
    names = {
        treasury.address: "treasury",
        provider.address: "provider",
        client.address: "client",
        delegator.address: "delegator",
        voter.address: "voter",
    }
    gas: list[dict] = []

    _step(f"deploying ComputeToken on chain {chain.chain_id}")
    token = treasury.deploy(project.ComputeToken, treasury, INITIAL_SUPPLY)
    gas.append(
        {"step": "deploy ComputeToken", "gas_used": chain.get_receipt(token.txn_hash).gas_used}
    )

    _step("distributing tokens")
    for account, amount in (
        (provider, 50_000),
        (client, 20_000),
        (delegator, 30_000),
        (voter, 10_000),
    ):
        receipt = token.transfer(account, amount * TOKEN, sender=treasury)
        gas.append({"step": f"transfer to {names[account.address]}", "gas_used": receipt.gas_used})

    _step("delegating: provider and voter vote themselves, delegator delegates to provider")
    for account, to in ((provider, provider), (voter, voter)):
        receipt = token.invoke_transaction("delegate", to, sender=account)
        gas.append(
            {"step": f"{names[account.address]} self-delegates", "gas_used": receipt.gas_used}
        )
    expiry = chain.pending_timestamp + 3_600
    nonce = token.nonces(delegator)
    signature = sign_delegation(
        delegator.private_key,
        chain_id=chain.chain_id,
        token=token.address,
        delegatee=provider.address,
        nonce=nonce,
        expiry=expiry,
    )
    # The voter relays the delegator's signed delegation and pays its gas.
    receipt = token.delegateBySig(provider, nonce, expiry, *signature.args, sender=voter)
    gas.append({"step": "delegator delegates by signature", "gas_used": receipt.gas_used})

    _step("a delegated transfer moves votes")
    receipt = token.transfer(voter, 5_000 * TOKEN, sender=delegator)
    gas.append({"step": "delegator pays voter", "gas_used": receipt.gas_used})

    chain.mine()
    rows = []
    for address, name in names.items():
        delegate = token.delegates(address)
        rows.append(
            {
                "account": name,
                "balance": f"{token.balanceOf(address) / TOKEN:,.0f}",
                "delegates to": names.get(delegate, "-"),
                "votes": f"{token.getVotes(address) / TOKEN:,.0f}",
            }
        )
    click.echo()
    click.echo(format_table(rows, ["account", "balance", "delegates to", "votes"]))
    click.echo()
    click.echo(f"total supply: {token.totalSupply() / TOKEN:,.0f} CSHR at {token.address}")
    click.echo()
    click.echo(format_table(gas, ["step", "gas_used"]))
