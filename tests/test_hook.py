"""The ledger hook on a real in-memory chain: commits, crash recovery, lineage, generation."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import torch

from llmchain.chain import Connection
from llmchain.checkpoint import list_checkpoints, save_checkpoint
from llmchain.errors import BadInput, LedgerError, VerificationFailed
from llmchain.hook import LedgerHook, RunRecord, sync_run
from llmchain.ledger import Ledger
from llmchain.outbox import Outbox
from llmchain.records import Relation, RunStatus, Status
from llmchain.train import Progress, TrainRequest, generate, train
from train_support import micro

pytestmark = pytest.mark.usefixtures("one_thread")  # torch on one thread: bit-stable, no oversubscription


@pytest.fixture
def ledger(conn: Connection) -> Ledger:
    return Ledger(conn)


def _train(ledger: Any, run_dir: Path, corpus: Path, **kwargs: Any):  # type: ignore[no-untyped-def]
    config = kwargs.pop("config", micro())
    on_progress = kwargs.pop("on_progress", None)
    request = TrainRequest(run_dir, config=config, data=corpus, device="cpu", runs_root=run_dir.parent, **kwargs)
    return train(request, ledger=ledger, on_progress=on_progress)


def test_every_checkpoint_is_committed_with_its_digests(ledger: Ledger, tmp_path: Path, corpus: Path) -> None:
    events: list[Progress] = []
    result = _train(ledger, tmp_path / "run", corpus, on_progress=events.append)
    assert result.model_name == "llmchain/tiny-gpt" and result.committed == 3 and result.pending == 0
    run = ledger.get_run(result.run_id)
    assert run.status == RunStatus.FINISHED and run.checkpoint_count == 3
    record = RunRecord.read(tmp_path / "run")
    assert run.spec.config_digest.value == record.digests["config"].value
    assert run.spec.dataset_digest.value == record.digests["dataset"].value
    assert run.spec.env_digest.value == record.digests["env"].value and run.spec.base_checkpoint is None
    on_chain = ledger.list_checkpoints(result.run_id)
    for cp, info in zip(on_chain, list_checkpoints(tmp_path / "run")):
        assert (cp.step, cp.weights_digest.value, cp.state_digest.value) == (info.step, info.weights.value, info.state.value)
        assert info.data is not None and cp.data_digest.value == info.data.value
        assert cp.val_loss == pytest.approx(info.val_loss, abs=1e-9)
    assert [e.step for e in events if e.kind == "commit"] == [2, 4, 6]
    assert all(e.state == "committed" for e in Outbox(tmp_path / "run").entries())


def test_identical_second_run_reports_existing_commits(ledger: Ledger, tmp_path: Path, corpus: Path) -> None:
    first = _train(ledger, tmp_path / "a", corpus)
    events: list[Progress] = []
    second = _train(ledger, tmp_path / "b", corpus, on_progress=events.append)
    assert second.run_id != first.run_id and second.committed == 3
    notes = [e.message for e in events if e.kind == "commit"]
    assert len(notes) == 3 and all(f"already committed by run {first.run_id}" in n for n in notes)


def test_sync_commits_what_a_crash_left_behind(ledger: Ledger, tmp_path: Path) -> None:
    records = {"config": {"lr": 0.1}, "dataset": {"digest": "ab" * 32}}
    hook = LedgerHook.start(tmp_path / "run", ledger=ledger, model_name="t/crash", records=records)
    d, run_id = hook.run_dir, hook.run.run_id
    args: dict[str, Any] = dict(model_config={}, state_tensors={}, state_meta={}, segment=None, record={"val_loss": 1.0})
    save_checkpoint(d, 2, weights={"w": torch.full((3,), 2.0)}, **args)  # killed after the rename, before the journal
    Outbox(d).add(save_checkpoint(d, 4, weights={"w": torch.full((3,), 4.0)}, **args))  # killed before the commit
    six = Outbox(d).add(save_checkpoint(d, 6, weights={"w": torch.full((3,), 6.0)}, **args))
    assert [e.step for e in sync_run(d, ledger)] == [2, 4, 6]
    assert [c.step for c in ledger.list_checkpoints(run_id)] == [2, 4, 6]
    Outbox(d)._write(six)  # killed after the transaction, before the journal said so
    assert [e.step for e in sync_run(d, ledger)] == [6]
    assert ledger.get_run(run_id).checkpoint_count == 3 and not Outbox(d).pending()


def test_sync_refuses_changed_files_and_foreign_ledgers(ledger: Ledger, tmp_path: Path) -> None:
    records = {"config": {"lr": 0.1}, "dataset": {"digest": "ab" * 32}}
    hook = LedgerHook.start(tmp_path / "run", ledger=ledger, model_name="t/tamper", records=records)
    args: dict[str, Any] = dict(model_config={}, state_tensors={}, state_meta={}, segment=None, record={})
    info = save_checkpoint(hook.run_dir, 2, weights={"w": torch.zeros(4)}, **args)
    Outbox(hook.run_dir).add(info)
    weights = info.weights_path.read_bytes()
    info.weights_path.write_bytes(weights[:-1] + b"\x01")
    with pytest.raises(VerificationFailed, match="changed after saving"):
        sync_run(hook.run_dir, ledger)
    assert ledger.get_run(hook.run.run_id).checkpoint_count == 0
    run = RunRecord.read(hook.run_dir)  # as if the directory came from another ledger
    run.digests["config"] = run.digests["dataset"]
    run.write(hook.run_dir)
    with pytest.raises(BadInput, match="not the run in"):
        sync_run(hook.run_dir, ledger)


def test_slow_commits_are_reported_and_failures_surface(ledger: Ledger, tmp_path: Path, corpus: Path) -> None:
    class SlowLedger:
        """The real ledger, with a chain that takes half a second per commit."""

        def __getattr__(self, name: str) -> Any:
            return getattr(ledger, name)

        def commit_checkpoints(self, run_id: int, specs: Any) -> Any:
            time.sleep(0.5)
            return ledger.commit_checkpoints(run_id, specs)

    events: list[Progress] = []
    LedgerHook.slow_after_s, LedgerHook.inline_wait_s = 0.05, 0.0  # never wait: the loop must report instead
    try:
        result = _train(SlowLedger(), tmp_path / "slow", corpus, config=micro(max_steps=40, checkpoint_every=20),
                        on_progress=events.append)
    finally:
        LedgerHook.slow_after_s, LedgerHook.inline_wait_s = 10.0, 0.5
    assert result.committed == 2
    assert any(e.kind == "ledger_slow" and "in flight" in e.message for e in events)

    def finish_behind_our_back(event: Progress) -> None:
        if event.kind == "step" and event.step == 1:
            ledger.finish_run(RunRecord.read(tmp_path / "closed").run_id)  # type: ignore[arg-type]

    with pytest.raises(LedgerError, match="llmchain sync"):
        _train(ledger, tmp_path / "closed", corpus, on_progress=finish_behind_our_back)
    assert len(Outbox(tmp_path / "closed").pending()) == 3


def test_fine_tune_and_distill_record_lineage(ledger: Ledger, tmp_path: Path, corpus: Path) -> None:
    parent = _train(ledger, tmp_path / "parent", corpus)
    parent_ckpt = parent.checkpoints[-1]
    child = _train(ledger, tmp_path / "child", corpus, config=micro(seed=1, max_steps=2), init_from=str(parent_ckpt.path))
    model = ledger.get_model(child.model_name)
    assert child.model_name == "llmchain/tiny-gpt-ft"
    assert model.parent is not None and model.parent.relation == Relation.FINE_TUNE
    assert model.parent.model_id == ledger.get_model("llmchain/tiny-gpt").id
    assert model.parent.checkpoint is not None and model.parent.checkpoint.value == parent_ckpt.weights.value
    assert ledger.get_run(child.run_id).spec.base_checkpoint.value == parent_ckpt.weights.value  # type: ignore[union-attr]
    ledger.release("llmchain/tiny-gpt", "v1", parent_ckpt.weights.value)
    student = _train(ledger, tmp_path / "student", corpus, config=micro(n_embd=16, max_steps=2),
                     distill_from="llmchain/tiny-gpt@v1", model_name="t/student")
    lineage = ledger.get_model("t/student").parent
    assert lineage is not None and lineage.relation == Relation.DISTILL
    assert student.val_losses[-1][1] < 6.0 and student.committed == 1


def test_unverified_or_revoked_parents_are_refused(ledger: Ledger, tmp_path: Path, corpus: Path) -> None:
    offline = train(TrainRequest(tmp_path / "offline", config=micro(max_steps=2), data=corpus, device="cpu"))
    with pytest.raises(BadInput, match="not on the ledger"):
        _train(ledger, tmp_path / "child", corpus, init_from=str(offline.checkpoints[0].path))
    assert not (tmp_path / "child").exists()
    with pytest.raises(BadInput, match="no such checkpoint"):
        _train(ledger, tmp_path / "child", corpus, init_from=str(tmp_path / "missing"))
    parent = _train(ledger, tmp_path / "parent", corpus, config=micro(max_steps=2))
    models = ledger.conn.call(ledger.conn.registry.functions.modelCount())
    ledger.revoke_checkpoint(parent.checkpoints[0].weights.value, "leaked")
    with pytest.raises(BadInput, match="revoked"):
        _train(ledger, tmp_path / "child", corpus, distill_from=str(parent.checkpoints[0].path))
    assert ledger.conn.call(ledger.conn.registry.functions.modelCount()) == models


def test_generate_verifies_before_sampling(ledger: Ledger, tmp_path: Path, corpus: Path) -> None:
    result = _train(ledger, tmp_path / "run", corpus, config=micro(max_steps=2))
    ckpt = result.checkpoints[0]
    out = generate(ckpt.path, "def ", ledger=ledger, max_new_tokens=10)
    assert out.text.startswith("def ") and out.warning is None and out.ledger_record.step == 2
    offline = train(TrainRequest(tmp_path / "offline", config=micro(max_steps=2, seed=3), data=corpus, device="cpu"))
    with pytest.raises(VerificationFailed, match="not on the ledger"):
        generate(offline.checkpoints[0].weights_path, "def ", ledger=ledger)
    loose = generate(offline.checkpoints[0].path, "def ", ledger=ledger, allow_unverified=True, max_new_tokens=5)
    assert loose.warning is not None and loose.ledger_record is None and len(loose.text.encode()) >= 4
    ledger.revoke_checkpoint(ckpt.weights.value, "bad data")
    assert ledger.lookup(ckpt.weights.value).status == Status.REVOKED  # type: ignore[union-attr]
    with pytest.raises(VerificationFailed, match="revoked"):
        generate(ckpt.path, "def ", ledger=ledger)


def test_own_loop_with_a_tied_state_dict(ledger: Ledger, tmp_path: Path) -> None:
    from llmchain.model import GPT, GPTConfig

    model = GPT(GPTConfig(block_size=8, n_layer=1, n_head=1, n_embd=8))  # lm_head shares wte's storage
    hook = LedgerHook.start(tmp_path / "mine", ledger=ledger, model_name="me/own-loop",
                            records={"config": {"lr": 1e-3}, "dataset": {"digest": "cd" * 32}})
    info = hook.checkpoint(100, weights=model.state_dict(), model_config=model.config.to_dict(), val_loss=2.5)
    hook.close(finished=True)
    (committed,) = ledger.list_checkpoints(hook.run.run_id)  # type: ignore[arg-type]
    assert committed.weights_digest.value == info.weights.value and committed.data_digest is None
    assert ledger.get_run(hook.run.run_id).status == RunStatus.FINISHED  # type: ignore[arg-type]
