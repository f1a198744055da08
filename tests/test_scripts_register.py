"""scripts/register_model.py runs as the README shows and leaves what it says on the ledger."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from llmchain.chain import connect
from llmchain.ledger import Ledger

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "register_model.py"


def test_register_model_script_records_a_run_each_time(tmp_path: Path) -> None:
    ledger_dir = tmp_path / "ledger"
    for expected_run in (1, 2):
        done = subprocess.run([sys.executable, str(SCRIPT), "acme/demo", "--ledger", str(ledger_dir)],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert f"released acme/demo 1.0.{expected_run - 1} -> step 200" in done.stdout
    with connect(ledger_dir=ledger_dir) as conn:
        ledger = Ledger(conn)
        runs = ledger.list_runs("acme/demo")
        assert [(r.id, r.status.name, r.checkpoint_count) for r in runs] == [(1, "FINISHED", 2), (2, "FINISHED", 2)]
        assert [r.label for r in ledger.list_releases("acme/demo")] == ["1.0.0", "1.0.1"]
