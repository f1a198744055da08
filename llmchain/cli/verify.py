"""``llmchain verify`` and ``llmchain audit``: check weights and history against the ledger.

Parsing and rendering only; the work is in :mod:`llmchain.verify`, :mod:`llmchain.audit`,
:mod:`llmchain.replay` and :mod:`llmchain.report`. Exit codes: 0 verified, 1 verification failed
(the reasons are printed), 2 bad input, 3 ledger or chain error.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from llmchain.cli.common import LedgerOptions, emit, json_option, jsonable, ledger_options, open_ledger, open_reader
from llmchain.cli.digest import hashing_progress
from llmchain.cli.render import checkpoint_line, loss_text, release_line, when_text

if TYPE_CHECKING:
    from llmchain.audit import AuditReport
    from llmchain.records import Checkpoint
    from llmchain.replay import ReplayOptions
    from llmchain.verify import TensorResult, VerifyResult

TIMELINE_LINES = 10  # checkpoints shown at each end of a long run in the text summary


@click.command("verify")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--expect", metavar="NAME@VERSION|RUN:STEP", help="Require exactly this release or run step.")
@click.option("--model", "model_name", metavar="NAME", help="Require the weights to be a checkpoint of this model.")
@click.option("--reference", type=click.Path(path_type=Path), help="Manifest or checkpoint to name differing tensors from.")
@click.option("--tensor", metavar="NAME", help="Verify only this tensor, by Merkle proof (hashes nothing else).")
@click.option("--manifest", type=click.Path(path_type=Path), help="With --tensor: the committed manifest (default: beside PATH).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@json_option
@ledger_options
def verify_command(
    path: Path, expect: str | None, model_name: str | None, reference: Path | None, tensor: str | None,
    manifest: Path | None, quiet: bool, as_json: bool, ledger_opts: LedgerOptions,
) -> None:
    """Check local weights against the ledger.

    Digests PATH (a checkpoint directory, .safetensors, .pt/.bin, or a directory of shards), looks
    the digest up on-chain and shows model, run, step, validation loss, committer, time, releases and
    revocation status. Exits 0 when the weights are on the ledger and not revoked, 1 otherwise.

    \b
    Examples:
      llmchain verify runs/tiny-gpt/ckpt-001500
      llmchain verify model.safetensors --expect llmchain/tiny-gpt@1.0.0
      llmchain verify model.safetensors --expect 1:1500 --json
      llmchain verify model.safetensors --tensor transformer.wte.weight
    """
    from llmchain.verify import verify_tensor, verify_weights

    if tensor is not None:  # the proof is also checked by the contract's own view: needs the chain
        with open_ledger(ledger_opts) as ledger:
            proof = verify_tensor(ledger, path, tensor, expect=expect, manifest=manifest)
        emit(as_json, {"ok": proof.ok, **jsonable(proof)}, lambda: _tensor_lines(proof))
        ok = proof.ok
    else:
        with open_reader(ledger_opts) as reader, hashing_progress(quiet or as_json) as progress:
            result = verify_weights(reader, path, expect=expect, model=model_name, reference=reference, progress=progress)
        emit(as_json, {"ok": result.ok, **jsonable(result)}, lambda: _verify_lines(result))
        ok = result.ok
    if not ok:
        raise click.exceptions.Exit(1)


@click.command("audit")
@click.argument("model")
@click.option("--run", "run_id", type=int, help="Audit only this run of MODEL.")
@click.option("--checkpoints", type=click.Path(path_type=Path), help="Local run directory to match against the ledger.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Write report.md, loss-curve.png and lineage.png into this directory.")
@click.option("--replay", is_flag=True, help="Re-run recorded training segments and compare (needs --checkpoints).")
@click.option("--segments", default="3", show_default=True, metavar="K|all", help="Segments to replay, evenly spread.")
@click.option("--data", type=click.Path(path_type=Path), help="The run's corpus for --replay (default: as recorded).")
@click.option("--tolerance", type=float, help="L∞ bound of the distance test when the environment differs [default: 1e-4].")
@click.option("--threads", type=int, help="CPU threads for --replay (default: the recorded count).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True, help="Device for --replay.")
@json_option
@ledger_options
def audit_command(
    model: str, run_id: int | None, checkpoints: Path | None, report_dir: Path | None, replay: bool, segments: str,
    data: Path | None, tolerance: float | None, threads: int | None, device: str, as_json: bool,
    ledger_opts: LedgerOptions,
) -> None:
    """Reconstruct and check a model's history: lineage, runs, checkpoints, releases.

    Checks that each run's events reproduce its on-chain hash-chain head (a node hiding events is
    caught), that steps increase, that every release names a committed checkpoint of the model and
    that each lineage parent is on the ledger. With --checkpoints, says which local checkpoints
    match, are tampered, missing or uncommitted; with --replay, re-runs training segments (exact
    digest match when the environment matches, else an L∞ distance within a tolerance). Exits 0
    when every check passes, 1 otherwise.

    \b
    Examples:
      llmchain audit llmchain/tiny-gpt
      llmchain audit llmchain/tiny-gpt --run 1 --checkpoints runs/tiny-gpt --replay --segments all
      llmchain audit llmchain/tiny-gpt --report audit-report --json
    """
    from llmchain.audit import audit

    options = _replay_options(segments, data, tolerance, threads, device) if replay else None
    with open_reader(ledger_opts) as ledger:
        result = audit(ledger, model, run_id=run_id, checkpoints=checkpoints, replay=options)
    written = None
    if report_dir is not None:
        from llmchain.report import write_report  # matplotlib loads only when a report is asked for

        written = write_report(result, report_dir)
    lines = _audit_lines(result) + ([f"report: {written}"] if written else [])
    emit(as_json, {"ok": result.ok, "report": written, **jsonable(result)}, lines)
    if not result.ok:
        raise click.exceptions.Exit(1)


def _replay_options(
    segments: str, data: Path | None, tolerance: float | None, threads: int | None, device: str
) -> ReplayOptions:
    from llmchain.errors import BadInput
    from llmchain.replay import DEFAULT_TOLERANCE, ReplayOptions

    if segments != "all" and not (segments.isdigit() and int(segments) > 0):
        raise BadInput(f"--segments {segments!r}: give a positive number or 'all'")
    if tolerance is not None and not tolerance > 0:
        raise BadInput(f"--tolerance {tolerance}: give a positive number, e.g. 1e-4")
    return ReplayOptions(
        segments=None if segments == "all" else int(segments),
        data=data,
        tolerance=DEFAULT_TOLERANCE if tolerance is None else tolerance,
        threads=threads,
        device=device,
    )


def _verify_lines(result: VerifyResult) -> list[str]:
    lines = [f"{'OK' if result.ok else 'FAILED'}  {result.path}", f"  weights  {result.digest} ({result.tensors} tensors)"]
    cp = result.checkpoint
    if cp is not None and result.model is not None and result.run is not None:
        lines += [
            f"  model    {result.model.name} (id {result.model.id})",
            f"  run      {cp.run_id} ({result.run.status.name.lower()}), checkpoint #{cp.index}, step {cp.step}",
            f"  val loss {loss_text(cp.val_loss)}",
            f"  committed by {cp.committer} at {when_text(cp.timestamp)} (block {cp.block_number})",
            f"  status   {cp.status.name.lower()}",
            "  releases " + (", ".join(f"{r.label} ({r.status.name.lower()})" for r in result.releases) or "none"),
        ]
    if result.expected is not None:
        lines.append(f"  expected {checkpoint_line(result.expected)}")
    lines += [f"  ! {problem}" for problem in result.problems]
    lines += [f"  warning: {warning}" for warning in result.warnings]
    if result.diff is not None:
        from llmchain.verify import describe_diff

        lines.append(f"  tensors vs {result.diff_source}: {describe_diff(result.diff)}")
    return lines


def _tensor_lines(result: TensorResult) -> list[str]:
    lines = [f"{'OK' if result.ok else 'FAILED'}  tensor {result.tensor!r} of {result.path}", f"  root     {result.root}"]
    if result.proof is not None and result.leaf is not None:
        lines += [
            f"  leaf     {result.leaf.leaf_hash.hex()} ({result.leaf.dtype} {list(result.leaf.shape)})",
            f"  proof    leaf {result.proof.index} of {result.proof.size}, {len(result.proof.siblings)} siblings from {result.manifest}",
            f"  checked  python {'ok' if result.proof_ok else 'FAILED'}, on-chain verifyTensorProof {'ok' if result.onchain_ok else 'FAILED'}",
        ]
    if result.checkpoint is not None:
        lines.append(f"  checkpoint {checkpoint_line(result.checkpoint)}")
    lines += [f"  ! {problem}" for problem in result.problems]
    return lines


def _audit_lines(result: AuditReport) -> list[str]:
    lines = [f"Audit of {result.model.name} (model {result.model.id}): {'PASSED' if result.ok else 'FAILED'}", ""]
    lines += [f"  [{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}" for c in result.checks]
    lines += ["", "Lineage:"]
    for link in result.lineage:
        mark = {True: "verified", False: "NOT VERIFIED", None: "-"}[link.verified]
        lines.append(f"  {link.model.name}: {link.detail} [{mark}]")
    for history in result.runs:
        run = history.run
        spec = run.spec
        lines += ["", f"Run {run.id} ({run.status.name.lower()}) by {run.trainer}, started {when_text(run.started_at)}",
                  f"  config {spec.config_digest}", f"  dataset {spec.dataset_digest}", f"  code {spec.code_digest}",
                  f"  environment {spec.env_digest}"]
        if spec.base_checkpoint is not None:
            lines.append(f"  base checkpoint {spec.base_checkpoint}")
        if history.problem:
            lines.append(f"  history refused: {history.problem}")
        lines += [f"  {line}" for line in _timeline(history.checkpoints)]
    lines += ["", "Releases:"] + ([f"  {release_line(r)}" for r in result.releases] or ["  none"])
    if result.local:
        lines += ["", "Local checkpoints:"]
        lines += [f"  {m.status:<11} {m.path or f'run {m.run_id} step {m.step}'}: {m.detail}" for m in result.local]
    if result.run_records:
        lines += ["", "Run records:"]
    for match in result.run_records:
        verdict = "matches" if not match.mismatched else f"DOES NOT match ({', '.join(match.mismatched)})"
        lines.append(f"  run {match.run_id}: {match.path} {verdict} the committed digests")
    if result.replay:
        lines += ["", "Replay:"]
        for s in result.replay:
            lines.append(f"  run {s.run_id} steps {s.from_step}->{s.to_step}: {s.test} test, {'ok' if s.ok else 'FAILED'}: {s.detail}")
    return lines


def _timeline(checkpoints: Sequence[Checkpoint]) -> list[str]:
    """Checkpoint lines; a long run shows its first and last TIMELINE_LINES (JSON and --report have all)."""
    if len(checkpoints) <= 2 * TIMELINE_LINES:
        return [checkpoint_line(c) for c in checkpoints]
    hidden = len(checkpoints) - 2 * TIMELINE_LINES
    return ([checkpoint_line(c) for c in checkpoints[:TIMELINE_LINES]]
            + [f"… {hidden} more checkpoints (see --json or --report)"]
            + [checkpoint_line(c) for c in checkpoints[-TIMELINE_LINES:]])
