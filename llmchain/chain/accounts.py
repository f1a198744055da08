"""Who signs transactions: a key the node holds, or an encrypted keystore file decrypted here.

- Node accounts: the embedded ledger's dev accounts (by index; their keys are eth-tester's public
  test keys, fine for a local ledger) and a remote node's unlocked accounts (``eth_accounts``, e.g.
  anvil's). The node signs ``eth_sendTransaction``.
- Keystore accounts: an eth-account (Web3 Secret Storage) JSON file. The password comes from
  ``LLMCHAIN_KEYSTORE_PASSWORD`` or from a callback the caller passes in (the CLI prompts; the
  library never does). The private key stays inside ``KeystoreAccount``: it is never printed,
  logged, or shown by ``repr``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_typing import ChecksumAddress
from eth_utils import is_address, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.types import TxParams

from llmchain.errors import BadInput

KEYSTORE_PASSWORD_ENV = "LLMCHAIN_KEYSTORE_PASSWORD"


@dataclass(frozen=True)
class NodeAccount:
    """An account whose key the node holds; the node signs what we send."""

    address: ChecksumAddress

    def send(self, w3: Web3, transaction: TxParams) -> HexBytes:
        """Hand the transaction to the node (it fills the nonce and signs)."""
        return w3.eth.send_transaction(transaction)


class KeystoreAccount:
    """An account decrypted from a keystore file; signs locally and sends raw transactions."""

    __slots__ = ("address", "_key")

    def __init__(self, private_key: bytes) -> None:
        self._key = private_key
        self.address: ChecksumAddress = Account.from_key(private_key).address

    def send(self, w3: Web3, transaction: TxParams) -> HexBytes:
        """Sign with the next pending nonce and send the raw transaction."""
        nonce = w3.eth.get_transaction_count(self.address, "pending")
        signed = Account.sign_transaction({**transaction, "nonce": nonce}, self._key)
        return w3.eth.send_raw_transaction(signed.raw_transaction)

    def __repr__(self) -> str:
        return f"KeystoreAccount({self.address})"


class ReadOnlyAccount:
    """Stands in when nothing can sign (a node without unlocked accounts, no keystore): views work."""

    def __init__(self, where: str) -> None:
        self.address: ChecksumAddress = to_checksum_address(b"\x00" * 20)
        self._where = where

    def send(self, w3: Web3, transaction: TxParams) -> HexBytes:
        """Refuse: there is no key to sign with."""
        raise BadInput(
            f"{self._where} has no unlocked accounts and no --keystore was given: cannot send "
            "transactions"
        )


Signer = NodeAccount | KeystoreAccount | ReadOnlyAccount


def pick_node_account(available: list[ChecksumAddress], account: str | int | None, where: str) -> NodeAccount:
    """Choose among the node's accounts by index (int or digits) or address; default index 0."""
    if not available:
        raise BadInput(f"{where} has no unlocked accounts; pass --keystore FILE to sign locally")
    choice = 0 if account is None else account
    if isinstance(choice, str) and choice.isdigit():
        choice = int(choice)
    if isinstance(choice, int):
        if not 0 <= choice < len(available):
            raise BadInput(
                f"account index {choice} is out of range: {where} has accounts 0..{len(available) - 1}"
            )
        return NodeAccount(available[choice])
    if not is_address(choice):
        raise BadInput(f"--account must be an index or a 0x address, got {choice!r}")
    address = to_checksum_address(choice)
    if address not in available:
        raise BadInput(
            f"account {address} is not one of the accounts {where} can sign for; pass an index "
            f"0..{len(available) - 1} or --keystore FILE"
        )
    return NodeAccount(address)


def load_keystore(path: Path, *, password: Callable[[], str] | None = None) -> KeystoreAccount:
    """Decrypt ``path`` with the password from the environment or, failing that, the callback."""
    keystore = _read_keystore(path)
    secret = os.environ.get(KEYSTORE_PASSWORD_ENV)
    if secret is None and password is not None:
        secret = password()
    if secret is None:
        raise BadInput(f"keystore {path} needs a password: set {KEYSTORE_PASSWORD_ENV}")
    try:
        private_key = Account.decrypt(keystore, secret)
    except ValueError:
        raise BadInput(f"wrong password for keystore {path} (MAC mismatch)") from None
    return KeystoreAccount(bytes(private_key))


def _read_keystore(path: Path) -> dict[str, Any]:
    try:
        keystore = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as error:
        raise BadInput(f"cannot read keystore {path}: {error.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise BadInput(f"{path} is not a keystore file (not JSON)") from None
    if not isinstance(keystore, dict) or "crypto" not in {k.lower() for k in keystore}:
        raise BadInput(f"{path} is not an eth-account keystore file (no 'crypto' section)")
    return keystore
