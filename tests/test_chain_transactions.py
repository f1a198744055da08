"""Sending on a real node: reverts caught at estimation, status-0 receipts replayed and decoded."""

from __future__ import annotations

from pathlib import Path

import pytest
from chain_support import deploy_probe

from llmchain.chain import Connection, connect, deploy_registry
from llmchain.errors import ContractRevert

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
    receipt = node.w3.eth.get_block(block + 1, full_transactions=True)["transactions"][0]
    assert node.w3.eth.get_transaction_receipt(receipt["hash"])["status"] == 0
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
