"""Unit tests for ComputeToken: every external function, its events and its reverts."""

from __future__ import annotations

import ape
import pytest
from eth_abi import encode
from eth_utils import keccak

from computeshare.signing import sign_delegation, sign_permit
from tests.helpers import DAY, INITIAL_SUPPLY, TOKEN, YEAR, delegate

ZERO = "0x0000000000000000000000000000000000000000"
MAX_UINT = 2**256 - 1


def state(token, *accounts):
    """Everything a failed call must leave unchanged, for the given accounts."""
    return (
        token.totalSupply(),
        tuple(token.balanceOf(a) for a in accounts),
        tuple(token.nonces(a) for a in accounts),
        tuple(token.getVotes(a) for a in accounts),
        tuple(token.delegates(a) for a in accounts),
        tuple(token.numCheckpoints(a) for a in accounts),
    )


# ------------------------------------------------------------------ deployment


def test_metadata_and_initial_supply(token, deployer):
    assert token.name() == "ComputeShare Token"
    assert token.symbol() == "CSHR"
    assert token.decimals() == 18
    assert token.totalSupply() == INITIAL_SUPPLY
    assert token.balanceOf(deployer) == INITIAL_SUPPLY
    assert token.owner() == deployer
    assert token.MAX_SUPPLY() == 2**96 - 1
    assert token.CLOCK_MODE() == "mode=timestamp"


def test_deploy_emits_mint_and_epoch(project, deployer, chain):
    token = deployer.deploy(project.ComputeToken, deployer, INITIAL_SUPPLY)
    receipt = chain.get_receipt(token.txn_hash)
    transfers = receipt.decode_logs(token.Transfer)
    assert [(e.sender, e.receiver, e.value) for e in transfers] == [
        (ZERO, deployer, INITIAL_SUPPLY)
    ]
    (epoch,) = receipt.decode_logs(token.MintEpochStarted)
    assert epoch.start == receipt.timestamp == token.mint_epoch_start()
    assert epoch.cap == INITIAL_SUPPLY * 500 // 10_000 == token.mint_epoch_cap()
    assert token.mint_epoch_minted() == 0


def test_deploy_rejects_zero_holder(project, deployer):
    with ape.reverts("compute_token: mint to the zero address"):
        deployer.deploy(project.ComputeToken, ZERO, INITIAL_SUPPLY)


def test_deploy_rejects_supply_over_max(project, deployer):
    with ape.reverts("compute_token: supply cap exceeded"):
        deployer.deploy(project.ComputeToken, deployer, 2**96)


def test_clock_is_block_timestamp(token, chain):
    chain.mine()
    assert token.clock() == chain.blocks.head.timestamp


def test_domain_separator_matches_eip712(token, chain_id):
    fields, name, version, cid, contract, salt, extensions = token.eip712Domain()
    assert (fields, name, version, cid, contract) == (
        b"\x0f",
        "ComputeShare Token",
        "1",
        chain_id,
        token.address,
    )
    assert salt == b"\x00" * 32 and extensions == []
    type_hash = keccak(
        text="EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    expected = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [type_hash, keccak(text=name), keccak(text=version), cid, contract],
        )
    )
    assert token.DOMAIN_SEPARATOR() == expected


# ------------------------------------------------------------------ ERC-20


def test_transfer_moves_balance_and_logs(funded, alice, bob):
    receipt = funded.transfer(bob, 250 * TOKEN, sender=alice)
    assert funded.balanceOf(alice) == 750 * TOKEN
    assert funded.balanceOf(bob) == 1_250 * TOKEN
    assert funded.totalSupply() == INITIAL_SUPPLY
    (event,) = receipt.decode_logs(funded.Transfer)
    assert (event.sender, event.receiver, event.value) == (alice, bob, 250 * TOKEN)
    assert receipt.return_value is True


def test_transfer_of_zero_and_to_self_change_nothing(funded, alice, bob):
    before = state(funded, alice, bob)
    receipt = funded.transfer(bob, 0, sender=alice)
    assert len(receipt.decode_logs(funded.Transfer)) == 1
    receipt = funded.transfer(alice, 400 * TOKEN, sender=alice)
    assert len(receipt.decode_logs(funded.Transfer)) == 1
    assert state(funded, alice, bob) == before


def test_transfer_rejects_zero_receiver(funded, alice):
    before = state(funded, alice)
    with ape.reverts("compute_token: transfer to the zero address"):
        funded.transfer(ZERO, 1, sender=alice)
    assert state(funded, alice) == before


def test_transfer_rejects_amount_over_balance(funded, alice, bob):
    before = state(funded, alice, bob)
    with ape.reverts("compute_token: transfer amount exceeds balance"):
        funded.transfer(bob, 1_000 * TOKEN + 1, sender=alice)
    assert state(funded, alice, bob) == before


def test_approve_sets_allowance_and_logs(funded, alice, bob):
    receipt = funded.approve(bob, 300 * TOKEN, sender=alice)
    assert funded.allowance(alice, bob) == 300 * TOKEN
    (event,) = receipt.decode_logs(funded.Approval)
    assert (event.owner, event.spender, event.value) == (alice, bob, 300 * TOKEN)
    funded.approve(bob, 0, sender=alice)
    assert funded.allowance(alice, bob) == 0


def test_approve_rejects_zero_spender(funded, alice):
    with ape.reverts("compute_token: approve to the zero address"):
        funded.approve(ZERO, 1, sender=alice)


def test_transfer_from_spends_allowance(funded, alice, bob, carol):
    funded.approve(bob, 300 * TOKEN, sender=alice)
    receipt = funded.transferFrom(alice, carol, 100 * TOKEN, sender=bob)
    assert funded.allowance(alice, bob) == 200 * TOKEN
    assert funded.balanceOf(alice) == 900 * TOKEN
    assert funded.balanceOf(carol) == 1_100 * TOKEN
    (approval,) = receipt.decode_logs(funded.Approval)
    assert (approval.owner, approval.spender, approval.value) == (alice, bob, 200 * TOKEN)
    (transfer,) = receipt.decode_logs(funded.Transfer)
    assert (transfer.sender, transfer.receiver, transfer.value) == (alice, carol, 100 * TOKEN)


def test_transfer_from_with_infinite_allowance_keeps_it(funded, alice, bob, carol):
    funded.approve(bob, MAX_UINT, sender=alice)
    receipt = funded.transferFrom(alice, carol, 100 * TOKEN, sender=bob)
    assert funded.allowance(alice, bob) == MAX_UINT
    assert receipt.decode_logs(funded.Approval) == []


def test_transfer_from_rejects_over_allowance(funded, alice, bob, carol):
    funded.approve(bob, 99, sender=alice)
    before = state(funded, alice, carol)
    with ape.reverts("compute_token: insufficient allowance"):
        funded.transferFrom(alice, carol, 100, sender=bob)
    assert state(funded, alice, carol) == before
    assert funded.allowance(alice, bob) == 99


def test_transfer_from_rejects_over_balance(funded, alice, bob, carol):
    funded.approve(bob, MAX_UINT, sender=alice)
    with ape.reverts("compute_token: transfer amount exceeds balance"):
        funded.transferFrom(alice, carol, 1_000 * TOKEN + 1, sender=bob)


# ------------------------------------------------------------------ permit


def _permit(token, owner, spender, value, deadline, chain_id, *, nonce=None, key=None, **kw):
    return sign_permit(
        key or owner.private_key,
        chain_id=kw.get("sign_chain_id", chain_id),
        token=kw.get("sign_token", token.address),
        owner=owner.address,
        spender=spender.address if hasattr(spender, "address") else spender,
        value=value,
        nonce=token.nonces(owner) if nonce is None else nonce,
        deadline=deadline,
    )


def test_permit_sets_allowance_and_bumps_nonce(funded, alice, bob, outsider, chain, chain_id):
    deadline = chain.pending_timestamp + DAY
    sig = _permit(funded, alice, bob, 500 * TOKEN, deadline, chain_id)
    # Anyone may relay a permit: the outsider pays the gas.
    receipt = funded.permit(alice, bob, 500 * TOKEN, deadline, *sig.args, sender=outsider)
    assert funded.allowance(alice, bob) == 500 * TOKEN
    assert funded.nonces(alice) == 1
    (event,) = receipt.decode_logs(funded.Approval)
    assert (event.owner, event.spender, event.value) == (alice, bob, 500 * TOKEN)
    funded.transferFrom(alice, bob, 500 * TOKEN, sender=bob)
    assert funded.balanceOf(bob) == 1_500 * TOKEN


def test_permit_rejects_expired_deadline(funded, alice, bob, chain, chain_id):
    deadline = chain.pending_timestamp - 1
    sig = _permit(funded, alice, bob, 1, deadline, chain_id)
    with ape.reverts("compute_token: expired deadline"):
        funded.permit(alice, bob, 1, deadline, *sig.args, sender=bob)
    assert funded.nonces(alice) == 0 and funded.allowance(alice, bob) == 0


def test_permit_rejects_replay(funded, alice, bob, chain, chain_id):
    deadline = chain.pending_timestamp + DAY
    sig = _permit(funded, alice, bob, 10, deadline, chain_id)
    funded.permit(alice, bob, 10, deadline, *sig.args, sender=bob)
    funded.approve(bob, 0, sender=alice)
    with ape.reverts("compute_token: invalid signature"):
        funded.permit(alice, bob, 10, deadline, *sig.args, sender=bob)
    assert funded.nonces(alice) == 1 and funded.allowance(alice, bob) == 0


@pytest.mark.parametrize(
    "tamper",
    ["wrong_key", "other_chain", "other_contract", "other_value", "future_nonce"],
)
def test_permit_rejects_bad_signatures(funded, alice, bob, carol, chain, chain_id, tamper):
    deadline = chain.pending_timestamp + DAY
    kwargs = {
        "wrong_key": {"key": carol.private_key},
        "other_chain": {"sign_chain_id": chain_id + 1},
        "other_contract": {"sign_token": carol.address},
        "other_value": {},
        "future_nonce": {"nonce": 1},
    }[tamper]
    sig = _permit(funded, alice, bob, 10, deadline, chain_id, **kwargs)
    value = 11 if tamper == "other_value" else 10
    with ape.reverts("compute_token: invalid signature"):
        funded.permit(alice, bob, value, deadline, *sig.args, sender=bob)
    assert funded.nonces(alice) == 0 and funded.allowance(alice, bob) == 0


def test_permit_rejects_malleable_signature(funded, alice, bob, chain, chain_id):
    secp256k1_n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    deadline = chain.pending_timestamp + DAY
    sig = _permit(funded, alice, bob, 10, deadline, chain_id)
    high_s = (secp256k1_n - int.from_bytes(sig.s, "big")).to_bytes(32, "big")
    flipped_v = 55 - sig.v  # 27 <-> 28
    with ape.reverts("ecdsa: invalid signature `s` value"):
        funded.permit(alice, bob, 10, deadline, flipped_v, sig.r, high_s, sender=bob)
    assert funded.nonces(alice) == 0


def test_permit_rejects_zero_spender(funded, alice, bob, chain, chain_id):
    deadline = chain.pending_timestamp + DAY
    sig = _permit(funded, alice, ZERO, 10, deadline, chain_id)
    with ape.reverts("compute_token: approve to the zero address"):
        funded.permit(alice, ZERO, 10, deadline, *sig.args, sender=bob)


# ------------------------------------------------------------------ delegation


def _delegation(token, signer, delegatee, nonce, expiry, chain_id):
    """`signer`'s EIP-712 Delegation signature for `token`."""
    return sign_delegation(
        signer.private_key,
        chain_id=chain_id,
        token=token.address,
        delegatee=delegatee.address,
        nonce=nonce,
        expiry=expiry,
    )


def test_self_delegation_creates_votes(funded, alice):
    assert funded.getVotes(alice) == 0 and funded.delegates(alice) == ZERO
    receipt = delegate(funded, alice, alice)
    assert funded.delegates(alice) == alice
    assert funded.getVotes(alice) == 1_000 * TOKEN
    assert funded.numCheckpoints(alice) == 1
    key, value = funded.checkpoints(alice, 0)
    assert (key, value) == (receipt.timestamp, 1_000 * TOKEN)
    (changed,) = receipt.decode_logs(funded.DelegateChanged)
    assert (changed.delegator, changed.from_delegate, changed.to_delegate) == (alice, ZERO, alice)
    (votes,) = receipt.decode_logs(funded.DelegateVotesChanged)
    assert (votes.delegate, votes.previous_votes, votes.new_votes) == (alice, 0, 1_000 * TOKEN)


def test_redelegation_moves_votes(funded, alice, bob, carol):
    delegate(funded, alice, alice)
    receipt = delegate(funded, carol, alice)
    assert funded.delegates(alice) == carol
    assert funded.getVotes(alice) == 0
    assert funded.getVotes(carol) == 1_000 * TOKEN
    moved = [
        (e.delegate, e.previous_votes, e.new_votes)
        for e in receipt.decode_logs(funded.DelegateVotesChanged)
    ]
    assert moved == [(alice, 1_000 * TOKEN, 0), (carol, 0, 1_000 * TOKEN)]
    delegate(funded, bob, alice)
    assert (funded.getVotes(carol), funded.getVotes(bob)) == (0, 1_000 * TOKEN)
    receipt = delegate(funded, ZERO, alice)
    assert funded.delegates(alice) == ZERO and funded.getVotes(bob) == 0
    (changed,) = receipt.decode_logs(funded.DelegateChanged)
    assert (changed.from_delegate, changed.to_delegate) == (bob, ZERO)


def test_delegating_to_current_delegate_changes_no_votes(funded, alice):
    delegate(funded, alice, alice)
    receipt = delegate(funded, alice, alice)
    assert receipt.decode_logs(funded.DelegateVotesChanged) == []
    assert funded.getVotes(alice) == 1_000 * TOKEN and funded.numCheckpoints(alice) == 1


def test_transfers_move_votes_between_delegates(funded, alice, bob, carol):
    delegate(funded, alice, alice)
    delegate(funded, carol, bob)
    receipt = funded.transfer(bob, 100 * TOKEN, sender=alice)
    assert funded.getVotes(alice) == 900 * TOKEN
    assert funded.getVotes(carol) == 1_100 * TOKEN
    moved = [
        (e.delegate, e.previous_votes, e.new_votes)
        for e in receipt.decode_logs(funded.DelegateVotesChanged)
    ]
    assert moved == [(alice, 1_000 * TOKEN, 900 * TOKEN), (carol, 1_000 * TOKEN, 1_100 * TOKEN)]
    # carol holds tokens but never delegated: her own balance carries no votes.
    funded.transfer(alice, 50 * TOKEN, sender=carol)
    assert funded.getVotes(carol) == 1_100 * TOKEN
    assert funded.getVotes(alice) == 950 * TOKEN


def test_undelegated_transfers_write_no_checkpoints(funded, alice, bob):
    receipt = funded.transfer(bob, 1, sender=alice)
    assert receipt.decode_logs(funded.DelegateVotesChanged) == []
    assert funded.numCheckpoints(alice) == funded.numCheckpoints(bob) == 0


def test_same_timestamp_updates_overwrite_checkpoint(funded, alice, bob, chain):
    delegate(funded, alice, alice)
    chain.pending_timestamp += 10
    web3 = chain.provider.web3
    chain.provider.auto_mine = False
    try:
        for amount in (10, 20):
            tx = funded.transfer.as_transaction(bob, amount, sender=alice)
            web3.eth.send_transaction(
                {"from": alice.address, "to": funded.address, "data": tx.data}
            )
        chain.mine()
    finally:
        chain.provider.auto_mine = True
    assert funded.balanceOf(bob) == 1_000 * TOKEN + 30
    assert funded.numCheckpoints(alice) == 2
    assert funded.getVotes(alice) == 1_000 * TOKEN - 30
    assert funded.checkpoints(alice, 1).value == 1_000 * TOKEN - 30


def test_delegate_by_sig(funded, alice, bob, outsider, chain, chain_id):
    expiry = chain.pending_timestamp + DAY
    sig = _delegation(funded, alice, bob, 0, expiry, chain_id)
    receipt = funded.delegateBySig(bob, 0, expiry, *sig.args, sender=outsider)
    assert funded.delegates(alice) == bob
    assert funded.getVotes(bob) == 1_000 * TOKEN
    assert funded.nonces(alice) == 1
    (changed,) = receipt.decode_logs(funded.DelegateChanged)
    assert changed.delegator == alice
    with ape.reverts("compute_token: invalid nonce"):
        funded.delegateBySig(bob, 0, expiry, *sig.args, sender=outsider)


def test_delegate_by_sig_rejects_expired(funded, alice, bob, chain, chain_id):
    expiry = chain.pending_timestamp - 1
    sig = _delegation(funded, alice, bob, 0, expiry, chain_id)
    with ape.reverts("compute_token: signature expired"):
        funded.delegateBySig(bob, 0, expiry, *sig.args, sender=bob)
    assert funded.delegates(alice) == ZERO


def test_delegate_by_sig_rejects_wrong_nonce(funded, alice, bob, chain, chain_id):
    expiry = chain.pending_timestamp + DAY
    sig = _delegation(funded, alice, bob, 5, expiry, chain_id)
    before = state(funded, alice, bob)
    with ape.reverts("compute_token: invalid nonce"):
        funded.delegateBySig(bob, 5, expiry, *sig.args, sender=bob)
    assert state(funded, alice, bob) == before


def test_permit_and_delegation_share_nonces(funded, alice, bob, chain, chain_id):
    deadline = chain.pending_timestamp + DAY
    sig = _permit(funded, alice, bob, 1, deadline, chain_id)
    funded.permit(alice, bob, 1, deadline, *sig.args, sender=bob)
    stale = _delegation(funded, alice, bob, 0, deadline, chain_id)
    with ape.reverts("compute_token: invalid nonce"):
        funded.delegateBySig(bob, 0, deadline, *stale.args, sender=bob)


# ------------------------------------------------------------------ history


def test_past_votes_and_supply_follow_history(funded, deployer, alice, bob, chain):
    t0 = delegate(funded, alice, alice).timestamp
    chain.pending_timestamp += 100
    t1 = funded.transfer(bob, 300 * TOKEN, sender=alice).timestamp
    chain.pending_timestamp += 100
    t2 = funded.mint(alice, 50 * TOKEN, sender=deployer).timestamp
    chain.pending_timestamp += 100
    t3 = funded.burn(20 * TOKEN, sender=alice).timestamp
    chain.pending_timestamp += 1
    chain.mine()
    assert funded.getPastVotes(alice, t0 - 1) == 0
    assert funded.getPastVotes(alice, t0) == 1_000 * TOKEN
    assert funded.getPastVotes(alice, t1 - 1) == 1_000 * TOKEN
    assert funded.getPastVotes(alice, t1) == 700 * TOKEN
    assert funded.getPastVotes(alice, t2) == 750 * TOKEN
    assert funded.getPastVotes(alice, t3) == 730 * TOKEN
    assert funded.getPastTotalSupply(t1) == INITIAL_SUPPLY
    assert funded.getPastTotalSupply(t2) == INITIAL_SUPPLY + 50 * TOKEN
    assert funded.getPastTotalSupply(t3) == INITIAL_SUPPLY + 30 * TOKEN
    assert funded.getPastVotes(ZERO, t3) == 0 and funded.getVotes(ZERO) == 0


def test_binary_search_over_many_checkpoints(funded, alice, bob, chain):
    delegate(funded, alice, alice)
    stamps = []
    for _ in range(40):
        chain.pending_timestamp += 10
        stamps.append(funded.transfer(bob, TOKEN, sender=alice).timestamp)
    chain.pending_timestamp += 1
    chain.mine()
    assert funded.numCheckpoints(alice) == 41
    for i, t in enumerate(stamps):
        assert funded.getPastVotes(alice, t) == (1_000 - i - 1) * TOKEN
        assert funded.getPastVotes(alice, t - 1) == (1_000 - i) * TOKEN


def test_future_lookups_revert(funded, alice, chain):
    now = chain.pending_timestamp
    with ape.reverts("compute_token: future lookup"):
        funded.getPastVotes(alice, now + 10)
    with ape.reverts("compute_token: future lookup"):
        funded.getPastTotalSupply(now + 10)


def test_checkpoint_out_of_range_reverts(funded, alice):
    with ape.reverts("compute_token: no such checkpoint"):
        funded.checkpoints(alice, 0)
    with ape.reverts("compute_token: no such checkpoint"):
        funded.checkpoints(ZERO, 0)


# ------------------------------------------------------------------ supply


def test_owner_mints_within_cap(funded, deployer, alice):
    alice_votes_before = funded.getVotes(alice)
    delegate(funded, alice, alice)
    cap = funded.mint_epoch_cap()
    assert funded.mintable() == cap
    receipt = funded.mint(alice, cap, sender=deployer)
    assert funded.totalSupply() == INITIAL_SUPPLY + cap
    assert funded.balanceOf(alice) == 1_000 * TOKEN + cap
    assert funded.getVotes(alice) == alice_votes_before + 1_000 * TOKEN + cap
    assert funded.mint_epoch_minted() == cap and funded.mintable() == 0
    (event,) = receipt.decode_logs(funded.Transfer)
    assert (event.sender, event.receiver, event.value) == (ZERO, alice, cap)
    with ape.reverts("compute_token: mint exceeds inflation cap"):
        funded.mint(alice, 1, sender=deployer)


def test_mint_epoch_rolls_over_after_a_year(funded, deployer, alice, chain):
    cap = funded.mint_epoch_cap()
    funded.mint(alice, cap, sender=deployer)
    chain.pending_timestamp = funded.mint_epoch_start() + YEAR
    chain.mine()
    supply = funded.totalSupply()
    assert funded.mintable() == supply * 500 // 10_000
    receipt = funded.mint(alice, 1, sender=deployer)
    (epoch,) = receipt.decode_logs(funded.MintEpochStarted)
    assert (epoch.start, epoch.cap) == (receipt.timestamp, supply * 500 // 10_000)
    assert funded.mint_epoch_minted() == 1


def test_mint_rejects_non_owner_zero_receiver_and_supply_over_max(project, funded, deployer, alice):
    with ape.reverts("ownable: caller is not the owner"):
        funded.mint(alice, 1, sender=alice)
    with ape.reverts("compute_token: mint to the zero address"):
        funded.mint(ZERO, 1, sender=deployer)
    near_max = 2**96 - 1 - 10
    big = deployer.deploy(project.ComputeToken, deployer, near_max)
    with ape.reverts("compute_token: supply cap exceeded"):
        big.mint(alice, 11, sender=deployer)
    assert big.mintable() == 10


def test_burn_reduces_supply_and_votes(funded, alice):
    delegate(funded, alice, alice)
    receipt = funded.burn(400 * TOKEN, sender=alice)
    assert funded.balanceOf(alice) == 600 * TOKEN
    assert funded.totalSupply() == INITIAL_SUPPLY - 400 * TOKEN
    assert funded.getVotes(alice) == 600 * TOKEN
    (event,) = receipt.decode_logs(funded.Transfer)
    assert (event.sender, event.receiver, event.value) == (alice, ZERO, 400 * TOKEN)
    before = state(funded, alice)
    with ape.reverts("compute_token: burn amount exceeds balance"):
        funded.burn(600 * TOKEN + 1, sender=alice)
    assert state(funded, alice) == before


def test_ownership_transfer_and_renounce(funded, deployer, alice):
    with ape.reverts("ownable: caller is not the owner"):
        funded.transfer_ownership(alice, sender=alice)
    with ape.reverts("ownable: new owner is the zero address"):
        funded.transfer_ownership(ZERO, sender=deployer)
    receipt = funded.transfer_ownership(alice, sender=deployer)
    (event,) = receipt.decode_logs(funded.OwnershipTransferred)
    assert (event.previous_owner, event.new_owner) == (deployer, alice)
    with ape.reverts("ownable: caller is not the owner"):
        funded.mint(alice, 1, sender=deployer)
    funded.renounce_ownership(sender=alice)
    assert funded.owner() == ZERO
    with ape.reverts("ownable: caller is not the owner"):
        funded.mint(alice, 1, sender=alice)


# ------------------------------------------------------------------ bonded votes (vault)


def test_vault_is_set_once_by_the_owner(funded, deployer, alice, bob):
    with ape.reverts("ownable: caller is not the owner"):
        funded.set_vault(bob, sender=alice)
    with ape.reverts("compute_token: zero vault"):
        funded.set_vault(ZERO, sender=deployer)
    delegate(funded, alice, alice)
    with ape.reverts("compute_token: the vault delegates"):
        funded.set_vault(alice, sender=deployer)
    tx = funded.set_vault(bob, sender=deployer)
    assert funded.vault() == bob
    assert [log.vault for log in tx.decode_logs(funded.VaultSet)] == [bob.address]
    with ape.reverts("compute_token: vault already set"):
        funded.set_vault(alice, sender=deployer)
    with ape.reverts("compute_token: the vault cannot delegate"):
        delegate(funded, bob, bob)


def test_bonded_units_vote_with_the_owners_delegation(funded, deployer, alice, bob, carol, chain):
    vault = carol
    funded.set_vault(vault, sender=deployer)
    delegate(funded, alice, alice)
    # The vault takes 400 of alice's tokens: her votes drop with the transfer...
    funded.transfer(vault, 400 * TOKEN, sender=alice)
    assert funded.getVotes(alice) == 600 * TOKEN
    # ...and come back once the vault reports them as bonded for her.
    tx = funded.add_bonded(alice, 400 * TOKEN, sender=vault)
    assert funded.bonded_of(alice) == 400 * TOKEN
    assert funded.getVotes(alice) == 1_000 * TOKEN
    [event] = tx.decode_logs(funded.BondedChanged)
    assert (event.owner, event.previous_units, event.new_units) == (alice.address, 0, 400 * TOKEN)
    # Re-delegating moves balance and bonded units together.
    delegate(funded, bob, alice)
    assert funded.getVotes(alice) == 0
    assert funded.getVotes(bob) == 1_000 * TOKEN
    funded.sub_bonded(alice, 150 * TOKEN, sender=vault)
    assert funded.bonded_of(alice) == 250 * TOKEN
    assert funded.getVotes(bob) == 850 * TOKEN
    # The vault's own balance never votes: its delegate is nobody.
    assert funded.delegates(vault) == ZERO
    chain.pending_timestamp += 1
    chain.mine()
    assert funded.getPastVotes(bob, chain.blocks.head.timestamp - 1) == 850 * TOKEN


def test_bonded_units_are_vault_only_and_cannot_underflow(funded, deployer, alice, carol):
    funded.set_vault(carol, sender=deployer)
    with ape.reverts("compute_token: caller is not the vault"):
        funded.add_bonded(alice, TOKEN, sender=alice)
    with ape.reverts("compute_token: caller is not the vault"):
        funded.sub_bonded(alice, 0, sender=deployer)
    funded.add_bonded(alice, TOKEN, sender=carol)
    with ape.reverts("compute_token: bonded units underflow"):
        funded.sub_bonded(alice, TOKEN + 1, sender=carol)
    with ape.reverts("compute_token: bonded units overflow"):
        funded.add_bonded(alice, 2**96 - TOKEN, sender=carol)
    assert funded.bonded_of(alice) == TOKEN


# ------------------------------------------------------------------ custody accounts

CUSTODY_TAG = keccak(text="ComputeShare custody account")


def custody_address(vault, key) -> str:
    digest = keccak(CUSTODY_TAG + encode(["address", "address"], [vault.address, key.address]))
    return ape.convert(digest[12:], ape.types.AddressType)


def test_custody_accounts_are_derived_from_the_custodian_and_key(
    funded, deployer, alice, bob, carol
):
    assert funded.custody_account(carol, alice) == custody_address(carol, alice)
    assert funded.custody_account(carol, alice) != funded.custody_account(carol, bob)
    # The same key of two custodians: two accounts.
    assert funded.custody_account(carol, alice) != funded.custody_account(bob, alice)


def test_any_contract_keeps_custody_accounts_of_its_own(funded, deployer, alice, bob, carol):
    """Opening custody accounts needs no permission (JobEscrow keeps its deposit shards in
    them, Staking its pools): a custodian reaches only the accounts derived from its own
    address, which hold only what it put in, and never pays into another's. Bonded units
    stay the vault's alone."""
    vault, other = carol, bob
    funded.set_vault(vault, sender=deployer)
    with ape.reverts("compute_token: caller is not the vault"):
        funded.add_bonded(alice, TOKEN, sender=other)
    funded.approve(vault, MAX_UINT, sender=alice)
    funded.approve(other, MAX_UINT, sender=alice)
    tx = funded.custody_deposit(alice, alice, 30 * TOKEN, sender=other)
    in_other = funded.custody_account(other, alice)
    assert [(e.custodian, e.key, e.account) for e in tx.decode_logs(funded.CustodyOpened)] == [
        (other.address, alice.address, in_other)
    ]
    funded.custody_deposit(alice, alice, 20 * TOKEN, sender=vault)
    in_vault = funded.custody_account(vault, alice)
    assert funded.custody_balance(other, alice) == funded.balanceOf(in_other) == 30 * TOKEN
    assert funded.custody_balance(vault, alice) == funded.balanceOf(in_vault) == 20 * TOKEN
    tx = funded.custody_withdraw(alice, alice, 25 * TOKEN, sender=vault)
    assert tx.return_value is False  # the vault's account holds 20, whatever the other's holds
    funded.custody_withdraw(alice, bob, 25 * TOKEN, sender=other)
    assert funded.custody_balance(other, alice) == 5 * TOKEN
    assert funded.custody_balance(vault, alice) == 20 * TOKEN
    with ape.reverts("compute_token: burn amount exceeds balance"):
        funded.custody_burn(alice, 6 * TOKEN, sender=other)
    # Never from one custodian's account into another's.
    with ape.reverts("compute_token: pays a custody account"):
        funded.custody_withdraw(alice, in_vault, TOKEN, sender=other)
    assert funded.is_custody_account(in_other) and funded.is_custody_account(in_vault)


def test_custody_deposit_withdraw_and_burn(funded, deployer, alice, bob, carol, chain):
    vault = carol
    funded.set_vault(vault, sender=deployer)
    pot = funded.custody_account(vault, bob)
    supply = funded.totalSupply()
    with ape.reverts("compute_token: insufficient allowance"):
        funded.custody_deposit(alice, bob, 100 * TOKEN, sender=vault)
    funded.approve(vault, 300 * TOKEN, sender=alice)
    # Anyone else reaches only accounts of its own, under the same key: empty ones.
    for caller in (alice, bob):
        with ape.reverts("compute_token: insufficient allowance"):
            funded.custody_deposit(alice, bob, TOKEN, sender=caller)

    assert not funded.is_custody_account(pot)
    tx = funded.custody_deposit(alice, bob, 200 * TOKEN, sender=vault)
    assert [(e.custodian, e.key, e.account) for e in tx.decode_logs(funded.CustodyOpened)] == [
        (vault.address, bob.address, pot)
    ]
    assert funded.is_custody_account(pot) and not funded.is_custody_account(alice)
    [moved] = tx.decode_logs(funded.Transfer)
    assert (moved.sender, moved.receiver, moved.value) == (alice.address, pot, 200 * TOKEN)
    assert funded.allowance(alice, vault) == 100 * TOKEN
    assert funded.balanceOf(pot) == 200 * TOKEN and funded.balanceOf(vault) == 1_000 * TOKEN
    # Opened once: the second deposit into the same account logs no CustodyOpened.
    tx = funded.custody_deposit(alice, bob, 100 * TOKEN, sender=vault)
    assert not tx.decode_logs(funded.CustodyOpened)

    tx = funded.custody_withdraw(bob, bob, 50 * TOKEN, sender=vault)
    [moved] = tx.decode_logs(funded.Transfer)
    assert (moved.sender, moved.receiver, moved.value) == (pot, bob.address, 50 * TOKEN)
    # More than the account holds: False, and nothing moves (the vault may refill it).
    tx = funded.custody_withdraw(bob, bob, 250 * TOKEN + 1, sender=vault)
    assert tx.return_value is False and not tx.decode_logs(funded.Transfer)
    assert funded.balanceOf(pot) == 250 * TOKEN
    with ape.reverts("compute_token: transfer to the zero address"):
        funded.custody_withdraw(bob, ZERO, TOKEN, sender=vault)
    # Never into a custody account (itself or another): the vault's books could not follow.
    funded.custody_deposit(alice, alice, 0, sender=vault)  # opens alice's key
    for receiver in (pot, funded.custody_account(vault, alice)):
        with ape.reverts("compute_token: pays a custody account"):
            funded.custody_withdraw(bob, receiver, TOKEN, sender=vault)
    funded.custody_burn(bob, 50 * TOKEN, sender=vault)
    with ape.reverts("compute_token: burn amount exceeds balance"):
        funded.custody_burn(bob, 200 * TOKEN + 1, sender=vault)
    assert funded.balanceOf(pot) == 200 * TOKEN
    # An ordinary ERC-20 to every reader: the supply is the sum of the balances.
    holders = (deployer, alice, bob, carol, pot)
    assert funded.totalSupply() == supply - 50 * TOKEN == sum(funded.balanceOf(a) for a in holders)
    # A custody account's balance votes for nobody.
    delegate(funded, alice, alice)
    assert funded.delegates(pot) == ZERO
    assert funded.getVotes(alice) == funded.balanceOf(alice) == 700 * TOKEN


def test_nobody_but_the_vault_moves_a_custody_accounts_tokens(funded, deployer, alice, bob, carol):
    """Whoever controlled the custody account's address (a key colliding with it, ~2**80
    work) still could not spend, approve away, burn or delegate its tokens."""
    vault = carol
    funded.set_vault(vault, sender=deployer)
    funded.approve(vault, MAX_UINT, sender=alice)
    funded.custody_deposit(alice, bob, 100 * TOKEN, sender=vault)
    pot = ape.accounts[funded.custody_account(vault, bob)]  # impersonated
    pot.balance += 10**18
    before = state(funded, alice, bob, pot)
    with ape.reverts("compute_token: custody account"):
        funded.transfer(alice, TOKEN, sender=pot)
    with ape.reverts("compute_token: custody account"):
        funded.burn(TOKEN, sender=pot)
    with ape.reverts("compute_token: custody account"):
        funded.invoke_transaction("delegate", pot, sender=pot)
    funded.approve(alice, MAX_UINT, sender=pot)
    with ape.reverts("compute_token: custody account"):
        funded.transferFrom(pot, alice, TOKEN, sender=alice)
    assert state(funded, alice, bob, pot) == before


def test_a_delegating_address_cannot_become_a_custody_account(funded, deployer, alice, bob, carol):
    vault = carol
    funded.set_vault(vault, sender=deployer)
    funded.approve(vault, MAX_UINT, sender=alice)
    squatter = ape.accounts[funded.custody_account(vault, bob)]  # impersonated, before any deposit
    squatter.balance += 10**18
    funded.transfer(squatter, 10 * TOKEN, sender=alice)
    delegate(funded, squatter, squatter)
    with ape.reverts("compute_token: custody account delegates"):
        funded.custody_deposit(alice, bob, TOKEN, sender=vault)
    # Tokens merely sent to the address before it opens become the account's; it stays
    # the vault's alone from then on.
    other = funded.custody_account(vault, alice)
    funded.transfer(other, 5 * TOKEN, sender=alice)
    funded.custody_deposit(alice, alice, TOKEN, sender=vault)
    assert funded.balanceOf(other) == 6 * TOKEN
    funded.custody_withdraw(alice, bob, 6 * TOKEN, sender=vault)
    assert funded.balanceOf(other) == 0
