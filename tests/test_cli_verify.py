"""``llmchain verify`` and ``llmchain audit`` through click, on a persistent embedded ledger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from llmchain.chain import connect
from llmchain.cli import cli
from llmchain.ledger import Ledger
from audit_support import MODEL, ckpt, commit_run, edit_weights, flip_bit, trained_run


@pytest.fixture
def run_dir(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, ledger_dir: Path) -> Path:
    run = trained_run(tmp_path_factory.getbasetemp() / "shared-run", tmp_path / "run")
    with connect(ledger_dir=ledger_dir) as conn:
        ledger = Ledger(conn)
        commit_run(ledger, run)
        ledger.release(MODEL, "1.0.0", ledger.list_checkpoints(1)[-1].weights_digest)
    return run


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_verify_ok_prints_provenance(run_dir: Path) -> None:
    result = invoke("verify", str(ckpt(run_dir, 6)))
    assert result.exit_code == 0, result.output
    for text in ("OK", MODEL, "step 6", "val loss", "committed by", "releases 1.0.0 (active)", "status   active"):
        assert text in result.output


def test_verify_json_and_expect(run_dir: Path) -> None:
    result = invoke("verify", str(ckpt(run_dir, 6)), "--expect", f"{MODEL}@1.0.0", "--json")
    assert result.exit_code == 0
    data = json.loads(result.output)
    assert data["ok"] is True and data["checkpoint"]["step"] == 6 and data["releases"][0]["label"] == "1.0.0"
    assert data["digest"]["value"].startswith("0x") and data["expected"]["step"] == 6


def test_verify_tampered_exits_1_naming_the_tensor(run_dir: Path) -> None:
    edit_weights(ckpt(run_dir, 4), lambda t: flip_bit(t, "transformer.wte.weight"))
    result = invoke("verify", str(ckpt(run_dir, 4)))
    assert result.exit_code == 1
    assert "FAILED" in result.output and "changed transformer.wte.weight (data)" in result.output
    data = json.loads(invoke("verify", str(ckpt(run_dir, 4)), "--json").output)
    assert data["ok"] is False and data["diff"]["changed"] == ["transformer.wte.weight"]


def test_verify_tensor_by_proof(run_dir: Path) -> None:
    result = invoke("verify", str(ckpt(run_dir, 4)), "--tensor", "transformer.wte.weight")
    assert result.exit_code == 0 and "on-chain verifyTensorProof ok" in result.output
    data = json.loads(invoke("verify", str(ckpt(run_dir, 4)), "--tensor", "transformer.wte.weight", "--json").output)
    assert data["ok"] and data["proof_ok"] and data["onchain_ok"] and data["proof"]["index"] >= 0


@pytest.mark.parametrize("args, code, message", [
    (["--expect", "nonsense"], 2, "NAME@VERSION"),
    (["--expect", "1:3"], 2, "no checkpoint at step 3"),
    (["--expect", f"{MODEL}@9.9.9"], 2, "has no release"),
    (["--expect", "acme/nobody@1.0"], 2, "unknown model"),
    (["--expect", "9:2"], 2, "there is no run 9"),
    (["--rpc-url", "http://127.0.0.1:9"], 3, ""),
])
def test_verify_bad_input_and_chain_errors(run_dir: Path, args: list[str], code: int, message: str) -> None:
    result = CliRunner().invoke(cli, ["verify", str(ckpt(run_dir, 4)), *args])
    assert result.exit_code == code, result.output
    assert result.output.startswith("Error: ") and message in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1


def test_verify_missing_path_is_bad_input(run_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["verify", str(tmp_path / "nope.safetensors")])
    assert result.exit_code == 2 and "no such file" in result.output


def test_audit_summary_json_and_report(run_dir: Path, tmp_path: Path) -> None:
    result = invoke("audit", MODEL, "--checkpoints", str(run_dir), "--report", str(tmp_path / "rep"))
    assert result.exit_code == 0, result.output
    assert "PASSED" in result.output and "[ok] hash chain" in result.output and "matched" in result.output
    assert (tmp_path / "rep" / "report.md").is_file() and f"report: {tmp_path / 'rep' / 'report.md'}" in result.output
    data = json.loads(invoke("audit", MODEL, "--json").output)
    assert data["ok"] is True and [c["name"] for c in data["checks"]][0] == "hash chain"
    assert [c["step"] for c in data["runs"][0]["checkpoints"]] == [2, 4, 6]


def test_audit_replay_and_failure_exit_code(run_dir: Path) -> None:
    result = invoke("audit", MODEL, "--checkpoints", str(run_dir), "--replay", "--segments", "all")
    assert result.exit_code == 0 and "steps 2->4: exact test, ok" in result.output
    edit_weights(ckpt(run_dir, 2), lambda t: flip_bit(t, "transformer.wte.weight"))
    failed = invoke("audit", MODEL, "--checkpoints", str(run_dir), "--replay", "--json")
    data = json.loads(failed.output)
    assert failed.exit_code == 1 and data["ok"] is False
    assert data["replay"][0]["test"] == "not run" and data["replay"][0]["l2"] is None


@pytest.mark.parametrize("args, message", [
    (["--replay"], "--replay needs --checkpoints"),
    (["--replay", "--checkpoints", ".", "--segments", "0"], "--segments"),
    (["--replay", "--checkpoints", ".", "--tolerance", "-1"], "--tolerance"),
    (["--run", "7"], "there is no run 7"),
])
def test_audit_bad_input(run_dir: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["audit", MODEL, *args])
    assert result.exit_code == 2 and message in result.output, result.output
    assert "Traceback" not in result.output


def test_audit_unknown_model_is_bad_input(run_dir: Path) -> None:
    result = CliRunner().invoke(cli, ["audit", "acme/nobody"])
    assert result.exit_code == 2 and "unknown model" in result.output
