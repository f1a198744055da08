"""RFC 6962 / RFC 9162 Merkle Tree Hash with SHA-256, and inclusion proofs.

Chosen because the EVM checks SHA-256 cheaply (a precompile) and the contract's
``verifyTensorProof`` implements the same RFC 9162 §2.1.3.2 verification. The tree splits n leaves
at the largest power of two smaller than n; built bottom-up that is the same as pairing neighbours
level by level and carrying an unpaired last node up unchanged, which is what ``root`` does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()  # the Merkle Tree Hash of zero leaves


def hash_children(left: bytes, right: bytes) -> bytes:
    """Inner node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _next_level(level: Sequence[bytes]) -> list[bytes]:
    paired = [hash_children(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
    return paired + [level[-1]] if len(level) % 2 else paired


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Merkle Tree Hash of already hashed leaves, in order."""
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        level = _next_level(level)
    return level[0]


def inclusion_path(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """The audit path for leaf ``index`` (RFC 6962 §2.1.1 PATH), nearest sibling first."""
    if not 0 <= index < len(leaf_hashes):
        raise IndexError(f"leaf index {index} outside a tree of {len(leaf_hashes)} leaves")
    path: list[bytes] = []
    level = list(leaf_hashes)
    while len(level) > 1:
        sibling = index ^ 1
        if sibling < len(level):
            path.append(level[sibling])
        level = _next_level(level)
        index //= 2
    return path


def verify_inclusion(
    root_hash: bytes, leaf_hash: bytes, index: int, size: int, path: Sequence[bytes]
) -> bool:
    """RFC 9162 §2.1.3.2: does ``path`` prove ``leaf_hash`` is leaf ``index`` of ``size``?"""
    if not 0 <= index < size:
        return False
    fn, sn, node = index, size - 1, leaf_hash
    for sibling in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            node = hash_children(sibling, node)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            node = hash_children(node, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and node == root_hash
