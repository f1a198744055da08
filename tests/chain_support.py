"""Helpers for the chain layer's tests: a registry call that always works, and a probe contract.

The probe is a tiny contract with storage, an event and each kind of revert; it doubles as the
"look-alike" that the registry code-hash pin must refuse. Compiled once with solc 0.8.37 (optimizer
200 runs, evmVersion prague) from this source:

    // SPDX-License-Identifier: Apache-2.0
    pragma solidity 0.8.37;

    /// @notice A tiny contract for the chain layer's tests: storage, an event, and each kind of revert.
    contract ChainProbe {
        error ChainProbeRejected(address account, uint256 value);

        event ChainProbeStored(address indexed account, uint256 value);

        uint256 public value;

        function store(uint256 newValue) external {
            if (newValue == 0) revert ChainProbeRejected(msg.sender, newValue);
            value = newValue;
            emit ChainProbeStored(msg.sender, newValue);
        }

        function fail(string calldata reason) external pure {
            revert(reason);
        }

        function divide(uint256 a, uint256 b) external pure returns (uint256) {
            return a / b;
        }
    }
"""

from __future__ import annotations

from typing import Any

from web3.contract.contract import ContractConstructor, ContractFunction

from llmchain.chain import Connection

ALGORITHM = b"tensor-sha256-v1".ljust(32, b"\0")
NO_PARENT = (0, (b"\0" * 32, b"\0" * 32), 0)


PROBE_ABI: list[dict[str, Any]] = [
    {
        "inputs": [
            {
                "internalType": "address",
                "name": "account",
                "type": "address"
            },
            {
                "internalType": "uint256",
                "name": "value",
                "type": "uint256"
            }
        ],
        "name": "ChainProbeRejected",
        "type": "error"
    },
    {
        "anonymous": False,
        "inputs": [
            {
                "indexed": True,
                "internalType": "address",
                "name": "account",
                "type": "address"
            },
            {
                "indexed": False,
                "internalType": "uint256",
                "name": "value",
                "type": "uint256"
            }
        ],
        "name": "ChainProbeStored",
        "type": "event"
    },
    {
        "inputs": [
            {
                "internalType": "uint256",
                "name": "a",
                "type": "uint256"
            },
            {
                "internalType": "uint256",
                "name": "b",
                "type": "uint256"
            }
        ],
        "name": "divide",
        "outputs": [
            {
                "internalType": "uint256",
                "name": "",
                "type": "uint256"
            }
        ],
        "stateMutability": "pure",
        "type": "function"
    },
    {
        "inputs": [
            {
                "internalType": "string",
                "name": "reason",
                "type": "string"
            }
        ],
        "name": "fail",
        "outputs": [],
        "stateMutability": "pure",
        "type": "function"
    },
    {
        "inputs": [
            {
                "internalType": "uint256",
                "name": "newValue",
                "type": "uint256"
            }
        ],
        "name": "store",
        "outputs": [],
        "stateMutability": "nonpayable",
        "type": "function"
    },
    {
        "inputs": [],
        "name": "value",
        "outputs": [
            {
                "internalType": "uint256",
                "name": "",
                "type": "uint256"
            }
        ],
        "stateMutability": "view",
        "type": "function"
    }
]

PROBE_BYTECODE = (
    "0x6080604052348015600e575f5ffd5b506102638061001c5f395ff3fe608060405234801561000f575f5ffd5b50600436"
    "1061004a575f3560e01c80633fa4f2451461004e5780636057361d1461006857806378122f3a1461007d578063f88e9f"
    "bf14610090575b5f5ffd5b6100565f5481565b60405190815260200160405180910390f35b61007b6100763660046101"
    "3b565b6100a3565b005b61007b61008b366004610152565b61010d565b61005661009e3660046101c0565b610129565b"
    "805f036100d157604051631390d9b160e31b8152336004820152602481018290526044015b60405180910390fd5b5f81"
    "905560405181815233907f4c09bef0d66094e7d0326630911364e22fbb9029013dad9d8587d47887bdbc089060200160"
    "405180910390a250565b818160405162461bcd60e51b81526004016100c89291906101e0565b5f610134828461020e56"
    "5b9392505050565b5f6020828403121561014b575f5ffd5b5035919050565b5f5f60208385031215610163575f5ffd5b"
    "823567ffffffffffffffff811115610179575f5ffd5b8301601f81018513610189575f5ffd5b803567ffffffffffffff"
    "ff81111561019f575f5ffd5b8560208284010111156101b0575f5ffd5b6020919091019590945092505050565b5f5f60"
    "4083850312156101d1575f5ffd5b50508035926020909101359150565b60208152816020820152818360408301375f81"
    "8301604090810191909152601f909201601f19160101919050565b5f8261022857634e487b7160e01b5f526012600452"
    "60245ffd5b50049056fea2646970667358221220da90df3f4f087197c8489c5a5d2fe57750945d4b5f87353326c1936e"
    "bd62c29864736f6c63430008250033"
)


def register_model(conn: Connection, name: str) -> ContractFunction:
    """A ``registerModel`` call for ``name`` with a fixed card digest and no parent."""
    card = (ALGORITHM, b"\x01" * 32)
    return conn.registry.functions.registerModel(name, card, NO_PARENT)


def probe_constructor(conn: Connection) -> ContractConstructor:
    """The probe's deployment, to pass to ``conn.transact``."""
    return conn.w3.eth.contract(abi=PROBE_ABI, bytecode=PROBE_BYTECODE).constructor()


def deploy_probe(conn: Connection) -> Any:
    """Deploy the probe from ``conn.sender``; returns the contract instance."""
    receipt = conn.transact(probe_constructor(conn))
    return conn.w3.eth.contract(address=receipt["contractAddress"], abi=PROBE_ABI)
