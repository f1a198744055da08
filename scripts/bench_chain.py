#!/usr/bin/env python3
"""The chain layer's raw speed: persisted commits, view calls, opening, narrow log queries.

    python3 dev.py run python scripts/bench_chain.py [--commits 200] [--blocks 2000]

Ours: ``llmchain.chain`` on a persistent embedded ledger in a temp dir (each commit is one registry
``commitCheckpoint`` transaction, one block, committed to disk). Anchor: stock eth-tester in memory
(web3's ``EthereumTesterProvider``, the usual ``fn.transact()`` + receipt), measured in the same run;
for logs, stock eth-tester's ``get_logs`` over the very same chain. Limits: issue 2's targets
(>= 20 commits/s, a view call <= 20 ms) and, for opening and logs, our own budgets (opening must
stay in the tens of ms because every CLI command opens the ledger). The machine is shared and
noisy: rerun before trusting a single figure.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eth_tester import EthereumTester
from eth_tester.backends.pyevm.main import PyEVMBackend
from web3 import EthereumTesterProvider, Web3
from web3.types import RPCEndpoint

from llmchain.artifacts import load_artifact
from llmchain.chain import Connection, connect

ALGORITHM = b"tensor-sha256-v1".ljust(32, b"\0")
NO_PARENT = (0, (b"\0" * 32, b"\0" * 32), 0)
COMMITS_PER_S_LIMIT = 20.0
VIEW_MS_LIMIT = 20.0
OPEN_MS_LIMIT = 50.0
LOGS_MS_LIMIT = 100.0


def _digest(n: int) -> tuple[bytes, bytes]:
    return (ALGORITHM, (n + 10).to_bytes(32, "big"))


def _checkpoint(n: int) -> tuple[Any, ...]:
    return (n + 1, _digest(n), _digest(10**9 + n), _digest(2 * 10**9 + n), 1000 + n)


def _open_run(registry: Any, send: Callable[[Any], Any]) -> int:
    send(registry.functions.registerModel("bench/model", _digest(-1), NO_PARENT))
    run = (_digest(-2), _digest(-3), _digest(-4), _digest(-5), (b"\0" * 32, b"\0" * 32))
    receipt = send(registry.functions.startRun(1, run))
    return int(registry.events.RunStarted().process_receipt(receipt)[0]["args"]["runId"])


def _rate(count: int, action: Callable[[int], object]) -> float:
    started = time.perf_counter()
    for n in range(count):
        action(n)
    return count / (time.perf_counter() - started)


def _median_ms(repeats: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _stock_chain() -> tuple[Web3, Any]:
    """Stock eth-tester in memory with the registry deployed: the anchor."""
    w3 = Web3(EthereumTesterProvider())
    artifact = load_artifact()
    factory = w3.eth.contract(abi=artifact.abi, bytecode=artifact.bytecode)
    receipt = w3.eth.wait_for_transaction_receipt(factory.constructor().transact({"from": w3.eth.accounts[0]}))
    return w3, w3.eth.contract(address=receipt["contractAddress"], abi=artifact.abi)


def _stock_logs_over(conn: Connection) -> Callable[[int, int], object]:
    """Stock eth-tester's get_logs running on our chain object (same blocks, same database)."""
    ours = conn.w3.provider._backend  # type: ignore[attr-defined]
    stock = PyEVMBackend.__new__(PyEVMBackend)
    stock.account_keys = ours.account_keys
    tester = EthereumTester(backend=stock)

    def query(first: int, last: int) -> object:
        with ours.session(write=False):
            stock.chain = ours.chain
            return tester.get_logs(from_block=first, to_block=last, address=conn.registry.address)

    return query


def _row(label: str, ours: float, anchor: float, limit: float, unit: str, higher_is_better: bool) -> str:
    vs_anchor = ours / anchor if higher_is_better else anchor / ours
    vs_limit = ours / limit if higher_is_better else limit / ours
    return f"{label:<34} {ours:>10.2f} {anchor:>10.2f} {limit:>8.1f} {unit:<9} {vs_anchor:>7.2f}x {vs_limit:>7.2f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commits", type=int, default=200, help="commits timed on each chain")
    parser.add_argument("--blocks", type=int, default=2000, help="empty blocks mined before the log queries")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as home:
        ledger = Path(home) / "ledger"
        started = time.perf_counter()
        conn = connect(ledger_dir=ledger)
        create_ms = (time.perf_counter() - started) * 1000
        run = _open_run(conn.registry, conn.transact)
        fns = conn.registry.functions
        ours_rate = _rate(args.commits, lambda n: conn.transact(fns.commitCheckpoint(run, _checkpoint(n))))
        ours_view = _median_ms(100, lambda: conn.call(fns.checkpointOf(_digest(7)[1])))

        w3, stock = _stock_chain()
        sender = w3.eth.accounts[0]

        def stock_send(fn: Any) -> Any:
            return w3.eth.wait_for_transaction_receipt(fn.transact({"from": sender}))

        stock_run = _open_run(stock, stock_send)
        stock_rate = _rate(
            args.commits, lambda n: stock_send(stock.functions.commitCheckpoint(stock_run, _checkpoint(n)))
        )
        stock_view = _median_ms(100, lambda: stock.functions.checkpointOf(_digest(7)[1]).call())

        conn.w3.provider.make_request(RPCEndpoint("evm_mine"), [args.blocks])
        conn.transact(fns.commitCheckpoint(run, _checkpoint(args.commits)))
        head = conn.w3.eth.block_number
        early = (5, 14)  # ten blocks of commits, ~head blocks back
        late = (head - 9, head)
        stock_logs = _stock_logs_over(conn)
        ours_early = _median_ms(5, lambda: conn.get_logs("CheckpointCommitted", from_block=early[0], to_block=early[1]))
        stock_early = _median_ms(1, lambda: stock_logs(*early))
        ours_late = _median_ms(5, lambda: conn.get_logs("CheckpointCommitted", from_block=late[0], to_block=late[1]))
        stock_late = _median_ms(3, lambda: stock_logs(*late))
        conn.close()

        started = time.perf_counter()
        connect(ledger_dir=ledger).close()
        open_ms = (time.perf_counter() - started) * 1000
        command = [sys.executable, "-c", "import time; t = time.perf_counter(); import llmchain.chain; "
                   "print((time.perf_counter() - t) * 1000)"]  # fmt: skip
        import_ms = float(subprocess.run(command, capture_output=True, text=True, check=True).stdout)

    print(f"chain layer, {args.commits} commits per chain, log queries at head block {head}")
    print(f"{'measure':<34} {'ours':>10} {'anchor':>10} {'limit':>8} {'unit':<9} {'vs anchor':>8} {'vs limit':>8}")
    print(_row("commits, persisted (one block each)", ours_rate, stock_rate, COMMITS_PER_S_LIMIT, "per s", True))
    print(_row("view call checkpointOf", ours_view, stock_view, VIEW_MS_LIMIT, "ms", False))
    print(_row("get_logs 10 blocks, early", ours_early, stock_early, LOGS_MS_LIMIT, "ms", False))
    print(_row("get_logs 10 blocks, at head", ours_late, stock_late, LOGS_MS_LIMIT, "ms", False))
    print(f"{'open an existing ledger':<34} {open_ms:>10.2f} {'':>10} {OPEN_MS_LIMIT:>8.1f} {'ms':<9} "
          f"{'':>8} {OPEN_MS_LIMIT / open_ms:>7.2f}x")  # fmt: skip
    print(f"create a ledger (genesis + deploy): {create_ms:.0f} ms; import llmchain.chain: {import_ms:.0f} ms")
    print("ratios > 1 are better: ours faster than the anchor / within the limit")


if __name__ == "__main__":
    main()
