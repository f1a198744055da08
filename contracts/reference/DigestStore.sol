// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/**
 * @title DigestStore
 * @notice Gas anchor for scripts/bench_gas.py, not part of the product: the least a ledger can do per
 * checkpoint, storing one 32-byte digest in a fresh slot and emitting one event.
 */
contract DigestStore {
    /// @dev `digest` was stored under `key`.
    event DigestStored(uint256 indexed key, bytes32 digest);

    mapping(uint256 key => bytes32 digest) private _digests;

    /// @notice Stores `digest` under `key`. Emits {DigestStored}.
    function store(uint256 key, bytes32 digest) external {
        _digests[key] = digest;
        emit DigestStored(key, digest);
    }
}
