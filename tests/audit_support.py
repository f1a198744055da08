"""Shared helpers for the verify/audit/replay/report tests: one real training run, committed per test.

``trained_run`` trains a micro GPT once per test session (real torch, real ledger hook on a
throwaway in-memory chain, so its checkpoints claim run 1) and hands each test a private copy.
``commit_run`` puts that run's digests on a test's own fresh chain as run 1 of a model, so every
test starts from the same honest history and can tamper with files or the chain on its own.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from llmchain.chain import Connection, connect_memory
from llmchain.checkpoint import INFO_FILE, MANIFEST_FILE, STATE_FILE, WEIGHTS_FILE, list_checkpoints, load_segment
from llmchain.data import SEGMENT_DIGEST_ALGORITHM
from llmchain.digest import Manifest, digest_path
from llmchain.hook import RUN_FILE, RunRecord
from llmchain.ledger import Ledger
from llmchain.records import CheckpointSpec, Digest, Run, RunSpec
from llmchain.train import TrainRequest, train
from train_support import micro, write_corpus

MODEL = "acme/micro-gpt"
_CACHE: dict[str, Path] = {}


@pytest.fixture
def run_dir(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    """A private copy of the session's trained micro run (tests edit their copy freely)."""
    return trained_run(tmp_path_factory.getbasetemp() / "shared-run", tmp_path / "run")


@pytest.fixture
def ledger(conn: Connection, run_dir: Path) -> Ledger:
    """A fresh in-memory ledger with ``run_dir`` committed as model MODEL."""
    ledger = Ledger(conn)
    commit_run(ledger, run_dir)
    return ledger


def trained_run(base: Path, destination: Path) -> Path:
    """A copy, at ``destination``, of a 3-checkpoint micro run (steps 2, 4, 6) trained once per session."""
    if "run" not in _CACHE:
        corpus = write_corpus(base / "corpus")
        with connect_memory() as conn:
            train(TrainRequest(base / "run", config=micro(), data=corpus, model_name=MODEL), ledger=Ledger(conn))
        _CACHE["run"] = base / "run"
    shutil.copytree(_CACHE["run"], destination)
    return destination


def commit_run(ledger: Ledger, run_dir: Path, model: str = MODEL) -> Run:
    """Register ``model`` (if new), start a run with run.json's digests and commit every checkpoint."""
    record = RunRecord.read(run_dir)
    if model not in _model_names(ledger):
        ledger.register_model(model)
    spec = RunSpec(*(Digest(record.digests[k].algorithm, record.digests[k].value) for k in ("config", "dataset", "code", "env")))
    run = ledger.start_run(model, spec)
    ledger.commit_checkpoints(run.id, [checkpoint_spec(info.path) for info in list_checkpoints(run_dir)])
    return ledger.get_run(run.id)


def checkpoint_spec(folder: Path) -> CheckpointSpec:
    """What a trainer would commit for the checkpoint directory ``folder`` as it is on disk now."""
    info = json.loads((folder / INFO_FILE).read_text())
    return CheckpointSpec(
        step=info["step"],
        weights_digest=_digest(digest_path(folder / WEIGHTS_FILE)),
        state_digest=_digest(digest_path(folder / STATE_FILE)),
        data_digest=Digest(SEGMENT_DIGEST_ALGORITHM, load_segment(folder).digest()),
        val_loss=info.get("val_loss"),
    )


def _digest(model_digest: Any) -> Digest:
    return Digest(model_digest.algorithm, model_digest.root)


def _model_names(ledger: Ledger) -> set[str]:
    count = ledger.conn.call(ledger.conn.registry.functions.modelCount())
    return {ledger.get_model(i).name for i in range(1, count + 1)}


def ckpt(run_dir: Path, step: int) -> Path:
    return run_dir / f"ckpt-{step:06d}"


def edit_weights(folder: Path, change: Any) -> None:
    """Rewrite ``folder``'s model.safetensors after ``change(tensors)`` edits the dict in place."""
    path = folder / WEIGHTS_FILE
    tensors = load_file(str(path))
    with open(path, "rb") as handle:  # keep the model config metadata
        header = json.loads(handle.read(int.from_bytes(handle.read(8), "little")))
    change(tensors)
    save_file(tensors, str(path), metadata=header.get("__metadata__"))


def flip_bit(tensors: dict[str, torch.Tensor], name: str) -> None:
    """Flip the lowest bit of the first element of tensor ``name``."""
    raw = tensors[name].contiguous().view(-1).view(torch.int32).clone()
    raw[0] ^= 1
    tensors[name] = raw.view(torch.float32).view(tensors[name].shape)


def reseal(folder: Path) -> None:
    """Make checkpoint.json and manifest.json describe the files as they are now (what a forger does)."""
    spec = checkpoint_spec(folder)
    info = json.loads((folder / INFO_FILE).read_text())
    for key, digest in (("weights_digest", spec.weights_digest), ("state_digest", spec.state_digest), ("data_digest", spec.data_digest)):
        assert digest is not None
        info[key] = {"algorithm": digest.algorithm, "value": digest.value.hex()}
    (folder / INFO_FILE).write_text(json.dumps(info, indent=1, sort_keys=True))
    Manifest.from_digest(digest_path(folder / WEIGHTS_FILE)).write(folder / MANIFEST_FILE)


def reorder_segment(folder: Path) -> None:
    """Swap the first two steps' batches in ``folder``'s recorded data order."""
    segment = json.loads((folder / "segment.json").read_text())
    offsets = np.asarray(segment["offsets"]).reshape(segment["shape"])
    offsets[[0, 1]] = offsets[[1, 0]]
    segment["offsets"] = offsets.reshape(-1).tolist()
    (folder / "segment.json").write_text(json.dumps(segment, sort_keys=True, separators=(",", ":")))


def run_record(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / RUN_FILE).read_text())
