"""The typed client on a real eth-tester chain: records, validation before sending, verification."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from llmchain.chain import Connection, connect, deploy_registry
from llmchain.errors import BadInput, ContractRevert, VerificationFailed
from llmchain.history import chain_head
from llmchain.ledger import Ledger
from llmchain.records import (
    CheckpointSpec,
    Digest,
    Lineage,
    Relation,
    RunSpec,
    RunStatus,
    Status,
)


def digest(algorithm: str = "sha256") -> Digest:
    return Digest(algorithm, os.urandom(32))


def run_spec(base: Digest | None = None) -> RunSpec:
    return RunSpec(digest(), digest(), digest(), digest(), base)


def checkpoint(step: int, loss: float | None = 2.5) -> CheckpointSpec:
    return CheckpointSpec(step, digest("tensor-sha256-v1"), digest("tensor-sha256-v1"), digest(), loss)


@pytest.fixture
def ledger(conn: Connection) -> Ledger:
    return Ledger(conn)


@pytest.fixture
def run_id(ledger: Ledger) -> int:
    ledger.register_model("acme/tiny-gpt", digest())
    return ledger.start_run("acme/tiny-gpt", run_spec()).id


def test_register_and_get_model(ledger: Ledger, conn: Connection) -> None:
    card = digest()
    model = ledger.register_model("acme/tiny-gpt", card)
    assert (model.id, model.name, model.owner, model.card, model.parent) == (1, "acme/tiny-gpt", conn.sender, card, None)
    assert ledger.get_model("acme/tiny-gpt") == ledger.get_model(1) == ledger.get_model("1") == model
    child = ledger.register_model("acme/tiny-chat", parent=Lineage(Relation.FINE_TUNE, model.id))
    assert child.parent == Lineage(Relation.FINE_TUNE, 1, None) and child.card is None


def test_bad_input_is_refused_before_sending(ledger: Ledger, conn: Connection) -> None:
    ledger.register_model("acme/tiny-gpt")
    block = conn.w3.eth.block_number
    with pytest.raises(BadInput, match="already registered \\(id 1\\)"):
        ledger.register_model("acme/tiny-gpt")
    with pytest.raises(BadInput, match="invalid model name 'Acme'"):
        ledger.register_model("Acme")
    for unknown in ("acme/nope", 7, "0"):
        with pytest.raises(BadInput, match="unknown model"):
            ledger.get_model(unknown)
    with pytest.raises(BadInput, match="invalid account address"):
        ledger.grant_trainer("acme/tiny-gpt", "0x1234")
    with pytest.raises(BadInput, match="invalid run id"):
        ledger.get_run(0)
    with pytest.raises(BadInput, match="invalid release label"):
        ledger.release("acme/tiny-gpt", "not a label", os.urandom(32))
    with pytest.raises(BadInput, match="reason must be 1 to 256 bytes"):
        ledger.revoke_checkpoint(os.urandom(32), "")
    with pytest.raises(BadInput, match="1 to 256 checkpoints"):
        ledger.commit_checkpoints(1, [])
    assert conn.w3.eth.block_number == block  # nothing was sent


def test_runs_round_trip(ledger: Ledger, conn: Connection) -> None:
    ledger.register_model("acme/tiny-gpt")
    spec = run_spec(base=digest("tensor-sha256-v1"))
    run = ledger.start_run("acme/tiny-gpt", spec)
    assert (run.id, run.model_id, run.status, run.trainer, run.spec) == (1, 1, RunStatus.OPEN, conn.sender, spec)
    assert run.checkpoint_count == 0 and len(run.head) == 32
    second = ledger.start_run(1, run_spec())
    assert [r.id for r in ledger.list_runs("acme/tiny-gpt")] == [1, 2]
    assert [r.id for r in ledger.list_runs(1, offset=1, limit=5)] == [2]
    assert ledger.abort_run(second.id).status is RunStatus.ABORTED
    assert ledger.finish_run(run.id).status is RunStatus.FINISHED


def test_commit_returns_full_records(ledger: Ledger, conn: Connection, run_id: int) -> None:
    spec = checkpoint(100, loss=3.14159)
    committed = ledger.commit_checkpoint(run_id, spec)
    block = conn.w3.eth.get_block(committed.block_number)
    assert (committed.run_id, committed.model_id, committed.index, committed.step) == (run_id, 1, 0, 100)
    assert (committed.weights_digest, committed.state_digest, committed.data_digest) == (
        spec.weights_digest, spec.state_digest, spec.data_digest,
    )  # fmt: skip
    assert committed.val_loss == 3.14159 and committed.committer == conn.sender
    assert committed.timestamp == block["timestamp"] and committed.status is Status.ACTIVE
    assert ledger.lookup(spec.weights_digest) == committed == ledger.lookup(spec.weights_digest.value)
    assert ledger.lookup(digest("tensor-sha256-v1")) is None


def test_lookup_checks_the_algorithm(ledger: Ledger, run_id: int) -> None:
    spec = checkpoint(1)
    ledger.commit_checkpoint(run_id, spec)
    with pytest.raises(VerificationFailed, match="committed as a tensor-sha256-v1 digest, not sha256"):
        ledger.lookup(Digest("sha256", spec.weights_digest.value))


def test_batch_commit_and_paged_listing(ledger: Ledger, conn: Connection, run_id: int) -> None:
    ledger.commit_checkpoint(run_id, checkpoint(1))
    batch = [checkpoint(10 * i, loss=None if i == 3 else 1.0 / i) for i in range(1, 11)]
    committed = ledger.commit_checkpoints(run_id, batch)
    assert [c.index for c in committed] == list(range(1, 11))
    assert len({c.block_number for c in committed}) == 1 and committed[2].val_loss is None
    everything = ledger.list_checkpoints(run_id)
    assert [c.step for c in everything] == [1] + [10 * i for i in range(1, 11)]
    assert everything[1:] == committed
    assert ledger.list_checkpoints(run_id, offset=3, limit=2) == everything[3:5]
    assert ledger.list_checkpoints(run_id, offset=11) == []
    with pytest.raises(BadInput, match="1 to 256 checkpoints"):
        ledger.commit_checkpoints(run_id, [checkpoint(1000 + i) for i in range(257)])
    run = ledger.get_run(run_id)
    assert chain_head(conn.chain_id, conn.registry.address, run_id, everything) == run.head
    assert ledger.verify_chain(run_id) == ledger.run_head(run_id)
    assert ledger.run_head(run_id).checkpoint_count == 11


def test_contract_errors_surface_decoded(ledger: Ledger, run_id: int) -> None:
    ledger.commit_checkpoint(run_id, checkpoint(5))
    with pytest.raises(ContractRevert) as caught:
        ledger.commit_checkpoint(run_id, checkpoint(5))
    assert caught.value.name == "RegistryStepNotIncreasing"
    assert caught.value.args_by_name == {"runId": run_id, "step": 5, "lastStep": 5}
    ledger.finish_run(run_id)
    with pytest.raises(ContractRevert, match=r"RegistryRunClosed\(runId=1, status=2\)"):
        ledger.commit_checkpoint(run_id, checkpoint(6))


def test_roles_and_ownership(ledger: Ledger, conn: Connection, run_id: int) -> None:
    trainer = Ledger(conn.as_account(1))
    with pytest.raises(ContractRevert, match="RegistryNotTrainer"):
        trainer.commit_checkpoint(run_id, checkpoint(1))
    ledger.grant_trainer("acme/tiny-gpt", trainer.conn.sender)
    assert ledger.can_train("acme/tiny-gpt", trainer.conn.sender)
    assert trainer.commit_checkpoint(run_id, checkpoint(1)).committer == trainer.conn.sender
    ledger.revoke_trainer("acme/tiny-gpt", trainer.conn.sender)
    with pytest.raises(ContractRevert, match="RegistryNotTrainer"):
        trainer.commit_checkpoint(run_id, checkpoint(2))
    ledger.transfer_ownership("acme/tiny-gpt", trainer.conn.sender)
    assert ledger.get_model(1).pending_owner == trainer.conn.sender
    trainer.accept_ownership("acme/tiny-gpt")
    assert ledger.get_model(1).owner == trainer.conn.sender and ledger.get_model(1).pending_owner is None


def test_releases_and_revocation(ledger: Ledger, run_id: int) -> None:
    first = ledger.commit_checkpoint(run_id, checkpoint(1))
    second = ledger.commit_checkpoint(run_id, checkpoint(2))
    release = ledger.release("acme/tiny-gpt", "1.0.0", first.weights_digest)
    assert (release.label, release.checkpoint, release.status) == ("1.0.0", first, Status.ACTIVE)
    ledger.release("acme/tiny-gpt", "1.1.0", second.weights_digest.value)
    assert [r.label for r in ledger.list_releases("acme/tiny-gpt")] == ["1.0.0", "1.1.0"]
    ledger.release("acme/tiny-gpt", "1.0.1", first.weights_digest)
    model = ledger.get_model("acme/tiny-gpt")
    assert [r.label for r in ledger.releases_naming(model, first.weights_digest)] == ["1.0.0", "1.0.1"]
    assert [r.label for r in ledger.releases_naming(model, second.weights_digest.value)] == ["1.1.0"]
    ledger.deprecate_release("acme/tiny-gpt", "1.0.0", "superseded by 1.1.0")
    assert ledger.get_release(1, "1.0.0").status is Status.DEPRECATED
    ledger.revoke_checkpoint(second.weights_digest, "trained on leaked eval data")
    revoked = ledger.lookup(second.weights_digest)
    assert revoked is not None and revoked.status is Status.REVOKED
    assert [c.status for c in ledger.list_checkpoints(run_id)] == [Status.ACTIVE, Status.REVOKED]
    assert ledger.get_release(1, "1.1.0").checkpoint.status is Status.REVOKED
    ledger.revoke_release("acme/tiny-gpt", "1.1.0", "weights revoked")
    with pytest.raises(ContractRevert, match="RegistryInvalidTransition"):
        ledger.deprecate_checkpoint(second.weights_digest, "undo")
    with pytest.raises(ContractRevert, match="RegistryInvalidTransition"):
        ledger.revoke_release("acme/tiny-gpt", "1.1.0", "again")


def test_listing_a_run_committed_one_block_per_checkpoint(ledger: Ledger, conn: Connection, run_id: int) -> None:
    """What training does: each checkpoint its own transaction, so the run spans many blocks."""
    ledger.register_model("acme/other", digest())
    other = ledger.start_run("acme/other", run_spec()).id
    committed = []
    for step in range(12):
        committed.append(ledger.commit_checkpoint(run_id, checkpoint(step, loss=step / 10)))
        ledger.commit_checkpoint(other, checkpoint(100 + step))  # interleaved: another run's blocks
    listed = ledger.list_checkpoints(run_id)
    assert listed == committed and [c.index for c in listed] == list(range(12))
    assert len({c.block_number for c in listed}) == 12
    assert ledger.list_checkpoints(run_id, offset=10) == committed[10:]
    assert [c.step for c in ledger.list_checkpoints(other)] == [100 + s for s in range(12)]


class UntrustedNode:
    """The real connection, but its logs pass through ``alter`` first: a node that lies about history."""

    def __init__(self, conn: Connection, alter: Any) -> None:
        self._conn, self._alter = conn, alter

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def get_logs(self, event_name: str, **kwargs: Any) -> list[Any]:
        return self._alter(self._conn.get_logs(event_name, **kwargs))


def _with_step(event: Any, step: int) -> Any:
    return {**event, "args": {**event["args"], "step": step}}


@pytest.mark.parametrize(
    ("alter", "message"),
    [
        (lambda logs: logs[:-1], "the history is incomplete"),
        (lambda logs: [logs[0], _with_step(logs[1], 99), *logs[2:]], "do not reproduce the on-chain hash-chain head"),
    ],
)
def test_listing_detects_a_lying_node(ledger: Ledger, conn: Connection, run_id: int, alter: Any, message: str) -> None:
    ledger.commit_checkpoints(run_id, [checkpoint(1), checkpoint(2), checkpoint(3)])
    liar = Ledger(UntrustedNode(conn, alter))  # type: ignore[arg-type]
    with pytest.raises(VerificationFailed, match=message):
        liar.list_checkpoints(run_id)
    with pytest.raises(VerificationFailed, match=message):
        liar.verify_chain(run_id)


@pytest.mark.slow
def test_hash_chain_verifies_on_a_real_node(anvil: str, tmp_path: Path) -> None:
    """anvil has its own chain id, clock and log store: the off-chain chain must still match."""
    book = tmp_path / "addresses.json"
    deploy_registry(rpc_url=anvil, address_book=book)
    with connect(rpc_url=anvil, address_book=book) as conn:
        ledger = Ledger(conn)
        ledger.register_model("acme/tiny-gpt")
        run_id = ledger.start_run(1, run_spec()).id
        singles = [ledger.commit_checkpoint(run_id, checkpoint(step)) for step in range(3)]
        ledger.commit_checkpoints(run_id, [checkpoint(10 + i, loss=None) for i in range(5)])
        ledger.revoke_checkpoint(singles[1].weights_digest, "bad shard")
        listed = ledger.list_checkpoints(run_id)
        assert [c.step for c in listed] == [0, 1, 2, 10, 11, 12, 13, 14] and listed[:3] != singles
        assert [c.status for c in listed[:3]] == [Status.ACTIVE, Status.REVOKED, Status.ACTIVE]
        assert ledger.verify_chain(run_id).checkpoint_count == 8
