"""Shared helpers for the training tests: a micro config and a small corpus written to a temp dir."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from llmchain.train import TrainConfig

# Two layers, 32 wide, 16-token context: a few steps take milliseconds.
MICRO = TrainConfig(
    n_layer=2, n_head=2, n_embd=32, block_size=16, batch_size=4, max_steps=6, learning_rate=3e-3,
    min_lr=3e-4, warmup_steps=2, checkpoint_every=2, eval_batches=2, seed=7,
)


def micro(**changes: object) -> TrainConfig:
    return replace(MICRO, **changes)  # type: ignore[arg-type]


def write_corpus(root: Path) -> Path:
    """About 30 KB of small Python files."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(6):
        body = "".join(f"def f{i}_{j}(x):\n    return x * {j} + {i}\n\n" for j in range(150))
        (root / f"m{i}.py").write_text(body)
    return root


@contextmanager
def single_thread() -> Iterator[None]:
    """Train on one thread: tiny steps on a busy 2-core machine stall badly with two OpenMP threads."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Run the test with torch on one thread (bit-stable results, no oversubscription)."""
    with single_thread():
        yield


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A small text corpus directory."""
    return write_corpus(tmp_path / "corpus")
