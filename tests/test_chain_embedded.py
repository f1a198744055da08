"""The embedded chain's log index: eth_getLogs served from the store, checked against stock eth-tester."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from chain_support import register_model
from eth_tester import EthereumTester
from eth_tester.backends.pyevm.main import PyEVMBackend
from eth_utils import event_abi_to_log_topic, to_hex
from web3 import EthereumTesterProvider, Web3
from web3.types import FilterParams, RPCEndpoint

from llmchain.chain import Connection
from llmchain.ledger import Ledger
from llmchain.records import CheckpointSpec, Digest, RunSpec

Query = Callable[[FilterParams], list[Any]]


def _digest() -> Digest:
    return Digest("tensor-sha256-v1", os.urandom(32))


def _topic(conn: Connection, event: str) -> str:
    (abi,) = [item for item in conn.registry.abi if item.get("type") == "event" and item["name"] == event]
    return to_hex(event_abi_to_log_topic(abi))


def _word(value: int | str) -> str:
    """A uint or an address as a 32-byte topic."""
    number = value if isinstance(value, int) else int(value, 16)
    return to_hex(number.to_bytes(32, "big"))


@pytest.fixture
def history(conn: Connection) -> Connection:
    """Blocks with 0, 1 and 4 logs, from two senders, events with 3 and 4 topics."""
    ledger = Ledger(conn)
    ledger.register_model("acme/one")
    Ledger(conn.as_account(1)).register_model("acme/two")
    run = ledger.start_run("acme/one", RunSpec(_digest(), _digest(), _digest(), _digest())).id
    for step in range(3):
        ledger.commit_checkpoint(run, CheckpointSpec(step, _digest(), _digest(), _digest(), 1.0))
    ledger.commit_checkpoints(run, [CheckpointSpec(10 + k, _digest(), _digest(), _digest(), None) for k in range(4)])
    ledger.finish_run(run)
    conn.transact(register_model(conn, "acme/three"))
    return conn


@pytest.fixture
def stock(history: Connection) -> Iterator[Query]:
    """web3 over stock eth-tester (scanning blocks and receipts) on the very same chain object."""
    ours = history.w3.provider._backend  # type: ignore[attr-defined]
    backend = PyEVMBackend.__new__(PyEVMBackend)
    backend.account_keys = ours.account_keys
    w3 = Web3(EthereumTesterProvider(EthereumTester(backend=backend)))

    def query(params: FilterParams) -> list[Any]:
        with ours.session(write=False):
            backend.chain = ours.chain
            return list(w3.eth.get_logs(params))

    yield query


def test_the_index_serves_the_same_logs_as_stock_eth_tester(history: Connection, stock: Query) -> None:
    conn, head = history, history.w3.eth.block_number
    registry, sender = conn.registry.address, conn.sender
    committed, registered = _topic(conn, "CheckpointCommitted"), _topic(conn, "ModelRegistered")
    filters: list[dict[str, Any]] = [
        {},
        {"address": registry},
        {"address": ["0x" + "11" * 20, registry]},
        {"address": "0x" + "11" * 20},
        {"topics": [committed]},
        {"topics": [[registered, _topic(conn, "RunStarted")]]},
        {"topics": [None, _word(1)]},
        {"topics": [committed, None, None, _word(sender)]},
        {"topics": [registered, None, [_word(sender), _word(conn.as_account(1).sender)]]},
        {"topics": [None, None, None, None]},  # four topics required: RunFinished (three) drops out
        {"topics": [None, None, None]},
    ]
    for extra in filters:
        for first, last in [(0, head), (5, 5), (6, 9), (head - 1, head)]:
            params: Any = {"fromBlock": first, "toBlock": last, **extra}
            ours = list(conn.w3.eth.get_logs(params))
            assert ours == stock(params), params
    everything = list(conn.w3.eth.get_logs({"fromBlock": 0, "toBlock": head}))
    assert len(everything) == 12 and len({log["blockNumber"] for log in everything}) == 9
    assert [log["logIndex"] for log in everything if log["blockNumber"] == 8] == [0, 1, 2, 3]


def test_ranges_resolve_tags_and_clip_at_the_head(history: Connection) -> None:
    w3, head = history.w3, history.w3.eth.block_number
    everything = list(w3.eth.get_logs({"fromBlock": 0, "toBlock": head}))
    assert list(w3.eth.get_logs({"fromBlock": "earliest", "toBlock": "latest"})) == everything
    assert list(w3.eth.get_logs({"fromBlock": 0, "toBlock": head + 1000})) == everything
    assert list(w3.eth.get_logs({"fromBlock": head + 1, "toBlock": head + 1000})) == []
    assert list(w3.eth.get_logs({"fromBlock": 7, "toBlock": 6})) == []
    latest = list(w3.eth.get_logs({"fromBlock": "latest"}))
    assert [log["blockNumber"] for log in latest] == [head]
    by_hash = list(w3.eth.get_logs({"blockHash": everything[-2]["blockHash"]}))
    assert by_hash == [log for log in everything if log["blockNumber"] == everything[-2]["blockNumber"]]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"fromBlock": "yesterday"}, "is not a number or block tag"),
        ({"address": "0x1234"}, "is not an address"),
        ({"topics": ["0x12"]}, "is not 32 bytes of hex"),
        ({"topics": [None] * 5}, "at most 4 entries"),
        ({"blockHash": "0x" + "ab" * 32}, "no block has hash"),
    ],
)
def test_a_bad_filter_is_a_json_rpc_error(conn: Connection, params: dict[str, Any], message: str) -> None:
    response = conn.w3.provider.make_request(RPCEndpoint("eth_getLogs"), [params])
    assert response["error"]["code"] == -32602 and message in response["error"]["message"]


def test_logs_of_a_rolled_back_block_vanish_with_it(conn: Connection) -> None:
    """Index rows commit with their block: a block that never commits leaves no logs behind."""
    conn.transact(register_model(conn, "acme/one"))
    head, store = conn.w3.eth.block_number, conn.w3.provider._backend.store  # type: ignore[attr-defined]
    with pytest.raises(RuntimeError, match="crash before commit"), store.write():
        conn.transact(register_model(conn, "acme/two"))
        names = [log["args"]["name"] for log in conn.get_logs("ModelRegistered", from_block=0, to_block=head + 1)]
        assert names == ["acme/one", "acme/two"]  # mined and indexed inside the open transaction
        raise RuntimeError("crash before commit")
    assert conn.w3.eth.block_number == head
    assert list(conn.w3.eth.get_logs({"fromBlock": head + 1, "toBlock": head + 1})) == []
    conn.transact(register_model(conn, "acme/three"))
    names = [log["args"]["name"] for log in conn.get_logs("ModelRegistered", from_block=0, to_block=head + 1)]
    assert names == ["acme/one", "acme/three"]
