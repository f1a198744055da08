"""Sending on a real node: reverts caught at estimation, status-0 receipts replayed and decoded."""

from __future__ import annotations

from pathlib import Path

import pytest
from chain_support import deploy_probe, register_model

from llmchain.chain import Connection, connect, deploy_registry
from llmchain.errors import ContractRevert, LedgerError

pytestmark = pytest.mark.slow  # drives a real anvil node


@pytest.fixture
def node(anvil: str, ledger_dir: Path) -> Connection:
    deploy_registry(rpc_url=anvil)
    return connect(rpc_url=anvil)


def test_a_revert_is_caught_before_sending_when_gas_is_estimated(node: Connection) -> None:
    block = node.w3.eth.block_number
    with pytest.raises(ContractRevert, match=r"^RegistryUnknownModel\(modelId=7\)$"):
        node.transact(node.registry.functions.grantTrainer(7, node.sender))
    assert node.w3.eth.block_number == block  # nothing was mined


def test_a_status_0_receipt_is_replayed_and_decoded(node: Connection) -> None:
    block = node.w3.eth.block_number
    with pytest.raises(ContractRevert) as caught:
        node.transact(node.registry.functions.grantTrainer(7, node.sender), gas=200_000)
    assert node.w3.eth.block_number == block + 1  # mined, with status 0
    mined = node.w3.eth.get_block(block + 1)["transactions"]
    assert node.w3.eth.get_transaction_receipt(mined[0])["status"] == 0  # type: ignore[arg-type]
    assert (caught.value.name, caught.value.args_by_name) == ("RegistryUnknownModel", {"modelId": 7})


def test_builtin_errors_are_decoded_from_a_node(node: Connection) -> None:
    probe = deploy_probe(node)
    node.transact(probe.functions.store(3))
    assert node.call(probe.functions.value()) == 3
    with pytest.raises(ContractRevert, match=f"^ChainProbeRejected\\(account={node.sender}, value=0\\)$"):
        node.transact(probe.functions.store(0))
    with pytest.raises(ContractRevert, match=r"^Error\(reason='no way'\)$"):
        node.call(probe.functions.fail("no way"))
    with pytest.raises(ContractRevert, match=r"^Panic\(code=18\): division or modulo by zero$"):
        node.call(probe.functions.divide(1, 0))


def test_running_out_of_gas_on_chain_is_one_clear_line(node: Connection) -> None:
    with pytest.raises(LedgerError) as caught:
        node.transact(register_model(node, "acme/starved"), gas=30_000)
    message = str(caught.value)
    assert message.startswith("transaction 0x") and "failed on-chain (status 0, 30000 of 30000 gas used" in message
    assert "OutOfGas" in message and "\n" not in message
