# pragma version ~=0.4.3
"""
@title Signature policy
@custom:contract-name signatures
@license GNU Affero General Public License v3.0 only
@notice One rule for every signature the suite checks against a named signer (a
        provider's offer in OfferBook, a ballot in the Governor), as OpenZeppelin's
        `SignatureChecker`:
        - an ECDSA signature recovering to the signer is valid, if its `s` is in the
          lower half of the curve order (EIP-2), so no signature has a malleable twin;
        - otherwise, a signer with code decides through EIP-1271 (snekmate's check).
        Recovering first spares an EOA the code-size look-up, and an account with code
        that still holds its key (an EIP-7702 account) can sign either way.
        ComputeToken's `permit` (ERC-2612) and `delegateBySig` (ERC-5805) take `v, r, s`
        and accept ECDSA only, as OpenZeppelin's do; they use `_recover` here.
"""

from snekmate.utils import ecdsa
from snekmate.utils import signature_checker


@internal
@view
def _is_valid(signer: address, digest: bytes32, signature: Bytes[65]) -> bool:
    """
    @dev Whether `signature` is `signer`'s over `digest`, by the rule above. Never reverts.
    """
    if len(signature) == 65:
        s: uint256 = convert(extract32(signature, 32), uint256)
        if s <= ecdsa._MALLEABILITY_THRESHOLD:
            recovered: address = ecrecover(
                digest, convert(slice(signature, 64, 1), uint256), convert(extract32(signature, 0), uint256), s
            )
            if recovered == signer and recovered != empty(address):
                return True
    return signer.is_contract and signature_checker._is_valid_ERC1271_signature_now(signer, digest, signature)


@internal
@pure
def _recover(digest: bytes32, v: uint8, r: bytes32, s: bytes32) -> address:
    """
    @dev The ECDSA signer of `digest`; reverts on a high `s` or no signer (snekmate).
    """
    return ecdsa._try_recover_vrs(digest, convert(v, uint256), convert(r, uint256), convert(s, uint256))
