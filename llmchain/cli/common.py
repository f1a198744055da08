"""What every ledger-using command shares: connection options, opening the ledger, rendering.

Commands take ``@ledger_options`` (``--ledger``, ``--rpc-url``, ``--account``, ``--keystore``,
``--chain-id``, ``--registry``, each with an environment variable) and ``@json_option``, then open
the ledger with ``with open_ledger(options) as ledger:`` (``open_reader`` for commands that only
read). ``emit`` prints either JSON (any mix of dataclasses, enums, bytes and plain values) or the
human lines the command wrote.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from llmchain.ledger import Ledger
    from llmchain.records import LedgerReader

F = TypeVar("F", bound=Callable[..., Any])


@dataclasses.dataclass(frozen=True)
class LedgerOptions:
    """Where the ledger is and who signs; collected from the shared options."""

    ledger: Path | None
    rpc_url: str | None
    account: str | None
    keystore: Path | None
    chain_id: int | None
    registry: str | None

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`llmchain.chain.connect`."""
        account: str | int | None = self.account
        if isinstance(account, str) and account.isdigit():
            account = int(account)
        kwargs: dict[str, Any] = {
            "ledger_dir": self.ledger,
            "rpc_url": self.rpc_url,
            "account": account,
            "chain_id": self.chain_id,
        }
        if self.keystore is not None:
            kwargs["keystore"] = self.keystore
            kwargs["password"] = _prompt_password
        if self.registry is not None:
            kwargs["registry_address"] = self.registry
        return kwargs


def _prompt_password() -> str:
    return str(click.prompt("Keystore password", hide_input=True, err=True))


_LEDGER_PARAMS: list[Callable[[F], F]] = [
    click.option(
        "--ledger",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="LLMCHAIN_HOME",
        help="Embedded ledger directory (default ./.llmchain; env LLMCHAIN_HOME).",
    ),
    click.option(
        "--rpc-url",
        envvar="LLMCHAIN_RPC_URL",
        help="Use an Ethereum JSON-RPC node instead of the embedded ledger (env LLMCHAIN_RPC_URL).",
    ),
    click.option(
        "--account",
        envvar="LLMCHAIN_ACCOUNT",
        help="Sender: a dev-account index or an address unlocked on the node (env LLMCHAIN_ACCOUNT).",
    ),
    click.option(
        "--keystore",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar="LLMCHAIN_KEYSTORE",
        help="Encrypted key file for a node; password from LLMCHAIN_KEYSTORE_PASSWORD or a prompt.",
    ),
    click.option("--chain-id", type=int, help="Refuse to run unless the chain has this id."),
    click.option("--registry", help="Registry address on the node (default: the address book entry)."),
]


def ledger_options(command: F) -> F:
    """Add the shared connection options; the command receives them as ``ledger_opts``."""

    @functools.wraps(command)  # also carries the click params of decorators applied before this one
    def collect(**kwargs: Any) -> Any:
        names = [f.name for f in dataclasses.fields(LedgerOptions)]
        opts = LedgerOptions(**{name: kwargs.pop(name) for name in names})
        return command(ledger_opts=opts, **kwargs)

    wrapped: Any = collect
    for param in reversed(_LEDGER_PARAMS):
        wrapped = param(wrapped)
    return wrapped  # type: ignore[no-any-return]


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")


@contextmanager
def open_ledger(options: LedgerOptions) -> Iterator[Ledger]:
    """Connect as the options say and yield a :class:`~llmchain.ledger.Ledger`; always closes."""
    from llmchain.chain import connect
    from llmchain.ledger import Ledger

    with connect(**options.connect_kwargs()) as conn:
        yield Ledger(conn)


@contextmanager
def open_reader(options: LedgerOptions) -> Iterator[LedgerReader]:
    """A client for reads only: the embedded ledger's database read directly when the options are
    the defaults (no web3 to import, about a second sooner), else the full client, which also
    creates, upgrades or explains a ledger the direct reader cannot open."""
    if all(value is None for value in (options.rpc_url, options.account, options.keystore, options.chain_id, options.registry)):
        from llmchain.snapshot import StateUnavailable, open_snapshot

        try:
            snapshot = open_snapshot(options.ledger)
        except StateUnavailable:
            pass
        else:
            with snapshot:
                yield snapshot
            return
    with open_ledger(options) as ledger:
        yield ledger


def jsonable(value: Any) -> Any:
    """Dataclasses, enums, bytes, paths and containers as plain JSON values (bytes as 0x hex)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.name.lower().replace("_", "-")
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def emit(as_json: bool, data: Any, lines: Sequence[str] | Callable[[], Sequence[str]]) -> None:
    """Print ``data`` as JSON, or the human-readable ``lines`` (a list or a function making one)."""
    if as_json:
        click.echo(json.dumps(jsonable(data), indent=2))
        return
    for line in lines() if callable(lines) else lines:
        click.echo(line)
