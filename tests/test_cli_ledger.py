"""The ledger commands end to end: CliRunner on a persistent embedded ledger, subprocesses, anvil."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from llmchain.chain import connect
from llmchain.cli import cli
from llmchain.ledger import Ledger
from llmchain.records import CheckpointSpec, Digest, RunSpec

ALICE = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"  # embedded dev account 0
BOB = "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF"  # embedded dev account 1


def run(*args: str, ok: bool = True) -> Result:
    """Invoke the CLI in-process; with ``ok`` assert success and show the output on failure."""
    result = CliRunner().invoke(cli, list(args))
    if ok:
        assert result.exit_code == 0, result.output
    return result


def digest(n: int, algorithm: str = "tensor-sha256-v1") -> Digest:
    return Digest(algorithm, n.to_bytes(32, "big"))


def seed_run(ledger_dir: Path, model: str, steps: list[int]) -> tuple[int, list[Digest]]:
    """Open a run of ``model`` through the library and commit one checkpoint per step."""
    with connect(ledger_dir=ledger_dir) as conn:
        ledger = Ledger(conn)
        spec = RunSpec(digest(1001, "sha256"), digest(1002, "sha256"), digest(1003, "sha256"), digest(1004, "sha256"))
        run_id = ledger.start_run(model, spec).id
        weights = [digest(10_000 + step) for step in steps]
        for step, w in zip(steps, weights):
            ledger.commit_checkpoint(run_id, CheckpointSpec(step, w, digest(20_000 + step), digest(30_000 + step), 3.0 / (step + 1)))
    return run_id, weights


def test_init_creates_the_ledger_once(ledger_dir: Path) -> None:
    first = json.loads(run("init", "--json").output)
    assert first["created"] is True and first["chain_id"] == 131277322940537
    again = json.loads(run("init", "--json").output)
    assert again["created"] is False and again["registry"] == first["registry"]
    assert (ledger_dir / "chain.sqlite3").exists()


def test_register_show_and_duplicate_name(ledger_dir: Path, tmp_path: Path) -> None:
    card = tmp_path / "CARD.md"
    card.write_text("# tiny-gpt\nA small code model.\n")
    out = run("register", "acme/tiny-gpt", "--card", str(card)).output
    assert "model 1: acme/tiny-gpt" in out and f"owner: {ALICE}" in out and "card: sha256:" in out
    shown = json.loads(run("show", "acme/tiny-gpt", "--json").output)
    assert shown["model"]["name"] == "acme/tiny-gpt"
    assert shown["model"]["card"]["algorithm"] == "sha256"
    assert shown["runs"] == [] and shown["releases"] == []
    dup = run("register", "acme/tiny-gpt", ok=False)
    assert dup.exit_code == 2
    assert dup.output.strip() == "Error: model name 'acme/tiny-gpt' is already registered (id 1); pick another name"


def test_lineage_is_recorded(ledger_dir: Path) -> None:
    run("register", "acme/base")
    _, weights = seed_run(ledger_dir, "acme/base", [10])
    child = json.loads(
        run("register", "acme/child", "--parent", "acme/base", "--relation", "fine-tune",
            "--parent-checkpoint", weights[0].hex, "--json").output
    )  # fmt: skip
    assert child["parent"] == {
        "relation": "fine-tune",
        "model_id": 1,
        "checkpoint": {"algorithm": "tensor-sha256-v1", "value": weights[0].hex},
    }
    missing_relation = run("register", "acme/orphan", "--parent", "acme/base", ok=False)
    assert missing_relation.exit_code == 2 and "needs --relation" in missing_relation.output


def test_roles_and_two_step_ownership(ledger_dir: Path) -> None:
    run("register", "acme/tiny-gpt")
    refused = run("grant", "acme/tiny-gpt", ALICE, "--account", "1", ok=False)
    assert refused.exit_code == 3
    assert "RegistryNotOwner(account=" + BOB in refused.output
    run("grant", "acme/tiny-gpt", BOB)
    with connect(ledger_dir=ledger_dir) as conn:
        assert Ledger(conn).can_train("acme/tiny-gpt", BOB)
    run("ungrant", "acme/tiny-gpt", BOB)
    with connect(ledger_dir=ledger_dir) as conn:
        assert not Ledger(conn).can_train("acme/tiny-gpt", BOB)

    run("transfer", "acme/tiny-gpt", BOB)
    pending = json.loads(run("show", "acme/tiny-gpt", "--json").output)["model"]
    assert pending["owner"] == ALICE and pending["pending_owner"] == BOB
    stranger = run("accept", "acme/tiny-gpt", "--account", "2", ok=False)
    assert stranger.exit_code == 3 and "RegistryNotPendingOwner" in stranger.output
    assert f"{BOB} now owns acme/tiny-gpt" in run("accept", "acme/tiny-gpt", "--account", "1").output


def test_runs_checkpoints_lookup(ledger_dir: Path) -> None:
    run("register", "acme/tiny-gpt")
    run_id, weights = seed_run(ledger_dir, "acme/tiny-gpt", [100, 200, 300])
    runs = json.loads(run("runs", "acme/tiny-gpt", "--json").output)
    assert [r["id"] for r in runs] == [run_id] and runs[0]["checkpoint_count"] == 3
    listed = json.loads(run("checkpoints", str(run_id), "--json").output)
    assert [c["step"] for c in listed] == [100, 200, 300]
    assert listed[2]["val_loss"] == pytest.approx(3.0 / 301)
    page = json.loads(run("checkpoints", str(run_id), "--offset", "1", "--limit", "1", "--json").output)
    assert [c["index"] for c in page] == [1]
    found = json.loads(run("lookup", weights[1].hex, "--json").output)
    assert (found["run_id"], found["index"], found["step"], found["status"]) == (run_id, 1, 200, "active")
    text = run("lookup", str(weights[1])).output
    assert f"run {run_id} #1 step 200" in text
    unknown = run("lookup", "0x" + "ab" * 32, ok=False)
    assert unknown.exit_code == 1 and "is not on the ledger" in unknown.output


def test_release_deprecate_revoke(ledger_dir: Path) -> None:
    run("register", "acme/tiny-gpt")
    _, weights = seed_run(ledger_dir, "acme/tiny-gpt", [1, 2])
    released = json.loads(run("release", "acme/tiny-gpt", "1.0.0", weights[1].hex, "--json").output)
    assert released["label"] == "1.0.0" and released["checkpoint"]["step"] == 2
    run("deprecate", "acme/tiny-gpt@1.0.0", "--reason", "superseded")
    run("revoke", "acme/tiny-gpt@1.0.0", "--reason", "leaked data")
    releases = json.loads(run("show", "acme/tiny-gpt", "--json").output)["releases"]
    assert releases[0]["status"] == "revoked"
    final = run("deprecate", "acme/tiny-gpt@1.0.0", "--reason", "again", ok=False)
    assert final.exit_code == 3 and "RegistryInvalidTransition" in final.output

    run("revoke", weights[0].hex, "--reason", "corrupt")
    assert json.loads(run("lookup", weights[0].hex, "--json").output)["status"] == "revoked"
    refused = run("release", "acme/tiny-gpt", "2.0.0", weights[0].hex, ok=False)
    assert refused.exit_code == 3 and "RegistryCheckpointNotActive" in refused.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["show", "acme/unknown"], 2, "Error: unknown model 'acme/unknown': register it first (llmchain register NAME)"),
        (["register", "Bad Name"], 2, "Error: invalid model name 'Bad Name'"),
        (["lookup", "0x12"], 2, "Error: malformed digest hex '0x12': expected 64 hex characters"),
        (["lookup", "sha256:zz"], 2, "Error: malformed digest hex 'zz'"),
        (["show", "acme/x", "--chain-id", "1"], 2, "Error: the embedded ledger is chain 131277322940537, not chain 1"),
        (["show", "acme/x", "--rpc-url", "http://127.0.0.1:9"], 3, "Error: "),
        (["release", "acme/x", "bad label!", "0x" + "11" * 32], 2, "Error: "),
        (["deploy"], 2, "Error: deploy needs --rpc-url URL"),
    ],
)
def test_bad_input_is_one_line(ledger_dir: Path, args: list[str], code: int, message: str) -> None:
    run("init")
    result = run(*args, ok=False)
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), result.output
    assert "Traceback" not in result.output


def test_corrupt_ledger_dir_is_refused_without_damage(ledger_dir: Path) -> None:
    ledger_dir.mkdir()
    db = ledger_dir / "chain.sqlite3"
    db.write_bytes(b"this is not a database" * 100)
    result = run("show", "acme/x", ok=False)
    assert result.exit_code in (2, 3) and result.output.startswith("Error: ")
    assert len(result.output.strip().splitlines()) == 1
    assert db.read_bytes() == b"this is not a database" * 100  # nothing was written over it


def test_ledger_path_that_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run("show", "acme/x", "--ledger", str(blocker), ok=False)
    assert result.exit_code == 2 and "is a file" in result.output


def test_unreadable_ledger_database(ledger_dir: Path) -> None:
    # Root reads any file, so make the database unreadable in a way permissions cannot undo.
    (ledger_dir / "chain.sqlite3").mkdir(parents=True)
    result = run("show", "acme/x", ok=False)
    assert result.exit_code in (2, 3) and result.output.startswith("Error: ")
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_records_persist_across_processes(ledger_dir: Path) -> None:
    env = {**os.environ, "LLMCHAIN_HOME": str(ledger_dir)}

    def cli_process(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "llmchain", *args], env=env, capture_output=True, text=True, timeout=120)

    registered = cli_process("register", "acme/tiny-gpt")
    assert registered.returncode == 0, registered.stderr
    shown = cli_process("show", "acme/tiny-gpt", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["model"]["owner"] == ALICE
    duplicate = cli_process("register", "acme/tiny-gpt")
    assert duplicate.returncode == 2 and duplicate.stderr.startswith("Error: model name")
    assert "Traceback" not in duplicate.stderr


def test_same_commands_against_anvil(anvil: str, tmp_path: Path) -> None:
    book = ["--ledger", str(tmp_path / "book"), "--rpc-url", anvil]
    deployed = json.loads(run("deploy", *book, "--json").output)
    assert deployed["address"].startswith("0x")
    again = run("deploy", *book, ok=False)
    assert again.exit_code == 2 and "already has an llmchain registry" in again.output
    run("register", "acme/on-anvil", *book)
    shown = json.loads(run("show", "acme/on-anvil", *book, "--json").output)
    assert shown["model"]["name"] == "acme/on-anvil"
    wrong_chain = run("show", "acme/on-anvil", *book, "--chain-id", "5", ok=False)
    assert wrong_chain.exit_code == 2 and "not chain 5" in wrong_chain.output
