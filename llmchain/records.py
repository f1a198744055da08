"""Typed records of the ledger: what :class:`llmchain.ledger.Ledger` takes and returns.

Values here are plain Python (bytes, int, float, str); the on-chain encodings (bytes32 algorithm ids,
fixed-point loss) live in the ``*_to_chain`` / ``*_from_chain`` helpers at the bottom, which the
ledger client alone uses. Constructors validate, so a bad digest or name fails with
:class:`~llmchain.errors.BadInput` before anything is sent.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Protocol

from llmchain.errors import BadInput, LedgerError

VAL_LOSS_SCALE = 10**9  # validation loss is stored as round(loss * 1e9) in a uint64
NO_VAL_LOSS = 2**64 - 1  # on-chain sentinel: loss not measured
MAX_UINT64 = 2**64 - 1

_ALGORITHM = re.compile(r"[a-z0-9][a-z0-9._+-]{0,31}")
_NAME = re.compile(r"[a-z0-9._/-]{1,64}")
_LABEL = re.compile(r"[A-Za-z0-9._+-]{1,32}")
_HEX = re.compile(r"(0x)?[0-9a-fA-F]{64}")


class Relation(IntEnum):
    """How a model derives from its lineage parent (on-chain ``Relation``)."""

    NONE = 0
    FINE_TUNE = 1
    DISTILL = 2
    QUANTIZE = 3
    MERGE = 4
    OTHER = 5

    @property
    def label(self) -> str:
        """The CLI spelling, e.g. ``fine-tune``."""
        return self.name.lower().replace("_", "-")

    @classmethod
    def parse(cls, text: str) -> Relation:
        """Parse the CLI spelling (``fine-tune``, ``distill``, ...)."""
        for relation in cls:
            if relation.label == text and relation is not cls.NONE:
                return relation
        choices = ", ".join(r.label for r in cls if r is not cls.NONE)
        raise BadInput(f"unknown lineage relation {text!r}: use one of {choices}")


class RunStatus(IntEnum):
    """Lifecycle of a run; only open runs take checkpoints."""

    NONE = 0
    OPEN = 1
    FINISHED = 2
    ABORTED = 3


class Status(IntEnum):
    """Lifecycle of a checkpoint or release; ``REVOKED`` is final."""

    ACTIVE = 0
    DEPRECATED = 1
    REVOKED = 2


@dataclass(frozen=True)
class Digest:
    """A 32-byte digest and the name of the scheme that produced it (e.g. ``tensor-sha256-v1``)."""

    algorithm: str
    value: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.algorithm, str) or not _ALGORITHM.fullmatch(self.algorithm):
            raise BadInput(
                f"invalid digest algorithm name {self.algorithm!r}: use 1-32 characters a-z 0-9 . _ + -"
            )
        if not isinstance(self.value, bytes) or len(self.value) != 32 or not any(self.value):
            raise BadInput(f"a {self.algorithm} digest must be 32 non-zero bytes")

    @classmethod
    def from_hex(cls, algorithm: str, text: str) -> Digest:
        """Parse 64 hex characters (optionally ``0x``-prefixed)."""
        if not _HEX.fullmatch(text.strip()):
            raise BadInput(f"malformed digest hex {text!r}: expected 64 hex characters, optionally after 0x")
        return cls(algorithm, bytes.fromhex(text.strip().removeprefix("0x")))

    @property
    def hex(self) -> str:
        """The value as 0x-prefixed hex."""
        return "0x" + self.value.hex()

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.value.hex()}"

    def __repr__(self) -> str:
        return f"Digest({self.algorithm!r}, {self.hex})"


@dataclass(frozen=True)
class Lineage:
    """A model's parent: a model on this registry and/or a checkpoint digest (possibly external)."""

    relation: Relation
    model_id: int | None = None
    checkpoint: Digest | None = None

    def __post_init__(self) -> None:
        if self.relation is Relation.NONE:
            raise BadInput("a lineage parent needs a relation (fine-tune, distill, quantize, merge, other)")
        if self.model_id is None and self.checkpoint is None:
            raise BadInput("a lineage parent needs a parent model, a parent checkpoint digest, or both")


@dataclass(frozen=True)
class Model:
    """A registered model."""

    id: int
    name: str
    owner: str
    pending_owner: str | None
    card: Digest | None
    parent: Lineage | None
    run_count: int
    release_count: int
    registered_block: int


@dataclass(frozen=True)
class RunSpec:
    """What a run starts from: config, dataset, code and environment digests, optional base weights."""

    config_digest: Digest
    dataset_digest: Digest
    code_digest: Digest
    env_digest: Digest
    base_checkpoint: Digest | None = None  # weights resumed or fine-tuned from (may be off-ledger)


@dataclass(frozen=True)
class Run:
    """A training run. ``first_block..last_block`` hold its checkpoint events; ``head`` chains them."""

    id: int
    model_id: int
    status: RunStatus
    trainer: str
    started_block: int
    started_at: int
    checkpoint_count: int
    last_step: int
    first_block: int
    last_block: int
    head: bytes
    spec: RunSpec
    status_changes: int  # deprecations + revocations of its checkpoints (0: all active)


@dataclass(frozen=True)
class CheckpointSpec:
    """One checkpoint to commit. ``val_loss`` is a float (None: not measured)."""

    step: int
    weights_digest: Digest
    state_digest: Digest | None = None
    data_digest: Digest | None = None
    val_loss: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.step, bool) or not isinstance(self.step, int) or not 0 <= self.step <= MAX_UINT64:
            raise BadInput(f"checkpoint step must be an integer from 0 to 2**64-1, got {self.step!r}")
        loss_to_chain(self.val_loss)


@dataclass(frozen=True)
class Checkpoint:
    """A committed checkpoint: storage fields (index, step, block, status) and its event's fields."""

    model_id: int
    run_id: int
    index: int
    step: int
    weights_digest: Digest
    state_digest: Digest | None
    data_digest: Digest | None
    val_loss: float | None
    committer: str
    block_number: int
    timestamp: int
    status: Status


@dataclass(frozen=True)
class Release:
    """A version label of a model naming one of its checkpoints (resolved in ``checkpoint``)."""

    model_id: int
    label: str
    checkpoint: Checkpoint
    status: Status
    released_by: str
    released_block: int
    released_at: int


@dataclass(frozen=True)
class RunHead:
    """A run's on-chain hash-chain head and the number of checkpoints it covers."""

    run_id: int
    head: bytes
    checkpoint_count: int


class LedgerReader(Protocol):
    """The ledger's reads. :class:`llmchain.ledger.Ledger` provides them over any chain;
    :class:`llmchain.snapshot.RegistrySnapshot` reads the embedded ledger's database directly (no
    web3 to import), with the same records and errors. Read-only code takes this type."""

    def model_id(self, name_or_id: str | int) -> int: ...
    def get_model(self, name_or_id: str | int) -> Model: ...
    def get_run(self, run_id: int) -> Run: ...
    def list_runs(self, model: str | int, offset: int = 0, limit: int = 100) -> list[Run]: ...
    def list_checkpoints(self, run_id: int, offset: int = 0, limit: int | None = None) -> list[Checkpoint]: ...
    def lookup(self, weights_digest: Digest | bytes) -> Checkpoint | None: ...
    def get_release(self, model: str | int, label: str) -> Release: ...
    def list_releases(self, model: str | int, offset: int = 0, limit: int = 100) -> list[Release]: ...
    def releases_naming(self, model: Model, weights_digest: Digest | bytes) -> list[Release]: ...


# ---------------------------------------------------------------- chain encodings (ledger only)


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid model name, else raise BadInput."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise BadInput(f"invalid model name {name!r}: use 1-64 characters a-z 0-9 . _ / - (e.g. acme/tiny-gpt)")
    return name


def check_run_id(run_id: int) -> int:
    """Return ``run_id`` if it can name a run (an integer from 1), else raise BadInput."""
    if isinstance(run_id, bool) or not isinstance(run_id, int) or run_id < 1:
        raise BadInput(f"invalid run id {run_id!r}: run ids are integers from 1")
    return run_id


def check_page(offset: int, limit: int | None) -> None:
    """Paged listings take a non-negative offset and limit (None: to the end)."""
    if offset < 0 or (limit is not None and limit < 0):
        raise BadInput("offset and limit must not be negative")


def digest_value(digest: Digest | bytes) -> bytes:
    """The 32 bytes of a weights digest given as a Digest or as raw bytes."""
    if isinstance(digest, Digest):
        return digest.value
    if not isinstance(digest, bytes) or len(digest) != 32:
        raise BadInput("a weights digest must be 32 bytes")
    return digest


def model_ref(name_or_id: str | int) -> int | str:
    """How a model is named: an id (an int or a decimal string) as int, else a valid name; BadInput otherwise."""
    if isinstance(name_or_id, int) and not isinstance(name_or_id, bool):
        return name_or_id
    if isinstance(name_or_id, str):
        return int(name_or_id) if name_or_id.isdigit() else check_name(name_or_id)
    raise BadInput(f"a model is named by its name or id, not {name_or_id!r}")


def unknown_model(name_or_id: str | int) -> BadInput:
    """The error for a model name or id the registry does not know."""
    return BadInput(f"unknown model {name_or_id!r}: register it first (llmchain register NAME)")


def label_to_chain(label: str) -> bytes:
    """A release label as the contract's left-aligned bytes32."""
    if not isinstance(label, str) or not _LABEL.fullmatch(label):
        raise BadInput(f"invalid release label {label!r}: use 1-32 characters A-Z a-z 0-9 . _ + - (e.g. 1.0.0)")
    return label.encode("ascii").ljust(32, b"\0")


def label_from_chain(raw: bytes) -> str:
    """Inverse of :func:`label_to_chain`."""
    return raw.rstrip(b"\0").decode("ascii")


def digest_to_chain(digest: Digest | None) -> tuple[bytes, bytes]:
    """A digest as the contract's ``(bytes32 algorithm, bytes32 value)``; None is ``(0, 0)``."""
    if digest is None:
        return (b"\0" * 32, b"\0" * 32)
    return (digest.algorithm.encode("ascii").ljust(32, b"\0"), digest.value)


def digest_from_chain(algorithm: bytes, value: bytes) -> Digest | None:
    """Inverse of :func:`digest_to_chain`."""
    if not any(value):
        return None
    return Digest(algorithm.rstrip(b"\0").decode("ascii"), bytes(value))


def required_digest_from_chain(algorithm: bytes, value: bytes) -> Digest:
    """A digest the registry never stores empty (weights, run provenance); LedgerError if it is."""
    digest = digest_from_chain(algorithm, value)
    if digest is None:
        raise LedgerError("the registry returned an empty required digest")
    return digest


def loss_to_chain(loss: float | None) -> int:
    """Validation loss as the contract's fixed-point uint64 (``round(loss * 1e9)``)."""
    if loss is None:
        return NO_VAL_LOSS
    if isinstance(loss, bool) or not isinstance(loss, (int, float)) or not math.isfinite(loss) or loss < 0:
        raise BadInput(f"validation loss must be a finite number >= 0 (or None), got {loss!r}")
    scaled = round(loss * VAL_LOSS_SCALE)
    if scaled >= NO_VAL_LOSS:
        raise BadInput(f"validation loss {loss} is too large to record (max {(NO_VAL_LOSS - 1) / VAL_LOSS_SCALE:g})")
    return scaled


def loss_from_chain(raw: int) -> float | None:
    """Inverse of :func:`loss_to_chain` (exact to 1e-9)."""
    return None if raw == NO_VAL_LOSS else raw / VAL_LOSS_SCALE
