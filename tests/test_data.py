"""Corpus loading, the byte tokenizer, the split, the dataset digest and the data order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llmchain.data import ByteTokenizer, Segment, batch_offsets, load_dataset
from llmchain.errors import BadInput

TEXT = "def f(x):\n    return x + 1\n" * 40


def _corpus(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_tokenizer_round_trip_and_spec() -> None:
    tok = ByteTokenizer()
    assert tok.decode(tok.encode("héllo")) == "héllo"
    assert tok.spec() == {"name": "utf8-bytes", "vocab_size": 256, "eot": 0}


def test_directory_corpus_split_covers_every_token(tmp_path: Path) -> None:
    ds = load_dataset(_corpus(tmp_path / "c", {"a.py": TEXT, "sub/b.txt": TEXT.upper()}))
    total = 2 * len(TEXT) + 2  # each document ends with the end-of-text byte
    assert ds.documents == 2 and len(ds.train) + len(ds.val) == total
    assert 0.05 < len(ds.val) / total < 0.15
    assert ds.train.dtype == np.uint8 and (ds.train == 0).sum() + (ds.val == 0).sum() == 2


def test_digest_ignores_discovery_order_but_not_content_or_names(tmp_path: Path) -> None:
    a = load_dataset(_corpus(tmp_path / "a", {"x.py": TEXT, "y.py": TEXT + "#"}))
    b = load_dataset(_corpus(tmp_path / "b", {"y.py": TEXT + "#", "x.py": TEXT}))
    assert a.digest == b.digest and len(a.digest) == 32
    c = load_dataset(_corpus(tmp_path / "c", {"x.py": TEXT, "y.py": TEXT + "!"}))
    d = load_dataset(_corpus(tmp_path / "d", {"x.py": TEXT, "z.py": TEXT + "#"}))
    assert len({a.digest, c.digest, d.digest}) == 3


def test_single_file_and_jsonl(tmp_path: Path) -> None:
    single = load_dataset(_corpus(tmp_path, {"one.txt": TEXT}) / "one.txt")
    assert single.documents == 1
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("\n".join(json.dumps({"text": TEXT, "id": i}) for i in range(3)) + "\n\n")
    ds = load_dataset(jsonl)
    assert ds.documents == 3 and len(ds.train) + len(ds.val) == 3 * (len(TEXT) + 1)


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"blob.bin": b"\x00\x01\x02\xff"}, "binary"),
        ({"empty.txt": b""}, "has no text"),
        ({"bad.jsonl": b'{"text": "ok"}\n{"body": 1}\n'}, "bad.jsonl:2"),
        ({"latin1.txt": "caf\xe9".encode("latin-1")}, "binary"),
    ],
)
def test_bad_single_files(tmp_path: Path, files: dict[str, bytes], message: str) -> None:
    (name, content), = files.items()
    (tmp_path / name).write_bytes(content)
    with pytest.raises(BadInput, match=message):
        load_dataset(tmp_path / name)


def test_directory_skips_binary_files_but_not_all(tmp_path: Path) -> None:
    root = _corpus(tmp_path / "c", {"a.py": TEXT})
    (root / "img.png").write_bytes(b"\x89PNG\x00\x00")
    assert load_dataset(root).skipped_binary == 1
    only = tmp_path / "bin"
    only.mkdir()
    (only / "x.bin").write_bytes(b"\x00" * 10)
    with pytest.raises(BadInput, match="only binary"):
        load_dataset(only)


def test_missing_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        load_dataset(tmp_path / "nope")
    root = _corpus(tmp_path / "c", {"a.py": TEXT})
    (root / "dangling.py").symlink_to(tmp_path / "gone.py")  # listed, but cannot be read (even as root)
    with pytest.raises(BadInput, match="cannot read .*dangling.py"):
        load_dataset(root)


def test_default_corpus_is_the_stdlib_without_tests() -> None:
    ds = load_dataset()
    assert ds.source.startswith("stdlib:") and ds.documents > 300
    assert len(ds.train) > 5_000_000 and len(ds.val) > 500_000
    assert load_dataset().digest == ds.digest


def test_batch_offsets_are_a_pure_function_of_seed_and_step() -> None:
    a = batch_offsets(1, 5, 2, 4, 1000, 16)
    assert a.shape == (2, 4) and a.dtype == np.int64
    assert np.array_equal(a, batch_offsets(1, 5, 2, 4, 1000, 16))
    assert not np.array_equal(a, batch_offsets(1, 6, 2, 4, 1000, 16))
    assert not np.array_equal(a, batch_offsets(2, 5, 2, 4, 1000, 16))
    many = batch_offsets(0, 0, 100, 100, 40, 16)
    assert many.min() >= 0 and many.max() <= 40 - 16 - 1
    with pytest.raises(BadInput, match="does not fit"):
        batch_offsets(0, 0, 1, 1, 16, 16)


def test_segment_round_trip_and_digest_binds_order() -> None:
    offsets = np.stack([batch_offsets(3, s, 1, 4, 500, 8) for s in range(4)])
    seg = Segment(10, 14, 8, b"\x01" * 32, offsets)
    back = Segment.from_json(json.loads(json.dumps(seg.to_json())))
    assert back.digest() == seg.digest() and np.array_equal(back.offsets, offsets)
    swapped = Segment(10, 14, 8, b"\x01" * 32, offsets[[1, 0, 2, 3]])
    assert swapped.digest() != seg.digest()
    assert Segment(11, 15, 8, b"\x01" * 32, offsets).digest() != seg.digest()
    with pytest.raises(ValueError, match="not a"):
        Segment.from_json({"format": "other"})
