"""Per-tensor Merkle inclusion proofs: check one tensor against a root without the other tensors.

``TensorProof`` is what the contract's ``verifyTensorProof(root, leafHash, index, size, proof)``
takes. ``ProofDocument`` is its portable JSON form: the root and algorithm, the tensor's leaf record
(so the tensor can be re-hashed from any copy of the model and compared) and the proof itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

from llmchain.digest import merkle
from llmchain.digest.leaf import ALGORITHM, TensorLeaf
from llmchain.digest.manifest import leaf_from_json, leaf_to_json, read_json_document
from llmchain.digest.model_digest import ModelDigest
from llmchain.errors import BadInput

FORMAT = "llmchain-tensor-proof"


@dataclass(frozen=True)
class TensorProof:
    """RFC 9162 inclusion proof: leaf position, tree size, sibling hashes from the leaf up."""

    index: int
    size: int
    siblings: tuple[bytes, ...]


def prove(model_digest: ModelDigest, tensor_name: str) -> TensorProof:
    """The inclusion proof of ``tensor_name``'s leaf in ``model_digest``."""
    index = model_digest.index(tensor_name)
    hashes = [leaf.leaf_hash for leaf in model_digest.tensors]
    return TensorProof(index, len(hashes), tuple(merkle.inclusion_path(index, hashes)))


def verify_proof(root: bytes, leaf_hash: bytes, proof: TensorProof) -> bool:
    """True when ``proof`` shows ``leaf_hash`` is leaf ``proof.index`` of the tree with ``root``."""
    return merkle.verify_inclusion(root, leaf_hash, proof.index, proof.size, proof.siblings)


@dataclass(frozen=True)
class ProofDocument:
    """A proof with everything needed to check it: algorithm, root, the tensor's leaf record."""

    algorithm: str
    root: bytes
    leaf: TensorLeaf
    proof: TensorProof

    @classmethod
    def make(cls, model_digest: ModelDigest, tensor_name: str) -> ProofDocument:
        proof = prove(model_digest, tensor_name)
        leaf = model_digest.tensors[proof.index]
        return cls(model_digest.algorithm, model_digest.root, leaf, proof)

    def verify(self, root: bytes | None = None) -> bool:
        """Check the proof against ``root`` (a trusted one, e.g. from the ledger) or its own."""
        return verify_proof(self.root if root is None else root, self.leaf.leaf_hash, self.proof)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "algorithm": self.algorithm,
            "root": self.root.hex(),
            "tensor": leaf_to_json(self.leaf),
            "index": self.proof.index,
            "size": self.proof.size,
            "siblings": [s.hex() for s in self.proof.siblings],
        }

    @classmethod
    def from_json(cls, document: Any, where: str) -> ProofDocument:
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise BadInput(f"{where}: not an llmchain tensor proof (no \"format\": \"{FORMAT}\")")
        if document.get("algorithm") != ALGORITHM:
            raise BadInput(f"{where}: algorithm {document.get('algorithm')!r} is not {ALGORITHM}")
        index, size, siblings = document.get("index"), document.get("size"), document.get("siblings")
        if not (isinstance(index, int) and isinstance(size, int) and isinstance(siblings, list)):
            raise BadInput(f"{where}: index and size must be integers and siblings a list")
        try:
            root = bytes.fromhex(document.get("root", ""))
            path = tuple(bytes.fromhex(s) for s in siblings)
        except (TypeError, ValueError):
            raise BadInput(f"{where}: root and siblings must be hex strings") from None
        if len(root) != 32 or any(len(s) != 32 for s in path):
            raise BadInput(f"{where}: root and siblings must be 32-byte hashes")
        leaf = leaf_from_json(document.get("tensor"), where)
        return cls(ALGORITHM, root, leaf, TensorProof(index, size, path))

    def write(self, path: str | PathLike[str]) -> None:
        try:
            Path(path).write_text(json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n")
        except OSError as err:
            raise BadInput(f"{path}: cannot write proof: {err.strerror or err}") from None

    @classmethod
    def read(cls, path: str | PathLike[str]) -> ProofDocument:
        return cls.from_json(read_json_document(path, "proof"), str(path))
