"""The registry's records read straight from the embedded ledger's database: no web3, no EVM.

:class:`RegistrySnapshot` answers the ledger's reads (models, runs, a run's checkpoints, digest
lookups, releases) with the same records and the same errors as
:class:`llmchain.ledger.Ledger`, but from the registry's storage and our log index as
:mod:`llmchain.statedb` reads them. It exists for start-up time: ``llmchain verify`` of 1 GiB may
spend 100 ms beyond hashing, and importing web3 and py-evm alone takes about a second; the other
read-only commands (show, runs, checkpoints, lookup) use it too.

What it trusts is what the Ledger trusts on the same file: the registry account's code hash must be
the artifact's (the same pin the chain layer applies), storage is read by the compiler's layout
(:mod:`llmchain.layout`), and event fields pass the checks of :mod:`llmchain.history` against storage.
The parity tests (``tests/test_snapshot.py``) read every record both ways and require equality.

Only the embedded ledger can be read like this; :func:`open_snapshot` raises ``StateUnavailable``
for anything unusual (no ledger yet, another format version, a foreign registry), and callers then
use the full client, which creates, upgrades or explains.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

from llmchain.artifacts import abi_type, load_artifact
from llmchain.errors import ContractRevert, LedgerError
from llmchain.history import checked_lookup, released_checkpoint, verified_run
from llmchain.layout import Storage
from llmchain.records import (
    Checkpoint,
    Digest,
    Lineage,
    Model,
    Relation,
    Release,
    Run,
    RunSpec,
    RunStatus,
    Status,
    check_page,
    check_run_id,
    digest_from_chain,
    digest_value,
    label_from_chain,
    label_to_chain,
    loss_from_chain,
    model_ref,
    required_digest_from_chain,
    unknown_model,
)
from llmchain.statedb import (
    CHAIN_ID,
    DATABASE_NAME,
    LEDGER_FORMAT,
    LEDGER_FORMAT_VERSION,
    StateDB,
    StateUnavailable,
    address_bytes,
    checksum_address,
    keccak256,
    resolve_ledger_dir,
)

__all__ = ["RegistrySnapshot", "StateUnavailable", "open_snapshot"]

_ZERO_ADDRESS = bytes(20)


def open_snapshot(ledger_dir: Path | str | None = None) -> RegistrySnapshot:
    """The embedded ledger in ``ledger_dir`` (default as for ``connect``) at its latest block.

    Raises ``StateUnavailable`` when it cannot be read directly; use the full client then.
    """
    directory = resolve_ledger_dir(ledger_dir)
    state = StateDB(directory / DATABASE_NAME)
    try:
        return RegistrySnapshot(state, directory)
    except BaseException:
        state.close()
        raise


class RegistrySnapshot:
    """Read-only registry client over one committed state of the embedded ledger (see module doc).

    It sees the block that was the head when it was opened, and nothing committed later; hold it
    briefly (its read transaction also keeps SQLite from folding the write-ahead log back into the
    database) and open a new one to see newer blocks.
    """

    def __init__(self, state: StateDB, directory: Path) -> None:
        meta = state.meta()
        expected = {"format": LEDGER_FORMAT, "format_version": str(LEDGER_FORMAT_VERSION), "chain_id": str(CHAIN_ID)}
        if any(meta.get(key) != value for key, value in expected.items()) or "registry_address" not in meta:
            raise StateUnavailable(f"{directory} is not a version {LEDGER_FORMAT_VERSION} llmchain ledger")
        artifact = load_artifact()
        self.registry = meta["registry_address"]
        self._registry_address = address_bytes(self.registry)
        account = state.account(self._registry_address)
        if account is None or "0x" + account[1].hex() != artifact.runtime_code_hash:
            raise StateUnavailable(f"the registry at {self.registry} is not the llmchain ModelRegistry")
        self.chain_id = CHAIN_ID
        self._state = state
        self._storage = Storage(artifact.storage_layout, lambda slot: state.storage(account[0], slot))
        self._committed = _EventLayout(artifact.abi, "CheckpointCommitted")

    # ------------------------------------------------------------ models

    def model_id(self, name_or_id: str | int) -> int:
        """Resolve a model name (or id, or decimal id string) to an existing model id."""
        ref = model_ref(name_or_id)
        model_id = ref if isinstance(ref, int) else self._int("_modelByName", keccak256(ref.encode("utf-8")))
        if not 0 < model_id <= self._int("_modelCount"):
            raise unknown_model(name_or_id)
        return model_id

    def get_model(self, name_or_id: str | int) -> Model:
        """The model registered under a name or id; BadInput if there is none."""
        model_id = self.model_id(name_or_id)
        raw = self._struct("_models", model_id)
        parent = None
        if raw["relation"] != Relation.NONE:
            checkpoint = _digest(raw["parentCheckpoint"])
            parent = Lineage(Relation(raw["relation"]), raw["parentModelId"] or None, checkpoint)
        return Model(
            id=model_id,
            name=raw["name"],
            owner=checksum_address(raw["owner"]),
            pending_owner=None if raw["pendingOwner"] == _ZERO_ADDRESS else checksum_address(raw["pendingOwner"]),
            card=_digest(raw["card"]),
            parent=parent,
            run_count=self._storage.length("_modelRuns", model_id),
            release_count=self._storage.length("_releaseLabels", model_id),
            registered_block=raw["registeredBlock"],
        )

    # ------------------------------------------------------------ runs and checkpoints

    def list_runs(self, model: str | int, offset: int = 0, limit: int = 100) -> list[Run]:
        """Runs of ``model``, oldest first (a page, as the contract's ``runsOf`` gives it)."""
        check_page(offset, limit)
        model_id = self.model_id(model)
        count = self._storage.length("_modelRuns", model_id)
        return [self.get_run(self._int("_modelRuns", model_id, i)) for i in range(offset, min(count, offset + limit))]

    def get_run(self, run_id: int) -> Run:
        """Run ``run_id`` with its spec, counters and hash-chain head."""
        run_id = check_run_id(run_id)
        state = self._struct("_runState", run_id)
        if state["status"] == RunStatus.NONE:
            raise ContractRevert("RegistryUnknownRun", {"runId": run_id}, f"RegistryUnknownRun(runId={run_id})")
        info, spec = self._struct("_runInfo", run_id), self._struct("_runSpecs", run_id)
        config, dataset, code, env = (_required(spec[name]) for name in ("config", "dataset", "code", "environment"))
        return Run(
            id=run_id,
            model_id=state["modelId"],
            status=RunStatus(state["status"]),
            trainer=checksum_address(info["trainer"]),
            started_block=info["startedBlock"],
            started_at=info["startedAt"],
            checkpoint_count=state["checkpointCount"],
            last_step=state["lastStep"],
            first_block=state["firstBlock"],
            last_block=state["lastBlock"],
            head=self._bytes("_heads", run_id),
            spec=RunSpec(config, dataset, code, env, _digest(spec["baseCheckpoint"])),
            status_changes=self._int("_statusChanges", run_id),
        )

    def lookup(self, weights_digest: Digest | bytes) -> Checkpoint | None:
        """The checkpoint with these weights, or None if they were never committed."""
        value = digest_value(weights_digest)
        where = self._struct("_where", value)
        if where["runId"] == 0:
            return None
        model_id = self._int("_runState", where["runId"], "modelId")
        status = Status(where["status"])
        logs = self._state.logs(
            self._registry_address, where["blockNumber"], where["blockNumber"],
            [self._committed.topic0, where["runId"].to_bytes(32, "big"), value],
        )  # fmt: skip
        events = [self._checkpoint(block, topics, data, model_id, status) for block, topics, data in logs]
        return checked_lookup(weights_digest, events, where["index"], where["step"], where["blockNumber"])

    def list_checkpoints(self, run_id: int, offset: int = 0, limit: int | None = None) -> list[Checkpoint]:
        """Checkpoints ``offset..offset+limit`` of a run, verified against its hash-chain head."""
        check_page(offset, limit)
        run = self.get_run(run_id)
        logs = []
        if run.checkpoint_count:
            logs = self._state.logs(
                self._registry_address, run.first_block, run.last_block, [self._committed.topic0, run.id.to_bytes(32, "big")]
            )
        events = (self._checkpoint(block, topics, data, run.model_id, Status.ACTIVE) for block, topics, data in logs)
        checkpoints = verified_run(run, events, self.chain_id, self.registry)[offset : None if limit is None else offset + limit]
        if run.status_changes == 0:
            return checkpoints
        return [replace(c, status=Status(self._int("_where", c.weights_digest.value, "status"))) for c in checkpoints]

    # ------------------------------------------------------------ releases

    def get_release(self, model: str | int, label: str) -> Release:
        """Release ``label`` of ``model`` with its checkpoint resolved."""
        model_id = self.model_id(model)
        raw_label = label_to_chain(label)
        raw = self._struct("_releases", model_id, raw_label)
        if not any(raw["weightsDigest"]):
            args: dict[str, object] = {"modelId": model_id, "label": "0x" + raw_label.hex()}
            raise ContractRevert("RegistryUnknownRelease", args, f"RegistryUnknownRelease(modelId={model_id}, label={args['label']})")
        return self._release(model_id, raw_label, raw)

    def list_releases(self, model: str | int, offset: int = 0, limit: int = 100) -> list[Release]:
        """Releases of ``model``, oldest first (a page, as the contract's ``releasesOf`` gives it)."""
        check_page(offset, limit)
        model_id = self.model_id(model)
        count = self._storage.length("_releaseLabels", model_id)
        labels = [self._bytes("_releaseLabels", model_id, i) for i in range(offset, min(count, offset + limit))]
        return [self._release(model_id, label, self._struct("_releases", model_id, label)) for label in labels]

    def releases_naming(self, model: Model, weights_digest: Digest | bytes) -> list[Release]:
        """Releases of ``model`` whose label names these weights, oldest first."""
        value = digest_value(weights_digest)
        found = []
        for index in range(model.release_count):
            label = self._bytes("_releaseLabels", model.id, index)
            if self._bytes("_releases", model.id, label, "weightsDigest") == value:
                found.append(self._release(model.id, label, self._struct("_releases", model.id, label)))
        return found

    # ------------------------------------------------------------ internals

    def _release(self, model_id: int, label: bytes, raw: dict[str, Any]) -> Release:
        return Release(
            model_id=model_id,
            label=label_from_chain(label),
            checkpoint=released_checkpoint(label, self.lookup(raw["weightsDigest"])),
            status=Status(raw["status"]),
            released_by=checksum_address(raw["releasedBy"]),
            released_block=raw["releasedBlock"],
            released_at=raw["releasedAt"],
        )

    def _checkpoint(self, block: int, topics: list[bytes], data: bytes, model_id: int, status: Status) -> Checkpoint:
        args = self._committed.decode(topics, data)
        return Checkpoint(
            model_id=model_id,
            run_id=int.from_bytes(args["runId"], "big"),
            index=int.from_bytes(args["index"], "big"),
            step=int.from_bytes(args["step"], "big"),
            weights_digest=_required({"algorithm": args["weightsAlgorithm"], "value": args["weightsDigest"]}),
            state_digest=_digest({"algorithm": args["state.algorithm"], "value": args["state.value"]}),
            data_digest=_digest({"algorithm": args["data.algorithm"], "value": args["data.value"]}),
            val_loss=loss_from_chain(int.from_bytes(args["valLoss"], "big")),
            committer=checksum_address(args["committer"][12:]),
            block_number=block,
            timestamp=int.from_bytes(args["timestamp"], "big"),
            status=status,
        )

    def _struct(self, variable: str, *path: int | bytes | str) -> dict[str, Any]:
        value = self._storage.read(variable, *path)
        assert isinstance(value, dict), f"{variable} is not a struct"
        return value

    def _int(self, variable: str, *path: int | bytes | str) -> int:
        value = self._storage.read(variable, *path)
        assert isinstance(value, int), f"{variable} is not an integer"
        return value

    def _bytes(self, variable: str, *path: int | bytes | str) -> bytes:
        value = self._storage.read(variable, *path)
        assert isinstance(value, bytes), f"{variable} is not a byte string"
        return value

    def close(self) -> None:
        self._state.close()

    def __enter__(self) -> RegistrySnapshot:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None) -> None:
        self.close()


class _EventLayout:
    """One event whose arguments are all static ABI types: its topic and its 32-byte fields by name
    (struct members as ``"struct.member"``)."""

    def __init__(self, abi: list[dict[str, Any]], name: str) -> None:
        (entry,) = (item for item in abi if item.get("type") == "event" and item["name"] == name)
        self.name = name
        self.topic0 = keccak256(f"{name}({','.join(abi_type(i) for i in entry['inputs'])})".encode("ascii"))
        self._indexed = [item["name"] for item in entry["inputs"] if item["indexed"]]
        self._words = [name for item in entry["inputs"] if not item["indexed"] for name in _word_names(item)]

    def decode(self, topics: list[bytes], data: bytes) -> dict[str, bytes]:
        if len(topics) != 1 + len(self._indexed) or topics[0] != self.topic0 or len(data) != 32 * len(self._words):
            raise LedgerError(f"a log in the index is not a well-formed {self.name} event")
        fields = dict(zip(self._indexed, topics[1:]))
        fields.update((name, data[32 * i : 32 * i + 32]) for i, name in enumerate(self._words))
        return fields


def _word_names(item: dict[str, Any]) -> list[str]:
    if item["type"] == "tuple":
        return [f"{item['name']}.{c['name']}" for c in item["components"]]
    return [item["name"]]


def _digest(raw: dict[str, bytes]) -> Digest | None:
    return digest_from_chain(raw["algorithm"], raw["value"])


def _required(raw: dict[str, bytes]) -> Digest:
    return required_digest_from_chain(raw["algorithm"], raw["value"])
