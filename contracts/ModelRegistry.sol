// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IModelRegistry} from "./IModelRegistry.sol";

/**
 * @title ModelRegistry
 * @notice Append-only record of which weights came out of which training run.
 *
 * Storage layout, chosen so one checkpoint commit writes exactly one fresh slot (see docs/contract.md
 * for the gas arithmetic):
 * - `_where[weightsDigest]`: one packed slot per checkpoint (run, index, step, block, time, status);
 *   this is the digest lookup and the only fresh slot a commit writes.
 * - `_runState[runId]`: one packed slot per run (model, status, count, last step, first and last
 *   commit block), rewritten by every commit.
 * - `_heads[runId]`: the run's hash-chain head, rewritten by every commit, seeded non-zero at start.
 * Every other checkpoint field lives in the `CheckpointCommitted` event and is bound by the head, so
 * a reader fetches the run's events from blocks `firstBlock..lastBlock` only and proves the list
 * complete and unaltered by recomputing the head.
 */
contract ModelRegistry is IModelRegistry {
    /// @dev Role bits in `_roles`: granted trainer, and owner (who may always train).
    uint8 private constant _TRAINER = 1;
    uint8 private constant _OWNER = 2;

    /// @dev Largest batch {commitCheckpoints} accepts (keeps one transaction well under block gas).
    uint256 public constant MAX_BATCH = 256;
    /// @dev Longest model name in bytes.
    uint256 public constant MAX_NAME_LENGTH = 64;
    /// @dev Longest deprecation/revocation reason in bytes.
    uint256 public constant MAX_REASON_LENGTH = 256;

    struct Model {
        address owner;
        uint64 parentModelId;
        Relation relation;
        address pendingOwner;
        uint64 registeredBlock;
        Digest card;
        Digest parentCheckpoint;
        string name;
    }

    /// @dev The per-run slot every commit rewrites (64 + 8 + 32 + 64 + 40 + 40 = 248 bits).
    struct RunState {
        uint64 modelId;
        RunStatus status;
        uint32 checkpointCount;
        uint64 lastStep;
        uint40 firstBlock;
        uint40 lastBlock;
    }

    struct RunInfo {
        address trainer;
        uint40 startedBlock;
        uint40 startedAt;
    }

    /// @dev The lookup slot of one checkpoint (64 + 32 + 64 + 40 + 40 + 8 = 248 bits).
    struct Location {
        uint64 runId;
        uint32 index;
        uint64 step;
        uint40 blockNumber;
        uint40 timestamp;
        Status status;
    }

    struct Release {
        bytes32 weightsDigest;
        address releasedBy;
        uint40 releasedBlock;
        uint40 releasedAt;
        uint64 runId;
        Status status;
    }

    uint256 private _modelCount;
    uint256 private _runCount;
    mapping(uint256 modelId => Model) private _models;
    mapping(bytes32 nameHash => uint256 modelId) private _modelByName;
    /// @dev Role bits per account, so a commit checks "trainer or owner" with one storage read.
    mapping(uint256 modelId => mapping(address account => uint8 roles)) private _roles;
    mapping(uint256 modelId => uint256[] runIds) private _modelRuns;
    mapping(uint256 runId => RunState) private _runState;
    mapping(uint256 runId => bytes32 head) private _heads;
    mapping(uint256 runId => RunInfo) private _runInfo;
    mapping(uint256 runId => RunSpec) private _runSpecs;
    mapping(bytes32 weightsDigest => Location) private _where;
    mapping(uint256 runId => uint64 count) private _statusChanges;
    mapping(uint256 modelId => mapping(bytes32 label => Release)) private _releases;
    mapping(uint256 modelId => bytes32[] labels) private _releaseLabels;

    modifier onlyOwner(uint256 modelId) {
        _checkOwner(modelId);
        _;
    }

    // ---------------------------------------------------------------- models and roles

    /// @inheritdoc IModelRegistry
    function registerModel(string calldata name, Digest calldata card, Lineage calldata parent)
        external
        returns (uint256 modelId)
    {
        _checkName(name);
        bytes32 nameHash = keccak256(bytes(name));
        uint256 existing = _modelByName[nameHash];
        if (existing != 0) revert RegistryNameTaken(name, existing);
        _checkDigest(card, false);
        _checkLineage(parent);

        modelId = ++_modelCount;
        _modelByName[nameHash] = modelId;
        Model storage model = _models[modelId];
        model.owner = msg.sender;
        model.parentModelId = uint64(parent.modelId);
        model.relation = parent.relation;
        model.registeredBlock = uint64(block.number);
        model.card = card;
        model.parentCheckpoint = parent.checkpoint;
        model.name = name;
        _roles[modelId][msg.sender] = _OWNER;
        emit ModelRegistered(modelId, msg.sender, parent.modelId, name, card, parent.checkpoint, parent.relation);
    }

    /// @inheritdoc IModelRegistry
    function transferOwnership(uint256 modelId, address newOwner) external onlyOwner(modelId) {
        _models[modelId].pendingOwner = newOwner;
        emit OwnershipTransferStarted(modelId, msg.sender, newOwner);
    }

    /// @inheritdoc IModelRegistry
    function acceptOwnership(uint256 modelId) external {
        Model storage model = _existingModel(modelId);
        if (model.pendingOwner != msg.sender) revert RegistryNotPendingOwner(msg.sender, modelId);
        address previousOwner = model.owner;
        model.owner = msg.sender;
        model.pendingOwner = address(0);
        _roles[modelId][previousOwner] &= ~_OWNER;
        _roles[modelId][msg.sender] |= _OWNER;
        emit OwnershipTransferred(modelId, previousOwner, msg.sender);
    }

    /// @inheritdoc IModelRegistry
    function grantTrainer(uint256 modelId, address account) external onlyOwner(modelId) {
        uint8 roles = _roles[modelId][account];
        if (roles & _TRAINER == 0) {
            _roles[modelId][account] = roles | _TRAINER;
            emit TrainerGranted(modelId, account, msg.sender);
        }
    }

    /// @inheritdoc IModelRegistry
    function revokeTrainer(uint256 modelId, address account) external onlyOwner(modelId) {
        uint8 roles = _roles[modelId][account];
        if (roles & _TRAINER != 0) {
            _roles[modelId][account] = roles & ~_TRAINER;
            emit TrainerRevoked(modelId, account, msg.sender);
        }
    }

    // ---------------------------------------------------------------- runs and checkpoints

    /// @inheritdoc IModelRegistry
    function startRun(uint256 modelId, RunSpec calldata spec) external returns (uint256 runId) {
        _existingModel(modelId);
        _checkTrainer(modelId);
        _checkDigest(spec.config, true);
        _checkDigest(spec.dataset, true);
        _checkDigest(spec.code, true);
        _checkDigest(spec.environment, true);
        _checkDigest(spec.baseCheckpoint, false);

        runId = ++_runCount;
        _modelRuns[modelId].push(runId);
        _runState[runId] = RunState({
            modelId: uint64(modelId),
            status: RunStatus.Open,
            checkpointCount: 0,
            lastStep: 0,
            firstBlock: 0,
            lastBlock: 0
        });
        _runInfo[runId] =
            RunInfo({trainer: msg.sender, startedBlock: uint40(block.number), startedAt: uint40(block.timestamp)});
        _runSpecs[runId] = spec;
        // A non-zero seed bound to this chain, registry and run: commits then rewrite a warm,
        // non-zero slot (2,900 gas) instead of filling a fresh one (20,000 gas).
        bytes32 head = keccak256(abi.encode(block.chainid, address(this), runId));
        _heads[runId] = head;
        emit RunStarted(runId, modelId, msg.sender, head);
    }

    /// @inheritdoc IModelRegistry
    function commitCheckpoint(uint256 runId, CheckpointInput calldata cp) external returns (uint256 index) {
        RunState memory run = _openRun(runId);
        index = run.checkpointCount;
        _heads[runId] = _append(runId, run, _heads[runId], cp);
        _runState[runId] = run;
    }

    /// @inheritdoc IModelRegistry
    function commitCheckpoints(uint256 runId, CheckpointInput[] calldata cps) external returns (uint256 firstIndex) {
        if (cps.length == 0 || cps.length > MAX_BATCH) revert RegistryInvalidBatchSize(cps.length, MAX_BATCH);
        RunState memory run = _openRun(runId);
        firstIndex = run.checkpointCount;
        bytes32 head = _heads[runId];
        for (uint256 i = 0; i < cps.length; ++i) {
            head = _append(runId, run, head, cps[i]);
        }
        _heads[runId] = head;
        _runState[runId] = run;
    }

    /// @inheritdoc IModelRegistry
    function finishRun(uint256 runId) external {
        RunState storage run = _closeRun(runId, RunStatus.Finished);
        emit RunFinished(runId, run.modelId, run.checkpointCount, _heads[runId]);
    }

    /// @inheritdoc IModelRegistry
    function abortRun(uint256 runId) external {
        RunState storage run = _closeRun(runId, RunStatus.Aborted);
        emit RunAborted(runId, run.modelId, run.checkpointCount, _heads[runId]);
    }

    /// @inheritdoc IModelRegistry
    function deprecateCheckpoint(bytes32 weightsDigest, string calldata reason) external {
        Location storage loc = _ownedCheckpoint(weightsDigest);
        _transition(loc.status, Status.Deprecated, reason);
        loc.status = Status.Deprecated;
        ++_statusChanges[loc.runId];
        emit CheckpointDeprecated(loc.runId, weightsDigest, reason);
    }

    /// @inheritdoc IModelRegistry
    function revokeCheckpoint(bytes32 weightsDigest, string calldata reason) external {
        Location storage loc = _ownedCheckpoint(weightsDigest);
        _transition(loc.status, Status.Revoked, reason);
        loc.status = Status.Revoked;
        ++_statusChanges[loc.runId];
        emit CheckpointRevoked(loc.runId, weightsDigest, reason);
    }

    // ---------------------------------------------------------------- releases

    /// @inheritdoc IModelRegistry
    function release(uint256 modelId, bytes32 label, bytes32 weightsDigest) external onlyOwner(modelId) {
        _checkLabel(label);
        Release storage rel = _releases[modelId][label];
        if (rel.weightsDigest != bytes32(0)) revert RegistryReleaseExists(modelId, label);
        Location memory loc = _checkpointOfModel(weightsDigest, modelId);
        if (loc.status != Status.Active) revert RegistryCheckpointNotActive(weightsDigest, loc.status);

        rel.weightsDigest = weightsDigest;
        rel.releasedBy = msg.sender;
        rel.releasedBlock = uint40(block.number);
        rel.releasedAt = uint40(block.timestamp);
        rel.runId = loc.runId;
        _releaseLabels[modelId].push(label);
        emit ModelReleased(modelId, label, weightsDigest);
    }

    /// @inheritdoc IModelRegistry
    function deprecateRelease(uint256 modelId, bytes32 label, string calldata reason) external onlyOwner(modelId) {
        Release storage rel = _existingRelease(modelId, label);
        _transition(rel.status, Status.Deprecated, reason);
        rel.status = Status.Deprecated;
        emit ReleaseDeprecated(modelId, label, reason);
    }

    /// @inheritdoc IModelRegistry
    function revokeRelease(uint256 modelId, bytes32 label, string calldata reason) external onlyOwner(modelId) {
        Release storage rel = _existingRelease(modelId, label);
        _transition(rel.status, Status.Revoked, reason);
        rel.status = Status.Revoked;
        emit ReleaseRevoked(modelId, label, reason);
    }

    // ---------------------------------------------------------------- views

    /// @inheritdoc IModelRegistry
    function modelCount() external view returns (uint256) {
        return _modelCount;
    }

    /// @inheritdoc IModelRegistry
    function modelIdOf(string calldata name) external view returns (uint256) {
        return _modelByName[keccak256(bytes(name))];
    }

    /// @inheritdoc IModelRegistry
    function getModel(uint256 modelId) external view returns (ModelView memory) {
        Model storage model = _existingModel(modelId);
        return ModelView({
            id: modelId,
            name: model.name,
            owner: model.owner,
            pendingOwner: model.pendingOwner,
            card: model.card,
            parent: Lineage({modelId: model.parentModelId, checkpoint: model.parentCheckpoint, relation: model.relation}),
            runCount: _modelRuns[modelId].length,
            releaseCount: _releaseLabels[modelId].length,
            registeredBlock: model.registeredBlock
        });
    }

    /// @inheritdoc IModelRegistry
    function canTrain(uint256 modelId, address account) public view returns (bool) {
        return _roles[modelId][account] != 0;
    }

    /// @inheritdoc IModelRegistry
    function getRun(uint256 runId) public view returns (RunView memory) {
        RunState memory run = _runState[runId];
        if (run.status == RunStatus.None) revert RegistryUnknownRun(runId);
        RunInfo memory info = _runInfo[runId];
        return RunView({
            id: runId,
            modelId: run.modelId,
            status: run.status,
            trainer: info.trainer,
            startedBlock: info.startedBlock,
            startedAt: info.startedAt,
            checkpointCount: run.checkpointCount,
            lastStep: run.lastStep,
            firstBlock: run.firstBlock,
            lastBlock: run.lastBlock,
            head: _heads[runId],
            spec: _runSpecs[runId],
            statusChanges: _statusChanges[runId]
        });
    }

    /// @inheritdoc IModelRegistry
    function runsOf(uint256 modelId, uint256 offset, uint256 limit) external view returns (RunView[] memory runs) {
        _existingModel(modelId);
        uint256[] storage ids = _modelRuns[modelId];
        runs = new RunView[](_pageLength(ids.length, offset, limit));
        for (uint256 i = 0; i < runs.length; ++i) {
            runs[i] = getRun(ids[offset + i]);
        }
    }

    /// @inheritdoc IModelRegistry
    function statusesOf(bytes32[] calldata weightsDigests) external view returns (Status[] memory statuses) {
        statuses = new Status[](weightsDigests.length);
        for (uint256 i = 0; i < weightsDigests.length; ++i) {
            statuses[i] = _where[weightsDigests[i]].status;
        }
    }

    /// @inheritdoc IModelRegistry
    function checkpointOf(bytes32 weightsDigest) external view returns (CheckpointLocation memory) {
        Location memory loc = _where[weightsDigest];
        return CheckpointLocation({
            modelId: _runState[loc.runId].modelId,
            runId: loc.runId,
            index: loc.index,
            step: loc.step,
            blockNumber: loc.blockNumber,
            timestamp: loc.timestamp,
            status: loc.status
        });
    }

    /// @inheritdoc IModelRegistry
    function getRelease(uint256 modelId, bytes32 label) public view returns (ReleaseView memory) {
        Release storage rel = _existingRelease(modelId, label);
        return ReleaseView({
            label: label,
            weightsDigest: rel.weightsDigest,
            runId: rel.runId,
            status: rel.status,
            releasedBy: rel.releasedBy,
            releasedBlock: rel.releasedBlock,
            releasedAt: rel.releasedAt
        });
    }

    /// @inheritdoc IModelRegistry
    function releasesOf(uint256 modelId, uint256 offset, uint256 limit)
        external
        view
        returns (ReleaseView[] memory releases)
    {
        _existingModel(modelId);
        bytes32[] storage labels = _releaseLabels[modelId];
        releases = new ReleaseView[](_pageLength(labels.length, offset, limit));
        for (uint256 i = 0; i < releases.length; ++i) {
            releases[i] = getRelease(modelId, labels[offset + i]);
        }
    }

    /// @inheritdoc IModelRegistry
    function verifyTensorProof(bytes32 root, bytes32 leafHash, uint256 index, uint256 size, bytes32[] calldata proof)
        external
        pure
        returns (bool)
    {
        if (index >= size) return false;
        uint256 fn = index;
        uint256 sn = size - 1;
        bytes32 r = leafHash;
        for (uint256 i = 0; i < proof.length; ++i) {
            if (sn == 0) return false;
            if (fn & 1 == 1 || fn == sn) {
                r = sha256(abi.encodePacked(bytes1(0x01), proof[i], r));
                while (fn & 1 == 0 && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            } else {
                r = sha256(abi.encodePacked(bytes1(0x01), r, proof[i]));
            }
            fn >>= 1;
            sn >>= 1;
        }
        return sn == 0 && r == root;
    }

    // ---------------------------------------------------------------- internals

    /**
     * @dev Records `cp` as the next checkpoint of `run` (updated in memory; the caller stores it) and
     * returns the new hash-chain head:
     * keccak256(abi.encode(head, index, step, weights, state, data, valLoss, committer, block.number,
     * block.timestamp)), each Digest encoding as (algorithm, value).
     */
    function _append(uint256 runId, RunState memory run, bytes32 head, CheckpointInput calldata cp)
        private
        returns (bytes32)
    {
        if (run.checkpointCount != 0 && cp.step <= run.lastStep) {
            revert RegistryStepNotIncreasing(runId, cp.step, run.lastStep);
        }
        _checkDigest(cp.weights, true);
        _checkDigest(cp.state, false);
        _checkDigest(cp.data, false);
        bytes32 weightsDigest = cp.weights.value;
        Location storage loc = _where[weightsDigest];
        if (loc.runId != 0) revert RegistryCheckpointExists(weightsDigest, loc.runId, loc.index);

        uint32 index = run.checkpointCount;
        _where[weightsDigest] = Location({
            runId: uint64(runId),
            index: index,
            step: cp.step,
            blockNumber: uint40(block.number),
            timestamp: uint40(block.timestamp),
            status: Status.Active
        });
        run.checkpointCount = index + 1;
        run.lastStep = cp.step;
        if (index == 0) run.firstBlock = uint40(block.number);
        run.lastBlock = uint40(block.number);
        emit CheckpointCommitted(
            runId,
            weightsDigest,
            msg.sender,
            index,
            cp.step,
            cp.weights.algorithm,
            cp.state,
            cp.data,
            cp.valLoss,
            uint64(block.timestamp)
        );
        return _chain(head, index, cp);
    }

    /// @dev The hash-chain step; see {_append}.
    function _chain(bytes32 head, uint32 index, CheckpointInput calldata cp) private view returns (bytes32) {
        return keccak256(
            abi.encode(
                head,
                uint64(index),
                cp.step,
                cp.weights,
                cp.state,
                cp.data,
                cp.valLoss,
                msg.sender,
                block.number,
                block.timestamp
            )
        );
    }

    function _openRun(uint256 runId) private view returns (RunState memory run) {
        run = _runState[runId];
        if (run.status == RunStatus.None) revert RegistryUnknownRun(runId);
        if (run.status != RunStatus.Open) revert RegistryRunClosed(runId, run.status);
        _checkTrainer(run.modelId);
    }

    function _closeRun(uint256 runId, RunStatus status) private returns (RunState storage run) {
        _openRun(runId);
        run = _runState[runId];
        run.status = status;
    }

    function _existingModel(uint256 modelId) private view returns (Model storage model) {
        model = _models[modelId];
        if (model.owner == address(0)) revert RegistryUnknownModel(modelId);
    }

    function _existingRelease(uint256 modelId, bytes32 label) private view returns (Release storage rel) {
        rel = _releases[modelId][label];
        if (rel.weightsDigest == bytes32(0)) revert RegistryUnknownRelease(modelId, label);
    }

    function _checkpointOfModel(bytes32 weightsDigest, uint256 modelId) private view returns (Location memory loc) {
        loc = _where[weightsDigest];
        if (loc.runId == 0) revert RegistryUnknownCheckpoint(weightsDigest);
        uint256 actual = _runState[loc.runId].modelId;
        if (actual != modelId) revert RegistryCheckpointOfOtherModel(weightsDigest, modelId, actual);
    }

    function _ownedCheckpoint(bytes32 weightsDigest) private view returns (Location storage loc) {
        loc = _where[weightsDigest];
        if (loc.runId == 0) revert RegistryUnknownCheckpoint(weightsDigest);
        _checkOwner(_runState[loc.runId].modelId);
    }

    function _checkOwner(uint256 modelId) private view {
        if (_existingModel(modelId).owner != msg.sender) revert RegistryNotOwner(msg.sender, modelId);
    }

    function _checkTrainer(uint256 modelId) private view {
        if (_roles[modelId][msg.sender] == 0) {
            revert RegistryNotTrainer(msg.sender, modelId);
        }
    }

    function _checkDigest(Digest calldata digest, bool required) private pure {
        bool hasAlgorithm = digest.algorithm != bytes32(0);
        bool hasValue = digest.value != bytes32(0);
        if (hasAlgorithm != hasValue || (required && !hasValue)) {
            revert RegistryInvalidDigest(digest.algorithm, digest.value);
        }
    }

    function _checkLineage(Lineage calldata parent) private view {
        _checkDigest(parent.checkpoint, false);
        bool hasParent = parent.modelId != 0 || parent.checkpoint.value != bytes32(0);
        if (hasParent != (parent.relation != Relation.None) || parent.modelId > type(uint64).max) {
            revert RegistryInvalidLineage(parent.modelId, parent.checkpoint.value, parent.relation);
        }
        if (parent.modelId == 0) return;
        _existingModel(parent.modelId);
        if (parent.checkpoint.value != bytes32(0)) _checkpointOfModel(parent.checkpoint.value, parent.modelId);
    }

    function _checkName(string calldata name) private pure {
        bytes calldata b = bytes(name);
        if (b.length == 0 || b.length > MAX_NAME_LENGTH) revert RegistryInvalidName(name);
        for (uint256 i = 0; i < b.length; ++i) {
            bytes1 c = b[i];
            bool ok = (c >= "a" && c <= "z") || (c >= "0" && c <= "9") || c == "-" || c == "_" || c == "."
                || c == "/";
            if (!ok) revert RegistryInvalidName(name);
        }
    }

    function _checkLabel(bytes32 label) private pure {
        if (label[0] == 0) revert RegistryInvalidLabel(label);
        bool ended = false;
        for (uint256 i = 0; i < 32; ++i) {
            bytes1 c = label[i];
            if (c == 0) {
                ended = true;
                continue;
            }
            bool ok = (c >= "a" && c <= "z") || (c >= "A" && c <= "Z") || (c >= "0" && c <= "9") || c == "-"
                || c == "_" || c == "." || c == "+";
            if (ended || !ok) revert RegistryInvalidLabel(label);
        }
    }

    function _transition(Status current, Status requested, string calldata reason) private pure {
        uint256 length = bytes(reason).length;
        if (length == 0 || length > MAX_REASON_LENGTH) revert RegistryInvalidReason(length);
        if (current >= requested) revert RegistryInvalidTransition(current, requested);
    }

    function _pageLength(uint256 total, uint256 offset, uint256 limit) private pure returns (uint256) {
        if (offset >= total) return 0;
        uint256 left = total - offset;
        return left < limit ? left : limit;
    }
}
