"""The outbox: a crash-safe journal of checkpoints waiting for their on-chain commit.

One small JSON file per checkpoint in ``<run_dir>/outbox/``, replaced atomically (temp file,
fsync, rename) on every state change, so after a kill -9 each entry reads as either its old or
its new state:

    ckpt on disk (atomic rename) ──► entry "pending" ──► commit tx ──► entry "committed"

An entry is only ever created for a checkpoint directory that is already complete, so the ledger
never receives the digest of a file that is not fully written. A crash between the rename and
the entry leaves a checkpoint without an entry; ``reconcile`` adds it back as pending. A crash
between the transaction and the "committed" write leaves a pending entry whose digest is already
on-chain; the committer looks it up before sending (see ``hook.commit_pending``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmchain.checkpoint import CheckpointInfo, DigestRef, atomic_write, read_checkpoint

OUTBOX_DIR = "outbox"
OUTBOX_FORMAT = "llmchain.outbox.v1"
PENDING = "pending"
COMMITTED = "committed"


@dataclass(frozen=True)
class OutboxEntry:
    """One journal record: a checkpoint and whether its commit is confirmed."""

    step: int
    checkpoint: Path  # the checkpoint directory
    state: str  # PENDING or COMMITTED
    weights: DigestRef
    receipt: dict[str, Any] | None  # {"tx": hex, "block": n} once committed

    def info(self) -> CheckpointInfo:
        return read_checkpoint(self.checkpoint)


class Outbox:
    """The journal of one run directory."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.directory = run_dir / OUTBOX_DIR

    def add(self, info: CheckpointInfo) -> OutboxEntry:
        """Journal a complete checkpoint as pending (call only after its directory is renamed into place)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        entry = OutboxEntry(info.step, info.path, PENDING, info.weights, None)
        self._write(entry)
        return entry

    def mark_committed(self, entry: OutboxEntry, receipt: dict[str, Any]) -> OutboxEntry:
        done = OutboxEntry(entry.step, entry.checkpoint, COMMITTED, entry.weights, receipt)
        self._write(done)
        return done

    def entries(self) -> list[OutboxEntry]:
        if not self.directory.is_dir():
            return []
        found = [self._read(p) for p in self.directory.glob("*.json")]
        return sorted(found, key=lambda e: e.step)

    def pending(self) -> list[OutboxEntry]:
        return [e for e in self.entries() if e.state == PENDING]

    def reconcile(self, checkpoints: list[CheckpointInfo]) -> list[OutboxEntry]:
        """Journal complete checkpoints that have no entry (a crash right after their rename)."""
        known = {e.step for e in self.entries()}
        return [self.add(info) for info in checkpoints if info.step not in known]

    def _path(self, step: int) -> Path:
        return self.directory / f"ckpt-{step:06d}.json"

    def _write(self, entry: OutboxEntry) -> None:
        record = {
            "format": OUTBOX_FORMAT,
            "step": entry.step,
            "checkpoint": entry.checkpoint.name,
            "state": entry.state,
            "weights_digest": entry.weights.to_json(),
            "receipt": entry.receipt,
            "updated": time.time(),
        }
        atomic_write(self._path(entry.step), json.dumps(record, indent=1, sort_keys=True).encode())

    def _read(self, path: Path) -> OutboxEntry:
        record = json.loads(path.read_text())
        return OutboxEntry(
            step=int(record["step"]),
            checkpoint=self.run_dir / record["checkpoint"],
            state=record["state"],
            weights=DigestRef.from_json(record["weights_digest"]),
            receipt=record.get("receipt"),
        )
