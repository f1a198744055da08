"""`llmchain train`, `sync` and `generate` through the CLI, including a kill -9 in the middle of training."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from llmchain.checkpoint import list_checkpoints
from llmchain.cli import cli
from llmchain.outbox import Outbox
from llmchain.train import PRESETS, TrainRequest, train

pytestmark = pytest.mark.usefixtures("one_thread")  # torch on one thread: bit-stable, no oversubscription

FAST = ["--steps", "4", "--checkpoint-every", "2", "--block-size", "16", "--batch-size", "4", "-q"]


def _run(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    return result.exit_code, result.output


def test_train_prints_working_verify_and_audit_commands(ledger_dir: Path, tmp_path: Path, corpus: Path) -> None:
    code, out = _run("train", "--data", corpus, "--out", tmp_path / "run", *FAST)
    assert code == 0, out
    assert "2 checkpoint(s), 2 committed" in out and "Validation loss" in out
    verify_line = next(line for line in out.splitlines() if line.startswith("Verify the weights:"))
    assert f"llmchain verify {tmp_path / 'run' / 'ckpt-000004' / 'model.safetensors'}" in verify_line
    assert "llmchain audit llmchain/tiny-gpt" in out
    code, verified = _run(*verify_line.split("llmchain ", 1)[1].split())
    assert code == 0, verified
    code, text = _run("generate", "--checkpoint", tmp_path / "run" / "ckpt-000004", "--prompt", "def ", "--tokens", "8")
    assert code == 0 and text.startswith("def ")
    code, synced = _run("sync", tmp_path / "run")
    assert code == 0 and "committed 0 pending" in synced


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "BINARY"], "is not UTF-8 text"),
        (["--data", "EMPTY"], "has no text"),
        (["--block-size", "100000"], "does not fit"),
        (["--resume"], "nothing to resume"),
        (["--init-from", "OFFLINE"], "not on the ledger"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_commits_nothing(
    ledger_dir: Path, tmp_path: Path, corpus: Path, args: list[str], message: str
) -> None:
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)))
    (tmp_path / "empty.txt").write_text("")
    offline = train(TrainRequest(tmp_path / "offline", config=replace(PRESETS["tiny"], max_steps=1, block_size=16),
                                 data=corpus, device="cpu"))
    subst = {"BINARY": tmp_path / "blob.bin", "EMPTY": tmp_path / "empty.txt",
             "OFFLINE": offline.checkpoints[0].path}
    args = [str(subst.get(a, a)) for a in args]
    if "--data" not in args:
        args += ["--data", str(corpus)]
    code, out = _run("train", "--out", tmp_path / "run", *args, "--steps", "2", "-q")
    assert code == 2, out
    assert out.startswith("Error: ") and message in out and len(out.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
    code, shown = _run("show", "llmchain/tiny-gpt")
    assert code == 2 and "unknown model" in shown


def test_generate_refuses_unknown_weights(ledger_dir: Path, tmp_path: Path, corpus: Path) -> None:
    offline = train(TrainRequest(tmp_path / "offline", config=replace(PRESETS["tiny"], max_steps=1, block_size=16),
                                 data=corpus, device="cpu"))
    code, out = _run("generate", "--checkpoint", offline.checkpoints[0].path, "--prompt", "x")
    assert code == 1 and "not on the ledger" in out and "--allow-unverified" in out
    code, out = _run("generate", "--checkpoint", offline.checkpoints[0].path, "--prompt", "x", "--allow-unverified",
                     "--tokens", "4")
    assert code == 0 and "Warning:" in out


def test_kill_9_then_resume_commits_everything_and_matches_an_uninterrupted_run(
    ledger_dir: Path, tmp_path: Path, corpus: Path
) -> None:
    flags = ["--data", str(corpus), "--steps", "40", "--checkpoint-every", "4", "--block-size", "16",
             "--batch-size", "4", "--seed", "1337", "--out", str(tmp_path / "run"), "--ledger", str(ledger_dir), "-q"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "llmchain", "train", *flags], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (tmp_path / "run" / "ckpt-000008").exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "training finished before it could be killed"
    code, out = _run("train", "--resume", "--out", tmp_path / "run", "--ledger", ledger_dir, "-q")
    assert code == 0, out
    assert not Outbox(tmp_path / "run").pending()
    steps = [c.step for c in list_checkpoints(tmp_path / "run")]
    assert steps == list(range(4, 41, 4))
    config = replace(PRESETS["tiny"], max_steps=40, checkpoint_every=4, block_size=16, batch_size=4)
    train(TrainRequest(tmp_path / "clean", config=config, data=corpus, device="cpu"))
    resumed = [(c.step, c.weights.value, c.state.value) for c in list_checkpoints(tmp_path / "run")]
    clean = [(c.step, c.weights.value, c.state.value) for c in list_checkpoints(tmp_path / "clean")]
    assert resumed == clean
    code, listing = _run("checkpoints", "1", "--ledger", ledger_dir, "--json")
    assert code == 0, listing
    on_chain = [(c["step"], c["weights_digest"]["value"]) for c in json.loads(listing)]
    assert on_chain == [(step, "0x" + weights.hex()) for step, weights, _ in resumed]


def test_each_new_run_gets_its_own_seed_and_weights(ledger_dir: Path, tmp_path: Path, corpus: Path) -> None:
    # The ledger keeps each weights digest once: a re-run must not train run 1's weights again.
    for name in ("a", "b"):
        code, out = _run("train", "--data", corpus, "--out", tmp_path / name, *FAST)
        assert code == 0, out
    seeds = [json.loads((tmp_path / n / "run.json").read_text())["records"]["config"]["train"]["seed"] for n in "ab"]
    assert seeds[0] != seeds[1]
    for name, run_id in (("a", 1), ("b", 2)):
        code, out = _run("verify", tmp_path / name / "ckpt-000004")
        assert code == 0 and f"run      {run_id} " in out, out
    code, out = _run("train", "--data", corpus, "--out", tmp_path / "c", *FAST, "--seed", str(seeds[0]))
    assert code == 0, out
    same = [c.weights.value for c in list_checkpoints(tmp_path / "c")]
    assert same == [c.weights.value for c in list_checkpoints(tmp_path / "a")]  # --seed reproduces a run
