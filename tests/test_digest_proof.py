"""Tensor proofs: made from a digest, checked in Python and by the registry contract on-chain."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llmchain.chain import Connection
from llmchain.digest import ModelDigest, ProofDocument, digest_state_dict, prove, verify_proof
from llmchain.errors import BadInput


def model(n: int) -> ModelDigest:
    return digest_state_dict({f"layer.{i}.w": np.full((2, 3), i, dtype=np.float32) for i in range(n)})


def on_chain(conn: Connection, root: bytes, leaf: bytes, index: int, size: int, path: list[bytes]) -> bool:
    return bool(conn.registry.functions.verifyTensorProof(root, leaf, index, size, path).call())


def test_every_tensor_proves_and_a_foreign_leaf_does_not() -> None:
    digest = model(11)
    outsider = digest_state_dict({"layer.0.w": np.zeros((2, 3), dtype=np.float64)}).tensors[0].leaf_hash
    for leaf in digest.tensors:
        proof = prove(digest, leaf.name)
        assert proof.size == 11 and digest.tensors[proof.index] == leaf
        assert verify_proof(digest.root, leaf.leaf_hash, proof)
        assert not verify_proof(digest.root, outsider, proof)


def test_proving_an_unknown_tensor_is_bad_input() -> None:
    with pytest.raises(BadInput, match="no tensor named 'nope'"):
        prove(model(3), "nope")


def test_proofs_verify_on_chain_and_tampered_ones_fail(conn: Connection) -> None:
    for n in (1, 2, 5, 8, 13):
        digest = model(n)
        for leaf in digest.tensors:
            proof = prove(digest, leaf.name)
            path = list(proof.siblings)
            assert on_chain(conn, digest.root, leaf.leaf_hash, proof.index, proof.size, path)
            flipped = bytes([leaf.leaf_hash[0] ^ 1]) + leaf.leaf_hash[1:]
            assert not on_chain(conn, digest.root, flipped, proof.index, proof.size, path)
            if path:
                tampered = [path[0][::-1], *path[1:]]
                assert not on_chain(conn, digest.root, leaf.leaf_hash, proof.index, proof.size, tampered)
                assert not on_chain(conn, digest.root, leaf.leaf_hash, proof.index ^ 1, proof.size, path)


def test_contract_and_python_agree_on_malformed_proofs(conn: Connection) -> None:
    digest = model(6)
    leaf = digest.tensors[4]
    proof = prove(digest, leaf.name)
    cases = [
        (proof.index, proof.size, list(proof.siblings)),
        (proof.index, proof.size, list(proof.siblings)[:-1]),
        (proof.index, proof.size, [*proof.siblings, proof.siblings[0]]),
        (6, 6, list(proof.siblings)),
        (0, 0, []),
        (proof.index, 3, list(proof.siblings)),
    ]
    for index, size, path in cases:
        from llmchain.digest import merkle

        expected = merkle.verify_inclusion(digest.root, leaf.leaf_hash, index, size, path)
        assert on_chain(conn, digest.root, leaf.leaf_hash, index, size, path) == expected
    assert on_chain(conn, digest.root, leaf.leaf_hash, *cases[0])


def test_proof_document_round_trips_and_checks_a_trusted_root(tmp_path: Path) -> None:
    digest = model(5)
    document = ProofDocument.make(digest, "layer.3.w")
    path = tmp_path / "proof.json"
    document.write(path)
    again = ProofDocument.read(path)
    assert again == document
    assert again.verify() and again.verify(digest.root)
    assert not again.verify(model(4).root)


def test_a_proof_document_with_an_edited_leaf_is_refused(tmp_path: Path) -> None:
    document = ProofDocument.make(model(3), "layer.1.w").to_json()
    document["tensor"]["shape"] = [3, 2]
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(document))
    with pytest.raises(BadInput, match="leaf_hash does not match"):
        ProofDocument.read(path)
    path.write_text("{not json")
    with pytest.raises(BadInput, match="not valid JSON"):
        ProofDocument.read(path)
