"""The direct database reader (llmchain.snapshot) against the web3 client, on the same real ledger.

The snapshot exists to skip importing web3 and py-evm; what makes it safe is that it returns exactly
what the full client returns. So the history built here covers every record shape (lineage, card,
long names, pending owners, open/finished/aborted runs, batch and single commits, missing losses and
digests, deprecations and revocations of checkpoints and releases), and every read and every error
is compared both ways. Then the database is tampered with and damaged, and each refusal is checked.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from llmchain.chain import connect
from llmchain.cli import cli
from llmchain.digest import digest_path
from llmchain.errors import BadInput, ContractRevert, LedgerError, VerificationFailed
from llmchain.ledger import Ledger
from llmchain.records import CheckpointSpec, Digest, Lineage, Relation, RunSpec
from llmchain.snapshot import RegistrySnapshot, StateUnavailable, open_snapshot
from llmchain.statedb import CHAIN_ID, DATABASE_NAME, StateDB
from digest_helpers import header_for, write_raw

LONG_NAME = "acme/a-model-name-longer-than-one-storage-word"  # over 31 bytes: a string stored out of line
ALG = "tensor-sha256-c16m-v1"


def d(n: int, algorithm: str = ALG) -> Digest:
    return Digest(algorithm, n.to_bytes(32, "big"))


def spec(n: int, base: Digest | None = None) -> RunSpec:
    return RunSpec(d(n, "sha256"), d(n + 1, "sha256"), d(n + 2, "sha256"), d(n + 3, "sha256"), base)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A persistent ledger holding every kind of record (built once for the module)."""
    directory = tmp_path_factory.mktemp("snapshot") / "ledger"
    with connect(ledger_dir=directory) as conn:
        ledger = Ledger(conn)
        base = ledger.register_model("acme/base", card_digest=d(1, "sha256"))
        run = ledger.start_run(base.id, spec(10))
        ledger.commit_checkpoints(run.id, [
            CheckpointSpec(10 * (i + 1), d(100 + i), d(200 + i) if i % 2 else None, d(300 + i, "sha256") if i == 3 else None,
                           None if i == 0 else 1.0 / i)
            for i in range(5)
        ])  # fmt: skip
        ledger.commit_checkpoint(run.id, CheckpointSpec(100, d(150), val_loss=0.25))
        ledger.finish_run(run.id)
        ledger.deprecate_checkpoint(d(101), "superseded")
        ledger.revoke_checkpoint(d(102), "leaked")
        for label, weights in (("1.0.0", d(103)), ("1.1.0", d(150)), ("latest", d(150))):
            ledger.release(base.id, label, weights)
        ledger.deprecate_release(base.id, "1.0.0", "old")
        ledger.revoke_release(base.id, "latest", "mistake")
        child = ledger.register_model(LONG_NAME, parent=Lineage(Relation.FINE_TUNE, base.id, d(150)))
        trainer = conn.w3.eth.accounts[1]
        ledger.grant_trainer(child.id, trainer)
        as_trainer = Ledger(conn.as_account(1))
        tuned = as_trainer.start_run(child.id, spec(20, base=d(150)))
        as_trainer.commit_checkpoint(tuned.id, CheckpointSpec(5, d(400), val_loss=3.5))
        as_trainer.abort_run(tuned.id)
        ledger.start_run(child.id, spec(30))  # open, no checkpoints
        ledger.register_model("acme/external", parent=Lineage(Relation.DISTILL, None, d(999)))
        ledger.transfer_ownership(base.id, conn.w3.eth.accounts[2])
    return directory


@pytest.fixture
def both(built: Path) -> Iterator[tuple[Ledger, RegistrySnapshot]]:
    with connect(ledger_dir=built) as conn, open_snapshot(built) as snapshot:
        yield Ledger(conn), snapshot


def same(full: Callable[[], Any], direct: Callable[[], Any]) -> Any:
    """Both readers return equal results, or raise the same error class with the same message."""
    try:
        expected = full()
    except LedgerError as error:
        with pytest.raises(type(error)) as caught:
            direct()
        assert str(caught.value) == str(error)
        if isinstance(error, ContractRevert):
            assert isinstance(caught.value, ContractRevert)
            assert (caught.value.name, caught.value.args_by_name) == (error.name, error.args_by_name)
        return error
    except (BadInput, VerificationFailed) as error:
        with pytest.raises(type(error)) as caught:
            direct()
        assert str(caught.value) == str(error)
        return error
    assert direct() == expected
    return expected


def test_models_runs_and_pages_match(both: tuple[Ledger, RegistrySnapshot]) -> None:
    ledger, snapshot = both
    for name in (1, 2, 3, "2", "acme/base", LONG_NAME, "acme/external"):
        model = same(lambda: ledger.get_model(name), lambda: snapshot.get_model(name))
        assert same(lambda: ledger.model_id(name), lambda: snapshot.model_id(name)) == model.id
    assert snapshot.get_model(LONG_NAME).name == LONG_NAME and snapshot.get_model(1).pending_owner is not None
    assert snapshot.get_model(3).parent == Lineage(Relation.DISTILL, None, d(999))
    for run_id in (1, 2, 3):
        same(lambda: ledger.get_run(run_id), lambda: snapshot.get_run(run_id))
    for model, offset, limit in ((1, 0, 100), (2, 0, 100), (2, 1, 1), (2, 5, 10), (3, 0, 100), (2, 0, 0)):
        same(lambda: ledger.list_runs(model, offset, limit), lambda: snapshot.list_runs(model, offset, limit))


def test_checkpoints_lookups_and_statuses_match(both: tuple[Ledger, RegistrySnapshot]) -> None:
    ledger, snapshot = both
    for run_id, offset, limit in ((1, 0, None), (1, 2, 2), (1, 10, None), (2, 0, None), (3, 0, None)):
        same(lambda: ledger.list_checkpoints(run_id, offset, limit), lambda: snapshot.list_checkpoints(run_id, offset, limit))
    statuses = [c.status.name for c in snapshot.list_checkpoints(1)]
    assert statuses == ["ACTIVE", "DEPRECATED", "REVOKED", "ACTIVE", "ACTIVE", "ACTIVE"]
    for value in (*range(100, 105), 150, 400, 777):
        same(lambda: ledger.lookup(d(value)), lambda: snapshot.lookup(d(value)))
        same(lambda: ledger.lookup(d(value).value), lambda: snapshot.lookup(d(value).value))
    assert snapshot.lookup(d(777)) is None and snapshot.lookup(d(400)).committer != snapshot.lookup(d(150)).committer


def test_releases_match(both: tuple[Ledger, RegistrySnapshot]) -> None:
    ledger, snapshot = both
    for offset, limit in ((0, 100), (1, 1), (3, 5)):
        same(lambda: ledger.list_releases(1, offset, limit), lambda: snapshot.list_releases(1, offset, limit))
    for label in ("1.0.0", "1.1.0", "latest"):
        same(lambda: ledger.get_release("acme/base", label), lambda: snapshot.get_release("acme/base", label))
    base, child = snapshot.get_model(1), snapshot.get_model(2)
    for model in (base, child):
        for value in (103, 150, 100):
            same(lambda: ledger.releases_naming(model, d(value)), lambda: snapshot.releases_naming(model, d(value)))
    assert [(r.label, r.status.name) for r in snapshot.releases_naming(base, d(150))] == [("1.1.0", "ACTIVE"), ("latest", "REVOKED")]


@pytest.mark.parametrize(
    "call",
    [
        lambda r: r.model_id("nobody/here"),
        lambda r: r.model_id(99),
        lambda r: r.model_id("Not A Name!"),
        lambda r: r.get_model(True),
        lambda r: r.get_run(99),
        lambda r: r.get_run(0),
        lambda r: r.get_release("acme/base", "9.9.9"),
        lambda r: r.get_release("acme/base", "bad label!"),
        lambda r: r.get_release("nobody/here", "1.0.0"),
        lambda r: r.list_runs(1, -1, 5),
        lambda r: r.list_checkpoints(1, 0, -2),
        lambda r: r.list_checkpoints(42),
        lambda r: r.lookup(b"too short"),
        lambda r: r.lookup(d(150, "some-other-scheme")),
    ],
)
def test_errors_match(both: tuple[Ledger, RegistrySnapshot], call: Callable[[Any], Any]) -> None:
    ledger, snapshot = both
    error = same(lambda: call(ledger), lambda: call(snapshot))
    assert isinstance(error, Exception), "each case must fail"


def test_a_snapshot_is_one_committed_block(built: Path, tmp_path: Path) -> None:
    directory = tmp_path / "ledger"
    shutil.copytree(built, directory)
    with open_snapshot(directory) as before:
        with connect(ledger_dir=directory) as conn:
            Ledger(conn).commit_checkpoint(3, CheckpointSpec(1, d(500)))
        assert before.get_run(3).checkpoint_count == 0 and before.lookup(d(500)) is None
    with open_snapshot(directory) as after:
        assert after.get_run(3).checkpoint_count == 1 and after.lookup(d(500)) is not None


# ---------------------------------------------------------------- what the snapshot refuses to open


def test_no_ledger_yet_is_unavailable_and_nothing_is_created(tmp_path: Path) -> None:
    with pytest.raises(StateUnavailable):
        open_snapshot(tmp_path / "missing")
    assert not (tmp_path / "missing").exists()
    (tmp_path / "empty").mkdir()
    sqlite3.connect(tmp_path / "empty" / DATABASE_NAME).close()  # a database with no tables
    with pytest.raises(StateUnavailable):
        open_snapshot(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / DATABASE_NAME).write_bytes(b"not a database at all" * 100)
    with pytest.raises(StateUnavailable):
        open_snapshot(tmp_path / "junk")


@pytest.mark.parametrize(
    ("key", "value"),
    [("format_version", "1"), ("format", "something-else"), ("chain_id", "1"), ("registry_address", "0x" + "11" * 20)],
)
def test_other_formats_and_foreign_registries_are_unavailable(built: Path, tmp_path: Path, key: str, value: str) -> None:
    directory = tmp_path / "ledger"
    shutil.copytree(built, directory)
    with sqlite3.connect(directory / DATABASE_NAME) as db:
        db.execute("UPDATE meta SET value = ? WHERE key = ?", (value, key))
    with pytest.raises(StateUnavailable):
        open_snapshot(directory)


# ---------------------------------------------------------------- tampering and damage


def _tampered(built: Path, tmp_path: Path, sql: str, *params: Any) -> Path:
    directory = tmp_path / "ledger"
    shutil.copytree(built, directory)
    with sqlite3.connect(directory / DATABASE_NAME) as db:
        assert db.execute(sql, params).rowcount >= 1
    return directory


def _word(n: int) -> bytes:
    return n.to_bytes(32, "big")


def test_an_edited_event_fails_the_hash_chain_both_ways(built: Path, tmp_path: Path) -> None:
    with open_snapshot(built) as snapshot:
        target = snapshot.lookup(d(103))
    assert target is not None
    # data words: index, step, weightsAlgorithm, state (2), data (2), valLoss, timestamp
    directory = _tampered(built, tmp_path, "UPDATE logs SET data = CAST(substr(data, 1, 224) || ? || substr(data, 257) AS BLOB) WHERE topic2 = ?",
                          _word(1), d(103).value)  # fmt: skip
    with connect(ledger_dir=directory) as conn, open_snapshot(directory) as snapshot:
        error = same(lambda: Ledger(conn).list_checkpoints(1), lambda: snapshot.list_checkpoints(1))
    assert isinstance(error, VerificationFailed) and "altered" in str(error)


def test_a_dropped_event_fails_both_ways(built: Path, tmp_path: Path) -> None:
    directory = _tampered(built, tmp_path, "DELETE FROM logs WHERE topic2 = ?", d(101).value)
    with connect(ledger_dir=directory) as conn, open_snapshot(directory) as snapshot:
        error = same(lambda: Ledger(conn).list_checkpoints(1), lambda: snapshot.list_checkpoints(1))
        assert isinstance(error, VerificationFailed) and "incomplete" in str(error)
        missing = same(lambda: Ledger(conn).lookup(d(101)), lambda: snapshot.lookup(d(101)))
        assert isinstance(missing, LedgerError) and "0 CheckpointCommitted logs" in str(missing)


def test_an_event_that_disagrees_with_storage_fails_the_lookup(built: Path, tmp_path: Path) -> None:
    directory = _tampered(built, tmp_path, "UPDATE logs SET data = CAST(? || substr(data, 33) AS BLOB) WHERE topic2 = ?", _word(4), d(103).value)
    with open_snapshot(directory) as snapshot, pytest.raises(VerificationFailed, match="disagrees with the registry's storage"):
        snapshot.lookup(d(103))


@pytest.mark.parametrize(("action", "why"), [("DELETE FROM kv WHERE key = ?", "missing"), ("UPDATE kv SET value = x'c0' WHERE key = ?", "altered")])
def test_a_damaged_trie_is_a_ledger_error(built: Path, tmp_path: Path, action: str, why: str) -> None:
    with open_snapshot(built) as snapshot, StateDB(built / DATABASE_NAME) as state:
        account = state.account(bytes.fromhex(snapshot.registry[2:]))
    assert account is not None
    storage_root = account[0]
    directory = _tampered(built, tmp_path, action, storage_root)
    with open_snapshot(directory) as snapshot, pytest.raises(LedgerError, match=f"is damaged .*{why}.*restore it from a backup"):
        snapshot.get_model(1)


def test_storage_words_equal_the_nodes_answers(built: Path) -> None:
    with connect(ledger_dir=built) as conn, StateDB(built / DATABASE_NAME) as state:
        account = state.account(bytes.fromhex(conn.registry.address[2:]))
        assert account is not None
        assert state.account(b"\x42" * 20) is None
        for slot in (0, 1, 2, 13, 14, 2**255):
            assert state.storage(account[0], slot) == conn.w3.eth.get_storage_at(conn.registry.address, slot)
        assert state.block_number == conn.w3.eth.block_number


# ---------------------------------------------------------------- the commands that read through it


@pytest.fixture
def with_weights(built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A copy of the built ledger (as LLMCHAIN_HOME) with a real weights file committed to run 3."""
    directory = tmp_path / "ledger"
    shutil.copytree(built, directory)
    weights = write_raw(tmp_path / "model.safetensors", *header_for({"w": ("F32", [2, 2], bytes(range(16)))}))
    root = digest_path(weights)
    with connect(ledger_dir=directory) as conn:
        Ledger(conn).commit_checkpoint(3, CheckpointSpec(7, Digest(root.algorithm, root.root), val_loss=2.0))
    monkeypatch.setenv("LLMCHAIN_HOME", str(directory))
    return directory, weights


@pytest.mark.parametrize(
    "args",
    [
        ["verify", "-q", "{weights}"],
        ["verify", "-q", "{weights}", "--expect", "3:7"],
        ["verify", "-q", "{weights}", "--expect", "acme/base@1.1.0"],
        ["verify", "-q", "{weights}", "--model", "acme/base"],
        ["show", "acme/base"],
        ["runs", LONG_NAME],
        ["checkpoints", "1"],
        ["lookup", str(d(150))],
        ["lookup", str(d(12345))],
        ["show", "nobody/here"],
        ["checkpoints", "77"],
        ["audit", "acme/base"],
        ["audit", LONG_NAME, "--run", "2"],
        ["audit", "acme/base", "--run", "2"],
    ],
)
def test_read_commands_print_the_same_through_either_reader(with_weights: tuple[Path, Path], args: list[str]) -> None:
    """The default options read the database directly; --chain-id forces the web3 client."""
    weights = with_weights[1]
    argv = [arg.format(weights=weights) for arg in args] + ["--json"]
    direct = CliRunner().invoke(cli, argv)
    full = CliRunner().invoke(cli, [*argv, "--chain-id", str(CHAIN_ID)])
    assert (direct.exit_code, direct.output) == (full.exit_code, full.output)
    assert direct.exit_code in (0, 1, 2, 3) and direct.output.strip()


def test_read_commands_do_not_import_web3(with_weights: tuple[Path, Path]) -> None:
    code = (
        "import sys; from llmchain.cli import main; sys.argv = ['llmchain', *sys.argv[1:]]\n"
        "try:\n    main()\nexcept SystemExit as done:\n    assert done.code in (0, 1), done.code\n"
        "print(sorted(m for m in ('web3', 'eth', 'eth_abi', 'eth_utils', 'torch') if m in sys.modules), file=sys.stderr)"
    )
    reads = (["verify", "-q", str(with_weights[1])], ["show", "acme/base"], ["checkpoints", "1"], ["lookup", str(d(150))],
             ["audit", "acme/base", "--json"])  # fmt: skip
    for args in reads:
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=os.environ.copy())
        assert done.returncode == 0, done.stderr
        assert done.stderr.strip() == "[]", args


def test_verify_falls_back_to_the_full_client_for_a_new_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMCHAIN_HOME", str(tmp_path / "fresh"))
    weights = write_raw(tmp_path / "model.safetensors", *header_for({"w": ("F32", [1], bytes(4))}))
    result = CliRunner().invoke(cli, ["verify", "-q", str(weights)])
    assert result.exit_code == 1 and "are not on the ledger" in result.output
    assert (tmp_path / "fresh" / DATABASE_NAME).is_file()  # created on first use, as every command does
