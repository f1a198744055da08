"""Text renderings of ledger records, shared by the commands that print them.

Kept apart from the command modules so that a command importing them does not build every other
command's click options.
"""

from __future__ import annotations

import datetime as dt

from llmchain.records import Checkpoint, Digest, Model, Release, Run


def when_text(timestamp: int) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def digest_text(digest: Digest | None) -> str:
    return "-" if digest is None else str(digest)


def loss_text(loss: float | None) -> str:
    return "-" if loss is None else f"{loss:.4f}"


def model_lines(model: Model) -> list[str]:
    """A model as text lines."""
    lines = [f"model {model.id}: {model.name}", f"  owner: {model.owner}"]
    if model.pending_owner:
        lines.append(f"  pending owner: {model.pending_owner} (must accept)")
    lines.append(f"  card: {digest_text(model.card)}")
    if model.parent is not None:
        parent = f"model {model.parent.model_id}" if model.parent.model_id else "external weights"
        lines.append(f"  {model.parent.relation.label} of {parent}, checkpoint {digest_text(model.parent.checkpoint)}")
    lines.append(f"  runs: {model.run_count}, releases: {model.release_count}, registered at block {model.registered_block}")
    return lines


def run_lines(run: Run) -> list[str]:
    """A run as text lines."""
    spec = run.spec
    return [
        f"run {run.id} ({run.status.name.lower()}) by {run.trainer}, started {when_text(run.started_at)}",
        f"  checkpoints: {run.checkpoint_count}, last step {run.last_step}, head 0x{run.head.hex()}",
        f"  config {digest_text(spec.config_digest)}",
        f"  dataset {digest_text(spec.dataset_digest)}",
        f"  code {digest_text(spec.code_digest)}",
        f"  environment {digest_text(spec.env_digest)}",
        f"  base checkpoint {digest_text(spec.base_checkpoint)}",
    ]


def checkpoint_line(cp: Checkpoint) -> str:
    """One checkpoint as one line."""
    return (
        f"run {cp.run_id} #{cp.index} step {cp.step} loss {loss_text(cp.val_loss)} "
        f"{cp.status.name.lower()} {cp.weights_digest} by {cp.committer} at {when_text(cp.timestamp)} (block {cp.block_number})"
    )


def release_line(release: Release) -> str:
    """One release as one line."""
    cp = release.checkpoint
    return (
        f"{release.label} ({release.status.name.lower()}) -> run {cp.run_id} step {cp.step} "
        f"{cp.weights_digest}, released {when_text(release.released_at)}"
    )
