#!/usr/bin/env python3
"""Register a model and record a training run with the library, in about thirty lines.

    python3 dev.py run python scripts/register_model.py acme/demo-gpt [--ledger DIR]

Registers the model (if new), opens a run with its provenance digests, commits two checkpoints,
releases the second as 1.0.0, finishes the run and prints what the ledger now says.
"""

import argparse
import hashlib

from llmchain.chain import connect
from llmchain.errors import BadInput
from llmchain.ledger import Ledger
from llmchain.records import CheckpointSpec, Digest, RunSpec


def sha256(text: str) -> Digest:
    return Digest("sha256", hashlib.sha256(text.encode()).digest())


parser = argparse.ArgumentParser(description="Register a model and record a short run.")
parser.add_argument("name", help="model name, e.g. acme/demo-gpt")
parser.add_argument("--ledger", help="embedded ledger directory (default ./.llmchain)")
args = parser.parse_args()

with connect(ledger_dir=args.ledger) as conn:
    ledger = Ledger(conn)
    try:
        model = ledger.get_model(args.name)
    except BadInput:  # not registered yet
        model = ledger.register_model(args.name)
    run = ledger.start_run(model.id, RunSpec(sha256("config"), sha256("dataset"), sha256("code"), sha256("env")))
    for step, loss in [(100, 2.5), (200, 1.9)]:
        weights = sha256(f"{model.name} run {run.id} weights at step {step}")
        checkpoint = ledger.commit_checkpoint(run.id, CheckpointSpec(step, weights, val_loss=loss))
        print(f"committed step {step}: {checkpoint.weights_digest} in block {checkpoint.block_number}")
    release = ledger.release(model.id, f"1.0.{run.id - 1}", checkpoint.weights_digest)
    ledger.finish_run(run.id)
    print(f"released {model.name} {release.label} -> step {release.checkpoint.step}")
    for cp in ledger.list_checkpoints(run.id):
        print(f"run {cp.run_id} #{cp.index} step {cp.step} loss {cp.val_loss} by {cp.committer}")
