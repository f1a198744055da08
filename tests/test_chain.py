"""The Connection and the persistent embedded ledger: creation, reopening, processes, crashes, errors."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from chain_support import deploy_probe, register_model
from eth_utils import keccak, to_hex
from web3.types import RPCEndpoint

import llmchain.chain as chain
from llmchain.artifacts import load_artifact
from llmchain.chain import CHAIN_ID, Connection, connect, init_ledger, resolve_ledger_dir
from llmchain.errors import BadInput, ContractRevert, LedgerBusy, LedgerError

TESTS = Path(__file__).resolve().parent


def _registered(conn: Connection) -> list[str]:
    """Names in the ModelRegistered logs, from the log index."""
    return [log["args"]["name"] for log in conn.get_logs("ModelRegistered", from_block=0, to_block=10**6)]


def _child(code: str, *args: str) -> subprocess.Popen[str]:
    """Start a Python process running ``code`` (dedented) with the tests' helpers importable."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _run_child(code: str, *args: str) -> str:
    process = _child(code, *args)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return out


def _model_id(conn: Connection, name: str) -> int:
    return int(conn.call(conn.registry.functions.modelIdOf(name)))


# -- the connection ---------------------------------------------------------------------------


def test_memory_connection_has_the_pinned_registry_and_dev_account_0(conn: Connection) -> None:
    code = bytes(conn.w3.eth.get_code(conn.registry.address))
    assert to_hex(keccak(code)) == load_artifact().runtime_code_hash
    assert conn.chain_id == CHAIN_ID == conn.w3.eth.chain_id
    assert conn.sender == conn.w3.eth.accounts[0]


def test_a_reverting_transaction_is_not_mined(conn: Connection) -> None:
    block, nonce = conn.w3.eth.block_number, conn.w3.eth.get_transaction_count(conn.sender)
    with pytest.raises(ContractRevert, match=r"^RegistryUnknownModel\(modelId=9\)$"):
        conn.transact(conn.registry.functions.grantTrainer(9, conn.sender))
    assert (conn.w3.eth.block_number, conn.w3.eth.get_transaction_count(conn.sender)) == (block, nonce)
    conn.transact(register_model(conn, "acme/after-revert"))  # the chain goes on normally
    assert conn.w3.eth.block_number == block + 1


def test_an_invalid_transaction_is_a_ledger_error_and_leaves_no_block(conn: Connection) -> None:
    block = conn.w3.eth.block_number
    with pytest.raises(LedgerError, match="^the chain refused the request: invalid transaction: .*gas limit"):
        conn.transact(register_model(conn, "acme/too-much-gas"), gas=40_000_000)
    assert conn.w3.eth.block_number == block


def test_each_block_is_stamped_when_it_is_written_not_when_the_last_one_was(
    conn: Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    conn.transact(register_model(conn, "acme/first"))
    an_hour_later = int(time.time()) + 3600
    monkeypatch.setattr("eth._utils.headers.eth_now", lambda: an_hour_later)  # py-evm's clock
    receipt = conn.transact(register_model(conn, "acme/second"))
    assert conn.w3.eth.get_block(receipt["blockNumber"])["timestamp"] == an_hour_later


def test_running_out_of_gas_is_a_ledger_error_and_leaves_no_block(conn: Connection) -> None:
    block = conn.w3.eth.block_number
    with pytest.raises(LedgerError, match="^the chain refused the request: execution failed: OutOfGas"):
        conn.transact(register_model(conn, "acme/starved"), gas=30_000)
    assert conn.w3.eth.block_number == block


def test_as_account_sends_from_another_dev_account(conn: Connection) -> None:
    other = conn.as_account(3)
    assert other.sender == list(conn.w3.eth.accounts)[3] == conn.as_account(other.sender).sender
    receipt = other.transact(register_model(other, "acme/by-three"))
    assert receipt["from"] == other.sender
    model = conn.call(conn.registry.functions.getModel(_model_id(conn, "acme/by-three")))
    assert model[2] == other.sender  # owner
    with pytest.raises(BadInput, match="out of range: the in-memory chain has accounts 0..9"):
        conn.as_account(10)
    with pytest.raises(BadInput, match="is not one of the accounts"):
        conn.as_account("0x" + "12" * 20)


def test_get_logs_serves_narrow_ranges_with_argument_filters(conn: Connection) -> None:
    conn.transact(register_model(conn, "acme/one"))
    conn.as_account(1).transact(register_model(conn, "acme/two"))
    head = conn.w3.eth.block_number
    both = conn.get_logs("ModelRegistered", from_block=head - 1, to_block=head)
    assert [log["args"]["name"] for log in both] == ["acme/one", "acme/two"]
    mine = conn.get_logs(
        "ModelRegistered", from_block=0, to_block=head, argument_filters={"owner": conn.sender}
    )
    assert [log["args"]["name"] for log in mine] == ["acme/one"]
    assert conn.get_logs("ModelRegistered", from_block=head - 1, to_block=head - 1)[0]["blockNumber"] == head - 1
    assert len(conn.get_logs("ModelRegistered", from_block=head - 1, to_block=head + 50)) == 2
    assert conn.get_logs("ModelRegistered", from_block=head + 1, to_block=head + 50) == []
    with pytest.raises(BadInput, match="invalid block range 5..4"):
        conn.get_logs("ModelRegistered", from_block=5, to_block=4)
    with pytest.raises(BadInput, match="no event named 'Nope'"):
        conn.get_logs("Nope", from_block=0, to_block=head)


def test_transact_deploys_a_contract_from_a_constructor(conn: Connection) -> None:
    probe = deploy_probe(conn)
    conn.transact(probe.functions.store(5))
    assert conn.call(probe.functions.value()) == 5


# -- the persistent embedded ledger -----------------------------------------------------------


def test_ledger_is_created_on_first_use_and_reopened_at_its_head(ledger_dir: Path) -> None:
    with connect() as first:  # LLMCHAIN_HOME points at ledger_dir
        assert first.location == f"the embedded ledger at {ledger_dir}"
        first.transact(register_model(first, "acme/tiny-gpt"))
        head, registry = first.w3.eth.block_number, first.registry.address
    assert (ledger_dir / "chain.sqlite3").exists()
    with connect(ledger_dir=ledger_dir) as again:
        assert again.w3.eth.block_number == head
        assert again.registry.address == registry
        assert _model_id(again, "acme/tiny-gpt") == 1
        assert _registered(again) == ["acme/tiny-gpt"]  # the log index persisted with the block


def test_the_default_ledger_dir_is_llmchain_home_then_dot_llmchain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LLMCHAIN_HOME", raising=False)
    assert resolve_ledger_dir() == Path(".llmchain")
    assert resolve_ledger_dir(tmp_path) == tmp_path
    monkeypatch.setenv("LLMCHAIN_HOME", str(tmp_path / "home"))
    assert resolve_ledger_dir() == tmp_path / "home"


def test_init_ledger_reports_creation_once(ledger_dir: Path) -> None:
    created = init_ledger(ledger_dir)
    again = init_ledger(ledger_dir)
    assert created.created and not again.created
    assert created.registry == again.registry and again.chain_id == CHAIN_ID
    assert again.block_number == created.block_number == 1  # genesis + the registry deployment


def test_processes_see_each_others_transactions_without_reopening(ledger_dir: Path) -> None:
    with connect(ledger_dir=ledger_dir) as parent:
        _run_child(
            """
            import sys
            from chain_support import register_model
            from llmchain.chain import connect
            with connect(ledger_dir=sys.argv[1]) as conn:
                conn.transact(register_model(conn, "acme/from-child"))
            """,
            str(ledger_dir),
        )
        assert _model_id(parent, "acme/from-child") == 1  # the open connection is not stale
        parent.transact(register_model(parent, "acme/from-parent"))
        out = _run_child(
            """
            import sys
            from llmchain.chain import connect
            with connect(ledger_dir=sys.argv[1]) as conn:
                ids = [conn.call(conn.registry.functions.modelIdOf(n)) for n in sys.argv[2:]]
                print(*ids, conn.w3.eth.block_number)
            """,
            str(ledger_dir),
            "acme/from-child",
            "acme/from-parent",
        )
        assert out.split() == ["1", "2", str(parent.w3.eth.block_number)]


_HOLD_WRITE_LOCK = """
    import sys, time
    from llmchain.chain import connect
    conn = connect(ledger_dir=sys.argv[1])
    with conn._store.write():
        print("locked", flush=True)
        time.sleep(float(sys.argv[2]))
"""


def test_a_second_writer_gets_ledger_busy_while_readers_carry_on(
    ledger_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chain, "BUSY_TIMEOUT_S", 0.5)
    with connect(ledger_dir=ledger_dir) as conn:
        holder = _child(_HOLD_WRITE_LOCK, str(ledger_dir), "30")
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
            assert conn.call(conn.registry.functions.modelCount()) == 0  # reading never waits
            with connect(ledger_dir=ledger_dir) as fresh:  # nor does opening (`llmchain show`)
                assert fresh.w3.eth.block_number == conn.w3.eth.block_number
            with pytest.raises(LedgerBusy, match="^ledger is busy: another process has been writing"):
                conn.transact(register_model(conn, "acme/blocked"))
        finally:
            holder.kill()
            holder.wait()
        conn.transact(register_model(conn, "acme/blocked"))  # nothing was half-written
        assert _model_id(conn, "acme/blocked") == 1


def test_a_second_writer_waits_briefly_for_the_first(ledger_dir: Path) -> None:
    with connect(ledger_dir=ledger_dir) as conn:
        holder = _child(_HOLD_WRITE_LOCK, str(ledger_dir), "1")
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        conn.transact(register_model(conn, "acme/patient"))
        assert time.monotonic() - started > 0.3
        assert holder.wait(timeout=30) == 0


def test_concurrent_writers_interleave_without_losing_a_block(ledger_dir: Path) -> None:
    init_ledger(ledger_dir)
    writer = """
        import sys
        from chain_support import register_model
        from llmchain.chain import connect
        with connect(ledger_dir=sys.argv[1], account=int(sys.argv[2])) as conn:
            for n in range(10):
                conn.transact(register_model(conn, f"acme/w{sys.argv[2]}-{n}"))
    """
    writers = [_child(writer, str(ledger_dir), str(index)) for index in (1, 2)]
    with connect(ledger_dir=ledger_dir) as reader:
        while any(w.poll() is None for w in writers):
            reader.call(reader.registry.functions.modelCount())  # reads all along
        for w in writers:
            assert w.returncode == 0, w.stderr.read() if w.stderr else ""
        assert reader.call(reader.registry.functions.modelCount()) == 20
        assert reader.w3.eth.block_number == 1 + 20


_STALL_BEFORE_COMMIT = """
    import os, sys, time
    from chain_support import register_model
    from llmchain.chain import connect
    from llmchain.chain.store import LedgerStore

    conn = connect(ledger_dir=sys.argv[1])
    conn._store._db.execute("PRAGMA cache_size=1")  # spill the block's pages into the WAL early
    wal = os.path.join(sys.argv[1], "chain.sqlite3-wal")
    before = os.path.getsize(wal)
    commit = LedgerStore._end

    def stall(store, statement):
        if statement == "COMMIT" and store.writing:
            print("stalled", before, os.path.getsize(wal), flush=True)
            time.sleep(60)
        commit(store, statement)

    LedgerStore._end = stall
    conn.transact(register_model(conn, "acme/doomed"))
"""


def test_kill_9_in_the_middle_of_a_transaction_leaves_the_last_complete_block(ledger_dir: Path) -> None:
    with connect(ledger_dir=ledger_dir) as conn:
        conn.transact(register_model(conn, "acme/kept"))
        head = conn.w3.eth.block_number
    victim = _child(_STALL_BEFORE_COMMIT, str(ledger_dir))
    assert victim.stdout is not None
    line = victim.stdout.readline().split()
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert line[0] == "stalled", victim.stderr.read() if victim.stderr else ""
    assert int(line[2]) > int(line[1])  # the unfinished block had reached the disk
    with connect(ledger_dir=ledger_dir) as conn:
        assert conn.w3.eth.block_number == head
        assert _model_id(conn, "acme/kept") == 1 and _model_id(conn, "acme/doomed") == 0
        assert _registered(conn) == ["acme/kept"]  # the unfinished block's logs were never indexed
        conn.transact(register_model(conn, "acme/doomed"))
        assert conn.w3.eth.block_number == head + 1
        assert _registered(conn) == ["acme/kept", "acme/doomed"]
    with sqlite3.connect(ledger_dir / "chain.sqlite3") as db:
        assert db.execute("SELECT block_number FROM logs").fetchall() == [(head,), (head + 1,)]


def test_kill_9_while_creating_leaves_no_half_made_ledger(ledger_dir: Path) -> None:
    victim = _child(
        """
        import sys, time
        from llmchain.chain import connect
        from llmchain.chain.store import LedgerStore
        commit = LedgerStore._end

        def stall(store, statement):
            if statement == "COMMIT" and store.writing and store.get_meta():
                print("stalled", flush=True)
                time.sleep(60)
            commit(store, statement)

        LedgerStore._end = stall
        connect(ledger_dir=sys.argv[1])
        """,
        str(ledger_dir),
    )
    assert victim.stdout is not None and victim.stdout.readline().strip() == "stalled"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    info = init_ledger(ledger_dir)
    assert info.created  # the database file existed but held nothing, so it was created now
    assert info.block_number == 1


# -- bad ledger directories and options -------------------------------------------------------


def test_a_corrupt_ledger_database_is_one_clear_line(ledger_dir: Path) -> None:
    ledger_dir.mkdir()
    (ledger_dir / "chain.sqlite3").write_bytes(os.urandom(4096))
    with pytest.raises(LedgerError) as caught:
        connect(ledger_dir=ledger_dir)
    message = str(caught.value)
    assert "chain.sqlite3 is unreadable" in message and "--ledger" in message and "\n" not in message


def test_a_ledger_with_missing_records_is_reported_as_damaged(ledger_dir: Path) -> None:
    with connect(ledger_dir=ledger_dir) as conn:
        code = bytes(conn.w3.eth.get_code(conn.registry.address))
    with sqlite3.connect(ledger_dir / "chain.sqlite3") as db:
        assert db.execute("DELETE FROM kv WHERE value = ?", (code,)).rowcount == 1
    with pytest.raises(LedgerError, match=r"chain.sqlite3 is damaged \(MissingBytecode\): restore it"):
        connect(ledger_dir=ledger_dir)


def test_a_ledger_path_that_is_a_file_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "ledger"
    path.write_text("not a directory")
    with pytest.raises(BadInput, match="is not a directory"):
        connect(ledger_dir=path)
    assert path.read_text() == "not a directory"


def test_a_ledger_of_another_format_version_is_refused(ledger_dir: Path) -> None:
    init_ledger(ledger_dir)
    with sqlite3.connect(ledger_dir / "chain.sqlite3") as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'format_version'")
    with pytest.raises(LedgerError, match="has format version 99 .*reads version 2"):
        connect(ledger_dir=ledger_dir)


def test_a_version_1_ledger_gets_its_log_index_built_on_open(ledger_dir: Path) -> None:
    with connect(ledger_dir=ledger_dir) as conn:
        for name in ("acme/one", "acme/two"):
            conn.transact(register_model(conn, name))
        indexed = list(conn.w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest"}))
    with sqlite3.connect(ledger_dir / "chain.sqlite3") as db:  # what version 1 wrote: no index
        db.execute("DROP TABLE logs")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'format_version'")
    with connect(ledger_dir=ledger_dir) as conn:
        assert list(conn.w3.eth.get_logs({"fromBlock": 0, "toBlock": "latest"})) == indexed
        assert _registered(conn) == ["acme/one", "acme/two"]
    with sqlite3.connect(ledger_dir / "chain.sqlite3") as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'format_version'").fetchone() == ("2",)
        assert db.execute("SELECT count(*) FROM logs").fetchone() == (2,)


def test_a_look_alike_registry_is_refused_by_the_code_hash_pin(ledger_dir: Path) -> None:
    with connect(ledger_dir=ledger_dir) as conn:
        probe = deploy_probe(conn)
    with sqlite3.connect(ledger_dir / "chain.sqlite3") as db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'registry_address'", (probe.address,))
    with pytest.raises(LedgerError) as caught:
        connect(ledger_dir=ledger_dir)
    expected = load_artifact().runtime_code_hash
    assert str(caught.value).startswith(f"registry at {probe.address} has runtime code hash 0x")
    assert str(caught.value).endswith(f"expected {expected}: not an llmchain registry of this version")


def test_embedded_ledger_refuses_a_wrong_chain_id_and_node_only_options(ledger_dir: Path) -> None:
    with pytest.raises(BadInput, match=f"is chain {CHAIN_ID}, not chain 1 "):
        connect(ledger_dir=ledger_dir, chain_id=1)
    with pytest.raises(BadInput, match="apply to a node"):
        connect(ledger_dir=ledger_dir, keystore=ledger_dir / "key.json")


def test_the_persistent_ledger_refuses_to_rewrite_history(ledger_dir: Path) -> None:
    with connect(ledger_dir=ledger_dir) as conn:
        response = conn.w3.provider.make_request(RPCEndpoint("evm_revert"), [0])
        assert "append-only" in response["error"]["message"]
