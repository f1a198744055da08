"""Verify local weights against the ledger: digest them, look the digest up, explain any mismatch.

Three questions, three functions:

- :func:`verify_weights` — are these weights on the ledger, and not revoked? With ``expect``
  (``name@version`` or ``RUN:STEP``), are they exactly that entry? On a mismatch the result names
  the tensors that changed, are missing or are extra, from a manifest whose Merkle root equals the
  committed digest (so a manifest is only believed when the ledger vouches for it).
  :func:`verify_digest` is its ledger half, for a caller that already holds the digest.
- :func:`verify_tensor` — is this one tensor part of committed weights? Hashes that tensor only and
  checks its Merkle inclusion proof against the on-chain root, in Python and with the contract's
  ``verifyTensorProof`` view.
- :func:`parse_expect` — the ``--expect`` syntax.

Nothing here prints; results are frozen dataclasses the CLI renders.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from llmchain.digest import (
    DigestDiff,
    Manifest,
    ModelDigest,
    Progress,
    TensorLeaf,
    TensorProof,
    default_manifest_path,
    diff,
    digest_path,
    digest_tensor,
    prove,
    verify_proof,
)
from llmchain.errors import BadInput, ContractRevert, VerificationFailed
from llmchain.records import Checkpoint, Digest, LedgerReader, Model, Release, Run, Status

if TYPE_CHECKING:
    from llmchain.ledger import Ledger

_RUN_STEP = re.compile(r"(\d+):(\d+)")
# File names of a training checkpoint directory (llmchain.checkpoint); repeated here because that
# module imports torch, which verifying a safetensors file must not pay for (tests pin them equal).
INFO_FILE = "checkpoint.json"
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"


@dataclass(frozen=True)
class Expectation:
    """What ``--expect`` named: a release (``name@version``) or a run's step (``RUN:STEP``)."""

    text: str
    model: str | None = None
    label: str | None = None
    run_id: int | None = None
    step: int | None = None


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of :func:`verify_weights`; ``ok`` iff ``problems`` is empty."""

    path: Path  # the weights file or directory that was digested
    digest: Digest  # of the local weights
    tensors: int  # how many tensors the local weights hold
    checkpoint: Checkpoint | None  # the ledger's record of these weights, if any
    model: Model | None  # the model that checkpoint belongs to
    run: Run | None
    releases: tuple[Release, ...]  # releases of that model naming these weights
    expected: Checkpoint | None  # the entry --expect named (None without --expect)
    diff: DigestDiff | None  # expected/committed manifest vs local weights, when they differ
    diff_source: str | None  # which manifest or file the diff was computed from
    problems: tuple[str, ...]  # why verification failed (empty: it passed)
    warnings: tuple[str, ...]  # worth knowing, not a failure (e.g. deprecated)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class TensorResult:
    """The outcome of :func:`verify_tensor`; ``ok`` iff ``problems`` is empty."""

    path: Path
    tensor: str
    leaf: TensorLeaf | None  # the local tensor's leaf (None if the file lacks it)
    root: Digest  # the committed weights digest the proof was checked against
    checkpoint: Checkpoint | None
    proof: TensorProof | None
    proof_ok: bool  # checked in Python (RFC 9162 §2.1.3.2)
    onchain_ok: bool  # the contract's verifyTensorProof agreed
    manifest: Path | None  # the manifest that supplied the sibling hashes
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def parse_expect(text: str) -> Expectation:
    """Parse ``name@version`` or ``RUN:STEP``; BadInput with the accepted forms otherwise."""
    if match := _RUN_STEP.fullmatch(text.strip()):
        return Expectation(text, run_id=int(match[1]), step=int(match[2]))
    name, at, label = text.strip().rpartition("@")
    if not at or not name or not label:
        raise BadInput(f"--expect {text!r}: use NAME@VERSION (a release, e.g. acme/tiny-gpt@1.0.0) or RUN:STEP (e.g. 3:500)")
    return Expectation(text, model=name, label=label)


def weights_file(path: Path) -> Path:
    """The weights inside a checkpoint directory (its ``model.safetensors``), else ``path`` itself.

    A training checkpoint directory also holds the optimizer state as safetensors; digesting the
    directory as a whole would mix the two, so a directory with ``checkpoint.json`` means its weights.
    """
    if path.is_dir() and (path / INFO_FILE).is_file():
        return path / WEIGHTS_FILE
    return path


def resolve_expected(ledger: LedgerReader, expect: Expectation) -> Checkpoint:
    """The checkpoint an expectation names; BadInput if the ledger has no such entry."""
    if expect.label is not None:
        return _release(ledger, expect).checkpoint
    assert expect.run_id is not None
    require_run(ledger, expect.run_id, f"--expect {expect.text}")
    for checkpoint in ledger.list_checkpoints(expect.run_id):
        if checkpoint.step == expect.step:
            return checkpoint
    raise BadInput(f"--expect {expect.text}: run {expect.run_id} has no checkpoint at step {expect.step}")


def require_run(ledger: LedgerReader, run_id: int, flag: str) -> Run:
    """Run ``run_id``; an id the registry does not know is the user's mistake (BadInput), not a chain error."""
    try:
        return ledger.get_run(run_id)
    except ContractRevert as err:
        if err.name != "RegistryUnknownRun":
            raise
        raise BadInput(f"{flag}: there is no run {run_id}; list runs with `llmchain runs MODEL`") from None


def _release(ledger: LedgerReader, expect: Expectation) -> Release:
    """The release ``expect`` names; an unknown label is the user's mistake, not a chain error."""
    try:
        return ledger.get_release(expect.model or "", expect.label or "")
    except ContractRevert as err:
        if err.name != "RegistryUnknownRelease":
            raise
        raise BadInput(f"--expect {expect.text}: {expect.model} has no release {expect.label!r}") from None


def verify_weights(
    ledger: LedgerReader,
    path: Path,
    *,
    expect: str | None = None,
    model: str | None = None,
    reference: Path | None = None,
    progress: Progress | None = None,
) -> VerifyResult:
    """Digest ``path`` and check it against the ledger (see the module docstring).

    ``model``: also require the weights to belong to that model. ``reference``: a manifest or
    checkpoint to diff against on a mismatch (used only if its root equals the committed digest;
    the manifests beside ``path`` are tried too).
    """
    path = weights_file(Path(path))
    local = digest_path(path, progress=progress)
    return verify_digest(ledger, local, path, expect=expect, model=model, reference=reference)


def verify_digest(
    ledger: LedgerReader,
    local: ModelDigest,
    path: Path,
    *,
    expect: str | None = None,
    model: str | None = None,
    reference: Path | None = None,
) -> VerifyResult:
    """The ledger half of :func:`verify_weights`, for weights at ``path`` already digested as ``local``."""
    digest = Digest(local.algorithm, local.root)
    expectation = parse_expect(expect) if expect is not None else None
    expected = resolve_expected(ledger, expectation) if expectation is not None else None
    problems: list[str] = []
    warnings: list[str] = []
    checkpoint = _lookup(ledger, digest, problems)
    owner = ledger.get_model(checkpoint.model_id) if checkpoint else None
    releases = tuple(ledger.releases_naming(owner, checkpoint.weights_digest)) if checkpoint and owner else ()
    if checkpoint is not None:
        _status_problems(checkpoint, releases, problems, warnings)
        _claim_problems(path, checkpoint, problems)
    if model is not None and (owner is None or owner.id != ledger.model_id(model)):
        problems.append(f"the weights are not a checkpoint of model {model}" + (f" (they belong to {owner.name})" if owner else ""))
    if expectation is not None and expected is not None:
        _expectation_problems(ledger, expectation, expected, digest, checkpoint, problems)
    explained = _explain_mismatch(ledger, local, path, reference, expected, checkpoint, problems)
    return VerifyResult(
        path=path,
        digest=digest,
        tensors=len(local.tensors),
        checkpoint=checkpoint,
        model=owner,
        run=ledger.get_run(checkpoint.run_id) if checkpoint else None,
        releases=releases,
        expected=expected,
        diff=explained[0] if explained else None,
        diff_source=explained[1] if explained else None,
        problems=tuple(problems),
        warnings=tuple(warnings),
    )


def _explain_mismatch(
    ledger: LedgerReader, local: ModelDigest, path: Path, reference: Path | None, expected: Checkpoint | None,
    checkpoint: Checkpoint | None, problems: list[str],
) -> tuple[DigestDiff, str] | None:
    """When the weights are unknown or not the expected ones, name the tensors that differ."""
    if checkpoint is not None and (expected is None or expected.weights_digest.value == local.root):
        return None
    found = _explain(local, path, reference, expected, ledger)
    if found is None:
        return None
    changes, source, committed = found
    if expected is None:
        problems.append(f"a manifest beside the file says these weights should be {committed}")
    return changes, source


def verify_tensor(
    ledger: Ledger,
    path: Path,
    tensor: str,
    *,
    expect: str | None = None,
    manifest: Path | None = None,
) -> TensorResult:
    """Check one tensor of ``path`` against committed weights by Merkle proof, hashing only it.

    The sibling hashes come from a manifest (``manifest``, or the one beside ``path``) whose root
    must be the committed digest: of ``expect`` if given, else the manifest's own root, which must
    then be on the ledger.
    """
    path = weights_file(Path(path))
    document, source = _manifest_for(path, manifest)
    problems: list[str] = []
    root, checkpoint = _committed_root(ledger, document, source, expect, problems)
    names = {leaf.name for leaf in document.digest.tensors}
    if tensor not in names:
        problems.append(f"tensor {tensor!r} is not part of the committed weights (extra)")
        return TensorResult(path, tensor, None, root, checkpoint, None, False, False, source, tuple(problems))
    try:
        leaf = digest_tensor(path, tensor)
    except BadInput as err:
        if f"no tensor named {tensor!r}" not in str(err):
            raise  # an unreadable file is bad input, not a missing tensor
        problems.append(f"tensor {tensor!r} is committed but missing from {path}")
        return TensorResult(path, tensor, None, root, checkpoint, None, False, False, source, tuple(problems))
    proof = prove(document.digest, tensor)
    proof_ok = verify_proof(root.value, leaf.leaf_hash, proof)
    fn = ledger.conn.registry.functions.verifyTensorProof(root.value, leaf.leaf_hash, proof.index, proof.size, list(proof.siblings))
    onchain_ok = bool(ledger.conn.call(fn))
    if not proof_ok or not onchain_ok:
        committed = document.digest.tensors[proof.index]
        fields = [f for f in ("dtype", "shape", "nbytes", "data_hash") if getattr(committed, f) != getattr(leaf, f)]
        problems.append(f"tensor {tensor!r} differs from the committed one ({', '.join(fields) or 'leaf'} changed)")
    return TensorResult(path, tensor, leaf, root, checkpoint, proof, proof_ok, onchain_ok, source, tuple(problems))


def _committed_root(
    ledger: Ledger, document: Manifest, source: Path, expect: str | None, problems: list[str]
) -> tuple[Digest, Checkpoint | None]:
    """The on-chain weights digest a tensor proof is checked against, and its checkpoint record.

    With ``expect`` it is that entry's digest; without, the manifest's own root, which the ledger
    must know. Either way the manifest must have exactly that root, or its sibling hashes prove nothing.
    """
    checkpoint: Checkpoint | None
    if expect is not None:
        checkpoint = resolve_expected(ledger, parse_expect(expect))
        root = checkpoint.weights_digest
    else:
        root = Digest(document.digest.algorithm, document.digest.root)
        checkpoint = _lookup(ledger, root, problems)
    if checkpoint is not None:
        _status_problems(checkpoint, (), problems, [])
    if document.digest.root != root.value:
        raise BadInput(f"{source} is not the manifest of {root}; pass --manifest with the committed checkpoint's manifest")
    return root, checkpoint


def _lookup(ledger: LedgerReader, digest: Digest, problems: list[str]) -> Checkpoint | None:
    """The ledger's checkpoint for ``digest``; a miss or an algorithm clash becomes a problem."""
    try:
        checkpoint = ledger.lookup(digest)
    except VerificationFailed as err:
        problems.append(str(err))
        return None
    if checkpoint is None:
        problems.append(f"weights {digest.value.hex()[:16]}… ({digest.algorithm}) are not on the ledger")
    return checkpoint


def claimed_position(weights: Path) -> tuple[int | None, int] | None:
    """(run id, step) that the checkpoint directory holding ``weights`` claims, if it is one."""
    info = weights.parent / INFO_FILE
    if weights.name != WEIGHTS_FILE or not info.is_file():
        return None
    try:
        record = json.loads(info.read_text())
        return record.get("run_id"), int(record["step"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise BadInput(f"{info} is unreadable ({err}); verify {weights} itself instead of its directory") from None


def _claim_problems(path: Path, checkpoint: Checkpoint, problems: list[str]) -> None:
    """A checkpoint directory must hold the weights of the run and step it says it holds."""
    claim = claimed_position(path)
    if claim is None:
        return
    run_id, step = claim
    if step != checkpoint.step or (run_id is not None and run_id != checkpoint.run_id):
        problems.append(
            f"{path.parent} says it is run {run_id} step {step}, but these weights were committed as run "
            f"{checkpoint.run_id} step {checkpoint.step} (files swapped or copied?)"
        )


def _status_problems(checkpoint: Checkpoint, releases: tuple[Release, ...], problems: list[str], warnings: list[str]) -> None:
    """Revocation fails verification; deprecation is a warning."""
    where = f"checkpoint {checkpoint.index} (step {checkpoint.step}) of run {checkpoint.run_id}"
    if checkpoint.status is Status.REVOKED:
        problems.append(f"{where} was revoked on the ledger")
    elif checkpoint.status is Status.DEPRECATED:
        warnings.append(f"{where} is deprecated")
    for release in releases:
        if release.status is Status.REVOKED:
            problems.append(f"release {release.label} naming these weights was revoked")
        elif release.status is Status.DEPRECATED:
            warnings.append(f"release {release.label} is deprecated")


def _expectation_problems(
    ledger: LedgerReader, expect: Expectation, expected: Checkpoint, local: Digest, actual: Checkpoint | None,
    problems: list[str],
) -> None:
    """Compare the local digest with the expected entry, and check the release's own status."""
    if expect.label is not None:
        release = _release(ledger, expect)
        if release.status is Status.REVOKED:
            problems.append(f"release {expect.text} was revoked")
    if expected.weights_digest.value != local.value:
        where = ""
        if actual is not None:
            where = f"; they are run {actual.run_id} step {actual.step} of {ledger.get_model(actual.model_id).name}"
        problems.append(
            f"the weights are not {expect.text} (expected {expected.weights_digest.value.hex()[:16]}…, "
            f"got {local.value.hex()[:16]}…{where})"
        )


def _explain(
    local: ModelDigest, path: Path, reference: Path | None, target: Checkpoint | None, ledger: LedgerReader
) -> tuple[DigestDiff, str, str] | None:
    """Diff the local weights against a manifest the ledger vouches for.

    With a ``target`` checkpoint the manifest's root must equal its digest. Without one (the weights
    are unknown) a manifest beside the file whose root *is* on the ledger explains what they were
    meant to be. Returns (diff, source, which checkpoint) or None when no trusted manifest exists.
    """
    for source, document in _candidates(path, reference):
        if target is not None and document.digest.root != target.weights_digest.value:
            continue
        committed = target or ledger.lookup(Digest(document.digest.algorithm, document.digest.root))
        if committed is None:
            continue
        where = f"run {committed.run_id} step {committed.step}"
        return diff(document, local), str(source), where
    return None


def _candidates(path: Path, reference: Path | None) -> list[tuple[Path, Manifest]]:
    """Manifests to compare with: the reference (a manifest or weights), then those beside ``path``."""
    found: list[tuple[Path, Manifest]] = []
    if reference is not None:
        reference = Path(reference)
        if reference.suffix == ".json" and reference.is_file():
            found.append((reference, Manifest.read(reference)))
        else:
            found.append((reference, Manifest.from_digest(digest_path(weights_file(reference)))))
    folder = path if path.is_dir() else path.parent
    siblings = sorted(folder.parent.glob(f"*/{MANIFEST_FILE}")) if (folder / INFO_FILE).is_file() else []
    for beside in dict.fromkeys([*_beside(path), *siblings]):
        if beside.is_file():
            try:
                found.append((beside, Manifest.read(beside)))
            except BadInput:
                continue  # a damaged manifest cannot explain anything; the ledger check stands
    return found


def _manifest_for(path: Path, manifest: Path | None) -> tuple[Manifest, Path]:
    """The manifest to take sibling hashes from: the one given, else the one beside ``path``."""
    options = [Path(manifest)] if manifest is not None else _beside(path)
    for option in options:
        if option.is_file():
            return Manifest.read(option), option
    raise BadInput(
        f"no manifest for {path} (looked for {', '.join(str(o) for o in options)}); "
        "--tensor needs the committed manifest: pass --manifest FILE"
    )


def describe_diff(changes: DigestDiff) -> str:
    """'changed a (data); missing b; extra c' — a diff in one line, for messages."""
    parts = [f"changed {name} ({', '.join(changes.fields.get(name, ()))})" for name in changes.changed]
    parts += [f"missing {name}" for name in changes.missing]
    parts += [f"extra {name}" for name in changes.extra]
    return "; ".join(parts) or "no tensor differs"


def _beside(path: Path) -> list[Path]:
    """Where a manifest of ``path`` may be: a checkpoint's manifest.json, or the digest tool's default."""
    folder = path if path.is_dir() else path.parent
    return [folder / MANIFEST_FILE, default_manifest_path(path)]
