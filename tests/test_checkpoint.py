"""Atomic checkpoints: layout, digests, partial directories, tamper detection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from llmchain.checkpoint import (
    INFO_FILE,
    MANIFEST_FILE,
    SEGMENT_FILE,
    STATE_FILE,
    WEIGHTS_FILE,
    atomic_write,
    check_files,
    checkpoint_name,
    list_checkpoints,
    load_segment,
    load_state,
    load_weights_file,
    read_checkpoint,
    remove_partial,
    save_checkpoint,
)
from llmchain.data import Segment
from llmchain.digest import Manifest, digest_path, digest_state_dict
from llmchain.errors import BadInput, VerificationFailed


def _save(run_dir: Path, step: int, scale: float = 1.0, segment: bool = True):  # type: ignore[no-untyped-def]
    weights = {"a.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4) * scale, "b": torch.ones(2)}
    seg = Segment(step - 2, step, 8, b"\x02" * 32, np.arange(8, dtype=np.int64).reshape(2, 1, 4)) if segment else None
    return save_checkpoint(
        run_dir, step, weights=weights, model_config={"n_layer": 1},
        state_tensors={"optim.a.weight.exp_avg": torch.zeros(3, 4)}, state_meta={"step": step, "lr": 0.1},
        segment=seg, record={"val_loss": 1.5, "run_id": 9},
    )


def test_layout_and_digests(tmp_path: Path) -> None:
    info = _save(tmp_path, 4)
    assert info.path == tmp_path / checkpoint_name(4) == tmp_path / "ckpt-000004"
    assert {p.name for p in info.path.iterdir()} == {WEIGHTS_FILE, STATE_FILE, SEGMENT_FILE, MANIFEST_FILE, INFO_FILE}
    assert info.weights.value == digest_path(info.weights_path).root
    assert Manifest.read(info.path / MANIFEST_FILE).digest.root == info.weights.value
    tensors, meta = load_state(info.path)
    assert meta == {"step": 4, "lr": 0.1} and set(tensors) == {"optim.a.weight.exp_avg"}
    raw_state = {**tensors, "__meta__": torch.frombuffer(bytearray(b'{"lr":0.1,"step":4}'), dtype=torch.uint8)}
    assert info.state.value == digest_state_dict(raw_state).root
    assert info.data is not None and info.data.value == load_segment(info.path).digest()
    weights, config = load_weights_file(info.weights_path)
    assert config == {"n_layer": 1} and torch.equal(weights["b"], torch.ones(2))
    assert read_checkpoint(info.weights_path) == info
    assert json.loads((info.path / INFO_FILE).read_text())["val_loss"] == 1.5


def test_without_segment_has_no_data_digest(tmp_path: Path) -> None:
    info = _save(tmp_path, 2, segment=False)
    assert info.data is None and not (info.path / SEGMENT_FILE).exists()
    check_files(info)


def test_existing_step_is_refused(tmp_path: Path) -> None:
    _save(tmp_path, 2)
    with pytest.raises(BadInput, match="already exists"):
        _save(tmp_path, 2, scale=2.0)


def test_partial_directories_are_never_listed_and_are_removed(tmp_path: Path) -> None:
    _save(tmp_path, 2)
    partial = tmp_path / ".tmp-ckpt-000004-123"
    partial.mkdir()
    (partial / WEIGHTS_FILE).write_bytes(b"half")
    assert [c.step for c in list_checkpoints(tmp_path)] == [2]
    assert remove_partial(tmp_path) == [partial] and not partial.exists()
    _save(tmp_path, 10)
    _save(tmp_path, 4)
    assert [c.step for c in list_checkpoints(tmp_path)] == [2, 4, 10]
    assert list_checkpoints(tmp_path / "missing") == []


@pytest.mark.parametrize("target", [WEIGHTS_FILE, STATE_FILE, SEGMENT_FILE])
def test_check_files_detects_changed_files(tmp_path: Path, target: str) -> None:
    info = _save(tmp_path, 2)
    check_files(info)
    path = info.path / target
    data = bytearray(path.read_bytes())
    data[-2] ^= 0x01  # last bytes: tensor data, or a digit of the JSON offsets
    path.write_bytes(bytes(data))
    with pytest.raises(VerificationFailed, match="changed after saving"):
        check_files(info)


def test_not_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="not an llmchain checkpoint"):
        read_checkpoint(tmp_path)
    (tmp_path / INFO_FILE).write_text('{"format": "other"}')
    with pytest.raises(BadInput, match="is not a"):
        read_checkpoint(tmp_path)
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(BadInput, match="no llmchain model config"):
        load_weights_file(tmp_path / "plain.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(BadInput, match="cannot read weights"):
        load_weights_file(tmp_path / "junk.safetensors")


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    atomic_write(target, b"old")
    atomic_write(target, b"new content")
    assert target.read_bytes() == b"new content"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]
