#!/usr/bin/env python3
"""Benchmark the audit and verify paths against issue 5's targets, all measured in one run.

    python3 dev.py run python scripts/bench_audit.py [--checkpoints 1000] [--size-mib 1024] [--repeat 3]

1. Audit of a run with N checkpoints on the embedded (persistent) ledger, built with batch commits:
   the library call on a freshly opened ledger. Target: <= 5 s.
2. Verify of a 1 GiB checkpoint: `verify_weights` (digest + on-chain lookup + releases) against
   `digest_path` alone on the same file (page cache warm, best of --repeat, interleaved), and the
   ledger half alone (`verify_digest`), which is the overhead, through the web3 client and through
   the direct database reader. Target: verify <= digest + 100 ms.
3. Both targets as whole processes: `llmchain verify` against `llmchain digest` on the same file,
   and `llmchain audit MODEL --json`, interleaved, best and median of max(--repeat, 5). With default
   options these commands read the embedded ledger's database directly (llmchain.snapshot); the
   same commands with --chain-id, which selects the web3 client, are measured beside them.
Timings on a shared 2-core machine are noisy: run when `uptime` shows a low load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llmchain.audit import audit
from llmchain.chain import connect
from llmchain.digest import digest_path
from llmchain.ledger import MAX_BATCH, Ledger
from llmchain.records import CheckpointSpec, Digest, RunSpec
from llmchain.snapshot import open_snapshot
from llmchain.statedb import CHAIN_ID
from llmchain.verify import verify_digest, verify_weights

AUDIT_LIMIT_S = 5.0
VERIFY_OVERHEAD_LIMIT_S = 0.100
MIB = 1024 * 1024
MODEL = "bench/audit-gpt"


def digest(n: int, kind: int) -> Digest:
    return Digest("tensor-sha256-c16m-v1", (kind * 10**9 + n + 1).to_bytes(32, "big"))


def build_ledger(directory: Path, checkpoints: int) -> float:
    """A model with one run of ``checkpoints`` checkpoints, committed in batches; returns seconds taken."""
    start = time.perf_counter()
    with connect(ledger_dir=directory) as conn:
        ledger = Ledger(conn)
        ledger.register_model(MODEL)
        run = ledger.start_run(MODEL, RunSpec(*(digest(i, 9) for i in range(4))))
        specs = [CheckpointSpec(10 * (n + 1), digest(n, 0), digest(n, 1), digest(n, 2), 5.0 / (n + 1)) for n in range(checkpoints)]
        for first in range(0, checkpoints, MAX_BATCH):
            ledger.commit_checkpoints(run.id, specs[first : first + MAX_BATCH])
        ledger.release(MODEL, "1.0.0", specs[-1].weights_digest)
        ledger.finish_run(run.id)
    return time.perf_counter() - start


def time_audit(directory: Path, checkpoints: int) -> float:
    """Seconds for audit() on a freshly opened ledger (connection excluded; checked complete)."""
    with connect(ledger_dir=directory) as conn:
        ledger = Ledger(conn)
        start = time.perf_counter()
        report = audit(ledger, MODEL)
        elapsed = time.perf_counter() - start
    assert report.ok and len(report.runs[0].checkpoints) == checkpoints, report.checks
    return elapsed


def process_seconds(args: list[str], env: dict[str, str], expect_code: int = 0) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "llmchain", *args], env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    if done.returncode != expect_code:
        raise SystemExit(f"llmchain {' '.join(args)} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return elapsed


def write_weights(path: Path, size_mib: int) -> None:
    """A safetensors file of 8 MiB F32 tensors (random bytes), written without torch."""
    import json

    count = size_mib // 8
    header = {f"layers.{i}.weight": {"dtype": "F32", "shape": [2048, 1024], "data_offsets": [i * 8 * MIB, (i + 1) * 8 * MIB]} for i in range(count)}
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as out:
        out.write(len(raw).to_bytes(8, "little") + raw)
        for _ in range(count):
            out.write(os.urandom(8 * MIB))


def time_verify(directory: Path, weights: Path, repeat: int) -> tuple[float, float, float, float]:
    """Best-of-``repeat`` seconds of digest_path, verify_weights and its ledger half (verify_digest)
    on the same committed file, the half through the web3 client and through the direct reader. The
    ledger half is the overhead itself, timed without the noise of two half-second hashing runs."""
    with connect(ledger_dir=directory) as conn:
        ledger = Ledger(conn)
        root = digest_path(weights)  # also warms the page cache
        run = ledger.start_run(MODEL, RunSpec(*(digest(i, 8) for i in range(4))))
        ledger.commit_checkpoint(run.id, CheckpointSpec(1, Digest(root.algorithm, root.root), val_loss=1.0))
        digests, verifies, halves, direct = [], [], [], []
        for _ in range(repeat):
            start = time.perf_counter()
            digest_path(weights)
            digests.append(time.perf_counter() - start)
            start = time.perf_counter()
            result = verify_weights(ledger, weights)
            verifies.append(time.perf_counter() - start)
            assert result.ok, result.problems
            start = time.perf_counter()
            verify_digest(ledger, root, weights)
            halves.append(time.perf_counter() - start)
            start = time.perf_counter()
            with open_snapshot(directory) as snapshot:
                assert verify_digest(snapshot, root, weights) == result
            direct.append(time.perf_counter() - start)
    return min(digests), min(verifies), min(halves), min(direct)


def interleaved(commands: dict[str, list[str]], env: dict[str, str], repeat: int) -> dict[str, tuple[float, float]]:
    """(best, median) seconds of each whole ``llmchain`` command, run in turn ``repeat`` times."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, args in commands.items():
            times[name].append(process_seconds(args, env))
    return {name: (min(values), statistics.median(values)) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", type=int, default=1000)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        root = Path(tmp)
        ledger_dir = root / "ledger"
        env = {**os.environ, "LLMCHAIN_HOME": str(ledger_dir)}
        built = build_ledger(ledger_dir, args.checkpoints)
        audit_s = min(time_audit(ledger_dir, args.checkpoints) for _ in range(args.repeat))
        weights = root / "model.safetensors"
        write_weights(weights, args.size_mib)
        digest_s, verify_s, ledger_half_s, direct_half_s = time_verify(ledger_dir, weights, args.repeat)
        web3 = ["--chain-id", str(CHAIN_ID)]  # any connection option selects the web3 client
        commands = {
            "digest": ["digest", "--quiet", str(weights)],
            "verify": ["verify", "--quiet", str(weights)],
            "verify-web3": ["verify", "--quiet", str(weights), *web3],
            "audit": ["audit", MODEL, "--json"],
            "audit-web3": ["audit", MODEL, "--json", *web3],
        }
        process = interleaved(commands, env, max(args.repeat, 5))
    limit_ms = VERIFY_OVERHEAD_LIMIT_S * 1000
    print(f"built a {args.checkpoints}-checkpoint run on the embedded ledger in {built:.1f} s (batches of {MAX_BATCH})")
    print(f"{'library call':<48}{'ours':>10}{'limit':>10}{'ours/limit':>12}")
    print(f"{'audit (s)':<48}{audit_s:>10.3f}{AUDIT_LIMIT_S:>10.3f}{audit_s / AUDIT_LIMIT_S:>12.2f}")
    print(f"{f'digest {args.size_mib} MiB (s) [anchor]':<48}{digest_s:>10.3f}")
    print(f"{f'verify {args.size_mib} MiB, web3 client (s)':<48}{verify_s:>10.3f}{digest_s + VERIFY_OVERHEAD_LIMIT_S:>10.3f}{verify_s / (digest_s + VERIFY_OVERHEAD_LIMIT_S):>12.2f}")
    print(f"{'verify overhead: ledger half, web3 client (ms)':<48}{ledger_half_s * 1000:>10.1f}{limit_ms:>10.1f}{ledger_half_s * 1000 / limit_ms:>12.2f}")
    print(f"{'verify overhead: ledger half, direct reader (ms)':<48}{direct_half_s * 1000:>10.1f}{limit_ms:>10.1f}{direct_half_s * 1000 / limit_ms:>12.2f}")
    print()
    print(f"{'whole process (s)':<48}{'best':>10}{'median':>10}{'limit':>10}{'best/limit':>12}")
    digest_best, digest_median = process["digest"]
    rows = [
        ("`llmchain digest` [anchor]", "digest", None),
        ("`llmchain verify` (direct reader)", "verify", digest_best + VERIFY_OVERHEAD_LIMIT_S),
        ("`llmchain verify --chain-id` (web3 client)", "verify-web3", digest_best + VERIFY_OVERHEAD_LIMIT_S),
        ("`llmchain audit` (direct reader)", "audit", AUDIT_LIMIT_S),
        ("`llmchain audit --chain-id` (web3 client)", "audit-web3", AUDIT_LIMIT_S),
    ]
    for label, name, bound in rows:
        best, median = process[name]
        print(f"{label:<48}{best:>10.3f}{median:>10.3f}" + (f"{bound:>10.3f}{best / bound:>12.2f}" if bound else ""))
    best_ms = (process["verify"][0] - digest_best) * 1000
    median_ms = (process["verify"][1] - digest_median) * 1000
    print(f"`llmchain verify` minus `llmchain digest`: {best_ms:.0f} ms best, {median_ms:.0f} ms median (limit {limit_ms:.0f} ms)")

if __name__ == "__main__":
    main()
