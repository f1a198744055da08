"""Checkpoints on disk, written so that a crash can never leave a half-written one behind.

A checkpoint is a directory ``<run_dir>/ckpt-<step:06d>/`` holding:

- ``model.safetensors``: the weights (tied head stored once); ``__metadata__["llmchain.model_config"]``
  holds the model config as JSON.
- ``state.safetensors``: the training state: optimizer tensors plus a uint8 tensor ``__meta__``
  holding canonical JSON (step, configs, RNG scheme, data position, optimizer hyperparameters).
  Keeping the JSON in a tensor puts it under the state digest (safetensors metadata is not hashed).
- ``segment.json``: the data order of the steps since the previous checkpoint (``data.Segment``).
- ``manifest.json``: the weights' per-tensor digest manifest (``llmchain.digest.Manifest``).
- ``checkpoint.json``: the summary: step, the three digests, losses, run and model; written last.

All files go into ``.tmp-ckpt-<step>-<pid>/`` first, each fsynced, then the directory is renamed
into place and the parent fsynced. A directory named ``ckpt-*`` is therefore always complete;
leftover ``.tmp-*`` directories are partial and are deleted, never committed.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from llmchain.data import SEGMENT_DIGEST_ALGORITHM, Segment
from llmchain.digest import Manifest, digest_path, digest_state_dict
from llmchain.errors import BadInput, VerificationFailed

CHECKPOINT_FORMAT = "llmchain.checkpoint.v1"
WEIGHTS_FILE = "model.safetensors"
STATE_FILE = "state.safetensors"
SEGMENT_FILE = "segment.json"
MANIFEST_FILE = "manifest.json"
INFO_FILE = "checkpoint.json"
STATE_META = "__meta__"  # uint8 tensor of canonical JSON inside state.safetensors
MODEL_CONFIG_KEY = "llmchain.model_config"  # safetensors metadata key in model.safetensors
_PREFIX = "ckpt-"
_TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class DigestRef:
    """A digest value with the name of the algorithm that produced it."""

    algorithm: str
    value: bytes

    @property
    def hex(self) -> str:
        return self.value.hex()

    def to_json(self) -> dict[str, str]:
        return {"algorithm": self.algorithm, "value": self.value.hex()}

    @classmethod
    def from_json(cls, data: Mapping[str, str]) -> DigestRef:
        return cls(data["algorithm"], bytes.fromhex(data["value"]))


@dataclass(frozen=True)
class CheckpointInfo:
    """What ``checkpoint.json`` says about a complete checkpoint directory."""

    path: Path  # the checkpoint directory
    step: int
    weights: DigestRef
    state: DigestRef
    data: DigestRef | None  # None when the loop recorded no data order
    val_loss: float | None
    record: dict[str, Any]  # the whole checkpoint.json

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS_FILE


def checkpoint_name(step: int) -> str:
    return f"{_PREFIX}{step:06d}"


def canonical_json(obj: object) -> bytes:
    """Sorted keys, no spaces: the one byte form every digest of JSON in this project uses."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def save_checkpoint(
    run_dir: Path,
    step: int,
    *,
    weights: Mapping[str, torch.Tensor],
    model_config: dict[str, Any],
    state_tensors: Mapping[str, torch.Tensor],
    state_meta: dict[str, Any],
    segment: Segment | None,
    record: dict[str, Any],
) -> CheckpointInfo:
    """Write a checkpoint atomically and return its digests; ``record`` is merged into checkpoint.json."""
    final = run_dir / checkpoint_name(step)
    if final.exists():
        raise BadInput(f"checkpoint {final} already exists; resume the run or choose another --out")
    weights, state = _unshared(weights), _unshared(state_tensors)
    state[STATE_META] = torch.frombuffer(bytearray(canonical_json(state_meta)), dtype=torch.uint8)
    weights_digest = digest_state_dict(weights)
    info = {
        **record,
        "format": CHECKPOINT_FORMAT,
        "step": step,
        "weights_digest": _ref(weights_digest).to_json(),
        "state_digest": _ref(digest_state_dict(state)).to_json(),
        "data_digest": None if segment is None else DigestRef(SEGMENT_DIGEST_ALGORITHM, segment.digest()).to_json(),
        "model_config": model_config,
    }
    files = {
        WEIGHTS_FILE: st_save(weights, metadata={MODEL_CONFIG_KEY: json.dumps(model_config, sort_keys=True)}),
        STATE_FILE: st_save(state),
        INFO_FILE: json.dumps(info, indent=1, sort_keys=True).encode(),
    }
    if segment is not None:
        files[SEGMENT_FILE] = canonical_json(segment.to_json())
    tmp = run_dir / f"{_TMP_PREFIX}{checkpoint_name(step)}-{os.getpid()}"
    tmp.mkdir(parents=True)
    for name, data in files.items():
        _write_synced(tmp / name, data)
    Manifest.from_digest(weights_digest).write(tmp / MANIFEST_FILE)
    _fsync(tmp / MANIFEST_FILE)
    _fsync(tmp)
    os.rename(tmp, final)
    _fsync(run_dir)
    return read_checkpoint(final)


def read_checkpoint(path: Path) -> CheckpointInfo:
    """Read a checkpoint's summary; ``path`` is its directory or the model.safetensors inside it."""
    directory = path.parent if path.name == WEIGHTS_FILE else path
    try:
        record = json.loads((directory / INFO_FILE).read_text())
    except (OSError, ValueError) as err:
        raise BadInput(f"{path} is not an llmchain checkpoint ({INFO_FILE} unreadable: {err})") from err
    if record.get("format") != CHECKPOINT_FORMAT:
        raise BadInput(f"{directory / INFO_FILE} is not a {CHECKPOINT_FORMAT} record")
    return CheckpointInfo(
        path=directory,
        step=int(record["step"]),
        weights=DigestRef.from_json(record["weights_digest"]),
        state=DigestRef.from_json(record["state_digest"]),
        data=DigestRef.from_json(record["data_digest"]) if record.get("data_digest") else None,
        val_loss=record.get("val_loss"),
        record=record,
    )


def list_checkpoints(run_dir: Path) -> list[CheckpointInfo]:
    """Complete checkpoints of a run directory, oldest first (partial ``.tmp-*`` dirs are ignored)."""
    if not run_dir.is_dir():
        return []
    found = [read_checkpoint(p) for p in run_dir.iterdir() if p.name.startswith(_PREFIX) and p.is_dir()]
    return sorted(found, key=lambda c: c.step)


def remove_partial(run_dir: Path) -> list[Path]:
    """Delete directories a crash left half-written; returns what was removed."""
    partial = [p for p in run_dir.glob(f"{_TMP_PREFIX}{_PREFIX}*") if p.is_dir()] if run_dir.is_dir() else []
    for path in partial:
        shutil.rmtree(path)
    return partial


def load_weights_file(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Tensors and model config of a checkpoint's weights (directory or model.safetensors)."""
    file = path / WEIGHTS_FILE if path.is_dir() else path
    try:
        with safe_open(str(file), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}
    except (OSError, ValueError, SafetensorError) as err:
        raise BadInput(f"cannot read weights {file}: {err}") from err
    if MODEL_CONFIG_KEY not in metadata:
        raise BadInput(f"{file} has no llmchain model config; it was not written by llmchain train")
    return tensors, json.loads(metadata[MODEL_CONFIG_KEY])


def load_state(directory: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The training state tensors (without ``__meta__``) and its JSON meta."""
    tensors = st_load((directory / STATE_FILE).read_bytes())
    meta = json.loads(bytes(tensors.pop(STATE_META).tolist()))
    return tensors, meta


def load_segment(directory: Path) -> Segment:
    return Segment.from_json(json.loads((directory / SEGMENT_FILE).read_text()))


def check_files(info: CheckpointInfo) -> None:
    """Recompute the three digests from the files and compare with checkpoint.json.

    Run before committing a checkpoint found on disk (outbox recovery): the ledger must only
    ever receive digests of files that are complete and unchanged.
    """
    weights = _ref(digest_path(info.weights_path))
    state = _ref(digest_state_dict(st_load((info.path / STATE_FILE).read_bytes())))
    data = DigestRef(SEGMENT_DIGEST_ALGORITHM, load_segment(info.path).digest()) if info.data else None
    for name, got, want in (("weights", weights, info.weights), ("state", state, info.state), ("data", data, info.data)):
        if got != want:
            raise VerificationFailed(f"{info.path}: the {name} digest differs from {INFO_FILE}; the files changed after saving")


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so readers see the old or the new content, never a mix."""
    tmp = path.with_name(f"{_TMP_PREFIX}{path.name}-{os.getpid()}")
    _write_synced(tmp, data)
    os.replace(tmp, path)
    _fsync(path.parent)


def _unshared(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CPU, contiguous, and no two names sharing memory (safetensors refuses tied tensors)."""
    seen: set[int] = set()
    out = {}
    for name, tensor in tensors.items():
        t = tensor.detach().cpu().contiguous()
        if t.untyped_storage().data_ptr() in seen:
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[name] = t
    return out


def _ref(digest: Any) -> DigestRef:
    return DigestRef(digest.algorithm, digest.root)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync(path: Path) -> None:
    """fsync a file or a directory (a directory's entry list must hit the disk before a rename counts)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
