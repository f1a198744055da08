"""report.md, the loss curve and the lineage graph, rendered from real audits."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmchain.audit import audit
from llmchain.chain import Connection
from llmchain.errors import BadInput
from llmchain.ledger import Ledger
from llmchain.records import Lineage, Relation
from llmchain.replay import ReplayOptions
from llmchain.report import LINEAGE_NAME, LOSS_CURVE_NAME, REPORT_NAME, render_markdown, write_report
from llmchain.verify import verify_weights
from audit_support import MODEL, ckpt, commit_run, edit_weights, flip_bit

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def ledger(conn: Connection, run_dir: Path) -> Ledger:
    ledger = Ledger(conn)
    commit_run(ledger, run_dir)
    return ledger


def test_report_of_a_derived_model_with_replay(ledger: Ledger, run_dir: Path, tmp_path: Path) -> None:
    parent = verify_weights(ledger, ckpt(run_dir, 6))
    ledger.release(MODEL, "1.0.0", parent.digest)
    ledger.register_model("acme/child", parent=Lineage(Relation.FINE_TUNE, parent.model.id, parent.digest))  # type: ignore[union-attr]
    report = audit(ledger, MODEL, checkpoints=run_dir, replay=ReplayOptions(segments=1))
    path = write_report(report, tmp_path / "out")
    assert path == tmp_path / "out" / REPORT_NAME
    for name in (LOSS_CURVE_NAME, LINEAGE_NAME):
        assert (tmp_path / "out" / name).read_bytes().startswith(PNG)
    text = path.read_text()
    assert "Verdict: **PASSED**" in text and f"![validation loss]({LOSS_CURVE_NAME})" in text
    for heading in ("## Checks", "## Lineage", "## Runs", "## Checkpoint timeline", "## Releases",
                    "## Local checkpoints", "## Replay (proof of learning)"):
        assert heading in text
    assert "| 1.0.0 |" in text and "run 1 step 6" in text
    assert f"0x{report.runs[0].run.head.hex()}" in text
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted([REPORT_NAME, LOSS_CURVE_NAME, LINEAGE_NAME])
    child = write_report(audit(ledger, "acme/child"), tmp_path / "child")
    assert "fine-tune" in child.read_text() and "| yes | fine-tune of acme/micro-gpt run 1 step 6 |" in child.read_text()
    assert (tmp_path / "child" / LINEAGE_NAME).stat().st_size > 1000


def test_failed_checks_are_marked(ledger: Ledger, run_dir: Path) -> None:
    edit_weights(ckpt(run_dir, 4), lambda t: flip_bit(t, "transformer.wte.weight"))
    text = render_markdown(audit(ledger, MODEL, checkpoints=run_dir))
    assert "Verdict: **FAILED**" in text and "| local checkpoints | **FAIL** |" in text
    assert "transformer.wte.weight" in text


def test_report_dir_that_cannot_be_made_is_bad_input(ledger: Ledger, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(BadInput, match="--report"):
        write_report(audit(ledger, MODEL), blocker / "sub")
