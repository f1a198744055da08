"""Send a contract transaction or make a view call, and turn every failure into one of our errors.

A transaction counts as done only when its receipt says ``status == 1``: a node mines a failing
transaction that had an explicit gas limit with status 0 and raises nothing. Reverts become
``ContractRevert`` with the decoded custom error; a status-0 receipt is replayed as a call at its
block to recover the revert data.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

import requests
from eth_utils import to_bytes, to_hex
from web3 import Web3
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError
from web3.types import TxParams, TxReceipt

from llmchain.chain.accounts import Signer
from llmchain.chain.revert import RevertDecoder
from llmchain.errors import ContractRevert, LedgerError

RECEIPT_TIMEOUT_S = 120.0
"""How long to wait for a remote node to mine a transaction."""

GAS_MARGIN = 1.2
"""Headroom over a node's gas estimate (estimates are exact for the state they ran on)."""


def send_transaction(
    w3: Web3,
    signer: Signer,
    call: ContractFunction | ContractConstructor,
    *,
    defaults: TxParams,
    decoder: RevertDecoder,
) -> TxReceipt:
    """Sign and send ``call``, wait for the receipt and insist on success."""
    params: TxParams = {"from": signer.address, **defaults}
    with reverts_decoded(decoder):
        if "gas" not in params:
            params["gas"] = int(call.estimate_gas(params) * GAS_MARGIN)
        transaction = call.build_transaction(params)
        tx_hash = signer.send(w3, transaction)
        try:
            receipt = w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=RECEIPT_TIMEOUT_S, poll_latency=0.1
            )
        except TimeExhausted:
            raise LedgerError(
                f"transaction {to_hex(tx_hash)} was not mined within {RECEIPT_TIMEOUT_S:g} s; "
                "check the node, then look the transaction up before retrying"
            ) from None
    if receipt["status"] != 1:
        raise _replay_failure(w3, transaction, receipt, decoder)
    return receipt


def call_view(call: ContractFunction, sender: str, decoder: RevertDecoder) -> Any:
    """Run a view function (no transaction) and return its decoded result."""
    with reverts_decoded(decoder):
        return call.call({"from": sender})


@contextmanager
def reverts_decoded(decoder: RevertDecoder) -> Iterator[None]:
    """Map web3's revert and transport exceptions to ``ContractRevert`` / ``LedgerError``."""
    try:
        yield
    except ContractLogicError as error:
        raise _decode(decoder, error.data, str(error)) from None
    except Web3RPCError as error:
        detail: dict[str, Any] = dict((error.rpc_response or {}).get("error") or {})
        data = detail.get("data")
        if isinstance(data, str) and data.startswith("0x"):
            raise decoder.decode(to_bytes(hexstr=data)) from None
        reason = detail.get("message") or error.message
        raise LedgerError(f"the chain refused the request: {reason}") from None
    except requests.RequestException as error:
        raise LedgerError(f"lost the connection to the node ({type(error).__name__})") from None


def _decode(decoder: RevertDecoder, data: object, message: str) -> Exception:
    if isinstance(data, str) and data.startswith("0x"):
        return decoder.decode(to_bytes(hexstr=data))
    return decoder.decode(b"") if "revert" in message else LedgerError(message)


def _replay_failure(w3: Web3, transaction: TxParams, receipt: TxReceipt, decoder: RevertDecoder) -> Exception:
    """Re-run a status-0 transaction as a call on its parent block to recover the revert data."""
    fields = ("from", "to", "data", "value", "gas")
    replay = cast(TxParams, {k: v for k, v in transaction.items() if k in fields})
    try:
        with reverts_decoded(decoder):
            w3.eth.call(replay, receipt["blockNumber"] - 1)
    except ContractRevert as revert:
        return revert
    except LedgerError as failure:  # e.g. out of gas: no revert data, only the node's words
        detail = f"replayed: {failure}"
    else:
        detail = "replaying it did not reproduce the failure"
    return LedgerError(
        f"transaction {to_hex(receipt['transactionHash'])} failed on-chain (status 0, "
        f"{receipt['gasUsed']} of {transaction['gas']} gas used; {detail})"
    )
