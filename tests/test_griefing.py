"""Griefing and cross-domain signatures: cheap actions that try to hurt others, and
signatures replayed against a contract or chain they were not made for.

Covered elsewhere, and listed in SECURITY.md: a provider that never reveals
(test_escrow: expire slashes no-shows), a client that never disputes (the optimistic result
stands after the window), an arbiter that never rules (the default outcome applies), dust
delegations (test_staking: MIN_DELEGATION), replayed permits, offers and ballots."""

from __future__ import annotations

import ape

from computeshare.governance import propose
from computeshare.jobs import STATUS_FINALIZED
from computeshare.signing import sign_ballot, sign_delegation, sign_offer
from computeshare.specs import job_requirements
from tests.helpers import (
    DAY,
    GOOD,
    SPEC,
    TOKEN,
    delegate,
    fee_action,
    gpu_spec,
    offer_terms,
    reveal,
    to_active,
)


def test_dust_job_settles_and_harms_nobody(market, client, providers, chain, keeper, run_replica):
    """A 1-wei, three-replica job on devices priced at 1 wei a second: it settles like any
    other, the fee rounds to zero, and balances and collateral stay exact."""
    m = market
    before = m.escrow.balanceOf(client)
    deadline = chain.pending_timestamp + DAY
    reqs = job_requirements(compute_seconds=1)
    job = m.escrow.post(SPEC, reqs, 1, 3, deadline, 1, sender=client).return_value
    for p in providers:
        m.registry.register(gpu_spec(price_per_second=1), "", sender=p)  # device nonce 1
        run_replica(job, p, GOOD, reveal=False, device=1)
    for slot, p in enumerate(providers):
        reveal(m, job, p, slot, GOOD)
    receipt = m.jobs.finalize(job, sender=keeper)
    (settled,) = receipt.decode_logs(m.escrow.JobSettled)
    assert (settled.paid, settled.fees, settled.refunded) == (3, 0, 0)
    assert m.jobs.view(job).status == STATUS_FINALIZED
    assert m.escrow.balanceOf(client) == before - 3
    assert all(m.staking.pool(p).locked == 0 for p in providers)


def test_many_devices_hurt_only_their_own_provider(market, client, providers, chain, post_job):
    """Registering is open, but each active device needs MIN_STAKE_PER_DEVICE behind it: a
    provider with more devices than stake makes only its own devices ineligible, and the
    100th registration costs what the 2nd does."""
    m = market
    spammer, honest = providers[0], providers[1]
    gas = [m.registry.register(gpu_spec(), "", sender=spammer).gas_used for _ in range(99)]
    assert max(gas[1:]) == min(gas[1:])
    with ape.reverts("device_registry: device not eligible"):
        m.jobs.accept(post_job(), 0, sender=spammer)
    m.jobs.accept(post_job(), 0, sender=honest)


def test_offer_signed_for_another_offer_book_is_refused(
    project, market, client, providers, chain, chain_id, deployer
):
    m = market
    other = deployer.deploy(project.OfferBook, m.escrow)
    offer = offer_terms(providers[0], client, chain)
    signature = sign_offer(
        providers[0].private_key, chain_id=chain_id, offer_book=other.address, offer=offer
    )
    with ape.reverts("offer_book: invalid signature"):
        m.offers.match_offer(SPEC, chain.pending_timestamp + DAY, offer, signature, sender=client)


def test_ballot_signed_for_another_governor_is_refused(dao, alice, bob, outsider, chain, chain_id):
    g = dao.governor
    proposal_id = propose(g, alice, [fee_action(dao, 300)], "fee")
    to_active(dao, chain, proposal_id)
    signature = sign_ballot(
        bob.private_key,
        chain_id=chain_id,
        governor=dao.timelock.address,  # any other verifying contract
        proposal_id=proposal_id,
        support=1,
        voter=bob.address,
        nonce=0,
    )
    with ape.reverts("governor: invalid signature"):
        g.castVoteBySig(proposal_id, 1, bob, signature, sender=outsider)
    assert not g.hasVoted(proposal_id, bob) and g.nonces(bob) == 0


def test_delegation_signed_for_another_chain_or_token_moves_nobodys_votes(
    funded, alice, bob, carol, chain, chain_id
):
    """ERC-5805 recovers the signer from the signature: a signature made for another
    domain recovers some other address, which holds nothing, so alice's votes stay."""
    delegate(funded, alice, alice)
    expiry = chain.pending_timestamp + DAY
    for domain in ({"chain_id": chain_id + 1, "token": funded.address},
                   {"chain_id": chain_id, "token": carol.address}):  # fmt: skip
        sig = sign_delegation(
            alice.private_key, delegatee=bob.address, nonce=0, expiry=expiry, **domain
        )
        funded.delegateBySig(bob, 0, expiry, sig.v, sig.r, sig.s, sender=carol)
        assert funded.delegates(alice) == alice.address
        assert funded.getVotes(alice) == 1_000 * TOKEN and funded.getVotes(bob) == 0
        assert funded.nonces(alice) == 0
