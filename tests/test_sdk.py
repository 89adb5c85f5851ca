"""The library alone, as a Python dApp uses it: `ComputeShare` over a deployment on the
local node refuses what would fail with a typed `ComputeShareError` before its first
transaction (the account's nonce does not move), approves exactly what it needs unless
asked for more, and names the bond a dispute needs and approves JobDisputes for it."""

from __future__ import annotations

from pathlib import Path

import ape
import pytest

from computeshare.client import ComputeShare
from computeshare.constants import DAY, MAX_AMOUNT, MAX_REPLICAS, MAX_UINT, TOKEN
from computeshare.exceptions import (
    ComputeShareError,
    InsufficientBalance,
    InsufficientStake,
    InvalidInput,
    NoEligibleDevice,
    NotAllowed,
    NotAProvider,
    WrongState,
)
from computeshare.sandbox import RunResult
from computeshare.specs import device_spec, job_requirements
from computeshare.workloads import encode_spec

SPEC = encode_spec("sha256-chain", {"seed": "a", "rounds": 9})
PRICE = 100 * TOKEN


@pytest.fixture
def manifest(deployed_manifest):
    return deployed_manifest


@pytest.fixture
def as_(manifest, accounts):
    """The deployment seen from accounts[n], with what it said collected in `said`."""

    def view(index: int) -> ComputeShare:
        cs = ComputeShare.from_manifest(manifest, account=accounts[index])
        cs.said = []
        cs.say = cs.said.append
        return cs

    return view


def refused(cs, error: type[ComputeShareError], match: str, call, *args, **kwargs):
    """`call` raises `error` (one line containing `match`) and sends nothing."""
    nonce = cs.account.nonce
    with pytest.raises(error, match=match) as raised:
        call(*args, **kwargs)
    assert "\n" not in str(raised.value)
    assert cs.account.nonce == nonce, "no transaction was sent"
    return raised.value


def post(cs, **overrides):
    terms = {"price": PRICE, "replicas": 1, "duration": DAY, **overrides}
    requirements = terms.pop("requirements", job_requirements())
    return cs.post_job(SPEC, requirements, **terms)


def test_post_refuses_what_would_revert_before_approving(as_, accounts):
    client = as_(12)
    unsatisfiable = job_requirements(min_gpu_count=200)
    refused(client, NoEligibleDevice, "no device can satisfy", post, client,
            requirements=unsatisfiable)  # fmt: skip
    refused(client, NoEligibleDevice, "compute_seconds", post, client,
            requirements=job_requirements(compute_seconds=0))  # fmt: skip
    refused(client, InvalidInput, "at most 9 replicas", post, client, replicas=10)
    refused(client, InvalidInput, "collateral", post, client, collateral=PRICE // 10)
    refused(client, InvalidInput, "at most 7d", post, client, duration=8 * DAY)
    refused(client, InvalidInput, "at least 60 s", post, client, duration=30)
    error = refused(client, InsufficientBalance, "needs 200,000 tokens", post, client,
                    price=100_000 * TOKEN, replicas=2)  # fmt: skip
    assert (error.have, error.need) == (100_000 * TOKEN, 200_000 * TOKEN)
    assert client.token.allowance(accounts[12], client.escrow) == 0
    assert client.said == []


def test_post_approves_exactly_unless_asked(as_, accounts):
    client = as_(12)
    job = post(client)
    assert client.job(job)["status_name"] == "open"
    assert client.said == ["approving JobEscrow to spend 100 tokens",
                           "depositing 100 tokens into your escrow balance"]  # fmt: skip
    assert client.token.allowance(accounts[12], client.escrow) == 0
    post(client, approve_max=True)
    assert client.token.allowance(accounts[12], client.escrow) > MAX_UINT // 2
    # The policy can be the client's default.
    other = as_(10)
    other.approve_max = True
    post(other)
    assert other.token.allowance(accounts[10], other.escrow) > MAX_UINT // 2


def test_register_device_needs_stake_first(as_):
    provider = as_(12)
    refused(provider, InsufficientStake, "stake 1,000 tokens first", provider.register_device,
            device_spec(), "")  # fmt: skip
    provider.stake(1_000 * TOKEN)
    refused(provider, InvalidInput, "at most 32 bytes", provider.register_device,
            device_spec(gpu_model=b"x" * 33), "")  # fmt: skip
    refused(provider, ComputeShareError, "cpu cores out of range", provider.register_device,
            device_spec(cpu_cores=0), "")  # fmt: skip
    provider.register_device(device_spec(), "")
    refused(provider, InsufficientStake, "stake 2,000 tokens first", provider.register_device,
            device_spec(), "")  # fmt: skip


def test_stake_checks_balance_and_minimum(as_):
    provider = as_(12)
    refused(provider, InvalidInput, "the minimum is 1,000", provider.stake, 10 * TOKEN)
    refused(provider, InsufficientBalance, "balance is 100,000 tokens", provider.stake,
            200_000 * TOKEN)  # fmt: skip


def test_delegate_refuses_a_non_provider_before_approving(as_, accounts):
    delegator, provider = as_(10), as_(4)
    refused(delegator, NotAProvider, "is not a provider", delegator.delegate,
            accounts[12].address, 100 * TOKEN)  # fmt: skip
    assert delegator.token.allowance(accounts[10], delegator.staking) == 0
    provider.stake(1_000 * TOKEN)
    refused(delegator, InvalidInput, "the minimum delegation is 100", delegator.delegate,
            accounts[4].address, TOKEN)  # fmt: skip
    refused(delegator, WrongState, "over its cap", delegator.delegate,
            accounts[4].address, 10_001 * TOKEN)  # fmt: skip
    refused(delegator, WrongState, "cut", delegator.delegate, accounts[4].address, 100 * TOKEN,
            min_cut=10_000)  # fmt: skip
    warming = delegator.delegate(accounts[4].address, 100 * TOKEN)
    assert warming == 100 * TOKEN
    assert delegator.said == ["approving Staking to spend 100 tokens"]
    assert delegator.token.allowance(accounts[10], delegator.staking) == 0


@pytest.fixture
def submitted(as_, accounts):
    """A k = 1 job of accounts[12] with a submitted result by accounts[4]'s device."""
    provider, client = as_(4), as_(12)
    provider.stake(5_000 * TOKEN)
    provider.register_device(device_spec(), "")
    job = post(client)
    provider.jobs.accept(job, 0, sender=accounts[4])
    provider.jobs.submit(job, RunResult(0, 1, b"out"), sender=accounts[4])
    return job


def test_dispute_approves_exactly_the_bond_and_gets_it_back(as_, accounts, submitted, chain):
    """The bond comes from the wallet into JobDisputes (approved for exactly it); unruled,
    the client reclaims it once the job is settled, then withdraws it."""
    client = as_(12)
    wallet = client.token.balanceOf(accounts[12])
    client.said.clear()
    bond = client.dispute(submitted)
    assert bond == 10 * TOKEN
    assert client.said == ["approving JobDisputes to spend 10 tokens"]
    assert client.job(submitted)["status_name"] == "disputed"
    assert client.job_disputes.bond(submitted) == bond
    assert client.token.balanceOf(accounts[12]) == wallet - bond
    assert client.token.allowance(accounts[12], client.job_disputes) == 0
    refused(client, WrongState, "is disputed", client.dispute, submitted)
    refused(client, WrongState, "not settled yet", client.reclaim_bond, submitted)
    refused(client, WrongState, "no bonds to withdraw", client.withdraw_bonds)
    chain.pending_timestamp = client.job(submitted)["phase_end"]
    client.jobs.finalize(submitted, sender=accounts[12])
    assert client.reclaim_bond(submitted) == bond
    refused(client, WrongState, "no bond to reclaim", client.reclaim_bond, submitted)
    assert client.withdraw_bonds() == bond
    assert client.token.balanceOf(accounts[12]) == wallet


def test_dispute_refusals_send_nothing(as_, accounts, submitted, chain):
    client, other = as_(12), as_(10)
    refused(other, NotAllowed, "not your job", other.dispute, submitted)
    refused(client, ComputeShareError, "no job", client.dispute, b"\x01" * 32)
    # Without the tokens for the bond, it is named and nothing is approved.
    client.token.transfer(accounts[9], client.token.balanceOf(accounts[12]), sender=accounts[12])
    refused(client, InsufficientBalance, "the dispute bond is 10 tokens; your balance is 0",
            client.dispute, submitted)  # fmt: skip
    chain.pending_timestamp += 2 * DAY
    refused(client, WrongState, "challenge window closed", client.dispute, submitted)
    fresh = post(as_(10))
    refused(other, WrongState, "no result to dispute", other.dispute, fresh)


def test_delegate_sees_a_scheduled_cut_below_the_minimum(as_, accounts):
    """A provider with delegators that schedules a lower cut: a delegation asking for the
    cut in force is refused before approving (Staking counts the scheduled one too)."""
    provider, first, second = as_(4), as_(10), as_(12)
    provider.stake(1_000 * TOKEN)
    provider.staking.set_delegator_cut(5_000, sender=accounts[4])
    first.delegate(accounts[4].address, 100 * TOKEN)
    provider.staking.set_delegator_cut(1_000, sender=accounts[4])  # scheduled: delegators in
    assert second.staking.delegator_cut(accounts[4]) == 5_000
    refused(second, WrongState, "10% .* below your minimum of 50%", second.delegate,
            accounts[4].address, 100 * TOKEN)  # fmt: skip
    assert second.said == []
    assert second.delegate(accounts[4].address, 100 * TOKEN, min_cut=1_000) == 100 * TOKEN


def test_a_covered_operation_sends_only_its_call(as_, accounts):
    """With the escrow balance and allowance in place nothing else is sent; a withdrawal
    beyond the balance is refused; another account's view keeps the policy."""
    client = as_(12)
    client.deposit(PRICE)
    nonce = accounts[12].nonce
    client.said.clear()
    post(client)
    assert accounts[12].nonce == nonce + 1 and client.said == []
    refused(client, InsufficientBalance, "escrow balance is 0 tokens", client.withdraw, TOKEN)
    client.approve_max = True
    assert client.as_account(accounts[10]).approve_max is True


def test_the_bounds_the_library_checks_are_the_contracts(as_, accounts, chain):
    """MAX_REPLICAS and MAX_AMOUNT are job_layout's and JobEscrow's: the escrow refuses one
    more replica and one more wei of price than the library lets through."""
    source = (Path(__file__).parent.parent / "contracts/modules/job_layout.vy").read_text()
    assert f"MAX_REPLICAS: constant(uint256) = {MAX_REPLICAS}\n" in source
    client = as_(12)
    client.deposit(TOKEN)
    deadline = chain.pending_timestamp + DAY
    args = (SPEC, job_requirements(), TOKEN // 10)
    with ape.reverts("job_escrow: replicas out of range"):
        client.escrow.post.call(*args, MAX_REPLICAS + 1, deadline, TOKEN, sender=accounts[12])
    with ape.reverts("job_escrow: amount too large"):
        client.escrow.post.call(SPEC, job_requirements(), MAX_AMOUNT + 1, 1, deadline,
                                MAX_AMOUNT, sender=accounts[12])  # fmt: skip
    refused(client, InvalidInput, "2\\*\\*96", post, client, price=MAX_AMOUNT + 1)


def test_cancel_thaw_withdraw_and_activate_refuse_before_sending(as_, accounts, submitted):
    client, other, provider = as_(12), as_(10), as_(4)
    refused(other, NotAllowed, "not your job", other.cancel_job, submitted)
    refused(client, WrongState, "is accepted", client.cancel_job, submitted)
    fresh = post(client)
    assert client.cancel_job(fresh) == PRICE
    assert client.job(fresh)["status_name"] == "cancelled"
    refused(client, WrongState, "is cancelled", client.cancel_job, fresh)
    free = provider.staking.free_stake(accounts[4])
    refused(provider, InsufficientBalance, "free stake is", provider.thaw, free + 1)
    refused(provider, WrongState, "nothing is thawing", provider.withdraw_stake)
    provider.thaw(TOKEN)
    refused(provider, WrongState, "1 tokens unlock 20", provider.withdraw_stake)
    refused(other, WrongState, "nothing is warming up", other.activate, accounts[4].address)
    other.delegate(accounts[4].address, 100 * TOKEN)
    refused(other, WrongState, "still warming up: activate 20", other.activate,
            accounts[4].address)  # fmt: skip
