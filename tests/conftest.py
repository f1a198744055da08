"""Shared fixtures: a fresh in-memory chain, a temp ledger directory, and a real anvil node."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmchain.chain import Connection, connect_memory

# Fixtures shared by the training and audit tests: run_dir, ledger, one_thread, corpus.
pytest_plugins = ["train_support", "audit_support"]

ROOT = Path(__file__).resolve().parent.parent
ANVIL = ROOT / "tools" / "node_modules" / ".bin" / "anvil"


@pytest.fixture
def conn() -> Iterator[Connection]:
    """A fresh in-memory eth-tester chain with the registry deployed, sending from dev account 0."""
    with connect_memory() as connection:
        yield connection


@pytest.fixture
def ledger_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A not-yet-created persistent ledger directory; also set as LLMCHAIN_HOME for CLI tests."""
    directory = tmp_path / "ledger"
    monkeypatch.setenv("LLMCHAIN_HOME", str(directory))
    return directory


@pytest.fixture
def anvil() -> Iterator[str]:
    """A real anvil node on a free loopback port (chain 31337, ten unlocked accounts); its URL."""
    if not ANVIL.exists():
        pytest.skip("anvil is not installed; run `python3 dev.py test` to install the node tools")
    port = _free_port()
    process = subprocess.Popen(
        [str(ANVIL), "--host", "127.0.0.1", "--port", str(port), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(url, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_until_serving(url: str, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"anvil exited with code {process.returncode} before serving {url}")
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
                if json.load(response).get("result"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"anvil did not answer at {url} within {timeout:g} s")
