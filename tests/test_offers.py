"""OfferBook: what a provider's signed offer binds, so that the client who matches it
cannot turn it against the provider (a deadline too soon to meet, a spec the provider
never agreed to run, collateral locked for longer than offered), and the guarantees the
offer already had (one client, each nonce once, EIP-1271 signers) still hold."""

from __future__ import annotations

import json
import re

import ape
import pytest
from click.testing import CliRunner
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from computeshare.cli import main
from computeshare.client import ComputeShare
from computeshare.deploy import DeployConfig, Deployment, Manifest
from computeshare.governance import encode
from computeshare.jobs import STATUS_FINALIZED, commitment
from computeshare.signing import ANY_SPEC, OFFER_TYPES, domain, sign_offer, spec_hash
from computeshare.workloads import encode_spec
from tests.helpers import (
    COLLATERAL,
    DAY,
    GOOD,
    HOUR,
    PRICE,
    SALT,
    SPEC,
    TOKEN,
    gpu_spec,
    offer_terms,
    reveal,
)

OTHER_SPEC = b'{"workload": "sha256-chain", "input": "ff", "rounds": 1000000}'


@pytest.fixture
def offer_of(market, chain, chain_id):
    """offer_of(provider, client, key=provider's, **fields): an offer (tests.helpers
    defaults) and `key`'s signature over it."""

    def make(provider, client, *, key=None, **fields):
        offer = offer_terms(provider, client, chain, **fields)
        signature = sign_offer(
            key or provider.private_key,
            chain_id=chain_id,
            offer_book=market.offers.address,
            offer=offer,
        )
        return offer, signature

    return make


def at(chain, timestamp):
    """The next transaction's block has this timestamp."""
    chain.pending_timestamp = timestamp
    return timestamp


# ------------------------------------------------------------------ the deadline


def test_a_deadline_too_soon_to_meet_is_refused_and_a_fair_one_pays_the_provider(
    market, client, providers, chain, keeper, offer_of
):
    """The attack: match with a deadline one second away, let the provider miss it, then
    `expire` slashes the provider and compensates the client. The provider's floor
    refuses that deadline; at the floor, a provider that commits and reveals is paid."""
    m, p = market, providers[0]
    offer, signature = offer_of(p, client, min_duration=HOUR)
    now = at(chain, chain.blocks.head.timestamp + 10)
    with ape.reverts("offer_book: deadline too soon"):
        m.offers.match_offer(SPEC, now + 1, offer, signature, sender=client)
    with ape.reverts("offer_book: deadline too soon"):
        m.offers.match_offer(SPEC, now + HOUR - 1, offer, signature, sender=client)
    assert not m.offers.offer_used(p, offer["nonce"])

    now = at(chain, chain.blocks.head.timestamp + 10)
    job = m.offers.match_offer(SPEC, now + HOUR, offer, signature, sender=client).return_value
    info = m.jobs.view(job)
    assert info.deadline == now + HOUR
    chain.pending_timestamp = now + HOUR - 60  # the provider takes most of its hour
    m.jobs.commit(job, 0, commitment(job, p.address, GOOD, SALT), sender=p)
    reveal(m, job, p, 0, GOOD)
    with ape.reverts("job_escrow: challenge window still open"):
        m.jobs.expire(job, sender=client)
    chain.pending_timestamp = m.jobs.view(job).phase_end
    before = m.escrow.balanceOf(p)
    m.jobs.finalize(job, sender=keeper)
    fee = PRICE * info.fee_bps // 10_000
    assert m.escrow.balanceOf(p) == before + PRICE - fee
    assert m.jobs.view(job).status == STATUS_FINALIZED
    assert m.staking.pool(p).locked == 0


def test_a_deadline_past_the_providers_ceiling_is_refused(
    market, client, providers, chain, offer_of
):
    """`max_duration` bounds how long the collateral is locked; both bounds are inclusive."""
    m, p = market, providers[0]
    short, short_sig = offer_of(p, client, min_duration=HOUR, max_duration=2 * HOUR, nonce=1)
    now = at(chain, chain.blocks.head.timestamp + 10)
    with ape.reverts("offer_book: deadline too late"):
        m.offers.match_offer(SPEC, now + 2 * HOUR + 1, short, short_sig, sender=client)
    now = at(chain, chain.blocks.head.timestamp + 10)
    job = m.offers.match_offer(SPEC, now + 2 * HOUR, short, short_sig, sender=client).return_value
    assert m.jobs.view(job).deadline == now + 2 * HOUR

    exact, exact_sig = offer_of(p, client, min_duration=HOUR, max_duration=HOUR, nonce=2)
    now = at(chain, chain.blocks.head.timestamp + 10)
    with ape.reverts("offer_book: deadline too late"):
        m.offers.match_offer(SPEC, now + HOUR + 1, exact, exact_sig, sender=client)
    now = at(chain, chain.blocks.head.timestamp + 10)
    job = m.offers.match_offer(SPEC, now + HOUR, exact, exact_sig, sender=client).return_value
    assert m.jobs.view(job).deadline == now + HOUR


def test_an_offer_with_no_duration_range_is_refused(market, client, providers, chain, offer_of):
    """A provider that wants no floor signs 1 second: a zero floor, the value of a field
    left unset, is refused, as is a floor above the ceiling."""
    m, p = market, providers[0]
    deadline = chain.pending_timestamp + HOUR
    empty, empty_sig = offer_of(p, client, min_duration=2 * HOUR, max_duration=HOUR)
    with ape.reverts("offer_book: empty duration range"):
        m.offers.match_offer(SPEC, deadline, empty, empty_sig, sender=client)
    unset, unset_sig = offer_of(p, client, min_duration=0)
    with ape.reverts("offer_book: zero min_duration"):
        m.offers.match_offer(SPEC, deadline, unset, unset_sig, sender=client)
    no_floor, no_floor_sig = offer_of(p, client, min_duration=1)
    now = at(chain, chain.blocks.head.timestamp + 10)
    m.offers.match_offer(SPEC, now + 1, no_floor, no_floor_sig, sender=client)


# ------------------------------------------------------------------ the spec


def test_a_spec_other_than_the_offered_one_is_refused(market, client, providers, chain, offer_of):
    m, p = market, providers[0]
    offer, signature = offer_of(p, client, spec_hash=spec_hash(SPEC))
    deadline = chain.pending_timestamp + DAY
    with ape.reverts("offer_book: spec not offered"):
        m.offers.match_offer(OTHER_SPEC, deadline, offer, signature, sender=client)
    with ape.reverts("offer_book: spec not offered"):
        m.offers.match_offer(SPEC + b" ", deadline, offer, signature, sender=client)
    job = m.offers.match_offer(SPEC, deadline, offer, signature, sender=client).return_value
    assert m.jobs.view(job).spec_hash == keccak(SPEC)


def test_a_zero_spec_hash_accepts_any_spec(market, client, providers, chain, offer_of):
    m, p = market, providers[0]
    deadline = chain.pending_timestamp + DAY
    for nonce, spec in ((1, SPEC), (2, OTHER_SPEC)):
        offer, signature = offer_of(p, client, spec_hash=ANY_SPEC, nonce=nonce)
        job = m.offers.match_offer(spec, deadline, offer, signature, sender=client).return_value
        assert m.jobs.view(job).spec_hash == keccak(spec)


# ------------------------------------------------------------------ the signature


def test_the_offer_type_is_the_documented_one(market, client, providers, chain, chain_id):
    """The bounds follow `collateral` in the signed type, and the contract's digest is the
    one a wallet computes from computeshare.signing's typed data."""
    m = market
    assert [(f["type"], f["name"]) for f in OFFER_TYPES["Offer"]] == [
        ("address", "provider"),
        ("uint64", "device_nonce"),
        ("address", "client"),
        ("uint96", "price"),
        ("uint96", "collateral"),
        ("bytes32", "spec_hash"),
        ("uint32", "min_duration"),
        ("uint32", "max_duration"),
        ("uint48", "expiry"),
        ("uint256", "nonce"),
    ]
    offer = offer_terms(providers[0], client, chain, min_duration=600, max_duration=DAY)
    message = encode_typed_data(
        domain_data=domain("ComputeShare OfferBook", "1", chain_id, m.offers.address),
        message_types=OFFER_TYPES,
        message_data=offer,
    )
    signed = Account.sign_message(message, providers[0].private_key)
    assert bytes(m.offers.offer_digest(offer)) == bytes(signed.message_hash)


@pytest.mark.parametrize(
    "field, value, spec, deadline_in",
    [
        ("spec_hash", ANY_SPEC, OTHER_SPEC, DAY),
        ("spec_hash", spec_hash(OTHER_SPEC), OTHER_SPEC, DAY),
        ("min_duration", 1, SPEC, 1),
        ("max_duration", 30 * DAY, SPEC, 8 * DAY),
    ],
    ids=["any spec", "another spec", "a 1 s floor", "a 30 day ceiling"],
)
def test_a_signature_over_other_bounds_does_not_verify(
    market, client, providers, chain, offer_of, field, value, spec, deadline_in
):
    """A client cannot loosen a bound the provider signed, to match with what the looser
    bound would allow: the signature is over the bounds."""
    m, p = market, providers[0]
    offer, signature = offer_of(p, client)
    loosened = {**offer, field: value}
    assert m.offers.offer_digest(loosened) != m.offers.offer_digest(offer)
    now = at(chain, chain.blocks.head.timestamp + 10)
    with ape.reverts("offer_book: invalid signature"):
        m.offers.match_offer(spec, now + deadline_in, loosened, signature, sender=client)


# ------------------------------------------------------------------ what already held


def test_the_offer_is_still_bound_to_its_client_and_its_nonce(
    market, client, providers, chain, outsider, offer_of
):
    m, p = market, providers[0]
    deadline = chain.pending_timestamp + DAY
    offer, signature = offer_of(p, client, nonce=1)
    with ape.reverts("offer_book: offer is for another client"):
        m.offers.match_offer(SPEC, deadline, offer, signature, sender=outsider)
    m.offers.match_offer(SPEC, deadline, offer, signature, sender=client)
    with ape.reverts("offer_book: offer used or cancelled"):
        m.offers.match_offer(SPEC, deadline, offer, signature, sender=client)
    cancelled, cancelled_sig = offer_of(p, client, nonce=2)
    m.offers.cancel_offer(2, sender=p)
    with ape.reverts("offer_book: offer used or cancelled"):
        m.offers.match_offer(SPEC, deadline, cancelled, cancelled_sig, sender=client)


def test_a_contract_provider_signs_its_bounds_through_eip1271(
    project, market, client, deployer, accounts, chain, outsider, offer_of
):
    """A provider that is a contract wallet: its owner's signature is checked by the wallet
    (EIP-1271), over the same bounds."""
    m, owner = market, accounts[16]
    wallet = owner.deploy(project.SignerWallet)
    m.token.transfer(wallet, 10_000 * TOKEN, sender=deployer)
    for target, name, args in (
        (m.token, "approve", (m.staking, 10_000 * TOKEN)),
        (m.staking, "stake", (10_000 * TOKEN,)),
        (m.registry, "register", (gpu_spec(), "ipfs://wallet")),
    ):
        wallet.execute(target, encode(target, name, *args), sender=owner)
    deadline = chain.pending_timestamp + DAY
    forged, forged_sig = offer_of(wallet, client, key=outsider.private_key)
    with ape.reverts("offer_book: invalid signature"):
        m.offers.match_offer(SPEC, deadline, forged, forged_sig, sender=client)
    offer, signature = offer_of(wallet, client, key=owner.private_key)
    with ape.reverts("offer_book: invalid signature"):
        m.offers.match_offer(
            SPEC, deadline, {**offer, "max_duration": 30 * DAY}, signature, sender=client
        )
    with ape.reverts("offer_book: deadline too soon"):
        m.offers.match_offer(SPEC, chain.pending_timestamp + 1, offer, signature, sender=client)
    job = m.offers.match_offer(SPEC, deadline, offer, signature, sender=client).return_value
    assert m.jobs.replica(job).provider == wallet.address
    assert m.staking.pool(wallet).locked == COLLATERAL


# ------------------------------------------------------------------ the command line


@pytest.fixture(scope="module")
def offers_manifest(project, accounts, tmp_path_factory):
    """A deployment for the `computeshare` command; the provider (4) and the client (12)
    hold 100,000 tokens."""
    path = tmp_path_factory.mktemp("offers") / "manifest.json"
    deployer = accounts[0]
    Deployment(project, deployer, DeployConfig(), Manifest.open(path)).run()
    cs = ComputeShare.from_manifest(path, account=deployer)
    for index in (4, 12):
        cs.token.transfer(accounts[index], 100_000 * TOKEN, sender=deployer)
    return path


@pytest.fixture
def cli(offers_manifest, chain):
    runner = CliRunner()

    def invoke(*args, account: int):
        extra = ["--manifest", str(offers_manifest), "--network", chain.provider.uri]
        extra += ["--account", f"TEST::{account}"]
        return runner.invoke(main, [*args, *extra], catch_exceptions=False)

    return invoke


def refused(result, expected: str):
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and len(lines) == 1, result.output
    assert expected in lines[0], lines[0]


def test_the_command_line_signs_the_bounds_and_checks_them_before_matching(cli, accounts, tmp_path):
    client = str(accounts[12])
    assert cli("provider", "stake", "5000", account=4).exit_code == 0
    assert cli("provider", "register", account=4).exit_code == 0
    spec = encode_spec("sha256-chain", {"seed": "a", "rounds": 9})
    spec_file = tmp_path / "spec.json"
    spec_file.write_bytes(spec)
    other = ["--workload", "sha256-chain", "--input", '{"seed": "b", "rounds": 9}', "--max-price",
             "10"]  # fmt: skip
    path = tmp_path / "offer.json"
    sign = ("offer", "sign", "--client", client, "--price", "10", "--out", str(path))

    refused(cli(*sign, "--min-duration", "2h", "--max-duration", "1h", account=4), "at least")
    refused(cli(*sign, "--min-duration", "0", account=4), "1s or more")
    refused(cli(*sign, "--spec-hash", "0x1234", account=4), "not a 32-byte hex hash")
    refused(cli(*sign, "--spec-file", str(spec_file), "--spec-hash", "0x12", account=4), "not both")
    assert not path.exists()

    result = cli(
        *sign, "--spec-file", str(spec_file), "--min-duration", "30m", "--max-duration", "2h",
        "--nonce", "1", account=4,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    digest = spec_hash(spec).hex()
    assert f"spec 0x{digest[:10]} only, commit deadline 30m to 2h after the match" in result.output
    offer = json.loads(path.read_text())["offer"]
    assert (offer["spec_hash"], offer["min_duration"], offer["max_duration"]) == (
        "0x" + digest,
        30 * 60,
        2 * HOUR,
    )
    refused(cli("offer", "match", str(path), *other, account=12), "this offer is for the spec")
    matching = ("offer", "match", str(path), "--spec-file", str(spec_file), "--max-price", "10")
    refused(cli(*matching, "--duration", "10m", account=12), "outside the offer's 30m to 2h")
    refused(cli(*matching, "--duration", "3h", account=12), "outside the offer's 30m to 2h")
    result = cli(*matching, account=12)  # an hour: within the range, past its floor
    assert result.exit_code == 0, result.output
    assert re.search(r"commit deadline .* UTC, in (59m|1h)", result.output), result.output

    any_spec = tmp_path / "any.json"
    result = cli(
        "offer", "sign", "--client", client, "--price", "10", "--nonce", "2",
        "--out", str(any_spec), account=4,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "any spec, commit deadline 10m to 7d after the match" in result.output
    result = cli("offer", "match", str(any_spec), *other, account=12)
    assert result.exit_code == 0, result.output
