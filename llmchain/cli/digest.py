"""``llmchain digest``, ``diff``, ``prove`` and ``verify-proof``: canonical model digests.

Parsing and rendering only; the work is in :mod:`llmchain.digest`. Nothing here imports torch
or web3, and the manifest, diff and proof modules load inside the commands that use them, so
``llmchain digest model.safetensors`` starts fast (its whole run is benchmarked).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from llmchain.digest import digest_path
from llmchain.errors import BadInput, VerificationFailed

if TYPE_CHECKING:
    from llmchain.digest import DigestDiff, ModelDigest, Progress

PROGRESS_MIN_BYTES = 64 * 1024 * 1024  # smaller inputs finish before a bar is worth drawing


@contextmanager
def hashing_progress(quiet: bool) -> Iterator[Progress | None]:
    """A tqdm bar on stderr for large inputs; none when quiet or when stderr is not a terminal."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    bar: Any = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None and total >= PROGRESS_MIN_BYTES:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="hashing")
        if bar is not None:
            bar.update(done - bar.n)

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()


def _load(path: Path) -> ModelDigest:
    """A manifest (``*.json`` that is not a shard index) or a model to digest."""
    from llmchain.digest import Manifest

    if path.suffix == ".json" and not path.name.endswith(".index.json"):
        return Manifest.read(path).digest
    return digest_path(path)


def _digest_json(path: Path, result: ModelDigest) -> dict[str, Any]:
    return {
        "path": str(path),
        "algorithm": result.algorithm,
        "root": result.hex,
        "digest": str(result),
        "tensors": len(result.tensors),
        "bytes": result.nbytes,
    }


@click.command("digest")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of a line.")
@click.option("--manifest", type=click.Path(path_type=Path), help="Also write the manifest JSON here.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def digest(path: Path, as_json: bool, manifest: Path | None, quiet: bool) -> None:
    """Print the canonical digest of a model's weights.

    The digest depends only on the tensors (names, dtypes, shapes, bytes), not on the file format,
    key order, metadata or sharding. PATH is a .safetensors file, a .pt/.bin/.pth state dict,
    a *.index.json shard index or a directory of shards.

    \b
    Examples:
      llmchain digest model.safetensors
      llmchain digest ./Llama-3-8B --manifest llama.manifest.json
      llmchain digest ckpt.pt --json
    """
    with hashing_progress(quiet) as progress:
        result = digest_path(path, progress=progress)
    if manifest is not None:
        from llmchain.digest import Manifest

        Manifest.from_digest(result).write(manifest)
    if as_json:
        click.echo(json.dumps(_digest_json(path, result), indent=1))
    else:
        click.echo(f"{result}  {path}")


def _diff_json(result: DigestDiff) -> dict[str, Any]:
    return {
        "same": result.same,
        "changed": [{"name": n, "fields": list(result.fields[n])} for n in result.changed],
        "missing": list(result.missing),
        "extra": list(result.extra),
    }


@click.command("diff")
@click.argument("a", type=click.Path(path_type=Path))
@click.argument("b", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def diff_command(a: Path, b: Path, as_json: bool) -> None:
    """Compare two models, or a model and a manifest, tensor by tensor.

    Lists tensors whose dtype, shape or data changed, tensors missing from B and extra ones in B.
    Exits 0 when they match and 1 when they differ.

    \b
    Examples:
      llmchain diff base.safetensors finetuned/
      llmchain diff model.safetensors model.safetensors.manifest.json --json
    """
    from llmchain.digest import diff

    result = diff(_load(a), _load(b))
    if as_json:
        click.echo(json.dumps(_diff_json(result), indent=1))
    else:
        for name in result.changed:
            click.echo(f"changed  {name}  ({', '.join(result.fields[name])})")
        for name in result.missing:
            click.echo(f"missing  {name}")
        for name in result.extra:
            click.echo(f"extra    {name}")
        if result.same:
            click.echo("same tensors")
    if not result.same:
        click.get_current_context().exit(VerificationFailed.exit_code)


@click.command("prove")
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("tensor")
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Write the proof here (default: stdout).")
def prove_command(model: Path, tensor: str, output: Path | None) -> None:
    """Make a Merkle proof that TENSOR belongs to MODEL's digest.

    MODEL is a model path or a manifest. The proof (JSON) lets anyone check that one tensor
    against the root, e.g. the one on the ledger, without hashing the other tensors.

    \b
    Examples:
      llmchain prove model.safetensors lm_head.weight -o lm_head.proof.json
      llmchain prove model.safetensors.manifest.json transformer.wte.weight
    """
    from llmchain.digest import ProofDocument

    document = ProofDocument.make(_load(model), tensor)
    if output is None:
        click.echo(json.dumps(document.to_json(), indent=1))
    else:
        document.write(output)


def _parse_root(root: str | None) -> bytes | None:
    if root is None:
        return None
    text = root.split(":")[-1].removeprefix("0x")
    try:
        value = bytes.fromhex(text)
    except ValueError:
        value = b""
    if len(value) != 32:
        raise BadInput(f"--root {root!r}: expected 64 hex digits (optionally ALGORITHM: or 0x first)")
    return value


@click.command("verify-proof")
@click.argument("proof", type=click.Path(path_type=Path))
@click.option("--root", help="Trusted root to check against (hex; default: the root in the proof).")
@click.option("--model", type=click.Path(path_type=Path), help="Re-hash the tensor from this model.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
def verify_proof_command(proof: Path, root: str | None, model: Path | None, as_json: bool) -> None:
    """Check a tensor proof made by `llmchain prove`.

    With --model, the tensor is re-hashed from that model (only its own bytes are read), so a
    single tensor of a large checkpoint is verified against a trusted --root quickly.
    Exits 0 when the proof holds and 1 when it does not.

    \b
    Examples:
      llmchain verify-proof lm_head.proof.json --root 9f2c...e1 --model model.safetensors
    """
    from llmchain.digest import ProofDocument, digest_tensor

    document = ProofDocument.read(proof)
    trusted = _parse_root(root)
    proof_ok = document.verify(trusted)
    tensor_ok = model is None or digest_tensor(model, document.leaf.name) == document.leaf
    ok = proof_ok and tensor_ok
    if as_json:
        click.echo(json.dumps({"ok": ok, "proof": proof_ok, "tensor": tensor_ok, "name": document.leaf.name}))
    elif ok:
        click.echo(f"ok  {document.leaf.name}  in {document.algorithm}:{(trusted or document.root).hex()}")
    if not ok:
        reason = "the proof does not lead to the root" if not proof_ok else "the model's tensor differs"
        raise VerificationFailed(f"tensor {document.leaf.name!r}: {reason}")
