"""Manifests: written next to a checkpoint, read back identical, refused when edited or damaged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llmchain.digest import Manifest, default_manifest_path, digest_state_dict
from llmchain.errors import BadInput


def sample() -> Manifest:
    return Manifest.from_digest(
        digest_state_dict({"wte": np.arange(6, dtype=np.float32).reshape(2, 3), "ln.b": np.zeros(0, dtype=np.int8)})
    )


def test_round_trip_and_format(tmp_path: Path) -> None:
    manifest = sample()
    path = tmp_path / "model.safetensors.manifest.json"
    manifest.write(path)
    assert Manifest.read(path) == manifest
    document = json.loads(path.read_text())
    assert document["format"] == "llmchain-tensor-manifest" and document["version"] == 1
    assert document["algorithm"] == "tensor-sha256-c16m-v1"
    assert document["root"] == manifest.digest.hex
    assert document["tensors"][1] == {
        "name": "wte",
        "dtype": "F32",
        "shape": [2, 3],
        "nbytes": 24,
        "data_hash": manifest.digest.tensors[1].data_hash.hex(),
        "leaf_hash": manifest.digest.tensors[1].leaf_hash.hex(),
    }
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


@pytest.mark.parametrize(
    ("edit", "match"),
    [
        (lambda d: d.update(root="00" * 32), "root does not match"),
        (lambda d: d["tensors"][0].update(dtype="F16"), "leaf_hash does not match"),
        (lambda d: d["tensors"][1].update(shape=[3, 3]), "shape \\[3, 3\\] and nbytes 24 disagree"),
        (lambda d: d["tensors"][1].update(data_hash="zz"), "expected 64 hex digits"),
        (lambda d: d["tensors"][1].update(nbytes=24.0), "must be non-negative integers"),
        (lambda d: d["tensors"][1].update(shape=[2, True]), "must be non-negative integers"),
        (lambda d: d["tensors"][1].update(dtype="F99"), "unknown or unsupported dtype"),
        (lambda d: d.update(algorithm="tensor-sha256-v0"), "is not supported"),
        (lambda d: d.update(format="other"), "not an llmchain tensor manifest"),
        (lambda d: d.update(tensors={}), '"tensors" must be a list'),
        (lambda d: d["tensors"].append(d["tensors"][0]), "appears twice"),
    ],
)
def test_edited_manifests_are_refused(tmp_path: Path, edit, match: str) -> None:
    path = tmp_path / "m.json"
    document = sample().to_json()
    edit(document)
    path.write_text(json.dumps(document))
    with pytest.raises(BadInput, match=match):
        Manifest.read(path)


def test_unreadable_manifests(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="cannot read manifest"):
        Manifest.read(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_bytes(b"\xff{")
    with pytest.raises(BadInput, match="not valid JSON"):
        Manifest.read(tmp_path / "bad.json")
    with pytest.raises(BadInput, match="cannot write manifest"):
        sample().write(tmp_path / "no-such-dir" / "m.json")


def test_default_manifest_path(tmp_path: Path) -> None:
    assert default_manifest_path(tmp_path / "ckpt" / "model.safetensors") == tmp_path / "ckpt" / "model.safetensors.manifest.json"
    assert default_manifest_path(tmp_path) == tmp_path / "tensors.manifest.json"


def test_package_exports_match_the_interface() -> None:
    import llmchain.digest as package

    assert sorted(package.__all__) == sorted(package._EXPORTS)
    for name in package.__all__:
        assert getattr(package, name) is not None
