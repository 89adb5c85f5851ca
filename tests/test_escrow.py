"""Unit tests for JobEscrow and OfferBook on the full deployed suite."""

from __future__ import annotations

import ape
import pytest
from eth_utils import keccak

from computeshare.constants import ESCROW_SHARDS
from computeshare.jobs import (
    OUTCOME_COMPLETED,
    OUTCOME_FAILED,
    OUTCOME_SLASHED,
    REPLICA_ACCEPTED,
    REPLICA_COMMITTED,
    REPLICA_REVEALED,
    STATUS_CANCELLED,
    STATUS_DISPUTED,
    STATUS_FINALIZED,
    STATUS_OPEN,
    commitment,
    custody_address,
    deposit_shard,
    job_id_of,
    pack_requirements,
    unpack_requirements,
)
from computeshare.sandbox import STATUS_OK, STATUS_TRAP, RunResult
from computeshare.signing import sign_offer
from tests.helpers import (
    ARBITER,
    BAD,
    COLLATERAL,
    DAY,
    GOOD,
    HOUR,
    PRICE,
    REQS,
    SALT,
    SPEC,
    TOKEN,
    escrow_holdings,
    escrow_owes,
    gpu_spec,
    offer_terms,
    pool_expected,
    pool_holdings,
    reveal,
    warm_delegation,
)

# ------------------------------------------------------------------ balances


def test_deposit_and_withdraw(market, token, client):
    m = market
    assert m.escrow.balanceOf(client) == 10_000 * TOKEN
    receipt = m.escrow.deposit(500 * TOKEN, sender=client)
    (event,) = receipt.decode_logs(m.escrow.Deposited)
    assert (event.account, event.amount, event.balance) == (client, 500 * TOKEN, 10_500 * TOKEN)
    before = token.balanceOf(client)
    receipt = m.escrow.withdraw(1_500 * TOKEN, sender=client)
    (event,) = receipt.decode_logs(m.escrow.Withdrawn)
    assert (event.amount, event.balance) == (1_500 * TOKEN, 9_000 * TOKEN)
    assert token.balanceOf(client) == before + 1_500 * TOKEN
    with ape.reverts("job_escrow: amount exceeds balance"):
        m.escrow.withdraw(9_000 * TOKEN + 1, sender=client)
    with ape.reverts("job_escrow: zero amount"):
        m.escrow.withdraw(0, sender=client)
    with ape.reverts("job_escrow: zero amount"):
        m.escrow.deposit(0, sender=client)
    assert escrow_holdings(m) == escrow_owes(m, [client], [])


# ------------------------------------------------------------------ deposit shards


def shard_of(m, account) -> tuple[int, str]:
    """The deposit shard of `account` and the token account that holds it."""
    shard, holder = m.escrow_view.deposit_shard(account)
    return int(shard), holder


def paid_job(m, chain, keeper, post_job, run_replica, provider):
    """A k = 1 job of the client that `provider` ran well, finalized; the provider's pay."""
    job = post_job()
    run_replica(job, provider, GOOD)
    chain.pending_timestamp = m.jobs.view(job).phase_end
    m.jobs.finalize(job, sender=keeper)
    return PRICE - PRICE * 250 // 10_000


def test_deposits_sit_in_the_depositors_shard(market, token, client, accounts, fund_client):
    """Paying in the staked token, JobEscrow keeps each deposit in the custody account of
    the depositor's shard (its address's low 10 bits), never in its own balance word: two
    depositors of different shards write different words, and a client takes its deposit
    back out of its own shard."""
    m = market
    shard, holder = shard_of(m, client)
    # The client library derives both without a call.
    assert m.escrow_view.ESCROW_SHARDS() == ESCROW_SHARDS == 1024
    assert shard == deposit_shard(client.address) == int(client.address, 16) % 1024
    assert holder == token.custody_account(m.escrow, shard) == custody_address(m.escrow, shard)
    assert token.is_custody_account(holder)
    assert token.balanceOf(holder) == 10_000 * TOKEN and token.balanceOf(m.escrow) == 0
    receipt = m.escrow.deposit(500 * TOKEN, sender=client)
    [moved] = receipt.decode_logs(token.Transfer)
    assert (moved.sender, moved.receiver, moved.value) == (client.address, holder, 500 * TOKEN)
    other = accounts[17]
    assert shard_of(m, other)[0] != shard
    fund_client(other, deposit=0)
    receipt = m.escrow.deposit(200 * TOKEN, sender=other)
    [moved] = receipt.decode_logs(token.Transfer)
    assert moved.receiver == shard_of(m, other)[1] != holder
    receipt = m.escrow.withdraw(300 * TOKEN, sender=client)
    [moved] = receipt.decode_logs(token.Transfer)
    assert (moved.sender, moved.receiver, moved.value) == (holder, client.address, 300 * TOKEN)
    assert token.balanceOf(m.escrow) == 0
    assert escrow_holdings(m) == escrow_owes(m, [client, other]) == 10_400 * TOKEN
    assert list(m.escrow_view.shard_balances())[shard] == 10_200 * TOKEN


def test_a_provider_withdraws_from_the_shard_of_the_client_that_paid_it(
    market, token, client, providers, chain, keeper, post_job, run_replica
):
    """A provider's pay sits in its client's shard. Naming that shard, its withdrawal is one
    transfer out of it, and JobEscrow's own balance word is never written; the client
    library names it (`payout_shard`, from the provider's settled jobs)."""
    m, p = market, providers[0]
    pay = paid_job(m, chain, keeper, post_job, run_replica, p)
    shard, holder = shard_of(m, client)
    assert token.balanceOf(shard_of(m, p)[1]) == 0
    cs = m.as_account(p)
    assert cs.payout_shard(p.address, pay) == shard
    assert cs.payout_shard(client.address, TOKEN) is None  # the client's own shard holds it
    receipt = cs.withdraw(pay)
    [moved] = receipt.decode_logs(token.Transfer)
    assert (moved.sender, moved.receiver, moved.value) == (holder, p.address, pay)
    assert m.escrow.balanceOf(p) == 0
    assert escrow_holdings(m) == escrow_owes(m, [client, p, keeper])


def test_withdrawals_are_paid_whatever_shards_hold_the_tokens(
    market, token, client, providers, accounts, chain, keeper, fund_client, post_job, run_replica
):
    """Books never exceed holdings, so every withdrawal is paid in full, from any shard
    named, however the tokens are spread: here a provider names a shard holding less than
    its pay (part comes from the next shards in turn), which then leaves that shard's own
    depositor short of its deposit (paid from the others). Naming a shard never lets
    anyone take more than its balance."""
    m, p, other = market, providers[0], accounts[17]
    fund_client(other, deposit=3 * TOKEN)
    pay = paid_job(m, chain, keeper, post_job, run_replica, p)
    other_shard, other_holder = shard_of(m, other)
    with ape.reverts("job_escrow: amount exceeds balance"):
        m.escrow.withdraw_from_shard(pay + 1, other_shard, sender=p)
    receipt = m.escrow.withdraw_from_shard(pay, other_shard, sender=p)
    moves = [(e.sender, e.receiver, e.value) for e in receipt.decode_logs(token.Transfer)]
    assert moves == [
        (other_holder, p.address, 3 * TOKEN),
        (shard_of(m, client)[1], p.address, pay - 3 * TOKEN),
    ]
    assert token.balanceOf(other_holder) == 0
    receipt = m.escrow.withdraw(3 * TOKEN, sender=other)
    [moved] = receipt.decode_logs(token.Transfer)
    assert (moved.sender, moved.receiver, moved.value) == (
        shard_of(m, client)[1],
        other.address,
        3 * TOKEN,
    )
    # A shard beyond the last wraps around: shard + 1024 is the same shard.
    m.escrow.withdraw_from_shard(TOKEN, shard_of(m, client)[0] + 1024, sender=client)
    assert escrow_holdings(m) == escrow_owes(m, [client, p, other, keeper])
    m.escrow.withdraw(m.escrow.balanceOf(client), sender=client)
    assert sum(m.escrow.balanceOf(a) for a in (client, p, other, keeper)) == 0
    # All paid out: what stays is the protocol fee, until swept.
    assert (
        escrow_holdings(m) == m.escrow.fees(m.registry.device_id_of(p, 0)) == PRICE * 250 // 10_000
    )


def test_a_withdrawal_reads_every_shard_at_worst_and_is_still_paid(
    market, token, client, providers, chain, keeper, post_job, run_replica
):
    """The worst case of the shard search: one shard holds everything, and the provider
    names the one right after it, so JobEscrow reads all 1,024 shards before it finds the
    tokens. The withdrawal is still paid, in one call into the token (`custody_gather`),
    within a tenth of a 30 M gas block (2.6 M measured: about 2,500 gas a shard read)."""
    m, p = market, providers[0]
    pay = paid_job(m, chain, keeper, post_job, run_replica, p)
    shard, holder = shard_of(m, client)
    assert [i for i, b in enumerate(m.escrow_view.shard_balances()) if b] == [shard]
    receipt = m.escrow.withdraw_from_shard(pay, shard + 1, sender=p)
    [moved] = receipt.decode_logs(token.Transfer)
    assert (moved.sender, moved.receiver, moved.value) == (holder, p.address, pay)
    assert receipt.gas_used < 3_000_000, receipt.gas_used
    assert escrow_holdings(m) == escrow_owes(m, [client, p, keeper])


def test_only_staking_moves_tokens_into_the_escrows_own_balance(market, client, providers):
    """`fund` gathers tokens from the shards into JobEscrow's own balance for Staking to
    collect income from: nobody else may call it."""
    with ape.reverts("job_escrow: caller is not staking"):
        market.escrow.fund(providers[0], TOKEN, sender=client)


# ------------------------------------------------------------------ posting


def test_post_locks_payment_and_logs_terms(market, client, chain):
    m = market
    deadline = chain.pending_timestamp + DAY
    receipt = m.escrow.post(SPEC, REQS, PRICE, 3, deadline, COLLATERAL, sender=client)
    assert m.escrow.job_nonce(client) == 1
    assert m.escrow.balanceOf(client) == 10_000 * TOKEN - 3 * PRICE
    (event,) = receipt.decode_logs(m.escrow.JobPosted)
    assert event.spec == SPEC and event.client == client
    # The terms: what the client asked for, and the windows and fee in force now.
    expected = (
        client.address,
        0,
        keccak(SPEC),
        pack_requirements(REQS),
        PRICE,
        COLLATERAL,
        3,
        deadline,
        HOUR,
        DAY,
        250,
    )
    terms = m.jobs.terms(receipt.return_value)
    assert terms == expected and unpack_requirements(terms[3]) == REQS
    assert receipt.return_value == event.job_id == job_id_of(expected)
    assert m.escrow_view.job_id_of(expected) == job_id_of(expected)
    # One word of state: open, 3 replicas, the reveal window ends an hour after the deadline.
    info = m.escrow_view.job(receipt.return_value)
    assert (info.status, info.replicas, info.accepted, info.committed) == (STATUS_OPEN, 3, 0, 0)
    assert info.phase_end == deadline + HOUR
    # The id commits to the spec: the same nonce with another spec is another id.
    other = (*expected[:2], keccak(SPEC + b" "), *expected[3:])
    assert job_id_of(other) != job_id_of(expected)
    second = m.escrow.post(SPEC, REQS, PRICE, 1, deadline, COLLATERAL, sender=client).return_value
    assert second == job_id_of((*expected[:1], 1, *expected[2:6], 1, *expected[7:]))


def test_terms_must_be_the_jobs(market, client, providers, chain, post_job):
    """Every call after `post` passes the terms back; terms that differ in anything (a
    higher price, a lower collateral) name no job, so nothing can be taken on them."""
    m = market
    job = post_job()
    terms = m.jobs.terms(job)
    for index, value in ((4, PRICE * 2), (5, 1), (6, 2), (10, 0)):
        forged = (*terms[:index], value, *terms[index + 1 :])
        with ape.reverts("job_escrow: no such job"):
            m.escrow.cancel(forged, sender=client)
        with ape.reverts("job_escrow: no such job"):
            m.escrow.commit(forged, 0, 0, b"\x01" * 32, sender=providers[0])
    # accept checks the job's status, which a forged id does not have.
    forged = (*terms[:4], PRICE * 2, *terms[5:])
    with ape.reverts("job_escrow: job not open"):
        m.escrow.accept(forged, 0, sender=providers[0])


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"k": 0}, "replicas out of range"),
        ({"k": 10}, "replicas out of range"),
        ({"price": 0}, "zero price"),
        ({"deadline_in": -1}, "deadline in the past"),
        ({"deadline_in": 8 * DAY}, "deadline too far"),
        ({"collateral": PRICE // 2 - 1}, "collateral below minimum"),
        ({"price": 10_001 * TOKEN, "collateral": 10_001 * TOKEN}, "insufficient balance"),
        ({"reqs": {**REQS, "min_cpu_cores": 4097}}, "no device can satisfy the job"),
        ({"reqs": {**REQS, "compute_seconds": 0}}, "no device can satisfy the job"),
        ({"reqs": {**REQS, "region": 1000}}, "no device can satisfy the job"),
    ],
)
def test_post_rejects_bad_input(market, client, chain, change, reason, post_job):
    m = market
    before = m.escrow.balanceOf(client)
    with ape.reverts(f"job_escrow: {reason}"):
        post_job(**change)
    assert m.escrow.balanceOf(client) == before and m.escrow.job_nonce(client) == 0


def test_cancel_refunds_before_acceptance(market, client, providers, chain, outsider, post_job):
    m = market
    job = post_job(k=2)
    with ape.reverts("job_escrow: caller is not the client"):
        m.jobs.cancel(job, sender=outsider)
    receipt = m.jobs.cancel(job, sender=client)
    (event,) = receipt.decode_logs(m.escrow.JobCancelled)
    assert event.refunded == 2 * PRICE
    assert m.escrow.balanceOf(client) == 10_000 * TOKEN
    assert m.jobs.view(job).status == STATUS_CANCELLED
    with ape.reverts("job_escrow: job not open"):
        m.jobs.cancel(job, sender=client)
    accepted = post_job()
    m.jobs.accept(accepted, 0, sender=providers[0])
    with ape.reverts("job_escrow: job already accepted"):
        m.jobs.cancel(accepted, sender=client)


# ------------------------------------------------------------------ acceptance


def test_accept_locks_collateral(market, client, providers, chain, post_job):
    m = market
    job = post_job(k=2)
    receipt = m.jobs.accept(job, 0, sender=providers[0])
    assert receipt.return_value == 0
    (event,) = receipt.decode_logs(m.escrow.ReplicaAccepted)
    device = m.registry.device_id_of(providers[0], 0)
    assert (event.slot, event.device_id, event.collateral) == (0, device, COLLATERAL)
    assert m.staking.pool(providers[0]).locked == COLLATERAL
    assert m.escrow_view.device_record(device).running == 1
    a = m.escrow_view.assignment(job, 0)
    assert (a.provider, a.status, a.device_id) == (providers[0], REPLICA_ACCEPTED, device)
    assert m.jobs.accept(job, 0, sender=providers[1]).return_value == 1
    with ape.reverts("job_escrow: all replicas taken"):
        m.jobs.accept(job, 0, sender=providers[2])


def test_k1_replica_is_bound_in_the_job_word(market, client, providers, chain, keeper, post_job):
    """A k = 1 job keeps its replica in its one word, as a hash of provider, device and
    digest: the replica's calls pass them back, and nothing else matches."""
    m = market
    p, other = providers[0], providers[1]
    job = post_job()
    terms = m.jobs.terms(job)
    with ape.reverts("job_escrow: caller has no such replica"):
        m.escrow.commit(terms, 0, 0, b"\x01" * 32, sender=p)
    receipt = m.jobs.accept(job, 0, sender=p)
    (event,) = receipt.decode_logs(m.escrow.ReplicaAccepted)
    assert (event["provider"], event.device_nonce, event.slot) == (p, 0, 0)
    assert m.escrow_view.assignment(job, 0).status == REPLICA_ACCEPTED
    assert m.escrow_view.assignment(job, 1).status == 0
    with ape.reverts("job_escrow: all replicas taken"):
        m.jobs.accept(job, 0, sender=other)
    # Another provider, another device of the same provider, another slot: no replica.
    c = commitment(job, p.address, GOOD, SALT)
    for sender, nonce, slot in ((other, 0, 0), (p, 1, 0), (p, 0, 1)):
        with ape.reverts("job_escrow: caller has no such replica"):
            m.escrow.commit(terms, slot, nonce, c, sender=sender)
    m.escrow.commit(terms, 0, 0, c, sender=p)
    info = m.escrow_view.job(job)
    assert (info.accepted, info.committed, info.revealed) == (1, 1, 0)
    with ape.reverts("job_escrow: reveal does not match commitment"):
        m.escrow.reveal(terms, 0, 1, GOOD, SALT, sender=p)
    with ape.reverts("job_escrow: reveal does not match commitment"):
        m.escrow.reveal(terms, 0, 0, GOOD, SALT, sender=other)
    m.escrow.reveal(terms, 0, 0, GOOD, SALT, sender=p)
    assert m.escrow_view.job(job).phase_end == chain.blocks.head.timestamp + DAY
    assert m.escrow_view.assignment(job, 0).status == REPLICA_REVEALED
    # Settlement takes the replica back: a wrong provider, device or result is refused.
    chain.pending_timestamp = m.escrow_view.job(job).phase_end
    for replica in ((other.address, 0, GOOD), (p.address, 1, GOOD), (p.address, 0, BAD)):
        with ape.reverts("job_escrow: replica does not match the job"):
            m.escrow.finalize(terms, replica, sender=keeper)
    (settled,) = m.escrow.finalize(terms, (p.address, 0, GOOD), sender=keeper).decode_logs(
        m.escrow.JobSettled
    )
    assert settled.result_hash == GOOD


def test_accept_rejects_ineligible_devices(market, client, providers, chain, post_job):
    m = market
    p = providers[0]
    with ape.reverts("device_registry: no such device"):
        m.jobs.accept(post_job(), 5, sender=p)
    # Replica words keep 32 bits of device nonce; no registry numbers a device beyond.
    with ape.reverts("job_escrow: no such device"):
        m.jobs.accept(post_job(), 2**32, sender=p)
    for reqs, reason in (
        ({**REQS, "min_gpu_count": 4}, "device below requirements"),
        ({**REQS, "min_vram_mb": 100_000}, "device below requirements"),
        ({**REQS, "region": 840}, "device in another region"),
        ({**REQS, "attested_only": True}, "device not audited"),
        ({**REQS, "compute_seconds": 20_000}, "device too expensive"),
    ):
        job = post_job(reqs=reqs)
        with ape.reverts(f"device_registry: {reason}"):
            m.jobs.accept(job, 0, sender=p)
    # Not eligible: a second device halves the stake behind each, below the minimum.
    m.registry.register(gpu_spec(), "", sender=p)
    m.staking.request_thaw(9_000 * TOKEN, sender=p)
    with ape.reverts("device_registry: device not eligible"):
        m.jobs.accept(post_job(), 0, sender=p)


def test_accept_rejects_duplicates_capacity_and_missing_stake(
    market, client, providers, chain, post_job
):
    m = market
    p = providers[0]
    job = post_job(k=3)
    m.jobs.accept(job, 0, sender=p)
    with ape.reverts("job_escrow: provider already on job"):
        m.jobs.accept(job, 0, sender=p)
    # The device runs at most 4 jobs at once.
    for _ in range(3):
        m.jobs.accept(post_job(), 0, sender=p)
    with ape.reverts("job_escrow: device at capacity"):
        m.jobs.accept(post_job(), 0, sender=p)
    big = post_job(collateral=10_001 * TOKEN, price=100 * TOKEN)
    with ape.reverts("staking: insufficient free stake"):
        m.jobs.accept(big, 0, sender=providers[1])


def test_accept_after_deadline_fails(market, client, providers, chain, post_job):
    m = market
    job = post_job(deadline_in=HOUR)
    chain.pending_timestamp += HOUR
    with ape.reverts("job_escrow: deadline passed"):
        m.jobs.accept(job, 0, sender=providers[0])


# ------------------------------------------------------------------ commit and reveal


def test_commit_reveal_rules(market, client, providers, chain, outsider, post_job):
    m = market
    job = post_job(k=2)
    slot0 = m.jobs.accept(job, 0, sender=providers[0]).return_value
    slot1 = m.jobs.accept(job, 0, sender=providers[1]).return_value
    c0 = commitment(job, providers[0].address, GOOD, SALT)
    with ape.reverts("job_escrow: caller has no such replica"):
        m.jobs.commit(job, slot0, c0, sender=outsider)
    receipt = m.jobs.commit(job, slot0, c0, sender=providers[0])
    (event,) = receipt.decode_logs(m.escrow.ResultCommitted)
    assert event.commitment == c0
    with ape.reverts("job_escrow: already committed"):
        m.jobs.commit(job, slot0, c0, sender=providers[0])
    # Not every replica committed and the deadline has not passed: no reveals yet.
    with ape.reverts("job_escrow: reveal not open"):
        m.jobs.reveal(job, slot0, GOOD, SALT, sender=providers[0])
    # Copying another replica's commitment does not help: it binds the committer.
    m.jobs.commit(job, slot1, c0, sender=providers[1])
    with ape.reverts("job_escrow: reveal does not match commitment"):
        m.jobs.reveal(job, slot1, GOOD, SALT, sender=providers[1])
    with ape.reverts("job_escrow: reveal does not match commitment"):
        m.jobs.reveal(job, slot0, BAD, SALT, sender=providers[0])
    receipt = m.jobs.reveal(job, slot0, GOOD, SALT, sender=providers[0])
    (event,) = receipt.decode_logs(m.escrow.ResultRevealed)
    assert event.result_hash == GOOD
    assert m.escrow_view.assignment(job, slot0).status == REPLICA_REVEALED
    assert m.escrow_view.assignment(job, slot1).status == REPLICA_COMMITTED
    chain.pending_timestamp += HOUR
    with ape.reverts("job_escrow: reveal window closed"):
        m.jobs.reveal(job, slot1, GOOD, SALT, sender=providers[1])


def test_commit_after_deadline_fails(market, client, providers, chain, post_job):
    m = market
    job = post_job(deadline_in=HOUR)
    slot = m.jobs.accept(job, 0, sender=providers[0]).return_value
    chain.pending_timestamp += HOUR
    with ape.reverts("job_escrow: commit deadline passed"):
        m.jobs.commit(
            job, slot, commitment(job, providers[0].address, GOOD, SALT), sender=providers[0]
        )


# ------------------------------------------------------------------ optimistic (k = 1)


def test_optimistic_job_pays_after_challenge_window(
    market, token, client, providers, chain, keeper, treasury, post_job, run_replica
):
    m = market
    p = providers[0]
    job = post_job()
    run_replica(job, p, GOOD)
    info = m.jobs.view(job)
    assert info.revealed == 1 and m.jobs.replica(job) == (p.address, 0, GOOD)
    with ape.reverts("job_escrow: not ready to settle"):
        m.jobs.finalize(job, sender=keeper)
    chain.pending_timestamp = info.phase_end
    own_before = m.staking.pool(p).own_stake
    balance_before = m.escrow.balanceOf(p)
    receipt = m.jobs.finalize(job, sender=keeper)
    fee = PRICE * 250 // 10_000
    (settled,) = receipt.decode_logs(m.escrow.JobSettled)
    assert (settled.paid, settled.fees, settled.refunded, settled.result_hash) == (
        PRICE - fee,
        fee,
        0,
        GOOD,
    )
    (replica,) = receipt.decode_logs(m.escrow.ReplicaSettled)
    assert (replica.outcome, replica.paid, replica.fee, replica.slashed) == (
        OUTCOME_COMPLETED,
        PRICE - fee,
        fee,
        0,
    )
    # No delegators: all the income went to the provider's balance here, no tokens moved
    # to Staking, and the collateral is unlocked.
    pool = m.staking.pool(p)
    assert pool.own_stake == own_before and pool.locked == 0
    assert m.escrow.balanceOf(p) == balance_before + PRICE - fee
    assert not receipt.decode_logs(m.staking.IncomeAdded)
    device = m.registry.device_id_of(p, 0)
    assert tuple(m.escrow_view.device_record(device)) == (0, 1, 0, 0)
    assert m.jobs.view(job).status == STATUS_FINALIZED
    with ape.reverts("job_escrow: job not open"):
        m.jobs.finalize(job, sender=keeper)
    # The fee accrued in the device's record; a sweep moves it and keeps the counters.
    assert m.escrow.fees(device) == fee
    before = token.balanceOf(treasury)
    receipt = m.escrow.sweep_fees([device, device, bytes(32)], sender=keeper)
    assert receipt.return_value == fee  # a repeat or an unknown device adds nothing
    (swept,) = receipt.decode_logs(m.escrow.FeesSwept)
    assert (swept.devices, swept.amount, swept.treasury) == (3, fee, treasury.address)
    assert token.balanceOf(treasury) == before + fee and m.escrow.fees(device) == 0
    assert tuple(m.escrow_view.device_record(device)) == (0, 1, 0, 0)
    assert escrow_holdings(m) == escrow_owes(m, [client, p, keeper], [job])


def pool_with_a_delegator(m, token, chain, deployer, provider, delegator) -> None:
    """`provider` gives delegators a 20% cut, and `delegator` has 1,000 tokens warmed up
    and active in its pool."""
    m.staking.set_delegator_cut(2_000, sender=provider)
    token.transfer(delegator, 1_000 * TOKEN, sender=deployer)
    token.approve(m.staking, 2**256 - 1, sender=delegator)
    warm_delegation(m.staking, chain, provider, 1_000 * TOKEN, delegator)


def due_job_of_a_pool(m, token, chain, deployer, provider, delegator, post_job, run_replica):
    """A job `provider` ran well, due for settlement, with `delegator` in its pool (see
    `pool_with_a_delegator`)."""
    pool_with_a_delegator(m, token, chain, deployer, provider, delegator)
    job = post_job()
    run_replica(job, provider, GOOD)
    chain.pending_timestamp = m.jobs.view(job).phase_end
    return job


def test_income_is_shared_with_delegators(
    market, token, client, providers, chain, keeper, accounts, deployer, post_job, run_replica
):
    """With delegators, their cut of the income goes into the pool in Staking; the
    provider's part goes to its balance here. No token moves at settlement: the cut stays
    with JobEscrow (Staking's income holder) until Staking collects it, which anyone may
    trigger, a slash does first, and so does a payment the pool's custody account could
    not make without it."""
    m = market
    p, delegator = providers[0], accounts[16]
    job = due_job_of_a_pool(m, token, chain, deployer, p, delegator, post_job, run_replica)
    delegated, own = m.staking.pool(p).delegated_tokens, m.staking.pool(p).own_stake
    staked, balance = pool_holdings(token, p), m.escrow.balanceOf(p)
    held = escrow_holdings(m)
    receipt = m.jobs.finalize(job, sender=keeper)
    paid = PRICE - PRICE * 250 // 10_000
    cut = paid * 2_000 // 10_000
    pool = m.staking.pool(p)
    assert (pool.delegated_tokens, pool.own_stake, pool.locked) == (delegated + cut, own, 0)
    assert m.staking.income_holder() == m.escrow.address
    assert pool_holdings(token, p) == staked and m.staking.uncollected_income(p) == cut
    assert not receipt.decode_logs(token.Transfer)
    assert m.escrow.balanceOf(p) == balance + paid - cut
    # JobEscrow still holds the price: the provider's part, the fee and the cut.
    assert escrow_holdings(m) == held
    (income,) = receipt.decode_logs(m.staking.IncomeAdded)
    args = income.event_arguments
    assert (args["provider"], args["payer"], args["amount"], args["to_delegators"]) == (
        p.address,
        m.escrow.address,
        cut,
        cut,
    )
    # The delegator's shares are worth its stake plus the cut (less rounding).
    value = m.staking.delegation(p, delegator).value
    assert 1_000 * TOKEN + cut - 2 <= value <= 1_000 * TOKEN + cut
    # Anyone collects; the tokens move once, and a second call moves nothing.
    receipt = m.staking.collect_income(p, sender=keeper)
    assert receipt.return_value == cut and m.staking.uncollected_income(p) == 0
    (collected,) = receipt.decode_logs(m.staking.IncomeCollected)
    args = collected.event_arguments
    assert (args["provider"], args["holder"], args["amount"]) == (p, m.escrow, cut)
    assert pool_holdings(token, p) == staked + cut
    assert escrow_holdings(m) == held - cut
    assert m.staking.collect_income(p, sender=keeper).return_value == 0


def test_a_slash_collects_the_pools_income_first(
    market, token, client, providers, chain, keeper, accounts, deployer, post_job, run_replica
):
    """The delegators' cut JobEscrow holds for a pool is collected before the pool is
    slashed: the reward JobEscrow measures around the slash is the whole reward (the
    client's compensation and the keeper's bounty), and both contracts still hold exactly
    what they owe."""
    m = market
    p, delegator = providers[0], accounts[16]
    paid = due_job_of_a_pool(m, token, chain, deployer, p, delegator, post_job, run_replica)
    m.jobs.finalize(paid, sender=keeper)
    cut = m.staking.uncollected_income(p)
    assert cut == (PRICE - PRICE * 250 // 10_000) * 2_000 // 10_000
    silent = post_job(deadline_in=HOUR)
    m.jobs.accept(silent, 0, sender=p)  # and never commits
    chain.pending_timestamp = m.jobs.view(silent).deadline + DAY
    staked = pool_holdings(token, p)
    receipt = m.jobs.expire(silent, sender=keeper)
    (replica,) = receipt.decode_logs(m.escrow.ReplicaSettled)
    assert replica.outcome == OUTCOME_SLASHED
    (collected,) = receipt.decode_logs(m.staking.IncomeCollected)
    assert collected.event_arguments["amount"] == cut and m.staking.uncollected_income(p) == 0
    (slashed,) = receipt.decode_logs(m.staking.Slashed)
    (settled,) = receipt.decode_logs(m.escrow.JobSettled)
    assert slashed.reward > 0 and settled.compensation + settled.bounty == slashed.reward
    # The pool's custody account got the cut and paid out the reward and the remainder.
    assert pool_holdings(token, p) == staked + cut - slashed.reward - slashed.remainder
    assert escrow_holdings(m) == escrow_owes(m, [client, p, keeper], [paid, silent])
    for q in providers:
        assert pool_holdings(token, q) == pool_expected(m.staking, q)
    assert token.balanceOf(m.staking) == 0


def test_a_slash_credits_its_whole_reward_when_the_escrow_already_holds_compensation(
    market, token, client, providers, chain, keeper, accounts, deployer, post_job, run_replica
):
    """Attack on the reward JobEscrow measures around a slash: an earlier slash left its
    compensation in JobEscrow's own balance, and the pool slashed now has income
    JobEscrow holds, which Staking collects from that same balance (`fund` tops it up from
    the shards only when it lacks). The income is collected before the measurement, so
    the client and keeper are credited the whole reward and nothing is left over."""
    m = market
    p, other, delegator = providers[0], providers[1], accounts[16]
    paid = due_job_of_a_pool(m, token, chain, deployer, p, delegator, post_job, run_replica)
    m.jobs.finalize(paid, sender=keeper)
    cut = m.staking.uncollected_income(p)
    first, second = post_job(deadline_in=HOUR), post_job(deadline_in=HOUR)
    m.jobs.accept(first, 0, sender=other)  # both never commit
    m.jobs.accept(second, 0, sender=p)
    chain.pending_timestamp = m.jobs.view(second).deadline + DAY
    m.jobs.expire(first, sender=keeper)
    held = token.balanceOf(m.escrow)
    assert held > cut > 0  # the first slash's compensation covers the income
    receipt = m.jobs.expire(second, sender=keeper)
    (collected,) = receipt.decode_logs(m.staking.IncomeCollected)
    assert collected.event_arguments["amount"] == cut
    (slashed,) = receipt.decode_logs(m.staking.Slashed)
    (settled,) = receipt.decode_logs(m.escrow.JobSettled)
    assert slashed.reward > 0 and settled.compensation + settled.bounty == slashed.reward
    assert token.balanceOf(m.escrow) == held - cut + slashed.reward
    assert escrow_holdings(m) == escrow_owes(m, [client, p, other, keeper], [paid, first, second])


def test_release_is_for_lockers_only(market, providers, outsider):
    with ape.reverts("staking: caller is not a locker"):
        market.staking.release(providers[0], 1, 1, sender=outsider)


@pytest.fixture
def disputed_job(market, client, post_job, run_replica):
    """disputed_job(provider): a k = 1 job that `provider` ran to BAD and the client
    disputed; returns the job id and the dispute's receipt."""

    def dispute(p):
        job = post_job()
        run_replica(job, p, BAD)
        return job, market.jobs.dispute(job, sender=client)

    return dispute


def test_dispute_ruled_for_client(
    market, token, client, providers, arbiter, chain, keeper, outsider, disputed_job
):
    m = market
    p = providers[0]
    wallet = token.balanceOf(client)
    job, receipt = disputed_job(p)
    bond = PRICE * 1_000 // 10_000
    (event,) = receipt.decode_logs(m.escrow.Disputed)
    (locked,) = receipt.decode_logs(m.job_disputes.BondLocked)
    assert event.bond == locked.bond == m.job_disputes.bond(job) == bond
    assert event.client == locked.client == client
    assert m.jobs.view(job).status == STATUS_DISPUTED
    # The bond comes from the client's wallet into JobDisputes, not from its escrow balance.
    assert token.balanceOf(client) == wallet - bond and token.balanceOf(m.job_disputes) == bond
    assert m.escrow.balanceOf(client) == 10_000 * TOKEN - PRICE
    with ape.reverts("job_disputes: caller is not an arbiter"):
        m.jobs.rule(job, True, sender=outsider)
    own_before = m.staking.pool(p).own_stake
    receipt = m.jobs.rule(job, True, sender=arbiter)
    (ruled,) = receipt.decode_logs(m.escrow.Ruled)
    assert (ruled.arbiter, ruled.for_client) == (arbiter, True)
    (settled,) = receipt.decode_logs(m.escrow.JobSettled)
    reward = COLLATERAL * 2_500 // 10_000
    bounty = reward * 1_000 // 10_000
    assert (settled.paid, settled.refunded) == (0, PRICE)
    assert settled.result_hash == b"\x00" * 32  # the wrong result is not accepted
    assert (settled.compensation, settled.bounty, settled.keeper) == (
        reward - bounty,
        bounty,
        arbiter,
    )
    assert m.staking.pool(p).own_stake == own_before - COLLATERAL
    assert m.escrow.balanceOf(client) == 10_000 * TOKEN + reward - bounty
    assert m.escrow.balanceOf(arbiter) == bounty
    # The bond is the client's again, to withdraw from JobDisputes.
    (released,) = receipt.decode_logs(m.job_disputes.BondReleased)
    assert (released.account, released.amount) == (client, bond) and m.job_disputes.bond(job) == 0
    assert m.job_disputes.balanceOf(client) == bond
    m.job_disputes.withdraw(sender=client)
    assert token.balanceOf(client) == wallet and token.balanceOf(m.job_disputes) == 0
    with ape.reverts("job_disputes: nothing to withdraw"):
        m.job_disputes.withdraw(sender=client)
    device = m.registry.device_id_of(p, 0)
    assert tuple(m.escrow_view.device_record(device)) == (0, 0, 0, 1)
    assert escrow_holdings(m) == escrow_owes(m, [client, p, arbiter], [job])


def test_dispute_ruled_for_provider(market, client, providers, arbiter, chain, disputed_job):
    m = market
    p = providers[0]
    job, _ = disputed_job(p)
    bond = PRICE * 1_000 // 10_000
    receipt = m.jobs.rule(job, False, sender=arbiter)
    (settled,) = receipt.decode_logs(m.escrow.JobSettled)
    assert settled.paid == PRICE - PRICE * 250 // 10_000 and settled.refunded == 0
    # The whole payment (no delegators) here, the bond in JobDisputes.
    assert m.escrow.balanceOf(p) == settled.paid
    assert m.job_disputes.balanceOf(p) == bond and m.job_disputes.balanceOf(client) == 0
    assert m.escrow.balanceOf(client) == 10_000 * TOKEN - PRICE


def test_a_ruling_names_the_jobs_own_replica(
    market, client, providers, arbiter, disputed_job, outsider
):
    """JobDisputes credits the bond to the provider the arbiter's call names: JobEscrow
    checks it is the job's replica, or the whole ruling reverts."""
    m = market
    job, _ = disputed_job(providers[0])
    terms, replica = m.jobs.terms(job), m.jobs.settlement_replica(job)
    forged = replica._replace(provider=outsider.address)
    with ape.reverts("job_escrow: replica does not match the job"):
        m.job_disputes.rule(terms, forged, False, sender=arbiter)
    assert m.job_disputes.bond(job) > 0 and m.job_disputes.balanceOf(outsider) == 0


def test_only_job_disputes_may_arbitrate(market, client, providers, arbiter, disputed_job):
    """JobEscrow's one entry point for disputes answers JobDisputes (its ARBITER) alone:
    an arbiter of JobDisputes calling the escrow directly is refused."""
    m = market
    job, _ = disputed_job(providers[0])
    terms, replica = m.jobs.terms(job), m.jobs.settlement_replica(job)
    for caller in (arbiter, client):
        with ape.reverts("job_escrow: caller is not an arbiter"):
            m.escrow.arbitrate(terms, replica, 1, caller, 0, sender=caller)
    assert m.escrow.roles(m.job_disputes) == ARBITER and m.escrow.roles(arbiter) == 0


def test_unruled_dispute_lets_the_result_stand(
    market, token, client, providers, arbiter, chain, keeper, disputed_job
):
    m = market
    p = providers[0]
    job, receipt = disputed_job(p)
    (event,) = receipt.decode_logs(m.escrow.Disputed)
    with ape.reverts("job_escrow: not ready to settle"):
        m.jobs.finalize(job, sender=keeper)
    with ape.reverts("job_disputes: dispute not settled"):
        m.jobs.reclaim(job, sender=keeper)
    chain.pending_timestamp = event.ruling_end
    with ape.reverts("job_escrow: ruling period over"):
        m.jobs.rule(job, True, sender=arbiter)
    receipt = m.jobs.finalize(job, sender=keeper)
    (settled,) = receipt.decode_logs(m.escrow.JobSettled)
    bond = PRICE * 1_000 // 10_000
    assert settled.paid == PRICE - PRICE * 250 // 10_000 and settled.refunded == 0
    assert m.escrow.balanceOf(client) == 10_000 * TOKEN - PRICE
    # The bond returns to the client through JobDisputes (anyone may ask), once.
    receipt = m.jobs.reclaim(job, sender=keeper)
    (released,) = receipt.decode_logs(m.job_disputes.BondReleased)
    assert (released.account, released.amount) == (client, bond)
    assert m.job_disputes.balanceOf(client) == bond
    with ape.reverts("job_disputes: no bond to reclaim"):
        m.jobs.reclaim(job, sender=keeper)


def test_dispute_rules(market, client, providers, chain, outsider, post_job, run_replica):
    m = market
    p = providers[0]
    job = post_job()
    slot = run_replica(job, p, GOOD, reveal=False)
    with ape.reverts("job_escrow: no result to dispute"):
        m.jobs.dispute(job, sender=client)
    reveal(m, job, p, slot, GOOD)
    with ape.reverts("job_disputes: caller is not the client"):
        m.jobs.dispute(job, sender=outsider)
    m.jobs.dispute(job, sender=client)
    with ape.reverts("job_escrow: no result to dispute"):  # disputed already
        m.jobs.dispute(job, sender=client)
    other = post_job()
    run_replica(other, p, GOOD)
    chain.pending_timestamp = m.jobs.view(other).phase_end
    with ape.reverts("job_escrow: challenge window closed"):
        m.jobs.dispute(other, sender=client)
    replicated = post_job(k=3)
    with ape.reverts("job_escrow: only optimistic jobs are disputed"):
        m.jobs.dispute(replicated, sender=client)


# ------------------------------------------------------------------ replicated (k = 3)


def test_the_ruling_pays_the_right_replicas_and_slashes_the_dissenter(
    market, token, client, providers, chain, keeper, arbiter, post_job, run_replica
):
    m = market
    job = post_job(k=3)
    results = [GOOD, GOOD, BAD]
    slots = [run_replica(job, p, r, reveal=False) for p, r in zip(providers, results, strict=True)]
    assert m.jobs.view(job).phase_end < m.jobs.view(job).deadline  # all committed early
    for p, slot, r in zip(providers, slots, results, strict=True):
        reveal(m, job, p, slot, r)
    info = m.jobs.view(job)
    assert info.leading_result == GOOD and info.leader_votes == 2
    # A vote is evidence, not proof: dissent goes to the arbiter, who finds GOOD right.
    receipt = m.jobs.finalize(job, sender=keeper)
    assert receipt.decode_logs(m.escrow.Disputed)[0].ruling_end > chain.blocks.head.timestamp
    receipt = m.jobs.rule(job, result=GOOD, sender=arbiter)
    outcomes = [(e["provider"], e.outcome) for e in receipt.decode_logs(m.escrow.ReplicaSettled)]
    assert outcomes == [
        (providers[0], OUTCOME_COMPLETED),
        (providers[1], OUTCOME_COMPLETED),
        (providers[2], OUTCOME_SLASHED),
    ]
    (settled,) = receipt.decode_logs(m.escrow.JobSettled)
    fee = PRICE * 250 // 10_000
    reward = COLLATERAL * 2_500 // 10_000
    bounty = reward * 1_000 // 10_000
    assert (settled.paid, settled.fees, settled.refunded) == (2 * (PRICE - fee), 2 * fee, PRICE)
    assert (settled.compensation, settled.bounty) == (reward - bounty, bounty)
    assert m.escrow.balanceOf(arbiter) == bounty
    assert m.staking.pool(providers[2]).own_stake == 10_000 * TOKEN - COLLATERAL
    for p in providers:
        assert m.staking.pool(p).locked == 0
    assert escrow_holdings(m) == escrow_owes(m, [client, arbiter, *providers], [job])


def test_unruled_dissent_refunds_and_pays_nobody(
    market, client, providers, chain, keeper, post_job, run_replica
):
    m = market
    job = post_job(k=3)
    results = [GOOD, BAD, b"\xcc" * 32]
    slots = [run_replica(job, p, r, reveal=False) for p, r in zip(providers, results, strict=True)]
    for p, slot, r in zip(providers, slots, results, strict=True):
        reveal(m, job, p, slot, r)
    # Dissent escalates; with no ruling in the ruling period nobody is paid or slashed.
    m.jobs.finalize(job, sender=keeper)
    with ape.reverts("job_escrow: not ready to settle"):
        m.jobs.finalize(job, sender=keeper)
    chain.pending_timestamp = m.jobs.view(job).phase_end
    receipt = m.jobs.finalize(job, sender=keeper)
    assert {e.outcome for e in receipt.decode_logs(m.escrow.ReplicaSettled)} == {OUTCOME_FAILED}
    (settled,) = receipt.decode_logs(m.escrow.JobSettled)
    assert (settled.paid, settled.refunded, settled.compensation) == (0, 3 * PRICE, 0)
    assert m.escrow.balanceOf(client) == 10_000 * TOKEN
    for p in providers:
        assert m.staking.pool(p).own_stake == 10_000 * TOKEN and m.staking.pool(p).locked == 0
        record = m.escrow_view.device_record(m.registry.device_id_of(p, 0))
        assert tuple(record) == (0, 0, 1, 0)


def test_expire_refunds_missing_and_slashes_no_shows(
    market, client, providers, chain, keeper, post_job, run_replica
):
    m = market
    job = post_job(k=3, deadline_in=HOUR)
    s0 = run_replica(job, providers[0], GOOD, reveal=False)
    m.jobs.accept(job, 0, sender=providers[1])  # accepts, never commits
    with ape.reverts("job_escrow: reveal window still open"):
        m.jobs.expire(job, sender=keeper)
    chain.pending_timestamp += HOUR
    reveal(m, job, providers[0], s0, GOOD)
    chain.pending_timestamp = m.jobs.view(job).phase_end
    # One revealed vote of three is no majority: the job goes to the arbiter, who could
    # pay the revealed result; unruled, the revealed replica is released unpaid and the
    # silent provider slashed.
    receipt = m.jobs.expire(job, sender=keeper)
    assert receipt.decode_logs(m.escrow.Disputed)
    chain.pending_timestamp = m.jobs.view(job).phase_end
    receipt = m.jobs.finalize(job, sender=keeper)
    outcomes = [(e["provider"], e.outcome) for e in receipt.decode_logs(m.escrow.ReplicaSettled)]
    assert outcomes == [(providers[0], OUTCOME_FAILED), (providers[1], OUTCOME_SLASHED)]
    (settled,) = receipt.decode_logs(m.escrow.JobSettled)
    assert settled.refunded == 3 * PRICE and settled.bounty > 0
    # No majority: no result is reported as accepted.
    assert settled.result_hash == b"\x00" * 32 and m.jobs.view(job).leader_votes == 1
    with ape.reverts("job_escrow: job not open"):
        m.jobs.finalize(job, sender=keeper)


def test_expire_without_any_acceptance_refunds_all(market, client, chain, keeper, post_job):
    m = market
    job = post_job(k=2, deadline_in=HOUR)
    chain.pending_timestamp += 2 * HOUR
    receipt = m.jobs.expire(job, sender=keeper)
    (settled,) = receipt.decode_logs(m.escrow.JobSettled)
    assert settled.refunded == 2 * PRICE and settled.bounty == 0
    assert m.escrow.balanceOf(client) == 10_000 * TOKEN


# ------------------------------------------------------------------ offers


def test_match_offer(market, client, providers, chain, chain_id):
    m = market
    p = providers[0]
    offer = offer_terms(p, client, chain)
    signature = sign_offer(
        p.private_key, chain_id=chain_id, offer_book=m.offers.address, offer=offer
    )
    deadline = chain.pending_timestamp + DAY
    receipt = m.offers.match_offer(SPEC, deadline, offer, signature, sender=client)
    job = receipt.return_value
    (event,) = receipt.decode_logs(m.offers.OfferMatched)
    assert (event.job_id, event.client, event.nonce) == (job, client, 7)
    info = m.jobs.view(job)
    assert (info.client, info.replicas, info.accepted, info.price_per_replica) == (
        client,
        1,
        1,
        PRICE,
    )
    assert m.jobs.replica(job) == (p.address, 0, b"\x00" * 32)
    assert m.staking.pool(p).locked == COLLATERAL
    with ape.reverts("offer_book: offer used or cancelled"):
        m.offers.match_offer(SPEC, deadline, offer, signature, sender=client)


def test_offer_rejections(market, client, providers, chain, chain_id, outsider):
    m = market
    p = providers[0]
    deadline = chain.pending_timestamp + DAY
    offer = offer_terms(p, client, chain)
    signature = sign_offer(
        p.private_key, chain_id=chain_id, offer_book=m.offers.address, offer=offer
    )
    # Bound to the client: nobody else can match it and make the client pay.
    with ape.reverts("offer_book: offer is for another client"):
        m.offers.match_offer(SPEC, deadline, offer, signature, sender=outsider)
    with ape.reverts("offer_book: invalid signature"):
        m.offers.match_offer(SPEC, deadline, {**offer, "price": 1}, signature, sender=client)
    wrong_chain = sign_offer(
        p.private_key, chain_id=chain_id + 1, offer_book=m.offers.address, offer=offer
    )
    with ape.reverts("offer_book: invalid signature"):
        m.offers.match_offer(SPEC, deadline, offer, wrong_chain, sender=client)
    expired = offer_terms(p, client, chain, expiry=chain.pending_timestamp - 1)
    sig = sign_offer(p.private_key, chain_id=chain_id, offer_book=m.offers.address, offer=expired)
    with ape.reverts("offer_book: offer expired"):
        m.offers.match_offer(SPEC, deadline, expired, sig, sender=client)
    receipt = m.offers.cancel_offer(7, sender=p)
    assert receipt.decode_logs(m.offers.OfferCancelled)[0].nonce == 7
    with ape.reverts("offer_book: offer used or cancelled"):
        m.offers.match_offer(SPEC, deadline, offer, signature, sender=client)
    with ape.reverts("job_escrow: caller is not a matcher"):
        m.escrow.post_matched(client, SPEC, deadline, p, 0, PRICE, COLLATERAL, sender=outsider)


def test_offer_digest_matches_python_signing(market, client, providers, chain, chain_id):
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    from computeshare.signing import OFFER_TYPES, domain

    m = market
    offer = offer_terms(providers[0], client, chain)
    message = encode_typed_data(
        domain_data=domain("ComputeShare OfferBook", "1", chain_id, m.offers.address),
        message_types=OFFER_TYPES,
        message_data=offer,
    )
    signature = sign_offer(
        providers[0].private_key, chain_id=chain_id, offer_book=m.offers.address, offer=offer
    )
    digest = m.offers.offer_digest(offer)
    assert Account._recover_hash(digest, signature=signature) == providers[0].address
    assert Account.recover_message(message, signature=signature) == providers[0].address


# ------------------------------------------------------------------ pausing and governance


def test_guardian_pauses_new_work_only(
    market, client, providers, chain, deployer, guardian, keeper, post_job, run_replica
):
    m = market
    p = providers[0]
    job = post_job()
    slot = run_replica(job, p, GOOD, reveal=False)
    with ape.reverts("job_escrow: caller cannot pause"):
        m.escrow.pause(chain.pending_timestamp + DAY, sender=guardian)
    m.escrow.set_guardian(guardian, chain.pending_timestamp + 30 * DAY, sender=deployer)
    with ape.reverts("job_escrow: pause out of bounds"):
        m.escrow.pause(chain.pending_timestamp + 15 * DAY, sender=guardian)
    receipt = m.escrow.pause(chain.pending_timestamp + DAY, sender=guardian)
    assert receipt.decode_logs(m.escrow.PausedUntil)[0].by == guardian
    with ape.reverts("job_escrow: paused"):
        post_job()
    # Everything already under way goes on.
    reveal(m, job, p, slot, GOOD)
    chain.pending_timestamp = m.jobs.view(job).phase_end
    m.jobs.finalize(job, sender=keeper)
    m.escrow.withdraw(TOKEN, sender=client)
    m.escrow.unpause(sender=guardian)
    post_job()
    # An expired appointment pauses nothing.
    chain.pending_timestamp += 31 * DAY
    with ape.reverts("job_escrow: caller cannot pause"):
        m.escrow.pause(chain.pending_timestamp + DAY, sender=guardian)


def test_parameters_are_bounded(market, deployer, outsider):
    m = market
    assert m.escrow.parameter(0) == 250 and m.escrow_view.parameter_bounds(0) == (0, 1_000)
    with ape.reverts("parameters: out of bounds"):
        m.escrow.set_parameter(0, 1_001, sender=deployer)
    with ape.reverts("ownable: caller is not the owner"):
        m.escrow.set_parameter(0, 100, sender=outsider)
    with ape.reverts("parameters: unknown parameter"):
        m.escrow.set_parameter(9, 1, sender=deployer)
    m.escrow.set_parameter(0, 100, sender=deployer)
    assert m.escrow.parameter(0) == 100


def test_parameters_and_pause_share_a_word_without_overlap(market, chain, deployer):
    """The nine parameters and the end of a pause are packed in one storage word: setting
    any of them to either bound leaves every other as it was."""
    m = market
    expected = [m.escrow.parameter(key) for key in range(9)]
    until = chain.pending_timestamp + DAY
    m.escrow.pause(until, sender=deployer)
    for key in range(9):
        for value in m.escrow_view.parameter_bounds(key):
            receipt = m.escrow.set_parameter(key, value, sender=deployer)
            (event,) = receipt.decode_logs(m.escrow.ParameterChanged)
            assert (event.key, event.old_value, event.new_value) == (key, expected[key], value)
            expected[key] = value
            assert [m.escrow.parameter(k) for k in range(9)] == expected
            assert m.escrow.paused_until() == until
    m.escrow.unpause(sender=deployer)
    assert m.escrow.paused_until() == 0
    assert [m.escrow.parameter(k) for k in range(9)] == expected


def test_post_with_permit_pays_from_the_wallet(market, token, client, chain, chain_id):
    from computeshare.signing import sign_permit

    m = market
    token.approve(m.escrow, 0, sender=client)
    deadline = chain.pending_timestamp + DAY
    sig = sign_permit(
        client.private_key,
        chain_id=chain_id,
        token=token.address,
        owner=client.address,
        spender=m.escrow.address,
        value=2 * PRICE,
        nonce=token.nonces(client),
        deadline=deadline,
    )
    wallet = token.balanceOf(client)
    receipt = m.escrow.post_with_permit(
        SPEC, REQS, PRICE, 2, deadline, COLLATERAL, deadline, *sig.args, sender=client
    )
    assert m.jobs.view(receipt.return_value).replicas == 2
    assert token.balanceOf(client) == wallet - 2 * PRICE
    # The deposit covered exactly the job: the earlier balance is untouched.
    assert m.escrow.balanceOf(client) == 10_000 * TOKEN
    assert token.allowance(client, m.escrow) == 0


def test_device_record_counts_running_jobs_and_outcomes(
    market, client, providers, chain, keeper, post_job, run_replica
):
    """A device's record moves each job from running to its outcome in the settlement
    itself: there is no separate reputation write that could fail or be starved."""
    m = market
    p = providers[0]
    device = m.registry.device_id_of(p, 0)
    assert tuple(m.escrow_view.device_record(device)) == (0, 0, 0, 0)
    done, silent = post_job(), post_job()
    run_replica(done, p, GOOD)
    run_replica(silent, p, BAD, reveal=False)  # commits, never reveals: expiry slashes it
    # The revealed k = 1 result holds no capacity while its challenge window runs.
    assert tuple(m.escrow_view.device_record(device)) == (1, 0, 0, 0)
    chain.pending_timestamp = m.jobs.view(done).phase_end
    receipt = m.jobs.finalize(done, sender=keeper)
    (settled,) = receipt.decode_logs(m.escrow.ReplicaSettled)
    assert settled.device_id == device and settled.outcome == OUTCOME_COMPLETED
    assert tuple(m.escrow_view.device_record(device)) == (1, 1, 0, 0)
    chain.pending_timestamp = max(chain.pending_timestamp, m.jobs.view(silent).phase_end)
    receipt = m.jobs.expire(silent, sender=keeper)
    (settled,) = receipt.decode_logs(m.escrow.ReplicaSettled)
    assert settled.device_id == device and settled.outcome == OUTCOME_SLASHED
    assert tuple(m.escrow_view.device_record(device)) == (0, 1, 0, 1)


def test_a_k1_result_in_its_challenge_window_holds_no_capacity(
    market, client, providers, chain, keeper, post_job, run_replica
):
    """A k = 1 replica whose result is in (submitted, or revealed after a commit) waits out
    its challenge window, up to days, without holding its device's capacity: a device at
    its cap takes the next job as soon as a result is in, and the settlement counts the
    outcome without taking the job from the running count a second time."""
    m, p = market, providers[0]
    device = m.registry.device_id_of(p, 0)
    cap = m.registry.device(device).spec.max_concurrent_jobs
    jobs = [post_job() for _ in range(cap + 2)]
    for job in jobs[:cap]:
        m.jobs.accept(job, 0, sender=p)
    assert m.escrow_view.device_record(device).running == cap
    with ape.reverts("job_escrow: device at capacity"):
        m.jobs.accept(jobs[cap], 0, sender=p)
    m.jobs.submit(jobs[0], RunResult(STATUS_OK, 1_000, b"ok"), sender=p)
    assert m.escrow_view.device_record(device).running == cap - 1
    m.jobs.accept(jobs[cap], 0, sender=p)  # the window of jobs[0] runs; the device works on
    # A commit alone keeps the job running; the reveal frees it the same way.
    m.jobs.commit(jobs[1], 0, commitment(jobs[1], p.address, GOOD, SALT), sender=p)
    assert m.escrow_view.device_record(device).running == cap
    m.jobs.reveal(jobs[1], 0, GOOD, SALT, sender=p)
    assert m.escrow_view.device_record(device).running == cap - 1
    m.jobs.accept(jobs[cap + 1], 0, sender=p)
    chain.pending_timestamp = m.jobs.view(jobs[1]).phase_end
    m.jobs.finalize(jobs[0], sender=keeper)
    m.jobs.finalize(jobs[1], sender=keeper)
    assert tuple(m.escrow_view.device_record(device))[:2] == (cap, 2)


def test_post_with_permit_survives_a_front_run_permit(
    market, token, client, chain, chain_id, outsider
):
    from computeshare.signing import sign_permit

    m = market
    token.approve(m.escrow, 0, sender=client)
    deadline = chain.pending_timestamp + DAY
    sig = sign_permit(
        client.private_key,
        chain_id=chain_id,
        token=token.address,
        owner=client.address,
        spender=m.escrow.address,
        value=PRICE,
        nonce=token.nonces(client),
        deadline=deadline,
    )
    # Someone copies the signature from the mempool and submits the permit first.
    token.permit(client, m.escrow, PRICE, deadline, *sig.args, sender=outsider)
    receipt = m.escrow.post_with_permit(
        SPEC, REQS, PRICE, 1, deadline, COLLATERAL, deadline, *sig.args, sender=client
    )
    assert m.jobs.view(receipt.return_value).client == client
    # Without the allowance a failed permit still stops the post.
    with ape.reverts("job_escrow: permit failed and no allowance"):
        m.escrow.post_with_permit(
            SPEC, REQS, PRICE, 1, deadline, COLLATERAL, deadline, *sig.args, sender=client
        )


def test_a_k1_result_is_submitted_directly_with_its_status_fuel_and_output(
    market, client, providers, chain, keeper, outsider, post_job
):
    """k = 1 needs no commit-reveal: one `submit` binds (status, fuel, output hash) and
    opens the challenge window; a short output travels in the event."""
    m, p = market, providers[0]
    job = post_job()
    terms = m.jobs.terms(job)
    result = RunResult(STATUS_TRAP, 45_000, b"dividing\n")
    m.jobs.accept(job, 0, sender=p)
    with ape.reverts("job_escrow: output does not match its hash"):
        m.escrow.submit(terms, 0, 1, 45_000, keccak(b"other"), b"dividing\n", sender=p)
    for sender, nonce in ((outsider, 0), (p, 1)):
        with ape.reverts("job_escrow: caller has no such replica"):
            m.escrow.submit(terms, nonce, 1, 45_000, keccak(result.output), b"", sender=sender)
    receipt = m.jobs.submit(job, result, sender=p)
    (event,) = receipt.decode_logs(m.escrow.ResultSubmitted)
    assert (event.status, event.fuel, event.output) == (STATUS_TRAP, 45_000, b"dividing\n")
    (revealed,) = receipt.decode_logs(m.escrow.ResultRevealed)
    assert bytes(revealed.result_hash) == result.digest()
    info = m.escrow_view.job(job)
    assert (info.committed, info.revealed) == (1, 1)
    assert info.phase_end == chain.blocks.head.timestamp + DAY
    with ape.reverts("job_escrow: caller has no such replica"):
        m.jobs.submit(job, result, sender=p)  # once only
    chain.pending_timestamp = info.phase_end
    (settled,) = m.jobs.finalize(job, sender=keeper).decode_logs(m.escrow.JobSettled)
    assert bytes(settled.result_hash) == result.digest()
    (paid,) = [e for e in m.escrow.ReplicaSettled.range(0, chain.blocks.height + 1)
               if bytes(e.job_id) == job]  # fmt: skip
    assert paid.outcome == OUTCOME_COMPLETED, "a trap agreed on is a result, and paid"


def test_submit_is_for_k1_jobs_before_the_deadline_and_can_be_disputed(
    market, client, providers, chain, arbiter, post_job
):
    m, p = market, providers[0]
    result = RunResult(0, 7, b"out")
    k3 = post_job(k=3)
    m.jobs.accept(k3, 0, sender=p)
    with ape.reverts("job_escrow: caller has no such replica"):
        m.escrow.submit(m.jobs.terms(k3), 0, 0, 7, keccak(b"out"), b"out", sender=p)
    late = post_job(deadline_in=HOUR)
    m.jobs.accept(late, 0, sender=p)
    chain.pending_timestamp += HOUR
    with ape.reverts("job_escrow: commit deadline passed"):
        m.jobs.submit(late, result, sender=p)
    job = post_job()
    m.jobs.accept(job, 0, sender=p)
    m.jobs.submit(job, result, output_on_chain=False, sender=p)
    m.jobs.dispute(job, sender=client)
    assert m.escrow_view.job(job).status == STATUS_DISPUTED
    (settled,) = m.jobs.rule(job, True, sender=arbiter).decode_logs(m.escrow.JobSettled)
    assert settled.refunded >= PRICE
