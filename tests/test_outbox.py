"""The outbox journal: pending -> committed, atomic entries, reconciliation after a crash."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from llmchain.checkpoint import list_checkpoints, save_checkpoint
from llmchain.outbox import COMMITTED, OUTBOX_DIR, PENDING, Outbox


def _save(run_dir: Path, step: int):  # type: ignore[no-untyped-def]
    return save_checkpoint(run_dir, step, weights={"w": torch.full((2,), float(step))}, model_config={},
                           state_tensors={}, state_meta={"step": step}, segment=None, record={})


def test_pending_then_committed(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    assert outbox.entries() == [] and outbox.pending() == []
    entries = [outbox.add(_save(tmp_path, step)) for step in (4, 2)]
    assert [e.step for e in outbox.pending()] == [2, 4]
    done = outbox.mark_committed(entries[0], {"block": 7})
    assert done.state == COMMITTED and [e.step for e in outbox.pending()] == [2]
    reread = {e.step: e for e in Outbox(tmp_path).entries()}
    assert reread[4].state == COMMITTED and reread[4].receipt == {"block": 7}
    assert reread[2].state == PENDING and reread[2].weights == entries[1].weights
    assert reread[2].info().step == 2
    assert sorted(p.name for p in (tmp_path / OUTBOX_DIR).iterdir()) == ["ckpt-000002.json", "ckpt-000004.json"]


def test_reconcile_journals_checkpoints_without_entry(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    outbox.mark_committed(outbox.add(_save(tmp_path, 2)), {})
    _save(tmp_path, 4)  # a crash right after the rename: on disk, not journaled
    added = outbox.reconcile(list_checkpoints(tmp_path))
    assert [e.step for e in added] == [4] and [e.step for e in outbox.pending()] == [4]
    assert outbox.reconcile(list_checkpoints(tmp_path)) == []


def test_a_torn_temp_file_is_ignored(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path)
    entry = outbox.add(_save(tmp_path, 2))
    (tmp_path / OUTBOX_DIR / ".tmp-ckpt-000002.json-999").write_text('{"state": "comm')  # killed mid-write
    (only,) = outbox.entries()
    assert only.state == PENDING and only.weights == entry.weights
    record = json.loads((tmp_path / OUTBOX_DIR / "ckpt-000002.json").read_text())
    assert record["format"] == "llmchain.outbox.v1" and record["checkpoint"] == "ckpt-000002"
