"""Ledger commands: set up the ledger, register models, manage roles, runs, releases, revocations.

Each command parses, calls :class:`llmchain.ledger.Ledger` (or the chain layer for ``init`` and
``deploy``), and renders text or ``--json``. Failures are ``LLMChainError`` subclasses that the
CLI group turns into one line and an exit code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from llmchain.cli.common import LedgerOptions, emit, json_option, ledger_options, open_ledger, open_reader
from llmchain.cli.render import checkpoint_line, model_lines, release_line, run_lines
from llmchain.errors import BadInput, VerificationFailed
from llmchain.records import Digest, Lineage, Relation

_RELATIONS = [r.label for r in Relation if r is not Relation.NONE]


# ------------------------------------------------------------------ parsing helpers


def parse_digest(text: str) -> Digest | bytes:
    """``ALGORITHM:HEX`` as a Digest, or bare 64-hex (optionally 0x) as raw bytes."""
    if ":" in text:
        algorithm, _, value = text.partition(":")
        return Digest.from_hex(algorithm, value)
    return Digest.from_hex("unknown", text).value


def _digest_arg(ctx: click.Context, param: click.Parameter, value: str | None) -> Digest | bytes | None:
    return None if value is None else parse_digest(value)


def _split_release(target: str) -> tuple[str, str] | None:
    """``MODEL@LABEL`` → (model, label); None when ``target`` is not of that form."""
    model, sep, label = target.rpartition("@")
    return (model, label) if sep and model and label else None


# ------------------------------------------------------------------ commands: set-up


@click.command("init")
@click.option(
    "--ledger", type=click.Path(file_okay=False, path_type=Path), envvar="LLMCHAIN_HOME",
    help="Embedded ledger directory (default ./.llmchain; env LLMCHAIN_HOME).",
)  # fmt: skip
@json_option
def init_command(ledger: Path | None, as_json: bool) -> None:
    """Create the embedded ledger and deploy the registry (done on first use anyway).

    \b
    Example:
      llmchain init --ledger ~/.llmchain
    """
    from llmchain.chain import init_ledger

    info = init_ledger(ledger)
    verb = "created" if info.created else "already there"
    emit(as_json, info, [
        f"ledger {verb}: {info.directory}",
        f"  chain id {info.chain_id}, registry {info.registry}, block {info.block_number}",
    ])  # fmt: skip


@click.command("deploy")
@ledger_options
@click.option("--force", is_flag=True, help="Deploy even if the address book already has a registry for this chain.")
@json_option
def deploy_command(ledger_opts: LedgerOptions, force: bool, as_json: bool) -> None:
    """Deploy the registry on a JSON-RPC node and record its address for that chain id.

    \b
    Example:
      llmchain deploy --rpc-url http://127.0.0.1:8545 --account 0
    """
    from llmchain.chain import deploy_registry

    if ledger_opts.rpc_url is None:
        raise BadInput("deploy needs --rpc-url URL (the embedded ledger deploys its own registry: llmchain init)")
    kwargs = ledger_opts.connect_kwargs()
    kwargs.pop("registry_address", None)
    deployment = deploy_registry(**kwargs, force=force)
    emit(as_json, deployment, [f"registry deployed at {deployment.address} on chain {deployment.chain_id}"])


# ------------------------------------------------------------------ commands: models and roles


@click.command("register")
@click.argument("name")
@click.option("--card", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Model card file; its sha256 is recorded.")
@click.option("--card-digest", callback=_digest_arg, help="Model card digest as ALGORITHM:HEX (instead of --card).")
@click.option("--parent", help="Parent model (name or id) this one derives from.")
@click.option("--parent-checkpoint", callback=_digest_arg, help="Parent checkpoint weights digest (HEX or ALGORITHM:HEX).")
@click.option("--relation", type=click.Choice(_RELATIONS), help="How it derives from the parent.")
@ledger_options
@json_option
def register_command(
    name: str,
    card: Path | None,
    card_digest: Digest | bytes | None,
    parent: str | None,
    parent_checkpoint: Digest | bytes | None,
    relation: str | None,
    ledger_opts: LedgerOptions,
    as_json: bool,
) -> None:
    """Register a model NAME (you become its owner).

    \b
    Examples:
      llmchain register acme/tiny-gpt --card MODEL_CARD.md
      llmchain register acme/tiny-gpt-ft --parent acme/tiny-gpt --relation fine-tune \\
          --parent-checkpoint tensor-sha256-c16m-v1:3f5a...
    """
    from llmchain.cards import card_digest as digest_card

    if card is not None and card_digest is not None:
        raise BadInput("give --card or --card-digest, not both")
    card_value = digest_card(card) if card is not None else card_digest
    if isinstance(card_value, bytes):
        raise BadInput("--card-digest needs the algorithm: ALGORITHM:HEX (e.g. sha256:...)")
    with open_ledger(ledger_opts) as ledger:
        lineage = _lineage(ledger, parent, parent_checkpoint, relation)
        model = ledger.register_model(name, card_value, lineage)
        emit(as_json, model, lambda: model_lines(model))


def _lineage(ledger: Any, parent: str | None, checkpoint: Digest | bytes | None, relation: str | None) -> Lineage | None:
    if parent is None and checkpoint is None:
        if relation is not None:
            raise BadInput("--relation needs --parent and/or --parent-checkpoint")
        return None
    if relation is None:
        raise BadInput(f"a parent needs --relation ({', '.join(_RELATIONS)})")
    parent_digest = checkpoint if not isinstance(checkpoint, bytes) else _committed_digest(ledger, checkpoint)
    model_id = ledger.model_id(parent) if parent is not None else None
    return Lineage(Relation.parse(relation), model_id, parent_digest)


def _committed_digest(ledger: Any, value: bytes) -> Digest:
    """A bare digest value names a checkpoint on this ledger, whose record supplies the algorithm."""
    found = ledger.lookup(value)
    if found is None:
        raise BadInput("--parent-checkpoint is not on this ledger: give it as ALGORITHM:HEX for external weights")
    return found.weights_digest


def _set_trainer(model: str, trainer: str, ledger_opts: LedgerOptions, as_json: bool, *, granted: bool) -> None:
    """Grant or withdraw the trainer role, then say what changed."""
    with open_ledger(ledger_opts) as ledger:
        (ledger.grant_trainer if granted else ledger.revoke_trainer)(model, trainer)
    verb = "may now" if granted else "may no longer"
    emit(as_json, {"model": model, "trainer": trainer, "granted": granted}, [f"{trainer} {verb} train {model}"])


@click.command("grant")
@click.argument("model")
@click.argument("trainer")
@ledger_options
@json_option
def grant_command(model: str, trainer: str, ledger_opts: LedgerOptions, as_json: bool) -> None:
    """Let TRAINER (an address) start runs and commit checkpoints for MODEL (owner only).

    \b
    Example:
      llmchain grant acme/tiny-gpt 0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF
    """
    _set_trainer(model, trainer, ledger_opts, as_json, granted=True)


@click.command("ungrant")
@click.argument("model")
@click.argument("trainer")
@ledger_options
@json_option
def ungrant_command(model: str, trainer: str, ledger_opts: LedgerOptions, as_json: bool) -> None:
    """Withdraw TRAINER's role on MODEL (owner only).

    \b
    Example:
      llmchain ungrant acme/tiny-gpt 0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF
    """
    _set_trainer(model, trainer, ledger_opts, as_json, granted=False)


@click.command("transfer")
@click.argument("model")
@click.argument("new_owner")
@ledger_options
@json_option
def transfer_command(model: str, new_owner: str, ledger_opts: LedgerOptions, as_json: bool) -> None:
    """Offer ownership of MODEL to NEW_OWNER; it takes effect when they run `llmchain accept`.

    \b
    Example:
      llmchain transfer acme/tiny-gpt 0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF
    """
    with open_ledger(ledger_opts) as ledger:
        ledger.transfer_ownership(model, new_owner)
    emit(as_json, {"model": model, "pending_owner": new_owner}, [f"{new_owner} may now accept ownership of {model}"])


@click.command("accept")
@click.argument("model")
@ledger_options
@json_option
def accept_command(model: str, ledger_opts: LedgerOptions, as_json: bool) -> None:
    """Accept a pending ownership transfer of MODEL (as the pending owner).

    \b
    Example:
      llmchain accept acme/tiny-gpt --account 1
    """
    with open_ledger(ledger_opts) as ledger:
        ledger.accept_ownership(model)
        owned = ledger.get_model(model)
    emit(as_json, owned, [f"{owned.owner} now owns {owned.name}"])


# ------------------------------------------------------------------ commands: reading


@click.command("show")
@click.argument("model")
@click.option("--limit", default=20, show_default=True, help="Runs and releases to show.")
@ledger_options
@json_option
def show_command(model: str, limit: int, ledger_opts: LedgerOptions, as_json: bool) -> None:
    """Show MODEL: owner, card, lineage, runs and releases.

    \b
    Example:
      llmchain show acme/tiny-gpt --json
    """
    with open_reader(ledger_opts) as ledger:
        found = ledger.get_model(model)
        runs = ledger.list_runs(found.id, 0, limit)
        releases = ledger.list_releases(found.id, 0, limit)

    def lines() -> list[str]:
        out = model_lines(found)
        for run in runs:
            out += run_lines(run)
        out += ["releases:" if releases else "releases: none"] + [f"  {release_line(r)}" for r in releases]
        return out

    emit(as_json, {"model": found, "runs": runs, "releases": releases}, lines)


@click.command("runs")
@click.argument("model")
@click.option("--offset", default=0, show_default=True, help="Skip this many runs.")
@click.option("--limit", default=100, show_default=True, help="Show at most this many runs.")
@ledger_options
@json_option
def runs_command(model: str, offset: int, limit: int, ledger_opts: LedgerOptions, as_json: bool) -> None:
    """List the training runs of MODEL, oldest first.

    \b
    Example:
      llmchain runs acme/tiny-gpt --limit 10
    """
    with open_reader(ledger_opts) as ledger:
        runs = ledger.list_runs(model, offset, limit)
    emit(as_json, runs, lambda: [line for run in runs for line in run_lines(run)] or [f"{model} has no runs"])


@click.command("checkpoints")
@click.argument("run_id", type=int)
@click.option("--offset", default=0, show_default=True, help="Skip this many checkpoints.")
@click.option("--limit", type=int, help="Show at most this many checkpoints.")
@ledger_options
@json_option
def checkpoints_command(run_id: int, offset: int, limit: int | None, ledger_opts: LedgerOptions, as_json: bool) -> None:
    """List the checkpoints of run RUN_ID, checked against the run's on-chain hash-chain head.

    \b
    Example:
      llmchain checkpoints 1 --limit 20
    """
    with open_reader(ledger_opts) as ledger:
        checkpoints = ledger.list_checkpoints(run_id, offset, limit)
    emit(as_json, checkpoints, lambda: [checkpoint_line(c) for c in checkpoints] or [f"run {run_id} has no checkpoints"])


@click.command("lookup")
@click.argument("digest")
@ledger_options
@json_option
def lookup_command(digest: str, ledger_opts: LedgerOptions, as_json: bool) -> None:
    """Find the committed checkpoint with weights DIGEST (HEX or ALGORITHM:HEX); exit 1 if none.

    \b
    Example:
      llmchain lookup 0x3f5a...c2
    """
    value = parse_digest(digest)
    with open_reader(ledger_opts) as ledger:
        found = ledger.lookup(value)
    if found is None:
        raise VerificationFailed(f"{digest} is not on the ledger: no checkpoint with these weights was committed")
    emit(as_json, found, [checkpoint_line(found)])


# ------------------------------------------------------------------ commands: releases and revocation


@click.command("release")
@click.argument("model")
@click.argument("label")
@click.argument("digest")
@ledger_options
@json_option
def release_command(model: str, label: str, digest: str, ledger_opts: LedgerOptions, as_json: bool) -> None:
    """Publish version LABEL of MODEL, naming the committed checkpoint with weights DIGEST.

    \b
    Example:
      llmchain release acme/tiny-gpt 1.0.0 0x3f5a...c2
    """
    with open_ledger(ledger_opts) as ledger:
        release = ledger.release(model, label, parse_digest(digest))
    emit(as_json, release, [f"{model} {release_line(release)}"])


def _change_status(target: str, reason: str, ledger_opts: LedgerOptions, as_json: bool, action: str) -> None:
    """Deprecate or revoke a release (MODEL@LABEL) or a checkpoint (weights digest)."""
    release = _split_release(target)
    with open_ledger(ledger_opts) as ledger:
        if release is not None:
            model, label = release
            getattr(ledger, f"{action}_release")(model, label, reason)
            kind = "release"
        else:
            getattr(ledger, f"{action}_checkpoint")(parse_digest(target), reason)
            kind = "checkpoint"
    past = {"revoke": "revoked", "deprecate": "deprecated"}[action]
    emit(as_json, {"target": target, "kind": kind, "status": past, "reason": reason}, [f"{kind} {target} {past}: {reason}"])


_TARGET_HELP = "MODEL@LABEL for a release, or a checkpoint's weights digest (HEX or ALGORITHM:HEX)."


@click.command("revoke")
@click.argument("target")
@click.option("--reason", required=True, help="Why (1-256 bytes; recorded on-chain in the event).")
@ledger_options
@json_option
def revoke_command(target: str, reason: str, ledger_opts: LedgerOptions, as_json: bool) -> None:
    """Revoke a release or a checkpoint for good (owner only). Revocation is final.

    TARGET is MODEL@LABEL for a release, or a checkpoint's weights digest.

    \b
    Examples:
      llmchain revoke acme/tiny-gpt@1.0.0 --reason "trained on leaked data"
      llmchain revoke 0x3f5a...c2 --reason "corrupted checkpoint"
    """
    _change_status(target, reason, ledger_opts, as_json, "revoke")


@click.command("deprecate")
@click.argument("target")
@click.option("--reason", required=True, help="Why (1-256 bytes; recorded on-chain in the event).")
@ledger_options
@json_option
def deprecate_command(target: str, reason: str, ledger_opts: LedgerOptions, as_json: bool) -> None:
    """Deprecate a release or a checkpoint (owner only); it can still be revoked later.

    TARGET is MODEL@LABEL for a release, or a checkpoint's weights digest.

    \b
    Example:
      llmchain deprecate acme/tiny-gpt@0.9.0 --reason "superseded by 1.0.0"
    """
    _change_status(target, reason, ledger_opts, as_json, "deprecate")
