"""Reconstruct a model's history from the ledger and check that it holds together.

The audit reads storage (models, runs, releases: paginated views) and each run's checkpoint events
(only from the run's own block range), and checks:

- **hash chain** — every run's events reproduce the on-chain head, so a node or provider that hides,
  reorders or edits an event is caught (the ledger client recomputes it; a failure is reported, not
  raised, and the run's timeline is then left empty rather than shown from untrusted logs);
- **steps** — strictly increasing within each run;
- **releases** — each points at a committed checkpoint of a run of this model;
- **lineage** — each parent link is backed by the parent checkpoint digest on the ledger, under
  the parent model, and not revoked;
- **local checkpoints** (with a directory) — each checkpoint directory holds the weights, training
  state and data order committed for the run and step it claims: matched, tampered, missing or
  uncommitted; and each ``run.json`` holds exactly the records behind the run's provenance digests;
- **replay** (optional, :mod:`llmchain.replay`) — re-run recorded segments and compare.

Nothing here prints; :class:`AuditReport` is rendered by the CLI and :mod:`llmchain.report`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from llmchain.digest import DigestDiff, Manifest, ModelDigest, diff, digest_path
from llmchain.errors import BadInput, VerificationFailed
from llmchain.records import Checkpoint, Digest, LedgerReader, Model, Release, Run, Status
from llmchain.verify import INFO_FILE, MANIFEST_FILE, WEIGHTS_FILE, claimed_position, describe_diff, require_run

if TYPE_CHECKING:
    from llmchain.replay import ReplayOptions, SegmentReplay

MATCHED, TAMPERED, MISSING, UNCOMMITTED = "matched", "tampered", "missing", "uncommitted"
_PAGE = 100  # runs / releases per paged view call
T = TypeVar("T")


@dataclass(frozen=True)
class Check:
    """One named audit check; ``detail`` says what was compared and, on failure, what differs."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class LineageLink:
    """A model of the lineage and the link to its parent, verified by the parent checkpoint digest."""

    model: Model
    parent: Model | None  # the parent model on this registry (None: a root, or an external parent)
    parent_checkpoint: Checkpoint | None  # the ledger's record of the parent checkpoint digest
    verified: bool | None  # None: nothing to verify (a root) or not verifiable here (external parent)
    detail: str


@dataclass(frozen=True)
class RunHistory:
    """A run and its checkpoint timeline (empty when its events failed the hash-chain check)."""

    run: Run
    checkpoints: tuple[Checkpoint, ...]
    recomputed_head: bytes | None  # from the events; None when they could not be verified
    problem: str | None  # why the events were refused


@dataclass(frozen=True)
class LocalCheckpoint:
    """A local checkpoint directory (or a committed checkpoint with none) and how it compares."""

    status: str  # MATCHED | TAMPERED | MISSING | UNCOMMITTED
    path: Path | None  # None for MISSING
    run_id: int | None
    step: int | None
    detail: str
    diff: DigestDiff | None = None  # committed manifest vs local weights, for TAMPERED weights


@dataclass(frozen=True)
class RunRecordMatch:
    """Whether a local ``run.json`` holds the records behind its run's on-chain provenance digests."""

    run_id: int
    path: Path
    mismatched: tuple[str, ...]  # which of config, dataset, code, env do not match (empty: all do)
    records: dict[str, Any]  # run.json's records, readable (e.g. the training config)


@dataclass(frozen=True)
class AuditReport:
    """Everything an audit found; ``ok`` iff every check passed."""

    model: Model
    lineage: tuple[LineageLink, ...]  # root ancestor first, the audited model last
    runs: tuple[RunHistory, ...]
    releases: tuple[Release, ...]
    local: tuple[LocalCheckpoint, ...]
    run_records: tuple[RunRecordMatch, ...]
    replay: tuple[SegmentReplay, ...]
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


def audit(
    ledger: LedgerReader,
    model: str | int,
    *,
    run_id: int | None = None,
    checkpoints: Path | None = None,
    replay: ReplayOptions | None = None,
) -> AuditReport:
    """Audit ``model`` (optionally one run of it) against the ledger, and a local directory if given.

    ``replay`` (needs ``checkpoints``, the run's directory) re-runs recorded training segments.
    """
    record = ledger.get_model(model)
    if replay is not None and checkpoints is None:
        raise BadInput("--replay needs --checkpoints DIR: the run directory holding the training states")
    runs = _runs(ledger, record, run_id)
    histories = tuple(_history(ledger, run) for run in runs)
    releases = tuple(_all(lambda offset: ledger.list_releases(record.id, offset, _PAGE)))
    lineage = _lineage(ledger, record)
    checks = [
        _chain_check(histories),
        _steps_check(histories),
        _release_check(ledger, record, releases),
        _lineage_check(lineage),
    ]
    local: tuple[LocalCheckpoint, ...] = ()
    records: tuple[RunRecordMatch, ...] = ()
    if checkpoints is not None:
        local = match_local(ledger, record, histories, Path(checkpoints))
        records = match_run_records(histories, Path(checkpoints))
        checks += [_local_check(local), _records_check(records)]
    segments: tuple[SegmentReplay, ...] = ()
    if replay is not None and checkpoints is not None:
        from llmchain.replay import replay_check, replay_run  # torch loads only for a replay

        segments = tuple(s for h in histories if h.problem is None for s in replay_run(h, Path(checkpoints), replay))
        checks.append(replay_check(segments))
    return AuditReport(record, lineage, histories, releases, local, records, segments, tuple(checks))


def _all(page: Callable[[int], list[T]]) -> list[T]:
    """Every item of a paged view: ``page(offset)`` returns up to _PAGE items."""
    items: list[T] = []
    while True:
        batch = page(len(items))
        items += batch
        if len(batch) < _PAGE:
            return items


def _runs(ledger: LedgerReader, model: Model, run_id: int | None) -> list[Run]:
    if run_id is None:
        return _all(lambda offset: ledger.list_runs(model.id, offset, _PAGE))
    run = require_run(ledger, run_id, "--run")
    if run.model_id != model.id:
        raise BadInput(f"run {run_id} belongs to model id {run.model_id}, not {model.name}; check --run")
    return [run]


def _history(ledger: LedgerReader, run: Run) -> RunHistory:
    """The run's checkpoints, verified against its head by the ledger client; a refusal is kept."""
    try:
        checkpoints = ledger.list_checkpoints(run.id)
    except VerificationFailed as err:
        return RunHistory(run, (), None, str(err))
    return RunHistory(run, tuple(checkpoints), run.head, None)  # list_checkpoints reproduced this head


def _chain_check(histories: tuple[RunHistory, ...]) -> Check:
    failed = [h.problem for h in histories if h.problem is not None]
    if failed:
        return Check("hash chain", False, "; ".join(p for p in failed if p))
    total = sum(len(h.checkpoints) for h in histories)
    return Check("hash chain", True, f"{total} checkpoint events of {len(histories)} run(s) reproduce the on-chain heads")


def _steps_check(histories: tuple[RunHistory, ...]) -> Check:
    bad = [
        f"run {h.run.id}: step {b.step} after {a.step} (checkpoint {b.index})"
        for h in histories
        for a, b in zip(h.checkpoints, h.checkpoints[1:])
        if b.step <= a.step
    ]
    if bad:
        return Check("steps increase", False, "; ".join(bad))
    return Check("steps increase", True, "every run's steps strictly increase")


def _release_check(ledger: LedgerReader, model: Model, releases: tuple[Release, ...]) -> Check:
    """Each release must name a checkpoint committed in a run of this very model."""
    bad, notes = [], []
    for release in releases:
        checkpoint = release.checkpoint
        owner = ledger.get_run(checkpoint.run_id).model_id
        if checkpoint.model_id != model.id or owner != model.id:
            bad.append(f"release {release.label} names a checkpoint of model id {owner}")
        if checkpoint.status is Status.REVOKED and release.status is not Status.REVOKED:
            notes.append(f"release {release.label} names a revoked checkpoint")
    if bad or notes:
        return Check("releases", False, "; ".join(bad + notes))
    return Check("releases", True, f"{len(releases)} release(s), each naming a committed checkpoint of {model.name}")


def _lineage(ledger: LedgerReader, model: Model) -> tuple[LineageLink, ...]:
    """The chain of ancestors, root first; each link checked by its parent checkpoint digest."""
    links: list[LineageLink] = []
    seen: set[int] = set()
    current: Model | None = model
    while current is not None and current.id not in seen:
        seen.add(current.id)
        link = _link(ledger, current)
        links.append(link)
        current = link.parent
    return tuple(reversed(links))


def _link(ledger: LedgerReader, model: Model) -> LineageLink:
    lineage = model.parent
    if lineage is None:
        return LineageLink(model, None, None, None, "root: no lineage parent")
    parent = ledger.get_model(lineage.model_id) if lineage.model_id else None
    relation = lineage.relation.label
    if lineage.checkpoint is None:
        return LineageLink(model, parent, None, None, f"{relation} of {parent.name if parent else '?'}: no parent checkpoint digest recorded")
    try:
        found = ledger.lookup(lineage.checkpoint)
    except VerificationFailed as err:  # committed under another digest algorithm
        return LineageLink(model, parent, None, False, str(err))
    if found is None:
        if parent is None:
            return LineageLink(model, None, None, None, f"{relation} of external weights {lineage.checkpoint} (not on this registry)")
        return LineageLink(model, parent, None, False, f"parent checkpoint {lineage.checkpoint} is not on the ledger")
    parent = parent or ledger.get_model(found.model_id)
    if found.model_id != parent.id:
        return LineageLink(model, parent, found, False, f"parent checkpoint belongs to model id {found.model_id}, not {parent.name}")
    if found.status is Status.REVOKED:
        return LineageLink(model, parent, found, False, f"parent checkpoint (run {found.run_id} step {found.step}) was revoked")
    return LineageLink(model, parent, found, True, f"{relation} of {parent.name} run {found.run_id} step {found.step}")


def _lineage_check(lineage: tuple[LineageLink, ...]) -> Check:
    bad = [f"{l.model.name}: {l.detail}" for l in lineage if l.verified is False]
    if bad:
        return Check("lineage", False, "; ".join(bad))
    names = " → ".join(l.model.name for l in lineage)
    verified = sum(1 for l in lineage if l.verified)
    unverifiable = [f"{l.model.name}: {l.detail}" for l in lineage if l.verified is None and l.model.parent is not None]
    if len(lineage) == 1 and lineage[0].model.parent is None:
        return Check("lineage", True, f"{names} has no lineage parent")
    detail = f"{names}: {verified} parent link(s) verified by digest"
    return Check("lineage", True, detail + "".join(f"; not verifiable here: {u}" for u in unverifiable))


def match_local(ledger: LedgerReader, model: Model, histories: tuple[RunHistory, ...], directory: Path) -> tuple[LocalCheckpoint, ...]:
    """Compare every checkpoint directory under ``directory`` with the committed timeline.

    A directory matches when its weights are those committed for the run and step it claims, and
    its training state and data order are those committed with them. Committed checkpoints of the
    audited runs with no matching directory are MISSING.
    """
    if not directory.is_dir():
        raise BadInput(f"--checkpoints {directory} is not a directory; pass a run directory")
    committed = {(h.run.id, c.step): c for h in histories for c in h.checkpoints}
    by_digest = {c.weights_digest.value: c for c in committed.values()}
    audited = {h.run.id for h in histories}
    results = [_compare(ledger, model, info.parent, committed, by_digest) for info in sorted(directory.rglob(INFO_FILE))]
    if len(audited) < model.run_count:  # one run audited (--run): other runs' directories are not its business
        results = [r for r in results if r.run_id is None or r.run_id in audited]
    seen = {(r.run_id, r.step) for r in results if r.status in (MATCHED, TAMPERED)}
    results += [
        LocalCheckpoint(MISSING, None, run_id, step, f"committed at block {c.block_number}; no local copy found")
        for (run_id, step), c in committed.items()
        if (run_id, step) not in seen
    ]
    return tuple(results)


def _compare(
    ledger: LedgerReader,
    model: Model,
    folder: Path,
    committed: dict[tuple[int, int], Checkpoint],
    by_digest: dict[bytes, Checkpoint],
) -> LocalCheckpoint:
    """Classify one checkpoint directory against the committed checkpoint for its claimed run and step."""
    try:
        run_id, step = claimed_position(folder / WEIGHTS_FILE) or (None, None)
        local = digest_path(folder / WEIGHTS_FILE)
    except BadInput as err:
        return LocalCheckpoint(TAMPERED, folder, None, None, f"unreadable: {err}")
    expected = committed.get((run_id, step)) if run_id is not None and step is not None else None
    if expected is None:
        found = by_digest.get(local.root) or ledger.lookup(Digest(local.algorithm, local.root))
        where = f"; it holds the weights of run {found.run_id} step {found.step}" if found else ""
        return LocalCheckpoint(UNCOMMITTED, folder, run_id, step, f"{model.name} has no committed checkpoint at run {run_id} step {step}{where}")
    if expected.weights_digest.value != local.root:
        other = by_digest.get(local.root)
        if other is not None:
            return LocalCheckpoint(TAMPERED, folder, run_id, step, f"holds the weights of run {other.run_id} step {other.step} (swapped?)")
        changes = _tensor_diff(folder, expected, local)
        detail = "weights differ from the committed digest" + (f": {describe_diff(changes)}" if changes else "")
        return LocalCheckpoint(TAMPERED, folder, run_id, step, detail, changes)
    extra = _side_files(folder, expected)
    if extra:
        return LocalCheckpoint(TAMPERED, folder, run_id, step, extra)
    return LocalCheckpoint(MATCHED, folder, run_id, step, f"weights, state and data order match checkpoint {expected.index}")


def _side_files(folder: Path, expected: Checkpoint) -> str:
    """Compare the training state and data-order files with their committed digests ('' if fine)."""
    from llmchain.checkpoint import STATE_FILE, load_segment  # torch loads only for local matching

    problems = []
    if expected.state_digest is not None:
        state = digest_path(folder / STATE_FILE)
        if state.root != expected.state_digest.value:
            problems.append("training state differs from the committed state digest")
    if expected.data_digest is not None:
        if load_segment(folder).digest() != expected.data_digest.value:
            problems.append("data order (segment.json) differs from the committed data digest")
    return "; ".join(problems)


def _tensor_diff(folder: Path, expected: Checkpoint, local: ModelDigest) -> DigestDiff | None:
    """Which tensors changed, from the manifest beside the weights if the ledger vouches for it."""
    path = folder / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        manifest = Manifest.read(path)
    except BadInput:
        return None
    if manifest.digest.root != expected.weights_digest.value:
        return None
    return diff(manifest, local)


def _local_check(local: tuple[LocalCheckpoint, ...]) -> Check:
    counts = {s: sum(1 for m in local if m.status == s) for s in (MATCHED, TAMPERED, MISSING, UNCOMMITTED)}
    summary = ", ".join(f"{n} {s}" for s, n in counts.items())
    tampered = [f"{m.path}: {m.detail}" for m in local if m.status == TAMPERED]
    if tampered:
        return Check("local checkpoints", False, f"{summary}; " + "; ".join(tampered))
    return Check("local checkpoints", True, summary)


def match_run_records(histories: tuple[RunHistory, ...], directory: Path) -> tuple[RunRecordMatch, ...]:
    """Recompute each local run.json's provenance digests and compare them with its run's spec."""
    from llmchain.data import DATASET_DIGEST_ALGORITHM  # torch loads only for local matching
    from llmchain.hook import RUN_FILE, RunRecord
    from llmchain.train import CODE_DIGEST_ALGORITHM, CONFIG_DIGEST_ALGORITHM, ENV_DIGEST_ALGORITHM, record_digest

    runs = {h.run.id: h.run for h in histories}
    algorithms = {"config": CONFIG_DIGEST_ALGORITHM, "code": CODE_DIGEST_ALGORITHM, "env": ENV_DIGEST_ALGORITHM}
    matches = []
    for path in sorted({*directory.glob(RUN_FILE), *directory.glob(f"*/{RUN_FILE}")}):
        try:
            local = RunRecord.read(path.parent)
        except (BadInput, ValueError, TypeError, KeyError):
            continue  # not a run record this llmchain can read; its checkpoints are matched anyway
        run = runs.get(local.run_id) if local.run_id is not None else None
        if run is None:
            continue
        spec = {"config": run.spec.config_digest, "dataset": run.spec.dataset_digest, "code": run.spec.code_digest, "env": run.spec.env_digest}
        recomputed: dict[str, Digest | None] = {
            k: Digest(a, record_digest(a, local.records.get(k, {})).value) for k, a in algorithms.items()
        }
        dataset = str(local.records.get("dataset", {}).get("digest", ""))
        recomputed["dataset"] = Digest(DATASET_DIGEST_ALGORITHM, bytes.fromhex(dataset)) if len(dataset) == 64 else None
        mismatched = tuple(k for k in ("config", "dataset", "code", "env") if recomputed[k] != spec[k])
        matches.append(RunRecordMatch(run.id, path, mismatched, local.records))
    return tuple(matches)


def _records_check(records: tuple[RunRecordMatch, ...]) -> Check:
    bad = [f"{r.path}: {', '.join(r.mismatched)} record(s) differ from run {r.run_id}'s committed digests" for r in records if r.mismatched]
    if bad:
        return Check("run records", False, "; ".join(bad))
    if not records:
        return Check("run records", True, "no run.json of an audited run found (nothing to compare)")
    return Check("run records", True, f"{len(records)} run.json file(s) hold exactly the committed config, dataset, code and environment records")
