# pragma version ~=0.4.3
# pragma nonreentrancy on
"""
@title Offer book
@custom:contract-name OfferBook
@license GNU Affero General Public License v3.0 only
@notice A provider signs an EIP-712 `Offer` off-chain: its device, price and collateral,
        the client it is for, the spec it agrees to run, how far after the match the
        commit deadline may fall, an expiry and a nonce. That client matches it here in
        one transaction, which posts a k = 1 job in JobEscrow already accepted by the
        provider's device and paid from the client's escrow balance.

        The offer binds everything the client could otherwise use against the provider.
        The payer is bound in the signed data and must be the caller, so nobody can
        front-run a match to charge another account (the hole iExec documents for its
        `matchOrders`). The spec is bound by its hash (zero: any spec), so a client
        cannot run what the provider never agreed to. The deadline must be
        `min_duration` to `max_duration` seconds after the match: a client cannot set it
        too soon to meet and then `expire` the job to have the provider slashed, nor lock
        the collateral for longer than offered. `min_duration` is at least 1 (a
        provider wanting no floor signs 1): zero, the value of a field left unset, is
        refused rather than read as "no floor". The replicas are 1 by construction, and
        the reveal and challenge windows are the protocol's, not the client's: JobEscrow's
        parameters when the job is posted, fixed in its terms.

        Each nonce matches once; providers cancel unused offers. Contract providers sign
        through EIP-1271.
"""

# Static analysis (vyper-guard, `make analyze`), contract-wide:
# analysis: missing_nonreentrant: `# pragma nonreentrancy on` makes every external function nonreentrant (tests/test_hostile_tokens.py: a token calling back is refused).
# analysis: shadowed_state_variable: the flagged assignments in `__init__` set immutables; there is no local variable.

from interfaces import IJobEscrow
from interfaces import IOfferBook
from snekmate.utils import eip712_domain_separator
from contracts.modules import signatures

implements: IOfferBook

initializes: eip712_domain_separator

exports: eip712_domain_separator.eip712Domain


_OFFER_TYPEHASH: constant(bytes32) = keccak256(
    "Offer(address provider,uint64 device_nonce,address client,uint96 price,uint96 collateral,bytes32 spec_hash,uint32 min_duration,uint32 max_duration,uint48 expiry,uint256 nonce)"
)

# @notice JobEscrow, where this contract holds the MATCHER role.
ESCROW: public(immutable(address))

# @notice Offer nonces each provider has matched or cancelled.
offer_used: public(HashMap[address, HashMap[uint256, bool]])



@deploy
def __init__(escrow: address):
    """
    @notice Deploys the offer book for `escrow`.
    @param escrow JobEscrow; grant this contract its MATCHER role.
    """
    eip712_domain_separator.__init__("ComputeShare OfferBook", "1")
    assert escrow != empty(address), "offer_book: zero escrow"
    ESCROW = escrow


@external
def match_offer(spec: Bytes[4096], deadline: uint256, offer: IOfferBook.Offer, signature: Bytes[65]) -> bytes32:
    """
    @notice Posts a k = 1 job matched to `offer`, paid from the caller's escrow balance.
            Its spec and commit deadline are the caller's within the offer's bounds;
            its reveal and challenge windows are JobEscrow's parameters at posting, which
            the job's terms fix, and its replicas are 1.
    @param spec The job spec: any if `offer.spec_hash` is zero, else the one it hashes.
    @param deadline The job's commit deadline: `offer.min_duration` to
           `offer.max_duration` seconds after this block, both inclusive (and within
           JobEscrow's `MAX_JOB_DURATION`).
    @param offer The provider's offer, which must name the caller as client.
    @param signature The provider's signature over the offer.
    @return bytes32 The job id.
    """
    assert offer.client == msg.sender, "offer_book: offer is for another client"
    assert block.timestamp <= convert(offer.expiry, uint256), "offer_book: offer expired"
    assert not self.offer_used[offer.provider][offer.nonce], "offer_book: offer used or cancelled"
    assert offer.min_duration != 0, "offer_book: zero min_duration"
    assert offer.min_duration <= offer.max_duration, "offer_book: empty duration range"
    assert offer.spec_hash == empty(bytes32) or keccak256(spec) == offer.spec_hash, "offer_book: spec not offered"
    assert deadline >= block.timestamp + convert(offer.min_duration, uint256), "offer_book: deadline too soon"
    assert deadline <= block.timestamp + convert(offer.max_duration, uint256), "offer_book: deadline too late"
    assert signatures._is_valid(offer.provider, self._digest(offer), signature), "offer_book: invalid signature"
    self.offer_used[offer.provider][offer.nonce] = True
    job_id: bytes32 = extcall IJobEscrow(ESCROW).post_matched(
        msg.sender,
        spec,
        deadline,
        offer.provider,
        convert(offer.device_nonce, uint256),
        convert(offer.price, uint256),
        convert(offer.collateral, uint256),
    )
    log IOfferBook.OfferMatched(job_id=job_id, provider=offer.provider, client=msg.sender, nonce=offer.nonce)
    return job_id


@external
def cancel_offer(nonce: uint256):
    """
    @notice Invalidates the caller's offer with this nonce.
    @param nonce The offer nonce.
    """
    assert not self.offer_used[msg.sender][nonce], "offer_book: offer used or cancelled"
    self.offer_used[msg.sender][nonce] = True
    log IOfferBook.OfferCancelled(provider=msg.sender, nonce=nonce)


@external
@view
def offer_digest(offer: IOfferBook.Offer) -> bytes32:
    """
    @notice The EIP-712 digest a provider signs for `offer`.
    @param offer The offer.
    @return bytes32 The digest.
    """
    return self._digest(offer)


@external
@view
def DOMAIN_SEPARATOR() -> bytes32:
    """
    @notice EIP-712 domain separator of offers on this chain.
    @return bytes32 The separator.
    """
    return eip712_domain_separator._domain_separator_v4()


@internal
@view
def _digest(offer: IOfferBook.Offer) -> bytes32:
    return eip712_domain_separator._hash_typed_data_v4(
        keccak256(
            abi_encode(
                _OFFER_TYPEHASH,
                offer.provider,
                offer.device_nonce,
                offer.client,
                offer.price,
                offer.collateral,
                offer.spec_hash,
                offer.min_duration,
                offer.max_duration,
                offer.expiry,
                offer.nonce,
            )
        )
    )
