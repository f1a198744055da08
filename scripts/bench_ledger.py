#!/usr/bin/env python3
"""Benchmark the embedded ledger through the typed client (issue 2's targets).

    python3 dev.py run python scripts/bench_ledger.py [--commits 200] [--list 1000]

Measures, on a fresh persistent ledger in a temp dir, in one run:
- single checkpoint commits per second (one transaction, one block, persisted each);
- digest lookup latency (one view call plus the one block's log);
- listing every checkpoint of a run with N checkpoints (built with batch commits), hash chain checked.
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

        big = _open_run(ledger, "bench/list")
        offset = 10**6
        for first in range(0, args.list, MAX_BATCH):
            ledger.commit_checkpoints(big, [_spec(offset + n) for n in range(first, min(first + MAX_BATCH, args.list))])
        t0 = time.perf_counter()
        listed = ledger.list_checkpoints(big)
        list_s = time.perf_counter() - t0
        assert len(listed) == args.list

    rows = [
        ("single commits/s", f"{commits_per_s:.1f}", f">= {COMMITS_PER_S_TARGET:g}", commits_per_s / COMMITS_PER_S_TARGET),
        ("lookup median ms", f"{lookup_ms:.2f}", f"<= {LOOKUP_MS_TARGET:g}", LOOKUP_MS_TARGET / lookup_ms),
        (f"list {args.list} checkpoints s", f"{list_s:.3f}", f"<= {LIST_S_TARGET:g}", LIST_S_TARGET / list_s),
    ]
    print(f"{'embedded ledger':34} {'ours':>10} {'target':>10} {'ratio (>=1 meets)':>18}")
    for name, ours, target, ratio in rows:
        print(f"{name:34} {ours:>10} {target:>10} {ratio:>17.2f}x")


if __name__ == "__main__":
    main()
