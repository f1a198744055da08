#!/usr/bin/env python3
"""Training speed against nanoGPT, and what the ledger costs, measured in the same run.

    python scripts/bench_train.py [--rounds 5] [--steps 150] [--overhead-steps 600] [--threads 1]

1. Tokens/s at nanoGPT's CPU recipe size (4 layers, 4 heads, 128 wide, block 64, batch 12):
   ``llmchain.train.train`` (no ledger) against ``scripts/nanogpt_reference.py``, a faithful
   re-implementation of nanoGPT's training step, alternating in rounds so both see the same
   machine load. Target: ratio >= 1.0.
2. Ledger overhead: the same training (6 checkpoints) with commits to a fresh embedded ledger
   and without a ledger, alternating; wall time of the whole ``train`` call. Target: <= 3 %.
   Also the accounted cost: seconds the loop blocked on the ledger plus seconds the background
   committer was busy, over the training's wall time (robust to machine noise; an upper bound,
   since background time overlaps training).

Medians over the rounds are reported. Threads default to 1: on a shared 2-core machine two
OpenMP threads stall whenever the other core is busy, which swamps every ratio with noise.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `llmchain train` does; applies to both sides
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nanogpt_reference  # noqa: E402

from llmchain.chain import connect  # noqa: E402
from llmchain.data import load_dataset  # noqa: E402
from llmchain.ledger import Ledger  # noqa: E402
from llmchain.train import PRESETS, TrainRequest, train  # noqa: E402

RECIPE = replace(PRESETS["tiny"], n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, eval_batches=4)


def ours_tokens_per_s(work: Path, steps: int, seed: int) -> float:
    config = replace(RECIPE, max_steps=steps, checkpoint_every=steps, seed=seed)
    return train(TrainRequest(work / f"speed-{seed}", config=config)).tokens_per_s


def overhead_pair(work: Path, steps: int, seed: int, ledger_first: bool) -> tuple[float, float, float]:
    """Wall seconds of the same training without and with commits, and the accounted ledger share."""
    config = replace(RECIPE, max_steps=steps, checkpoint_every=steps // 6, seed=seed)

    def plain() -> float:
        start = time.perf_counter()
        train(TrainRequest(work / f"plain-{seed}", config=config))
        return time.perf_counter() - start

    def with_ledger() -> tuple[float, float]:
        with connect(ledger_dir=work / f"ledger-{seed}") as conn:
            start = time.perf_counter()
            result = train(TrainRequest(work / f"ledger-{seed}", config=config), ledger=Ledger(conn))
            wall = time.perf_counter() - start
        assert result.committed == 6, f"expected 6 commits, got {result.committed}"
        return wall, (result.ledger_blocking_s + result.ledger_background_s) / wall

    if ledger_first:  # alternate the order so drifting machine load does not favour one side
        (wall, share), base = with_ledger(), plain()
    else:
        base, (wall, share) = plain(), with_ledger()
    return base, wall, share


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=150, help="steps per speed measurement")
    parser.add_argument("--overhead-steps", type=int, default=600, help="steps per overhead measurement")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads for both sides")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
          f"{args.threads} torch thread(s)", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tokens = work / "train.bin"
        load_dataset().train.astype(np.uint16).tofile(tokens)
        ours, anchor = [], []
        for r in range(args.rounds):
            anchor.append(nanogpt_reference.run(tokens, args.steps, seed=r))
            ours.append(ours_tokens_per_s(work, args.steps, seed=r))
            print(f"  speed round {r + 1}: ours {ours[-1]:,.0f} tok/s, nanoGPT {anchor[-1]:,.0f} tok/s", flush=True)
        plain, ledger, accounted = [], [], []
        for r in range(max(4, args.rounds - 1)):
            p, w, a = overhead_pair(work, args.overhead_steps, seed=100 + r, ledger_first=r % 2 == 1)
            plain.append(p)
            ledger.append(w)
            accounted.append(a)
            print(f"  overhead round {r + 1}: without ledger {p:.2f} s, with {w:.2f} s "
                  f"(ledger accounted {a:.1%})", flush=True)
    speed = statistics.median(o / a for o, a in zip(ours, anchor))
    overhead = statistics.median(w / p - 1 for p, w in zip(plain, ledger))
    print()
    print(f"{'measure':<38}{'ours':>14}{'anchor':>14}{'ratio':>9}{'target':>10}")
    print(f"{'tokens/s, nanoGPT CPU recipe size':<38}{statistics.median(ours):>14,.0f}"
          f"{statistics.median(anchor):>14,.0f}{speed:>8.2f}x{'>= 1.00x':>10}")
    print(f"{f'wall s, {args.overhead_steps} steps, 6 commits':<38}{statistics.median(ledger):>14.2f}"
          f"{statistics.median(plain):>14.2f}{overhead:>+8.1%} {'<= +3%':>9}")
    print(f"{'ledger time (blocking + background)':<38}{'':>28}{statistics.median(accounted):>+8.1%} {'<= +3%':>9}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
