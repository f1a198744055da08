"""Deployment to a node, the per-chain address book, and the runtime-code-hash pin."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from chain_support import PROBE_ABI, PROBE_BYTECODE, register_model
from eth_utils import to_checksum_address
from web3 import HTTPProvider, Web3

from llmchain.artifacts import load_artifact
from llmchain.chain import connect, deploy_registry
from llmchain.chain.deploy import AddressBook, Deployment
from llmchain.errors import BadInput, LedgerError

pytestmark = pytest.mark.slow  # every test here drives a real anvil node


def _entry(chain_id: int, address: str) -> Deployment:
    zero = "0x" + "00" * 32
    return Deployment(chain_id, to_checksum_address(address), zero, zero, 1, "2026-01-01T00:00:00+00:00")


def _deploy_probe(url: str) -> str:
    w3 = Web3(HTTPProvider(url))
    factory = w3.eth.contract(abi=PROBE_ABI, bytecode=PROBE_BYTECODE)
    tx_hash = factory.constructor().transact({"from": w3.eth.accounts[0]})
    return str(w3.eth.wait_for_transaction_receipt(tx_hash)["contractAddress"])


def test_deploy_records_the_registry_and_connect_finds_it(anvil: str, ledger_dir: Path) -> None:
    deployment = deploy_registry(rpc_url=anvil)
    book = json.loads((ledger_dir / "addresses.json").read_text())
    assert book["chains"]["31337"]["address"] == deployment.address
    assert book["chains"]["31337"]["runtimeCodeHash"] == load_artifact().runtime_code_hash
    with connect(rpc_url=anvil) as conn:
        assert (conn.chain_id, conn.registry.address) == (31337, deployment.address)
        receipt = conn.transact(register_model(conn, "acme/on-anvil"))
        assert receipt["status"] == 1
        assert conn.call(conn.registry.functions.modelIdOf("acme/on-anvil")) == 1
        logs = conn.get_logs("ModelRegistered", from_block=receipt["blockNumber"], to_block=10**6)
        assert [log["args"]["name"] for log in logs] == ["acme/on-anvil"]


def test_deploying_twice_needs_force(anvil: str, ledger_dir: Path) -> None:
    first = deploy_registry(rpc_url=anvil)
    with pytest.raises(BadInput, match=f"chain 31337 already has an llmchain registry at {first.address}"):
        deploy_registry(rpc_url=anvil)
    second = deploy_registry(rpc_url=anvil, force=True)
    assert second.address != first.address
    assert AddressBook(ledger_dir / "addresses.json").lookup(31337) == second.address


def test_the_pin_refuses_a_look_alike_contract(anvil: str, ledger_dir: Path) -> None:
    look_alike = _deploy_probe(anvil)
    AddressBook(ledger_dir / "addresses.json").record(_entry(31337, look_alike))
    expected = load_artifact().runtime_code_hash
    options: list[dict[str, Any]] = [{}, {"registry_address": look_alike}]
    for kwargs in options:
        with pytest.raises(LedgerError) as caught:
            connect(rpc_url=anvil, **kwargs)
        assert str(caught.value).startswith(f"registry at {look_alike} has runtime code hash 0x")
        assert str(caught.value).endswith(f"expected {expected}: not an llmchain registry of this version")


def test_an_entry_without_code_says_the_node_was_reset(anvil: str, ledger_dir: Path) -> None:
    AddressBook(ledger_dir / "addresses.json").record(_entry(31337, "0x" + "ab" * 20))
    with pytest.raises(LedgerError, match="no contract at 0x.* on chain 31337: .*run `llmchain deploy`"):
        connect(rpc_url=anvil)
    deploy_registry(rpc_url=anvil)  # a dead entry does not block a new deployment


def test_an_address_book_for_another_chain_is_refused(anvil: str, tmp_path: Path) -> None:
    book = tmp_path / "other.json"
    AddressBook(book).record(_entry(1, "0x" + "ab" * 20))
    expected = r"no llmchain registry recorded for chain 31337 .*\(chains recorded: 1\)"
    with pytest.raises(LedgerError, match=expected):
        connect(rpc_url=anvil, address_book=book)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ('{"format": "something-else"}', "is not an llmchain address book"),
        ('{"format": "llmchain-address-book", "version": 7, "chains": {}}', "has version 7"),
    ],
)
def test_a_broken_address_book_is_one_clear_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "addresses.json"
    path.write_text(content)
    with pytest.raises(LedgerError, match=message):
        AddressBook(path).lookup(31337)
    with pytest.raises(LedgerError, match=message):
        AddressBook(path).record(_entry(1, "0x" + "ab" * 20))
    assert path.read_text() == content  # nothing was overwritten
