"""Gas of DeviceRegistry and Staking operations on a chain with 10 and with 1,000 providers
and delegators: O(1) design means the figures must not grow with that number.

Run: `make bench` (or `ape run bench_staking`).
"""

from __future__ import annotations

import click
from ape import accounts, chain, project
from ape.cli import ConnectedProviderCommand

from computeshare.constants import TOKEN
from computeshare.report import format_table
from computeshare.specs import device_spec
from devtools.gas import execution_gas
from devtools.populate import Populator, addresses

SLASHER, LOCKER = 1, 2
SPEC = device_spec()
URI = "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi"


def deploy():
    deployer, escrow = accounts.test_accounts[:2]
    token = deployer.deploy(project.ComputeToken, deployer, 1_000_000_000 * TOKEN)
    staking = deployer.deploy(project.Staking, token, deployer)
    token.set_vault(staking, sender=deployer)
    registry = deployer.deploy(project.DeviceRegistry, staking)
    staking.set_roles(escrow, SLASHER | LOCKER, sender=deployer)
    return deployer, escrow, token, staking, registry


def populate(populator, deployer, token, staking, registry, start: int, count: int) -> None:
    """`count` more providers (stake + a device) and as many delegators (one delegation each)."""
    providers = addresses("provider", count, start)
    delegators = addresses("delegator", count, start)
    populator.fund_gas(providers + delegators)
    for account in providers + delegators:
        populator.send(deployer.address, token, "transfer", account, 20_000 * TOKEN)
    for account in providers + delegators:
        populator.send(account, token, "approve", staking.address, 2**256 - 1)
    populator.wait()
    for account in providers:
        populator.send(account, staking, "stake", 5_000 * TOKEN)
        populator.send(account, registry, "register", SPEC, URI)
    populator.wait()
    for i, account in enumerate(delegators):
        populator.send(account, staking, "delegate_to", providers[i], 1_000 * TOKEN, 0)
    populator.wait()
    chain.pending_timestamp += staking.parameter(7)  # WARMUP
    for i, account in enumerate(delegators):
        populator.send(account, staking, "activate", providers[i], account)
    populator.wait()


def measure(deployer, escrow, token, staking, registry) -> dict[str, tuple[int, int]]:
    """Gas (used, above intrinsic) of each operation, by a provider and a delegator new here."""
    provider = accounts.test_accounts.generate_test_account()
    delegator = accounts.test_accounts.generate_test_account()
    for account in (provider, delegator):
        deployer.transfer(account, 10**19)
        token.transfer(account, 100_000 * TOKEN, sender=deployer)
        token.approve(staking, 2**256 - 1, sender=account)
    gas: dict[str, tuple[int, int]] = {}

    def record(label, receipt):
        gas[label] = (
            receipt.gas_used,
            execution_gas(receipt.gas_used, bytes(receipt.transaction.data)),
        )
        return receipt

    device = record("register device", registry.register(SPEC, URI, sender=provider)).return_value
    new_price = {**SPEC, "price_per_second": 2 * 10**15}
    record("update device", registry.update(device, new_price, URI, sender=provider))
    record("stake (first)", staking.stake(10_000 * TOKEN, sender=provider))
    record("stake (again)", staking.stake(1_000 * TOKEN, sender=provider))
    record("delegate (first)", staking.delegate_to(provider, 2_000 * TOKEN, 0, sender=delegator))
    chain.pending_timestamp += staking.parameter(7)  # WARMUP
    record("activate delegation", staking.activate(provider, delegator, sender=delegator))
    record("lock collateral", staking.lock(provider, 1_000 * TOKEN, sender=escrow))
    record(
        "slash (with unlock)",
        staking.slash(provider, 500 * TOKEN, 1_000 * TOKEN, delegator, 2**256 - 1, sender=escrow),
    )
    record("request thaw", staking.request_thaw(2_000 * TOKEN, sender=provider))
    chain.pending_timestamp += staking.thawing_period()
    record("withdraw", staking.withdraw(sender=provider))
    return gas


@click.command(cls=ConnectedProviderCommand)
def cli():
    """Print registry and staking gas at 10 and 1,000 providers and delegators."""
    deployer, escrow, token, staking, registry = deploy()
    populator = Populator(chain.provider)
    populate(populator, deployer, token, staking, registry, 0, 10)
    small = measure(deployer, escrow, token, staking, registry)
    populate(populator, deployer, token, staking, registry, 10, 990)
    large = measure(deployer, escrow, token, staking, registry)
    rows = [
        {
            "operation": op,
            "gasUsed @10": small[op][0],
            "gasUsed @1,000": large[op][0],
            "above intrinsic @10": small[op][1],
            "above intrinsic @1,000": large[op][1],
            "growth": large[op][1] - small[op][1],
        }
        for op in small
    ]
    columns = [
        "operation",
        "gasUsed @10",
        "gasUsed @1,000",
        "above intrinsic @10",
        "above intrinsic @1,000",
    ]
    click.echo(format_table(rows, [*columns, "growth"]))
