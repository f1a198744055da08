#!/usr/bin/env python3
"""Audit a model's training history against the ledger with the library, in about thirty lines.

    python3 dev.py run python scripts/audit_history.py llmchain/tiny-gpt [--checkpoints runs/tiny-gpt] [--replay] [--report DIR] [--ledger DIR]

Reconstructs lineage, runs, the checkpoint timeline and releases; checks each run's hash chain,
step order, releases and parent links; with --checkpoints matches local files (and with --replay
re-runs one training segment); with --report writes report.md and two figures. Exits 1 on a failed check.
"""

import argparse
import sys
from pathlib import Path

from llmchain.audit import audit
from llmchain.chain import connect
from llmchain.errors import LLMChainError
from llmchain.ledger import Ledger
from llmchain.replay import ReplayOptions
from llmchain.report import write_report

parser = argparse.ArgumentParser(description="Audit a model's history against the ledger.")
parser.add_argument("model", help="model name, e.g. llmchain/tiny-gpt")
parser.add_argument("--checkpoints", type=Path, help="local run directory to match against the ledger")
parser.add_argument("--replay", action="store_true", help="re-run the last recorded training segment")
parser.add_argument("--report", type=Path, help="write report.md, loss-curve.png and lineage.png here")
parser.add_argument("--ledger", help="embedded ledger directory (default ./.llmchain)")
args = parser.parse_args()

try:
    with connect(ledger_dir=args.ledger) as conn:
        report = audit(Ledger(conn), args.model, checkpoints=args.checkpoints,
                       replay=ReplayOptions(segments=1) if args.replay else None)
except LLMChainError as err:  # bad input (exit 2) or a ledger/chain error (exit 3)
    print(f"Error: {err}", file=sys.stderr)
    sys.exit(err.exit_code)

for link in report.lineage:
    print(f"lineage: {link.model.name}: {link.detail}")
for history in report.runs:
    losses = ", ".join(f"{c.step}:{c.val_loss:.3f}" for c in history.checkpoints if c.val_loss is not None)
    print(f"run {history.run.id} ({history.run.status.name.lower()}): {len(history.checkpoints)} checkpoints [{losses}]")
for local in report.local:
    print(f"local {local.status}: {local.path or f'step {local.step}'}")
for check in report.checks:
    print(f"[{'ok' if check.ok else 'FAIL'}] {check.name}: {check.detail}")
if args.report is not None:
    print(f"report: {write_report(report, args.report)}")
sys.exit(0 if report.ok else 1)
