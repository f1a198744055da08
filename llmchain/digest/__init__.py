"""Canonical model digests: format-independent tensor Merkle roots, manifests, diffs and proofs.

Spec and test vectors: docs/digest.md. Names are loaded on first use (PEP 562), so
``from llmchain.digest import digest_path`` imports only the digest path and
``llmchain digest`` starts fast; torch and numpy load only for ``.pt``/``.bin`` files and
in-memory tensors.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# public name -> submodule that defines it
_EXPORTS = {
    "ALGORITHM": "leaf",
    "CHUNK_SIZE": "leaf",
    "TensorLeaf": "leaf",
    "Progress": "hashing",
    "ModelDigest": "model_digest",
    "digest_path": "model_digest",
    "digest_state_dict": "model_digest",
    "digest_tensor": "model_digest",
    "Manifest": "manifest",
    "default_manifest_path": "manifest",
    "DigestDiff": "compare",
    "diff": "compare",
    "ProofDocument": "proof",
    "TensorProof": "proof",
    "prove": "proof",
    "verify_proof": "proof",
}

__all__ = [
    "ALGORITHM",
    "CHUNK_SIZE",
    "DigestDiff",
    "Manifest",
    "ModelDigest",
    "Progress",
    "ProofDocument",
    "TensorLeaf",
    "TensorProof",
    "default_manifest_path",
    "diff",
    "digest_path",
    "digest_state_dict",
    "digest_tensor",
    "prove",
    "verify_proof",
]

if TYPE_CHECKING:
    from llmchain.digest.compare import DigestDiff, diff
    from llmchain.digest.hashing import Progress
    from llmchain.digest.leaf import ALGORITHM, CHUNK_SIZE, TensorLeaf
    from llmchain.digest.manifest import Manifest, default_manifest_path
    from llmchain.digest.model_digest import ModelDigest, digest_path, digest_state_dict, digest_tensor
    from llmchain.digest.proof import ProofDocument, TensorProof, prove, verify_proof


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'llmchain.digest' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"llmchain.digest.{_EXPORTS[name]}"), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return __all__
