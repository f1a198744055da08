"""The canonical leaf: what one tensor contributes to a model digest (spec: docs/digest.md).

A leaf binds the tensor's name, dtype, shape, byte length and a hash of its bytes. The bytes are
hashed in fixed 16 MiB chunks (each chunk with SHA-256, then SHA-256 over the chunk digests) so one
large tensor can be hashed on every core; the chunk size changes the value, so it is part of the
algorithm name. Integers are 8-byte big-endian and strings carry their length, so no two different
tensors share a leaf input.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

ALGORITHM = "tensor-sha256-c16m-v1"
CHUNK_SIZE = 16 * 1024 * 1024  # bytes per chunk of tensor data; "c16m" in ALGORITHM


def _u64(value: int) -> bytes:
    return value.to_bytes(8, "big")


def data_hash(chunk_digests: Iterable[bytes]) -> bytes:
    """SHA-256 over the concatenated SHA-256 digests of the tensor's CHUNK_SIZE chunks."""
    return hashlib.sha256(b"".join(chunk_digests)).digest()


def leaf_input(name: str, dtype: str, shape: tuple[int, ...], nbytes: int, digest: bytes) -> bytes:
    """The byte string a leaf hashes: length-prefixed name and dtype, shape, byte length, data hash."""
    name_bytes = name.encode("utf-8")
    dtype_bytes = dtype.encode("ascii")
    return b"".join(
        [
            _u64(len(name_bytes)),
            name_bytes,
            _u64(len(dtype_bytes)),
            dtype_bytes,
            _u64(len(shape)),
            *(_u64(dim) for dim in shape),
            _u64(nbytes),
            digest,
        ]
    )


def hash_leaf(data: bytes) -> bytes:
    """RFC 6962 leaf hash: SHA-256(0x00 || leaf input); the prefix separates leaves from nodes."""
    return hashlib.sha256(b"\x00" + data).digest()


@dataclass(frozen=True)
class TensorLeaf:
    """One tensor's record in a digest: everything needed to recompute and compare its leaf."""

    name: str  # tensor name, any Unicode string without lone surrogates
    dtype: str  # safetensors dtype name, e.g. "BF16"
    shape: tuple[int, ...]  # dimensions, outermost first
    nbytes: int  # byte length of the C-contiguous little-endian data
    data_hash: bytes  # see data_hash(); 32 bytes
    leaf_hash: bytes = field(init=False, repr=False)  # hash_leaf(leaf_input(...)); 32 bytes

    def __post_init__(self) -> None:
        encoded = leaf_input(self.name, self.dtype, self.shape, self.nbytes, self.data_hash)
        object.__setattr__(self, "leaf_hash", hash_leaf(encoded))
