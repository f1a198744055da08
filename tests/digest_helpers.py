"""Helpers for the digest tests: write safetensors files byte by byte, including broken ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def raw_safetensors(header: Any, data: bytes, *, length: int | None = None) -> bytes:
    """A safetensors file from a header object (or raw header bytes) and a data section."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    size = len(raw) if length is None else length
    return size.to_bytes(8, "little") + raw + data


def write_raw(path: Path, header: Any, data: bytes, *, length: int | None = None) -> Path:
    path.write_bytes(raw_safetensors(header, data, length=length))
    return path


def header_for(tensors: dict[str, tuple[str, list[int], bytes]]) -> tuple[dict[str, Any], bytes]:
    """A valid header and data section for name -> (dtype, shape, bytes), in the given order."""
    header: dict[str, Any] = {}
    data = b""
    for name, (dtype, shape, payload) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    return header, data


def write_vector_case(path: Path, tensors: list[dict[str, Any]], data_of: Any) -> Path:
    """Write a vector case's tensors (in the listed order) as a safetensors file."""
    header, data = header_for({t["name"]: (t["dtype"], t["shape"], data_of(t)) for t in tensors})
    header["__metadata__"] = {"written_by": "llmchain tests"}
    return write_raw(path, header, data)
