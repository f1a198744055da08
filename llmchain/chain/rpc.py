"""A remote Ethereum JSON-RPC node over HTTP(S): open it, fail fast and clearly when it is not there."""

from __future__ import annotations

from urllib.parse import urlparse

from web3 import HTTPProvider, Web3

from llmchain.errors import BadInput, LedgerError

CONNECT_TIMEOUT_S = 3.0
"""How long the first request may take before the node counts as unreachable."""

REQUEST_TIMEOUT_S = 60.0
"""Per-request limit once connected (a slow node mining a batch commit is still fine)."""


def open_node(rpc_url: str) -> tuple[Web3, int]:
    """Connect to ``rpc_url`` and return the web3 handle and the node's chain id."""
    parsed = urlparse(rpc_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise BadInput(f"--rpc-url must be an http:// or https:// URL, got {rpc_url!r}")
    provider = HTTPProvider(
        rpc_url,
        request_kwargs={"timeout": (CONNECT_TIMEOUT_S, REQUEST_TIMEOUT_S)},
        exception_retry_configuration=None,
    )
    w3 = Web3(provider)
    try:
        chain_id = w3.eth.chain_id
    except Exception as error:  # requests, JSON and web3 errors all mean "not a usable node"
        raise LedgerError(
            f"cannot reach an Ethereum node at {rpc_url} ({_reason(error)}); check --rpc-url "
            "and that the node is running"
        ) from None
    return w3, chain_id


def _reason(error: Exception) -> str:
    """A short cause: the exception's class name, never its (possibly multi-line) text."""
    return type(error).__name__
