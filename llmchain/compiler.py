"""Compile the Solidity contracts into the artifacts shipped in ``llmchain/artifacts``.

Users never need this module: the compiled artifacts are committed, so installing the package needs
no compiler. Developers regenerate them with ``scripts/compile_contracts.py``, and a test recompiles
and asserts byte-identical output, so the committed bytecode provably comes from ``contracts/``.

The compiler is pinned (:data:`SOLC_VERSION`, :data:`SETTINGS`) and driven through py-solc-x's
standard-JSON interface. A native ``solc`` of the pinned version on PATH is preferred; otherwise the
official solc-js build from npm runs behind ``tools/solc-shim.cjs``, an executable that answers
``--version`` and ``--standard-json`` like solc (``npm ci --prefix tools`` installs solc-js).
Both produce identical bytecode for the same version and settings.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import solcx
from eth_utils import keccak
from solcx.exceptions import SolcError
from solcx.wrapper import get_solc_version

from llmchain.artifacts import ARTIFACT_DIR
from llmchain.errors import LedgerError

SOLC_VERSION = "0.8.37"
ROOT = Path(__file__).resolve().parent.parent
SHIM = ROOT / "tools" / "solc-shim.cjs"

# contract name -> source unit (path relative to ROOT; also the name solc records in metadata)
CONTRACTS: dict[str, str] = {
    "ModelRegistry": "contracts/ModelRegistry.sol",
    "DigestStore": "contracts/reference/DigestStore.sol",
}
# Every source unit the contracts import, so the input is self-contained (no import callback needed).
SOURCES: tuple[str, ...] = (
    "contracts/IModelRegistry.sol",
    "contracts/ModelRegistry.sol",
    "contracts/reference/DigestStore.sol",
)
SETTINGS: dict[str, Any] = {
    "evmVersion": "prague",  # eth-tester 0.14's default VM
    "optimizer": {"enabled": True, "runs": 200},
    "viaIR": True,
    "metadata": {"bytecodeHash": "ipfs"},
}
_OUTPUTS = ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "storageLayout"]


def find_solc() -> Path:
    """Return the compiler to use: a native solc of the pinned version, else the solc-js shim."""
    native = shutil.which("solc")
    if native is not None and str(get_solc_version(native)) == SOLC_VERSION:
        return Path(native)
    if shutil.which("node") is None or not (SHIM.parent / "node_modules" / "solc").is_dir():
        raise LedgerError(
            f"no solc {SOLC_VERSION} found: install Node.js and run `npm ci --prefix tools` "
            f"(or put a native solc {SOLC_VERSION} on PATH)"
        )
    if not os.access(SHIM, os.X_OK):
        raise LedgerError(f"{SHIM} is not executable: run `chmod +x {SHIM}`")
    return SHIM


def standard_input(root: Path = ROOT) -> dict[str, Any]:
    """The standard-JSON compiler input: pinned settings and every source inline."""
    return {
        "language": "Solidity",
        "sources": {unit: {"content": (root / unit).read_text(encoding="utf-8")} for unit in SOURCES},
        "settings": {**SETTINGS, "outputSelection": {"*": {"*": _OUTPUTS}}},
    }


def compile_contracts(root: Path = ROOT, solc: Path | None = None) -> dict[str, dict[str, Any]]:
    """Compile every contract in :data:`CONTRACTS`; returns artifact dicts keyed by contract name."""
    solc = solc or find_solc()
    source_input = standard_input(root)
    try:
        output = solcx.compile_standard(source_input, solc_binary=solc)
    except SolcError as err:
        raise LedgerError(f"contract compilation failed: {err}") from err
    version = get_solc_version(solc, with_commit_hash=True)
    sources = {
        unit: "0x" + hashlib.sha256(src["content"].encode("utf-8")).hexdigest()
        for unit, src in source_input["sources"].items()
    }
    return {
        name: _artifact(name, output["contracts"][unit][name], str(version), sources)
        for name, unit in CONTRACTS.items()
    }


def _artifact(name: str, out: dict[str, Any], version: str, sources: dict[str, str]) -> dict[str, Any]:
    runtime = bytes.fromhex(out["evm"]["deployedBytecode"]["object"])
    return {
        "contractName": name,
        "abi": out["abi"],
        "bytecode": "0x" + out["evm"]["bytecode"]["object"],
        "runtimeCodeHash": "0x" + keccak(runtime).hex(),
        "compiler": f"solc {version.split('.Emscripten')[0]}",
        "settings": SETTINGS,
        "sourceSha256": sources,
        "storageLayout": out["storageLayout"],
    }


def render(artifact: dict[str, Any]) -> str:
    """The artifact file's exact text (stable key order, so recompiles are byte-identical)."""
    return json.dumps(artifact, indent=1, sort_keys=True) + "\n"


def write_artifacts(artifacts: dict[str, dict[str, Any]], dest: Path = ARTIFACT_DIR) -> list[Path]:
    """Write each artifact to ``dest/<name>.json``; returns the paths written."""
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, artifact in artifacts.items():
        path = dest / f"{name}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(render(artifact), encoding="utf-8")
        tmp.replace(path)
        paths.append(path)
    return paths
