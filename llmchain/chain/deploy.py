"""Where the registry lives on each chain, and whether the code there is really our registry.

The address book is a small JSON file (``<ledger dir>/addresses.json`` by default) mapping a chain id
to the registry address deployed there. An address is only trusted after ``check_registry``: the
keccak256 of the code at that address must equal the artifact's runtime code hash, so a look-alike
contract (or a stale entry after a node reset) is refused before any record is read or written.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from eth_typing import ChecksumAddress
from eth_utils import is_address, keccak, to_checksum_address, to_hex
from web3 import Web3
from web3.contract import Contract
from web3.types import TxParams

from llmchain.artifacts import Artifact
from llmchain.chain.accounts import Signer
from llmchain.chain.revert import RevertDecoder
from llmchain.chain.transactions import send_transaction
from llmchain.errors import BadInput, LedgerError

ADDRESS_BOOK_FORMAT = "llmchain-address-book"
ADDRESS_BOOK_VERSION = 1


@dataclass(frozen=True)
class Deployment:
    """One registry deployment: where, from which transaction, and which code it must have."""

    chain_id: int
    address: ChecksumAddress
    runtime_code_hash: str  # 0x keccak256 of the deployed code, as in the artifact
    transaction: str  # 0x hash of the deploying transaction
    block: int
    deployed_at: str  # ISO 8601 UTC

    def as_json(self) -> dict[str, Any]:
        """The address-book entry."""
        return {
            "address": self.address,
            "runtimeCodeHash": self.runtime_code_hash,
            "transaction": self.transaction,
            "block": self.block,
            "deployedAt": self.deployed_at,
        }


def deploy_contract(
    w3: Web3, signer: Signer, artifact: Artifact, *, defaults: TxParams, chain_id: int
) -> Deployment:
    """Deploy ``artifact`` from ``signer`` and check the resulting code against the artifact."""
    decoder = RevertDecoder([artifact.abi])
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = send_transaction(w3, signer, factory.constructor(), defaults=defaults, decoder=decoder)
    if receipt["contractAddress"] is None:
        raise LedgerError(f"deployment {to_hex(receipt['transactionHash'])} created no contract")
    address = to_checksum_address(receipt["contractAddress"])
    check_registry(w3, address, artifact, chain_id=chain_id)
    return Deployment(
        chain_id=chain_id,
        address=address,
        runtime_code_hash=artifact.runtime_code_hash,
        transaction=to_hex(receipt["transactionHash"]),
        block=receipt["blockNumber"],
        deployed_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )


def check_registry(w3: Web3, address: str, artifact: Artifact, *, chain_id: int) -> Contract:
    """The registry contract at ``address``, after its runtime code hash matched the artifact."""
    code = bytes(w3.eth.get_code(to_checksum_address(address)))
    if not code:
        raise LedgerError(
            f"no contract at {address} on chain {chain_id}: the recorded registry is gone (was the "
            "node reset?); run `llmchain deploy` to deploy a new one"
        )
    actual = to_hex(keccak(code))
    if actual != artifact.runtime_code_hash:
        raise LedgerError(
            f"registry at {address} has runtime code hash {actual}, expected "
            f"{artifact.runtime_code_hash}: not an llmchain registry of this version"
        )
    return w3.eth.contract(address=to_checksum_address(address), abi=artifact.abi)


class AddressBook:
    """The per-chain registry addresses recorded in one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def lookup(self, chain_id: int) -> str:
        """The registry address recorded for ``chain_id``, or a clear error naming what is there."""
        chains = self._read()
        entry = chains.get(str(chain_id))
        if entry is None:
            known = ", ".join(sorted(chains)) or "none"
            raise LedgerError(
                f"no llmchain registry recorded for chain {chain_id} in {self.path} (chains recorded: "
                f"{known}); run `llmchain deploy --rpc-url URL` or pass the registry address"
            )
        address = entry.get("address") if isinstance(entry, dict) else None
        if not isinstance(address, str) or not is_address(address):
            raise LedgerError(f"address book {self.path} has a malformed entry for chain {chain_id}")
        return address

    def record(self, deployment: Deployment) -> None:
        """Add or replace the entry for the deployment's chain (atomic file replace)."""
        chains = self._read()
        chains[str(deployment.chain_id)] = deployment.as_json()
        document = {"format": ADDRESS_BOOK_FORMAT, "version": ADDRESS_BOOK_VERSION, "chains": chains}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".addresses-", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(document, stream, indent=2, sort_keys=True)
                stream.write("\n")
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _read(self) -> dict[str, Any]:
        if not self.path.exists():
            return {}
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except OSError as error:
            raise BadInput(f"cannot read address book {self.path}: {error.strerror}") from None
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise LedgerError(f"address book {self.path} is not valid JSON; fix or remove it") from None
        if not isinstance(document, dict) or document.get("format") != ADDRESS_BOOK_FORMAT:
            raise LedgerError(f"{self.path} is not an llmchain address book; fix or remove it")
        if document.get("version") != ADDRESS_BOOK_VERSION:
            raise LedgerError(
                f"address book {self.path} has version {document.get('version')}, this llmchain "
                f"reads version {ADDRESS_BOOK_VERSION}; upgrade llmchain"
            )
        chains = document.get("chains")
        return dict(chains) if isinstance(chains, dict) else {}
