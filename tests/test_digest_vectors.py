"""Known-answer vectors (tests/vectors/digest_vectors.json), checked two ways.

``reference_*`` below is a second implementation written straight from docs/digest.md with
struct and the RFC's recursive definitions, sharing no code with llmchain.digest; both it and the
library must reproduce every vector, so the JSON file is what another implementation should match.
"""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmchain.digest import ALGORITHM, CHUNK_SIZE, ModelDigest, digest_path, digest_state_dict, prove, verify_proof
from digest_helpers import write_vector_case

VECTORS = Path(__file__).parent / "vectors" / "digest_vectors.json"


def _sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def case_data(tensor: dict[str, Any]) -> bytes:
    """A vector tensor's bytes: inline hex, or the pattern generator (byte i is i mod 251)."""
    if "data_hex" in tensor:
        return bytes.fromhex(tensor["data_hex"])
    length = tensor["pattern251_length"]
    return (bytes(range(251)) * (length // 251 + 1))[:length]


def reference_leaf_input(name: str, dtype: str, shape: list[int], data: bytes) -> bytes:
    chunks = [data[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)]
    data_hash = _sha(b"".join(_sha(c) for c in chunks))
    n, d = name.encode("utf-8"), dtype.encode("ascii")
    return (
        struct.pack(">Q", len(n)) + n + struct.pack(">Q", len(d)) + d
        + struct.pack(f">Q{len(shape)}Q", len(shape), *shape)
        + struct.pack(">Q", len(data)) + data_hash
    )


def reference_mth(hashes: list[bytes]) -> bytes:
    if not hashes:
        return _sha(b"")
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return _sha(b"\x01" + reference_mth(hashes[:k]) + reference_mth(hashes[k:]))


def reference_root(tensors: list[dict[str, Any]]) -> bytes:
    ordered = sorted(tensors, key=lambda t: t["name"].encode("utf-8"))
    inputs = [reference_leaf_input(t["name"], t["dtype"], t["shape"], case_data(t)) for t in ordered]
    return reference_mth([_sha(b"\x00" + i) for i in inputs])


def load_cases() -> list[dict[str, Any]]:
    document = json.loads(VECTORS.read_text())
    assert document["algorithm"] == ALGORITHM
    assert document["chunk_size"] == CHUNK_SIZE
    return document["cases"]


CASES = load_cases()


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_reference_implementation_matches_vectors(case: dict[str, Any]) -> None:
    ordered = sorted(case["tensors"], key=lambda t: t["name"].encode("utf-8"))
    for tensor, leaf in zip(ordered, case["leaves"], strict=True):
        encoded = reference_leaf_input(tensor["name"], tensor["dtype"], tensor["shape"], case_data(tensor))
        assert encoded.hex() == leaf["leaf_input"]
        assert _sha(b"\x00" + encoded).hex() == leaf["leaf_hash"]
    assert reference_root(case["tensors"]).hex() == case["root"]


def _digest_of_case(case: dict[str, Any], tmp_path: Path) -> ModelDigest:
    return digest_path(write_vector_case(tmp_path / "case.safetensors", case["tensors"], case_data))


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_library_matches_vectors(case: dict[str, Any], tmp_path: Path) -> None:
    result = _digest_of_case(case, tmp_path)
    assert result.algorithm == ALGORITHM
    assert result.hex == case["root"]
    assert [leaf.name for leaf in result.tensors] == [leaf["name"] for leaf in case["leaves"]]
    assert [leaf.leaf_hash.hex() for leaf in result.tensors] == [leaf["leaf_hash"] for leaf in case["leaves"]]
    for expected in case["proofs"]:
        proof = prove(result, expected["name"])
        assert (proof.index, proof.size) == (expected["index"], expected["size"])
        assert [s.hex() for s in proof.siblings] == expected["siblings"]
        assert verify_proof(result.root, result.tensors[proof.index].leaf_hash, proof)


def test_nan_payloads_are_bitwise() -> None:
    by_id = {c["id"]: c["root"] for c in CASES}
    assert by_id["nan-quiet"] != by_id["nan-payload"]
    quiet = np.array([np.nan], dtype=np.float32)
    payload = np.array([0x7FC00001], dtype=np.uint32).view(np.float32)
    assert digest_state_dict({"x": quiet}).hex == by_id["nan-quiet"]
    assert digest_state_dict({"x": payload}).hex == by_id["nan-payload"]
