"""Compare two digests tensor by tensor: which changed, which are missing, which are extra.

Either side may be a freshly computed ``ModelDigest`` or a ``Manifest`` read from disk, so a model
can be checked against the record written when it was saved, without the original weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmchain.digest.leaf import TensorLeaf
from llmchain.digest.manifest import Manifest
from llmchain.digest.model_digest import ModelDigest
from llmchain.errors import BadInput


@dataclass(frozen=True)
class DigestDiff:
    """Tensor names by outcome, each sorted; ``fields`` says what differs for each changed name."""

    changed: tuple[str, ...]  # in both, with different leaves
    missing: tuple[str, ...]  # in a only
    extra: tuple[str, ...]  # in b only
    fields: dict[str, tuple[str, ...]] = field(default_factory=dict)  # e.g. {"w": ("dtype", "data")}

    @property
    def same(self) -> bool:
        return not (self.changed or self.missing or self.extra)


def _changed_fields(a: TensorLeaf, b: TensorLeaf) -> tuple[str, ...]:
    names = ("dtype", "shape", "data_hash")
    return tuple(n.removesuffix("_hash") for n in names if getattr(a, n) != getattr(b, n))


def diff(a: ModelDigest | Manifest, b: ModelDigest | Manifest) -> DigestDiff:
    """How ``b`` differs from ``a``; both must use the same algorithm."""
    left = a.digest if isinstance(a, Manifest) else a
    right = b.digest if isinstance(b, Manifest) else b
    if left.algorithm != right.algorithm:
        raise BadInput(f"cannot compare a {left.algorithm} digest with a {right.algorithm} digest")
    ours = {leaf.name: leaf for leaf in left.tensors}
    theirs = {leaf.name: leaf for leaf in right.tensors}
    changed = sorted(n for n in ours.keys() & theirs.keys() if ours[n].leaf_hash != theirs[n].leaf_hash)
    return DigestDiff(
        changed=tuple(changed),
        missing=tuple(sorted(ours.keys() - theirs.keys())),
        extra=tuple(sorted(theirs.keys() - ours.keys())),
        fields={n: _changed_fields(ours[n], theirs[n]) for n in changed},
    )
