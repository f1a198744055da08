"""The chain layer: connect to the ledger (embedded or a JSON-RPC node), send, call, read events.

    conn = connect()                                  # ./.llmchain, LLMCHAIN_HOME or ledger_dir
    conn = connect(rpc_url="http://127.0.0.1:8545")   # a node; registry from the address book
    receipt = conn.transact(conn.registry.functions.registerModel(...))
    model = conn.call(conn.registry.functions.getModel(1))

Everything above this layer sees one ``Connection``: a web3 handle, the chain id, the sending
account, and the registry contract whose runtime code hash has been checked against the artifact.
Every failure surfaces as an ``llmchain.errors`` exception with a one-line message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils import is_address, to_checksum_address
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.types import EventData, TxParams, TxReceipt, Wei

import llmchain
from llmchain.artifacts import Artifact, load_artifact
from llmchain.chain.accounts import (
    KeystoreAccount,
    NodeAccount,
    ReadOnlyAccount,
    Signer,
    load_keystore,
    pick_node_account,
)
from llmchain.chain.deploy import AddressBook, Deployment, check_registry, deploy_contract
from llmchain.chain.embedded import GAS_CAP, EmbeddedBackend, EmbeddedProvider
from llmchain.chain.events import event_codecs
from llmchain.chain.revert import RevertDecoder
from llmchain.chain.rpc import open_node
from llmchain.chain.store import LedgerStore
from llmchain.chain.transactions import call_view, reverts_decoded, send_transaction
from llmchain.errors import BadInput, LedgerError
from llmchain.statedb import CHAIN_ID, DATABASE_NAME, LEDGER_FORMAT, LEDGER_FORMAT_VERSION, resolve_ledger_dir

__all__ = [
    "CHAIN_ID",
    "Connection",
    "Deployment",
    "LedgerInfo",
    "connect",
    "connect_memory",
    "deploy_registry",
    "init_ledger",
    "resolve_ledger_dir",
]

ADDRESS_BOOK_NAME = "addresses.json"
DEV_ACCOUNTS = 10
BUSY_TIMEOUT_S = 5.0
"""How long a writer waits for another process's write before giving up with ``LedgerBusy``."""

_EMBEDDED_DEFAULTS: TxParams = {
    "gas": GAS_CAP,
    "maxFeePerGas": Wei(10**9),
    "maxPriorityFeePerGas": Wei(10**9),
    "chainId": CHAIN_ID,
}
"""Fixed fields for the embedded chain, so sending needs no fee or gas queries (see GAS_CAP)."""


class Connection:
    """One chain, one sending account, one verified registry. Also a context manager."""

    def __init__(
        self,
        w3: Web3,
        registry: Contract,
        signer: Signer,
        *,
        chain_id: int,
        location: str,
        defaults: TxParams,
        keystore_signer: KeystoreAccount | None = None,
        store: LedgerStore | None = None,
    ) -> None:
        self.w3 = w3
        self.registry = registry
        self.chain_id = chain_id
        self.location = location  # for messages: "the embedded ledger at DIR", "the node at URL"
        self._signer = signer
        self._defaults = defaults
        self._keystore_signer = keystore_signer
        self._store = store
        self._events = event_codecs(registry.abi)  # type: ignore[arg-type]  # web3 types ABI entries as TypedDicts

    @property
    def sender(self) -> ChecksumAddress:
        """The account transactions are sent from."""
        return self._signer.address

    def transact(
        self, fn: ContractFunction | ContractConstructor, *, gas: int | None = None
    ) -> TxReceipt:
        """Send ``fn`` as a transaction from ``sender``; returns the successful receipt.

        Raises ``ContractRevert`` (decoded custom error) if it reverts or its receipt has status 0.
        A constructor (``w3.eth.contract(abi=..., bytecode=...).constructor()``) deploys a contract.
        """
        defaults: TxParams = {**self._defaults, **({"gas": gas} if gas is not None else {})}
        return send_transaction(self.w3, self._signer, fn, defaults=defaults, decoder=self._decoder(fn))

    def call(self, fn: ContractFunction) -> Any:
        """Run a view function as ``sender``; reverts raise ``ContractRevert``."""
        return call_view(fn, self.sender, self._decoder(fn))

    def get_logs(
        self,
        event_name: str,
        *,
        from_block: int,
        to_block: int,
        argument_filters: dict[str, Any] | None = None,
    ) -> list[EventData]:
        """Registry events named ``event_name`` in ``[from_block, to_block]``, oldest first.

        ``argument_filters`` name indexed arguments only (a list value matches any of its items);
        they become the request's topics, so the node does the filtering. Blocks past the head
        hold no events yet (the range is clipped, as nodes do). Logs come back as web3's
        ``EventData``, decoded by ``llmchain.chain.events`` (web3's own decoding costs about a
        millisecond a log). Keep ranges narrow: on the embedded ledger the log index makes any
        range one indexed query, but a node may cap how many blocks one request may span.
        """
        if from_block < 0 or to_block < from_block:
            raise BadInput(f"invalid block range {from_block}..{to_block}")
        codec = self._events.get(event_name)
        if codec is None:
            raise BadInput(f"the registry has no event named {event_name!r}")
        topics = codec.topics(argument_filters)
        with reverts_decoded(self._decoder()):
            last = min(to_block, self.w3.eth.block_number)
            if from_block > last:
                return []
            logs = self.w3.eth.get_logs(
                {"address": self.registry.address, "fromBlock": from_block, "toBlock": last, "topics": topics}
            )
        return [codec.decode(log) for log in logs]

    def _decoder(self, fn: ContractFunction | ContractConstructor | None = None) -> RevertDecoder:
        """Errors of the called contract first, then the registry's (errors can bubble up)."""
        own = fn.contract_abi if isinstance(fn, ContractFunction) else getattr(fn, "abi", [])
        return RevertDecoder([own, self.registry.abi])

    def as_account(self, index_or_address: int | str) -> Connection:
        """The same chain and registry, sending from another account (dev index or address)."""
        signer: Signer
        keystore = self._keystore_signer
        if keystore is not None and _same_address(index_or_address, keystore.address):
            signer = keystore
        else:
            signer = pick_node_account(list(self.w3.eth.accounts), index_or_address, self.location)
        return Connection(
            self.w3,
            self.registry,
            signer,
            chain_id=self.chain_id,
            location=self.location,
            defaults=self._defaults,
            keystore_signer=self._keystore_signer,
            store=None,  # the original connection owns (and closes) the store
        )

    def close(self) -> None:
        """Release the embedded ledger's database (every block is already committed)."""
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Connection({self.location}, chain {self.chain_id}, sender {self.sender})"


@dataclass(frozen=True)
class LedgerInfo:
    """What ``init_ledger`` found or created."""

    directory: Path
    chain_id: int
    registry: ChecksumAddress
    block_number: int
    created: bool  # False when the ledger already existed


def connect(
    *,
    ledger_dir: Path | str | None = None,
    rpc_url: str | None = None,
    account: str | int | None = None,
    keystore: Path | str | None = None,
    password: Callable[[], str] | None = None,
    chain_id: int | None = None,
    registry_address: str | None = None,
    address_book: Path | str | None = None,
) -> Connection:
    """Connect to the embedded ledger (default; created on first use) or to a JSON-RPC node.

    ``account``: a dev-account index or address (embedded), or one of the node's unlocked accounts.
    ``keystore`` (nodes only): an encrypted key file; its password comes from
    ``LLMCHAIN_KEYSTORE_PASSWORD`` or, if unset, from calling ``password()``.
    ``chain_id``: refuse to proceed unless the chain has this id.
    ``registry_address`` / ``address_book`` (nodes only): where to find the registry; by default
    the entry for the node's chain id in ``<ledger dir>/addresses.json``.
    """
    if rpc_url is None:
        if keystore is not None or registry_address is not None or address_book is not None:
            raise BadInput(
                "--keystore, --registry and --address-book apply to a node (--rpc-url); the embedded "
                "ledger deploys its own registry and signs with its dev accounts (--account INDEX)"
            )
        return _connect_embedded(resolve_ledger_dir(ledger_dir), account=account, chain_id=chain_id)[0]
    w3, node_chain_id = _open_checked_node(rpc_url, chain_id)
    book = _address_book(address_book, ledger_dir)
    address = _checked_address(registry_address) if registry_address else book.lookup(node_chain_id)
    registry = check_registry(w3, address, load_artifact(), chain_id=node_chain_id)
    keystore_signer = load_keystore(Path(keystore), password=password) if keystore else None
    return Connection(
        w3,
        registry,
        _node_signer(w3, rpc_url, account, keystore_signer),
        chain_id=node_chain_id,
        location=f"the node at {rpc_url}",
        defaults={},
        keystore_signer=keystore_signer,
    )


def connect_memory(*, accounts: int = DEV_ACCOUNTS) -> Connection:
    """A fresh in-memory chain with the registry deployed, sending from dev account 0."""
    store = LedgerStore(":memory:", busy_timeout=BUSY_TIMEOUT_S)
    backend = EmbeddedBackend(store, accounts=accounts)
    w3 = Web3(EmbeddedProvider(backend, append_only=False))
    with store.write():
        store.ensure_schema()
        deployment = _genesis_and_registry(backend, w3)
    registry = w3.eth.contract(address=deployment.address, abi=load_artifact().abi)
    return Connection(
        w3, registry, NodeAccount(backend.dev_accounts[0]), chain_id=CHAIN_ID,
        location="the in-memory chain", defaults=_EMBEDDED_DEFAULTS, store=store,
    )


def init_ledger(ledger_dir: Path | str | None = None) -> LedgerInfo:
    """Create the embedded ledger (genesis + registry) unless it exists; report what is there."""
    directory = resolve_ledger_dir(ledger_dir)
    conn, created = _connect_embedded(directory, account=None, chain_id=None)
    with conn:
        return LedgerInfo(
            directory=directory,
            chain_id=conn.chain_id,
            registry=conn.registry.address,
            block_number=conn.w3.eth.block_number,
            created=created,
        )


def deploy_registry(
    *,
    rpc_url: str,
    ledger_dir: Path | str | None = None,
    account: str | int | None = None,
    keystore: Path | str | None = None,
    password: Callable[[], str] | None = None,
    chain_id: int | None = None,
    address_book: Path | str | None = None,
    force: bool = False,
) -> Deployment:
    """Deploy a registry on the node at ``rpc_url`` and record it in the address book.

    Refuses (``BadInput``) when the address book already names a working registry for that chain,
    unless ``force``: deploying again would orphan the records kept in the old one.
    """
    w3, node_chain_id = _open_checked_node(rpc_url, chain_id)
    book = _address_book(address_book, ledger_dir)
    artifact = load_artifact()
    if not force:
        _refuse_if_deployed(w3, book, node_chain_id, artifact)
    keystore_signer = load_keystore(Path(keystore), password=password) if keystore else None
    signer = _node_signer(w3, rpc_url, account, keystore_signer)
    deployment = deploy_contract(w3, signer, artifact, defaults={}, chain_id=node_chain_id)
    book.record(deployment)
    return deployment


# -- embedded ledger ----------------------------------------------------------------------------


def _connect_embedded(
    directory: Path, *, account: str | int | None, chain_id: int | None
) -> tuple[Connection, bool]:
    """The connection, and whether this call created the ledger."""
    store = _open_store(directory)
    try:
        backend = EmbeddedBackend(store, accounts=DEV_ACCOUNTS)
        w3 = Web3(EmbeddedProvider(backend, append_only=True))
        meta, created = _read_meta(store), False
        if meta is None:
            meta, created = _create_ledger(store, backend, w3)
        elif meta.get("format") == LEDGER_FORMAT and meta.get("format_version") == "1":
            meta = _upgrade_ledger(store, backend)
        _check_meta(meta, directory, chain_id)
        registry = check_registry(w3, meta["registry_address"], load_artifact(), chain_id=CHAIN_ID)
        signer = pick_node_account(backend.dev_accounts, account, "the embedded ledger")
    except BaseException:
        store.close()
        raise
    connection = Connection(
        w3, registry, signer, chain_id=CHAIN_ID, location=f"the embedded ledger at {directory}",
        defaults=_EMBEDDED_DEFAULTS, store=store,
    )
    return connection, created


def _open_store(directory: Path) -> LedgerStore:
    if directory.exists() and not directory.is_dir():
        raise BadInput(f"ledger directory {directory} is not a directory; pass --ledger DIR")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BadInput(f"cannot create ledger directory {directory}: {error.strerror}") from None
    return LedgerStore(directory / DATABASE_NAME, busy_timeout=BUSY_TIMEOUT_S)


def _read_meta(store: LedgerStore) -> dict[str, str] | None:
    """The ledger's metadata, or None for a database llmchain has not initialised yet."""
    with store.read():
        if not store.has_schema():
            return None
        meta = store.get_meta()
    return meta or None


def _create_ledger(
    store: LedgerStore, backend: EmbeddedBackend, w3: Web3
) -> tuple[dict[str, str], bool]:
    """Genesis, registry and metadata in one transaction: a crash leaves no half-made ledger.

    Returns the metadata and whether we created it (False: another process won the race).
    """
    with store.write():
        store.ensure_schema()
        meta = store.get_meta()
        if meta:
            return meta, False
        deployment = _genesis_and_registry(backend, w3)
        entries = {
            "format": LEDGER_FORMAT,
            "format_version": str(LEDGER_FORMAT_VERSION),
            "chain_id": str(CHAIN_ID),
            "registry_address": deployment.address,
            "registry_code_hash": deployment.runtime_code_hash,
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "created_by": f"llmchain {llmchain.__version__}",
        }
        for key, value in entries.items():
            store.set_meta(key, value)
    return entries, True


def _upgrade_ledger(store: LedgerStore, backend: EmbeddedBackend) -> dict[str, str]:
    """Version 1 -> 2: index the logs of the blocks already stored, in one transaction.

    Bumping the version (rather than indexing silently) keeps an older llmchain, which would mine
    blocks without indexing their logs, from writing to the upgraded ledger: it refuses version 2.
    """
    with backend.session(write=True):
        meta = store.get_meta()
        if meta.get("format_version") == "1":  # not upgraded meanwhile by another process
            store.ensure_schema()
            backend.index_logs()
            store.set_meta("format_version", str(LEDGER_FORMAT_VERSION))
            meta = store.get_meta()
    return meta


def _genesis_and_registry(backend: EmbeddedBackend, w3: Web3) -> Deployment:
    """Store the genesis block and deploy the registry from dev account 0 (inside a write session)."""
    backend.create_genesis()
    signer = NodeAccount(backend.dev_accounts[0])
    return deploy_contract(w3, signer, load_artifact(), defaults=_EMBEDDED_DEFAULTS, chain_id=CHAIN_ID)


def _check_meta(meta: dict[str, str], directory: Path, chain_id: int | None) -> None:
    if meta.get("format") != LEDGER_FORMAT:
        raise LedgerError(f"{directory / DATABASE_NAME} is not an llmchain ledger; choose another --ledger")
    if meta.get("format_version") != str(LEDGER_FORMAT_VERSION):
        raise LedgerError(
            f"ledger at {directory} has format version {meta.get('format_version')} "
            f"({meta.get('created_by', 'unknown writer')}); this llmchain reads version "
            f"{LEDGER_FORMAT_VERSION}: use a matching llmchain or another --ledger directory"
        )
    if "registry_address" not in meta or meta.get("chain_id") != str(CHAIN_ID):
        raise LedgerError(f"ledger at {directory} has incomplete metadata; choose another --ledger")
    if chain_id is not None and chain_id != CHAIN_ID:
        raise BadInput(f"the embedded ledger is chain {CHAIN_ID}, not chain {chain_id} (--chain-id)")


# -- remote nodes -------------------------------------------------------------------------------


def _open_checked_node(rpc_url: str, chain_id: int | None) -> tuple[Web3, int]:
    w3, node_chain_id = open_node(rpc_url)
    if chain_id is not None and chain_id != node_chain_id:
        raise BadInput(
            f"the node at {rpc_url} is on chain {node_chain_id}, not chain {chain_id} (--chain-id)"
        )
    return w3, node_chain_id


def _node_signer(
    w3: Web3, rpc_url: str, account: str | int | None, keystore_signer: KeystoreAccount | None
) -> Signer:
    if keystore_signer is not None:
        if account is not None and not _same_address(account, keystore_signer.address):
            raise BadInput(
                f"--account {account} does not match the keystore's address {keystore_signer.address}"
            )
        return keystore_signer
    available = list(w3.eth.accounts)
    if account is None and not available:
        return ReadOnlyAccount(f"the node at {rpc_url}")
    return pick_node_account(available, account, f"the node at {rpc_url}")


def _address_book(address_book: Path | str | None, ledger_dir: Path | str | None) -> AddressBook:
    if address_book is not None:
        return AddressBook(Path(address_book))
    return AddressBook(resolve_ledger_dir(ledger_dir) / ADDRESS_BOOK_NAME)


def _refuse_if_deployed(w3: Web3, book: AddressBook, chain_id: int, artifact: Artifact) -> None:
    try:
        address = book.lookup(chain_id)
        check_registry(w3, address, artifact, chain_id=chain_id)
    except LedgerError:
        return  # nothing usable recorded: deploying is the fix
    raise BadInput(
        f"chain {chain_id} already has an llmchain registry at {address} (recorded in {book.path}); "
        "pass --force to deploy another one"
    )


def _checked_address(address: str) -> ChecksumAddress:
    if not is_address(address):
        raise BadInput(f"registry address must be a 0x-prefixed 20-byte hex address, got {address!r}")
    return to_checksum_address(address)


def _same_address(candidate: int | str, address: str) -> bool:
    return isinstance(candidate, str) and is_address(candidate) and to_checksum_address(candidate) == address
