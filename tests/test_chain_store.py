"""The SQLite store behind py-evm: sessions, atomicity, the write lock and unreadable files."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from llmchain.chain.store import LedgerStore, LogQuery
from llmchain.errors import LedgerBusy, LedgerError


def _store(path: Path, busy_timeout: float = 0.2) -> LedgerStore:
    store = LedgerStore(path, busy_timeout=busy_timeout)
    with store.write():
        store.ensure_schema()
    return store


def test_a_committed_write_is_visible_to_another_connection(tmp_path: Path) -> None:
    writer, reader = _store(tmp_path / "db"), _store(tmp_path / "db")
    with writer.write():
        writer[b"k"] = b"v"
        writer.set_meta("format_version", "1")
    with reader.read():
        assert reader[b"k"] == b"v"
        assert reader.get_meta() == {"format_version": "1"}


def test_an_exception_rolls_back_every_write_of_the_session(tmp_path: Path) -> None:
    store = _store(tmp_path / "db")
    with pytest.raises(RuntimeError), store.write():
        store[b"k"] = b"v"
        raise RuntimeError("mid-block failure")
    with store.read():
        assert b"k" not in store


def test_writes_during_a_read_session_are_scratch_and_vanish(tmp_path: Path) -> None:
    store = _store(tmp_path / "db")
    with store.write():
        store[b"kept"] = b"1"
    with store.read():
        store[b"scratch"] = b"2"
        del store[b"kept"]
        assert store[b"scratch"] == b"2" and b"kept" not in store
    with store.read():
        assert b"scratch" not in store and store[b"kept"] == b"1"


def test_writing_outside_a_session_is_refused(tmp_path: Path) -> None:
    store = _store(tmp_path / "db")
    with pytest.raises(LedgerError, match="outside a write session"):
        store[b"k"] = b"v"
    with store.read(), pytest.raises(LedgerError, match="inside a read session"), store.write():
        pass


def test_a_second_writer_waits_then_gets_ledger_busy_while_readers_go_on(tmp_path: Path) -> None:
    first, second = _store(tmp_path / "db"), _store(tmp_path / "db", busy_timeout=0.3)
    with first.write():
        first[b"k"] = b"uncommitted"
        started = time.monotonic()
        with pytest.raises(LedgerBusy, match="^ledger is busy: another process"), second.write():
            pass
        assert time.monotonic() - started >= 0.25
        with second.read():
            assert b"k" not in second  # readers see the last commit, without waiting
    with second.write():
        second[b"k"] = b"after"  # the lock is free again once the first writer commits


def test_a_file_that_is_not_a_database_gives_one_line(tmp_path: Path) -> None:
    path = tmp_path / "db"
    path.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(LedgerError) as caught:
        LedgerStore(path, busy_timeout=0.1)
    assert "is unreadable" in str(caught.value) and "\n" not in str(caught.value)


def test_log_index_rows_commit_with_their_session_and_filter_by_topic_position(tmp_path: Path) -> None:
    store = _store(tmp_path / "db")
    a, b, t1, t2 = b"\xaa" * 20, b"\xbb" * 20, b"\x01" * 32, b"\x02" * 32
    rows = [
        (5, 0, 0, b"\x10" * 32, b"\x20" * 32, a, (t1, t2), b"one"),
        (5, 0, 1, b"\x10" * 32, b"\x20" * 32, b, (t1,), b""),
        (7, 1, 0, b"\x11" * 32, b"\x21" * 32, a, (t2, t1, t1, t1), b"four"),
    ]
    with pytest.raises(LedgerError, match="outside a write session"), store.read():
        store.add_logs(rows)
    with pytest.raises(RuntimeError), store.write():
        store.add_logs(rows)
        raise RuntimeError("block never committed")
    with store.read():
        assert store.find_logs(LogQuery(0, 10)) == []
    with store.write():
        store.add_logs(list(reversed(rows)))
    with store.read():
        assert store.find_logs(LogQuery(0, 10)) == rows  # chain order, whatever the insertion order
        assert store.find_logs(LogQuery(6, 7)) == rows[2:]
        assert store.find_logs(LogQuery(0, 10, addresses=[b])) == rows[1:2]
        assert store.find_logs(LogQuery(0, 10, topics=([t1],))) == rows[:2]
        assert store.find_logs(LogQuery(0, 10, topics=(None, None))) == [rows[0], rows[2]]
        assert store.find_logs(LogQuery(0, 10, topics=([t1, t2], [t1]))) == rows[2:]
        assert store.find_logs(LogQuery(0, 10, block_hash=b"\x21" * 32)) == rows[2:]
