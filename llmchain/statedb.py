"""Read the embedded ledger's committed EVM state and logs straight from its SQLite file.

Why this exists next to the chain layer: reading the registry through web3 and py-evm means
importing them, about a second before the first byte is read, which is more than a whole
``llmchain verify`` of 1 GiB may spend beyond hashing. Everything a read needs is already in the
database py-evm wrote (``llmchain.chain.store``): the canonical head, the block header with its
state root, the Merkle-Patricia trie nodes keyed by their hash, and our log index. This module
walks them with the standard library and pycryptodome's Keccak (py-evm's own hash backend).

It only reads, never executes: callers ask for storage slots and logs (``llmchain.layout`` turns a
variable name into slots). Each trie node fetched is checked against the hash it is stored under,
so a damaged database is reported, never silently read. Every read of one :class:`StateDB` happens
in a single SQLite read transaction, so all of them see the same committed block even while another
process is writing.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from Crypto.Hash import keccak as _keccak

from llmchain.errors import LedgerError

CHAIN_ID = 131277322940537
"""The embedded chain's id: eth-tester's, kept so tools that know eth-tester recognise it."""
LEDGER_HOME_ENV = "LLMCHAIN_HOME"
DEFAULT_LEDGER_DIR = Path(".llmchain")
DATABASE_NAME = "chain.sqlite3"
LEDGER_FORMAT = "llmchain-ledger"
LEDGER_FORMAT_VERSION = 2
"""2 added the log index (the store's ``logs`` table); a version-1 ledger is upgraded on open."""

HEAD_KEY = b"v1:canonical_head_hash"  # py-evm's SchemaV1 canonical-head key
EMPTY_TRIE_ROOT = bytes.fromhex("56e81f171bcc55a6ff8345e692c0f86e5b48e01b996cadc001622fb5e363b421")
_HEADER_STATE_ROOT, _HEADER_NUMBER = 3, 8  # positions in an RLP block header
_ACCOUNT_STORAGE_ROOT, _ACCOUNT_CODE_HASH = 2, 3  # [nonce, balance, storage root, code hash]
_BRANCH = 17

Node = bytes | list["Node"]
"""A decoded RLP item: a byte string or a list of items."""


class MalformedRLP(ValueError):
    """Bytes that are not one well-formed RLP item (in the database: damage)."""


class StateUnavailable(Exception):
    """This database cannot be read directly (missing, not yet initialised, another format).

    Not an ``LLMChainError``: the caller falls back to the full chain client, which creates,
    upgrades or reports on the ledger with the proper message.
    """


def resolve_ledger_dir(ledger_dir: Path | str | None = None) -> Path:
    """``ledger_dir``, else ``$LLMCHAIN_HOME``, else ``./.llmchain``."""
    if ledger_dir is not None:
        return Path(ledger_dir)
    return Path(os.environ.get(LEDGER_HOME_ENV) or DEFAULT_LEDGER_DIR)


def damaged(location: str, what: str) -> LedgerError:
    """The error for a ledger database whose data is not what was written (both readers raise it)."""
    return LedgerError(f"ledger database {location} is damaged ({what}): restore it from a backup or choose another --ledger directory")


def address_bytes(address: str) -> bytes:
    """The 20 bytes of a 0x-prefixed hex address (the inverse of :func:`checksum_address`)."""
    return bytes.fromhex(address.removeprefix("0x"))


def keccak256(data: bytes) -> bytes:
    """Ethereum's Keccak-256 (not NIST SHA3-256: the padding differs)."""
    return _keccak.new(digest_bits=256, data=data).digest()


def checksum_address(raw: bytes) -> str:
    """A 20-byte address in EIP-55 mixed-case hex, as web3 returns addresses."""
    hex_address = raw.hex()
    hashed = keccak256(hex_address.encode("ascii")).hex()
    return "0x" + "".join(c.upper() if int(h, 16) >= 8 else c for c, h in zip(hex_address, hashed))


class StateDB:
    """A read-only view of one embedded ledger database at its latest committed block."""

    def __init__(self, path: Path) -> None:
        """Open at the latest committed block; StateUnavailable for anything that is not a readable
        ledger database (the full chain client then explains, creates or upgrades)."""
        if not path.is_file():
            raise StateUnavailable(f"{path} does not exist")
        self.location = str(path)
        try:  # mode=rw: never create a database; readers of a WAL database still need its -shm file
            self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=5.0, isolation_level=None)
        except sqlite3.Error as error:
            raise StateUnavailable(f"{path}: {error}") from None
        try:
            self._db.execute("BEGIN")  # one snapshot for every read that follows
            self.state_root, self.block_number = self._head()
        except (sqlite3.Error, LedgerError) as error:
            self.close()
            raise StateUnavailable(f"{path}: {error}") from None

    def _head(self) -> tuple[bytes, int]:
        """(state root, number) of the canonical head block."""
        head_hash = self._get(HEAD_KEY)
        if head_hash is None:
            raise self._damage("it holds no chain yet")
        header = self._node(head_hash)
        if not isinstance(header, list) or len(header) <= _HEADER_NUMBER:
            raise self._damage("its head block header is malformed")
        return self._bytes(header[_HEADER_STATE_ROOT]), int.from_bytes(self._bytes(header[_HEADER_NUMBER]), "big")

    def meta(self) -> dict[str, str]:
        """The ledger's metadata table (format, version, registry address...); empty if absent."""
        try:
            return dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.Error:
            return {}

    def account(self, address: bytes) -> tuple[bytes, bytes] | None:
        """(storage root, code hash) of a 20-byte address, or None for an account that does not exist."""
        encoded = self._trie_get(self.state_root, keccak256(address))
        if encoded is None:
            return None
        fields = self._decode(encoded)
        if not isinstance(fields, list) or len(fields) != 4:
            raise self._damage(f"the account {address.hex()} is malformed")
        return self._bytes(fields[_ACCOUNT_STORAGE_ROOT]), self._bytes(fields[_ACCOUNT_CODE_HASH])

    def storage(self, storage_root: bytes, slot: int) -> bytes:
        """The 32-byte word at ``slot`` of the account whose storage trie has this root."""
        encoded = self._trie_get(storage_root, keccak256(slot.to_bytes(32, "big")))
        if encoded is None:
            return bytes(32)
        return self._bytes(self._decode(encoded)).rjust(32, b"\0")

    def logs(self, address: bytes, from_block: int, to_block: int, topics: Sequence[bytes | None]) -> list[tuple[int, list[bytes], bytes]]:
        """(block number, topics, data) of the indexed logs of ``address`` in a block range,
        in chain order; ``topics`` gives topic0..topic3 to match (None: any)."""
        where = ["block_number BETWEEN ? AND ?", "address = ?"]
        params: list[object] = [from_block, to_block, address]
        for position, topic in enumerate(topics):
            if topic is not None:
                where.append(f"topic{position} = ?")
                params.append(topic)
        sql = f"SELECT block_number, topic0, topic1, topic2, topic3, data FROM logs WHERE {' AND '.join(where)} ORDER BY block_number, tx_index, log_index"
        try:
            rows = self._db.execute(sql, params).fetchall()
        except sqlite3.Error as error:
            raise LedgerError(f"cannot read the log index of {self.location}: {error}") from None
        return [(row[0], [t for t in row[1:5] if t is not None], row[5]) for row in rows]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> StateDB:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()

    # -- the trie ---------------------------------------------------------------------------

    def _trie_get(self, root: bytes, key: bytes) -> bytes | None:
        """The value stored under ``key`` in the hexary trie with this root (Yellow Paper, appendix D)."""
        if root == EMPTY_TRIE_ROOT:
            return None
        path = _nibbles(key)
        node: Node = root
        while True:
            if node == b"":
                return None
            if isinstance(node, bytes):  # a child is referenced by hash unless inlined (a list, under 32 bytes)
                if len(node) != 32:
                    raise self._damage("a trie reference is neither a hash nor an inline node")
                node = self._node(node)
            if not isinstance(node, list) or len(node) not in (2, _BRANCH):
                raise self._damage("a trie node is neither a branch nor a leaf or extension")
            if len(node) == _BRANCH:
                if not path:
                    return self._bytes(node[16]) or None
                node, path = node[path[0]], path[1:]
                continue
            try:
                segment, is_leaf = _hex_prefix(self._bytes(node[0]))
            except MalformedRLP as error:
                raise self._damage(str(error)) from None
            if is_leaf:
                return self._bytes(node[1]) if segment == path else None
            if path[: len(segment)] != segment:
                return None
            node, path = node[1], path[len(segment) :]

    def _node(self, node_hash: bytes) -> Node:
        """The decoded trie node or header stored under its hash, checked against that hash."""
        raw = self._get(node_hash)
        if raw is None or keccak256(raw) != node_hash:
            raise self._damage(f"node {node_hash.hex()[:16]}… is {'missing' if raw is None else 'altered'}")
        return self._decode(raw)

    def _decode(self, raw: bytes) -> Node:
        try:
            return rlp_decode(raw)
        except MalformedRLP as error:
            raise self._damage(str(error)) from None

    def _bytes(self, item: Node) -> bytes:
        if not isinstance(item, bytes):
            raise self._damage("a list where the trie holds a byte string")
        return item

    def _get(self, key: bytes) -> bytes | None:
        try:
            row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as error:
            raise LedgerError(f"cannot read {self.location}: {error}") from None
        return None if row is None else bytes(row[0])

    def _damage(self, what: str) -> LedgerError:
        return damaged(self.location, what)


def _nibbles(key: bytes) -> bytes:
    return bytes(n for byte in key for n in (byte >> 4, byte & 15))


def _hex_prefix(encoded: bytes) -> tuple[bytes, bool]:
    """A trie path segment and its leaf flag from hex-prefix encoding."""
    if not encoded:
        raise MalformedRLP("a trie path segment is empty")
    flag = encoded[0] >> 4
    nibbles = _nibbles(encoded)
    return (nibbles[1:] if flag & 1 else nibbles[2:]), bool(flag & 2)


def rlp_decode(data: bytes) -> Node:
    """Decode one RLP item that spans all of ``data`` (Yellow Paper, appendix B)."""
    item, end = _item(data, 0)
    if end != len(data):
        raise MalformedRLP("trailing bytes after an RLP item")
    return item


def _item(data: bytes, start: int) -> tuple[Node, int]:
    """The RLP item at ``start`` and the offset just past it."""
    if start >= len(data):
        raise MalformedRLP("an RLP item runs past its data")
    prefix = data[start]
    if prefix < 0x80:
        return data[start : start + 1], start + 1
    if prefix < 0xC0:
        offset, length = _length(data, start, prefix - 0x80)
        return data[offset : offset + length], offset + length
    offset, length = _length(data, start, prefix - 0xC0)
    items: list[Node] = []
    position, end = offset, offset + length
    while position < end:
        item, position = _item(data, position)
        items.append(item)
    if position != end:
        raise MalformedRLP("an RLP list overruns its length")
    return items, end


def _length(data: bytes, start: int, short: int) -> tuple[int, int]:
    """(payload offset, payload length) for a string or list prefix: a length up to 55 is in the
    prefix itself, a longer one in the next (prefix - 55) bytes."""
    if short <= 55:
        end = start + 1 + short
    else:
        size = short - 55
        short = int.from_bytes(data[start + 1 : start + 1 + size], "big")
        start += size
        end = start + 1 + short
    if end > len(data):
        raise MalformedRLP("an RLP item runs past its data")
    return start + 1, short
