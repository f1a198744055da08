"""Event codecs: filter topics and eth_abi decoding that must equal web3's own EventData."""

from __future__ import annotations

import os

import pytest

from llmchain.chain import Connection
from llmchain.chain.events import event_codecs
from llmchain.errors import BadInput
from llmchain.ledger import Ledger
from llmchain.records import CheckpointSpec, Digest, Lineage, Relation, RunSpec


def _digest() -> Digest:
    return Digest("tensor-sha256-v1", os.urandom(32))


def _every_event(conn: Connection) -> None:
    """Emit each of the registry's fourteen events at least once."""
    owner, other = Ledger(conn), Ledger(conn.as_account(1))
    owner.register_model("acme/base")
    first = owner.start_run("acme/base", RunSpec(_digest(), _digest(), _digest(), _digest())).id
    specs = [CheckpointSpec(k, _digest(), _digest(), _digest(), 0.5) for k in (1, 2)]
    kept, dropped = owner.commit_checkpoints(first, specs)
    owner.finish_run(first)
    owner.abort_run(owner.start_run("acme/base", RunSpec(_digest(), _digest(), _digest(), _digest())).id)
    owner.register_model("acme/tuned", parent=Lineage(Relation.FINE_TUNE, 1, kept.weights_digest))
    owner.grant_trainer("acme/base", other.conn.sender)
    owner.revoke_trainer("acme/base", other.conn.sender)
    owner.release("acme/base", "1.0.0", kept.weights_digest)
    owner.deprecate_release("acme/base", "1.0.0", "superseded")
    owner.revoke_release("acme/base", "1.0.0", "withdrawn")
    owner.deprecate_checkpoint(kept.weights_digest, "old")
    owner.revoke_checkpoint(dropped.weights_digest, "leaked")
    owner.transfer_ownership("acme/base", other.conn.sender)
    other.accept_ownership("acme/base")


def test_decoding_equals_web3s_event_data_for_every_event(conn: Connection) -> None:
    _every_event(conn)
    codecs = event_codecs(conn.registry.abi)
    logs = list(conn.w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest", "address": conn.registry.address}))
    seen = set()
    for log in logs:
        (codec,) = [c for c in codecs.values() if c.topic0 == bytes(log["topics"][0])]
        ours, web3s = codec.decode(log), conn.registry.events[codec.name]().process_log(log)
        assert ours == web3s and type(ours) is type(web3s) and type(ours["args"]) is type(web3s["args"])
        seen.add(codec.name)
    assert seen == set(codecs) and len(codecs) == 14


def test_get_logs_filters_on_indexed_arguments_including_any_of_lists(conn: Connection) -> None:
    _every_event(conn)
    base, tuned = (
        conn.get_logs("ModelRegistered", from_block=0, to_block=100, argument_filters={"modelId": i}) for i in (1, 2)
    )
    assert [e["args"]["name"] for e in base + tuned] == ["acme/base", "acme/tuned"]
    assert (tuned[0]["args"]["parentModelId"], tuned[0]["args"]["relation"]) == (1, int(Relation.FINE_TUNE))
    both = conn.get_logs("ModelRegistered", from_block=0, to_block=100, argument_filters={"modelId": [2, 1]})
    assert both == base + tuned
    moved = conn.get_logs(
        "OwnershipTransferred", from_block=0, to_block=100, argument_filters={"newOwner": conn.as_account(1).sender}
    )
    assert len(moved) == 1 and moved[0]["args"]["previousOwner"] == conn.sender


def test_filters_on_unknown_or_unindexed_arguments_and_bad_values_are_bad_input(conn: Connection) -> None:
    with pytest.raises(BadInput, match="no indexed argument named name"):
        conn.get_logs("ModelRegistered", from_block=0, to_block=1, argument_filters={"name": "acme/base"})
    with pytest.raises(BadInput, match="invalid value 'x' for modelId"):
        conn.get_logs("ModelRegistered", from_block=0, to_block=1, argument_filters={"modelId": "x"})


def test_a_log_of_another_event_is_refused(conn: Connection) -> None:
    _every_event(conn)
    codecs = event_codecs(conn.registry.abi)
    started = "0x" + codecs["RunStarted"].topic0.hex()
    (log, *_) = conn.w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest", "topics": [started]})
    with pytest.raises(ValueError, match="is not a CheckpointCommitted log"):
        codecs["CheckpointCommitted"].decode(log)
