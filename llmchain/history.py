"""Checks that the checkpoint history read from events is the one the registry's storage vouches for.

Storage keeps one slot per checkpoint (where it is: run, index, step, block) and one hash-chain head
per run; every other field of a checkpoint lives only in its ``CheckpointCommitted`` event. Events can
be dropped or edited by whoever serves them (a node, an RPC provider, a copied database), so both
readers of the ledger, the web3 client (:mod:`llmchain.ledger`) and the direct database reader
(:mod:`llmchain.snapshot`), pass what they decoded through these functions before returning it:

- :func:`verified_run` recomputes a run's hash chain (:func:`chain_head`, exactly as ModelRegistry
  does; docs/contract.md) and refuses a history that does not reproduce the on-chain head;
- :func:`checked_lookup` refuses a lookup whose event disagrees with the checkpoint's storage slot;
- :func:`released_checkpoint` refuses a release whose digest the registry does not know.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from llmchain.errors import LedgerError, VerificationFailed
from llmchain.records import Checkpoint, Digest, Run, digest_to_chain, label_from_chain, loss_to_chain
from llmchain.statedb import address_bytes, keccak256


def chain_head(chain_id: int, registry: str, run_id: int, checkpoints: Iterable[Checkpoint]) -> bytes:
    """Recompute a run's hash-chain head off-chain: keccak over the ABI encoding of each link.

    Every field is a static ABI type, so the encoding is one 32-byte word per field.
    """
    head = keccak256(_words(chain_id, address_bytes(registry), run_id))
    for c in checkpoints:
        head = keccak256(_words(
            head, c.index, c.step, *digest_to_chain(c.weights_digest), *digest_to_chain(c.state_digest),
            *digest_to_chain(c.data_digest), loss_to_chain(c.val_loss), address_bytes(c.committer), c.block_number,
            c.timestamp,
        ))  # fmt: skip
    return head


def verified_run(run: Run, events: Iterable[Checkpoint], chain_id: int, registry: str) -> list[Checkpoint]:
    """The run's checkpoints in order, if the events are exactly the ones its count and head commit to."""
    checkpoints = sorted(events, key=lambda c: c.index)
    if [c.index for c in checkpoints] != list(range(run.checkpoint_count)):
        raise VerificationFailed(
            f"run {run.id}: the node returned {len(checkpoints)} checkpoint logs, the registry counts "
            f"{run.checkpoint_count}; the history is incomplete"
        )
    if chain_head(chain_id, registry, run.id, checkpoints) != run.head:
        raise VerificationFailed(
            f"run {run.id}: the checkpoint logs do not reproduce the on-chain hash-chain head "
            f"0x{run.head.hex()}; the history was altered"
        )
    return checkpoints


def checked_lookup(
    asked: Digest | bytes, events: Sequence[Checkpoint], index: int, step: int, block: int
) -> Checkpoint:
    """The one event of a looked-up checkpoint, checked against its storage slot (index, step)
    and against the digest algorithm the caller asked for."""
    value = asked.value if isinstance(asked, Digest) else asked
    if len(events) != 1:
        raise LedgerError(
            f"the node returned {len(events)} CheckpointCommitted logs for {value.hex()} at block {block}; "
            "use a node that keeps full history"
        )
    (checkpoint,) = events
    if (checkpoint.index, checkpoint.step) != (index, step):
        raise VerificationFailed(f"the log for {value.hex()} disagrees with the registry's storage")
    if isinstance(asked, Digest) and asked.algorithm != checkpoint.weights_digest.algorithm:
        raise VerificationFailed(
            f"{value.hex()} was committed as a {checkpoint.weights_digest.algorithm} digest, not {asked.algorithm}"
        )
    return checkpoint


def released_checkpoint(label: bytes, checkpoint: Checkpoint | None) -> Checkpoint:
    """The checkpoint a release names, which the registry only lets it name once committed."""
    if checkpoint is None:
        raise LedgerError(f"release {label_from_chain(label)} points at an unknown checkpoint")
    return checkpoint


def _words(*values: int | bytes) -> bytes:
    """ABI-encode static values: integers big-endian, byte strings (bytes32, addresses) right-aligned."""
    return b"".join(v.rjust(32, b"\0") if isinstance(v, bytes) else v.to_bytes(32, "big") for v in values)
