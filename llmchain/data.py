"""Training data: the corpus, the byte tokenizer, the train/validation split and the dataset digest.

The default corpus is the running interpreter's standard library source (about 12 MB of Python
on every machine), so ``llmchain train`` needs no download. ``--data PATH`` takes a text file, a
directory of text files or JSONL with a ``text`` field.

The dataset digest is what the ledger records for "trained on what": SHA-256 over a canonical JSON
of the tokenizer spec, the split rule and the sorted (relative path, SHA-256 of content) list. It
changes when any document, the tokenizer or the split changes, and does not depend on the order
the files were found in.
"""

from __future__ import annotations

import hashlib
import json
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from llmchain.errors import BadInput

DATASET_DIGEST_ALGORITHM = "dataset-sha256-v1"
# Directories of the standard library left out of the default corpus: tests and installed packages.
_STDLIB_SKIP = {"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test"}
_VAL_EVERY = 10  # every 10th chunk of the token stream goes to validation
_MAX_CHUNK = 65536  # chunk size in tokens for large corpora (smaller corpora use a tenth of the stream)


@dataclass(frozen=True)
class ByteTokenizer:
    """UTF-8 bytes as tokens (vocab 256); byte 0 (never in text) separates documents."""

    vocab_size: int = 256
    eot: int = 0

    def spec(self) -> dict[str, object]:
        return {"name": "utf8-bytes", "vocab_size": self.vocab_size, "eot": self.eot}

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, tokens: list[int]) -> str:
        return bytes(t for t in tokens if t != self.eot).decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Document:
    path: str  # relative to the corpus root (JSONL: "file.jsonl:LINE")
    content: bytes  # UTF-8 text


@dataclass(frozen=True)
class Dataset:
    """A tokenized corpus split into train and validation streams (uint8 token arrays)."""

    source: str  # what was loaded, for messages ("stdlib:/usr/lib/python3.11" or a path)
    train: np.ndarray  # (N_train,) uint8
    val: np.ndarray  # (N_val,) uint8
    documents: int
    skipped_binary: int  # files in a --data directory that were not UTF-8 text
    digest: bytes  # 32-byte SHA-256, algorithm DATASET_DIGEST_ALGORITHM
    spec: dict[str, Any]  # tokenizer + split rule, stored with the run

    @property
    def digest_hex(self) -> str:
        return self.digest.hex()


def stdlib_root() -> Path:
    """Where the running interpreter's standard library lives."""
    return Path(sysconfig.get_paths()["stdlib"])


def load_dataset(data: Path | None = None, *, tokenizer: ByteTokenizer | None = None) -> Dataset:
    """Load, tokenize, split and digest a corpus; ``None`` means the standard library's source.

    Raises BadInput for a missing, unreadable, empty or binary corpus.
    """
    tokenizer = tokenizer or ByteTokenizer()
    if data is None:
        root = stdlib_root()
        docs, skipped = _stdlib_documents(root), 0
        source = f"stdlib:{root}"
    else:
        docs, skipped = _read_documents(Path(data))
        source = str(data)
    if not docs or not any(d.content for d in docs):
        raise BadInput(f"corpus {source} has no text; point --data at text files, a directory or JSONL")
    tokens = _concatenate(docs, tokenizer)
    train, val, split = _split(tokens)
    spec = {"tokenizer": tokenizer.spec(), "split": split}
    return Dataset(
        source=source,
        train=train,
        val=val,
        documents=len(docs),
        skipped_binary=skipped,
        digest=dataset_digest(docs, spec),
        spec=spec,
    )


def dataset_digest(docs: list[Document], spec: dict[str, Any]) -> bytes:
    """SHA-256 of canonical JSON: spec + sorted (relative path, content SHA-256) pairs."""
    entries = sorted((d.path, hashlib.sha256(d.content).hexdigest()) for d in docs)
    canonical = json.dumps(
        {"algorithm": DATASET_DIGEST_ALGORITHM, "spec": spec, "documents": entries},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).digest()


def _stdlib_documents(root: Path) -> list[Document]:
    docs = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _STDLIB_SKIP and not d.startswith("."))
        for name in sorted(filenames):
            if name.endswith(".py"):
                path = Path(dirpath, name)
                content = _read(path)
                if _is_text(content):
                    docs.append(Document(path.relative_to(root).as_posix(), content))
    return docs


def _read_documents(data: Path) -> tuple[list[Document], int]:
    if not data.exists():
        raise BadInput(f"--data {data} does not exist; pass a text file, a directory or JSONL")
    if data.is_dir():
        return _directory_documents(data)
    content = _read(data)
    if data.suffix == ".jsonl":
        return _jsonl_documents(data, content), 0
    if not _is_text(content):
        raise BadInput(f"--data {data} is not UTF-8 text (binary file); pass text, a directory or JSONL")
    return [Document(data.name, content)], 0


def _directory_documents(root: Path) -> tuple[list[Document], int]:
    docs, skipped = [], 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath, name)
            content = _read(path)
            if _is_text(content):
                docs.append(Document(path.relative_to(root).as_posix(), content))
            else:
                skipped += 1
    if not docs and skipped:
        raise BadInput(f"--data {root} holds only binary files ({skipped}); pass a directory of text files")
    return docs, skipped


def _jsonl_documents(path: Path, content: bytes) -> list[Document]:
    docs = []
    for lineno, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            text = json.loads(line)["text"]
        except (ValueError, KeyError, TypeError) as err:
            raise BadInput(f"--data {path}:{lineno} is not a JSON object with a 'text' field ({err})") from err
        if not isinstance(text, str):
            raise BadInput(f"--data {path}:{lineno}: 'text' must be a string")
        docs.append(Document(f"{path.name}:{lineno}", text.encode("utf-8")))
    return docs


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise BadInput(f"cannot read {path}: {err.strerror}; check the path and its permissions") from err


def _is_text(content: bytes) -> bool:
    if b"\x00" in content:
        return False
    try:
        content.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _concatenate(docs: list[Document], tokenizer: ByteTokenizer) -> np.ndarray:
    """One uint8 stream: documents in path order, each followed by the end-of-text byte."""
    sep = bytes([tokenizer.eot])
    ordered = sorted(docs, key=lambda d: d.path)
    return np.frombuffer(sep.join(d.content for d in ordered) + sep, dtype=np.uint8)


def _split(tokens: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, object]]:
    """Chunk the stream and send every 10th chunk to validation (spreads validation over the corpus)."""
    chunk = max(1, min(_MAX_CHUNK, len(tokens) // _VAL_EVERY))
    n_chunks = -(-len(tokens) // chunk)
    is_val = (np.arange(n_chunks) % _VAL_EVERY) == _VAL_EVERY - 1
    chunks = [tokens[i * chunk : (i + 1) * chunk] for i in range(n_chunks)]
    train = np.concatenate([c for c, v in zip(chunks, is_val) if not v])
    val_parts = [c for c, v in zip(chunks, is_val) if v]
    val = np.concatenate(val_parts) if val_parts else np.zeros(0, dtype=np.uint8)
    return train, val, {"rule": "chunks", "chunk_tokens": chunk, "val_every": _VAL_EVERY}


# --- data order -------------------------------------------------------------------------------

SAMPLER = "numpy-pcg64-seedseq-v1"  # how batch offsets are drawn; recorded with every run
SEGMENT_FORMAT = "llmchain.data-segment.v1"
SEGMENT_DIGEST_ALGORITHM = "data-segment-sha256-v1"


def batch_offsets(seed: int, step: int, rows: int, batch_size: int, n_tokens: int, block_size: int) -> np.ndarray:
    """Start offsets (rows, batch_size) int64 into the train stream for one optimizer step.

    A pure function of (seed, step), so resuming needs no sampler state and rank 0 of a
    distributed run knows every rank's batch (row r*accum + k is rank r's k-th micro-batch).
    """
    if n_tokens <= block_size:
        raise BadInput(f"block size {block_size} does not fit the {n_tokens}-token data; use a smaller --block-size or more data")
    rng = np.random.default_rng([seed, step])
    return rng.integers(0, n_tokens - block_size, size=(rows, batch_size), dtype=np.int64)


@dataclass(frozen=True)
class Segment:
    """The exact data order of the optimizer steps [start_step, end_step): what a replay re-runs."""

    start_step: int
    end_step: int
    block_size: int
    dataset_digest: bytes
    offsets: np.ndarray  # (end_step - start_step, rows, batch_size) int64 offsets into the train stream

    def to_json(self) -> dict[str, object]:
        return {
            "format": SEGMENT_FORMAT,
            "start_step": self.start_step,
            "end_step": self.end_step,
            "block_size": self.block_size,
            "dataset_digest": self.dataset_digest.hex(),
            "shape": list(self.offsets.shape),
            "offsets": self.offsets.reshape(-1).tolist(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Segment:
        if data.get("format") != SEGMENT_FORMAT:
            raise ValueError(f"not a {SEGMENT_FORMAT} record")
        shape = tuple(int(n) for n in data["shape"])
        offsets = np.asarray(data["offsets"], dtype=np.int64).reshape(shape)
        return cls(
            start_step=int(data["start_step"]),
            end_step=int(data["end_step"]),
            block_size=int(data["block_size"]),
            dataset_digest=bytes.fromhex(str(data["dataset_digest"])),
            offsets=offsets,
        )

    def digest(self) -> bytes:
        """SHA-256 of the canonical JSON (sorted keys, no spaces): the ledger's data digest."""
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).digest()
