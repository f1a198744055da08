"""verify_weights / verify_tensor against a real chain and a really trained micro GPT."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from llmchain import checkpoint, verify
from llmchain.errors import BadInput
from llmchain.ledger import Ledger
from llmchain.records import Lineage, Relation, Status
from llmchain.verify import parse_expect, verify_tensor, verify_weights
from audit_support import MODEL, ckpt, commit_run, edit_weights, flip_bit, reseal, trained_run

TENSOR = "transformer.h.0.mlp.c_fc.weight"


def test_file_names_match_the_checkpoint_format() -> None:
    # verify repeats these names to avoid importing torch; they must not drift.
    assert (verify.INFO_FILE, verify.WEIGHTS_FILE, verify.MANIFEST_FILE) == (
        checkpoint.INFO_FILE, checkpoint.WEIGHTS_FILE, checkpoint.MANIFEST_FILE)


def test_committed_checkpoint_verifies_with_its_provenance(ledger: Ledger, run_dir: Path) -> None:
    result = verify_weights(ledger, ckpt(run_dir, 4))
    assert result.ok, result.problems
    assert result.path == ckpt(run_dir, 4) / "model.safetensors"  # the weights, not the optimizer state
    assert result.checkpoint is not None and result.model is not None and result.run is not None
    assert (result.model.name, result.checkpoint.run_id, result.checkpoint.step) == (MODEL, 1, 4)
    info = json.loads((ckpt(run_dir, 4) / "checkpoint.json").read_text())
    assert result.checkpoint.val_loss == pytest.approx(info["val_loss"], abs=1e-9)
    assert result.checkpoint.committer == ledger.conn.sender
    assert result.checkpoint.timestamp > 0 and result.releases == () and result.diff is None


def test_flipped_bit_is_refused_and_the_tensor_named(ledger: Ledger, run_dir: Path) -> None:
    edit_weights(ckpt(run_dir, 4), lambda t: flip_bit(t, TENSOR))
    result = verify_weights(ledger, ckpt(run_dir, 4))
    assert not result.ok and result.checkpoint is None
    assert any("not on the ledger" in p for p in result.problems)
    assert any("should be run 1 step 4" in p for p in result.problems)  # the manifest beside it, vouched by the ledger
    assert result.diff is not None and result.diff.changed == (TENSOR,) and result.diff.fields[TENSOR] == ("data",)
    assert not result.diff.missing and not result.diff.extra


def test_renamed_tensor_is_missing_plus_extra(ledger: Ledger, run_dir: Path) -> None:
    edit_weights(ckpt(run_dir, 4), lambda t: t.update({"renamed.weight": t.pop(TENSOR)}))
    result = verify_weights(ledger, ckpt(run_dir, 4), expect="1:4")
    assert not result.ok
    assert result.diff is not None
    assert (result.diff.changed, result.diff.missing, result.diff.extra) == ((), (TENSOR,), ("renamed.weight",))


def test_changed_dtype_is_named(ledger: Ledger, run_dir: Path) -> None:
    edit_weights(ckpt(run_dir, 4), lambda t: t.update({TENSOR: t[TENSOR].half()}))
    result = verify_weights(ledger, ckpt(run_dir, 4), expect="1:4")
    assert not result.ok and result.diff is not None
    assert result.diff.changed == (TENSOR,) and "dtype" in result.diff.fields[TENSOR]


@pytest.mark.parametrize("edit, missing, extra", [
    (lambda t: t.pop(TENSOR), (TENSOR,), ()),
    (lambda t: t.update({"extra.bias": torch.zeros(3)}), (), ("extra.bias",)),
])
def test_dropped_or_added_tensor_is_named(ledger: Ledger, run_dir: Path, edit: object, missing: tuple, extra: tuple) -> None:
    edit_weights(ckpt(run_dir, 4), edit)
    result = verify_weights(ledger, ckpt(run_dir, 4))
    assert not result.ok and result.diff is not None
    assert (result.diff.missing, result.diff.extra, result.diff.changed) == (missing, extra, ())


def test_swapped_checkpoint_files_are_caught(ledger: Ledger, run_dir: Path) -> None:
    a, b = ckpt(run_dir, 2) / "model.safetensors", ckpt(run_dir, 4) / "model.safetensors"
    tmp = a.with_name("swap")
    a.rename(tmp), b.rename(a), tmp.rename(b)
    result = verify_weights(ledger, ckpt(run_dir, 2))
    assert not result.ok
    assert any("says it is run 1 step 2" in p and "run 1 step 4" in p for p in result.problems)
    expected = verify_weights(ledger, ckpt(run_dir, 2), expect="1:2")
    assert any("are not 1:2" in p for p in expected.problems)
    assert expected.diff is not None and expected.diff.changed  # diffed against the sibling's manifest


def test_revoked_release_fails_verification(ledger: Ledger, run_dir: Path) -> None:
    weights = verify_weights(ledger, ckpt(run_dir, 6)).digest
    ledger.release(MODEL, "1.0.0", weights)
    released = verify_weights(ledger, ckpt(run_dir, 6), expect=f"{MODEL}@1.0.0")
    assert released.ok and [r.label for r in released.releases] == ["1.0.0"]
    ledger.revoke_release(MODEL, "1.0.0", "leaked eval data")
    result = verify_weights(ledger, ckpt(run_dir, 6))
    assert not result.ok and any("release 1.0.0" in p and "revoked" in p for p in result.problems)
    assert result.releases[0].status is Status.REVOKED
    assert any("was revoked" in p for p in verify_weights(ledger, ckpt(run_dir, 6), expect=f"{MODEL}@1.0.0").problems)


def test_revoked_checkpoint_fails_and_deprecated_warns(ledger: Ledger, run_dir: Path) -> None:
    digest = verify_weights(ledger, ckpt(run_dir, 2)).digest
    ledger.deprecate_checkpoint(digest, "superseded")
    deprecated = verify_weights(ledger, ckpt(run_dir, 2))
    assert deprecated.ok and any("deprecated" in w for w in deprecated.warnings)
    ledger.revoke_checkpoint(digest, "trained on the wrong data")
    assert any("revoked" in p for p in verify_weights(ledger, ckpt(run_dir, 2)).problems)


def test_verify_against_the_wrong_model(
    ledger: Ledger, run_dir: Path, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other_run = trained_run(tmp_path_factory.getbasetemp() / "shared-run", tmp_path / "other")
    # a second model with different weights: perturb every checkpoint so no digest repeats
    for step in (2, 4, 6):
        edit_weights(ckpt(other_run, step), lambda t: t.update({k: v + 1 for k, v in t.items()}))
    for step in (2, 4, 6):
        reseal(ckpt(other_run, step))
    commit_run(ledger, other_run, model="acme/other-gpt")
    other = verify_weights(ledger, ckpt(other_run, 6))
    ledger.release("acme/other-gpt", "1.0.0", other.digest)
    result = verify_weights(ledger, ckpt(run_dir, 6), expect="acme/other-gpt@1.0.0")
    assert not result.ok and any(f"they are run 1 step 6 of {MODEL}" in p for p in result.problems)
    by_model = verify_weights(ledger, ckpt(run_dir, 6), model="acme/other-gpt")
    assert any(f"belong to {MODEL}" in p for p in by_model.problems)


def test_resaved_with_shuffled_keys_and_metadata_still_verifies(ledger: Ledger, run_dir: Path, tmp_path: Path) -> None:
    tensors = load_file(str(ckpt(run_dir, 4) / "model.safetensors"))
    names = list(tensors)
    random.Random(3).shuffle(names)
    copy = tmp_path / "resaved.safetensors"
    save_file({n: tensors[n] for n in names}, str(copy), metadata={"writer": "someone else", "z": "1", "a": "2"})
    assert copy.read_bytes() != (ckpt(run_dir, 4) / "model.safetensors").read_bytes()
    result = verify_weights(ledger, copy)
    assert result.ok and result.checkpoint is not None and result.checkpoint.step == 4


def test_pytorch_file_of_the_same_weights_verifies(ledger: Ledger, run_dir: Path, tmp_path: Path) -> None:
    torch.save(load_file(str(ckpt(run_dir, 4) / "model.safetensors")), tmp_path / "weights.pt")
    assert verify_weights(ledger, tmp_path / "weights.pt").ok


def test_unknown_weights_without_a_manifest(ledger: Ledger, tmp_path: Path) -> None:
    save_file({"w": torch.ones(4)}, str(tmp_path / "w.safetensors"))
    result = verify_weights(ledger, tmp_path / "w.safetensors")
    assert not result.ok and result.diff is None and result.problems == (result.problems[0],)


def test_reference_checkpoint_names_the_tensors(ledger: Ledger, run_dir: Path, tmp_path: Path) -> None:
    loose = tmp_path / "loose.safetensors"
    shutil.copy(ckpt(run_dir, 6) / "model.safetensors", loose)
    tensors = load_file(str(loose))
    flip_bit(tensors, TENSOR)
    save_file(tensors, str(loose))
    result = verify_weights(ledger, loose, expect="1:6", reference=ckpt(run_dir, 6))
    assert result.diff is not None and result.diff.changed == (TENSOR,)
    assert result.diff_source == str(ckpt(run_dir, 6))


def test_single_tensor_by_merkle_proof(ledger: Ledger, run_dir: Path) -> None:
    folder = ckpt(run_dir, 4)
    result = verify_tensor(ledger, folder, TENSOR)
    assert result.ok and result.proof_ok and result.onchain_ok
    assert result.proof is not None and result.proof.size == len(load_file(str(folder / "model.safetensors")))
    # another tensor corrupted: the whole file fails, this tensor's proof still holds (nothing else hashed)
    edit_weights(folder, lambda t: flip_bit(t, "transformer.wte.weight"))
    assert not verify_weights(ledger, folder).ok
    assert verify_tensor(ledger, folder, TENSOR, expect="1:4").ok
    broken = verify_tensor(ledger, folder, "transformer.wte.weight")
    assert not broken.ok and not broken.proof_ok and not broken.onchain_ok
    assert any("data_hash changed" in p for p in broken.problems)


def test_single_tensor_failures(ledger: Ledger, run_dir: Path, tmp_path: Path) -> None:
    folder = ckpt(run_dir, 4)
    assert any("extra" in p for p in verify_tensor(ledger, folder, "no.such.tensor").problems)
    edit_weights(folder, lambda t: t.pop(TENSOR))
    assert any("missing" in p for p in verify_tensor(ledger, folder, TENSOR).problems)
    with pytest.raises(BadInput, match="is not the manifest of"):
        verify_tensor(ledger, folder, TENSOR, expect="1:2")
    (folder / "manifest.json").unlink()
    with pytest.raises(BadInput, match="--manifest"):
        verify_tensor(ledger, folder, TENSOR)


@pytest.mark.parametrize("text", ["acme@", "@1.0", "3:", "nothing", "1:x"])
def test_bad_expect_is_bad_input(text: str) -> None:
    with pytest.raises(BadInput, match="NAME@VERSION"):
        parse_expect(text)


def test_expect_parses_both_forms() -> None:
    assert parse_expect("acme/x@1.0.0").model == "acme/x" and parse_expect("acme/x@1.0.0").label == "1.0.0"
    assert (parse_expect("3:500").run_id, parse_expect("3:500").step) == (3, 500)


def test_expect_unknown_step_or_release_is_bad_input(ledger: Ledger, run_dir: Path) -> None:
    with pytest.raises(BadInput, match="no checkpoint at step 5"):
        verify_weights(ledger, ckpt(run_dir, 4), expect="1:5")
    with pytest.raises(BadInput):
        verify_weights(ledger, ckpt(run_dir, 4), expect=f"{MODEL}@9.9.9")


def test_lineage_parent_is_not_the_child(ledger: Ledger, run_dir: Path) -> None:
    # a fine-tuned child registered from a committed checkpoint does not make the parent's weights its own
    parent = verify_weights(ledger, ckpt(run_dir, 6))
    ledger.register_model("acme/child", parent=Lineage(Relation.FINE_TUNE, parent.model.id, parent.digest))  # type: ignore[union-attr]
    assert not any("belong" in p for p in verify_weights(ledger, ckpt(run_dir, 6), model=MODEL).problems)
    assert any("belong to" in p for p in verify_weights(ledger, ckpt(run_dir, 6), model="acme/child").problems)
