#!/usr/bin/env python3
"""Benchmark `llmchain digest` against sha256sum, model-signing and the hardware limit.

Generates a 1 GiB safetensors file (128 F32 tensors of 8 MiB plus 128 small ones) in a temporary
directory, warms the page cache, then measures in one run, best of --repeat, the wall time and peak
RSS of whole processes: `llmchain digest`, `sha256sum`, model-signing (sha256 and blake3 modes),
plus `digest_path` in-process (the same work without interpreter startup and imports).
The limit is cores x single-core hashlib SHA-256 speed, measured in the same run; CPU time is
also shown against the one-core limit, as it suffers less from other load on the machine. Also times
verifying one tensor by proof (re-hash that tensor only, check the Merkle path).

    python3 dev.py run python scripts/bench_digest.py [--size-mib 1024] [--repeat 3]

model-signing and blake3 are benchmark-only: python3 dev.py run pip install -r requirements-bench.txt
Timings on a shared 2-core machine are noisy: run when `uptime` shows a low load.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from llmchain.digest import ProofDocument, digest_path, digest_tensor
from llmchain.digest.hashing import worker_count

MIB = 1024 * 1024
BIG = 8 * MIB  # bytes per large tensor: F32 [2048, 1024]


def write_model(path: Path, size_mib: int) -> None:
    """A safetensors file of random tensors, written without torch or numpy."""
    entries: list[tuple[str, list[int], int]] = []
    for layer in range(size_mib * MIB // BIG):
        entries.append((f"layers.{layer}.weight", [2048, 1024], BIG))
        entries.append((f"layers.{layer}.bias", [1024], 4096))
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape, nbytes in entries:
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as out:
        out.write(len(raw).to_bytes(8, "little") + raw)
        for _, _, nbytes in entries:
            out.write(os.urandom(nbytes))


def run(cmd: list[str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds, peak RSS MiB) of one process.

    CPU time and peak RSS come from /usr/bin/time: a child forked from this (large) process would
    inherit its RSS high-water mark, so wait4's ru_maxrss here would overstate it.
    """
    with tempfile.NamedTemporaryFile("r") as stats:
        timer = ["/usr/bin/time", "-q", "-f", "%U %S %M", "-o", stats.name]
        start = time.perf_counter()
        done = subprocess.run([*timer, *cmd], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wall = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{cmd[0]} failed: {done.stderr.decode()[-2000:]}")
        user, system, kib = stats.read().split()
    return wall, float(user) + float(system), int(kib) / 1024


def best(cmd: list[str], repeat: int) -> tuple[float, float, float]:
    """Fastest wall time, least CPU time and largest peak RSS over ``repeat`` runs."""
    runs = [run(cmd) for _ in range(repeat)]
    return min(r[0] for r in runs), min(r[1] for r in runs), max(r[2] for r in runs)


def single_core_sha256(repeat: int) -> float:
    """Bytes per second of one hashlib SHA-256 over a 256 MiB in-memory buffer.

    Timed in thread CPU time, so other processes on the machine do not make the limit look slower.
    """
    buffer = os.urandom(256 * MIB)
    times = []
    for _ in range(repeat):
        start = time.thread_time()
        hashlib.sha256(buffer).digest()
        times.append(time.thread_time() - start)
    return len(buffer) / min(times)


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def llmchain_cmd() -> list[str]:
    script = Path(sys.executable).with_name("llmchain")
    return [str(script)] if script.exists() else [sys.executable, "-m", "llmchain"]


def model_signing_cmd(path: Path, algorithm: str) -> list[str]:
    code = (
        "from model_signing import hashing; "
        f"hashing.Config().use_file_serialization(hashing_algorithm={algorithm!r}).hash({str(path)!r})"
    )
    return [sys.executable, "-c", code]


def proof_ms(path: Path, repeat: int) -> float:
    """Milliseconds to verify one 8 MiB tensor of the model by proof (re-hash it, check the path)."""
    document = ProofDocument.make(digest_path(path), "layers.7.weight")
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        ok = digest_tensor(path, document.leaf.name) == document.leaf and document.verify()
        times.append(time.perf_counter() - start)
        if not ok:
            raise SystemExit("the proof did not verify: the digest code is broken")
    return 1000 * min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not Path("/usr/bin/time").exists():
        raise SystemExit("needs GNU time for CPU time and peak RSS: apt-get install time")
    cores = worker_count()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average {load} on {cores} cores: wall times are noisy when it is high; CPU times less so")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        write_model(path, args.size_mib)
        size = path.stat().st_size
        limit = size / (cores * single_core_sha256(args.repeat))
        tools: dict[str, list[str]] = {"llmchain digest": [*llmchain_cmd(), "digest", "--quiet", str(path)]}
        if shutil.which("sha256sum"):
            tools["sha256sum"] = ["sha256sum", str(path)]
        if importlib.util.find_spec("model_signing") is None:
            print("model-signing not installed: python3 dev.py run pip install -r requirements-bench.txt")
        else:
            tools["model-signing sha256"] = model_signing_cmd(path, "sha256")
            tools["model-signing blake3"] = model_signing_cmd(path, "blake3")
        run(["cat", str(path)])  # warm the page cache so every tool reads from memory
        print(f"file {size / MIB:.0f} MiB; limit = {cores} cores x hashlib SHA-256 = {limit:.3f} s wall, "
              f"{limit * cores:.3f} s CPU")
        print(f"{'tool':<24}{'wall s':>8}{'x limit':>9}{'CPU s':>8}{'x CPU limit':>13}{'peak RSS MiB':>14}")
        for name, cmd in tools.items():
            wall, cpu, rss = best(cmd, args.repeat)
            print(f"{name:<24}{wall:>8.3f}{wall / limit:>9.2f}{cpu:>8.2f}{cpu / (limit * cores):>13.2f}{rss:>14.0f}")
        in_process = min(_timed(lambda: digest_path(path)) for _ in range(args.repeat))
        print(f"{'digest_path, in-process':<24}{in_process:>8.3f}{in_process / limit:>9.2f}")
        tiny = Path(tmp) / "tiny.safetensors"
        write_model(tiny, 8)
        print(f"{'llmchain, 8 MiB file':<24}{best([*llmchain_cmd(), 'digest', '-q', str(tiny)], args.repeat)[0]:>8.3f}"
              "   (interpreter start, imports, exit)")
        print(f"verify one 8 MiB tensor by proof: {proof_ms(path, 5):.1f} ms (target <= 50 ms)")
        print("target: llmchain digest <= 1.25 x limit")


if __name__ == "__main__":
    main()
