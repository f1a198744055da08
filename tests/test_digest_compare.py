"""Diff: changed, missing and extra tensors by name, between models and manifests."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from llmchain.digest import Manifest, diff, digest_state_dict
from llmchain.errors import BadInput


def model(**changes: np.ndarray) -> dict[str, np.ndarray]:
    base = {"a": np.zeros(4, dtype=np.float32), "b": np.ones((2, 2), dtype=np.float32), "c": np.arange(3, dtype=np.int64)}
    base.update(changes)
    return base


def test_identical_models_are_the_same() -> None:
    result = diff(digest_state_dict(model()), Manifest.from_digest(digest_state_dict(model())))
    assert result.same and not (result.changed or result.missing or result.extra)


def test_changed_missing_and_extra_by_name() -> None:
    left = digest_state_dict(model())
    changed = model(a=np.zeros(4, dtype=np.float16), b=np.ones(4, dtype=np.float32), c=np.arange(3, dtype=np.int64) + 1)
    del changed["c"]
    changed["d"] = np.zeros(1, dtype=np.float32)
    changed["c"] = np.arange(3, dtype=np.int64) + 1
    right = digest_state_dict({k: v for k, v in changed.items() if k != "a"} | {"a": changed["a"]})
    result = diff(left, right)
    assert result.changed == ("a", "b", "c") and result.missing == () and result.extra == ("d",)
    assert result.fields == {"a": ("dtype", "data"), "b": ("shape",), "c": ("data",)}
    reverse = diff(right, left)
    assert reverse.missing == ("d",) and reverse.extra == () and not reverse.same


def test_missing_tensors() -> None:
    smaller = model()
    del smaller["b"]
    assert diff(digest_state_dict(model()), digest_state_dict(smaller)).missing == ("b",)


def test_different_algorithms_cannot_be_compared() -> None:
    left = digest_state_dict(model())
    other = dataclasses.replace(left, algorithm="tensor-keccak-v9")
    with pytest.raises(BadInput, match="cannot compare"):
        diff(left, other)
