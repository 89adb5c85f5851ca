"""Gas table for ComputeToken, side by side with OpenZeppelin 5.7.0 ERC20Votes + ERC20Permit.

Run: `make bench` (or `ape run bench_token`). Each measured transaction is alone in its block,
a block later in time than the previous one, so vote checkpoints append as they would on a
live chain. "above intrinsic" is gasUsed minus 21,000 minus calldata: what the contract costs.
"""

from __future__ import annotations

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand

from computeshare.constants import TOKEN
from computeshare.report import format_table
from computeshare.signing import sign_permit
from devtools.gas import gas_row

BLOCK_TIME = 12

# Peer figures, gas above intrinsic: OpenZeppelin 5.7.0 ERC20Votes + ERC20Permit, solc 0.8.30,
# optimizer 200 runs, prague, anvil 1.7.1, one transaction per block.
PEER = {
    "transfer, existing holder, no delegation": 17_572,
    "transfer, fresh recipient": 34_672,
    "transfer, both self-delegated": 82_883,
    "first self-delegate": 74_098,
    "first permit": 51_518,
}


def _next_block() -> None:
    chain.pending_timestamp += BLOCK_TIME


def measure() -> list[dict]:
    deployer, holder, other, delegator_a, delegator_b, fresh_owner, spender = (
        accounts.test_accounts[:7]
    )
    token = deployer.deploy(project.ComputeToken, deployer, 1_000_000_000 * TOKEN)
    for account in (holder, other, delegator_a, delegator_b, fresh_owner):
        token.transfer(account, 1_000 * TOKEN, sender=deployer)
    for account in (delegator_a, delegator_b):
        token.invoke_transaction("delegate", account, sender=account)

    rows = []

    def run(label: str, send) -> None:
        _next_block()
        rows.append(gas_row(label, send(), PEER.get(label)))

    run(
        "transfer, existing holder, no delegation",
        lambda: token.transfer(other, TOKEN, sender=holder),
    )
    run(
        "transfer, fresh recipient",
        lambda: token.transfer("0x000000000000000000000000000000000000bEEF", TOKEN, sender=holder),
    )
    run(
        "transfer, both self-delegated",
        lambda: token.transfer(delegator_b, TOKEN, sender=delegator_a),
    )
    run("first self-delegate", lambda: token.invoke_transaction("delegate", holder, sender=holder))
    run(
        "re-delegate (self to another delegate)",
        lambda: token.invoke_transaction("delegate", delegator_b, sender=delegator_a),
    )
    deadline = chain.pending_timestamp + 3_600
    signature = sign_permit(
        fresh_owner.private_key,
        chain_id=chain.chain_id,
        token=token.address,
        owner=fresh_owner.address,
        spender=spender.address,
        value=10 * TOKEN,
        nonce=token.nonces(fresh_owner),
        deadline=deadline,
    )
    run(
        "first permit",
        lambda: token.permit(
            fresh_owner, spender, 10 * TOKEN, deadline, *signature.args, sender=spender
        ),
    )
    return rows


@click.command(cls=ConnectedProviderCommand)
def cli():
    """Print the ComputeToken gas table."""
    rows = measure()
    click.echo(format_table(rows, ["operation", "gas_used", "above_intrinsic", "peer", "vs_peer"]))
