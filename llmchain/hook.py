"""The ledger hook: what ties any training loop to the ledger.

``llmchain train`` uses it, and so can your own loop::

    hook = LedgerHook.start(Path("runs/mine"), ledger=Ledger(connect()), model_name="me/my-gpt",
                            records={"config": {"lr": 3e-4, "layers": 12},
                                     "dataset": {"digest": my_dataset_sha256_hex}})
    for step in range(1, steps + 1):
        ...  # your training step
        if step % 500 == 0:
            hook.checkpoint(step, weights=model.state_dict(), model_config={"layers": 12}, val_loss=val)
    hook.close(finished=True)

``start`` registers the model if it is new (with its lineage parent), opens a run on-chain with
the config, dataset, code and environment digests, and writes ``run.json``. ``checkpoint`` writes
the checkpoint atomically, journals it in the outbox and hands it to a background committer; it
waits at most ``inline_wait_s`` for that commit, so a slow chain never stalls the loop, and
``poll`` reports a commit that takes long. ``close`` waits for
the outstanding commits and finishes the run. After a crash, ``resume`` (or ``sync``) commits
whatever the outbox still holds.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from llmchain.checkpoint import (
    CheckpointInfo,
    DigestRef,
    atomic_write,
    check_files,
    list_checkpoints,
    load_weights_file,
    remove_partial,
    save_checkpoint,
)
from llmchain.data import DATASET_DIGEST_ALGORITHM, Segment
from llmchain.digest import digest_path
from llmchain.errors import BadInput, LedgerError, LLMChainError, VerificationFailed
from llmchain.outbox import Outbox, OutboxEntry
from llmchain.records import Checkpoint, CheckpointSpec, Digest, Lineage, Model, Relation, RunSpec, Status
from llmchain.train import (
    CODE_DIGEST_ALGORITHM,
    CONFIG_DIGEST_ALGORITHM,
    ENV_DIGEST_ALGORITHM,
    Progress,
    ProgressFn,
    code_record,
    env_record,
    record_digest,
)

if TYPE_CHECKING:
    from llmchain.ledger import Ledger  # imports web3; only rank 0 and ledger users need it

RUN_FILE = "run.json"
RUN_FORMAT = "llmchain.run.v1"
CARD_DIGEST_ALGORITHM = "card-sha256-v1"
SLOW_COMMIT_S = 10.0  # a commit in flight longer than this is reported through the progress callback


@dataclass
class RunRecord:
    """``run.json``: which on-chain run a directory belongs to, with the records behind its digests."""

    model: str
    run_id: int | None  # None when trained without a ledger
    records: dict[str, Any]  # "config", "dataset", "code", "env" JSON records
    digests: dict[str, DigestRef]  # the same four, as committed
    parent: dict[str, Any] | None = None  # {"relation", "source", "weights_digest", "model"}
    status: str = "open"  # "open" | "finished"
    created: float = field(default_factory=time.time)

    @property
    def dataset_digest(self) -> str:
        return self.digests["dataset"].hex

    def write(self, run_dir: Path) -> None:
        data = asdict(self)
        data["digests"] = {k: v.to_json() for k, v in self.digests.items()}
        atomic_write(run_dir / RUN_FILE, json.dumps({"format": RUN_FORMAT, **data}, indent=1, sort_keys=True).encode())

    @classmethod
    def read(cls, run_dir: Path) -> RunRecord:
        path = run_dir / RUN_FILE
        if not path.exists():
            raise BadInput(f"nothing to resume: {run_dir} holds no run ({RUN_FILE} missing); start without --resume")
        data = json.loads(path.read_text())
        if data.pop("format", None) != RUN_FORMAT:
            raise BadInput(f"{path} is not a {RUN_FORMAT} record")
        data["digests"] = {k: DigestRef.from_json(v) for k, v in data["digests"].items()}
        return cls(**data)

    @staticmethod
    def check_free(run_dir: Path) -> None:
        """A fresh run needs a directory no other run owns."""
        if (run_dir / RUN_FILE).exists():
            other = json.loads((run_dir / RUN_FILE).read_text())
            raise BadInput(
                f"{run_dir} belongs to run {other.get('run_id')} of {other.get('model')}; "
                "pass --resume to continue it or choose another --out"
            )
        if list_checkpoints(run_dir):
            raise BadInput(f"{run_dir} already holds checkpoints of another run; choose another --out")


@dataclass(frozen=True)
class ParentRef:
    """Verified weights of a fine-tuning parent or a distillation teacher."""

    relation: str  # "fine-tune" | "distill"
    source: str  # what the user named: a path or name@label
    path: Path  # the model.safetensors that was verified
    digest: DigestRef
    weights: dict[str, torch.Tensor]
    model_config: dict[str, Any]
    model_name: str | None  # the ledger model it was committed under
    model_id: int | None

    def to_json(self) -> dict[str, Any]:
        return {"relation": self.relation, "source": self.source, "weights_digest": self.digest.to_json(),
                "model": self.model_name}


# --- ledger look-ups ---------------------------------------------------------------------------


def _ledger_digest(ref: DigestRef) -> Digest:
    return Digest(ref.algorithm, ref.value)


def _optional_digest(ref: DigestRef | None) -> Digest | None:
    return None if ref is None else _ledger_digest(ref)


def lookup(ledger: Ledger, digest: DigestRef) -> Checkpoint | None:
    """The ledger's checkpoint record for these weights, or None."""
    return ledger.lookup(_ledger_digest(digest))


def ledger_problem(ledger: Ledger, digest: DigestRef) -> tuple[Checkpoint | None, str | None]:
    """The ledger's record for these weights and what is wrong with them (None: committed, not revoked)."""
    record = lookup(ledger, digest)
    if record is None:
        return None, f"weights {digest.hex[:16]}… are not on the ledger"
    if record.status == Status.REVOKED:
        return record, f"weights {digest.hex[:16]}… were revoked on the ledger"
    return record, None


def require_committed(ledger: Ledger, path: Path) -> tuple[DigestRef, Checkpoint]:
    """Digest weights and insist the ledger knows them and has not revoked them (VerificationFailed)."""
    model_digest = digest_path(path)
    digest = DigestRef(model_digest.algorithm, model_digest.root)
    record, problem = ledger_problem(ledger, digest)
    if problem is not None or record is None:
        raise VerificationFailed(f"{path}: {problem}")
    return digest, record


def resolve_parent(source: str, relation: str, ledger: Ledger | None, runs_root: Path) -> ParentRef:
    """Find and verify ``--init-from``/``--distill-from`` (a checkpoint path or name@label)."""
    flag = "--init-from" if relation == "fine-tune" else "--distill-from"
    if ledger is None:
        raise BadInput(f"{flag} needs the ledger to verify {source}; run with a ledger")
    path = _parent_path(source, flag, ledger, runs_root)
    try:
        digest, record = require_committed(ledger, path)
    except VerificationFailed as err:
        raise BadInput(f"{flag} {source}: {err}; only weights committed on the ledger can be parents") from err
    weights, config = load_weights_file(path)
    model = ledger.get_model(record.model_id)
    return ParentRef(relation, source, path, digest, weights, config, model.name, model.id)


def _parent_path(source: str, flag: str, ledger: Ledger, runs_root: Path) -> Path:
    path = Path(source)
    if path.is_dir():
        path = path / "model.safetensors"
    if path.is_file():
        return path
    if "@" not in source:
        raise BadInput(f"{flag} {source}: no such checkpoint file; pass a checkpoint directory, model.safetensors or NAME@LABEL")
    name, label = source.rsplit("@", 1)
    wanted = ledger.get_release(name, label).checkpoint.weights_digest.value
    for info in (c for run_dir in find_runs(runs_root) for c in list_checkpoints(run_dir)):
        if info.weights.value == wanted:
            return info.weights_path
    raise BadInput(f"{flag} {source}: released weights {wanted.hex()[:16]}… are not under {runs_root}; pass the checkpoint path")


def _ensure_model(ledger: Ledger, name: str, card: dict[str, Any], parent: ParentRef | None) -> Model:
    """The model named ``name``, registering it (with its lineage parent) when it is new."""
    try:
        existing = ledger.get_model(name)
    except BadInput:  # not registered yet
        existing = None
    lineage = None
    if parent is not None:
        lineage = Lineage(Relation.parse(parent.relation), parent.model_id, _ledger_digest(parent.digest))
    if existing is None:
        return ledger.register_model(name, _ledger_digest(record_digest(CARD_DIGEST_ALGORITHM, card)), parent=lineage)
    recorded = existing.parent.checkpoint if existing.parent is not None else None
    if parent is not None and (recorded is None or recorded.value != parent.digest.value):
        raise BadInput(f"model {name} exists without lineage to {parent.source}; pass --model NEW-NAME for the derived model")
    return existing


# --- the hook ---------------------------------------------------------------------------------------


class LedgerHook:
    """One run directory's link to the ledger; create with ``start`` or ``resume``."""

    slow_after_s = SLOW_COMMIT_S  # a commit in flight longer than this is reported via on_progress
    # How long ``checkpoint`` waits for its commit. A quick chain then commits while the loop waits
    # instead of competing with the training step for the GIL (py-evm is pure Python); a slow one
    # costs at most this per checkpoint and carries on in the background.
    inline_wait_s = 0.5

    def __init__(self, run_dir: Path, run: RunRecord, ledger: Ledger | None, on_progress: ProgressFn | None) -> None:
        self.run_dir = run_dir
        self.run = run
        self.ledger = ledger
        self.outbox = Outbox(run_dir)
        self._emit = on_progress or (lambda _p: None)
        self._committer: _Committer | None = None  # started by the first checkpoint
        self.blocking_s = 0.0  # time the caller's thread spent waiting on the ledger

    @classmethod
    def start(
        cls,
        run_dir: Path,
        *,
        ledger: Ledger | None,
        model_name: str,
        records: dict[str, Any],
        parent: ParentRef | None = None,
        on_progress: ProgressFn | None = None,
    ) -> LedgerHook:
        """Open a run on-chain (registering the model if new) and claim ``run_dir`` for it."""
        RunRecord.check_free(run_dir)
        records = dict(records)
        if "code" not in records:
            records["code"] = code_record()
        if "env" not in records:
            records["env"] = env_record(torch.device("cpu"), 1)
        if "config" not in records or "digest" not in records.get("dataset", {}):
            raise BadInput("records need 'config' and 'dataset' (with the dataset 'digest', see llmchain.data.dataset_digest)")
        digests = {
            "config": record_digest(CONFIG_DIGEST_ALGORITHM, records["config"]),
            "dataset": DigestRef(DATASET_DIGEST_ALGORITHM, bytes.fromhex(records["dataset"]["digest"])),
            "code": record_digest(CODE_DIGEST_ALGORITHM, records["code"]),
            "env": record_digest(ENV_DIGEST_ALGORITHM, records["env"]),
        }
        run_id, started = None, time.perf_counter()
        if ledger is not None:
            card = {"name": model_name, "model": records["config"].get("model")}
            model = _ensure_model(ledger, model_name, card, parent)
            run_id = _start_run(ledger, model, digests, parent)
        run = RunRecord(model_name, run_id, records, digests, parent.to_json() if parent else None)
        run_dir.mkdir(parents=True, exist_ok=True)
        run.write(run_dir)
        hook = cls(run_dir, run, ledger, on_progress)
        hook.blocking_s = time.perf_counter() - started
        return hook

    @classmethod
    def resume(cls, run_dir: Path, *, ledger: Ledger | None, on_progress: ProgressFn | None = None) -> LedgerHook:
        """Re-attach to the run in ``run_dir`` and commit what a crash left pending."""
        started = time.perf_counter()
        hook = cls(run_dir, RunRecord.read(run_dir), ledger, on_progress)
        hook.check_ledger()
        remove_partial(run_dir)
        hook.sync()
        hook.blocking_s = time.perf_counter() - started
        return hook

    def check_ledger(self) -> None:
        """Refuse a ledger on which this directory's run id names some other run."""
        if self.ledger is None or self.run.run_id is None:
            return
        try:
            spec = self.ledger.get_run(self.run.run_id).spec
        except LLMChainError as err:
            raise BadInput(f"run {self.run.run_id} of {self.run_dir} is not on this ledger ({err}); connect to the ledger it was started on") from err
        if spec.config_digest.value != self.run.digests["config"].value or spec.dataset_digest.value != self.run.digests["dataset"].value:
            raise BadInput(f"run {self.run.run_id} on this ledger is not the run in {self.run_dir}; connect to the ledger it was started on (--ledger / --rpc-url)")

    def checkpoint(
        self,
        step: int,
        *,
        weights: Mapping[str, torch.Tensor],
        model_config: dict[str, Any],
        state_tensors: Mapping[str, torch.Tensor] | None = None,
        state_meta: dict[str, Any] | None = None,
        segment: Segment | None = None,
        val_loss: float | None = None,
        train_loss: float | None = None,
    ) -> CheckpointInfo:
        """Save atomically, journal as pending, and queue the commit (returns without waiting)."""
        info = save_checkpoint(
            self.run_dir,
            step,
            weights=weights,
            model_config=model_config,
            state_tensors=state_tensors or {},
            state_meta=state_meta or {"step": step},
            segment=segment,
            record={"model": self.run.model, "run_id": self.run.run_id, "val_loss": val_loss,
                    "train_loss": train_loss, "saved_at": time.time()},
        )
        self._emit(Progress("checkpoint", step, val_loss=val_loss, message=str(info.path)))
        if self.ledger is not None and self.run.run_id is not None:  # without a ledger nothing to journal
            self._committer = self._committer or _Committer(self)
            self._committer.submit(self.outbox.add(info))
            started = time.perf_counter()
            self._committer.wait_settled(self.inline_wait_s)
            self.blocking_s += time.perf_counter() - started
        return info

    def poll(self) -> None:
        """Report (once per interval) a commit that has been in flight for too long."""
        if self._committer is not None:
            self._committer.report_if_slow()

    def sync(self) -> list[OutboxEntry]:
        """Commit every pending checkpoint now, oldest first, after re-checking its files."""
        if self.ledger is None or self.run.run_id is None:
            return []
        self.outbox.reconcile(list_checkpoints(self.run_dir))
        pending = self.outbox.pending()
        for entry in pending:
            check_files(entry.info())
        done = commit_entries(self, pending)
        for entry, note in done:
            self._emit(Progress("recovered", entry.step, message=f"{note} (was pending)"))
        return [entry for entry, _ in done]

    def close(self, *, finished: bool) -> None:
        """Wait for outstanding commits; when ``finished``, close the run on-chain."""
        started = time.perf_counter()
        try:
            self._finish(finished)
        finally:
            self.blocking_s += time.perf_counter() - started

    @property
    def background_s(self) -> float:
        """Time the background committer spent on the ledger (it competes with training for CPU)."""
        return self._committer.busy_s if self._committer is not None else 0.0

    def _finish(self, finished: bool) -> None:
        if self._committer is not None:
            self._committer.drain()
            if self._committer.error is not None:
                raise LedgerError(f"{self._committer.error}; checkpoints are safe on disk, run `llmchain sync {self.run_dir}` to commit them")
        if self.run.status == "finished" or self.ledger is None or self.run.run_id is None:
            return
        if finished and not self.outbox.pending():
            self.ledger.finish_run(self.run.run_id)
            self.run.status = "finished"
            self.run.write(self.run_dir)

    def abandon(self) -> None:
        """Stop after the commit in flight; the rest stays pending in the outbox for ``sync``."""
        if self._committer is not None:
            self._committer.stop()


def _start_run(ledger: Ledger, model: Model, digests: dict[str, DigestRef], parent: ParentRef | None) -> int:
    spec = RunSpec(
        config_digest=_ledger_digest(digests["config"]),
        dataset_digest=_ledger_digest(digests["dataset"]),
        code_digest=_ledger_digest(digests["code"]),
        env_digest=_ledger_digest(digests["env"]),
        base_checkpoint=_optional_digest(parent.digest if parent else None),
    )
    return int(ledger.start_run(model.id, spec).id)


def commit_entries(hook: LedgerHook, entries: list[OutboxEntry]) -> list[tuple[OutboxEntry, str]]:
    """Commit journal entries in step order, up to 256 per transaction; returns (entry, message) pairs.

    Weights the ledger already holds are marked committed without a transaction: either this run
    committed them before a crash could journal it, or an identical earlier run (same seed, config
    and data give the same weights) did, and the ledger keeps each digest once.
    """
    ledger, run_id = hook.ledger, hook.run.run_id
    if ledger is None or run_id is None:
        raise LedgerError(f"run {hook.run_dir} has no ledger run to commit to; open it with a ledger (llmchain sync)")
    done, todo = [], []
    for entry in entries:
        known = lookup(ledger, entry.weights)
        if known is None:
            todo.append(entry)
            continue
        receipt = {"run_id": known.run_id, "step": known.step, "block": known.block_number}
        note = (f"{entry.checkpoint.name} was already committed" if known.run_id == run_id else
                f"{entry.checkpoint.name}: identical weights already committed by run {known.run_id} at step {known.step}; not committed again")
        done.append((hook.outbox.mark_committed(entry, receipt), note))
    for first in range(0, len(todo), 256):
        chunk = todo[first : first + 256]
        specs = [_spec(entry.info()) for entry in chunk]
        for entry, cp in zip(chunk, ledger.commit_checkpoints(run_id, specs)):
            receipt = {"run_id": cp.run_id, "step": cp.step, "index": cp.index, "block": cp.block_number}
            done.append((hook.outbox.mark_committed(entry, receipt), f"committed {entry.checkpoint.name}"))
    return sorted(done, key=lambda pair: pair[0].step)


def _spec(info: CheckpointInfo) -> CheckpointSpec:
    return CheckpointSpec(
        step=info.step,
        weights_digest=_ledger_digest(info.weights),
        state_digest=_ledger_digest(info.state),
        data_digest=_optional_digest(info.data),
        val_loss=info.val_loss,
    )


class _Committer:
    """A background thread that commits queued checkpoints, several per transaction when behind."""

    def __init__(self, hook: LedgerHook) -> None:
        self._hook = hook
        self._queue: queue.Queue[OutboxEntry | None] = queue.Queue()
        self._busy: tuple[float, int] | None = None  # (since, step) of the commit in flight
        self._reported = 0.0
        self._stop = threading.Event()
        self.error: LLMChainError | None = None
        self.busy_s = 0.0
        self._outstanding = 0  # submitted entries not yet attempted
        self._settled = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="llmchain-committer", daemon=True)
        self._thread.start()

    def submit(self, entry: OutboxEntry) -> None:
        with self._settled:
            self._outstanding += 1
        self._queue.put(entry)

    def wait_settled(self, timeout: float) -> None:
        """Wait up to ``timeout`` for the queue to empty; training continues regardless."""
        with self._settled:
            self._settled.wait_for(lambda: self._outstanding == 0, timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._stop.is_set():
                return
            batch = [item]
            while not self._queue.empty():
                more = self._queue.get_nowait()
                if more is None:
                    self._queue.put(None)
                    break
                batch.append(more)
            try:
                self._commit(batch)
            finally:
                with self._settled:
                    self._outstanding -= len(batch)
                    self._settled.notify_all()

    def _commit(self, batch: list[OutboxEntry]) -> None:
        if self.error is not None:
            return  # stays pending in the outbox; close() reports the error
        self._busy, self._reported = (time.monotonic(), batch[-1].step), 0.0
        try:
            for entry, note in commit_entries(self._hook, batch):
                self._hook._emit(Progress("commit", entry.step, message=note))
        except LLMChainError as err:
            self.error = err
            self._hook._emit(Progress("ledger_error", batch[-1].step, message=str(err)))
        finally:
            self.busy_s += time.monotonic() - self._busy[0]
            self._busy = None

    def report_if_slow(self) -> None:
        busy = self._busy
        if busy is None:
            return
        waited, limit = time.monotonic() - busy[0], self._hook.slow_after_s
        if waited >= limit and waited - self._reported >= limit:
            self._reported = waited
            self._hook._emit(Progress("ledger_slow", busy[1], message=f"commit of step {busy[1]} in flight for {waited:.0f}s; training continues, the outbox keeps it"))

    def drain(self) -> None:
        """Let every queued commit finish, reporting while the chain keeps us waiting."""
        self._queue.put(None)
        started = time.monotonic()
        while self._thread.is_alive():
            self._thread.join(timeout=min(1.0, self._hook.slow_after_s))
            self.report_if_slow()
            if self._thread.is_alive() and time.monotonic() - started >= 1.0:
                pending = len(self._hook.outbox.pending())
                self._hook._emit(Progress("ledger_wait", 0, message=f"waiting for {pending} checkpoint commit(s)"))

    def stop(self) -> None:
        self._stop.set()
        self._queue.put(None)
        self._thread.join(timeout=self._hook.slow_after_s)


def sync_run(run_dir: Path, ledger: Ledger, on_progress: ProgressFn | None = None) -> list[OutboxEntry]:
    """Commit whatever the outbox of ``run_dir`` still holds (``llmchain sync``); returns what was committed."""
    hook = LedgerHook(run_dir, RunRecord.read(run_dir), ledger, on_progress)
    hook.check_ledger()
    return hook.sync()


def find_runs(root: Path) -> list[Path]:
    """Run directories (those with a run.json) under ``root``."""
    return sorted(p.parent for p in root.glob(f"**/{RUN_FILE}"))
