#!/usr/bin/env python3
"""Benchmark the embedded ledger through the typed client (issue 2's targets).

    python3 dev.py run python scripts/bench_ledger.py [--commits 200] [--list 1000]

Measures, on a fresh persistent ledger in a temp dir, in one run:
- single checkpoint commits per second (one transaction, one block, persisted each);
- digest lookup latency (one view call plus the one block's log);
- listing every checkpoint of a run with N checkpoints, hash chain checked, twice: a run committed
  one checkpoint per transaction (N blocks to read: what ``llmchain train`` does, the slow case) and
  a run built with batch commits (a handful of blocks); each the median of three listings.
Each figure is printed beside its target and as a ratio (target met when the ratio is >= 1.0).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from llmchain.chain import connect
from llmchain.ledger import MAX_BATCH, Ledger
from llmchain.records import CheckpointSpec, Digest, RunSpec

COMMITS_PER_S_TARGET = 20.0
LOOKUP_MS_TARGET = 20.0
LIST_S_TARGET = 2.0


def _digest(n: int) -> Digest:
    return Digest("tensor-sha256-v1", (n + 1).to_bytes(32, "big"))


def _spec(n: int) -> CheckpointSpec:
    return CheckpointSpec(step=n + 1, weights_digest=_digest(n), state_digest=_digest(10**9 + n),
                          data_digest=_digest(2 * 10**9 + n), val_loss=1.0 / (n + 1))  # fmt: skip


def _open_run(ledger: Ledger, name: str) -> int:
    ledger.register_model(name)
    config, dataset, code, env = (_digest(3 * 10**9 + k) for k in range(4))
    return ledger.start_run(name, RunSpec(config, dataset, code, env)).id


def _time_listing(ledger: Ledger, run_id: int, count: int) -> float:
    """Median of three full listings (the machine is shared and noisy)."""
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        listed = ledger.list_checkpoints(run_id)
        times.append(time.perf_counter() - t0)
        assert len(listed) == count and [c.index for c in listed] == list(range(count))
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--commits", type=int, default=200, help="single commits to time")
    parser.add_argument("--list", type=int, default=1000, help="checkpoints in the run to list")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, connect(ledger_dir=Path(tmp) / "ledger") as conn:
        ledger = Ledger(conn)
        run_id = _open_run(ledger, "bench/single")
        start = time.perf_counter()
        for n in range(args.commits):
            ledger.commit_checkpoint(run_id, _spec(n))
        commits_per_s = args.commits / (time.perf_counter() - start)

        lookups = []
        for n in range(0, args.commits, max(1, args.commits // 50)):
            t0 = time.perf_counter()
            found = ledger.lookup(_digest(n))
            lookups.append((time.perf_counter() - t0) * 1000)
            assert found is not None and found.step == n + 1
        lookup_ms = statistics.median(lookups)

        singles = _open_run(ledger, "bench/list-singles")
        for n in range(args.list):
            ledger.commit_checkpoint(singles, _spec(10**6 + n))
        list_singles_s = _time_listing(ledger, singles, args.list)

        batched = _open_run(ledger, "bench/list-batched")
        offset = 2 * 10**6
        for first in range(0, args.list, MAX_BATCH):
            ledger.commit_checkpoints(batched, [_spec(offset + n) for n in range(first, min(first + MAX_BATCH, args.list))])
        list_batched_s = _time_listing(ledger, batched, args.list)

    rows = [
        ("single commits/s", f"{commits_per_s:.1f}", f">= {COMMITS_PER_S_TARGET:g}", commits_per_s / COMMITS_PER_S_TARGET),
        ("lookup median ms", f"{lookup_ms:.2f}", f"<= {LOOKUP_MS_TARGET:g}", LOOKUP_MS_TARGET / lookup_ms),
        (f"list {args.list}, 1 per block s", f"{list_singles_s:.3f}", f"<= {LIST_S_TARGET:g}",
         LIST_S_TARGET / list_singles_s),
        (f"list {args.list}, batch-committed s", f"{list_batched_s:.3f}", f"<= {LIST_S_TARGET:g}",
         LIST_S_TARGET / list_batched_s),
    ]
    print(f"{'embedded ledger':34} {'ours':>10} {'target':>10} {'ratio (>=1 meets)':>18}")
    for name, ours, target, ratio in rows:
        print(f"{name:34} {ours:>10} {target:>10} {ratio:>17.2f}x")


if __name__ == "__main__":
    main()
