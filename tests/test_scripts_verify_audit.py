"""The design card's scripts/verify_checkpoint.py and scripts/audit_history.py, run as a user runs them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from llmchain.chain import connect
from llmchain.ledger import Ledger
from audit_support import MODEL, ckpt, commit_run, edit_weights, flip_bit, trained_run

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


@pytest.fixture
def run_dir(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, ledger_dir: Path) -> Path:
    run = trained_run(tmp_path_factory.getbasetemp() / "shared-run", tmp_path / "run")
    with connect(ledger_dir=ledger_dir) as conn:
        commit_run(Ledger(conn), run)
    return run


def script(name: str, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPTS / name), *map(str, args)], capture_output=True, text=True, timeout=300)


def test_verify_checkpoint_script(run_dir: Path, ledger_dir: Path) -> None:
    ok = script("verify_checkpoint.py", ckpt(run_dir, 4), "--ledger", ledger_dir)
    assert ok.returncode == 0 and f"{MODEL} run 1 step 4" in ok.stdout and ok.stdout.rstrip().endswith("verified")
    edit_weights(ckpt(run_dir, 4), lambda t: flip_bit(t, "transformer.wte.weight"))
    bad = script("verify_checkpoint.py", ckpt(run_dir, 4), "--expect", "1:4", "--ledger", ledger_dir)
    assert bad.returncode == 1 and "changed transformer.wte.weight (data)" in bad.stdout
    unknown = script("verify_checkpoint.py", ckpt(run_dir, 4), "--expect", "1:5", "--ledger", ledger_dir)
    assert unknown.returncode == 2 and unknown.stderr.startswith("Error: ") and "Traceback" not in unknown.stderr


def test_audit_history_script(run_dir: Path, ledger_dir: Path, tmp_path: Path) -> None:
    ok = script("audit_history.py", MODEL, "--checkpoints", run_dir, "--replay", "--report", tmp_path / "r", "--ledger", ledger_dir)
    assert ok.returncode == 0, ok.stderr
    assert "[ok] replay: 1 segment(s) reproduced (exact test)" in ok.stdout and (tmp_path / "r" / "report.md").is_file()
    (ckpt(run_dir, 6) / "segment.json").write_text((ckpt(run_dir, 4) / "segment.json").read_text())
    bad = script("audit_history.py", MODEL, "--checkpoints", run_dir, "--ledger", ledger_dir)
    assert bad.returncode == 1 and "[FAIL] local checkpoints" in bad.stdout and "data order" in bad.stdout
