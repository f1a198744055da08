"""Solidity storage layout: read a contract's state variables from its raw storage words.

The compiler says where every state variable lives (solc's ``storageLayout`` output, kept in the
artifact), and Solidity fixes how mappings, dynamic arrays, packed structs and strings are laid out
from there (docs.soliditylang.org, "Layout of State Variables in Storage"). :class:`Storage` follows
those rules over any source of 32-byte words, so ``read("_where", digest, "runId")`` returns what the
contract's own code would load, without running it. Driving this from the compiler's layout rather
than hand-written slot numbers means a contract change cannot silently shift what we read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from llmchain.statedb import keccak256

Key = int | bytes | str
"""A path step: a mapping key (int for integer keys, 32 bytes for bytes32, 20 bytes for an
address), an array index, or a struct member name."""
Value = int | bytes | str | dict[str, Any]
"""What :meth:`Storage.read` returns: integers and enums as int, addresses as 20 bytes, bytes32 as
bytes, strings as str, structs as a dict of their members."""


@dataclass(frozen=True)
class Location:
    """Where a value lives: its first slot, its byte offset from the low-order end, its type id."""

    slot: int
    offset: int
    type: str


class Storage:
    """Typed reads of one contract's storage, given its layout and a ``word(slot) -> 32 bytes`` source."""

    def __init__(self, layout: dict[str, Any], word: Callable[[int], bytes]) -> None:
        self._variables = {entry["label"]: entry for entry in layout["storage"]}
        self._types: dict[str, dict[str, Any]] = layout["types"]
        self._source = word
        self._words: dict[int, bytes] = {}  # packed members share a slot: read it once

    def read(self, variable: str, *path: Key) -> Value:
        """The value at ``variable`` followed by mapping keys, array indices and member names."""
        return self._value(self.locate(variable, *path))

    def length(self, variable: str, *path: Key) -> int:
        """The length of the dynamic array at that path."""
        where = self.locate(variable, *path)
        if self._types[where.type]["encoding"] != "dynamic_array":
            raise TypeError(f"{variable} {path} is not a dynamic array")
        return int.from_bytes(self._word(where.slot), "big")

    def locate(self, variable: str, *path: Key) -> Location:
        entry = self._variables[variable]
        where = Location(int(entry["slot"]), int(entry["offset"]), entry["type"])
        for step in path:
            where = self._step(where, step)
        return where

    def _step(self, where: Location, step: Key) -> Location:
        kind = self._types[where.type]
        encoding = kind["encoding"]
        if encoding == "mapping":
            key = _key_word(kind["key"], step)
            return Location(int.from_bytes(keccak256(key + where.slot.to_bytes(32, "big")), "big"), 0, kind["value"])
        if encoding == "dynamic_array" and isinstance(step, int):
            size = int(self._types[kind["base"]]["numberOfBytes"])
            first = int.from_bytes(keccak256(where.slot.to_bytes(32, "big")), "big")
            if size >= 32:
                return Location(first + step * (size // 32), 0, kind["base"])
            per_slot = 32 // size
            return Location(first + step // per_slot, (step % per_slot) * size, kind["base"])
        if "members" in kind and isinstance(step, str):
            for member in kind["members"]:
                if member["label"] == step:
                    return Location(where.slot + int(member["slot"]), int(member["offset"]), member["type"])
        raise KeyError(f"cannot step into {kind['label']} with {step!r}")

    def _value(self, where: Location) -> Value:
        kind = self._types[where.type]
        if "members" in kind:
            return {member["label"]: self._value(self._step(where, member["label"])) for member in kind["members"]}
        if kind["encoding"] == "bytes":
            return self._bytes(where.slot).decode("utf-8", errors="replace") if kind["label"] == "string" else self._bytes(where.slot)
        if kind["encoding"] != "inplace":
            raise TypeError(f"{kind['label']} has no single value; step into it")
        size = int(kind["numberOfBytes"])
        word = self._word(where.slot)
        raw = word[32 - where.offset - size : 32 - where.offset]
        label: str = kind["label"]
        if label == "address" or label.startswith("bytes"):
            return raw
        return int.from_bytes(raw, "big")  # uintN, enum, bool

    def _bytes(self, slot: int) -> bytes:
        """A ``string`` or ``bytes`` value: inline when under 32 bytes, else in the slots at keccak(slot)."""
        word = self._word(slot)
        if not word[31] & 1:
            return word[: word[31] // 2]
        length = (int.from_bytes(word, "big") - 1) // 2
        first = int.from_bytes(keccak256(slot.to_bytes(32, "big")), "big")
        data = b"".join(self._word(first + i) for i in range((length + 31) // 32))
        return data[:length]

    def _word(self, slot: int) -> bytes:
        if slot not in self._words:
            self._words[slot] = self._source(slot)
        return self._words[slot]


def _key_word(key_type: str, key: Key) -> bytes:
    """A mapping key as the 32 bytes Solidity hashes with the slot (value types only)."""
    if key_type == "t_address" and isinstance(key, bytes) and len(key) == 20:
        return key.rjust(32, b"\0")
    if key_type == "t_bytes32" and isinstance(key, bytes) and len(key) == 32:
        return key
    if key_type.startswith("t_uint") and isinstance(key, int) and not isinstance(key, bool) and 0 <= key < 2**256:
        return key.to_bytes(32, "big")
    raise KeyError(f"{key!r} is not a valid {key_type} mapping key")
