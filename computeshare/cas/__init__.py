"""Content-addressed trees: packs, their Merkle roots, a chunk server, a verifying fetcher and
a cache with a byte quota.

One module a concern: `tree` (the pack format and its Merkle root: `pack_dir`, `open_pack`,
`unpack`, proofs; the package's errors), `cache` (`Cache`: quota, LRU, pins) and `transfer`
(`fetch_tree`: the fetching end of the wire format, in its proof and static forms) and
`publish` (`ChunkServer`, `write_static`: the serving end). Every public name is importable from
`computeshare.cas` itself.
"""

from computeshare.cas.cache import Cache, check_root
from computeshare.cas.publish import Chunks, ChunkServer, serve, write_static
from computeshare.cas.transfer import IPFS_GATEWAY_ENV, MAX_HEAD, fetch_tree, ipfs_uri
from computeshare.cas.tree import (
    CHUNK,
    HASH,
    HEADER,
    MAGIC,
    MAX_COMPONENT,
    MAX_ENTRIES,
    MAX_PATH,
    MAX_SIZE,
    CacheFull,
    CasError,
    Entry,
    MerkleTree,
    Pack,
    PackError,
    PackInfo,
    TreeFetchError,
    check_path,
    chunk_count,
    chunk_length,
    leaf_hash,
    leaves_of_file,
    merkle_root,
    node_hash,
    open_pack,
    pack_dir,
    proof,
    root_of_file,
    unpack,
    verify_chunk,
)

__all__ = [
    "CHUNK",
    "HASH",
    "HEADER",
    "IPFS_GATEWAY_ENV",
    "MAGIC",
    "MAX_COMPONENT",
    "MAX_ENTRIES",
    "MAX_HEAD",
    "MAX_PATH",
    "MAX_SIZE",
    "Cache",
    "CacheFull",
    "CasError",
    "ChunkServer",
    "Chunks",
    "Entry",
    "MerkleTree",
    "Pack",
    "PackError",
    "PackInfo",
    "TreeFetchError",
    "check_path",
    "check_root",
    "chunk_count",
    "chunk_length",
    "fetch_tree",
    "ipfs_uri",
    "leaf_hash",
    "leaves_of_file",
    "merkle_root",
    "node_hash",
    "open_pack",
    "pack_dir",
    "proof",
    "root_of_file",
    "serve",
    "unpack",
    "verify_chunk",
    "write_static",
]
