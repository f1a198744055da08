"""The committed artifacts are exactly what the pinned compiler makes of contracts/ (and what deploys)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from eth_utils import keccak

from llmchain import compiler
from llmchain.artifacts import load_artifact
from llmchain.chain import Connection
from llmchain.errors import LedgerError

needs_solc = pytest.mark.skipif(
    shutil.which("node") is None and shutil.which("solc") is None,
    reason="no compiler: install Node.js and run `npm ci --prefix tools` (or put solc 0.8.37 on PATH)",
)


@needs_solc
def test_recompiling_reproduces_the_committed_artifacts() -> None:
    artifacts = compiler.compile_contracts()
    assert set(artifacts) == set(compiler.CONTRACTS)
    for name, artifact in artifacts.items():
        committed = (compiler.ARTIFACT_DIR / f"{name}.json").read_text(encoding="utf-8")
        assert compiler.render(artifact) == committed, f"{name}.json is stale: run scripts/compile_contracts.py"


@needs_solc
def test_shim_speaks_solc_version() -> None:
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    out = subprocess.run([str(compiler.SHIM), "--version"], capture_output=True, text=True, check=True).stdout
    assert f"Version: {compiler.SOLC_VERSION}+commit." in out
    refused = subprocess.run([str(compiler.SHIM), "--bin"], capture_output=True, text=True)
    assert refused.returncode == 2 and "only --version and --standard-json" in refused.stderr


@needs_solc
def test_compile_errors_are_reported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for unit in compiler.SOURCES:
        (tmp_path / unit).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / unit).write_text((compiler.ROOT / unit).read_text())
    (tmp_path / "contracts/ModelRegistry.sol").write_text("pragma solidity 0.8.37; contract X { oops }")
    with pytest.raises(LedgerError, match="contract compilation failed"):
        compiler.compile_contracts(tmp_path)


def test_artifact_matches_deployed_code(conn: Connection) -> None:
    artifact = load_artifact()
    runtime = conn.w3.eth.get_code(conn.registry.address)
    assert "0x" + keccak(runtime).hex() == artifact.runtime_code_hash
    assert artifact.compiler.startswith(f"solc {compiler.SOLC_VERSION}+commit.")
    assert artifact.settings["evmVersion"] == "prague" and artifact.bytecode.startswith("0x6080")
    assert {e["name"] for e in artifact.abi if e["type"] == "error"} >= {"RegistryNotOwner", "RegistryRunClosed"}
    assert set(artifact.source_sha256) == set(compiler.SOURCES)


def test_unknown_artifact_is_a_clear_error() -> None:
    with pytest.raises(LedgerError, match="no compiled artifact for contract 'Nope'"):
        load_artifact("Nope")
