"""The Merkle tree against RFC 6962's recursive definitions, written out independently here."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from llmchain.digest import merkle


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def rfc_mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH over leaf *hashes* (the leaf hashing is done by the caller)."""
    if not leaves:
        return _h(b"")
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)  # largest power of two smaller than n
    return _h(b"\x01" + rfc_mth(leaves[:k]) + rfc_mth(leaves[k:]))


def rfc_path(m: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 PATH(m, D[n])."""
    if len(leaves) == 1:
        return []
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    if m < k:
        return rfc_path(m, leaves[:k]) + [rfc_mth(leaves[k:])]
    return rfc_path(m - k, leaves[k:]) + [rfc_mth(leaves[:k])]


def leaves(n: int) -> list[bytes]:
    return [_h(b"\x00" + i.to_bytes(4, "big")) for i in range(n)]


def test_empty_tree_is_sha256_of_nothing() -> None:
    assert merkle.root([]) == bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


def test_single_leaf_is_its_own_root() -> None:
    assert merkle.root(leaves(1)) == leaves(1)[0]


def test_root_and_paths_match_rfc_for_every_size_up_to_40() -> None:
    for n in range(1, 41):
        hashes = leaves(n)
        root = merkle.root(hashes)
        assert root == rfc_mth(hashes), n
        for m in range(n):
            path = merkle.inclusion_path(m, hashes)
            assert path == rfc_path(m, hashes), (n, m)
            assert merkle.verify_inclusion(root, hashes[m], m, n, path)


@given(st.integers(1, 70), st.data())
def test_any_tampering_fails(n: int, data: st.DataObject) -> None:
    hashes = leaves(n)
    root = merkle.root(hashes)
    m = data.draw(st.integers(0, n - 1))
    path = merkle.inclusion_path(m, hashes)
    assert not merkle.verify_inclusion(root, _h(b"other"), m, n, path)
    if n > 1:
        other = data.draw(st.integers(0, n - 1).filter(lambda i: i != m))
        assert not merkle.verify_inclusion(root, hashes[m], other, n, path)
    if path:
        broken = list(path)
        broken[data.draw(st.integers(0, len(path) - 1))] = _h(b"x")
        assert not merkle.verify_inclusion(root, hashes[m], m, n, broken)
        assert not merkle.verify_inclusion(root, hashes[m], m, n, path[:-1])
    assert not merkle.verify_inclusion(root, hashes[m], m, n, [*path, _h(b"extra")])


def test_index_outside_tree_is_rejected() -> None:
    hashes = leaves(3)
    root = merkle.root(hashes)
    assert not merkle.verify_inclusion(root, hashes[0], 3, 3, [])
    assert not merkle.verify_inclusion(root, hashes[0], -1, 3, [])
    assert not merkle.verify_inclusion(merkle.root([]), hashes[0], 0, 0, [])
