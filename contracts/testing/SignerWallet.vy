# pragma version ~=0.4.3
"""
@title SignerWallet
@custom:contract-name SignerWallet
@license GNU Affero General Public License v3.0 only
@notice Test fixture, never deployed by the protocol: a minimal contract wallet whose
        EIP-1271 `isValidSignature` accepts its owner's ECDSA signatures, used to test
        that contract voters can vote by signature.
"""

from snekmate.utils import ecdsa

_MAGIC: constant(bytes4) = 0x1626BA7E

# @notice The key holder behind this wallet.
owner: public(immutable(address))


@deploy
def __init__():
    """
    @notice The deployer owns the wallet.
    """
    owner = msg.sender


@external
def execute(target: address, data: Bytes[1024]):
    """
    @notice Makes a call from the wallet. Owner only.
    @param target Contract to call.
    @param data Calldata.
    """
    assert msg.sender == owner, "signer_wallet: caller is not the owner"
    raw_call(target, data)


@external
@view
def isValidSignature(digest: bytes32, signature: Bytes[65]) -> bytes4:
    """
    @notice EIP-1271: valid when the owner signed `digest`.
    @param digest The signed hash.
    @param signature 65-byte ECDSA signature.
    @return bytes4 The EIP-1271 magic value, or zero.
    """
    if ecdsa._recover_sig(digest, signature) == owner:
        return _MAGIC
    return empty(bytes4)
