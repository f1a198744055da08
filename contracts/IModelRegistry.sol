// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/**
 * @title IModelRegistry
 * @notice The on-chain schema of llmchain: models, trainers, training runs, checkpoint digests with a
 * per-run hash chain, releases and lineage. Types, errors and events live here; `ModelRegistry`
 * implements them.
 *
 * Digests are always a pair (algorithm, value): `algorithm` is the digest scheme's name as
 * left-aligned ASCII in a bytes32 (e.g. "tensor-sha256-v1"), so schemes can evolve without
 * ambiguity. An absent optional digest is (0, 0); a present one has both parts non-zero.
 *
 * Validation loss is a fixed-point integer: loss * 1e9 (nano-units); type(uint64).max means
 * "not measured".
 */
interface IModelRegistry {
    /// @dev How a model derives from its lineage parent.
    enum Relation {
        None,
        FineTune,
        Distill,
        Quantize,
        Merge,
        Other
    }

    /// @dev Lifecycle of a run; only `Open` runs take checkpoints.
    enum RunStatus {
        None,
        Open,
        Finished,
        Aborted
    }

    /// @dev Lifecycle of a checkpoint or a release. `Revoked` is final.
    enum Status {
        Active,
        Deprecated,
        Revoked
    }

    /// @dev A digest and the name of the scheme that produced it.
    struct Digest {
        bytes32 algorithm;
        bytes32 value;
    }

    /// @dev Optional lineage parent: a model on this registry and/or a checkpoint digest.
    struct Lineage {
        uint256 modelId;
        Digest checkpoint;
        Relation relation;
    }

    /// @dev What a run was started from; only `baseCheckpoint` (resume / fine-tune source) may be absent.
    struct RunSpec {
        Digest config;
        Digest dataset;
        Digest code;
        Digest environment;
        Digest baseCheckpoint;
    }

    /// @dev One checkpoint commit. `weights` is required; `state` and `data` may be absent.
    struct CheckpointInput {
        uint64 step;
        Digest weights;
        Digest state;
        Digest data;
        uint64 valLoss;
    }

    /// @dev A model as returned by {getModel}.
    struct ModelView {
        uint256 id;
        string name;
        address owner;
        address pendingOwner;
        Digest card;
        Lineage parent;
        uint256 runCount;
        uint256 releaseCount;
        uint64 registeredBlock;
    }

    /// @dev A run as returned by {getRun} and {runsOf}. `firstBlock`/`lastBlock` bound the blocks
    /// holding its `CheckpointCommitted` events; `head` is the hash-chain head over all of them;
    /// `statusChanges` counts deprecations and revocations of its checkpoints (0: all are active).
    struct RunView {
        uint256 id;
        uint256 modelId;
        RunStatus status;
        address trainer;
        uint64 startedBlock;
        uint64 startedAt;
        uint64 checkpointCount;
        uint64 lastStep;
        uint64 firstBlock;
        uint64 lastBlock;
        bytes32 head;
        RunSpec spec;
        uint64 statusChanges;
    }

    /// @dev Where a weights digest was committed, as returned by {checkpointOf}. `runId == 0`: unknown.
    struct CheckpointLocation {
        uint256 modelId;
        uint256 runId;
        uint64 index;
        uint64 step;
        uint64 blockNumber;
        uint64 timestamp;
        Status status;
    }

    /// @dev A release as returned by {getRelease} and {releasesOf}.
    struct ReleaseView {
        bytes32 label;
        bytes32 weightsDigest;
        uint256 runId;
        Status status;
        address releasedBy;
        uint64 releasedBlock;
        uint64 releasedAt;
    }

    // ---------------------------------------------------------------- errors

    /// @dev `name` is empty, longer than 64 bytes, or uses characters other than [a-z0-9._/-].
    error RegistryInvalidName(string name);
    /// @dev `name` is already registered as `modelId`.
    error RegistryNameTaken(string name, uint256 modelId);
    /// @dev No model has id `modelId`.
    error RegistryUnknownModel(uint256 modelId);
    /// @dev No run has id `runId`.
    error RegistryUnknownRun(uint256 runId);
    /// @dev `account` is not the owner of model `modelId`.
    error RegistryNotOwner(address account, uint256 modelId);
    /// @dev `account` is neither a trainer nor the owner of model `modelId`.
    error RegistryNotTrainer(address account, uint256 modelId);
    /// @dev `account` is not the pending owner of model `modelId`.
    error RegistryNotPendingOwner(address account, uint256 modelId);
    /// @dev A digest has exactly one of its two parts zero, or a required digest is absent.
    error RegistryInvalidDigest(bytes32 algorithm, bytes32 value);
    /// @dev The lineage fields contradict each other (a relation without a parent or vice versa).
    error RegistryInvalidLineage(uint256 parentModelId, bytes32 parentCheckpoint, Relation relation);
    /// @dev Run `runId` is `status`, not open.
    error RegistryRunClosed(uint256 runId, RunStatus status);
    /// @dev `step` is not greater than the run's last committed step `lastStep`.
    error RegistryStepNotIncreasing(uint256 runId, uint64 step, uint64 lastStep);
    /// @dev `weightsDigest` was already committed as checkpoint `index` of run `runId`.
    error RegistryCheckpointExists(bytes32 weightsDigest, uint256 runId, uint256 index);
    /// @dev `weightsDigest` has never been committed.
    error RegistryUnknownCheckpoint(bytes32 weightsDigest);
    /// @dev `weightsDigest` belongs to model `actualModelId`, not `modelId`.
    error RegistryCheckpointOfOtherModel(bytes32 weightsDigest, uint256 modelId, uint256 actualModelId);
    /// @dev A release must point at an active checkpoint; `weightsDigest` is `status`.
    error RegistryCheckpointNotActive(bytes32 weightsDigest, Status status);
    /// @dev A batch commit needs 1 to `max` checkpoints; it had `size`.
    error RegistryInvalidBatchSize(uint256 size, uint256 max);
    /// @dev `label` is empty or not [A-Za-z0-9._+-] ASCII.
    error RegistryInvalidLabel(bytes32 label);
    /// @dev Model `modelId` already has a release labelled `label`.
    error RegistryReleaseExists(uint256 modelId, bytes32 label);
    /// @dev Model `modelId` has no release labelled `label`.
    error RegistryUnknownRelease(uint256 modelId, bytes32 label);
    /// @dev A status may only move Active -> Deprecated -> Revoked (or Active -> Revoked).
    error RegistryInvalidTransition(Status current, Status requested);
    /// @dev A reason must be 1 to 256 bytes; it had `length`.
    error RegistryInvalidReason(uint256 length);

    // ---------------------------------------------------------------- events

    /// @dev Model `modelId` was registered under `name` by `owner`.
    event ModelRegistered(
        uint256 indexed modelId,
        address indexed owner,
        uint256 indexed parentModelId,
        string name,
        Digest card,
        Digest parentCheckpoint,
        Relation relation
    );
    /// @dev `newOwner` may now accept ownership of `modelId` (zero: a pending transfer was cancelled).
    event OwnershipTransferStarted(uint256 indexed modelId, address indexed previousOwner, address indexed newOwner);
    /// @dev Ownership of `modelId` moved from `previousOwner` to `newOwner`.
    event OwnershipTransferred(uint256 indexed modelId, address indexed previousOwner, address indexed newOwner);
    /// @dev `account` may now write runs of `modelId`; granted by `sender`.
    event TrainerGranted(uint256 indexed modelId, address indexed account, address indexed sender);
    /// @dev `account` may no longer write runs of `modelId`; revoked by `sender`.
    event TrainerRevoked(uint256 indexed modelId, address indexed account, address indexed sender);
    /// @dev `trainer` started run `runId` of `modelId`; its spec is in storage ({getRun}).
    event RunStarted(uint256 indexed runId, uint256 indexed modelId, address indexed trainer, bytes32 head);
    /**
     * @dev Checkpoint `index` of run `runId`. With the log's block number, these fields are exactly
     * what the run's hash chain commits to (see {ModelRegistry-_chain}).
     */
    event CheckpointCommitted(
        uint256 indexed runId,
        bytes32 indexed weightsDigest,
        address indexed committer,
        uint64 index,
        uint64 step,
        bytes32 weightsAlgorithm,
        Digest state,
        Digest data,
        uint64 valLoss,
        uint64 timestamp
    );
    /// @dev Run `runId` was closed as finished after `checkpointCount` checkpoints with hash-chain `head`.
    event RunFinished(uint256 indexed runId, uint256 indexed modelId, uint64 checkpointCount, bytes32 head);
    /// @dev Run `runId` was closed as aborted after `checkpointCount` checkpoints with hash-chain `head`.
    event RunAborted(uint256 indexed runId, uint256 indexed modelId, uint64 checkpointCount, bytes32 head);
    /// @dev `label` of `modelId` now names the checkpoint `weightsDigest`.
    event ModelReleased(uint256 indexed modelId, bytes32 indexed label, bytes32 indexed weightsDigest);
    /// @dev Release `label` of `modelId` is deprecated.
    event ReleaseDeprecated(uint256 indexed modelId, bytes32 indexed label, string reason);
    /// @dev Release `label` of `modelId` is revoked, for good.
    event ReleaseRevoked(uint256 indexed modelId, bytes32 indexed label, string reason);
    /// @dev Checkpoint `weightsDigest` of run `runId` is deprecated.
    event CheckpointDeprecated(uint256 indexed runId, bytes32 indexed weightsDigest, string reason);
    /// @dev Checkpoint `weightsDigest` of run `runId` is revoked, for good.
    event CheckpointRevoked(uint256 indexed runId, bytes32 indexed weightsDigest, string reason);

    // ---------------------------------------------------------------- models and roles

    /**
     * @notice Registers a model under a unique name; the caller becomes its owner.
     * Requirements: `name` is 1-64 bytes of [a-z0-9._/-] and not taken; `card` is absent or complete;
     * a lineage relation comes with a parent (an existing model and/or a checkpoint digest), and a
     * parent checkpoint on a registered parent model must be one of that model's checkpoints.
     * Emits {ModelRegistered}.
     */
    function registerModel(string calldata name, Digest calldata card, Lineage calldata parent)
        external
        returns (uint256 modelId);

    /**
     * @notice Starts a two-step ownership transfer; `newOwner` must call {acceptOwnership}.
     * Transferring to the zero address cancels a pending transfer.
     * Requirements: caller owns `modelId`. Emits {OwnershipTransferStarted}.
     */
    function transferOwnership(uint256 modelId, address newOwner) external;

    /**
     * @notice Completes a transfer started by {transferOwnership}.
     * Requirements: caller is the pending owner. Emits {OwnershipTransferred}.
     */
    function acceptOwnership(uint256 modelId) external;

    /**
     * @notice Lets `account` start runs and commit checkpoints for `modelId` (no-op if it already can).
     * Requirements: caller owns `modelId`. Emits {TrainerGranted} when the role is new.
     */
    function grantTrainer(uint256 modelId, address account) external;

    /**
     * @notice Withdraws the trainer role (no-op if `account` has none). Open runs stay open, but
     * `account` can no longer commit to them.
     * Requirements: caller owns `modelId`. Emits {TrainerRevoked} when a role was removed.
     */
    function revokeTrainer(uint256 modelId, address account) external;

    // ---------------------------------------------------------------- runs and checkpoints

    /**
     * @notice Opens a training run of `modelId`.
     * Requirements: caller is a trainer or the owner; config, dataset, code and environment digests
     * are complete; `baseCheckpoint` is absent or complete.
     * Emits {RunStarted}.
     */
    function startRun(uint256 modelId, RunSpec calldata spec) external returns (uint256 runId);

    /**
     * @notice Appends one checkpoint to an open run and extends its hash chain.
     * Requirements: caller is a trainer or the owner of the run's model; the run is open; `cp.step`
     * exceeds the last step; `cp.weights` is complete and never committed before; `cp.state` and
     * `cp.data` are absent or complete. Emits {CheckpointCommitted}.
     */
    function commitCheckpoint(uint256 runId, CheckpointInput calldata cp) external returns (uint256 index);

    /**
     * @notice Appends 1 to 256 checkpoints at once, in order; same rules as {commitCheckpoint} for each.
     * Emits one {CheckpointCommitted} per checkpoint. Returns the index of the first one.
     */
    function commitCheckpoints(uint256 runId, CheckpointInput[] calldata cps) external returns (uint256 firstIndex);

    /**
     * @notice Closes an open run as finished. Requirements: caller is a trainer or the owner; the run
     * is open. Emits {RunFinished}.
     */
    function finishRun(uint256 runId) external;

    /**
     * @notice Closes an open run as aborted. Requirements: caller is a trainer or the owner; the run
     * is open. Emits {RunAborted}.
     */
    function abortRun(uint256 runId) external;

    /**
     * @notice Marks checkpoint `weightsDigest` deprecated. Requirements: caller owns its model; it is
     * active; `reason` is 1-256 bytes. Emits {CheckpointDeprecated}.
     */
    function deprecateCheckpoint(bytes32 weightsDigest, string calldata reason) external;

    /**
     * @notice Revokes checkpoint `weightsDigest` for good. Requirements: caller owns its model; it is
     * not already revoked; `reason` is 1-256 bytes. Emits {CheckpointRevoked}.
     */
    function revokeCheckpoint(bytes32 weightsDigest, string calldata reason) external;

    // ---------------------------------------------------------------- releases

    /**
     * @notice Names an active checkpoint of `modelId` with a version `label` (ASCII, left-aligned).
     * Requirements: caller owns `modelId`; `label` is valid and unused; `weightsDigest` is an active
     * checkpoint of this model. Emits {ModelReleased}.
     */
    function release(uint256 modelId, bytes32 label, bytes32 weightsDigest) external;

    /**
     * @notice Marks a release deprecated. Requirements: caller owns `modelId`; the release is active;
     * `reason` is 1-256 bytes. Emits {ReleaseDeprecated}.
     */
    function deprecateRelease(uint256 modelId, bytes32 label, string calldata reason) external;

    /**
     * @notice Revokes a release for good. Requirements: caller owns `modelId`; the release is not
     * already revoked; `reason` is 1-256 bytes. Emits {ReleaseRevoked}.
     */
    function revokeRelease(uint256 modelId, bytes32 label, string calldata reason) external;

    // ---------------------------------------------------------------- views

    /// @notice Number of registered models; ids run from 1 to this.
    function modelCount() external view returns (uint256);

    /// @notice Id of the model registered as `name`, or 0.
    function modelIdOf(string calldata name) external view returns (uint256);

    /// @notice Model `modelId`. Requirements: it exists.
    function getModel(uint256 modelId) external view returns (ModelView memory);

    /// @notice Whether `account` may write runs of `modelId` (a trainer or the owner).
    function canTrain(uint256 modelId, address account) external view returns (bool);

    /// @notice Run `runId`. Requirements: it exists.
    function getRun(uint256 runId) external view returns (RunView memory);

    /// @notice Up to `limit` runs of `modelId` from position `offset`, oldest first.
    function runsOf(uint256 modelId, uint256 offset, uint256 limit) external view returns (RunView[] memory);

    /// @notice Where `weightsDigest` was committed, in one call; `runId == 0` when it never was.
    function checkpointOf(bytes32 weightsDigest) external view returns (CheckpointLocation memory);

    /// @notice The current status of each checkpoint in one call (a page of a run); unknown digests read Active.
    function statusesOf(bytes32[] calldata weightsDigests) external view returns (Status[] memory);

    /// @notice Release `label` of `modelId`. Requirements: it exists.
    function getRelease(uint256 modelId, bytes32 label) external view returns (ReleaseView memory);

    /// @notice Up to `limit` releases of `modelId` from position `offset`, oldest first.
    function releasesOf(uint256 modelId, uint256 offset, uint256 limit) external view returns (ReleaseView[] memory);

    /**
     * @notice RFC 9162 (RFC 6962) Merkle inclusion check with SHA-256: whether `leafHash`
     * (sha256(0x00 || leaf)) is leaf `index` of a tree of `size` leaves with root `root`, given the
     * audit path `proof` (inner nodes are sha256(0x01 || left || right)).
     */
    function verifyTensorProof(bytes32 root, bytes32 leafHash, uint256 index, uint256 size, bytes32[] calldata proof)
        external
        pure
        returns (bool);
}
