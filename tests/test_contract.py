"""ModelRegistry on a real eth-tester chain: every custom error with its arguments, every event,
access control, the hash chain against an off-chain recomputation, the RFC 6962 proof check, gas."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak

from llmchain.chain import Connection
from llmchain.errors import ContractRevert

ZERO = b"\0" * 32
NO_DIGEST = (ZERO, ZERO)
NO_PARENT = (0, NO_DIGEST, 0)
SHA256 = b"sha256".ljust(32, b"\0")
TENSOR = b"tensor-sha256-v1".ljust(32, b"\0")
FINE_TUNE, ACTIVE, DEPRECATED, REVOKED = 1, 0, 1, 2
OPEN, FINISHED, ABORTED = 1, 2, 3


def digest(algorithm: bytes = SHA256) -> tuple[bytes, bytes]:
    return (algorithm, os.urandom(32))


def spec() -> tuple[Any, ...]:
    return (digest(), digest(), digest(), digest(), NO_DIGEST)


def cp(step: int, loss: int = 2_500_000_000) -> tuple[Any, ...]:
    return (step, digest(TENSOR), digest(TENSOR), digest(), loss)


def label(text: str) -> bytes:
    return text.encode().ljust(32, b"\0")


def hx(value: bytes) -> str:
    return "0x" + value.hex()


class Actor:
    """One account's view of the registry: send transactions, read views, read a receipt's events."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.address = conn.sender
        self.fn = conn.registry.functions

    def tx(self, name: str, *args: Any) -> Any:
        return self.conn.transact(getattr(self.fn, name)(*args))

    def view(self, name: str, *args: Any) -> Any:
        return self.conn.call(getattr(self.fn, name)(*args))

    def events(self, receipt: Any, name: str) -> list[Any]:
        return list(self.conn.registry.events[name]().process_receipt(receipt))


@pytest.fixture
def owner(conn: Connection) -> Actor:
    return Actor(conn)


@pytest.fixture
def trainer(conn: Connection) -> Actor:
    return Actor(conn.as_account(1))


@pytest.fixture
def stranger(conn: Connection) -> Actor:
    return Actor(conn.as_account(2))


@pytest.fixture
def model(owner: Actor, trainer: Actor) -> int:
    """Model 1, owned by account 0, with account 1 as trainer."""
    owner.tx("registerModel", "acme/tiny-gpt", digest(), NO_PARENT)
    owner.tx("grantTrainer", 1, trainer.address)
    return 1


@pytest.fixture
def run(model: int, trainer: Actor) -> int:
    trainer.tx("startRun", model, spec())
    return 1


def reverts(actor: Actor, name: str, *args: Any, view: bool = False) -> ContractRevert:
    with pytest.raises(ContractRevert) as caught:
        (actor.view if view else actor.tx)(name, *args)
    return caught.value


def expect(error: ContractRevert, error_name: str, /, **args: Any) -> None:
    assert error.name == error_name, str(error)
    assert error.args_by_name == args
    assert str(error).startswith(f"{error_name}(")


# ---------------------------------------------------------------- models, ownership, roles


def test_register_model_emits_and_stores_everything(owner: Actor) -> None:
    card = digest()
    receipt = owner.tx("registerModel", "acme/tiny-gpt", card, NO_PARENT)
    (event,) = owner.events(receipt, "ModelRegistered")
    assert event["args"]["modelId"] == 1 and event["args"]["owner"] == owner.address
    assert event["args"]["name"] == "acme/tiny-gpt" and event["args"]["parentModelId"] == 0
    assert (event["args"]["card"]["algorithm"], event["args"]["card"]["value"]) == card
    view = owner.view("getModel", 1)
    assert view[:4] == (1, "acme/tiny-gpt", owner.address, "0x" + "0" * 40)
    assert view[4] == card and view[5] == NO_PARENT
    assert owner.view("modelIdOf", "acme/tiny-gpt") == 1 and owner.view("modelCount") == 1
    assert owner.view("modelIdOf", "acme/other") == 0


@pytest.mark.parametrize("name", ["", "Acme/Tiny", "acme tiny", "a" * 65, "acme/ü"])
def test_invalid_names_are_refused(owner: Actor, name: str) -> None:
    expect(reverts(owner, "registerModel", name, NO_DIGEST, NO_PARENT), "RegistryInvalidName", name=name)


def test_names_are_unique(owner: Actor, stranger: Actor) -> None:
    owner.tx("registerModel", "acme/tiny-gpt", NO_DIGEST, NO_PARENT)
    error = reverts(stranger, "registerModel", "acme/tiny-gpt", NO_DIGEST, NO_PARENT)
    expect(error, "RegistryNameTaken", name="acme/tiny-gpt", modelId=1)


def test_half_zero_digest_is_refused(owner: Actor) -> None:
    value = os.urandom(32)
    error = reverts(owner, "registerModel", "acme/x", (ZERO, value), NO_PARENT)
    expect(error, "RegistryInvalidDigest", algorithm=hx(ZERO), value=hx(value))


def test_lineage_is_recorded_and_checked(owner: Actor, run: int, trainer: Actor) -> None:
    weights = cp(1)
    trainer.tx("commitCheckpoint", run, weights)
    parent = (1, weights[1], FINE_TUNE)
    receipt = owner.tx("registerModel", "acme/tiny-gpt-chat", digest(), parent)
    (event,) = owner.events(receipt, "ModelRegistered")
    assert event["args"]["parentModelId"] == 1 and event["args"]["relation"] == FINE_TUNE
    assert owner.view("getModel", 2)[5] == parent
    external = (0, digest(TENSOR), FINE_TUNE)  # a parent outside this registry
    owner.tx("registerModel", "acme/from-hub", NO_DIGEST, external)
    assert owner.view("getModel", 3)[5] == external


def test_lineage_errors(owner: Actor, run: int, trainer: Actor) -> None:
    weights = cp(1)
    trainer.tx("commitCheckpoint", run, weights)
    owner.tx("registerModel", "acme/other", NO_DIGEST, NO_PARENT)
    no_parent = reverts(owner, "registerModel", "acme/x", NO_DIGEST, (0, NO_DIGEST, FINE_TUNE))
    expect(no_parent, "RegistryInvalidLineage", parentModelId=0, parentCheckpoint=hx(ZERO), relation=FINE_TUNE)
    no_relation = reverts(owner, "registerModel", "acme/x", NO_DIGEST, (1, NO_DIGEST, 0))
    expect(no_relation, "RegistryInvalidLineage", parentModelId=1, parentCheckpoint=hx(ZERO), relation=0)
    unknown = reverts(owner, "registerModel", "acme/x", NO_DIGEST, (9, NO_DIGEST, FINE_TUNE))
    expect(unknown, "RegistryUnknownModel", modelId=9)
    stray = digest(TENSOR)
    unknown_cp = reverts(owner, "registerModel", "acme/x", NO_DIGEST, (1, stray, FINE_TUNE))
    expect(unknown_cp, "RegistryUnknownCheckpoint", weightsDigest=hx(stray[1]))
    wrong_model = reverts(owner, "registerModel", "acme/x", NO_DIGEST, (2, weights[1], FINE_TUNE))
    expect(wrong_model, "RegistryCheckpointOfOtherModel", weightsDigest=hx(weights[1][1]), modelId=2, actualModelId=1)


def test_ownership_needs_acceptance(owner: Actor, model: int, stranger: Actor, trainer: Actor) -> None:
    receipt = owner.tx("transferOwnership", model, stranger.address)
    (started,) = owner.events(receipt, "OwnershipTransferStarted")
    assert started["args"] == {"modelId": 1, "previousOwner": owner.address, "newOwner": stranger.address}
    assert owner.view("getModel", model)[2:4] == (owner.address, stranger.address)
    # Not yet the owner: the new owner cannot grant; the old one still can.
    expect(reverts(stranger, "grantTrainer", model, stranger.address), "RegistryNotOwner",
           account=stranger.address, modelId=1)  # fmt: skip
    expect(reverts(trainer, "acceptOwnership", model), "RegistryNotPendingOwner", account=trainer.address, modelId=1)
    receipt = stranger.tx("acceptOwnership", model)
    (moved,) = stranger.events(receipt, "OwnershipTransferred")
    assert moved["args"] == {"modelId": 1, "previousOwner": owner.address, "newOwner": stranger.address}
    assert owner.view("getModel", model)[2:4] == (stranger.address, "0x" + "0" * 40)
    assert owner.view("canTrain", model, stranger.address) and not owner.view("canTrain", model, owner.address)
    expect(reverts(owner, "grantTrainer", model, owner.address), "RegistryNotOwner", account=owner.address, modelId=1)


def test_pending_transfer_can_be_cancelled(owner: Actor, model: int, stranger: Actor) -> None:
    owner.tx("transferOwnership", model, stranger.address)
    owner.tx("transferOwnership", model, "0x" + "0" * 40)
    expect(reverts(stranger, "acceptOwnership", model), "RegistryNotPendingOwner", account=stranger.address, modelId=1)


def test_trainer_roles(owner: Actor, model: int, trainer: Actor, stranger: Actor) -> None:
    assert owner.view("canTrain", model, trainer.address) and not owner.view("canTrain", model, stranger.address)
    receipt = owner.tx("grantTrainer", model, stranger.address)
    (granted,) = owner.events(receipt, "TrainerGranted")
    assert granted["args"] == {"modelId": 1, "account": stranger.address, "sender": owner.address}
    assert owner.events(owner.tx("grantTrainer", model, stranger.address), "TrainerGranted") == []  # idempotent
    receipt = owner.tx("revokeTrainer", model, stranger.address)
    (revoked,) = owner.events(receipt, "TrainerRevoked")
    assert revoked["args"] == {"modelId": 1, "account": stranger.address, "sender": owner.address}
    assert not owner.view("canTrain", model, stranger.address)
    expect(reverts(trainer, "grantTrainer", model, stranger.address), "RegistryNotOwner",
           account=trainer.address, modelId=1)  # fmt: skip
    expect(reverts(trainer, "revokeTrainer", model, trainer.address), "RegistryNotOwner",
           account=trainer.address, modelId=1)  # fmt: skip
    expect(reverts(owner, "grantTrainer", 7, stranger.address), "RegistryUnknownModel", modelId=7)


# ---------------------------------------------------------------- runs and checkpoints


def test_start_run_stores_spec_and_seeds_head(conn: Connection, model: int, trainer: Actor) -> None:
    run_spec = spec()
    receipt = trainer.tx("startRun", model, run_spec)
    (event,) = trainer.events(receipt, "RunStarted")
    seed = keccak(encode(["uint256", "address", "uint256"], [conn.chain_id, conn.registry.address, 1]))
    assert event["args"] == {"runId": 1, "modelId": 1, "trainer": trainer.address, "head": seed}
    view = trainer.view("getRun", 1)
    assert view[:4] == (1, 1, OPEN, trainer.address) and view[6:11] == (0, 0, 0, 0, seed)
    assert view[11] == run_spec
    assert trainer.view("runsOf", model, 0, 10) == [view]


def test_start_run_requires_role_and_digests(model: int, stranger: Actor, trainer: Actor) -> None:
    expect(reverts(stranger, "startRun", model, spec()), "RegistryNotTrainer", account=stranger.address, modelId=1)
    expect(reverts(trainer, "startRun", 5, spec()), "RegistryUnknownModel", modelId=5)
    missing = (NO_DIGEST, *spec()[1:])
    expect(reverts(trainer, "startRun", model, missing), "RegistryInvalidDigest", algorithm=hx(ZERO), value=hx(ZERO))


def chain_head(seed: bytes, rows: list[tuple[Any, ...]]) -> bytes:
    """The hash chain recomputed from the emitted events alone (independent of the client)."""
    types = ["bytes32", "uint64", "uint64"] + ["bytes32"] * 6 + ["uint64", "address", "uint256", "uint256"]
    head = seed
    for event in rows:
        a = event["args"]
        fields = [
            head, a["index"], a["step"], a["weightsAlgorithm"], a["weightsDigest"], a["state"]["algorithm"],
            a["state"]["value"], a["data"]["algorithm"], a["data"]["value"], a["valLoss"], a["committer"],
            event["blockNumber"], a["timestamp"],
        ]  # fmt: skip
        head = keccak(encode(types, fields))
    return head


def test_commits_extend_the_hash_chain(conn: Connection, run: int, trainer: Actor) -> None:
    first = cp(10)
    receipt = trainer.tx("commitCheckpoint", run, first)
    (event,) = trainer.events(receipt, "CheckpointCommitted")
    block = conn.w3.eth.get_block(receipt["blockNumber"])
    assert event["args"] == {
        "runId": 1, "weightsDigest": first[1][1], "committer": trainer.address, "index": 0, "step": 10,
        "weightsAlgorithm": TENSOR, "state": {"algorithm": first[2][0], "value": first[2][1]},
        "data": {"algorithm": first[3][0], "value": first[3][1]}, "valLoss": first[4], "timestamp": block["timestamp"],
    }  # fmt: skip
    batch = [cp(20), (30, digest(TENSOR), NO_DIGEST, NO_DIGEST, 2**64 - 1), cp(40)]
    receipt = trainer.tx("commitCheckpoints", run, batch)
    events = [event, *trainer.events(receipt, "CheckpointCommitted")]
    assert [e["args"]["index"] for e in events] == [0, 1, 2, 3]
    view = trainer.view("getRun", run)
    seed = keccak(encode(["uint256", "address", "uint256"], [conn.chain_id, conn.registry.address, run]))
    assert view[6:10] == (4, 40, events[0]["blockNumber"], events[-1]["blockNumber"])
    assert view[10] == chain_head(seed, events) != seed
    tampered = [events[0], *events[1:]]
    tampered[1] = {**events[1], "args": {**events[1]["args"], "step": 21}}
    assert chain_head(seed, tampered) != view[10]


def test_lookup_in_one_call(conn: Connection, model: int, run: int, trainer: Actor) -> None:
    weights = cp(7)
    receipt = trainer.tx("commitCheckpoint", run, weights)
    block = conn.w3.eth.get_block(receipt["blockNumber"])
    location = trainer.view("checkpointOf", weights[1][1])
    assert location == (model, run, 0, 7, receipt["blockNumber"], block["timestamp"], ACTIVE)
    assert trainer.view("checkpointOf", os.urandom(32))[1] == 0
    assert trainer.view("statusesOf", [weights[1][1], ZERO]) == [ACTIVE, ACTIVE]


def test_steps_must_increase(run: int, trainer: Actor) -> None:
    trainer.tx("commitCheckpoint", run, cp(5))
    error = reverts(trainer, "commitCheckpoint", run, cp(5))
    expect(error, "RegistryStepNotIncreasing", runId=1, step=5, lastStep=5)
    error = reverts(trainer, "commitCheckpoints", run, [cp(6), cp(6)])
    expect(error, "RegistryStepNotIncreasing", runId=1, step=6, lastStep=6)
    assert trainer.view("getRun", run)[6] == 1  # the failed batch left nothing behind


def test_first_step_may_be_zero(run: int, trainer: Actor) -> None:
    trainer.tx("commitCheckpoint", run, cp(0))
    expect(reverts(trainer, "commitCheckpoint", run, cp(0)), "RegistryStepNotIncreasing", runId=1, step=0, lastStep=0)


def test_weights_digests_are_unique(run: int, trainer: Actor) -> None:
    first = cp(1)
    trainer.tx("commitCheckpoint", run, first)
    again = (2, first[1], NO_DIGEST, NO_DIGEST, 0)
    error = reverts(trainer, "commitCheckpoint", run, again)
    expect(error, "RegistryCheckpointExists", weightsDigest=hx(first[1][1]), runId=1, index=0)


def test_checkpoint_digest_rules(run: int, trainer: Actor) -> None:
    no_weights = (1, NO_DIGEST, NO_DIGEST, NO_DIGEST, 0)
    expect(reverts(trainer, "commitCheckpoint", run, no_weights), "RegistryInvalidDigest",
           algorithm=hx(ZERO), value=hx(ZERO))  # fmt: skip
    value = os.urandom(32)
    half_state = (1, digest(TENSOR), (ZERO, value), NO_DIGEST, 0)
    expect(reverts(trainer, "commitCheckpoint", run, half_state), "RegistryInvalidDigest",
           algorithm=hx(ZERO), value=hx(value))  # fmt: skip


def test_batch_size_limits(run: int, trainer: Actor) -> None:
    expect(reverts(trainer, "commitCheckpoints", run, []), "RegistryInvalidBatchSize", size=0, max=256)
    too_many = [cp(i) for i in range(257)]
    expect(reverts(trainer, "commitCheckpoints", run, too_many), "RegistryInvalidBatchSize", size=257, max=256)


def test_only_trainers_commit(owner: Actor, model: int, run: int, trainer: Actor, stranger: Actor) -> None:
    expect(reverts(stranger, "commitCheckpoint", run, cp(1)), "RegistryNotTrainer", account=stranger.address, modelId=1)
    owner.tx("commitCheckpoint", run, cp(1))  # the owner may always train
    owner.tx("revokeTrainer", model, trainer.address)
    expect(reverts(trainer, "commitCheckpoint", run, cp(2)), "RegistryNotTrainer", account=trainer.address, modelId=1)
    expect(reverts(trainer, "finishRun", run), "RegistryNotTrainer", account=trainer.address, modelId=1)
    expect(reverts(trainer, "commitCheckpoint", 9, cp(2)), "RegistryUnknownRun", runId=9)
    expect(reverts(trainer, "getRun", 9, view=True), "RegistryUnknownRun", runId=9)


@pytest.mark.parametrize(("close", "event", "status"), [("finishRun", "RunFinished", FINISHED),
                                                          ("abortRun", "RunAborted", ABORTED)])  # fmt: skip
def test_closed_runs_refuse_commits(run: int, trainer: Actor, close: str, event: str, status: int) -> None:
    trainer.tx("commitCheckpoint", run, cp(1))
    receipt = trainer.tx(close, run)
    (closed,) = trainer.events(receipt, event)
    view = trainer.view("getRun", run)
    assert closed["args"] == {"runId": 1, "modelId": 1, "checkpointCount": 1, "head": view[10]}
    assert view[2] == status
    expect(reverts(trainer, "commitCheckpoint", run, cp(2)), "RegistryRunClosed", runId=1, status=status)
    expect(reverts(trainer, "commitCheckpoints", run, [cp(2)]), "RegistryRunClosed", runId=1, status=status)
    expect(reverts(trainer, "finishRun", run), "RegistryRunClosed", runId=1, status=status)


def test_checkpoint_deprecation_and_final_revocation(owner: Actor, run: int, trainer: Actor) -> None:
    weights = cp(1)
    trainer.tx("commitCheckpoint", run, weights)
    value = weights[1][1]
    expect(reverts(trainer, "revokeCheckpoint", value, "leak"), "RegistryNotOwner", account=trainer.address, modelId=1)
    expect(reverts(owner, "deprecateCheckpoint", value, ""), "RegistryInvalidReason", length=0)
    expect(reverts(owner, "deprecateCheckpoint", value, "x" * 257), "RegistryInvalidReason", length=257)
    stray = os.urandom(32)
    expect(reverts(owner, "revokeCheckpoint", stray, "leak"), "RegistryUnknownCheckpoint", weightsDigest=hx(stray))
    (dep,) = owner.events(owner.tx("deprecateCheckpoint", value, "superseded"), "CheckpointDeprecated")
    assert dep["args"] == {"runId": 1, "weightsDigest": value, "reason": "superseded"}
    expect(reverts(owner, "deprecateCheckpoint", value, "again"), "RegistryInvalidTransition",
           current=DEPRECATED, requested=DEPRECATED)  # fmt: skip
    (rev,) = owner.events(owner.tx("revokeCheckpoint", value, "trained on leaked data"), "CheckpointRevoked")
    assert rev["args"] == {"runId": 1, "weightsDigest": value, "reason": "trained on leaked data"}
    assert owner.view("checkpointOf", value)[6] == REVOKED
    assert owner.view("statusesOf", [value]) == [REVOKED] and owner.view("getRun", run)[12] == 2
    for name, requested in (("revokeCheckpoint", REVOKED), ("deprecateCheckpoint", DEPRECATED)):
        expect(reverts(owner, name, value, "undo"), "RegistryInvalidTransition", current=REVOKED, requested=requested)


# ---------------------------------------------------------------- releases


def test_releases(owner: Actor, model: int, run: int, trainer: Actor) -> None:
    weights = cp(1)
    receipt = trainer.tx("commitCheckpoint", run, weights)
    value = weights[1][1]
    (event,) = owner.events(owner.tx("release", model, label("1.0.0"), value), "ModelReleased")
    assert event["args"] == {"modelId": 1, "label": label("1.0.0"), "weightsDigest": value}
    view = owner.view("getRelease", model, label("1.0.0"))
    assert view[:5] == (label("1.0.0"), value, run, ACTIVE, owner.address)
    assert view[5] > receipt["blockNumber"]
    assert owner.view("releasesOf", model, 0, 10) == [view] and owner.view("releasesOf", model, 1, 10) == []
    assert owner.view("getModel", model)[7] == 1
    expect(reverts(owner, "release", model, label("1.0.0"), value), "RegistryReleaseExists",
           modelId=1, label=hx(label("1.0.0")))  # fmt: skip
    (dep,) = owner.events(owner.tx("deprecateRelease", model, label("1.0.0"), "use 1.1"), "ReleaseDeprecated")
    assert dep["args"] == {"modelId": 1, "label": label("1.0.0"), "reason": "use 1.1"}
    (rev,) = owner.events(owner.tx("revokeRelease", model, label("1.0.0"), "unsafe"), "ReleaseRevoked")
    assert rev["args"] == {"modelId": 1, "label": label("1.0.0"), "reason": "unsafe"}
    assert owner.view("getRelease", model, label("1.0.0"))[3] == REVOKED
    expect(reverts(owner, "deprecateRelease", model, label("1.0.0"), "x"), "RegistryInvalidTransition",
           current=REVOKED, requested=DEPRECATED)  # fmt: skip


def test_release_errors(owner: Actor, model: int, run: int, trainer: Actor) -> None:
    weights = cp(1)
    trainer.tx("commitCheckpoint", run, weights)
    value = weights[1][1]
    expect(reverts(trainer, "release", model, label("1.0"), value), "RegistryNotOwner",
           account=trainer.address, modelId=1)  # fmt: skip
    for bad in (ZERO, label("1 0"), b"1\0" + b"2" + b"\0" * 29):
        expect(reverts(owner, "release", model, bad, value), "RegistryInvalidLabel", label=hx(bad))
    stray = os.urandom(32)
    expect(reverts(owner, "release", model, label("1.0"), stray), "RegistryUnknownCheckpoint", weightsDigest=hx(stray))
    owner.tx("registerModel", "acme/other", NO_DIGEST, NO_PARENT)
    expect(reverts(owner, "release", 2, label("1.0"), value), "RegistryCheckpointOfOtherModel",
           weightsDigest=hx(value), modelId=2, actualModelId=1)  # fmt: skip
    owner.tx("revokeCheckpoint", value, "broken")
    expect(reverts(owner, "release", model, label("1.0"), value), "RegistryCheckpointNotActive",
           weightsDigest=hx(value), status=REVOKED)  # fmt: skip
    expect(reverts(owner, "getRelease", model, label("9.9"), view=True), "RegistryUnknownRelease",
           modelId=1, label=hx(label("9.9")))  # fmt: skip
    expect(reverts(owner, "revokeRelease", model, label("9.9"), "x"), "RegistryUnknownRelease",
           modelId=1, label=hx(label("9.9")))  # fmt: skip


def test_paged_views(owner: Actor, model: int, trainer: Actor) -> None:
    for _ in range(5):
        trainer.tx("startRun", model, spec())
    ids = [r[0] for r in owner.view("runsOf", model, 0, 100)]
    assert ids == [1, 2, 3, 4, 5]
    assert [r[0] for r in owner.view("runsOf", model, 1, 2)] == [2, 3]
    assert [r[0] for r in owner.view("runsOf", model, 4, 2)] == [5]
    assert owner.view("runsOf", model, 5, 2) == []
    assert owner.view("getModel", model)[6] == 5
    expect(reverts(owner, "runsOf", 3, 0, 1, view=True), "RegistryUnknownModel", modelId=3)


# ---------------------------------------------------------------- RFC 6962 inclusion proofs


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\0" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\1" + left + right).digest()


def _split(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def _root(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 Merkle Tree Hash over leaf hashes."""
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return _node(_root(leaves[:k]), _root(leaves[k:]))


def _path(index: int, leaves: list[bytes]) -> list[bytes]:
    """RFC 6962 §2.1.1 audit path, leaf-to-root order."""
    if len(leaves) == 1:
        return []
    k = _split(len(leaves))
    if index < k:
        return _path(index, leaves[:k]) + [_root(leaves[k:])]
    return _path(index - k, leaves[k:]) + [_root(leaves[:k])]


def test_verify_tensor_proof_matches_rfc6962(owner: Actor) -> None:
    for size in (1, 2, 3, 5, 7, 8, 13):
        leaves = [_leaf(f"tensor-{i}".encode()) for i in range(size)]
        root = _root(leaves)
        for index in range(size):
            proof = _path(index, leaves)
            assert owner.view("verifyTensorProof", root, leaves[index], index, size, proof), (size, index)
            other = (index + 1) % size
            if other != index:
                assert not owner.view("verifyTensorProof", root, leaves[other], index, size, proof)
            if proof:
                bad = [proof[0][::-1], *proof[1:]]
                assert not owner.view("verifyTensorProof", root, leaves[index], index, size, bad)
                assert not owner.view("verifyTensorProof", root, leaves[index], index, size, proof[:-1])
                assert not owner.view("verifyTensorProof", root, leaves[index], index, size, [*proof, root])
        assert not owner.view("verifyTensorProof", root, leaves[0], size, size, [])


def test_verify_tensor_proof_known_answer(owner: Actor) -> None:
    """RFC 6962 test tree (certificate-transparency-go merkle vectors): leaves 0x, 0x00, 0x10."""
    leaves = [_leaf(b""), _leaf(b"\x00"), _leaf(b"\x10")]
    root = _root(leaves)
    assert root.hex() == "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"
    assert owner.view("verifyTensorProof", root, leaves[2], 2, 3, _path(2, leaves))


# ---------------------------------------------------------------- gas (deterministic, so a test)


def test_gas_targets(run: int, trainer: Actor) -> None:
    singles = [trainer.tx("commitCheckpoint", run, cp(step))["gasUsed"] for step in range(1, 4)]
    assert max(singles) <= 70_000, singles
    batch = trainer.tx("commitCheckpoints", run, [cp(100 + i) for i in range(64)])["gasUsed"]
    assert batch / 64 <= 35_000, batch
