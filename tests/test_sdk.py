"""The library alone, as a Python dApp uses it: `ComputeShare` over a deployment on the
local node refuses what would fail with a typed `ComputeShareError` before its first
transaction (the account's nonce does not move), approves exactly what it needs unless
asked for more, and names the bond a dispute needs and approves JobDisputes for it."""

from __future__ import annotations

from pathlib import Path

import ape
import pytest
from eth_account import Account

from computeshare.client import ComputeShare
from computeshare.constants import DAY, MAX_AMOUNT, MAX_REPLICAS, MAX_UINT, TOKEN
from computeshare.exceptions import (
    ComputeShareError,
    InsufficientBalance,
    InsufficientStake,
    InvalidInput,
    NoEligibleDevice,
    NoSuchJob,
    NotAllowed,
    NotAProvider,
    WrongState,
)
from computeshare.sandbox import RunResult
from computeshare.signing import sign_offer as sign_with_key
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


def test_expire_refuses_an_early_or_settled_job_then_settles_from_its_event(
    as_, accounts, submitted, chain
):
    keeper = as_(10)
    refused(keeper, NoSuchJob, "no job 0x0101", keeper.expire_job, b"\x01" * 32)
    refused(keeper, WrongState, "not yet: result in: it waits out its challenge window",
            keeper.expire_job, submitted)  # fmt: skip
    chain.pending_timestamp = keeper.job(submitted)["phase_end"]
    settled = keeper.expire_job(submitted)
    assert settled["job_id"] == submitted and settled["paid"] == PRICE - settled["fees"] > 0
    assert keeper.job(submitted)["status_name"] == "finalized"
    refused(keeper, WrongState, "is finalized, not open", keeper.expire_job, submitted)


def test_device_status_changes_refuse_what_the_registry_would(as_, accounts):
    provider, other = as_(4), as_(10)
    provider.stake(5_000 * TOKEN)
    device = provider.register_device(device_spec(), "")
    refused(other, NotAllowed, "is not yours", other.set_device_status, device, "pause")
    refused(provider, InvalidInput, "no device 0x0202", provider.set_device_status,
            b"\x02" * 32, "pause")  # fmt: skip
    refused(provider, InvalidInput, "not 'destroy'd", provider.set_device_status, device,
            "destroy")  # fmt: skip
    refused(provider, WrongState, "is active: it cannot be resumed", provider.set_device_status,
            device, "resume")  # fmt: skip
    changed = provider.set_device_status(device, "pause")
    assert (changed["previous_status"], changed["new_status"], changed["active_devices"]) == (
        1,
        2,
        0,
    )
    refused(provider, WrongState, "is paused: it cannot be paused", provider.set_device_status,
            device, "pause")  # fmt: skip
    assert provider.set_device_status(device, "resume")["new_status"] == 1
    assert provider.set_device_status(device, "retire")["new_status"] == 3
    for action in ("pause", "resume", "retire"):
        refused(provider, WrongState, "is retired", provider.set_device_status, device, action)


def test_cancel_warmup_and_withdraw_delegation_refuse_before_sending(as_, accounts, chain):
    provider, delegator = as_(4), as_(10)
    provider.stake(1_000 * TOKEN)
    where = accounts[4].address
    refused(delegator, InvalidInput, "is not an address", delegator.cancel_warmup, "0x12")
    refused(delegator, WrongState, "nothing is warming up", delegator.cancel_warmup, where)
    refused(delegator, WrongState, "nothing is thawing", delegator.withdraw_delegation, where)
    delegator.delegate(where, 100 * TOKEN)
    cancelled = delegator.cancel_warmup(where)
    assert cancelled["amount"] == 100 * TOKEN and cancelled["delegator"] == accounts[10].address
    refused(delegator, WrongState, "nothing is warming up", delegator.cancel_warmup, where)
    refused(delegator, WrongState, "100 tokens are still thawing: they unlock 20",
            delegator.withdraw_delegation, where)  # fmt: skip
    wallet = delegator.token.balanceOf(accounts[10])
    chain.pending_timestamp = cancelled["unlock_at"]
    assert delegator.withdraw_delegation(where) == 100 * TOKEN
    assert delegator.token.balanceOf(accounts[10]) == wallet + 100 * TOKEN
    refused(delegator, WrongState, "nothing is thawing", delegator.withdraw_delegation, where)


@pytest.fixture
def offering(as_, accounts):
    """accounts[4] with 5,000 tokens staked and one device; accounts[12] its client."""
    provider = as_(4)
    provider.stake(5_000 * TOKEN)
    provider.register_device(device_spec(), "")
    return provider, as_(12)


def signed(provider, client, **terms) -> dict:
    """An offer signed by `provider` for `client`; signing sends nothing."""
    nonce = provider.account.nonce
    offer = provider.sign_offer(client.account.address, PRICE, **terms)
    assert provider.account.nonce == nonce
    return offer


def test_sign_offer_refuses_terms_no_match_could_meet(offering, as_, accounts):
    provider, client = offering
    me = client.account.address
    refused(provider, InvalidInput, "is not an address", provider.sign_offer, "0x12", PRICE)
    refused(provider, InvalidInput, "96 bits", provider.sign_offer, me, 2**96)
    refused(provider, InvalidInput, "1s or more", provider.sign_offer, me, PRICE, min_duration=0)
    refused(provider, InvalidInput, "at least min_duration", provider.sign_offer, me, PRICE,
            min_duration=2 * DAY, max_duration=DAY)  # fmt: skip
    refused(provider, InvalidInput, "MAX_JOB_DURATION", provider.sign_offer, me, PRICE,
            min_duration=8 * DAY)  # fmt: skip
    refused(provider, InvalidInput, "the spec", provider.sign_offer, me, PRICE, spec=b"{}")
    refused(provider, InvalidInput, "not both", provider.sign_offer, me, PRICE, spec=SPEC,
            spec_hash=bytes(32))  # fmt: skip
    refused(as_(10), WrongState, "you have no device", as_(10).sign_offer, me, PRICE)
    theirs = provider.registry.device_id_of(accounts[4], 0)
    refused(as_(10), NotAllowed, "is not yours", as_(10).sign_offer, me, PRICE, device=theirs)
    offer = signed(provider, client, nonce=5, collateral=6_000 * TOKEN, max_duration=30 * DAY)
    assert offer.warnings == [
        "JobEscrow refuses deadlines more than 7d away (MAX_JOB_DURATION)",
        "your free stake is 5,000 tokens, less than the collateral: a match would revert "
        "until you stake more",
    ]
    assert offer.document["offer"]["nonce"] == "5" and offer.terms["device_nonce"] == 0
    assert offer.document["offer_book"] == str(provider.offers.address)
    provider.cancel_offer(5)
    refused(provider, WrongState, "nonce 5 is already matched", provider.sign_offer, me, PRICE,
            nonce=5)  # fmt: skip
    refused(provider, WrongState, "offer 5 is already matched or cancelled",
            provider.cancel_offer, 5)  # fmt: skip
    provider.set_device_status(theirs, "pause")
    refused(provider, WrongState, "is not active", provider.sign_offer, me, PRICE)


def test_match_offer_checks_the_offer_before_funding_then_posts_the_job(
    offering, as_, accounts, chain
):
    provider, client = offering
    offer = signed(provider, client, nonce=7, spec=SPEC, min_duration=DAY // 2, max_duration=DAY)
    document = offer.document
    other = as_(10)
    refused(
        other,
        NotAllowed,
        "this offer is for 0x",
        other.match_offer,
        document,
        SPEC,
        max_price=PRICE,
    )
    refused(client, InvalidInput, "this offer is for the spec", client.match_offer, document,
            encode_spec("sha256-chain", {"seed": "b", "rounds": 9}), max_price=PRICE)  # fmt: skip
    refused(
        client,
        InvalidInput,
        "the spec",
        client.match_offer,
        document,
        b"not a spec",
        max_price=PRICE,
    )
    refused(client, InvalidInput, "outside the offer's 12h to 1d", client.match_offer,
            document, SPEC, max_price=PRICE, duration=2 * DAY)  # fmt: skip
    elsewhere = {**document, "chain_id": document["chain_id"] + 1}
    refused(
        client,
        InvalidInput,
        "not this deployment's",
        client.match_offer,
        elsewhere,
        SPEC,
        max_price=PRICE,
    )
    broken = {**document, "signature": "0xzz"}
    refused(
        client,
        InvalidInput,
        "not a signed offer",
        client.match_offer,
        broken,
        SPEC,
        max_price=PRICE,
    )
    rich = signed(provider, client, nonce=8, collateral=6_000 * TOKEN)
    refused(client, WrongState, "the provider's free stake is 5,000 tokens",
            client.match_offer, rich.document, SPEC, max_price=PRICE)  # fmt: skip
    assert client.said == [] and client.escrow.balanceOf(accounts[12]) == 0
    # The price is the provider's: the client names the most it pays.
    refused(client, InvalidInput, "this offer asks 100 tokens: name the most you pay",
            client.match_offer, document, SPEC)  # fmt: skip
    refused(client, InvalidInput, "asks 100 tokens, more than your most of 99",
            client.match_offer, document, SPEC, max_price=PRICE - TOKEN)  # fmt: skip
    # A document whose fields do not fit OfferBook's types, or signed by another key.
    for field, value, words in (("min_duration", 2**32, "does not fit in uint32"),
                                ("expiry", 2**48, "does not fit in uint48"),
                                ("price", float("inf"), "price is not an integer"),
                                ("nonce", True, "nonce is not an integer")):  # fmt: skip
        wrong = {**document, "offer": {**document["offer"], field: value}}
        refused(client, InvalidInput, words, client.match_offer, wrong, SPEC, max_price=PRICE)
    stranger = Account.create()
    signature = sign_with_key(stranger.key, chain_id=document["chain_id"],
                              offer_book=document["offer_book"], offer=offer.terms)  # fmt: skip
    forged = {**document, "signature": "0x" + signature.hex()}
    refused(client, InvalidInput, "the offer's signature is not its provider's",
            client.match_offer, forged, SPEC, max_price=PRICE)  # fmt: skip
    matched = client.match_offer(document, SPEC, max_price=PRICE)  # 12h 10m: past the floor
    assert client.said == ["approving JobEscrow to spend 100 tokens",
                           "depositing 100 tokens into your escrow balance"]  # fmt: skip
    view = client.job(matched["job_id"])
    assert (view["accepted"], matched["nonce"], matched["provider"]) == (1, 7, accounts[4].address)
    assert view["deadline"] == matched["deadline"]
    refused(
        client,
        WrongState,
        "offer 7 is already matched",
        client.match_offer,
        document,
        SPEC,
        max_price=PRICE,
    )
    chain.pending_timestamp = rich.terms["expiry"] + 1
    refused(client, WrongState, "the offer expired 20", client.match_offer, rich.document, SPEC,
            max_price=PRICE)  # fmt: skip
    history = client.offer_history()
    assert [(row["nonce"], row["state"]) for row in history] == [(7, "matched")]
    assert history[0]["job_id"] == matched["job_id"]
    assert client.offer_history(client=accounts[10].address) == []
    provider.cancel_offer(8)
    assert [row["state"] for row in client.offer_history(provider=accounts[4].address)] == [
        "matched", "cancelled"
    ]  # fmt: skip


def test_a_match_the_escrow_would_refuse_sends_nothing_even_when_it_must_deposit(
    offering, accounts
):
    """An offer whose range reaches past JobEscrow's MAX_JOB_DURATION (signing warns of it)
    matched at 10 days, inside its range: JobEscrow would refuse that deadline. The client's
    escrow balance is short, so the match would deposit first; it is refused before the
    approval and the deposit, not after them."""
    provider, client = offering
    offer = signed(provider, client, nonce=9, max_duration=30 * DAY)
    assert client.escrow.balanceOf(accounts[12]) == 0
    refused(client, InvalidInput, "a job's duration is at most 7d", client.match_offer,
            offer.document, SPEC, max_price=PRICE, duration=10 * DAY)  # fmt: skip
    assert client.said == [] and client.escrow.balanceOf(accounts[12]) == 0
