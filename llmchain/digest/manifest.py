"""The manifest: a model digest as JSON, written next to a checkpoint.

It keeps every leaf (name, dtype, shape, byte size, data hash, leaf hash) so a later check can name
which tensors differ without the original file, and a proof can be made for any tensor. Reading
recomputes every leaf hash and the root, so a hand-edited or damaged manifest is refused rather
than trusted.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

from llmchain.digest.dtypes import expected_nbytes
from llmchain.digest.leaf import ALGORITHM, TensorLeaf
from llmchain.digest.model_digest import ModelDigest
from llmchain.errors import BadInput

FORMAT = "llmchain-tensor-manifest"
VERSION = 1


def leaf_to_json(leaf: TensorLeaf) -> dict[str, Any]:
    """A leaf as a JSON object (hashes as lowercase hex)."""
    return {
        "name": leaf.name,
        "dtype": leaf.dtype,
        "shape": list(leaf.shape),
        "nbytes": leaf.nbytes,
        "data_hash": leaf.data_hash.hex(),
        "leaf_hash": leaf.leaf_hash.hex(),
    }


def _hash(value: Any, where: str) -> bytes:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise BadInput(f"{where}: expected 64 hex digits, got {value!r}")
    return raw


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def leaf_from_json(obj: Any, where: str) -> TensorLeaf:
    """Parse and check one leaf object; its stored leaf hash must match its fields."""
    if not isinstance(obj, dict):
        raise BadInput(f"{where}: a tensor entry must be a JSON object")
    name, dtype, shape, nbytes = (obj.get(k) for k in ("name", "dtype", "shape", "nbytes"))
    if not isinstance(name, str) or not isinstance(dtype, str):
        raise BadInput(f"{where}: tensor entry needs string name and dtype")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape) or not _is_count(nbytes):
        raise BadInput(f"{where}: tensor {name!r}: shape and nbytes must be non-negative integers")
    if expected_nbytes(tuple(shape), dtype, f"{where}: {name!r}") != nbytes:
        raise BadInput(f"{where}: tensor {name!r}: shape {shape!r} and nbytes {nbytes!r} disagree")
    leaf = TensorLeaf(name, dtype, tuple(shape), nbytes, _hash(obj.get("data_hash"), where))
    if leaf.leaf_hash != _hash(obj.get("leaf_hash"), where):
        raise BadInput(f"{where}: tensor {name!r}: leaf_hash does not match its fields (edited?)")
    return leaf


@dataclass(frozen=True)
class Manifest:
    """A model digest in its on-disk form."""

    digest: ModelDigest

    @classmethod
    def from_digest(cls, digest: ModelDigest) -> Manifest:
        return cls(digest)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "algorithm": self.digest.algorithm,
            "root": self.digest.hex,
            "tensors": [leaf_to_json(leaf) for leaf in self.digest.tensors],
        }

    def write(self, path: str | PathLike[str]) -> None:
        """Write atomically (a temporary file renamed into place), so no reader sees half a file."""
        target = Path(path)
        text = json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n"
        import tempfile  # here, not at the top: it costs every `llmchain digest` start

        try:
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(tmp, target)
        except OSError as err:
            raise BadInput(f"{target}: cannot write manifest: {err.strerror or err}") from None

    @classmethod
    def from_json(cls, document: Any, where: str) -> Manifest:
        """Parse a manifest object; the root must match the tensors it lists."""
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise BadInput(f"{where}: not an llmchain tensor manifest (no \"format\": \"{FORMAT}\")")
        if document.get("version") != VERSION or document.get("algorithm") != ALGORITHM:
            raise BadInput(
                f"{where}: manifest version {document.get('version')!r} / algorithm "
                f"{document.get('algorithm')!r} is not supported (expected {VERSION} / {ALGORITHM})"
            )
        tensors = document.get("tensors")
        if not isinstance(tensors, list):
            raise BadInput(f"{where}: \"tensors\" must be a list")
        leaves = [leaf_from_json(t, where) for t in tensors]
        names = [leaf.name for leaf in leaves]
        if len(set(names)) != len(names):
            twice = next(n for n in names if names.count(n) > 1)
            raise BadInput(f"{where}: tensor {twice!r} appears twice")
        digest = ModelDigest.from_leaves(leaves)
        if digest.root != _hash(document.get("root"), where):
            raise BadInput(f"{where}: root does not match the tensors listed (edited or damaged?)")
        return cls(digest)

    @classmethod
    def read(cls, path: str | PathLike[str]) -> Manifest:
        return cls.from_json(read_json_document(path, "manifest"), str(path))


def default_manifest_path(model_path: str | PathLike[str]) -> Path:
    """Where a model's manifest goes by default: ``X.manifest.json`` beside a file, or inside a directory."""
    path = Path(model_path)
    if path.is_dir():
        return path / "tensors.manifest.json"
    return path.with_name(path.name + ".manifest.json")


def read_json_document(path: str | PathLike[str], what: str) -> Any:
    """A JSON file (a manifest, a proof), or BadInput naming the file and what it should have been."""
    try:
        return json.loads(Path(path).read_bytes().decode("utf-8"))
    except OSError as err:
        raise BadInput(f"{path}: cannot read {what}: {err.strerror or err}") from None
    except (ValueError, RecursionError) as err:
        raise BadInput(f"{path}: {what} is not valid JSON ({err})") from None
