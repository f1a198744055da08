"""Accounts: dev/unlocked accounts by index or address, and encrypted keystores signing on anvil."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from chain_support import register_model
from eth_account import Account
from web3 import HTTPProvider, Web3
from web3.types import Wei

from llmchain.chain import connect, deploy_registry
from llmchain.chain.accounts import (
    KEYSTORE_PASSWORD_ENV,
    NodeAccount,
    ReadOnlyAccount,
    load_keystore,
    pick_node_account,
)
from llmchain.errors import BadInput

ACCOUNTS = [Account.from_key(bytes([i]) * 32).address for i in (1, 2, 3)]
PRIVATE_KEY = bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")


@pytest.fixture
def keystore(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An encrypted key file (password "correct horse"), with the password env var unset."""
    monkeypatch.delenv(KEYSTORE_PASSWORD_ENV, raising=False)
    path = tmp_path / "key.json"
    path.write_text(json.dumps(Account.encrypt(PRIVATE_KEY, "correct horse", iterations=2)))
    return path


@pytest.mark.parametrize(("choice", "expected"), [(None, 0), (2, 2), ("1", 1), (ACCOUNTS[2].lower(), 2)])
def test_node_accounts_are_picked_by_index_or_address(choice: str | int | None, expected: int) -> None:
    assert pick_node_account(ACCOUNTS, choice, "the node") == NodeAccount(ACCOUNTS[expected])


@pytest.mark.parametrize(
    ("available", "choice", "message"),
    [
        (ACCOUNTS, 3, "account index 3 is out of range: the node has accounts 0..2"),
        (ACCOUNTS, "bob", "--account must be an index or a 0x address, got 'bob'"),
        (ACCOUNTS, "0x" + "12" * 20, "is not one of the accounts the node can sign for"),
        ([], None, "the node has no unlocked accounts; pass --keystore FILE"),
    ],
)
def test_bad_account_choices_are_bad_input(available: list[str], choice: str | int | None, message: str) -> None:
    with pytest.raises(BadInput, match=message):
        pick_node_account(available, choice, "the node")  # type: ignore[arg-type]


def test_keystore_password_comes_from_the_environment_first(
    keystore: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[bool] = []

    def prompt() -> str:
        asked.append(True)
        return "correct horse"

    assert load_keystore(keystore, password=prompt).address == Account.from_key(PRIVATE_KEY).address
    assert asked == [True]
    monkeypatch.setenv(KEYSTORE_PASSWORD_ENV, "correct horse")
    load_keystore(keystore, password=prompt)
    assert asked == [True]  # the environment was enough; no prompt


def test_the_private_key_never_shows(keystore: Path) -> None:
    account = load_keystore(keystore, password=lambda: "correct horse")
    assert repr(account) == f"KeystoreAccount({account.address})"
    assert PRIVATE_KEY.hex() not in repr(account) + str(account)
    assert not hasattr(account, "__dict__")


@pytest.mark.parametrize(
    ("content", "password", "message"),
    [
        (None, "wrong", "wrong password for keystore"),
        (None, None, f"needs a password: set {KEYSTORE_PASSWORD_ENV}"),
        ("not json", "x", "is not a keystore file"),
        ('{"address": "00"}', "x", "no 'crypto' section"),
    ],
)
def test_bad_keystores_are_bad_input(
    keystore: Path, content: str | None, password: str | None, message: str
) -> None:
    if content is not None:
        keystore.write_text(content)
    with pytest.raises(BadInput, match=message):
        load_keystore(keystore, password=(lambda: password) if password else None)


def test_a_missing_keystore_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="cannot read keystore .*missing.json"):
        load_keystore(tmp_path / "missing.json", password=lambda: "x")


def test_a_read_only_account_refuses_to_send() -> None:
    with pytest.raises(BadInput, match="the node has no unlocked accounts and no --keystore"):
        ReadOnlyAccount("the node").send(Web3(), {})


@pytest.mark.slow
def test_a_keystore_account_signs_on_anvil(anvil: str, ledger_dir: Path, keystore: Path) -> None:
    deploy_registry(rpc_url=anvil)
    address = Account.from_key(PRIVATE_KEY).address
    w3 = Web3(HTTPProvider(anvil))
    w3.eth.wait_for_transaction_receipt(
        w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": address, "value": Wei(10**18)})
    )
    with connect(rpc_url=anvil, keystore=keystore, password=lambda: "correct horse") as conn:
        assert conn.sender == address
        for name in ("acme/signed-1", "acme/signed-2"):  # nonces advance
            assert conn.transact(register_model(conn, name))["from"] == address
        model = conn.call(conn.registry.functions.getModel(2))
        assert model[2] == address  # owner
        assert conn.as_account(0).sender == w3.eth.accounts[0]  # the node's own accounts still work
        assert conn.as_account(address).sender == address
    with pytest.raises(BadInput, match="does not match the keystore's address"):
        connect(rpc_url=anvil, keystore=keystore, password=lambda: "correct horse", account=0)
