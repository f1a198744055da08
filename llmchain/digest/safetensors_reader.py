"""Read a safetensors file's tensors without torch: parse the header, memory-map the data.

Format: 8-byte little-endian header length N, N bytes of UTF-8 JSON mapping each tensor name to
``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the data section) plus an
optional ``"__metadata__"`` object that the digest ignores, then the data section. Every check
below turns a malformed file into one ``BadInput`` line naming the file and the problem before any
large allocation: the header is bounded (safetensors' own 100 MB limit), its nesting depth is checked
before ``json`` sees it (the C decoder recurses, and a process that imported py_ecc, as web3 does,
runs with a recursion limit of 100000: a header of "[[[[..." would overflow the C stack instead of
raising), and tensors must tile the data section exactly, as the safetensors library itself requires.
"""

from __future__ import annotations

import json
import mmap
import os
import re
from pathlib import Path
from typing import Any, NamedTuple

from llmchain.digest.dtypes import expected_nbytes
from llmchain.errors import BadInput

MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit for the JSON header
MAX_NESTING = 32  # a valid header nests 3 deep (header -> tensor -> shape); allow loose metadata
_STRUCTURE = re.compile(rb'[\[\]{}"\\]')  # the bytes that open/close containers and strings


class Entry(NamedTuple):
    """One tensor as the header describes it; offsets are relative to the data section."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_nesting(raw: bytes, path: Path) -> None:
    """Refuse containers nested deeper than MAX_NESTING, in one linear pass over structural bytes."""
    depth, in_string, skip_to = 0, False, -1
    for match in _STRUCTURE.finditer(raw):
        position = match.start()
        if position < skip_to:  # the character after a backslash inside a string
            continue
        char = raw[position : position + 1]
        if in_string:
            if char == b"\\":
                skip_to = position + 2
            elif char == b'"':
                in_string = False
        elif char == b'"':
            in_string = True
        elif char in b"[{":
            depth += 1
            if depth > MAX_NESTING:
                raise BadInput(f"{path}: header nests JSON deeper than {MAX_NESTING} levels; the file is corrupt")
        else:
            depth -= 1


def _decode_header(raw: bytes, path: Path) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadInput(f"{path}: header is not valid UTF-8 (byte {err.start}); not a safetensors file?") from None
    _check_nesting(raw, path)
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as err:
        raise BadInput(f"{path}: header is not valid JSON ({err}); the file is corrupt") from None
    if not isinstance(header, dict):
        raise BadInput(f"{path}: header is JSON but not an object; the file is corrupt")
    return header


def _entry(name: str, spec: Any, path: Path) -> Entry:
    where = f"{path}: tensor {name!r}"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInput(f"{path}: a tensor name is not valid Unicode ({name!r})") from None
    if not isinstance(spec, dict) or not {"dtype", "shape", "data_offsets"} <= spec.keys():
        raise BadInput(f"{where} needs an object with dtype, shape and data_offsets")
    dtype, shape, offsets = spec["dtype"], spec["shape"], spec["data_offsets"]
    if not isinstance(dtype, str):
        raise BadInput(f"{where}: dtype must be a string, got {dtype!r}")
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        raise BadInput(f"{where}: shape must be a list of non-negative integers, got {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)):
        raise BadInput(f"{where}: data_offsets must be [begin, end] integers, got {offsets!r}")
    begin, end = offsets
    if not 0 <= begin <= end:
        raise BadInput(f"{where}: data_offsets [{begin}, {end}] are out of order")
    nbytes = expected_nbytes(tuple(shape), dtype, where)
    if nbytes != end - begin:
        raise BadInput(
            f"{where}: shape {shape} of {dtype} needs {nbytes} bytes but data_offsets span {end - begin}"
        )
    return Entry(name, dtype, tuple(shape), begin, end)


def _check_tiling(entries: list[Entry], data_len: int, path: Path) -> None:
    """Tensors must cover the data section exactly: no overlap, no gap, nothing past the end."""
    position, previous = 0, None
    for entry in sorted(entries, key=lambda e: (e.begin, e.end)):
        if entry.end > data_len:
            raise BadInput(
                f"{path}: truncated: tensor {entry.name!r} ends at data byte {entry.end} "
                f"but the data section holds {data_len} bytes"
            )
        if entry.begin < position:
            raise BadInput(f"{path}: data_offsets of tensors {previous!r} and {entry.name!r} overlap")
        if entry.begin > position:
            raise BadInput(f"{path}: data bytes {position}..{entry.begin} belong to no tensor")
        position, previous = entry.end, entry.name
    if position != data_len:
        raise BadInput(f"{path}: {data_len - position} trailing bytes after the last tensor")


def parse_header(raw: bytes, data_len: int, path: Path) -> list[Entry]:
    """Validate a header's JSON against a data section of ``data_len`` bytes."""
    header = _decode_header(raw, path)
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict):
        raise BadInput(f"{path}: __metadata__ must be a JSON object")
    entries = [_entry(name, spec, path) for name, spec in header.items()]
    _check_tiling(entries, data_len, path)
    return entries


class SafetensorsFile:
    """An open safetensors file: validated entries and a read-only map of the whole file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                self.data_start, raw = self._read_header(handle, size)
                self.entries = parse_header(raw, size - self.data_start, path)
                # mmap refuses empty files; a file of zero-size tensors has nothing to map.
                self.buffer: Any = (
                    mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
                    if size > self.data_start
                    else b""
                )
        except OSError as err:
            raise BadInput(f"{path}: cannot read: {err.strerror or err}") from None

    def _read_header(self, handle: Any, size: int) -> tuple[int, bytes]:
        if size < 8:
            raise BadInput(f"{self.path}: truncated: {size} bytes, too short for a safetensors header")
        length = int.from_bytes(handle.read(8), "little")
        if length > MAX_HEADER_BYTES:
            raise BadInput(
                f"{self.path}: header length {length} exceeds the {MAX_HEADER_BYTES}-byte limit; "
                "not a safetensors file?"
            )
        if 8 + length > size:
            raise BadInput(
                f"{self.path}: truncated: header length is {length} bytes but only {size - 8} follow"
            )
        return 8 + length, handle.read(length)

    def offset(self, entry: Entry) -> int:
        """Where ``entry``'s bytes start in ``buffer``."""
        return self.data_start + entry.begin

    def close(self) -> None:
        if isinstance(self.buffer, mmap.mmap):
            self.buffer.close()
