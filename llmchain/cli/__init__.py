"""The ``llmchain`` command line: a click group whose subcommands live in sibling modules.

Subcommands are imported only when invoked, so ``llmchain digest`` never pays for importing web3
or torch. Every known failure is an :class:`~llmchain.errors.LLMChainError`; the group turns it
into one line on stderr and the exit code its class names (0 ok, 1 verification failed,
2 bad input, 3 ledger/chain error). Nothing here computes: commands parse, call the library, render.
"""

from __future__ import annotations

import gc
import importlib
import os
from typing import Any

import click

# Before any command loads torch (train, generate, audit --replay): idle OpenMP threads sleep
# instead of spinning. Results are unchanged; on a busy machine spinning threads stall each step
# several-fold (measured: 10-20 s vs 3.4 s for 40 training steps).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from llmchain import __version__  # noqa: E402
from llmchain.errors import LLMChainError  # noqa: E402

# command name -> "module:attribute" of a click.Command; the module is imported on first use.
COMMANDS: dict[str, str] = {}


def register(name: str, target: str) -> None:
    """Add a lazily imported subcommand (used below; kept public so plugins can extend)."""
    COMMANDS[name] = target


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand runs or shows help."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(super().list_commands(ctx)))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module_name, attr = COMMANDS[cmd_name].split(":")
            command: click.Command = getattr(importlib.import_module(module_name), attr)
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LLMChainError as err:
            click.echo(f"Error: {err}", err=True)
            ctx.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(130)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="llmchain")
def cli() -> None:
    """llmchain: a blockchain-anchored model registry and training ledger.

    \b
    Train with on-chain checkpoint commits, then verify and audit:
      llmchain train
      llmchain verify runs/tiny/ckpt-000500/model.safetensors
      llmchain audit llmchain/tiny-gpt

    The ledger is an embedded chain in ./.llmchain (or --ledger DIR / LLMCHAIN_HOME) unless
    --rpc-url (or LLMCHAIN_RPC_URL) names an Ethereum JSON-RPC node.
    """


def main() -> None:
    """Console-script entry point."""
    try:
        cli(prog_name="llmchain")
    finally:
        # Skip the cyclic garbage collection of every object at interpreter exit (~8 ms of a
        # 60 ms `llmchain digest`); commands close their files and ledgers explicitly.
        gc.freeze()


# Subcommands, by module. Each module owns its commands' parsing and rendering only.
for _name, _target in {
    "init": "llmchain.cli.ledger:init_command",
    "deploy": "llmchain.cli.ledger:deploy_command",
    "register": "llmchain.cli.ledger:register_command",
    "grant": "llmchain.cli.ledger:grant_command",
    "ungrant": "llmchain.cli.ledger:ungrant_command",
    "transfer": "llmchain.cli.ledger:transfer_command",
    "accept": "llmchain.cli.ledger:accept_command",
    "show": "llmchain.cli.ledger:show_command",
    "runs": "llmchain.cli.ledger:runs_command",
    "checkpoints": "llmchain.cli.ledger:checkpoints_command",
    "lookup": "llmchain.cli.ledger:lookup_command",
    "release": "llmchain.cli.ledger:release_command",
    "revoke": "llmchain.cli.ledger:revoke_command",
    "deprecate": "llmchain.cli.ledger:deprecate_command",
    "digest": "llmchain.cli.digest:digest",
    "diff": "llmchain.cli.digest:diff_command",
    "prove": "llmchain.cli.digest:prove_command",
    "verify-proof": "llmchain.cli.digest:verify_proof_command",
    "verify": "llmchain.cli.verify:verify_command",
    "audit": "llmchain.cli.verify:audit_command",
    "train": "llmchain.cli.train:train_command",
    "sync": "llmchain.cli.train:sync_command",
    "generate": "llmchain.cli.train:generate_command",
}.items():
    register(_name, _target)

if __name__ == "__main__":  # pragma: no cover
    main()
