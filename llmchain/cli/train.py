"""``llmchain train``, ``llmchain sync`` and ``llmchain generate``: parse, call the library, render."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import click

from llmchain.cli.common import LedgerOptions, emit, json_option, ledger_options, open_ledger


def _ledger_flags(opts: LedgerOptions) -> str:
    """The connection flags to repeat in the follow-up commands we print."""
    flags = []
    if opts.ledger is not None:
        flags.append(f"--ledger {opts.ledger}")
    if opts.rpc_url is not None:
        flags.append(f"--rpc-url {opts.rpc_url}")
    return "".join(" " + f for f in flags)


@contextlib.contextmanager
def _ledger_if_main(opts: LedgerOptions) -> Iterator[Any]:
    """Rank 0 of a distributed run (or a plain run) connects; other ranks train without a ledger."""
    from llmchain.train import Distributed

    if not Distributed.from_env().is_main:
        yield None
        return
    with open_ledger(opts) as ledger:
        yield ledger


class _Renderer:
    """A tqdm bar over steps (loss, tokens/s) plus one line per checkpoint, commit and ledger delay."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None

    def __call__(self, event: Any) -> None:
        if self.quiet:
            return
        if event.kind == "step":
            self._step(event)
        elif event.kind == "eval":
            self._line(f"step {event.step:>6}  val loss {event.val_loss:.4f}")
        elif event.kind == "checkpoint":
            self._line(f"step {event.step:>6}  saved {event.message}")
        elif event.kind in ("commit", "recovered"):
            self._line(f"step {event.step:>6}  {event.message} on the ledger")
        elif event.kind in ("ledger_slow", "ledger_wait", "ledger_error"):
            self._line(f"ledger: {event.message}")

    def _step(self, event: Any) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=event.max_steps, initial=event.step - 1, unit="step", dynamic_ncols=True)
        self.bar.set_postfix_str(f"loss {event.loss:.3f}, {event.tokens_per_s:,.0f} tok/s", refresh=False)
        self.bar.update(1)

    def _line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text)
        else:
            click.echo(text, err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@click.command("train")
@click.option("--preset", type=click.Choice(["tiny", "small", "medium"]), help="Model and schedule size (default tiny: 2-3 min on 2 CPU cores).")
@click.option("--data", type=click.Path(path_type=Path), help="Text file, directory of text files or JSONL with a 'text' field (default: this Python's standard library source).")
@click.option("--model", "model_name", help="Model name on the ledger, registered if new (default llmchain/tiny-gpt).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Run directory (default runs/<model>, numbered when taken).")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its latest checkpoint, committing anything pending first.")
@click.option("--steps", type=int, help="Optimizer steps.")
@click.option("--checkpoint-every", type=int, help="Steps between checkpoints (each is validated and committed).")
@click.option("--batch-size", type=int, help="Sequences per batch per process.")
@click.option("--block-size", type=int, help="Context length in tokens.")
@click.option("--learning-rate", type=float, help="Peak learning rate.")
@click.option("--seed", type=int, help="Seed for init, batch order and dropout (default: a fresh one per run, recorded; 1337 under torchrun).")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), help="Default: cuda when present (bf16 autocast), else cpu.")
@click.option("--init-from", help="Fine-tune from a checkpoint path or NAME@LABEL (verified on the ledger first).")
@click.option("--distill-from", help="Distill from a teacher checkpoint path or NAME@LABEL (verified first).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@ledger_options
@json_option
def train_command(ledger_opts: LedgerOptions, as_json: bool, quiet: bool, preset: str | None, out: Path | None,
                  model_name: str | None, **flags: Any) -> None:
    """Train a GPT on the ledger: every checkpoint's digests are committed on-chain.

    With no arguments, trains the tiny preset on the standard library's source, commits six
    checkpoints to the embedded ledger in ./.llmchain and prints how to verify and audit them.
    Runs under torchrun too (only rank 0 writes and commits).

    \b
    Examples:
      llmchain train
      llmchain train --resume
      llmchain train --data notes/ --model me/notes-gpt --steps 3000
      llmchain train --init-from llmchain/tiny-gpt@v1 --data mycode/ --steps 500
      torchrun --nproc_per_node 2 -m llmchain train --steps 300
    """
    from llmchain.train import DEFAULT_MODEL, PRESETS, TrainRequest, default_run_dir, fresh_seed, train

    overrides = {
        "max_steps": flags.pop("steps"), "checkpoint_every": flags.pop("checkpoint_every"),
        "batch_size": flags.pop("batch_size"), "block_size": flags.pop("block_size"),
        "learning_rate": flags.pop("learning_rate"), "seed": flags.pop("seed"),
    }
    if not flags["resume"] and overrides["seed"] is None:
        overrides["seed"] = fresh_seed()  # a new run gets its own weights; --seed N reproduces one
    chosen = {k: v for k, v in overrides.items() if v is not None}
    config = replace(PRESETS[preset or "tiny"], **chosen) if (preset or chosen) else None
    name_for_dir = model_name or DEFAULT_MODEL
    run_dir = out or default_run_dir(name_for_dir, resume=flags["resume"])
    renderer = _Renderer(quiet or as_json)
    with _ledger_if_main(ledger_opts) as ledger:
        try:
            result = train(TrainRequest(run_dir=run_dir, config=config, model_name=model_name, **flags),
                           ledger=ledger, on_progress=renderer)
        finally:
            renderer.close()
    if ledger is None:
        return
    last = result.checkpoints[-1] if result.checkpoints else None
    first_val, last_val = (result.val_losses[0][1], result.val_losses[-1][1]) if result.val_losses else (None, None)
    flags_text = _ledger_flags(ledger_opts)

    def lines() -> list[str]:
        out_lines = [
            f"Trained {result.model_name} (run {result.run_id}) in {result.run_dir}: "
            f"{len(result.checkpoints)} checkpoint(s), {result.committed} committed, {result.tokens_per_s:,.0f} tok/s, {result.wall_s:.0f}s",
        ]
        if first_val is not None:
            out_lines.append(f"Validation loss {first_val:.3f} -> {last_val:.3f} (step {result.val_losses[0][0]} -> {result.val_losses[-1][0]})")
        if result.pending:
            out_lines.append(f"{result.pending} checkpoint(s) still pending: llmchain sync {result.run_dir}{flags_text}")
        if last is not None:
            out_lines += [
                "Verify the weights:  llmchain verify " + str(last.weights_path) + flags_text,
                "Audit the history:   llmchain audit " + result.model_name + flags_text,
                "Sample from it:      llmchain generate --checkpoint " + str(last.path) + ' --prompt "def "' + flags_text,
            ]
        return out_lines

    emit(as_json, result, lines)


@click.command("sync")
@click.argument("run_dirs", nargs=-1, type=click.Path(file_okay=False, path_type=Path))
@ledger_options
@json_option
def sync_command(ledger_opts: LedgerOptions, as_json: bool, run_dirs: tuple[Path, ...]) -> None:
    """Commit checkpoints a crash left pending in the outbox of each run (default: all under runs/).

    \b
    Example:
      llmchain sync runs/tiny-gpt
    """
    from llmchain.hook import find_runs, sync_run

    targets = list(run_dirs) or find_runs(Path("runs"))
    with open_ledger(ledger_opts) as ledger:
        done = {str(d): [e.step for e in sync_run(d, ledger)] for d in targets}
    emit(as_json, done, lambda: [
        f"{d}: committed {len(steps)} pending checkpoint(s)" + (f" (steps {', '.join(map(str, steps))})" if steps else "")
        for d, steps in done.items()
    ] or ["no run directories found under runs/"])  # fmt: skip


@click.command("generate")
@click.option("--checkpoint", required=True, type=click.Path(path_type=Path), help="Checkpoint directory or its model.safetensors.")
@click.option("--prompt", default="", help="Text to continue.")
@click.option("--tokens", "max_new_tokens", default=200, show_default=True, help="Bytes to generate.")
@click.option("--temperature", default=0.8, show_default=True)
@click.option("--top-k", default=40, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--allow-unverified", is_flag=True, help="Sample even if the weights are unknown to the ledger or revoked.")
@ledger_options
@json_option
def generate_command(ledger_opts: LedgerOptions, as_json: bool, checkpoint: Path, prompt: str, **options: Any) -> None:
    """Sample text from a checkpoint after verifying its weights against the ledger.

    Unknown or revoked weights are refused (exit 1) unless --allow-unverified.

    \b
    Example:
      llmchain generate --checkpoint runs/tiny-gpt/ckpt-001500 --prompt "def "
    """
    from llmchain.train import generate

    with open_ledger(ledger_opts) as ledger:
        result = generate(checkpoint, prompt, ledger=ledger, **options)
    if result.warning and not as_json:
        click.echo(f"Warning: {result.warning}; sampling anyway (--allow-unverified)", err=True)
    emit(as_json, result, [result.text])
