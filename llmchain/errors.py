"""The project's exceptions: one root, one subclass per exit code.

The CLI maps each class to its exit code and prints ``str(error)`` as one line, so every message
must say what is wrong and what to do next. The library raises these and never prints.
"""

from __future__ import annotations


class LLMChainError(Exception):
    """Root of every error llmchain raises on purpose."""

    exit_code: int = 3


class VerificationFailed(LLMChainError):
    """Weights or history do not match the ledger (exit 1)."""

    exit_code = 1


class BadInput(LLMChainError):
    """The user's input is wrong: a path, a name, a digest, a flag (exit 2)."""

    exit_code = 2


class LedgerError(LLMChainError):
    """The ledger or chain could not do what was asked (exit 3)."""

    exit_code = 3


class LedgerBusy(LedgerError):
    """Another process holds the embedded ledger for longer than we are willing to wait."""


class ContractRevert(LedgerError):
    """A transaction or call reverted; ``name`` and ``args`` hold the decoded custom error."""

    def __init__(self, name: str, args: dict[str, object], message: str) -> None:
        super().__init__(message)
        self.name = name
        self.args_by_name = args
