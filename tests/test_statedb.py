"""The pieces under the snapshot reader, each against the reference implementation it replaces:
RLP against pyrlp, the trie walk against py-trie's HexaryTrie (through the real ledger store),
Keccak and EIP-55 against eth-utils, and the storage layout rules on a layout solc did not give us."""

from __future__ import annotations

from pathlib import Path

import pytest
import rlp
from eth_utils import keccak, to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st
from trie import HexaryTrie

from llmchain.chain.store import LedgerStore
from llmchain.errors import LedgerError
from llmchain.layout import Storage
from llmchain.statedb import HEAD_KEY, MalformedRLP, StateDB, StateUnavailable, checksum_address, keccak256, rlp_decode

items = st.recursive(st.binary(max_size=80), lambda inner: st.lists(inner, max_size=6), max_leaves=20)


@given(items)
def test_rlp_decodes_what_pyrlp_encodes(item: object) -> None:
    assert rlp_decode(rlp.encode(item)) == item


@pytest.mark.parametrize("bad", [b"", b"\x83ab", b"\xc3\x01\x02", b"\x01\x02", b"\xb9\x01", b"\xc2\x83a"])
def test_malformed_rlp_is_refused(bad: bytes) -> None:
    with pytest.raises(MalformedRLP):
        rlp_decode(bad)


@given(st.binary(max_size=200))
def test_keccak_and_checksums_match_eth_utils(data: bytes) -> None:
    assert keccak256(data) == keccak(data)
    address = keccak(data)[:20]
    assert checksum_address(address) == to_checksum_address(address)


def _store_with_trie(path: Path, entries: dict[int, int]) -> bytes:
    """A ledger store holding a storage trie of ``entries`` (as py-evm writes one) and a head header
    whose state root is that trie's root; returns the root."""
    nodes: dict[bytes, bytes] = {}
    trie = HexaryTrie(nodes)
    for slot, value in entries.items():
        trie[keccak(slot.to_bytes(32, "big"))] = rlp.encode(value)
    header = rlp.encode([b"\0" * 32, b"\0" * 32, b"\0" * 20, trie.root_hash, b"", b"", b"", 0, 7, 0, 0, 0])
    store = LedgerStore(path, busy_timeout=1.0)
    with store.write():
        store.ensure_schema()
        for key, value in {**nodes, keccak(header): header, HEAD_KEY: keccak(header)}.items():
            store[key] = value
    store.close()
    return trie.root_hash


@settings(max_examples=25, deadline=None)
@given(st.dictionaries(st.integers(0, 2**256 - 1), st.integers(1, 2**256 - 1), max_size=120), st.integers(0, 2**256 - 1))
def test_the_trie_walk_finds_what_hexarytrie_stored(tmp_path_factory: pytest.TempPathFactory, entries: dict[int, int], absent: int) -> None:
    path = tmp_path_factory.mktemp("trie") / "chain.sqlite3"
    root = _store_with_trie(path, entries)
    with StateDB(path) as state:
        assert state.state_root == root and state.block_number == 7
        for slot, value in entries.items():
            assert int.from_bytes(state.storage(root, slot), "big") == value
        assert int.from_bytes(state.storage(root, absent), "big") == entries.get(absent, 0)


def test_a_store_without_a_head_is_unavailable(tmp_path: Path) -> None:
    store = LedgerStore(tmp_path / "chain.sqlite3", busy_timeout=1.0)
    with store.write():
        store.ensure_schema()
    store.close()
    with pytest.raises(StateUnavailable):
        StateDB(tmp_path / "chain.sqlite3")


def test_a_missing_trie_node_is_damage(tmp_path: Path) -> None:
    path = tmp_path / "chain.sqlite3"
    root = _store_with_trie(path, {n: n + 1 for n in range(50)})
    store = LedgerStore(path, busy_timeout=1.0)
    with store.write():
        del store[root]
    store.close()
    with StateDB(path) as state, pytest.raises(LedgerError, match="is damaged"):
        state.storage(root, 3)


# ---------------------------------------------------------------- storage layout rules

_LAYOUT = {
    "storage": [
        {"label": "small", "slot": "3", "offset": 0, "type": "t_array(t_uint64)dyn_storage"},
        {"label": "packed", "slot": "4", "offset": 0, "type": "t_struct(P)"},
        {"label": "byOwner", "slot": "6", "offset": 0, "type": "t_mapping(t_address,t_uint256)"},
        {"label": "blob", "slot": "7", "offset": 0, "type": "t_bytes_storage"},
    ],
    "types": {
        "t_array(t_uint64)dyn_storage": {"encoding": "dynamic_array", "base": "t_uint64", "label": "uint64[]", "numberOfBytes": "32"},
        "t_uint64": {"encoding": "inplace", "label": "uint64", "numberOfBytes": "8"},
        "t_uint256": {"encoding": "inplace", "label": "uint256", "numberOfBytes": "32"},
        "t_bool": {"encoding": "inplace", "label": "bool", "numberOfBytes": "1"},
        "t_address": {"encoding": "inplace", "label": "address", "numberOfBytes": "20"},
        "t_bytes_storage": {"encoding": "bytes", "label": "bytes", "numberOfBytes": "32"},
        "t_mapping(t_address,t_uint256)": {"encoding": "mapping", "key": "t_address", "value": "t_uint256", "label": "mapping(address => uint256)", "numberOfBytes": "32"},
        "t_struct(P)": {
            "encoding": "inplace", "label": "struct P", "numberOfBytes": "64",
            "members": [
                {"label": "flag", "slot": "0", "offset": 0, "type": "t_bool"},
                {"label": "who", "slot": "0", "offset": 1, "type": "t_address"},
                {"label": "count", "slot": "1", "offset": 0, "type": "t_uint256"},
            ],
        },
    },
}  # fmt: skip


def _slot(n: int) -> int:
    return int.from_bytes(keccak(n.to_bytes(32, "big")), "big")


def test_layout_rules_for_packed_arrays_structs_mappings_and_bytes() -> None:
    who = bytes(range(1, 21))
    blob = bytes(range(70))
    words = {
        3: (5).to_bytes(32, "big"),  # small.length
        _slot(3): (3 << 64 | 2).to_bytes(32, "big"),  # small[0] = 2, small[1] = 3 share the first slot
        _slot(3) + 1: (9).to_bytes(32, "big"),  # small[4] = 9: four uint64 per slot
        4: (int.from_bytes(who, "big") << 8 | 1).to_bytes(32, "big"),
        5: (77).to_bytes(32, "big"),
        int.from_bytes(keccak(who.rjust(32, b"\0") + (6).to_bytes(32, "big")), "big"): (123).to_bytes(32, "big"),
        7: (2 * len(blob) + 1).to_bytes(32, "big"),
        _slot(7): blob[:32], _slot(7) + 1: blob[32:64], _slot(7) + 2: blob[64:].ljust(32, b"\0"),
    }  # fmt: skip
    storage = Storage(_LAYOUT, lambda slot: words.get(slot, bytes(32)))
    assert storage.length("small") == 5
    assert [storage.read("small", i) for i in range(5)] == [2, 3, 0, 0, 9]
    assert storage.read("packed") == {"flag": 1, "who": who, "count": 77}
    assert storage.read("byOwner", who) == 123 and storage.read("byOwner", b"\x01" * 20) == 0
    assert storage.read("blob") == blob
    with pytest.raises(KeyError):
        storage.read("byOwner", 5)  # an int is not an address key
    with pytest.raises(KeyError):
        storage.read("packed", "missing")
    with pytest.raises(TypeError):
        storage.length("packed")
