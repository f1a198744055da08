"""The safetensors header parser: every malformed file is one BadInput line; a fuzz corner."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest_helpers import header_for, write_raw
from llmchain.digest.safetensors_reader import MAX_HEADER_BYTES, SafetensorsFile, parse_header
from llmchain.errors import BadInput

F32_2 = struct.pack("<2f", 1.0, 2.0)


def open_bad(path: Path, match: str) -> None:
    with pytest.raises(BadInput, match=match) as caught:
        SafetensorsFile(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_reads_a_valid_file_with_padding_and_metadata(tmp_path: Path) -> None:
    header, data = header_for({"w": ("F32", [2], F32_2), "e": ("F16", [0], b"")})
    header["__metadata__"] = {"format": "pt"}
    raw = json.dumps(header).encode() + b"   "
    file = SafetensorsFile(write_raw(tmp_path / "m.safetensors", raw, data))
    try:
        assert {e.name: (e.dtype, e.shape) for e in file.entries} == {"w": ("F32", (2,)), "e": ("F16", (0,))}
        w = next(e for e in file.entries if e.name == "w")
        assert bytes(file.buffer[file.offset(w) : file.offset(w) + 8]) == F32_2
    finally:
        file.close()


def test_file_of_only_zero_size_tensors_has_nothing_to_map(tmp_path: Path) -> None:
    header, data = header_for({"a": ("F32", [0, 4], b""), "b": ("I8", [3, 0], b"")})
    file = SafetensorsFile(write_raw(tmp_path / "z.safetensors", header, data))
    assert len(file.entries) == 2 and file.buffer == b""
    file.close()


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "truncated: 0 bytes"),
        (b"\x05\x00\x00", "truncated: 3 bytes"),
        ((10**12).to_bytes(8, "little") + b"{}", "exceeds the 100000000-byte limit"),
        ((500).to_bytes(8, "little") + b"{}", "truncated: header length is 500 bytes but only 2 follow"),
        ((2).to_bytes(8, "little") + b"\xff\xfe", "header is not valid UTF-8"),
        ((5).to_bytes(8, "little") + b"{nope", "header is not valid JSON"),
        ((2).to_bytes(8, "little") + b"[]", "header is JSON but not an object"),
    ],
)
def test_broken_framing(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    open_bad(path, match)


def _entry(dtype: Any = "F32", shape: Any = (2,), offsets: Any = (0, 8)) -> dict[str, Any]:
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


@pytest.mark.parametrize(
    ("header", "data", "match"),
    [
        ({"w": _entry(dtype="F33")}, F32_2, "unknown or unsupported dtype 'F33'"),
        ({"w": _entry(dtype="F4")}, F32_2, "unsupported dtype 'F4'"),
        ({"w": _entry(offsets=(8, 0))}, F32_2, r"data_offsets \[8, 0\] are out of order"),
        ({"w": _entry(shape=(4,), offsets=(0, 16))}, F32_2, "truncated: tensor 'w' ends at data byte 16"),
        ({"w": _entry(shape=(3,))}, F32_2, "shape \\[3\\] of F32 needs 12 bytes but data_offsets span 8"),
        ({"w": _entry(shape=(-2,))}, F32_2, "non-negative integers"),
        ({"w": _entry(shape=(True, 2))}, F32_2, "non-negative integers"),
        ({"w": _entry(offsets=(0, 8.0))}, F32_2, "must be \\[begin, end\\] integers"),
        ({"w": {"dtype": "F32", "shape": [2]}}, F32_2, "needs an object with dtype, shape and data_offsets"),
        ({"w": _entry(), "v": _entry(shape=(1,), offsets=(4, 8))}, F32_2, "overlap"),
        ({"w": _entry(shape=(1,), offsets=(4, 8))}, F32_2, "data bytes 0..4 belong to no tensor"),
        ({"w": _entry()}, F32_2 + b"xx", "2 trailing bytes after the last tensor"),
        ({"w": _entry(), "__metadata__": []}, F32_2, "__metadata__ must be a JSON object"),
        ({"\ud800": _entry()}, F32_2, "tensor name is not valid Unicode"),
    ],
)
def test_broken_headers(tmp_path: Path, header: dict[str, Any], data: bytes, match: str) -> None:
    open_bad(write_raw(tmp_path / "bad.safetensors", header, data), match)


def test_duplicate_names_in_one_header(tmp_path: Path) -> None:
    raw = b'{"w": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}, "w": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}}'
    open_bad(write_raw(tmp_path / "dup.safetensors", raw, b""), "duplicate key 'w'")


def test_deeply_nested_json_is_refused_not_a_crash(tmp_path: Path) -> None:
    # py_ecc (imported with web3) raises the recursion limit to 100000, where json's C decoder
    # would overflow the C stack on this header; the nesting check must refuse it first.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 100_000))
    try:
        open_bad(write_raw(tmp_path / "deep.safetensors", b"[" * 100_000, b""), "deeper than 32 levels")
        escaped = b'{"k\\\\": "[[[[\\"", "__metadata__": {}}'
        open_bad(write_raw(tmp_path / "ok.safetensors", escaped, b""), "tensor 'k\\\\\\\\' needs an object")
    finally:
        sys.setrecursionlimit(limit)


def test_header_limit_matches_safetensors() -> None:
    assert MAX_HEADER_BYTES == 100_000_000


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
)
entry_like = st.fixed_dictionaries(
    {},
    optional={
        "dtype": st.sampled_from(["F32", "U8", "BF16", "F8_E4M3", "X"]) | json_values,
        "shape": st.lists(st.integers(-2, 6), max_size=3) | json_values,
        "data_offsets": st.lists(st.integers(-2, 40), min_size=0, max_size=3) | json_values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.text(max_size=5), entry_like | json_values, max_size=5), st.integers(0, 40))
def test_fuzz_structured_headers_parse_or_raise_bad_input(header: dict[str, Any], data_len: int) -> None:
    raw = json.dumps(header).encode()
    try:
        entries = parse_header(raw, data_len, Path("fuzz.safetensors"))
    except BadInput as err:
        assert "fuzz.safetensors" in str(err)
        return
    covered = sum(e.end - e.begin for e in entries)
    assert covered == data_len


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_arbitrary_bytes_never_crash(tmp_path_factory: pytest.TempPathFactory, content: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "f.safetensors"
    path.write_bytes(content)
    try:
        SafetensorsFile(path).close()
    except BadInput:
        pass
