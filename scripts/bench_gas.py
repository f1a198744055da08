#!/usr/bin/env python3
"""Gas per ledger operation on eth-tester (Prague), beside the anchors, measured in the same run.

    python3 dev.py run python scripts/bench_gas.py

Anchors: "one 32-byte digest in a fresh slot + one event" is measured here by deploying
contracts/reference/DigestStore.sol on the same chain; EAS ``attest`` (180,132) is the figure measured
for the design notes (EAS is not vendored here). Limits come from issue 2: one checkpoint commit
<= 70,000 gas; a batch of 64 <= 35,000 per checkpoint. Gas is deterministic, so one run suffices;
"worst" commits use 32-character algorithm names, a 2**64-2 step and loss, and no zero bytes.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable

from llmchain.artifacts import load_artifact
from llmchain.chain import Connection, connect_memory
from llmchain.ledger import Ledger
from llmchain.records import CheckpointSpec, Digest, RunSpec

EAS_ATTEST = 180_132
SINGLE_LIMIT = 70_000
BATCH_LIMIT = 35_000
BATCH = 64


def _nonzero() -> bytes:
    return bytes(b or 1 for b in os.urandom(32))


def typical(step: int) -> CheckpointSpec:
    return CheckpointSpec(
        step, Digest("tensor-sha256-v1", _nonzero()), Digest("tensor-sha256-v1", _nonzero()),
        Digest("sha256", _nonzero()), 2.345678,
    )  # fmt: skip


def worst(step: int) -> CheckpointSpec:
    name = "w" * 32
    return CheckpointSpec(
        2**64 - 2 - 10_000 + step, Digest(name, _nonzero()), Digest(name, _nonzero()), Digest(name, _nonzero()),
        1.8e10,
    )  # fmt: skip


def digest() -> Digest:
    return Digest("sha256", _nonzero())


def _gas(conn: Connection, action: Callable[[], object]) -> int:
    before = conn.w3.eth.block_number
    action()
    blocks = range(before + 1, conn.w3.eth.block_number + 1)
    return sum(int(conn.w3.eth.get_block(n)["gasUsed"]) for n in blocks)


def _anchor(conn: Connection) -> list[int]:
    artifact = load_artifact("DigestStore")
    factory = conn.w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    tx = factory.constructor().transact({"from": conn.sender})
    store = conn.w3.eth.contract(address=conn.w3.eth.get_transaction_receipt(tx)["contractAddress"], abi=artifact.abi)
    return [conn.transact(store.functions.store(key, _nonzero()))["gasUsed"] for key in range(5)]


def main() -> None:
    with connect_memory() as conn:
        owner, trainer = Ledger(conn), Ledger(conn.as_account(1))
        register = _gas(conn, lambda: owner.register_model("acme/tiny-gpt", digest()))
        owner.grant_trainer("acme/tiny-gpt", trainer.conn.sender)
        spec = RunSpec(digest(), digest(), digest(), digest())
        start = _gas(conn, lambda: trainer.start_run("acme/tiny-gpt", spec))
        singles = [_gas(conn, lambda s=s: trainer.commit_checkpoint(1, typical(s))) for s in range(1, 41)]
        batch = _gas(conn, lambda: trainer.commit_checkpoints(1, [typical(100 + i) for i in range(BATCH)]))
        trainer.start_run("acme/tiny-gpt", spec)
        worst_singles = [_gas(conn, lambda s=s: trainer.commit_checkpoint(2, worst(s))) for s in range(1, 11)]
        worst_batch = _gas(conn, lambda: trainer.commit_checkpoints(2, [worst(100 + i) for i in range(BATCH)]))
        owner_single = _gas(conn, lambda: owner.commit_checkpoint(2, worst(1000)))
        anchor = statistics.median(_anchor(conn))

    rows = [
        ("commit 1 checkpoint, typical (median of 40)", statistics.median(singles), SINGLE_LIMIT),
        ("commit 1 checkpoint, first of a run", singles[0], SINGLE_LIMIT),
        ("commit 1 checkpoint, max of 40 typical", max(singles), SINGLE_LIMIT),
        ("commit 1 checkpoint, worst case (trainer)", max(worst_singles), SINGLE_LIMIT),
        ("commit 1 checkpoint, worst case (owner)", owner_single, SINGLE_LIMIT),
        (f"batch of {BATCH}, per checkpoint, typical", batch / BATCH, BATCH_LIMIT),
        (f"batch of {BATCH}, per checkpoint, worst case", worst_batch / BATCH, BATCH_LIMIT),
        ("register model", register, None),
        ("start run (5 digests stored)", start, None),
    ]
    print(f"anchors: digest in fresh slot + event = {anchor:,.0f} (measured now); EAS attest = {EAS_ATTEST:,}")
    print(f"{'operation':46} {'gas':>9} {'limit':>8} {'/limit':>7} {'/slot+event':>12} {'/EAS':>6}")
    for name, gas, limit in rows:
        limit_text, ratio = (f"{limit:,}", f"{gas / limit:.2f}") if limit else ("-", "-")
        print(f"{name:46} {gas:9,.0f} {limit_text:>8} {ratio:>7} {gas / anchor:12.2f} {gas / EAS_ATTEST:6.2f}")


if __name__ == "__main__":
    main()
