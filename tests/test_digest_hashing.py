"""Chunked parallel hashing: chunk boundaries, batching, progress, errors, bounded memory."""

from __future__ import annotations

import hashlib
import mmap
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from digest_helpers import write_raw
from llmchain.digest.hashing import Span, hash_spans
from llmchain.digest.leaf import CHUNK_SIZE

ROOT = Path(__file__).resolve().parent.parent


def expected(data: bytes) -> bytes:
    chunks = [data[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)]
    return hashlib.sha256(b"".join(hashlib.sha256(c).digest() for c in chunks)).digest()


def test_chunk_boundaries_and_many_small_spans_in_any_worker_count() -> None:
    big = bytes(range(256)) * (CHUNK_SIZE * 2 // 256) + b"tail"
    pieces = [b"", b"x", big, b"y" * 5000, bytes(CHUNK_SIZE)] + [bytes([i % 256]) * i for i in range(300)]
    buffer = b"".join(pieces)
    spans, offset = [], 0
    for piece in pieces:
        spans.append(Span(buffer, offset, len(piece)))
        offset += len(piece)
    want = [expected(p) for p in pieces]
    for workers in (1, 2, 3):
        assert hash_spans(spans, workers=workers) == want


def test_progress_reports_every_byte_in_order() -> None:
    data = bytes(CHUNK_SIZE * 3 + 17)
    calls: list[tuple[int, int]] = []
    hash_spans([Span(data, 0, len(data))], progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, len(data)) and calls[-1] == (len(data), len(data))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)
    assert len(calls) == 5


def test_a_failing_chunk_raises_in_the_caller(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(3 * CHUNK_SIZE))
    with open(path, "rb") as handle:
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    mapped.close()  # hashing a closed map fails in a worker thread
    with pytest.raises(ValueError):
        hash_spans([Span(mapped, 0, CHUNK_SIZE), Span(mapped, CHUNK_SIZE, 2 * CHUNK_SIZE)], workers=2)


def test_peak_rss_stays_far_below_the_file_size(tmp_path: Path) -> None:
    """A 384 MiB file hashes with RSS near the interpreter's own: pages are dropped once hashed."""
    size = 384 * 1024 * 1024
    header = {"w": {"dtype": "U8", "shape": [size], "data_offsets": [0, size]}}
    path = write_raw(tmp_path / "big.safetensors", header, b"")
    with open(path, "ab") as handle:
        handle.truncate(path.stat().st_size + size)  # sparse: cheap to write, still all read
    code = (
        "import resource, sys; from llmchain.digest import digest_path; "
        f"digest_path({str(path)!r}); "
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)"
    )
    baseline = "import resource; import llmchain.digest.model_digest; print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)"
    peak = int(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout)
    base = int(subprocess.run([sys.executable, "-c", baseline], capture_output=True, text=True, check=True, cwd=ROOT).stdout)
    assert peak - base < 4 * CHUNK_SIZE // (1024 * 1024), (peak, base)


def test_a_failing_progress_callback_stops_the_workers() -> None:
    data = bytes(CHUNK_SIZE * 8)

    def interrupt(done: int, total: int) -> None:
        if done:
            raise KeyboardInterrupt

    before = threading.active_count()
    with pytest.raises(KeyboardInterrupt):
        hash_spans([Span(data, 0, len(data))], progress=interrupt, workers=2)
    assert threading.active_count() == before
