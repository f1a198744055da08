"""The compiled contracts shipped with the package (``llmchain/artifacts/*.json``).

Loading an artifact needs no compiler. ``runtime_code_hash`` is what the chain layer compares with
``keccak256(eth_getCode(address))`` before it trusts a registry address.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from llmchain.errors import LedgerError

ARTIFACT_DIR = Path(__file__).resolve().parent / "artifacts"
"""Package data, read by path: llmchain installs as plain files (importlib.resources would cost
about 10 ms of imports on every ledger command, for zip imports we do not support)."""


@dataclass(frozen=True)
class Artifact:
    """One compiled contract: ABI, creation code and the hash of the code it deploys."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str  # 0x hex creation code
    runtime_code_hash: str  # 0x keccak256 of the deployed runtime code
    compiler: str  # e.g. "solc 0.8.37+commit.f401782d"
    settings: dict[str, Any]  # the solc settings used (evmVersion, optimizer, ...)
    source_sha256: dict[str, str]  # source unit -> 0x sha256 of its text
    storage_layout: dict[str, Any]  # solc's storageLayout: where each state variable lives


def abi_type(param: Mapping[str, Any]) -> str:
    """An ABI parameter's canonical type, structs spelled out: ``(bytes32,bytes32)``, ``(uint8,bool)[]``
    (what selectors, event topics and eth_abi take)."""
    kind = str(param["type"])
    if not kind.startswith("tuple"):
        return kind
    inner = ",".join(abi_type(component) for component in param["components"])
    return f"({inner}){kind[len('tuple'):]}"


@lru_cache(maxsize=None)
def load_artifact(name: str = "ModelRegistry") -> Artifact:
    """Load the committed artifact of contract ``name``."""
    try:
        text = (ARTIFACT_DIR / f"{name}.json").read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise LedgerError(f"no compiled artifact for contract {name!r}; reinstall llmchain") from err
    data = json.loads(text)
    return Artifact(
        name=data["contractName"],
        abi=data["abi"],
        bytecode=data["bytecode"],
        runtime_code_hash=data["runtimeCodeHash"],
        compiler=data["compiler"],
        settings=data["settings"],
        source_sha256=data["sourceSha256"],
        storage_layout=data["storageLayout"],
    )
