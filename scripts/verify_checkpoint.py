#!/usr/bin/env python3
"""Verify a checkpoint's provenance against the ledger with the library, in about thirty lines.

    python3 dev.py run python scripts/verify_checkpoint.py runs/tiny-gpt/ckpt-001500 [--expect NAME@VERSION|RUN:STEP] [--ledger DIR]

Digests the weights (tensors, not file bytes), looks the digest up on-chain and prints which model,
run and step produced them and whether they were released or revoked. Exits 1 when the weights are
not on the ledger, were revoked, or are not what --expect names (the differing tensors are listed).
"""

import argparse
import sys
from pathlib import Path

from llmchain.chain import connect
from llmchain.errors import LLMChainError
from llmchain.ledger import Ledger
from llmchain.verify import describe_diff, verify_weights

parser = argparse.ArgumentParser(description="Verify local weights against the ledger.")
parser.add_argument("path", type=Path, help="checkpoint directory, .safetensors, .pt/.bin or a shard directory")
parser.add_argument("--expect", help="require this release (NAME@VERSION) or run step (RUN:STEP)")
parser.add_argument("--ledger", help="embedded ledger directory (default ./.llmchain)")
args = parser.parse_args()

try:
    with connect(ledger_dir=args.ledger) as conn:
        result = verify_weights(Ledger(conn), args.path, expect=args.expect)
except LLMChainError as err:  # bad input (exit 2) or a ledger/chain error (exit 3)
    print(f"Error: {err}", file=sys.stderr)
    sys.exit(err.exit_code)

print(f"{result.path}: {result.digest}")
if result.checkpoint is not None and result.model is not None:
    cp = result.checkpoint
    print(f"  {result.model.name} run {cp.run_id} step {cp.step}, val loss {cp.val_loss}, committed by {cp.committer} in block {cp.block_number}")
    print(f"  status {cp.status.name.lower()}; releases: {', '.join(r.label for r in result.releases) or 'none'}")
for problem in result.problems:
    print(f"  FAILED: {problem}")
if result.diff is not None:
    print(f"  tensors vs {result.diff_source}: {describe_diff(result.diff)}")
print("verified" if result.ok else "NOT verified")
sys.exit(0 if result.ok else 1)
