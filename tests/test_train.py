"""The training loop without a ledger: schedule, learning, determinism, resume, replay, DDP, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from llmchain.checkpoint import list_checkpoints, load_segment, read_checkpoint
from llmchain.data import Segment, load_dataset
from llmchain.digest import digest_state_dict
from llmchain.errors import BadInput
from llmchain.hook import RUN_FILE
from llmchain.train import PRESETS, Progress, TrainConfig, TrainRequest, learning_rate, replay, train
from train_support import micro, write_corpus

pytestmark = pytest.mark.usefixtures("one_thread")  # torch on one thread: bit-stable, no oversubscription


def _train(run_dir: Path, corpus: Path, **kwargs: object):  # type: ignore[no-untyped-def]
    config = kwargs.pop("config", micro())
    return train(TrainRequest(run_dir, config=config, data=corpus, device="cpu", **kwargs))  # type: ignore[arg-type]


def _digests(run_dir: Path) -> list[tuple[int, str, str, str]]:
    return [(c.step, c.weights.hex, c.state.hex, c.data.hex if c.data else "") for c in list_checkpoints(run_dir)]


def test_schedule_warms_up_then_decays_to_min() -> None:
    c = TrainConfig(learning_rate=1.0, min_lr=0.1, warmup_steps=10, max_steps=110)
    lrs = [learning_rate(c, s) for s in range(111)]
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:11]))
    assert lrs[10] == pytest.approx(1.0) and lrs[110] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_presets_are_valid_and_tiny_is_default() -> None:
    for preset in PRESETS.values():
        preset.validate()
    assert PRESETS["tiny"] == TrainConfig()


def test_micro_run_learns_and_checkpoints(tmp_path: Path, corpus: Path) -> None:
    events: list[Progress] = []
    result = train(TrainRequest(tmp_path / "run", config=micro(max_steps=30, checkpoint_every=10),
                                data=corpus, device="cpu"), on_progress=events.append)
    assert [c.step for c in result.checkpoints] == [10, 20, 30]
    assert [s for s, _ in result.val_losses] == [0, 10, 20, 30]
    assert result.val_losses[-1][1] < result.val_losses[0][1] - 1.0
    steps = [e for e in events if e.kind == "step"]
    assert [e.step for e in steps] == list(range(1, 31)) and all(e.tokens_per_s and e.loss for e in steps)
    assert (tmp_path / "run" / RUN_FILE).exists() and result.run_id is None
    seg = load_segment(result.checkpoints[1].path)
    assert (seg.start_step, seg.end_step, seg.offsets.shape) == (10, 20, (10, 1, 4))


def test_same_seed_same_weights_other_seed_differs(tmp_path: Path, corpus: Path) -> None:
    _train(tmp_path / "a", corpus)
    _train(tmp_path / "b", corpus)
    _train(tmp_path / "c", corpus, config=micro(seed=8))
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    assert _digests(tmp_path / "a")[0][1] != _digests(tmp_path / "c")[0][1]


def test_resume_after_interruption_is_bit_identical(tmp_path: Path, corpus: Path) -> None:
    config = micro(dropout=0.1)  # dropout draws from the per-step RNG, which resume must reproduce too
    _train(tmp_path / "full", corpus, config=config)

    def crash_at_step_3(event: Progress) -> None:
        if event.kind == "step" and event.step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(TrainRequest(tmp_path / "cut", config=config, data=corpus, device="cpu"), on_progress=crash_at_step_3)
    assert [c.step for c in list_checkpoints(tmp_path / "cut")] == [2]
    result = train(TrainRequest(tmp_path / "cut", data=corpus, device="cpu", resume=True))
    assert [c.step for c in result.checkpoints] == [4, 6]
    assert _digests(tmp_path / "cut") == _digests(tmp_path / "full")


def test_replay_reproduces_next_checkpoint_and_catches_reordering(tmp_path: Path, corpus: Path) -> None:
    _train(tmp_path / "run", corpus)
    two, four = list_checkpoints(tmp_path / "run")[:2]
    dataset = load_dataset(corpus)
    segment = load_segment(four.path)
    assert digest_state_dict(replay(two.path, segment, dataset)).root == four.weights.value
    swapped = Segment(segment.start_step, segment.end_step, segment.block_size, segment.dataset_digest,
                      segment.offsets[::-1].copy())
    assert digest_state_dict(replay(two.path, swapped, dataset)).root != four.weights.value
    with pytest.raises(BadInput, match="segment starts at step 2 but .* is step 4"):
        replay(four.path, segment, dataset)


def test_bad_input_is_refused_before_anything_is_written(tmp_path: Path, corpus: Path) -> None:
    with pytest.raises(BadInput, match="block size 100000 does not fit"):
        _train(tmp_path / "big", corpus, config=micro(block_size=100_000))
    with pytest.raises(BadInput, match="not divisible"):
        _train(tmp_path / "odd", corpus, config=micro(n_head=3))
    with pytest.raises(BadInput, match="nothing to resume"):
        train(TrainRequest(tmp_path / "none", data=corpus, resume=True))
    assert not any((tmp_path / d).exists() for d in ("big", "odd", "none"))
    _train(tmp_path / "run", corpus)
    with pytest.raises(BadInput, match="belongs to run"):
        _train(tmp_path / "run", corpus)
    with pytest.raises(BadInput, match="recorded config"):
        _train(tmp_path / "run", corpus, config=micro(seed=99), resume=True)
    other = write_corpus(tmp_path / "other")
    (other / "extra.py").write_text("x = 1\n")
    with pytest.raises(BadInput, match="data differs"):
        train(TrainRequest(tmp_path / "run", data=other, resume=True))


def test_two_process_ddp_only_rank0_writes(tmp_path: Path, corpus: Path) -> None:
    script = tmp_path / "ddp.py"
    script.write_text(textwrap.dedent(f"""
        from pathlib import Path
        from llmchain.train import TrainRequest, train
        from train_support import micro
        train(TrainRequest(Path({str(tmp_path / 'run')!r}), config=micro(max_steps=4), data=Path({str(corpus)!r}), device="cpu"))
    """))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    checkpoints = list_checkpoints(tmp_path / "run")
    assert [c.step for c in checkpoints] == [2, 4]
    segment = load_segment(checkpoints[1].path)
    assert segment.offsets.shape == (2, 2, 4)  # 2 steps x (2 ranks x 1 micro-batch) x batch 4
    replayed = replay(checkpoints[0].path, segment, load_dataset(corpus))
    from llmchain.checkpoint import load_weights_file

    weights, _ = load_weights_file(checkpoints[1].path)
    assert max(float((replayed[k] - weights[k]).abs().max()) for k in weights) < 1e-5
    assert read_checkpoint(checkpoints[1].path).record["run_id"] is None
    assert np.all(segment.offsets[:, 0] != segment.offsets[:, 1])
    assert torch.get_num_threads() >= 1
