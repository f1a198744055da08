"""Proof-of-learning replay: re-run recorded training segments and compare with the next checkpoint.

For a committed pair (checkpoint i, checkpoint i+1) of a run, the replay

1. checks every input against the ledger before trusting it: checkpoint i's weights and training
   state (optimizer tensors + JSON meta holding the hyperparameters) against their committed
   digests, the hyperparameters against the run's config digest, checkpoint i+1's data order
   (``segment.json``) against its committed data digest, the corpus against the run's dataset
   digest, and the recorded environment (``run.json``) against the run's environment digest;
2. re-runs the recorded steps with the recorded data order (:func:`llmchain.train.replay`);
3. compares the result with checkpoint i+1. When the environment matches (torch version, device,
   threads, platform; the thread count is set to the recorded one when this machine allows) CPU
   training is bit-reproducible, so the test is an **exact** digest match. Otherwise floating-point
   results drift slightly, and the test is a **distance**: L∞ of the difference within a stated
   tolerance (L2 is reported too). Every result says which test applied.

Weights that training did not produce — a forged checkpoint, a reordered data segment, changed
hyperparameters — fail step 1 (an input does not match the ledger) or step 3 (the replay lands
elsewhere). The first segment (initialisation to the first checkpoint) has no recorded training
state and is not replayed. Known limit (Proof-of-Learning spoofing, Jia et al. 2021; Fang et al.
2023): a replay proves the committed steps produce the committed weights, not that the steps were
chosen honestly; committing the data order and hyperparameters before training narrows that gap.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from llmchain.checkpoint import (
    STATE_FILE,
    CheckpointInfo,
    list_checkpoints,
    load_segment,
    load_state,
    load_weights_file,
)
from llmchain.data import Dataset, Segment, load_dataset
from llmchain.digest import digest_path, digest_state_dict
from llmchain.errors import BadInput
from llmchain.hook import RUN_FILE, RunRecord
from llmchain.model import GPTConfig
from llmchain.records import Checkpoint, Run
from llmchain.train import (
    CONFIG_DIGEST_ALGORITHM,
    ENV_DIGEST_ALGORITHM,
    TrainConfig,
    config_record,
    env_record,
    record_digest,
    replay,
)

if TYPE_CHECKING:
    from llmchain.audit import Check, RunHistory

EXACT, DISTANCE, NOT_RUN = "exact", "distance", "not run"
DEFAULT_TOLERANCE = 1e-4  # L∞ bound for the distance test; see replay_run's docstring
_ENV_KEYS = ("torch", "device", "threads", "platform", "cuda", "world_size")  # what changes float results


@dataclass(frozen=True)
class ReplayOptions:
    """How to replay: how many segments, on which corpus and device, and the distance tolerance."""

    segments: int | None = 3  # segments to replay, evenly spread, always including the last; None: all
    data: Path | None = None  # the run's corpus; None: the source recorded in run.json
    device: str = "cpu"
    tolerance: float = DEFAULT_TOLERANCE  # L∞ bound used when the environment differs
    force_distance: bool = False  # use the distance test even when the environment matches
    threads: int | None = None  # CPU threads for the replay; None: the recorded count when possible


@dataclass(frozen=True)
class SegmentReplay:
    """The replay of the steps ``from_step → to_step`` of one run."""

    run_id: int
    from_step: int
    to_step: int
    test: str  # EXACT | DISTANCE | NOT_RUN (an input failed its ledger check)
    ok: bool
    l2: float | None  # ‖replayed − committed‖₂ over all tensors (None when not run)
    linf: float | None  # max |replayed − committed| (None when not run)
    tolerance: float | None  # the L∞ bound of a distance test
    environment: tuple[str, ...]  # the recorded-vs-here differences that decided the test
    detail: str


def replay_run(history: RunHistory, directory: Path, options: ReplayOptions) -> list[SegmentReplay]:
    """Replay selected segments of ``history`` from the checkpoints under ``directory``.

    The default tolerance, 1e-4 in L∞, sits between honest drift and a changed step. Measured here
    (torch 2.13 CPU): replaying 250 steps of the tiny preset on 1 thread instead of the recorded 2
    drifts by L∞ 2.4e-7 (L2 9.0e-6), 400× below the bound; one optimizer step at step 250 moves the
    weights by L∞ 1.9e-3, and the same step on another batch lands 1.4e-3 away, 14× above it.
    """
    run, committed = history.run, history.checkpoints
    local = _local_checkpoints(directory, run.id)
    pairs = list(zip(committed, committed[1:]))
    chosen = [pairs[i] for i in select_segments(len(pairs), options.segments)]
    replayable = any(before.step in local and after.step in local for before, after in chosen)
    context = _Context.build(run, local, options) if replayable else None  # loading a corpus takes seconds
    return [_replay_pair(run, before, after, local, context, options) for before, after in chosen]


def select_segments(count: int, wanted: int | None) -> list[int]:
    """``wanted`` indexes of ``count`` segments, evenly spread and always including the last."""
    if wanted is None or wanted >= count:
        return list(range(count))
    if wanted <= 0:
        return []
    step = count / wanted
    return sorted({count - 1 - int(k * step) for k in range(wanted)})


def replay_check(segments: tuple[SegmentReplay, ...]) -> Check:
    """The audit check summarising the replays."""
    from llmchain.audit import Check

    if not segments:
        return Check("replay", False, "no segment could be replayed: a run needs two committed checkpoints with local files")
    failed = [f"run {s.run_id} steps {s.from_step}→{s.to_step}: {s.detail}" for s in segments if not s.ok]
    if failed:
        return Check("replay", False, "; ".join(failed))
    tests = sorted({s.test for s in segments})
    return Check("replay", True, f"{len(segments)} segment(s) reproduced ({' and '.join(tests)} test)")


@dataclass(frozen=True)
class _Context:
    """What every segment of one run shares: the verified environment record and the corpus."""

    recorded_env: dict[str, Any] | None  # None: run.json missing or not the committed record
    env_problem: str
    dataset: Dataset | None
    dataset_problem: str

    @classmethod
    def build(cls, run: Run, local: dict[int, CheckpointInfo], options: ReplayOptions) -> _Context:
        record = _run_record(local)
        env, env_problem = None, "run.json not found beside the checkpoints"
        if record is not None:
            candidate = record.records.get("env", {})
            if record_digest(ENV_DIGEST_ALGORITHM, candidate).value == run.spec.env_digest.value:
                env, env_problem = candidate, ""
            else:
                env_problem = "run.json's environment record does not match the run's environment digest"
        data = options.data if options.data is not None else _recorded_source(record)
        dataset = load_dataset(data)
        problem = ""
        if dataset.digest != run.spec.dataset_digest.value:
            problem = f"corpus {dataset.source} is not the run's dataset (digest differs); pass --data with the run's corpus"
        return cls(env, env_problem, dataset if not problem else None, problem)


def _replay_pair(
    run: Run, before: Checkpoint, after: Checkpoint, local: dict[int, CheckpointInfo], context: _Context | None,
    options: ReplayOptions,
) -> SegmentReplay:
    def refused(reason: str) -> SegmentReplay:
        return SegmentReplay(run.id, before.step, after.step, NOT_RUN, False, None, None, None, (), reason)

    start, end = local.get(before.step), local.get(after.step)
    if start is None or end is None:
        missing = before.step if start is None else after.step
        return refused(f"no local checkpoint of run {run.id} at step {missing}")
    assert context is not None  # built whenever some segment has both checkpoints locally
    if context.dataset is None:
        return refused(context.dataset_problem)
    reason = _check_inputs(run, before, after, start, end)
    if reason:
        return refused(reason)
    with _threads(options.threads or (context.recorded_env or {}).get("threads")):
        differences = _env_differences(context, options)  # threads now as recorded, if possible
        replayed = replay(start.path, load_segment(end.path), context.dataset, device=options.device)
    committed, _ = load_weights_file(end.path)
    return _judge(run.id, before, after, replayed, committed, tuple(differences), options.tolerance)


def _judge(
    run_id: int, before: Checkpoint, after: Checkpoint, replayed: dict[str, torch.Tensor],
    committed: dict[str, torch.Tensor], differences: tuple[str, ...], tolerance: float,
) -> SegmentReplay:
    """Apply the exact test (matching environment) or the distance test (otherwise) to one replay."""
    test = DISTANCE if differences else EXACT
    measured = distances(replayed, committed)
    if measured is None:
        reason = "the replay produced different tensor names or shapes than the committed checkpoint"
        return SegmentReplay(run_id, before.step, after.step, test, False, None, None, None, differences, reason)
    l2, linf = measured
    if test == EXACT:
        exact = digest_state_dict(replayed).root == after.weights_digest.value
        detail = "replayed weights equal the committed digest" if exact else (
            f"replayed weights differ from the committed checkpoint (L∞ {linf:.3g}) in a matching environment"
        )
        return SegmentReplay(run_id, before.step, after.step, EXACT, exact, l2, linf, None, (), detail)
    ok = linf <= tolerance
    detail = f"environment differs ({', '.join(differences)}): L∞ {linf:.3g} {'within' if ok else 'exceeds'} tolerance {tolerance:g}"
    return SegmentReplay(run_id, before.step, after.step, DISTANCE, ok, l2, linf, tolerance, differences, detail)


def _check_inputs(run: Run, before: Checkpoint, after: Checkpoint, start: CheckpointInfo, end: CheckpointInfo) -> str:
    """Every replay input must be what the ledger committed; the first that is not, as a reason."""
    if digest_path(start.weights_path).root != before.weights_digest.value:
        return f"the local weights at step {before.step} are not the committed ones"
    if digest_path(end.weights_path).root != after.weights_digest.value:
        return f"the local weights at step {after.step} are not the committed ones"
    if before.state_digest is None or digest_path(start.path / STATE_FILE).root != before.state_digest.value:
        return f"the training state at step {before.step} is not the committed one (optimizer state or hyperparameters changed)"
    _, meta = load_state(start.path)
    try:
        config = config_record(TrainConfig.from_dict(meta["train_config"]), GPTConfig.from_dict(meta["model_config"]))
    except (KeyError, ValueError, BadInput) as err:
        return f"the training state at step {before.step} holds no usable config ({err})"
    if record_digest(CONFIG_DIGEST_ALGORITHM, config).value != run.spec.config_digest.value:
        return f"the hyperparameters in the training state at step {before.step} are not the run's committed config"
    segment: Segment = load_segment(end.path)
    if after.data_digest is None or segment.digest() != after.data_digest.value:
        return f"the data order for steps {before.step}→{after.step} (segment.json) is not the committed one"
    if (segment.start_step, segment.end_step) != (before.step, after.step):
        return f"the committed data order covers steps {segment.start_step}→{segment.end_step}, not {before.step}→{after.step}"
    return ""


def distances(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> tuple[float, float] | None:
    """(L2, L∞) of a − b over all tensors, in float64; None when the tensor names or shapes differ."""
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        return None
    squares, largest = 0.0, 0.0
    for name in a:
        delta = a[name].double() - b[name].double()
        squares += float((delta * delta).sum())
        largest = max(largest, float(delta.abs().max())) if delta.numel() else largest
    return math.sqrt(squares), largest


def _env_differences(context: _Context, options: ReplayOptions) -> list[str]:
    """Why the exact test cannot apply here (empty: it can)."""
    if context.recorded_env is None:
        return [context.env_problem]
    if options.force_distance:
        return ["distance test requested"]
    return environment_differences(context.recorded_env, env_record(torch.device(options.device), 1))


def environment_differences(recorded: dict[str, Any], here: dict[str, Any]) -> list[str]:
    """Recorded-vs-current environment fields that change floating-point results.

    CUDA runs without deterministic algorithms differ from themselves (atomics in reductions), so
    they never get the exact test even on the same machine.
    """
    found = [f"{k} {recorded.get(k)!r}≠{here.get(k)!r}" for k in _ENV_KEYS if recorded.get(k) != here.get(k)]
    if recorded.get("device") == "cuda" and not recorded.get("deterministic_algorithms"):
        found.append("CUDA run without deterministic algorithms")
    return found


@contextlib.contextmanager
def _threads(wanted: Any) -> Iterator[None]:
    """Run with ``wanted`` CPU threads when this machine has that many cores; restore after."""
    before = torch.get_num_threads()
    if isinstance(wanted, int) and 1 <= wanted <= _cores():
        torch.set_num_threads(wanted)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _local_checkpoints(directory: Path, run_id: int) -> dict[int, CheckpointInfo]:
    """Local checkpoints of run ``run_id`` under ``directory`` (a run directory or a parent), by step."""
    found: dict[int, CheckpointInfo] = {}
    for run_file in sorted({*directory.glob(RUN_FILE), *directory.glob(f"*/{RUN_FILE}")}):
        for info in list_checkpoints(run_file.parent):
            if info.record.get("run_id") == run_id:
                found[info.step] = info
    return found


def _run_record(local: dict[int, CheckpointInfo]) -> RunRecord | None:
    for info in local.values():
        if (info.path.parent / RUN_FILE).is_file():
            return RunRecord.read(info.path.parent)
    return None


def _recorded_source(record: RunRecord | None) -> Path | None:
    """The corpus the run recorded: None for the default (standard library), else its path."""
    source = str(((record.records.get("dataset") or {}) if record else {}).get("source", "stdlib:"))
    return None if source.startswith("stdlib:") else Path(source)
