"""The key-value store behind py-evm for the embedded ledger: one SQLite file.

Why SQLite (stdlib) rather than a bespoke file format:
- a write transaction (``BEGIN IMMEDIATE``) is the inter-process write lock, with a bounded wait
  (the busy timeout), so two writers never interleave and the second one gets ``LedgerBusy``;
- WAL journaling lets readers in other processes see the last committed block while a writer works;
- one transaction per block means a process killed mid-write leaves nothing behind: the next open
  sees the last commit (SQLite rolls the unfinished transaction back). With ``synchronous=NORMAL``
  in WAL mode a commit survives the process being killed; a power cut may lose the last few blocks
  but never corrupts the file.

py-evm writes content-addressed trie nodes even while it only *executes* (an ``eth_call``). Those
writes land in a per-session overlay that is dropped when the read session ends, so readers never
need the write lock.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from eth.db.backends.base import BaseDB

from llmchain.errors import LedgerBusy, LedgerError

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
_DELETED = None  # overlay marker for a key deleted during a read session


class LedgerStore(BaseDB):
    """py-evm's ``DatabaseAPI`` over one SQLite database, with read and write sessions.

    Every access happens inside a session: ``write()`` holds the database's write lock and commits
    (or rolls back) as one transaction; ``read()`` sees one consistent committed snapshot.
    """

    def __init__(self, path: Path | str, *, busy_timeout: float) -> None:
        self.location = str(path)
        self._busy_timeout = busy_timeout
        try:
            self._db = sqlite3.connect(
                self.location, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        except sqlite3.Error as error:
            raise LedgerError(_unreadable(self.location, error)) from None
        self._overlay: dict[bytes, bytes | None] | None = None
        self._writing = False
        self._depth = 0

    # -- sessions ---------------------------------------------------------------------------

    @contextmanager
    def write(self) -> Iterator[None]:
        """Hold the write lock for the block; commit on success, roll back on any exception."""
        if self._depth:
            if not self._writing:
                raise LedgerError("internal error: a write was attempted inside a read session")
            with self._nested():
                yield
            return
        self._begin("BEGIN IMMEDIATE")
        self._writing = True
        try:
            with self._nested():
                yield
        except BaseException:
            self._end("ROLLBACK")
            raise
        else:
            self._end("COMMIT")

    @contextmanager
    def read(self) -> Iterator[None]:
        """See one committed snapshot; writes made meanwhile (execution scratch) are dropped."""
        if self._depth:
            with self._nested():
                yield
            return
        self._begin("BEGIN")
        self._overlay = {}
        try:
            with self._nested():
                yield
        finally:
            self._end("COMMIT")

    @property
    def writing(self) -> bool:
        """True inside a write session."""
        return self._writing

    def close(self) -> None:
        """Close the database (the WAL is checkpointed when the last connection closes)."""
        self._db.close()

    @contextmanager
    def _nested(self) -> Iterator[None]:
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    def _begin(self, statement: str) -> None:
        try:
            self._db.execute(statement)
        except sqlite3.OperationalError as error:
            if "locked" in str(error) or "busy" in str(error):
                raise LedgerBusy(
                    f"ledger is busy: another process has been writing to {self.location} for more "
                    f"than {self._busy_timeout:g} s; retry when it has finished"
                ) from None
            raise LedgerError(_unreadable(self.location, error)) from None
        except sqlite3.DatabaseError as error:
            raise LedgerError(_unreadable(self.location, error)) from None

    def _end(self, statement: str) -> None:
        self._writing = False
        self._overlay = None
        if self._db.in_transaction:
            self._db.execute(statement)

    # -- metadata ---------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create the tables (inside a write session) if this is a new database."""
        for statement in _SCHEMA:
            self._execute(statement)

    def has_schema(self) -> bool:
        """True when the database has been initialised by llmchain."""
        row = self._execute("SELECT count(*) FROM sqlite_master WHERE name IN ('kv', 'meta')")
        return row.fetchone()[0] == len(_SCHEMA)

    def get_meta(self) -> dict[str, str]:
        """All metadata entries (format version, chain id, registry address, ...)."""
        return dict(self._execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, key: str, value: str) -> None:
        """Record one metadata entry; only inside a write session, so it commits with the block."""
        self._require_write()
        self._execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- py-evm DatabaseAPI -----------------------------------------------------------------

    def __getitem__(self, key: bytes) -> bytes:
        if self._overlay is not None and key in self._overlay:
            value = self._overlay[key]
            if value is _DELETED:
                raise KeyError(key)
            return value
        row = self._execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return bytes(row[0])

    def __setitem__(self, key: bytes, value: bytes) -> None:
        if self._overlay is not None:
            self._overlay[key] = value
            return
        self._require_write()
        self._execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, value))

    def __delitem__(self, key: bytes) -> None:
        if key not in self:
            raise KeyError(key)
        if self._overlay is not None:
            self._overlay[key] = _DELETED
            return
        self._require_write()
        self._execute("DELETE FROM kv WHERE key = ?", (key,))

    def _exists(self, key: bytes) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    def _require_write(self) -> None:
        if not self._writing:
            raise LedgerError("internal error: the ledger was written outside a write session")

    def _execute(self, statement: str, parameters: tuple[object, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._db.execute(statement, parameters)
        except sqlite3.DatabaseError as error:
            raise LedgerError(_unreadable(self.location, error)) from None


def _unreadable(location: str, error: sqlite3.Error) -> str:
    return (
        f"ledger database {location} is unreadable ({error}); move it away or choose another "
        "ledger directory with --ledger / LLMCHAIN_HOME"
    )
