"""The training loop: presets, deterministic batches, AdamW with warmup + cosine, validation,
checkpoints committed to the ledger, distributed data parallel, fine-tuning and distillation.

Determinism is by construction rather than by saved generator state: the batch offsets of step
``s`` are ``data.batch_offsets(seed, s, ...)`` and the torch RNG is re-seeded from (seed, step,
rank) before every step, so resuming at step ``s`` replays exactly what an uninterrupted run
does (same thread count, same device). ``replay`` re-runs one recorded segment from a checkpoint's
training state for the audit.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import platform
import secrets
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn import functional as F

import llmchain
from llmchain.checkpoint import CheckpointInfo, DigestRef, canonical_json, load_state, load_weights_file
from llmchain.data import SAMPLER, ByteTokenizer, Dataset, Segment, batch_offsets, load_dataset
from llmchain.digest import digest_path
from llmchain.errors import BadInput, VerificationFailed
from llmchain.model import GPT, GPTConfig, load_weights, weights_of

if TYPE_CHECKING:
    from llmchain.ledger import Ledger

STATE_FORMAT = "llmchain.train-state.v1"
CONFIG_DIGEST_ALGORITHM = "config-sha256-v1"
CODE_DIGEST_ALGORITHM = "code-sha256-v1"
ENV_DIGEST_ALGORITHM = "env-sha256-v1"
RNG_SCHEME = "torch-manual-seed-per-step-v1"  # torch RNG seeded with step_seed(seed, step, rank) before each step
_VAL_STREAM = 2**62  # the "step" whose batch offsets are the fixed validation batches


@dataclass(frozen=True)
class TrainConfig:
    # model
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads
    n_embd: int = 128  # residual width
    block_size: int = 64  # context length in tokens
    dropout: float = 0.0  # keep 0 unless you accept RNG-dependent replays
    bias: bool = False  # biases in Linear/LayerNorm
    # optimisation
    batch_size: int = 12  # sequences per micro-batch per process
    grad_accum: int = 1  # micro-batches per optimizer step per process
    max_steps: int = 1500  # optimizer steps
    learning_rate: float = 2e-3  # peak learning rate after warmup
    min_lr: float = 2e-4  # floor of the cosine decay
    warmup_steps: int = 100  # linear warmup steps
    weight_decay: float = 0.1  # AdamW decay on matrices (not on norms)
    beta1: float = 0.9  # AdamW beta1
    beta2: float = 0.99  # AdamW beta2
    grad_clip: float = 1.0  # max global grad norm (0 disables)
    # evaluation and checkpoints
    checkpoint_every: int = 250  # steps between checkpoints (each one is validated and committed)
    eval_batches: int = 16  # validation batches per evaluation
    seed: int = 1337  # init, batch order and dropout all derive from it
    # distillation (used with a teacher)
    distill_alpha: float = 0.5  # weight of the soft-target loss
    distill_temperature: float = 2.0  # softmax temperature for soft targets

    def model_config(self, vocab_size: int) -> GPTConfig:
        return GPTConfig(
            block_size=self.block_size,
            vocab_size=vocab_size,
            n_layer=self.n_layer,
            n_head=self.n_head,
            n_embd=self.n_embd,
            dropout=self.dropout,
            bias=self.bias,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise BadInput(f"unknown training config fields {sorted(unknown)}; was the run made by a newer llmchain?")
        return cls(**data)

    def validate(self) -> None:
        """Reject settings that cannot run, with the flag to change."""
        if self.n_embd % self.n_head:
            raise BadInput(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        for name in ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "grad_accum", "max_steps", "checkpoint_every", "eval_batches"):
            if getattr(self, name) < 1:
                raise BadInput(f"{name} must be at least 1, got {getattr(self, name)}")


PRESETS: dict[str, TrainConfig] = {
    # 2-3 minutes on 2 CPU cores: nanoGPT's CPU recipe size, 1500 steps, 6 checkpoints.
    "tiny": TrainConfig(),
    # about 10 M parameters; minutes on one GPU.
    "small": TrainConfig(n_layer=6, n_head=6, n_embd=384, block_size=256, batch_size=64, max_steps=5000,
                         learning_rate=1e-3, min_lr=1e-4, warmup_steps=200, checkpoint_every=500, eval_batches=50),
    # GPT-2 small shape over bytes; hours on one GPU.
    "medium": TrainConfig(n_layer=12, n_head=12, n_embd=768, block_size=512, batch_size=32, grad_accum=4,
                          max_steps=20000, learning_rate=6e-4, min_lr=6e-5, warmup_steps=1000,
                          checkpoint_every=1000, eval_batches=100),
}


@dataclass(frozen=True)
class Progress:
    """One report from the loop; the CLI renders these (the library never prints)."""

    kind: str  # "step" | "eval" | "checkpoint" | "commit" | "recovered" | "ledger_slow" | "ledger_wait" | "ledger_error"
    step: int
    max_steps: int = 0
    loss: float | None = None
    val_loss: float | None = None
    tokens_per_s: float | None = None
    message: str = ""


ProgressFn = Callable[[Progress], None]


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> Distributed:
        """torchrun sets RANK, WORLD_SIZE and LOCAL_RANK; without them this is a single process."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def fresh_seed() -> int | None:
    """A new seed for a new run, or None to keep the preset's under torchrun.

    The ledger keeps each weights digest once, so a second run of the same command with the same
    seed would train weights that run 1 already committed and leave run 2 with nothing of its own.
    A fresh seed (recorded in the run's config and training state, so resume and replay still
    reproduce it) gives every run its own weights. Distributed ranks must agree on the seed and
    cannot share a random draw before the process group exists, so they keep the preset's.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return None
    return secrets.randbelow(2**31)


def step_seed(seed: int, step: int, rank: int) -> int:
    """The torch seed for one step of one rank (64-bit, from SHA-256 so nearby inputs do not collide)."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{step}:{rank}".encode()).digest()[:8], "little") >> 1


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warmup to the peak, then cosine decay to ``min_lr`` at ``max_steps``."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / (config.warmup_steps + 1)
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps))
    return config.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (config.learning_rate - config.min_lr)


def make_optimizer(model: GPT, config: TrainConfig, device: torch.device) -> torch.optim.AdamW:
    """AdamW with decay on matrices only; fused kernels (one pass over all params) where torch has them."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups, lr=config.learning_rate, betas=(config.beta1, config.beta2), eps=1e-8, fused=True
    )


def optimizer_tensors(model: GPT, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """Optimizer state keyed by parameter name (``optim.<param>.<field>``), stable across processes."""
    index_to_name = _param_names(model, optimizer)
    tensors = {}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            tensors[f"optim.{index_to_name[index]}.{key}"] = value
    return tensors


def load_optimizer_tensors(model: GPT, optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]) -> None:
    """Inverse of ``optimizer_tensors``; hyperparameters come from the config, not the file."""
    name_to_index = {name: i for i, name in _param_names(model, optimizer).items()}
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if not key.startswith("optim."):
            continue
        name, field_name = key[len("optim.") :].rsplit(".", 1)
        state.setdefault(name_to_index[name], {})[field_name] = value
    full = optimizer.state_dict()
    full["state"] = state
    optimizer.load_state_dict(full)


def _param_names(model: GPT, optimizer: torch.optim.Optimizer) -> dict[int, str]:
    by_id = {id(p): n for n, p in model.named_parameters()}
    ordered = [p for group in optimizer.param_groups for p in group["params"]]
    return {i: by_id[id(p)] for i, p in enumerate(ordered)}


# --- run digests --------------------------------------------------------------------------------


def config_record(config: TrainConfig, model_config: GPTConfig) -> dict[str, Any]:
    return {"train": config.to_dict(), "model": model_config.to_dict(), "sampler": SAMPLER, "rng": RNG_SCHEME}


def code_record() -> dict[str, Any]:
    """The git commit (when in a checkout) and SHA-256 of every source file of the package."""
    root = Path(llmchain.__file__).parent
    files = sorted(
        (p.relative_to(root).as_posix(), hashlib.sha256(p.read_bytes()).hexdigest()) for p in root.rglob("*.py")
    )
    return {"version": llmchain.__version__, "git_commit": _git_commit(root), "package_files": files}


def env_record(device: torch.device, world_size: int) -> dict[str, Any]:
    """What changes floating-point results: versions, device, threads, determinism flags."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.machine(),
        "device": device.type,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "world_size": world_size,
        "autocast": "bfloat16" if device.type == "cuda" else None,
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
    }


def record_digest(algorithm: str, record: dict[str, Any]) -> DigestRef:
    return DigestRef(algorithm, hashlib.sha256(canonical_json(record)).digest())


def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


# --- the step -------------------------------------------------------------------------------------


@dataclass
class Stepper:
    """Runs optimizer steps on given batch offsets; shared by the loop and the replay audit."""

    model: GPT  # the raw model (weights, eval, checkpoints)
    config: TrainConfig
    train_tokens: torch.Tensor  # (N,) uint8, on CPU
    device: torch.device
    dist: Distributed = field(default_factory=Distributed)
    teacher: GPT | None = None
    optimizer: torch.optim.AdamW = field(init=False)
    wrapped: torch.nn.Module = field(init=False)  # DDP wrapper when distributed
    _windows: torch.Tensor = field(init=False)  # (N-T, T+1) sliding-window view of train_tokens

    def __post_init__(self) -> None:
        self.optimizer = make_optimizer(self.model, self.config, self.device)
        self.wrapped = self.model
        if self.dist.world_size > 1:
            self.wrapped = torch.nn.parallel.DistributedDataParallel(self.model)
        self._windows = self.train_tokens.unfold(0, self.config.block_size + 1, 1)

    @property
    def rows(self) -> int:
        """Rows of the offsets matrix per step: one per micro-batch of every rank."""
        return self.dist.world_size * self.config.grad_accum

    def offsets(self, step: int) -> np.ndarray:
        c = self.config
        return batch_offsets(c.seed, step, self.rows, c.batch_size, len(self.train_tokens), c.block_size)

    def step(self, step: int, offsets: np.ndarray) -> float:
        """One optimizer step on this rank's rows of ``offsets``; returns the mean micro-batch loss."""
        c = self.config
        seed = step_seed(c.seed, step, self.dist.rank)
        torch.default_generator.manual_seed(seed)  # torch.manual_seed costs ~0.2 ms: 0.4 % of a tiny step
        if self.device.type == "cuda":
            torch.cuda.manual_seed(seed)
        lr = learning_rate(c, step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.model.train()
        mine = offsets[self.dist.rank * c.grad_accum : (self.dist.rank + 1) * c.grad_accum]
        total = 0.0
        for k, row in enumerate(mine):
            x, y = self._batch(row)
            sync = k == len(mine) - 1 or self.dist.world_size == 1
            with self._no_sync(sync), self._autocast():
                loss = self._loss(x, y) / c.grad_accum
            with self._no_sync(sync):
                loss.backward()
            total += loss.item()
        if c.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total

    @torch.no_grad()
    def evaluate(self, val_tokens: torch.Tensor) -> float:
        """Mean loss over fixed validation batches (the same ones at every evaluation)."""
        c = self.config
        self.model.eval()
        offsets = batch_offsets(c.seed, _VAL_STREAM, c.eval_batches, c.batch_size, len(val_tokens), c.block_size)
        windows = val_tokens.unfold(0, c.block_size + 1, 1)
        losses = []
        for row in offsets:
            xy = windows[torch.from_numpy(row)].to(self.device, dtype=torch.long)
            with self._autocast():
                _, loss = self.model(xy[:, :-1].contiguous(), xy[:, 1:].contiguous())
            losses.append(float(loss))  # type: ignore[arg-type]
        return sum(losses) / len(losses)

    def _batch(self, row: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        xy = self._windows[torch.from_numpy(row)].to(self.device, dtype=torch.long, non_blocking=True)  # (B, T+1)
        return xy[:, :-1].contiguous(), xy[:, 1:].contiguous()  # (B, T), (B, T)

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits, loss = self.wrapped(x, y)
        if self.teacher is None:
            return loss
        with torch.no_grad():
            teacher_logits, _ = self.teacher(x)  # (B, T, vocab)
        t = self.config.distill_temperature
        soft = F.kl_div(
            F.log_softmax(logits.float().view(-1, logits.size(-1)) / t, dim=-1),
            F.log_softmax(teacher_logits.float().view(-1, logits.size(-1)) / t, dim=-1),
            log_target=True,
            reduction="batchmean",
        )
        a = self.config.distill_alpha
        return a * t * t * soft + (1 - a) * loss

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _no_sync(self, sync: bool) -> contextlib.AbstractContextManager[Any]:
        if sync or not isinstance(self.wrapped, torch.nn.parallel.DistributedDataParallel):
            return contextlib.nullcontext()
        return self.wrapped.no_sync()

    def state(self, step: int, extra: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """The training state after ``step`` optimizer steps: optimizer tensors and JSON meta."""
        meta = {
            "format": STATE_FORMAT,
            "step": step,
            "train_config": self.config.to_dict(),
            "model_config": self.model.config.to_dict(),
            "rng": {"scheme": RNG_SCHEME, "seed": self.config.seed},
            "data": {"sampler": SAMPLER, "position": step, "rows_per_step": self.rows},
            "optimizer": {
                "type": "AdamW",
                "param_names": list(_param_names(self.model, self.optimizer).values()),
                "groups": [{k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups],
            },
            **extra,
        }
        return optimizer_tensors(self.model, self.optimizer), meta


# --- the run --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainRequest:
    """What to train; the CLI builds one from its flags."""

    run_dir: Path  # checkpoints, run.json and the outbox live here
    config: TrainConfig | None = None  # None: the tiny preset, or the stored config on --resume
    model_name: str | None = None  # None: llmchain/tiny-gpt, or derived from the parent/teacher
    data: Path | None = None  # None: the interpreter's standard library source
    resume: bool = False
    device: str | None = None  # "cpu" | "cuda"; None: cuda when present
    init_from: str | None = None  # checkpoint path or name@label: fine-tune (weights verified first)
    distill_from: str | None = None  # checkpoint path or name@label: teacher (verified first)
    runs_root: Path = Path("runs")  # where name@label parents are looked up locally by digest


@dataclass(frozen=True)
class TrainResult:
    run_dir: Path
    model_name: str
    run_id: int | None
    checkpoints: list[CheckpointInfo]  # written by this invocation
    val_losses: list[tuple[int, float]]  # (step, loss) of every evaluation, including the first
    tokens_per_s: float
    wall_s: float
    committed: int  # checkpoints of this run confirmed on the ledger
    pending: int  # checkpoints still waiting in the outbox (``llmchain sync`` commits them)
    ledger_blocking_s: float  # the loop waited this long for the ledger (open run, drain, finish)
    ledger_background_s: float  # the background committer was busy this long (overlaps training)


DEFAULT_MODEL = "llmchain/tiny-gpt"


def default_run_dir(model_name: str, *, resume: bool, root: Path = Path("runs")) -> Path:
    """``runs/<last part of the name>``, numbered ``-2``, ``-3``… when taken; on resume the newest one."""
    base = root / model_name.rsplit("/", 1)[-1]
    taken = [base] + [base.with_name(f"{base.name}-{n}") for n in range(2, 1000)]
    owned = [d for d in taken if (d / "run.json").exists()]
    if resume:
        return owned[-1] if owned else base
    return next(d for d in taken if not (d / "run.json").exists() and not any(d.glob("ckpt-*")))


def resolve_device(name: str | None) -> torch.device:
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise BadInput(f"--device {name!r} is not supported; use cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise BadInput("--device cuda: no CUDA device is available here; use --device cpu")
    return torch.device(name)


def check_fit(config: TrainConfig, dataset: Dataset) -> None:
    """A block must fit in both splits, or no batch can be drawn."""
    for split, tokens in (("train", dataset.train), ("validation", dataset.val)):
        if len(tokens) <= config.block_size + 1:
            raise BadInput(
                f"block size {config.block_size} does not fit the {split} split of {dataset.source} "
                f"({len(tokens)} tokens); use more data or a smaller --block-size"
            )


def train(request: TrainRequest, *, ledger: Ledger | None = None, on_progress: ProgressFn | None = None) -> TrainResult:
    """Train (or resume) a run, checkpointing and committing every ``checkpoint_every`` steps.

    ``ledger`` is an ``llmchain.ledger.Ledger`` (rank 0 only) or None to train without commits.
    Every input is checked before anything is written or committed.
    """
    from llmchain.hook import LedgerHook, RunRecord, resolve_parent  # noqa: PLC0415 - hook imports this module

    emit = on_progress or (lambda _p: None)
    ddp = Distributed.from_env()
    if ddp.world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if (request.device == "cuda") else "gloo")
    try:
        device = resolve_device(request.device)
        if device.type == "cuda" and ddp.world_size > 1:
            device = torch.device("cuda", ddp.local_rank)
            torch.cuda.set_device(device)
        stored = RunRecord.read(request.run_dir) if request.resume else None
        if not request.resume and ddp.is_main:  # other ranks never write to the run directory
            RunRecord.check_free(request.run_dir)
        config = _resolve_config(request, stored)
        dataset = load_dataset(request.data or _recorded_data(stored))
        if stored is not None and stored.dataset_digest != dataset.digest_hex:
            raise BadInput(f"--resume: the data differs from the run's dataset ({dataset.source}); pass the same --data")
        parent = resolve_parent(request.init_from, "fine-tune", ledger, request.runs_root) if request.init_from else None
        teacher_source = request.distill_from or _recorded_teacher(stored)
        teacher_ref = resolve_parent(teacher_source, "distill", ledger, request.runs_root) if teacher_source else None
        if parent is not None:
            config = _adopt_architecture(config, parent.model_config)
        config.validate()
        check_fit(config, dataset)
        model_config = config.model_config(dataset.spec["tokenizer"]["vocab_size"])  # type: ignore[index]
        torch.manual_seed(config.seed)
        model = GPT(model_config)
        if parent is not None:
            load_weights(model, parent.weights)
        teacher = _teacher(teacher_ref, model_config, device) if teacher_ref is not None else None
        model.to(device)
        stepper = Stepper(model, config, torch.from_numpy(dataset.train.copy()), device, ddp, teacher)
        start = 0
        if stored is not None:
            start = _restore(request.run_dir, stepper)
        hook = None
        if ddp.is_main and stored is not None:
            hook = LedgerHook.resume(request.run_dir, ledger=ledger, on_progress=emit)
        elif ddp.is_main:
            records = {
                "config": config_record(config, model_config),
                "dataset": {"source": dataset.source, "digest": dataset.digest_hex, "spec": dataset.spec,
                            "documents": dataset.documents},
                "code": code_record(),
                "env": env_record(device, ddp.world_size),
            }
            name = request.model_name or _default_name(parent or teacher_ref)
            hook = LedgerHook.start(request.run_dir, ledger=ledger, model_name=name, records=records,
                                    parent=parent or teacher_ref, on_progress=emit)
        result = _loop(stepper, dataset, start, hook, emit, ddp)
        if ddp.world_size > 1:
            dist.barrier()  # rank 0 may still be checkpointing; tearing gloo down early aborts the others
        return result
    finally:
        if ddp.world_size > 1 and dist.is_initialized():
            dist.destroy_process_group()


def _resolve_config(request: TrainRequest, stored: Any) -> TrainConfig:
    if stored is None:
        return request.config or PRESETS["tiny"]
    if request.init_from or request.distill_from:
        raise BadInput("--resume continues a run with its recorded parent; drop --init-from/--distill-from")
    config = TrainConfig.from_dict(stored.records["config"]["train"])
    if request.config is not None and request.config != config:
        raise BadInput(f"--resume continues {request.run_dir} with its recorded config; drop the config flags or choose another --out")
    return config


def _recorded_teacher(stored: Any) -> str | None:
    """On --resume of a distillation: the teacher the run recorded (verified again before use)."""
    parent = stored.parent if stored is not None else None
    return str(parent["source"]) if parent and parent["relation"] == "distill" else None


def _recorded_data(stored: Any) -> Path | None:
    """On --resume without --data: the corpus the run recorded (None: the standard library)."""
    source = str(stored.records["dataset"]["source"]) if stored is not None else "stdlib:"
    return None if source.startswith("stdlib:") else Path(source)


def _adopt_architecture(config: TrainConfig, parent: dict[str, Any]) -> TrainConfig:
    """A fine-tune keeps the parent's shape; only the optimisation settings come from the preset."""
    keys = ("n_layer", "n_head", "n_embd", "block_size", "bias", "dropout")
    return replace(config, **{k: parent[k] for k in keys})


def _teacher(ref: Any, student: GPTConfig, device: torch.device) -> GPT:
    config = GPTConfig.from_dict(ref.model_config)
    if config.vocab_size != student.vocab_size or config.block_size < student.block_size:
        raise BadInput(
            f"teacher {ref.source} (vocab {config.vocab_size}, block {config.block_size}) cannot teach a student "
            f"with vocab {student.vocab_size}, block {student.block_size}; use a matching teacher or a smaller --block-size"
        )
    teacher = GPT(config)
    load_weights(teacher, ref.weights)
    teacher.requires_grad_(False)
    return teacher.to(device).eval()


def _default_name(parent: Any) -> str:
    if parent is None:
        return DEFAULT_MODEL
    return f"{parent.model_name or DEFAULT_MODEL}-{'ft' if parent.relation == 'fine-tune' else 'distilled'}"


def _restore(run_dir: Path, stepper: Stepper) -> int:
    """Load the latest checkpoint's weights and optimizer state; returns its step (0 if none yet)."""
    from llmchain.checkpoint import check_files, list_checkpoints  # noqa: PLC0415 - keep the top import list short

    checkpoints = list_checkpoints(run_dir)
    if not checkpoints:
        return 0
    latest = checkpoints[-1]
    check_files(latest)
    weights, _ = load_weights_file(latest.path)
    load_weights(stepper.model, weights)
    tensors, meta = load_state(latest.path)
    if meta.get("format") != STATE_FORMAT or meta["step"] != latest.step:
        raise BadInput(f"{latest.path}: training state does not belong to step {latest.step}; the checkpoint is damaged")
    load_optimizer_tensors(stepper.model, stepper.optimizer, {k: v.to(stepper.device) for k, v in tensors.items()})
    return latest.step


def _loop(stepper: Stepper, dataset: Dataset, start: int, hook: Any, emit: ProgressFn, ddp: Distributed) -> TrainResult:
    c = stepper.config
    val_tokens = torch.from_numpy(dataset.val.copy())
    val_losses: list[tuple[int, float]] = []
    saved: list[CheckpointInfo] = []
    if start == 0 and ddp.is_main:
        val_losses.append((0, stepper.evaluate(val_tokens)))
        emit(Progress("eval", 0, c.max_steps, val_loss=val_losses[-1][1]))
    tokens_per_step = c.batch_size * c.block_size * stepper.rows
    segment: list[np.ndarray] = []
    wall0 = time.perf_counter()
    step_time, rate = 0.0, 0.0
    try:
        for step in range(start, c.max_steps):
            t = time.perf_counter()
            offsets = stepper.offsets(step)
            loss = stepper.step(step, offsets)
            segment.append(offsets)
            dt = time.perf_counter() - t
            step_time += dt
            rate = tokens_per_step / dt if rate == 0.0 else 0.9 * rate + 0.1 * tokens_per_step / dt
            done = step + 1
            emit(Progress("step", done, c.max_steps, loss=loss, tokens_per_s=rate))
            if hook is not None:
                hook.poll()
            if done % c.checkpoint_every and done != c.max_steps:
                continue
            if ddp.is_main:
                val = stepper.evaluate(val_tokens)
                val_losses.append((done, val))
                emit(Progress("eval", done, c.max_steps, loss=loss, val_loss=val))
                saved.append(_checkpoint(stepper, hook, dataset, done, np.stack(segment), val, loss))
            segment = []
    except BaseException:
        if hook is not None:
            hook.abandon()
        raise
    if hook is not None:
        hook.close(finished=True)
    entries = hook.outbox.entries() if hook is not None else []
    return TrainResult(
        run_dir=hook.run_dir if hook is not None else Path("."),
        model_name=hook.run.model if hook is not None else "",
        run_id=hook.run.run_id if hook is not None else None,
        checkpoints=saved,
        val_losses=val_losses,
        tokens_per_s=tokens_per_step * (c.max_steps - start) / step_time if step_time else 0.0,
        wall_s=time.perf_counter() - wall0,
        committed=sum(e.state == "committed" for e in entries),
        pending=sum(e.state == "pending" for e in entries),
        ledger_blocking_s=hook.blocking_s if hook is not None else 0.0,
        ledger_background_s=hook.background_s if hook is not None else 0.0,
    )


def _checkpoint(
    stepper: Stepper, hook: Any, dataset: Dataset, step: int, offsets: np.ndarray, val: float, loss: float
) -> CheckpointInfo:
    segment = Segment(step - len(offsets), step, stepper.config.block_size, dataset.digest, offsets)
    env = env_record(stepper.device, stepper.dist.world_size)  # per checkpoint: a resume may change it
    tensors, meta = stepper.state(step, {"dataset_digest": dataset.digest_hex, "env": env})
    return hook.checkpoint(  # type: ignore[no-any-return]
        step,
        weights=weights_of(stepper.model),
        model_config=stepper.model.config.to_dict(),
        state_tensors=tensors,
        state_meta=meta,
        segment=segment,
        val_loss=val,
        train_loss=loss,
    )


def replay(checkpoint_dir: Path, segment: Segment, dataset: Dataset, *, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Re-run ``segment`` from the training state in ``checkpoint_dir``; returns the resulting weights.

    For the replay audit: the caller checks ``segment`` against the ledger's data digest and the
    dataset against the run's dataset digest, then compares the returned weights with the next
    checkpoint (exact digest when the environment matches, a distance otherwise).
    """
    tensors, meta = load_state(checkpoint_dir)
    if meta["step"] != segment.start_step:
        raise BadInput(f"segment starts at step {segment.start_step} but {checkpoint_dir} is step {meta['step']}")
    if segment.dataset_digest != dataset.digest:
        raise BadInput("the segment was drawn from a different dataset than the one given")
    # A distributed step averages rank gradients: the same mean as one process accumulating all rows.
    config = replace(TrainConfig.from_dict(meta["train_config"]), grad_accum=meta["data"]["rows_per_step"])
    model = GPT(GPTConfig.from_dict(meta["model_config"]))
    weights, _ = load_weights_file(checkpoint_dir)
    load_weights(model, weights)
    torch_device = resolve_device(device)
    model.to(torch_device)
    stepper = Stepper(model, config, torch.from_numpy(dataset.train.copy()), torch_device)
    if segment.offsets.shape[1] != stepper.rows:
        raise BadInput(f"the segment has {segment.offsets.shape[1]} rows per step, the training state {stepper.rows}")
    load_optimizer_tensors(model, stepper.optimizer, {k: v.to(torch_device) for k, v in tensors.items()})
    for i, offsets in enumerate(segment.offsets):
        stepper.step(segment.start_step + i, offsets)
    return {k: v.detach().cpu() for k, v in weights_of(model).items()}


# --- sampling -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Generation:
    text: str  # the prompt and its continuation
    weights: DigestRef
    ledger_record: Any  # records.Checkpoint the weights were verified against; None if unverified
    warning: str | None  # why the weights are unverified (only with allow_unverified)


def generate(
    checkpoint: Path,
    prompt: str,
    *,
    ledger: Ledger,
    allow_unverified: bool = False,
    max_new_tokens: int = 200,
    temperature: float = 0.8,
    top_k: int | None = 40,
    seed: int = 0,
) -> Generation:
    """Sample a continuation of ``prompt`` after verifying the weights against the ledger.

    Unknown or revoked weights raise VerificationFailed unless ``allow_unverified``, in which
    case the reason comes back in ``warning``.
    """
    from llmchain.hook import ledger_problem  # noqa: PLC0415 - hook imports this module

    path = checkpoint / "model.safetensors" if checkpoint.is_dir() else checkpoint
    if not path.is_file():
        raise BadInput(f"--checkpoint {checkpoint}: no such file; pass a checkpoint directory or its model.safetensors")
    weights, config = load_weights_file(path)
    file_digest = digest_path(path)
    digest = DigestRef(file_digest.algorithm, file_digest.root)
    record, problem = ledger_problem(ledger, digest)
    if problem is not None and not allow_unverified:
        raise VerificationFailed(f"{path}: {problem}; pass --allow-unverified to sample anyway")
    model = GPT(GPTConfig.from_dict(config))
    load_weights(model, weights)
    model.eval()
    tokenizer = ByteTokenizer()
    out = model.generate(
        torch.tensor([tokenizer.encode(prompt) or [tokenizer.eot]], dtype=torch.long), max_new_tokens,
        temperature=temperature, top_k=top_k, generator=torch.Generator().manual_seed(seed),
    )
    return Generation(tokenizer.decode(out[0].tolist()), digest, None if problem else record, problem)
