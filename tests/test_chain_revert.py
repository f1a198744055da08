"""Revert decoding: custom errors by name and arguments, Error(string), Panic, and the odd cases."""

from __future__ import annotations

import pytest
from chain_support import PROBE_ABI, deploy_probe
from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

from llmchain.chain import Connection
from llmchain.chain.revert import RevertDecoder
from llmchain.errors import ContractRevert, LedgerError

ACCOUNT = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
STRUCT_ERROR = {
    "type": "error",
    "name": "Bad",
    "inputs": [
        {
            "name": "digest",
            "type": "tuple",
            "components": [
                {"name": "algorithm", "type": "bytes32"},
                {"name": "value", "type": "bytes32"},
            ],
        },
        {"name": "steps", "type": "uint64[]"},
        {"name": "label", "type": "string"},
    ],
}


def _data(signature: str, types: list[str], values: list[object]) -> bytes:
    return function_signature_to_4byte_selector(signature) + encode(types, values)


def test_custom_error_decodes_to_name_and_named_arguments() -> None:
    data = _data("ChainProbeRejected(address,uint256)", ["address", "uint256"], [ACCOUNT, 7])
    error = RevertDecoder([PROBE_ABI]).decode(data)
    assert isinstance(error, ContractRevert) and isinstance(error, LedgerError)
    assert error.name == "ChainProbeRejected"
    assert error.args_by_name == {"account": ACCOUNT, "value": 7}
    assert str(error) == f"ChainProbeRejected(account={ACCOUNT}, value=7)"


def test_struct_array_and_string_arguments_render_readably() -> None:
    data = _data(
        "Bad((bytes32,bytes32),uint64[],string)",
        ["(bytes32,bytes32)", "uint64[]", "string"],
        [(b"\x01" * 32, b"\x02" * 32), [3, 4], "it's"],
    )
    error = RevertDecoder([[STRUCT_ERROR]]).decode(data)
    assert error.args_by_name == {
        "digest": {"algorithm": "0x" + "01" * 32, "value": "0x" + "02" * 32},
        "steps": [3, 4],
        "label": "it's",
    }
    assert str(error) == (
        f"Bad(digest=(algorithm=0x{'01' * 32}, value=0x{'02' * 32}), steps=[3, 4], label=\"it's\")"
    )


def test_error_string_and_panic_are_known_without_an_abi() -> None:
    decoder = RevertDecoder()
    reason = decoder.decode(_data("Error(string)", ["string"], ["0xnot hex"]))
    assert (reason.name, reason.args_by_name) == ("Error", {"reason": "0xnot hex"})
    assert str(reason) == "Error(reason='0xnot hex')"
    panic = decoder.decode(_data("Panic(uint256)", ["uint256"], [0x12]))
    assert str(panic) == "Panic(code=18): division or modulo by zero"


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"", "Revert", "reverted without a reason"),
        (bytes.fromhex("deadbeef") + b"\x00" * 32, "UnknownError", "0xdeadbeef" + "00" * 32),
        (function_signature_to_4byte_selector("Error(string)") + b"\x01", "UnknownError", "0x08c379a001"),
    ],
    ids=["empty", "unknown-selector", "malformed-arguments"],
)
def test_empty_unknown_and_malformed_data_still_give_one_clear_error(
    data: bytes, name: str, message: str
) -> None:
    error = RevertDecoder([PROBE_ABI]).decode(data)
    assert error.name == name
    assert message in str(error)
    assert "\n" not in str(error)


def test_reverts_from_a_live_contract_are_decoded_for_calls_and_transactions(conn: Connection) -> None:
    probe = deploy_probe(conn)
    with pytest.raises(ContractRevert) as custom:
        conn.transact(probe.functions.store(0))
    assert str(custom.value) == f"ChainProbeRejected(account={conn.sender}, value=0)"
    with pytest.raises(ContractRevert, match=r"^Error\(reason='nope'\)$"):
        conn.call(probe.functions.fail("nope"))
    with pytest.raises(ContractRevert, match=r"^Panic\(code=18\)"):
        conn.call(probe.functions.divide(1, 0))


def test_registry_errors_are_decoded_from_the_registry_abi(conn: Connection) -> None:
    with pytest.raises(ContractRevert) as caught:
        conn.transact(conn.registry.functions.grantTrainer(42, conn.sender))
    assert caught.value.name == "RegistryUnknownModel"
    assert caught.value.args_by_name == {"modelId": 42}
