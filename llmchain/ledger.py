"""The typed ledger client: short methods over the ModelRegistry contract, returning records.

Every method validates its input (raising :class:`~llmchain.errors.BadInput` before anything is
sent), goes through a :class:`llmchain.chain.Connection` (which signs, checks ``receipt.status`` and
decodes custom errors into :class:`~llmchain.errors.ContractRevert`), and returns the frozen
dataclasses of :mod:`llmchain.records`.

Checkpoints keep one storage slot each (the digest lookup); their other fields live in the
``CheckpointCommitted`` event, bound by the run's hash-chain head in storage. So the client reads
events only from the blocks storage names (the lookup's block, or the run's ``first_block..last_block``),
never from genesis, and :meth:`Ledger.list_checkpoints` always recomputes the chain over the run's
events and raises :class:`~llmchain.errors.VerificationFailed` unless it reproduces the on-chain head.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from eth_utils import to_checksum_address
from web3 import Web3

from llmchain.errors import BadInput
from llmchain.history import checked_lookup, released_checkpoint, verified_run
from llmchain.records import (
    Checkpoint,
    CheckpointSpec,
    Digest,
    Lineage,
    Model,
    Relation,
    Release,
    Run,
    RunHead,
    RunSpec,
    RunStatus,
    Status,
    check_name,
    check_page,
    check_run_id,
    digest_from_chain,
    digest_to_chain,
    digest_value,
    label_from_chain,
    label_to_chain,
    loss_from_chain,
    loss_to_chain,
    model_ref,
    required_digest_from_chain,
    unknown_model,
)

if TYPE_CHECKING:
    from llmchain.chain import Connection

MAX_BATCH = 256  # the contract's MAX_BATCH
_RELEASE_PAGE = 100  # releases per releasesOf call
_STATUS_PAGE = 500  # digests per statusesOf call when listing a run
_ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"


class Ledger:
    """Typed access to one ModelRegistry through one connection (and its sender account)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._fns = conn.registry.functions
        self._run_models: dict[int, int] = {}

    # ------------------------------------------------------------ models and roles

    def register_model(self, name: str, card_digest: Digest | None = None, parent: Lineage | None = None) -> Model:
        """Register ``name`` with the sender as owner; the name must be new."""
        check_name(name)
        taken = self.conn.call(self._fns.modelIdOf(name))
        if taken:
            raise BadInput(f"model name {name!r} is already registered (id {taken}); pick another name")
        lineage = (0, digest_to_chain(None), 0)
        if parent is not None:
            lineage = (parent.model_id or 0, digest_to_chain(parent.checkpoint), int(parent.relation))
        receipt = self.conn.transact(self._fns.registerModel(name, digest_to_chain(card_digest), lineage))
        (event,) = self.conn.registry.events.ModelRegistered().process_receipt(receipt)
        return self.get_model(event["args"]["modelId"])

    def get_model(self, name_or_id: str | int) -> Model:
        """The model registered under a name or id; BadInput if there is none."""
        raw = self.conn.call(self._fns.getModel(self.model_id(name_or_id)))
        card_alg, card_value = raw[4]
        parent_id, (parent_alg, parent_value), relation = raw[5]
        parent = None
        if relation != Relation.NONE:
            parent = Lineage(Relation(relation), parent_id or None, digest_from_chain(parent_alg, parent_value))
        return Model(
            id=raw[0],
            name=raw[1],
            owner=raw[2],
            pending_owner=None if raw[3] == _ZERO_ADDRESS else raw[3],
            card=digest_from_chain(card_alg, card_value),
            parent=parent,
            run_count=raw[6],
            release_count=raw[7],
            registered_block=raw[8],
        )

    def model_id(self, name_or_id: str | int) -> int:
        """Resolve a model name (or id, or decimal id string) to an existing model id."""
        ref = model_ref(name_or_id)
        model_id = ref if isinstance(ref, int) else self.conn.call(self._fns.modelIdOf(ref))
        if not 0 < model_id <= self.conn.call(self._fns.modelCount()):
            raise unknown_model(name_or_id)
        return model_id

    def grant_trainer(self, model: str | int, account: str) -> None:
        """Let ``account`` start runs and commit checkpoints for ``model`` (owner only)."""
        self.conn.transact(self._fns.grantTrainer(self.model_id(model), _address(account)))

    def revoke_trainer(self, model: str | int, account: str) -> None:
        """Withdraw ``account``'s trainer role (owner only); it can no longer commit."""
        self.conn.transact(self._fns.revokeTrainer(self.model_id(model), _address(account)))

    def can_train(self, model: str | int, account: str) -> bool:
        """Whether ``account`` is a trainer or the owner of ``model``."""
        return bool(self.conn.call(self._fns.canTrain(self.model_id(model), _address(account))))

    def transfer_ownership(self, model: str | int, new_owner: str) -> None:
        """Offer ownership of ``model`` to ``new_owner``; it takes effect when they accept."""
        self.conn.transact(self._fns.transferOwnership(self.model_id(model), _address(new_owner)))

    def accept_ownership(self, model: str | int) -> None:
        """Accept a pending ownership transfer of ``model`` (as the pending owner)."""
        self.conn.transact(self._fns.acceptOwnership(self.model_id(model)))

    # ------------------------------------------------------------ runs and checkpoints

    def start_run(self, model: str | int, spec: RunSpec) -> Run:
        """Open a training run of ``model`` (trainer or owner)."""
        digests = (spec.config_digest, spec.dataset_digest, spec.code_digest, spec.env_digest, spec.base_checkpoint)
        receipt = self.conn.transact(
            self._fns.startRun(self.model_id(model), tuple(digest_to_chain(d) for d in digests))
        )
        (event,) = self.conn.registry.events.RunStarted().process_receipt(receipt)
        return self.get_run(event["args"]["runId"])

    def get_run(self, run_id: int) -> Run:
        """Run ``run_id`` with its spec, counters and hash-chain head."""
        return _run(self.conn.call(self._fns.getRun(check_run_id(run_id))))

    def finish_run(self, run_id: int) -> Run:
        """Close an open run as finished."""
        self.conn.transact(self._fns.finishRun(check_run_id(run_id)))
        return self.get_run(run_id)

    def abort_run(self, run_id: int) -> Run:
        """Close an open run as aborted."""
        self.conn.transact(self._fns.abortRun(check_run_id(run_id)))
        return self.get_run(run_id)

    def commit_checkpoint(self, run_id: int, spec: CheckpointSpec) -> Checkpoint:
        """Append one checkpoint to an open run (one transaction, about 67k gas)."""
        (checkpoint,) = self.commit_checkpoints(run_id, [spec])
        return checkpoint

    def commit_checkpoints(self, run_id: int, specs: Sequence[CheckpointSpec]) -> list[Checkpoint]:
        """Append 1-256 checkpoints in order, all in one transaction (all or nothing)."""
        if not 1 <= len(specs) <= MAX_BATCH:
            raise BadInput(f"a batch commit takes 1 to {MAX_BATCH} checkpoints, got {len(specs)}; split it")
        rows = [_checkpoint_to_chain(spec) for spec in specs]
        run_id = check_run_id(run_id)
        fn = self._fns.commitCheckpoint(run_id, rows[0]) if len(rows) == 1 else self._fns.commitCheckpoints(run_id, rows)
        receipt = self.conn.transact(fn)
        events = self.conn.registry.events.CheckpointCommitted().process_receipt(receipt)
        return [_checkpoint(event, self._model_of_run(run_id), Status.ACTIVE) for event in events]

    def lookup(self, weights_digest: Digest | bytes) -> Checkpoint | None:
        """The checkpoint with these weights, or None if they were never committed (one view call
        plus the one block's log). A Digest whose algorithm differs from the recorded one fails."""
        value = digest_value(weights_digest)
        loc = self.conn.call(self._fns.checkpointOf(value))
        if loc[1] == 0:
            return None
        logs = self.conn.get_logs(
            "CheckpointCommitted",
            from_block=loc[4],
            to_block=loc[4],
            argument_filters={"runId": loc[1], "weightsDigest": value},
        )
        events = [_checkpoint(log, loc[0], Status(loc[6])) for log in logs]
        return checked_lookup(weights_digest, events, loc[2], loc[3], loc[4])

    def list_runs(self, model: str | int, offset: int = 0, limit: int = 100) -> list[Run]:
        """Runs of ``model``, oldest first, from the on-chain paged view."""
        check_page(offset, limit)
        return [_run(raw) for raw in self.conn.call(self._fns.runsOf(self.model_id(model), offset, limit))]

    def list_checkpoints(self, run_id: int, offset: int = 0, limit: int | None = None) -> list[Checkpoint]:
        """Checkpoints ``offset..offset+limit`` of a run, in order, with current statuses.

        Fetches the run's events from its ``first_block..last_block`` only and always verifies them
        against the on-chain hash-chain head (VerificationFailed if a log is missing or altered).
        """
        check_page(offset, limit)
        run = self.get_run(run_id)
        checkpoints = self._verified_checkpoints(run)
        page = checkpoints[offset : None if limit is None else offset + limit]
        return self._with_statuses(run, page)

    def verify_chain(self, run_id: int) -> RunHead:
        """Recompute the run's hash chain from its events; VerificationFailed unless it matches."""
        run = self.get_run(run_id)
        self._verified_checkpoints(run)
        return RunHead(run.id, run.head, run.checkpoint_count)

    def run_head(self, run_id: int) -> RunHead:
        """The run's on-chain hash-chain head and checkpoint count."""
        run = self.get_run(run_id)
        return RunHead(run.id, run.head, run.checkpoint_count)

    def deprecate_checkpoint(self, weights_digest: Digest | bytes, reason: str) -> None:
        """Mark a checkpoint deprecated (owner of its model)."""
        self.conn.transact(self._fns.deprecateCheckpoint(digest_value(weights_digest), _reason(reason)))

    def revoke_checkpoint(self, weights_digest: Digest | bytes, reason: str) -> None:
        """Revoke a checkpoint for good (owner of its model); lookups then show it revoked."""
        self.conn.transact(self._fns.revokeCheckpoint(digest_value(weights_digest), _reason(reason)))

    # ------------------------------------------------------------ releases

    def release(self, model: str | int, label: str, weights_digest: Digest | bytes) -> Release:
        """Name an active checkpoint of ``model`` with a version label (owner only)."""
        model_id = self.model_id(model)
        self.conn.transact(self._fns.release(model_id, label_to_chain(label), digest_value(weights_digest)))
        return self.get_release(model_id, label)

    def get_release(self, model: str | int, label: str) -> Release:
        """Release ``label`` of ``model`` with its checkpoint resolved."""
        model_id = self.model_id(model)
        return self._release(model_id, self.conn.call(self._fns.getRelease(model_id, label_to_chain(label))))

    def list_releases(self, model: str | int, offset: int = 0, limit: int = 100) -> list[Release]:
        """Releases of ``model``, oldest first, from the on-chain paged view."""
        check_page(offset, limit)
        model_id = self.model_id(model)
        return [self._release(model_id, raw) for raw in self.conn.call(self._fns.releasesOf(model_id, offset, limit))]

    def releases_naming(self, model: Model, weights_digest: Digest | bytes) -> list[Release]:
        """Releases of ``model`` whose label names these weights, oldest first.

        Scans the paged ``releasesOf`` view but resolves only the matching releases (a log read
        each), so verifying weights stays cheap on a model with many releases.
        """
        value = digest_value(weights_digest)
        matches: list[Any] = []
        for offset in range(0, model.release_count, _RELEASE_PAGE):
            page = self.conn.call(self._fns.releasesOf(model.id, offset, _RELEASE_PAGE))
            matches += [raw for raw in page if bytes(raw[1]) == value]
        return [self._release(model.id, raw) for raw in matches]

    def deprecate_release(self, model: str | int, label: str, reason: str) -> None:
        """Mark a release deprecated (owner only)."""
        self.conn.transact(self._fns.deprecateRelease(self.model_id(model), label_to_chain(label), _reason(reason)))

    def revoke_release(self, model: str | int, label: str, reason: str) -> None:
        """Revoke a release for good (owner only)."""
        self.conn.transact(self._fns.revokeRelease(self.model_id(model), label_to_chain(label), _reason(reason)))

    # ------------------------------------------------------------ internals

    def _model_of_run(self, run_id: int) -> int:
        """A run's model id, cached (it never changes), so commits cost one call less."""
        if run_id not in self._run_models:
            self._run_models[run_id] = self.get_run(run_id).model_id
        return self._run_models[run_id]

    def _verified_checkpoints(self, run: Run) -> list[Checkpoint]:
        """All checkpoints of ``run`` from its events, checked against its count and head."""
        if run.checkpoint_count == 0:
            events: list[Any] = []
        else:
            events = self.conn.get_logs(
                "CheckpointCommitted",
                from_block=run.first_block,
                to_block=run.last_block,
                argument_filters={"runId": run.id},
            )
        checkpoints = (_checkpoint(e, run.model_id, Status.ACTIVE) for e in events)
        return verified_run(run, checkpoints, self.conn.chain_id, self.conn.registry.address)

    def _with_statuses(self, run: Run, checkpoints: list[Checkpoint]) -> list[Checkpoint]:
        """Fill in current statuses (storage, not events); skipped when the run never had a change."""
        if run.status_changes == 0:
            return checkpoints
        result = []
        for start in range(0, len(checkpoints), _STATUS_PAGE):
            page = checkpoints[start : start + _STATUS_PAGE]
            statuses = self.conn.call(self._fns.statusesOf([c.weights_digest.value for c in page]))
            result += [replace(c, status=Status(status)) for c, status in zip(page, statuses)]
        return result

    def _release(self, model_id: int, raw: Any) -> Release:
        return Release(
            model_id=model_id,
            label=label_from_chain(raw[0]),
            checkpoint=released_checkpoint(raw[0], self.lookup(bytes(raw[1]))),
            status=Status(raw[3]),
            released_by=raw[4],
            released_block=raw[5],
            released_at=raw[6],
        )


def _checkpoint(event: Any, model_id: int, status: Status) -> Checkpoint:
    args = event["args"]
    state, data = args["state"], args["data"]
    return Checkpoint(
        model_id=model_id,
        run_id=args["runId"],
        index=args["index"],
        step=args["step"],
        weights_digest=required_digest_from_chain(args["weightsAlgorithm"], args["weightsDigest"]),
        state_digest=digest_from_chain(state["algorithm"], state["value"]),
        data_digest=digest_from_chain(data["algorithm"], data["value"]),
        val_loss=loss_from_chain(args["valLoss"]),
        committer=args["committer"],
        block_number=event["blockNumber"],
        timestamp=args["timestamp"],
        status=status,
    )


def _run(raw: Any) -> Run:
    config, dataset, code, env = (required_digest_from_chain(alg, value) for alg, value in raw[11][:4])
    return Run(
        id=raw[0],
        model_id=raw[1],
        status=RunStatus(raw[2]),
        trainer=raw[3],
        started_block=raw[4],
        started_at=raw[5],
        checkpoint_count=raw[6],
        last_step=raw[7],
        first_block=raw[8],
        last_block=raw[9],
        head=bytes(raw[10]),
        spec=RunSpec(config, dataset, code, env, digest_from_chain(*raw[11][4])),
        status_changes=raw[12],
    )


def _checkpoint_to_chain(spec: CheckpointSpec) -> tuple[Any, ...]:
    return (
        spec.step,
        digest_to_chain(spec.weights_digest),
        digest_to_chain(spec.state_digest),
        digest_to_chain(spec.data_digest),
        loss_to_chain(spec.val_loss),
    )


def _address(account: str) -> str:
    if not isinstance(account, str) or not Web3.is_address(account):
        raise BadInput(f"invalid account address {account!r}: expected 0x followed by 40 hex characters")
    return to_checksum_address(account)


def _reason(reason: str) -> str:
    if not isinstance(reason, str) or not 1 <= len(reason.encode("utf-8")) <= 256:
        raise BadInput("a reason must be 1 to 256 bytes of text")
    return reason
