"""Parallel, bounded-memory hashing of tensor bytes in CHUNK_SIZE chunks.

Why threads: hashlib releases the GIL while it hashes a large buffer, so a thread pool over
memoryview slices of a memory-mapped file hashes on every core without copying a byte.
Why MADV_DONTNEED: the pages of a file mapping stay mapped, and count towards RSS, until the kernel
needs memory; dropping each chunk's pages right after it is hashed keeps RSS near
workers × CHUNK_SIZE however large the file is (the page cache still holds them for the next
reader). Why no MAP_POPULATE, MADV_WILLNEED/POPULATE_READ or preadv into a reused buffer: measured
on Linux 6.x with a warm cache, faults map the page cache's large folios (~1,200 faults per GiB,
~1% of the CPU time), none of those beat plain faulting, and preadv adds a copy.
Small tensors are batched into one job so a model of many tiny tensors does not pay a task per
tensor. Plain threads and a queue rather than concurrent.futures: the latter imports
logging and friends, which costs `llmchain digest` a measurable share of its startup.
"""

from __future__ import annotations

import hashlib
import itertools
import mmap
import os
import queue
import threading
from collections.abc import Callable, Generator, Sequence
from contextlib import closing
from typing import Any, NamedTuple

from llmchain.digest.leaf import CHUNK_SIZE, data_hash

# progress(done_bytes, total_bytes): called from the calling thread as chunks finish.
Progress = Callable[[int, int], None]

_PAGE = mmap.PAGESIZE
_DONTNEED = getattr(mmap, "MADV_DONTNEED", None)


class Span(NamedTuple):
    """The bytes of one tensor: ``nbytes`` bytes at ``offset`` in ``buffer``.

    A NamedTuple, as are ``TensorSource`` and ``Entry``: building a frozen dataclass costs about
    0.3 ms at import, which every `llmchain digest` run pays.
    """

    buffer: Any  # anything with the buffer protocol: mmap.mmap, bytes, a 1-D uint8 numpy array
    offset: int
    nbytes: int


# One piece of work: (span index, chunk index, buffer, start, length).
_Piece = tuple[int, int, Any, int, int]


def worker_count() -> int:
    """CPUs this process may run on (the affinity mask, not the machine's total)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def _chunk_count(nbytes: int) -> int:
    return -(-nbytes // CHUNK_SIZE)


def _jobs(spans: Sequence[Span]) -> list[list[_Piece]]:
    """Cut spans into chunks and group consecutive small chunks into jobs of about CHUNK_SIZE."""
    jobs: list[list[_Piece]] = []
    current: list[_Piece] = []
    current_bytes = 0
    for index, span in enumerate(spans):
        for chunk in range(_chunk_count(span.nbytes)):
            start = span.offset + chunk * CHUNK_SIZE
            length = min(CHUNK_SIZE, span.nbytes - chunk * CHUNK_SIZE)
            current.append((index, chunk, span.buffer, start, length))
            current_bytes += length
            if current_bytes >= CHUNK_SIZE:
                jobs.append(current)
                current, current_bytes = [], 0
    if current:
        jobs.append(current)
    return jobs


def _release(buffer: Any, start: int, length: int) -> None:
    """Drop the hashed pages of a file mapping from this process (not from the page cache)."""
    if _DONTNEED is None or not isinstance(buffer, mmap.mmap):
        return
    low = start - start % _PAGE
    high = min(len(buffer), start + length)
    buffer.madvise(_DONTNEED, low, high - low)


_Result = tuple[list[tuple[int, int, bytes]], int]


def _run(job: list[_Piece]) -> _Result:
    results = []
    total = 0
    for index, chunk, buffer, start, length in job:
        with memoryview(buffer) as whole, whole[start : start + length] as view:
            results.append((index, chunk, hashlib.sha256(view).digest()))
        _release(buffer, start, length)
        total += length
    return results, total


def _worker(
    jobs: list[list[_Piece]], next_job: itertools.count[int], out: queue.SimpleQueue[Any], stop: threading.Event
) -> None:
    """Take jobs until none are left or the caller gave up; hand back results or the error."""
    while not stop.is_set():
        number = next(next_job)  # itertools.count: atomic under the GIL
        if number >= len(jobs):
            return
        try:
            out.put(_run(jobs[number]))
        except BaseException as err:  # re-raised in the calling thread
            out.put(err)
            return


def _results(jobs: list[list[_Piece]], workers: int) -> Generator[_Result, None, None]:
    """Each job's result as it finishes; one job runs inline, more run on ``workers`` threads."""
    if len(jobs) <= 1:
        yield from map(_run, jobs)
        return
    out: queue.SimpleQueue[Any] = queue.SimpleQueue()
    stop = threading.Event()
    next_job = itertools.count()
    threads = [
        threading.Thread(target=_worker, args=(jobs, next_job, out, stop), daemon=True)
        for _ in range(min(workers, len(jobs)))
    ]
    for thread in threads:
        thread.start()
    try:
        for _ in jobs:
            item = out.get()
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def hash_spans(
    spans: Sequence[Span], *, progress: Progress | None = None, workers: int | None = None
) -> list[bytes]:
    """The data hash (``leaf.data_hash``) of every span, in order, hashed on ``workers`` threads."""
    chunk_digests = [[b""] * _chunk_count(span.nbytes) for span in spans]
    total = sum(span.nbytes for span in spans)
    done = 0
    if progress is not None:
        progress(0, total)
    # closing(): if the progress callback raises, stop and join the threads now, not at collection
    with closing(_results(_jobs(spans), workers or worker_count())) as finished:
        for results, nbytes in finished:
            for index, chunk, digest in results:
                chunk_digests[index][chunk] = digest
            done += nbytes
            if progress is not None:
                progress(done, total)
    return [data_hash(digests) for digests in chunk_digests]
