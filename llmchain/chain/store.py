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

The ``logs`` table indexes every mined log by block, with its address and topics as columns, so
``eth_getLogs`` is one indexed query instead of re-reading and re-serialising every transaction of
every block in the range. Rows are inserted in the same transaction as their block: a block that
never committed leaves no logs behind.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from eth.db.backends.base import BaseDB

from llmchain.errors import LedgerBusy, LedgerError

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS logs (block_number INTEGER NOT NULL, tx_index INTEGER NOT NULL, "
    "log_index INTEGER NOT NULL, tx_hash BLOB NOT NULL, block_hash BLOB NOT NULL, address BLOB NOT NULL, "
    "topic0 BLOB, topic1 BLOB, topic2 BLOB, topic3 BLOB, data BLOB NOT NULL, "
    "PRIMARY KEY (block_number, tx_index, log_index)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS logs_by_event ON logs (topic0, topic1, block_number)",
)
_LOG_COLUMNS = (
    "block_number, tx_index, log_index, tx_hash, block_hash, address, topic0, topic1, topic2, topic3, data"
)
_TOPICS = 4  # LOG0..LOG4: at most four topics per log
_DELETED = None  # overlay marker for a key deleted during a read session

LogRow = tuple[int, int, int, bytes, bytes, bytes, tuple[bytes, ...], bytes]
"""One indexed log: block number, tx index, log index in its receipt, tx hash, block hash, address
(20 bytes), topics (0-4, 32 bytes each), data."""


@dataclass(frozen=True)
class LogQuery:
    """An ``eth_getLogs`` filter with its range resolved to block numbers.

    ``addresses``: None for any, else a list of 20-byte addresses (a log must match one);
    ``topics``: one entry per position, None for any, else the 32-byte values allowed there.
    """

    from_block: int
    to_block: int
    addresses: list[bytes] | None = None
    topics: tuple[list[bytes] | None, ...] = ()
    block_hash: bytes | None = None


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
        if not self._db.in_transaction:
            return
        try:
            self._db.execute(statement)
        except sqlite3.Error as error:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise LedgerError(
                f"could not commit to ledger database {self.location} ({error}); nothing was written"
            ) from None

    # -- metadata ---------------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create the tables (inside a write session) if this is a new database."""
        for statement in _SCHEMA:
            self._execute(statement)

    def has_schema(self) -> bool:
        """True when the database has been initialised by llmchain."""
        row = self._execute("SELECT count(*) FROM sqlite_master WHERE name IN ('kv', 'meta')")
        return row.fetchone()[0] == 2

    def get_meta(self) -> dict[str, str]:
        """All metadata entries (format version, chain id, registry address, ...)."""
        return dict(self._execute("SELECT key, value FROM meta").fetchall())

    def set_meta(self, key: str, value: str) -> None:
        """Record one metadata entry; only inside a write session, so it commits with the block."""
        self._require_write()
        self._execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- log index --------------------------------------------------------------------------

    def add_logs(self, rows: list[LogRow]) -> None:
        """Index a mined block's logs; only inside the write session that commits the block."""
        self._require_write()
        try:
            self._db.executemany(
                f"INSERT INTO logs ({_LOG_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(*row[:6], *row[6], *[None] * (_TOPICS - len(row[6])), row[7]) for row in rows],
            )
        except sqlite3.DatabaseError as error:
            raise LedgerError(_unreadable(self.location, error)) from None

    def find_logs(self, query: LogQuery) -> list[LogRow]:
        """Indexed logs in ``query``'s block range matching its addresses and topics, in chain order."""
        where = ["block_number BETWEEN ? AND ?"]
        parameters: list[object] = [query.from_block, query.to_block]
        if query.block_hash is not None:
            where.append("block_hash = ?")
            parameters.append(query.block_hash)
        if query.addresses is not None:
            where.append(f"address IN ({', '.join('?' * len(query.addresses))})")
            parameters += query.addresses
        for position, allowed in enumerate(query.topics):
            where.append(f"topic{position} IS NOT NULL")  # a filter position needs the log to have it
            if allowed is not None:
                where.append(f"topic{position} IN ({', '.join('?' * len(allowed))})")
                parameters += allowed
        rows = self._execute(
            f"SELECT {_LOG_COLUMNS} FROM logs WHERE {' AND '.join(where)} "
            "ORDER BY block_number, tx_index, log_index",
            tuple(parameters),
        ).fetchall()
        return [(*row[:6], tuple(t for t in row[6:10] if t is not None), row[10]) for row in rows]

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
