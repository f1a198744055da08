"""Proof-of-learning replay: honest segments reproduce; forged weights, data order or hyperparameters fail."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

from llmchain.audit import audit
from llmchain.chain import Connection
from llmchain.checkpoint import load_segment
from llmchain.data import load_dataset
from llmchain.ledger import Ledger
from llmchain.replay import (
    DISTANCE, EXACT, NOT_RUN, ReplayOptions, distances, environment_differences, replay_check, select_segments,
)
from llmchain.train import replay
from audit_support import MODEL, ckpt, commit_run, edit_weights, reorder_segment, reseal, run_record
from train_support import write_corpus


def replayed(conn: Connection, run_dir: Path, options: ReplayOptions | None = None) -> Any:
    """Commit ``run_dir`` as it is now to the fresh chain, then audit it with a replay of every segment."""
    ledger = Ledger(conn)
    commit_run(ledger, run_dir)
    return audit(ledger, MODEL, checkpoints=run_dir, replay=options or ReplayOptions(segments=None))


def edit_state_meta(folder: Path, change: Any) -> None:
    """Change the JSON meta (hyperparameters, ...) inside ``folder``'s state.safetensors."""
    path = folder / "state.safetensors"
    tensors = load_file(str(path))
    meta = json.loads(bytes(tensors["__meta__"].tolist()))
    change(meta)
    encoded = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    tensors["__meta__"] = torch.frombuffer(bytearray(encoded), dtype=torch.uint8)
    save_file(tensors, str(path))


def test_honest_run_replays_exactly(conn: Connection, run_dir: Path) -> None:
    report = replayed(conn, run_dir)
    assert report.ok, [c for c in report.checks if not c.ok]
    assert [(s.from_step, s.to_step, s.test, s.ok) for s in report.replay] == [(2, 4, EXACT, True), (4, 6, EXACT, True)]
    assert all(s.l2 == 0.0 and s.linf == 0.0 and s.tolerance is None for s in report.replay)
    assert "exact test" in report.checks[-1].detail


def test_distance_test_when_requested_states_its_tolerance(conn: Connection, run_dir: Path) -> None:
    report = replayed(conn, run_dir, ReplayOptions(segments=1, force_distance=True, tolerance=1e-5))
    (segment,) = report.replay
    assert (segment.from_step, segment.to_step) == (4, 6)  # one segment: the last
    assert segment.test == DISTANCE and segment.ok and segment.tolerance == 1e-5
    assert "within tolerance 1e-05" in segment.detail


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores to replay with another thread count")
def test_other_thread_count_uses_the_distance_test(conn: Connection, run_dir: Path) -> None:
    recorded = run_record(run_dir)["records"]["env"]["threads"]
    report = replayed(conn, run_dir, ReplayOptions(threads=1 if recorded != 1 else 2))
    assert report.ok
    for segment in report.replay:
        assert segment.test == DISTANCE and segment.linf is not None and segment.linf <= 1e-4
        assert any(d.startswith("threads") for d in segment.environment)


def test_forged_checkpoint_fails(conn: Connection, run_dir: Path) -> None:
    edit_weights(ckpt(run_dir, 6), lambda t: t.update({"transformer.wte.weight": t["transformer.wte.weight"] + 1e-3}))
    reseal(ckpt(run_dir, 6))  # the forger commits the forged weights' true digests
    report = replayed(conn, run_dir)
    assert not report.ok
    good, forged = report.replay
    assert good.ok and not forged.ok and forged.test == EXACT
    assert forged.linf == pytest.approx(1e-3, rel=0.05)
    distance = replayed_again(run_dir, ReplayOptions(force_distance=True))
    assert not distance.replay[-1].ok and "exceeds tolerance" in distance.replay[-1].detail


def replayed_again(run_dir: Path, options: ReplayOptions) -> Any:
    from llmchain.chain import connect_memory

    with connect_memory() as other:
        return replayed(other, run_dir, options)


def test_reordered_data_segment_fails(conn: Connection, run_dir: Path) -> None:
    reorder_segment(ckpt(run_dir, 4))
    reseal(ckpt(run_dir, 4))  # the reordered order is what got committed; the weights came from the real one
    report = replayed(conn, run_dir)
    first = report.replay[0]
    assert (first.from_step, first.to_step, first.test, first.ok) == (2, 4, EXACT, False)
    assert first.linf is not None and first.linf > 1e-4


def test_data_order_edited_after_commit_is_refused(conn: Connection, run_dir: Path) -> None:
    ledger = Ledger(conn)
    commit_run(ledger, run_dir)
    reorder_segment(ckpt(run_dir, 4))
    report = audit(ledger, MODEL, checkpoints=run_dir, replay=ReplayOptions(segments=None))
    first = report.replay[0]
    assert first.test == NOT_RUN and not first.ok and "data order" in first.detail


def test_changed_hyperparameters_fail(conn: Connection, run_dir: Path, tmp_path: Path) -> None:
    # weights produced with 10x the learning rate, committed under the run's honest config
    hot = tmp_path / "hot"
    shutil.copytree(ckpt(run_dir, 2), hot)
    edit_state_meta(hot, lambda m: m["train_config"].update(learning_rate=m["train_config"]["learning_rate"] * 10))
    corpus = Path(run_record(run_dir)["records"]["dataset"]["source"])
    weights = replay(hot, load_segment(ckpt(run_dir, 4)), load_dataset(corpus))
    edit_weights(ckpt(run_dir, 4), lambda t: t.update(weights))
    reseal(ckpt(run_dir, 4))
    report = replayed(conn, run_dir, ReplayOptions(segments=None))
    assert not report.replay[0].ok and report.replay[0].test == EXACT


def test_edited_hyperparameters_in_the_state_are_refused(conn: Connection, run_dir: Path) -> None:
    edit_state_meta(ckpt(run_dir, 2), lambda m: m["train_config"].update(learning_rate=0.05))
    reseal(ckpt(run_dir, 2))  # committed, so only the run's config digest can tell
    first = replayed(conn, run_dir).replay[0]
    assert first.test == NOT_RUN and "not the run's committed config" in first.detail


def test_wrong_corpus_or_missing_checkpoint_is_not_run(conn: Connection, run_dir: Path, tmp_path: Path) -> None:
    other = write_corpus(tmp_path / "other")
    (other / "extra.py").write_text("x = 1\n")
    report = replayed(conn, run_dir, ReplayOptions(data=other))
    assert all(s.test == NOT_RUN and "pass --data" in s.detail for s in report.replay)
    shutil.rmtree(ckpt(run_dir, 4))
    again = audit(Ledger(conn), MODEL, checkpoints=run_dir, replay=ReplayOptions(segments=None))
    assert [s.detail for s in again.replay] == ["no local checkpoint of run 1 at step 4"] * 2
    assert not again.ok


def test_select_segments_spreads_and_keeps_the_last() -> None:
    assert select_segments(5, None) == [0, 1, 2, 3, 4]
    assert select_segments(5, 9) == [0, 1, 2, 3, 4]
    assert select_segments(5, 1) == [4]
    assert select_segments(10, 3) == [3, 6, 9]
    assert select_segments(0, 3) == []


def test_environment_differences() -> None:
    cpu = {"torch": "2.13.0+cpu", "device": "cpu", "threads": 2, "platform": "x86_64", "cuda": None, "world_size": 1}
    assert environment_differences(cpu, dict(cpu)) == []
    assert environment_differences(cpu, {**cpu, "threads": 4}) == ["threads 2≠4"]
    assert environment_differences(cpu, {**cpu, "torch": "2.12.0"}) == ["torch '2.13.0+cpu'≠'2.12.0'"]
    gpu = {**cpu, "device": "cuda", "cuda": "12.8", "deterministic_algorithms": False}
    assert environment_differences(gpu, dict(gpu)) == ["CUDA run without deterministic algorithms"]
    assert environment_differences({**gpu, "deterministic_algorithms": True}, {**gpu, "deterministic_algorithms": True}) == []


def test_distances_and_empty_check() -> None:
    a = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([0.0])}
    b = {"w": torch.tensor([1.0, 2.5]), "b": torch.tensor([-1.0])}
    assert distances(a, b) is not None
    l2, linf = distances(a, b) or (0.0, 0.0)
    assert linf == 1.0 and l2 == pytest.approx((0.25 + 1.0) ** 0.5)
    assert distances(a, {"w": a["w"]}) is None
    assert not replay_check(()).ok
