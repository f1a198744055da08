"""Decode revert data into ``ContractRevert("ErrorName(arg=value, ...)")``.

web3.py hands back custom errors as raw hex, so we decode them from the contract ABI ourselves.
Besides the ABI's custom errors, Solidity's two built-ins are known: ``Error(string)`` (``require``
with a message, ``revert("...")``) and ``Panic(uint256)`` (assert, overflow, division by zero...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from eth_abi import decode as abi_decode
from eth_abi.exceptions import DecodingError
from eth_utils import function_signature_to_4byte_selector, to_checksum_address, to_hex

from llmchain.artifacts import abi_type
from llmchain.errors import ContractRevert

PANIC_REASONS = {
    0x00: "generic compiler panic",
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "invalid enum value",
    0x22: "invalid storage byte array",
    0x31: "pop on an empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an uninitialised function",
}

_BUILTIN_ERRORS: list[dict[str, Any]] = [
    {"type": "error", "name": "Error", "inputs": [{"name": "reason", "type": "string"}]},
    {"type": "error", "name": "Panic", "inputs": [{"name": "code", "type": "uint256"}]},
]


class RevertDecoder:
    """Maps 4-byte selectors to the custom errors of one or more ABIs, plus Error and Panic."""

    def __init__(self, abis: Iterable[Sequence[Mapping[str, Any]]] = ()) -> None:
        self._errors: dict[bytes, Mapping[str, Any]] = {}
        for entry in [*_BUILTIN_ERRORS, *(e for abi in abis for e in abi)]:
            if entry.get("type") == "error":
                self._errors[_selector(entry)] = entry

    def decode(self, data: bytes) -> ContractRevert:
        """The ``ContractRevert`` for revert data ``data`` (empty, unknown or malformed included)."""
        if not data:
            return ContractRevert("Revert", {}, "reverted without a reason")
        error = self._errors.get(data[:4])
        if error is None:
            return _unknown(data)
        inputs = error["inputs"]
        try:
            values = abi_decode([abi_type(i) for i in inputs], data[4:])
        except (DecodingError, OverflowError, ValueError):
            return _unknown(data)
        names = [i.get("name") or f"arg{n}" for n, i in enumerate(inputs)]
        args = {name: _plain(value, i) for name, value, i in zip(names, values, inputs)}
        rendered = ", ".join(f"{n}={_render(args[n], i)}" for n, i in zip(names, inputs))
        message = f"{error['name']}({rendered})"
        if error["name"] == "Panic" and args["code"] in PANIC_REASONS:
            message += f": {PANIC_REASONS[args['code']]}"
        return ContractRevert(error["name"], args, message)


def _selector(error: Mapping[str, Any]) -> bytes:
    types = ",".join(abi_type(i) for i in error["inputs"])
    return function_signature_to_4byte_selector(f"{error['name']}({types})")


def _plain(value: Any, param: Mapping[str, Any]) -> Any:
    """Decoded ABI value -> plain Python: hex for bytes, checksum addresses, dicts for structs."""
    kind = str(param["type"])
    if kind.endswith("]"):
        element = {**param, "type": kind[: kind.rindex("[")]}
        return [_plain(v, element) for v in value]
    if kind == "tuple":
        return {c["name"]: _plain(v, c) for v, c in zip(value, param["components"])}
    if kind == "address":
        return to_checksum_address(value)
    if isinstance(value, bytes):
        return to_hex(value)
    return value


def _render(value: Any, param: Mapping[str, Any]) -> str:
    """One plain value as it appears in the message: strings quoted, structs as ``(k=v, ...)``."""
    kind = str(param["type"])
    if kind.endswith("]"):
        element = {**param, "type": kind[: kind.rindex("[")]}
        return "[" + ", ".join(_render(v, element) for v in value) + "]"
    if kind == "tuple":
        fields = (f"{c['name']}={_render(value[c['name']], c)}" for c in param["components"])
        return "(" + ", ".join(fields) + ")"
    if kind == "string":
        return repr(value)
    return str(value)


def _unknown(data: bytes) -> ContractRevert:
    hex_data = to_hex(data)
    return ContractRevert(
        "UnknownError", {"data": hex_data}, f"reverted with an error this ABI does not know: {hex_data}"
    )
