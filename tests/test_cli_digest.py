"""`llmchain digest`, `diff`, `prove`, `verify-proof`: output, JSON, exit codes, one-line errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from llmchain.cli import cli
from llmchain.cli import digest as digest_cli
from llmchain.digest import digest_state_dict

TENSORS = {"wte.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4), "ln_f.bias": torch.zeros(4, dtype=torch.bfloat16)}


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.safetensors"
    save_file(TENSORS, str(path))
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_digest_prints_algorithm_root_and_path(model: Path) -> None:
    code, out, _ = invoke("digest", str(model))
    expected = digest_state_dict(TENSORS)
    assert code == 0 and out == f"tensor-sha256-c16m-v1:{expected.hex}  {model}\n"


def test_digest_json_and_manifest(model: Path, tmp_path: Path) -> None:
    manifest = tmp_path / "out.manifest.json"
    code, out, _ = invoke("digest", str(model), "--json", "--manifest", str(manifest))
    document = json.loads(out)
    assert code == 0 and document["tensors"] == 2 and document["bytes"] == 48 + 8
    assert document["root"] == json.loads(manifest.read_text())["root"] == digest_state_dict(TENSORS).hex


def test_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00")
    code, out, err = invoke("digest", str(broken))
    assert code == 2 and out == ""
    assert err == f"Error: {broken}: truncated: 2 bytes, too short for a safetensors header\n"


def test_diff_exit_codes_and_listing(model: Path, tmp_path: Path) -> None:
    invoke("digest", str(model), "--manifest", str(tmp_path / "m.json"))
    assert invoke("diff", str(model), str(tmp_path / "m.json")) == (0, "same tensors\n", "")
    other = tmp_path / "other.safetensors"
    save_file({"wte.weight": TENSORS["wte.weight"] + 1, "extra": torch.ones(1)}, str(other))
    code, out, _ = invoke("diff", str(tmp_path / "m.json"), str(other))
    assert code == 1
    assert out.splitlines() == ["changed  wte.weight  (data)", "missing  ln_f.bias", "extra    extra"]
    code, out, _ = invoke("diff", str(model), str(other), "--json")
    assert code == 1 and json.loads(out)["changed"] == [{"name": "wte.weight", "fields": ["data"]}]


def test_prove_and_verify_proof(model: Path, tmp_path: Path) -> None:
    proof = tmp_path / "p.json"
    assert invoke("prove", str(model), "ln_f.bias", "-o", str(proof))[0] == 0
    root = digest_state_dict(TENSORS).hex
    code, out, _ = invoke("verify-proof", str(proof), "--root", f"0x{root}", "--model", str(model))
    assert code == 0 and out.startswith("ok  ln_f.bias")
    code, out, err = invoke("verify-proof", str(proof), "--root", "11" * 32)
    assert code == 1 and err == "Error: tensor 'ln_f.bias': the proof does not lead to the root\n"
    save_file({"wte.weight": TENSORS["wte.weight"], "ln_f.bias": torch.ones(4, dtype=torch.bfloat16)}, str(model))
    code, out, err = invoke("verify-proof", str(proof), "--model", str(model), "--json")
    assert code == 1 and json.loads(out) == {"ok": False, "proof": True, "tensor": False, "name": "ln_f.bias"}
    assert invoke("verify-proof", str(proof), "--root", "abc")[0] == 2
    assert invoke("prove", str(model), "nope")[0] == 2


def test_prove_to_stdout_from_a_manifest(model: Path, tmp_path: Path) -> None:
    invoke("digest", str(model), "--manifest", str(tmp_path / "m.json"))
    code, out, _ = invoke("prove", str(tmp_path / "m.json"), "wte.weight")
    document = json.loads(out)
    assert code == 0 and document["index"] == 1 and document["size"] == 2 and len(document["siblings"]) == 1


def test_progress_bar_only_on_a_terminal_and_not_when_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    with digest_cli.hashing_progress(quiet=False) as progress:
        assert progress is not None
        progress(0, 2 * digest_cli.PROGRESS_MIN_BYTES)
        progress(2 * digest_cli.PROGRESS_MIN_BYTES, 2 * digest_cli.PROGRESS_MIN_BYTES)
    assert "hashing" in screen.getvalue() and "100%" in screen.getvalue()
    with digest_cli.hashing_progress(quiet=True) as progress:
        assert progress is None
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    with digest_cli.hashing_progress(quiet=False) as progress:
        assert progress is None


def test_digest_process_imports_neither_torch_nor_web3(model: Path) -> None:
    code = (
        "import sys; from llmchain.cli import main; sys.argv = ['llmchain', 'digest', '-q', sys.argv[1]]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('torch', 'web3', 'numpy', 'tqdm') if m in sys.modules), file=sys.stderr)"
    )
    done = subprocess.run([sys.executable, "-c", code, str(model)], capture_output=True, text=True, check=True)
    assert done.stderr.strip() == "[]"
