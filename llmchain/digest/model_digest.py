"""A model's digest: the sorted tensor leaves and their Merkle root, and how to compute it.

The value depends only on the tensors (names, dtypes, shapes, bytes), never on the container,
key order, file metadata or sharding: every source is reduced to the same ``TensorSource`` list.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

from llmchain.digest import merkle
from llmchain.digest.hashing import Progress, hash_spans
from llmchain.digest.leaf import ALGORITHM, TensorLeaf
from llmchain.digest.sources import TensorSource, from_mapping, open_path
from llmchain.errors import BadInput


def name_key(name: str) -> bytes:
    """The sort key of tensors: the name's UTF-8 bytes (the same order as Unicode code points)."""
    return name.encode("utf-8")


@dataclass(frozen=True)
class ModelDigest:
    """The digest of a model: algorithm name, Merkle root, and one leaf per tensor, sorted by name."""

    algorithm: str
    root: bytes  # 32 bytes
    tensors: tuple[TensorLeaf, ...]

    @classmethod
    def from_leaves(cls, leaves: Iterable[TensorLeaf]) -> ModelDigest:
        ordered = tuple(sorted(leaves, key=lambda leaf: name_key(leaf.name)))
        for before, after in zip(ordered, ordered[1:]):
            if before.name == after.name:
                raise BadInput(f"tensor {after.name!r} appears twice")
        return cls(ALGORITHM, merkle.root([leaf.leaf_hash for leaf in ordered]), ordered)

    @property
    def hex(self) -> str:
        """The root as 64 lowercase hex digits."""
        return self.root.hex()

    @property
    def nbytes(self) -> int:
        """Total tensor bytes."""
        return sum(leaf.nbytes for leaf in self.tensors)

    def index(self, name: str) -> int:
        """Position of tensor ``name`` among the leaves."""
        for position, leaf in enumerate(self.tensors):
            if leaf.name == name:
                return position
        raise BadInput(f"no tensor named {name!r} in this model ({len(self.tensors)} tensors)")

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def _leaves(sources: list[TensorSource], progress: Progress | None) -> list[TensorLeaf]:
    hashes = hash_spans([s.span for s in sources], progress=progress)
    return [TensorLeaf(s.name, s.dtype, s.shape, s.span.nbytes, h) for s, h in zip(sources, hashes)]


def digest_path(path: str | PathLike[str], *, progress: Progress | None = None) -> ModelDigest:
    """Digest a safetensors file, a PyTorch state dict file, a shard index or a directory of shards."""
    with ExitStack() as stack:
        return ModelDigest.from_leaves(_leaves(open_path(Path(path), stack), progress))


def digest_state_dict(
    state_dict: Mapping[str, Any], *, progress: Progress | None = None
) -> ModelDigest:
    """Digest tensors held in memory (torch tensors and/or numpy arrays, by name)."""
    return ModelDigest.from_leaves(_leaves(from_mapping(state_dict), progress))


def digest_tensor(path: str | PathLike[str], name: str) -> TensorLeaf:
    """The leaf of one tensor of the model at ``path``, hashing only that tensor's bytes."""
    with ExitStack() as stack:
        sources = [s for s in open_path(Path(path), stack) if s.name == name]
        if not sources:
            raise BadInput(f"{path}: no tensor named {name!r}")
        return _leaves(sources, None)[0]
