"""audit(): history reconstruction and checks on a real chain, with a really trained micro GPT."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from web3.datastructures import AttributeDict

from llmchain.audit import MATCHED, MISSING, TAMPERED, UNCOMMITTED, audit
from llmchain.chain import Connection
from llmchain.errors import BadInput
from llmchain.history import chain_head
from llmchain.ledger import Ledger
from llmchain.records import CheckpointSpec, Digest, Lineage, Relation, RunSpec, Status
from llmchain.verify import verify_weights
from audit_support import MODEL, ckpt, edit_weights, flip_bit

TENSOR = "transformer.h.1.attn.c_proj.weight"


def check(report: Any, name: str) -> Any:
    (found,) = [c for c in report.checks if c.name == name]
    return found


def test_honest_history_passes_every_check(ledger: Ledger, run_dir: Path) -> None:
    report = audit(ledger, MODEL, checkpoints=run_dir)
    assert report.ok, [c for c in report.checks if not c.ok]
    assert [c.name for c in report.checks] == [
        "hash chain", "steps increase", "releases", "lineage", "local checkpoints", "run records"]
    (record,) = report.run_records
    assert record.run_id == 1 and record.mismatched == () and record.records["config"]["train"]["seed"] == 7
    (history,) = report.runs
    assert [c.step for c in history.checkpoints] == [2, 4, 6]
    assert history.recomputed_head == history.run.head == ledger.run_head(1).head
    assert [m.status for m in report.local] == [MATCHED] * 3
    assert history.run.spec.dataset_digest.algorithm == "dataset-sha256-v1"
    assert len(report.lineage) == 1 and report.lineage[0].verified is None


def test_provider_hiding_one_event_is_caught(ledger: Ledger) -> None:
    real = ledger.conn.get_logs

    def drop_one(event_name: str, **kwargs: Any) -> list[Any]:
        logs = real(event_name, **kwargs)
        return [log for log in logs if not (event_name == "CheckpointCommitted" and log["args"]["index"] == 1)]

    ledger.conn.get_logs = drop_one  # type: ignore[method-assign]  # a real chain; only the log reader lies
    report = audit(ledger, MODEL)
    assert not report.ok and not check(report, "hash chain").ok
    assert "incomplete" in check(report, "hash chain").detail
    assert report.runs[0].checkpoints == () and report.runs[0].problem


def test_provider_altering_one_event_is_caught_by_the_head(ledger: Ledger) -> None:
    real = ledger.conn.get_logs

    def alter(event_name: str, **kwargs: Any) -> list[Any]:
        logs = real(event_name, **kwargs)
        if event_name != "CheckpointCommitted":
            return logs
        return [AttributeDict({**log, "args": AttributeDict({**log["args"], "valLoss": 1})})
                if log["args"]["index"] == 2 else log for log in logs]

    ledger.conn.get_logs = alter  # type: ignore[method-assign]
    report = audit(ledger, MODEL)
    assert not check(report, "hash chain").ok
    assert "do not reproduce the on-chain hash-chain head" in check(report, "hash chain").detail


def test_steps_increase_and_pages_past_one_batch(conn: Connection) -> None:
    ledger = Ledger(conn)
    ledger.register_model("acme/long")
    spec = RunSpec(*(Digest("x-v1", os.urandom(32)) for _ in range(4)))
    run = ledger.start_run("acme/long", spec)
    specs = [CheckpointSpec(10 * (i + 1), Digest("x-v1", os.urandom(32)), val_loss=5 - i / 100) for i in range(300)]
    ledger.commit_checkpoints(run.id, specs[:256])
    ledger.commit_checkpoints(run.id, specs[256:])
    report = audit(ledger, "acme/long")
    assert report.ok and len(report.runs[0].checkpoints) == 300
    assert report.runs[0].checkpoints[-1].step == 3000


def test_local_checkpoints_matched_tampered_missing_uncommitted(ledger: Ledger, run_dir: Path) -> None:
    edit_weights(ckpt(run_dir, 2), lambda t: flip_bit(t, TENSOR))
    shutil.rmtree(ckpt(run_dir, 4))
    stray = run_dir / "ckpt-000008"
    shutil.copytree(ckpt(run_dir, 6), stray)
    (stray / "checkpoint.json").write_text((stray / "checkpoint.json").read_text().replace('"step": 6', '"step": 8'))
    report = audit(ledger, MODEL, checkpoints=run_dir)
    by_status = {m.status: m for m in report.local}
    assert sorted(m.status for m in report.local) == sorted([TAMPERED, MISSING, MATCHED, UNCOMMITTED])
    tampered = by_status[TAMPERED]
    assert tampered.step == 2 and tampered.diff is not None
    assert tampered.diff.changed == (TENSOR,) and TENSOR in tampered.detail
    assert by_status[MISSING].step == 4 and by_status[MISSING].path is None
    assert by_status[UNCOMMITTED].step == 8 and "run 1 step 6" in by_status[UNCOMMITTED].detail
    assert not check(report, "local checkpoints").ok


def test_swapped_files_and_edited_state_are_tampered(ledger: Ledger, run_dir: Path) -> None:
    a, b = ckpt(run_dir, 2) / "model.safetensors", ckpt(run_dir, 4) / "model.safetensors"
    tmp = a.with_name("swap")
    a.rename(tmp), b.rename(a), tmp.rename(b)
    shutil.copy(ckpt(run_dir, 2) / "state.safetensors", ckpt(run_dir, 6) / "state.safetensors")
    report = audit(ledger, MODEL, checkpoints=run_dir)
    details = {m.step: m.detail for m in report.local if m.status == TAMPERED}
    assert "run 1 step 4 (swapped?)" in details[2] and "run 1 step 2 (swapped?)" in details[4]
    assert "training state differs" in details[6]


def test_edited_run_record_is_flagged(ledger: Ledger, run_dir: Path) -> None:
    record = json.loads((run_dir / "run.json").read_text())
    record["records"]["config"]["train"]["learning_rate"] = 0.1
    (run_dir / "run.json").write_text(json.dumps(record))
    report = audit(ledger, MODEL, checkpoints=run_dir)
    assert report.run_records[0].mismatched == ("config",)
    assert not check(report, "run records").ok and "config record(s) differ" in check(report, "run records").detail


def test_release_of_revoked_checkpoint_is_flagged(ledger: Ledger, run_dir: Path) -> None:
    digest = verify_weights(ledger, ckpt(run_dir, 6)).digest
    ledger.release(MODEL, "1.0.0", digest)
    assert check(audit(ledger, MODEL), "releases").ok
    ledger.revoke_checkpoint(digest, "bad data")
    report = audit(ledger, MODEL)
    assert not check(report, "releases").ok and "revoked checkpoint" in check(report, "releases").detail
    assert report.releases[0].checkpoint.status is Status.REVOKED


def test_lineage_verified_by_digest_and_revocation_breaks_it(ledger: Ledger, run_dir: Path) -> None:
    parent = verify_weights(ledger, ckpt(run_dir, 6))
    assert parent.model is not None
    ledger.register_model("acme/child", parent=Lineage(Relation.FINE_TUNE, parent.model.id, parent.digest))
    ledger.register_model("acme/grandchild", parent=Lineage(Relation.DISTILL, None, parent.digest))
    report = audit(ledger, "acme/grandchild")
    assert [l.model.name for l in report.lineage] == [MODEL, "acme/grandchild"]
    assert report.lineage[-1].verified is True and "distill of acme/micro-gpt run 1 step 6" in report.lineage[-1].detail
    child = audit(ledger, "acme/child")
    assert check(child, "lineage").ok and child.lineage[-1].parent_checkpoint.step == 6  # type: ignore[union-attr]
    ledger.revoke_checkpoint(parent.digest, "contaminated")
    revoked = audit(ledger, "acme/child")
    assert not check(revoked, "lineage").ok and "revoked" in check(revoked, "lineage").detail


def test_external_parent_is_reported_not_verifiable(conn: Connection) -> None:
    ledger = Ledger(conn)
    ledger.register_model("acme/ft", parent=Lineage(Relation.FINE_TUNE, None, Digest("sha256", os.urandom(32))))
    report = audit(ledger, "acme/ft")
    assert check(report, "lineage").ok and report.lineage[0].verified is None
    assert "external" in report.lineage[0].detail


def test_run_filter_and_bad_input(ledger: Ledger, run_dir: Path, conn: Connection) -> None:
    ledger.register_model("acme/other")
    ledger.start_run("acme/other", RunSpec(*(Digest("x-v1", os.urandom(32)) for _ in range(4))))
    assert [h.run.id for h in audit(ledger, MODEL, run_id=1).runs] == [1]
    with pytest.raises(BadInput, match="belongs to model id"):
        audit(ledger, MODEL, run_id=2)
    with pytest.raises(BadInput, match="not a directory"):
        audit(ledger, MODEL, checkpoints=run_dir / "nope")
    with pytest.raises(BadInput, match="unknown model"):
        audit(ledger, "acme/nobody")
    from llmchain.replay import ReplayOptions

    with pytest.raises(BadInput, match="--replay needs --checkpoints"):
        audit(ledger, MODEL, replay=ReplayOptions())


def test_recomputed_head_equals_the_contract(ledger: Ledger) -> None:
    report = audit(ledger, MODEL)
    history = report.runs[0]
    conn = ledger.conn
    assert chain_head(conn.chain_id, conn.registry.address, 1, history.checkpoints[:2]) != history.run.head
    assert chain_head(conn.chain_id, conn.registry.address, 1, history.checkpoints) == history.run.head
