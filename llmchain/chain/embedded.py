"""The embedded ledger: eth-tester's py-evm chain over the persistent store, shared between processes.

eth-tester keeps its chain in memory and scans blocks to find a transaction. Here:
- the chain lives in a ``LedgerStore`` (SQLite) and is rebuilt from the stored canonical head, never
  replayed from genesis, so opening costs milliseconds;
- every JSON-RPC request runs in a store session: writes (``eth_sendTransaction``...) hold the write
  lock from "open at head" through "apply, mine" to "commit", one block per transaction; reads see
  the last committed block. Before each request the chain object is rebuilt if another process
  moved the head, so no process keeps a stale view;
- a transaction whose execution fails is not mined: its session rolls back and the revert data is
  returned as a JSON-RPC error (code 3 + data), exactly as a real node answers ``eth_estimateGas``,
  so web3 raises ``ContractCustomError`` & co. with the raw data for our decoder;
- transactions and receipts are found through py-evm's transaction index, not a backwards scan,
  which keeps receipts fast at any height;
- every mined block's logs go into the store's log index in the block's own transaction, and
  ``eth_getLogs`` is answered from it by one indexed query (eth-tester would re-read, re-serialise
  and re-validate every transaction of every block in the range). Log objects are the ones
  eth-tester returns, including its ``logIndex`` counted within the transaction's receipt (as in
  the receipts this chain serves), not within the block as most nodes count;
- each write starts a fresh pending block stamped with the current time (eth-tester would reuse
  the one made after the previous block, however long ago). Block timestamps must rise by at least
  a second (an EVM rule), so a burst of more than one commit per second runs ahead of the clock by
  up to the burst's length.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from eth.abc import VirtualMachineAPI
from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.db.schema import SchemaV1
from eth.exceptions import BlockNotFound as EVMBlockNotFound
from eth.exceptions import CanonicalHeadNotFound, HeaderNotFound, StateRootNotFound
from eth.exceptions import Revert as EVMRevert
from eth.exceptions import TransactionNotFound as EVMTransactionNotFound
from eth.vm.forks import PragueVM
from eth.vm.interrupt import EVMMissingData
from eth.vm.spoof import SpoofTransaction
from eth_tester import EthereumTester
from eth_tester.backends.pyevm.main import (
    ZERO_ADDRESS,
    PyEVMBackend,
    generate_genesis_state_for_keys,
    get_default_account_keys,
    get_default_genesis_params,
)
from eth_tester.backends.pyevm.serializers import serialize_transaction, serialize_transaction_receipt
from eth_tester.exceptions import BlockNotFound, TransactionNotFound
from eth_tester.exceptions import ValidationError as TesterValidationError
from eth_typing import BlockNumber, ChecksumAddress
from eth_utils import ValidationError as EVMValidationError
from eth_utils import is_address, to_bytes, to_canonical_address, to_checksum_address, to_hex
from trie.exceptions import MissingTrieNode
from web3 import EthereumTesterProvider
from web3.types import RPCEndpoint, RPCResponse

from llmchain.chain.store import LedgerStore, LogQuery, LogRow
from llmchain.errors import LedgerError
from llmchain.statedb import CHAIN_ID, damaged

GAS_CAP = 30_000_000
"""Gas limit given to our own transactions: failures are never mined here, so a generous cap costs
nothing and saves the binary-search gas estimate (several extra executions per transaction)."""

_HEAD_KEY = SchemaV1.make_canonical_head_hash_lookup_key()

# Requests that only read; everything else runs in a write session.
_READS = frozenset(
    {
        "eth_accounts",
        "eth_blockNumber",
        "eth_call",
        "eth_chainId",
        "eth_estimateGas",
        "eth_feeHistory",
        "eth_gasPrice",
        "eth_maxPriorityFeePerGas",
        "eth_syncing",
        "net_version",
        "net_listening",
        "net_peerCount",
        "web3_clientVersion",
    }
)
# py-evm's "the data should be there but is not": a damaged database, never a user error.
_DAMAGE = (EVMMissingData, MissingTrieNode, CanonicalHeadNotFound, StateRootNotFound, EVMBlockNotFound)
# Requests that rewrite history; the persistent ledger is append-only.
_REFUSED = frozenset({"evm_revert", "evm_snapshot", "evm_reset"})


class InvalidFilter(ValueError):
    """An ``eth_getLogs`` filter this chain cannot parse (answered as JSON-RPC error -32602)."""


class ExecutionFailed(Exception):
    """A transaction or call failed inside the EVM; ``data``: the revert data, None if it did not revert."""

    def __init__(self, message: str, data: bytes | None) -> None:
        super().__init__(message)
        self.data = data


class LedgerChain(MiningChain):
    """eth-tester's post-merge tester chain (Prague, constant gas limit), as a module-level class."""

    chain_id = CHAIN_ID
    vm_configuration: tuple[tuple[BlockNumber, type[VirtualMachineAPI]], ...] = ((BlockNumber(0), PragueVM),)

    def create_header_from_parent(self, parent_header: Any, **header_params: Any) -> Any:
        header_params["gas_limit"] = parent_header.gas_limit
        return super().create_header_from_parent(parent_header, **header_params)

    def get_transaction_builder(self) -> Any:
        return self.get_vm().get_transaction_builder()


class EmbeddedBackend(PyEVMBackend):
    """eth-tester's py-evm backend over a ``LedgerStore``, re-synced to the stored head per session."""

    def __init__(self, store: LedgerStore, *, accounts: int) -> None:
        # PyEVMBackend.__init__ would build a fresh in-memory genesis; we open the stored chain.
        self.account_keys = get_default_account_keys(quantity=accounts)
        self.store = store
        self._db = AtomicDB(store)
        self._head: bytes | None = None
        self._lock = threading.RLock()  # one request at a time per process; the store is not thread-safe
        self.chain: Any = None  # a LedgerChain, built by create_genesis() or the first session

    @property
    def dev_accounts(self) -> list[ChecksumAddress]:
        """The funded dev accounts, in index order."""
        return [to_checksum_address(key.public_key.to_canonical_address()) for key in self.account_keys]

    # -- sessions ---------------------------------------------------------------------------

    @contextmanager
    def session(self, *, write: bool) -> Iterator[None]:
        """Run one request against the current head; a failed write leaves no trace."""
        with self._lock:
            try:
                with self.store.write() if write else self.store.read():
                    self._sync()
                    if write and self.chain is not None:
                        self.chain.header = self.chain.ensure_header()  # a fresh block, stamped now
                    yield
                    if write and _HEAD_KEY in self.store:
                        self._head = self.store[_HEAD_KEY]  # our chain object already holds it
            except BaseException:
                if write:
                    self._head = None  # the in-memory chain saw a write that was rolled back
                raise

    def create_genesis(self) -> None:
        """Store the genesis block, funding the dev accounts (inside a write session)."""
        params = get_default_genesis_params(overrides={"timestamp": int(time.time())})
        state = generate_genesis_state_for_keys(self.account_keys)
        self.chain = LedgerChain.from_genesis(self._db, params, state)
        self._head = self.store[_HEAD_KEY]

    def _sync(self) -> None:
        try:
            head = self.store[_HEAD_KEY]
        except KeyError:
            if self.store.writing:
                return  # a brand-new ledger: the caller is about to create the genesis block
            raise LedgerError(
                f"ledger database {self.store.location} holds no chain; remove it and run "
                "`llmchain init` again"
            ) from None
        if head != self._head:
            self.chain = LedgerChain(self._db)
            self._head = head

    # -- the log index ----------------------------------------------------------------------

    def mine_blocks(self, num_blocks: int = 1, coinbase: Any = ZERO_ADDRESS) -> tuple[bytes, ...]:
        """Mine as eth-tester does, indexing each block's logs in the same store transaction."""
        mined = tuple(super().mine_blocks(num_blocks, coinbase))
        for block_hash in mined:
            self.store.add_logs(_block_logs(self.chain, self.chain.get_block_by_hash(block_hash)))
        return mined

    def index_logs(self) -> None:
        """Index the logs of every block up to the head (for a ledger made before the index)."""
        rows: list[LogRow] = []
        for number in range(1, self.chain.get_canonical_head().block_number + 1):
            rows += _block_logs(self.chain, self.chain.get_canonical_block_by_number(number))
        self.store.add_logs(rows)

    def get_indexed_logs(self, filter_params: dict[str, Any]) -> list[dict[str, Any]]:
        """``eth_getLogs`` from the index, as eth-tester's log objects, clipped at the head."""
        query = self._log_query(filter_params)
        return [_log_object(row) for row in self.store.find_logs(query)] if query else []

    def _log_query(self, params: dict[str, Any]) -> LogQuery | None:
        """The filter as a query over block numbers; None when its range holds no mined block."""
        head = self.chain.get_canonical_head().block_number
        block_hash = params.get("blockHash", params.get("block_hash"))
        if block_hash is not None:
            first = last = self._block_number_of(_bytes32(block_hash, "blockHash"))
        else:
            # web3's provider middleware renames fromBlock/toBlock; a direct make_request does not
            first = _block_bound(params.get("from_block", params.get("fromBlock")), head)
            last = min(_block_bound(params.get("to_block", params.get("toBlock")), head), head)
        if first > last:
            return None
        return LogQuery(
            from_block=first,
            to_block=last,
            addresses=_addresses(params.get("address")),
            topics=_topics(params.get("topics")),
            block_hash=None if block_hash is None else _bytes32(block_hash, "blockHash"),
        )

    def _block_number_of(self, block_hash: bytes) -> int:
        try:
            return int(self.chain.get_block_header_by_hash(block_hash).block_number)
        except HeaderNotFound:
            raise InvalidFilter(f"no block has hash {to_hex(block_hash)}") from None

    # -- transactions: never mine a failure -------------------------------------------------

    def send_transaction(self, transaction: dict[str, Any]) -> bytes:
        return self._apply(self._get_normalized_and_signed_evm_transaction(transaction))

    def send_signed_transaction(
        self, signed_transaction: dict[str, Any], block_number: Any = "latest"
    ) -> bytes:
        normalized = self._normalize_transaction(signed_transaction, block_number)
        return self._apply(self._create_type_aware_signed_transaction(normalized))

    def send_raw_transaction(self, raw_transaction: bytes) -> bytes:
        vm = self.chain.get_vm(at_header=self.chain.get_canonical_head())
        return self._apply(vm.get_transaction_builder().decode(raw_transaction))

    def _apply(self, evm_transaction: Any) -> bytes:
        _, _, computation = self.chain.apply_transaction(evm_transaction)
        if computation.is_error:
            raise _failure(computation)
        return evm_transaction.hash

    def call(self, transaction: dict[str, Any], block_number: Any = "latest") -> bytes:
        computation = self._execute(transaction, block_number)
        if computation.is_error:
            raise _failure(computation)
        return computation.output

    def estimate_gas(self, transaction: dict[str, Any], block_number: Any = "latest") -> int:
        computation = self._execute(transaction, block_number)
        if computation.is_error:
            raise _failure(computation)
        return super().estimate_gas(transaction, block_number)

    def _execute(self, transaction: dict[str, Any], block_number: Any) -> Any:
        """Run a transaction on the state after ``block_number`` and throw the state away."""
        defaulted = {"gas": self._max_available_gas(), **transaction}
        unsigned = self._get_normalized_and_unsigned_evm_transaction(defaulted, block_number)
        header = self._mined_header(block_number)
        state = self.chain.get_vm(at_header=header).state
        snapshot = state.snapshot()
        try:
            return state.apply_transaction(SpoofTransaction(unsigned, from_=transaction["from"]))
        finally:
            state.revert(snapshot)

    def _mined_header(self, block_number: Any) -> Any:
        head = self.chain.get_canonical_head()
        if block_number in ("latest", "safe", "finalized", "pending"):
            return head
        if block_number == "earliest":
            return self.chain.get_canonical_block_header_by_number(0)
        if isinstance(block_number, int) and 0 <= block_number <= head.block_number:
            return self.chain.get_canonical_block_header_by_number(block_number)
        raise BlockNotFound(f"No block found for block number: {block_number}")

    # -- lookups through the transaction index ----------------------------------------------

    def get_transaction_by_hash(self, transaction_hash: bytes) -> dict[str, Any]:
        block, transaction, index = self._locate(transaction_hash)
        return serialize_transaction(block, transaction, index, False)

    def get_transaction_receipt(self, transaction_hash: bytes) -> dict[str, Any]:
        block, transaction, index = self._locate(transaction_hash)
        receipts = block.get_receipts(self.chain.chaindb)
        return serialize_transaction_receipt(
            block, receipts, transaction, index, False, self.chain.get_vm()
        )

    def _locate(self, transaction_hash: bytes) -> tuple[Any, Any, int]:
        try:
            number, index = self.chain.chaindb.get_transaction_index(transaction_hash)
        except EVMTransactionNotFound:
            raise TransactionNotFound(
                f"No transaction found for transaction hash: {to_hex(transaction_hash)}"
            ) from None
        block = self.chain.get_canonical_block_by_number(number)
        return block, block.transactions[index], index


def _block_logs(chain: Any, block: Any) -> list[LogRow]:
    """The index rows of one mined block: every log of every receipt, in chain order."""
    rows: list[LogRow] = []
    receipts = block.get_receipts(chain.chaindb) if block.transactions else ()
    for tx_index, (transaction, receipt) in enumerate(zip(block.transactions, receipts)):
        for log_index, log in enumerate(receipt.logs):
            topics = tuple(topic.to_bytes(32, "big") for topic in log.topics)
            where = (block.number, tx_index, log_index, transaction.hash, block.hash)
            rows.append((*where, log.address, topics, log.data))
    return rows


def _log_object(row: LogRow) -> dict[str, Any]:
    """One index row as eth-tester's outbound log object (web3's provider middleware renames keys)."""
    block_number, tx_index, log_index, tx_hash, block_hash, address, topics, data = row
    return {
        "type": "mined",
        "log_index": log_index,
        "transaction_index": tx_index,
        "transaction_hash": to_hex(tx_hash),
        "block_hash": to_hex(block_hash),
        "block_number": block_number,
        "address": to_checksum_address(address),
        "data": to_hex(data),
        "topics": [to_hex(topic) for topic in topics],
    }


def _block_bound(value: Any, head: int) -> int:
    """A fromBlock/toBlock value as a block number: tags resolve against the head, as nodes do."""
    if value is None or value in ("latest", "safe", "finalized", "pending"):
        return head
    if value == "earliest":
        return 0
    if isinstance(value, str):
        try:
            value = int(value, 16)
        except ValueError:
            raise InvalidFilter(f"block {value!r} is not a number or block tag") from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidFilter(f"block {value!r} is not a number or block tag")
    return value


def _addresses(value: Any) -> list[bytes] | None:
    if value is None:
        return None
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values or not all(is_address(item) for item in values):
        raise InvalidFilter(f"address {value!r} is not an address or a list of addresses")
    return [to_canonical_address(item) for item in values]


def _topics(value: Any) -> tuple[list[bytes] | None, ...]:
    """Per position: None (any topic) or the 32-byte values allowed there (an OR-list)."""
    if value is None:
        return ()
    if not isinstance(value, (list, tuple)) or len(value) > 4:
        raise InvalidFilter(f"topics {value!r} must be a list of at most 4 entries")
    result: list[list[bytes] | None] = []
    for entry in value:
        if entry is None:
            result.append(None)
        elif isinstance(entry, (list, tuple)):
            allowed = [_bytes32(item, "topic") for item in entry if item is not None]
            result.append(allowed if len(allowed) == len(entry) and allowed else None)
        else:
            result.append([_bytes32(entry, "topic")])
    return tuple(result)


def _bytes32(value: Any, what: str) -> bytes:
    try:
        raw = bytes(value) if isinstance(value, (bytes, bytearray)) else to_bytes(hexstr=value)
    except (TypeError, ValueError):
        raw = b""
    if len(raw) != 32:
        raise InvalidFilter(f"{what} {value!r} is not 32 bytes of hex")
    return raw


def _failure(computation: Any) -> ExecutionFailed:
    error = computation.error
    if isinstance(error, EVMRevert):
        return ExecutionFailed("execution reverted", bytes(computation.output))
    return ExecutionFailed(f"execution failed: {type(error).__name__} {error}".strip(), None)


class EmbeddedProvider(EthereumTesterProvider):
    """web3's eth-tester provider, with each request in a store session and node-style errors.

    Failed executions and invalid transactions come back as JSON-RPC errors, as from a real node,
    instead of eth-tester exceptions (which lose the revert data and escape web3's error handling).
    """

    def __init__(self, backend: EmbeddedBackend, *, append_only: bool) -> None:
        super().__init__(EthereumTester(backend=backend, auto_mine_transactions=True))
        self._backend = backend
        self._append_only = append_only

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        if self._append_only and method in _REFUSED:
            return _error(-32601, f"{method} is refused: the persistent ledger is append-only")
        read = method in _READS or method.startswith("eth_get")
        try:
            with self._backend.session(write=not read):
                if method == "eth_getLogs":
                    result = self._backend.get_indexed_logs(params[0] if params else {})
                    return {"jsonrpc": "2.0", "id": 0, "result": result}  # type: ignore[typeddict-item]
                return super().make_request(method, params)
        except _DAMAGE as damage:
            raise damaged(self._backend.store.location, type(damage).__name__) from None
        except (EVMValidationError, TesterValidationError) as invalid:
            return _error(-32000, f"invalid transaction: {invalid}")
        except InvalidFilter as invalid:
            return _error(-32602, f"invalid eth_getLogs filter: {invalid}")
        except ExecutionFailed as failure:
            if failure.data is None:
                return _error(-32000, str(failure))
            return _error(3, str(failure), to_hex(failure.data))


def _error(code: int, message: str, data: str | None = None) -> RPCResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": 0, "error": error}  # type: ignore[typeddict-item]
