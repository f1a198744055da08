"""Remote nodes: unreachable or malformed URLs and chain-id checks fail fast with one clear line."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmchain.chain import connect, deploy_registry
from llmchain.chain.rpc import CONNECT_TIMEOUT_S, open_node
from llmchain.errors import BadInput, LedgerError


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def not_a_node() -> Iterator[str]:
    """An HTTP server that answers every request with an HTML page."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = b"<html>hello</html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_an_unreachable_url_fails_fast_with_one_line() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    started = time.monotonic()
    with pytest.raises(LedgerError) as caught:
        connect(rpc_url=url)
    assert time.monotonic() - started < CONNECT_TIMEOUT_S + 2
    message = str(caught.value)
    assert message.startswith(f"cannot reach an Ethereum node at {url} (") and "\n" not in message


def test_a_server_that_is_not_a_node_is_a_ledger_error(not_a_node: str) -> None:
    with pytest.raises(LedgerError, match=f"cannot reach an Ethereum node at {not_a_node}"):
        open_node(not_a_node)


@pytest.mark.parametrize("url", ["ftp://example.org", "localhost:8545", "http://"])
def test_a_url_that_is_not_http_is_bad_input(url: str) -> None:
    with pytest.raises(BadInput, match="must be an http:// or https:// URL"):
        deploy_registry(rpc_url=url)


@pytest.mark.slow
def test_a_wrong_chain_id_is_refused_before_anything_is_sent(anvil: str, ledger_dir: Path) -> None:
    with pytest.raises(BadInput, match=f"the node at {anvil} is on chain 31337, not chain 1 "):
        deploy_registry(rpc_url=anvil, chain_id=1)
    w3, chain_id = open_node(anvil)
    assert chain_id == 31337 and w3.eth.block_number == 0  # nothing was deployed
