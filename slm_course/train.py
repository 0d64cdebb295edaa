"""The training loop every later stage shares: one function, :func:`train`.

Each step draws a batch, computes the loss, and takes one AdamW step,

    g = clip(grad L(theta), max_norm)          gradient clipping: g <- g min(1, c / ||g||)
    lr_t = warmup_cosine_lr(t)                 linear warm-up, then cosine decay to min_lr
    theta <- AdamW(theta, g, lr_t)             weight decay on matrices (dim >= 2) only

Every ``eval_interval`` steps it measures the loss on *fixed* train and validation batches
(the same batches every time, so the curve shows the model changing, not the batches) and
writes a checkpoint atomically (a temporary file, then ``os.replace``), holding everything a
run needs to continue exactly: model, optimizer, step, configs, tokenizer and the states of
every random number generator (Python, NumPy, PyTorch, the data stream). A run stopped at
step k and resumed produces the very same losses as one that never stopped.

Under ``torchrun --nproc_per_node=N`` the same function trains with DistributedDataParallel:
each process reads its own random batches, gradients are averaged across processes, and only
rank 0 prints, logs and writes checkpoints.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import warnings
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from slm_course.device import pick_device
from slm_course.eval_mode import evaluating
from slm_course.gpt import GPT, GPTConfig, check_vocab, config_from_dict
from slm_course.optim import warmup_cosine_lr
from slm_course.seeding import seed_everything

CHECKPOINT_NAME = "ckpt.pt"
LOG_NAME = "log.jsonl"
CHECKPOINT_FORMAT = "slm-course-checkpoint-v1"
_REQUIRED_KEYS = ("format", "step", "model", "optimizer", "model_config", "train_config",
                  "tokenizer", "rng", "losses", "history")
DTYPES = ("auto", "float32", "bfloat16")


@dataclass
class TrainConfig:
    """How to train: data, optimisation, evaluation and where it runs."""

    # data (used by run_training to build the corpus; train() receives the data ready-made)
    dataset: str = "tinyshakespeare"  # a course dataset or the path of a text file
    tokenizer: str = "char"  # "char" or "bpe"
    bpe_vocab_size: int = 512
    val_fraction: float = 0.1
    # optimisation
    batch_size: int = 12
    max_steps: int = 2000
    lr: float = 1e-3  # peak learning rate, reached at the end of warm-up
    min_lr: float = 1e-4  # the cosine decays to this at max_steps
    warmup_steps: int = 100
    beta1: float = 0.9
    beta2: float = 0.99
    weight_decay: float = 0.1
    grad_clip: float = 1.0  # max global gradient norm; 0 turns clipping off
    # evaluation, logging, checkpoints
    eval_interval: int = 250
    eval_batches: int = 20
    eval_seed: int = 1234  # seeds the fixed evaluation batches
    log_interval: int = 10  # steps between progress-bar updates and log lines
    # where and how it runs
    seed: int = 1337
    device: str = ""  # "" = slm_course.device.pick_device(): cuda > mps > cpu
    dtype: str = "auto"  # "auto": bfloat16 autocast on a CUDA GPU that supports it
    compile: bool = False  # torch.compile the model (faster on a GPU; slow to start)
    num_threads: int = 0  # CPU threads for PyTorch; 0 keeps PyTorch's default
    progress: bool = True  # show a tqdm progress bar

    def __post_init__(self) -> None:
        positive = ("batch_size", "max_steps", "eval_interval", "eval_batches", "log_interval")
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive int, got {value!r}")
        for name in ("warmup_steps", "num_threads", "seed", "eval_seed"):
            if getattr(self, name) < 0:
                raise ValueError(f"TrainConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.warmup_steps > self.max_steps:
            raise ValueError(f"warmup_steps={self.warmup_steps} > max_steps={self.max_steps}; "
                             f"lower warmup_steps or raise max_steps")
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"need 0 <= min_lr <= lr, got min_lr={self.min_lr}, lr={self.lr}")
        if self.grad_clip < 0 or self.weight_decay < 0:
            raise ValueError("grad_clip and weight_decay must be >= 0")
        if self.dtype not in DTYPES:
            raise ValueError(f"TrainConfig.dtype must be one of {DTYPES}, got {self.dtype!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return config_from_dict(cls, data)


class BatchSource(Protocol):
    """What :func:`train` needs from data (``slm_course.lm_data.LMData`` is one)."""

    def get_batch(self, split: str, batch_size: int, block_size: int,
                  generator: torch.Generator | None = None,
                  device: torch.device | str | None = None) -> tuple[torch.Tensor, ...]: ...


@dataclass
class TrainResult:
    """What a run produced. ``losses[s]`` is the training loss of step s (from step 0)."""

    losses: torch.Tensor  # (steps,) float32
    lrs: list[float]
    history: list[dict[str, float]]  # one entry per evaluation: step, train_loss, val_loss
    step: int  # steps completed
    seconds: float  # wall time of this call
    tokens_per_second: float  # training throughput, all processes (evaluation excluded)
    checkpoint: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def final_val_loss(self) -> float:
        if not self.history:
            raise ValueError("this run never evaluated; lower eval_interval")
        return self.history[-1]["val_loss"]


# ---------------------------------------------------------------------------------------------
# The optimiser and the evaluation
# ---------------------------------------------------------------------------------------------

def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two AdamW groups: matrices (dim >= 2: linear weights, embeddings) decay, the rest
    (biases, LayerNorm gains) do not; shrinking a gain or a bias towards 0 is not a prior
    anyone wants."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device
                   ) -> torch.optim.AdamW:
    """AdamW with decoupled weight decay on matrices only (see :func:`param_groups`)."""
    extra = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr,
                             betas=(cfg.beta1, cfg.beta2), **extra)


@torch.no_grad()
def estimate_loss(model: nn.Module, batches: list[tuple[torch.Tensor, ...]],
                  autocast: Any = None, device: torch.device | None = None) -> float:
    """Mean loss over ``batches`` with dropout off; the model's mode is restored after."""
    total = 0.0
    with evaluating(model):
        for batch in batches:
            if device is not None:
                batch = tuple(t.to(device) for t in batch)
            with autocast or nullcontext():
                _, loss = model(*batch)
            total += float(loss)
    return total / len(batches)


@torch.no_grad()
def split_loss(model: nn.Module, tokens: torch.Tensor, block_size: int,
               batch_size: int = 64, device: torch.device | str | None = None) -> float:
    """The loss on a whole split, with no sampling noise: cut ``tokens`` into consecutive
    windows of ``block_size`` + 1 tokens (the last token of a window starts the next) and
    average over every predicted token,

        L = -(1/N) sum_i log p(t_{i+1} | the tokens since the start of t_i's window).

    Each context length 1..block_size appears equally often, as in random windows, so this
    is the exact value that :func:`estimate_loss` estimates from a few random batches.
    """
    n_windows = (len(tokens) - 1) // block_size
    if n_windows < 1:
        raise ValueError(f"the split has {len(tokens)} tokens, fewer than block_size + 1 = "
                         f"{block_size + 1}")
    used = n_windows * block_size
    x_all = tokens[:used].view(n_windows, block_size)  # (W, T)
    y_all = tokens[1:used + 1].view(n_windows, block_size)  # (W, T)
    device = device or next(model.parameters()).device
    total = 0.0
    with evaluating(model):
        for i in range(0, n_windows, batch_size):
            x, y = x_all[i:i + batch_size].to(device), y_all[i:i + batch_size].to(device)
            _, loss = model(x, y)  # mean over the batch's tokens
            total += float(loss) * y.numel()
    return total / used


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------

def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` atomically: to ``path.tmp`` first, then rename over ``path``, so a
    crash mid-write leaves the previous checkpoint intact rather than a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`train`; a missing, truncated or foreign file is
    an error that names it and says what to do."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train one first, e.g. "
                                f"`slm-course train --preset shakespeare-char-cpu --out DIR`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, random bytes, a pickle of something else...
        raise ValueError(
            f"{path} is not a readable checkpoint ({type(err).__name__}: {err}); the file is "
            f"probably truncated or corrupt (an interrupted copy?). Delete it and resume from "
            f"another checkpoint, or train again") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an slm-course checkpoint (format "
                         f"{ckpt.get('format') if isinstance(ckpt, dict) else None!r}, "
                         f"expected {CHECKPOINT_FORMAT!r})")
    missing = [k for k in _REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise ValueError(f"{path} is an incomplete checkpoint: it lacks {missing}")
    return ckpt


def load_model(path: str | Path, device: torch.device | str | None = None
               ) -> tuple[GPT, Any]:
    """Rebuild (model, tokenizer) from a checkpoint, the model in eval mode on ``device``."""
    from slm_course.tokenizers import tokenizer_from_dict

    ckpt = load_checkpoint(path)
    config = GPTConfig.from_dict(ckpt["model_config"])
    tokenizer = tokenizer_from_dict(ckpt["tokenizer"]) if ckpt["tokenizer"] else None
    if tokenizer is not None:
        check_vocab(config, tokenizer.vocab_size, f"the tokenizer stored in {path}")
    model = GPT(config)
    _load_state(model, ckpt["model"], path)
    device = pick_device(str(device) if device else None)
    return model.to(device).eval(), tokenizer


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], path: Path | str) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"the weights in {path} do not fit this model (different vocabulary "
                         f"or shape?): {str(err).splitlines()[0]} ...") from None


def _rng_state(data_generator: torch.Generator) -> dict[str, Any]:
    """Every random number generator a step touches, as plain data (weights_only-safe)."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"kind": np_state[0], "keys": np_state[1].tolist(), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "data": data_generator.get_state(),
    }


def _set_rng_state(state: dict[str, Any], data_generator: torch.Generator) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], np.array(n["keys"], dtype=np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    data_generator.set_state(state["data"])


# ---------------------------------------------------------------------------------------------
# Distributed training (torchrun)
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Distributed:
    """Which process this is. Without torchrun: rank 0 of a world of 1."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    initialized_here: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_distributed(device_type: str) -> Distributed:
    """Join the process group that ``torchrun`` describes in RANK / WORLD_SIZE / MASTER_ADDR
    (gloo on the CPU, nccl on CUDA). Does nothing when WORLD_SIZE is unset or 1."""
    if dist.is_available() and dist.is_initialized():
        return Distributed(dist.get_rank(), int(os.environ.get("LOCAL_RANK", 0)),
                           dist.get_world_size())
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    for var in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        if var not in os.environ:
            raise RuntimeError(f"WORLD_SIZE={world_size} but ${var} is not set: start "
                               f"distributed runs with `torchrun --nproc_per_node=N ...`")
    dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), int(os.environ.get("LOCAL_RANK", 0)),
                       dist.get_world_size(), initialized_here=True)


def _choose_device(cfg: TrainConfig, dd: Distributed) -> torch.device:
    device = pick_device(cfg.device or None)
    if device.type == "cuda" and dd.world_size > 1:
        device = torch.device("cuda", dd.local_rank)  # one GPU per process
        torch.cuda.set_device(device)
    return device


def _autocast(cfg: TrainConfig, device: torch.device) -> Any:
    """bfloat16 autocast on a CUDA GPU that supports it (dtype="auto"), else full float32."""
    if cfg.dtype == "float32":
        return nullcontext()
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        if cfg.dtype == "bfloat16":
            raise ValueError("dtype='bfloat16' requested but this GPU does not support it; "
                             "use --dtype=float32")
        return nullcontext()
    if cfg.dtype == "bfloat16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------

def train(model: nn.Module, data: BatchSource, cfg: TrainConfig, *,
          out_dir: str | Path | None = None, resume: bool = False,
          block_size: int | None = None, stop_at: int | None = None,
          callback: Callable[[dict[str, Any]], None] | None = None) -> TrainResult:
    """Train ``model`` (``model(x, y) -> (logits, loss)``) on ``data`` for ``cfg.max_steps``.

    out_dir: where ``ckpt.pt`` and ``log.jsonl`` go (None: no files).
    resume: continue from ``out_dir/ckpt.pt``, restoring every state, so the losses are
        exactly those of an uninterrupted run.
    block_size: context length of the batches (default ``model.config.block_size``).
    stop_at: stop (and checkpoint) after this many steps, as if interrupted there. (A real
        interruption loses the steps since the last checkpoint, which is exact to resume.)
    callback: called on rank 0 with a dict at every log step ("kind": "step") and every
        evaluation ("kind": "eval"); a live plot, for example.
    """
    t_start = time.perf_counter()
    cpu_start = time.process_time()
    out_dir = Path(out_dir) if out_dir is not None else None
    if resume and out_dir is None:
        raise ValueError("resume=True needs out_dir, the folder holding ckpt.pt")
    block_size = block_size or model.config.block_size
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    device_type = pick_device(cfg.device or None).type
    dd = setup_distributed(device_type)
    try:
        result = _train(model, data, cfg, dd, out_dir, resume, block_size, stop_at, callback,
                        t_start)
        result.extra["cpu_seconds"] = time.process_time() - cpu_start
        return result
    finally:
        if dd.initialized_here:
            dist.destroy_process_group()


def _train(model: nn.Module, data: BatchSource, cfg: TrainConfig, dd: Distributed,
           out_dir: Path | None, resume: bool, block_size: int, stop_at: int | None,
           callback: Callable[[dict[str, Any]], None] | None, t_start: float) -> TrainResult:
    from tqdm import tqdm

    device = _choose_device(cfg, dd)
    raw_model = model.to(device)
    optimizer = make_optimizer(raw_model, cfg, device)
    tokenizer = getattr(data, "tokenizer", None)
    tokenizer_dict = tokenizer.to_dict() if tokenizer is not None else None

    # Fresh runs start from known seeds; each rank gets its own dropout and data stream.
    seed_everything(cfg.seed + dd.rank)
    data_gen = torch.Generator().manual_seed(cfg.seed + dd.rank)
    losses: list[torch.Tensor] = []
    lrs: list[float] = []
    history: list[dict[str, float]] = []
    start = 0
    ckpt_path = out_dir / CHECKPOINT_NAME if out_dir is not None else None
    if not resume and out_dir is not None and dd.is_main and (out_dir / LOG_NAME).exists():
        (out_dir / LOG_NAME).unlink()  # a fresh run starts a fresh log
    if resume:
        ckpt = load_checkpoint(ckpt_path)
        _check_resumable(ckpt, raw_model, tokenizer_dict, ckpt_path)
        _load_state(raw_model, ckpt["model"], ckpt_path)
        optimizer.load_state_dict(ckpt["optimizer"])
        start = int(ckpt["step"])
        losses = list(ckpt["losses"].to(device).unbind()) if len(ckpt["losses"]) else []
        lrs = list(ckpt.get("lrs", []))
        history = [dict(h) for h in ckpt["history"]]
        if len(ckpt["rng"]) == dd.world_size:
            _set_rng_state(ckpt["rng"][dd.rank], data_gen)
        else:
            warnings.warn(f"{ckpt_path} was written by {len(ckpt['rng'])} process(es), this run "
                          f"has {dd.world_size}: the data streams restart from new seeds, so "
                          f"the resumed run is not an exact continuation", stacklevel=2)
            seed_everything(cfg.seed + dd.rank + 7919 * start)
            data_gen.manual_seed(cfg.seed + dd.rank + 7919 * start)

    model = raw_model
    if cfg.compile:
        model = torch.compile(model)
    if dd.world_size > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(model, device_ids=[dd.local_rank] if device.type == "cuda" else None)
    autocast = _autocast(cfg, device)
    eval_batches = {split: data.fixed_batches(split, cfg.eval_batches, cfg.batch_size,
                                              block_size, seed=cfg.eval_seed)
                    if hasattr(data, "fixed_batches") else
                    [data.get_batch(split, cfg.batch_size, block_size,
                                    torch.Generator().manual_seed(cfg.eval_seed + i))
                     for i in range(cfg.eval_batches)]
                    for split in ("train", "val")}
    tokens_per_step = cfg.batch_size * block_size * dd.world_size

    def evaluate(step: int) -> None:
        entry = {"step": step,
                 "train_loss": estimate_loss(raw_model, eval_batches["train"], autocast, device),
                 "val_loss": estimate_loss(raw_model, eval_batches["val"], autocast, device)}
        history.append(entry)
        if dd.is_main:
            log_event(out_dir, {"kind": "eval", **entry})
            if callback is not None:
                callback({"kind": "eval", **entry})

    def checkpoint(step: int) -> Path | None:
        states = [_rng_state(data_gen)]
        if dd.world_size > 1:  # every rank's generators, so each data stream resumes exactly
            states = [None] * dd.world_size
            dist.all_gather_object(states, _rng_state(data_gen))
        if ckpt_path is None or not dd.is_main:
            return None
        return save_checkpoint({
            "format": CHECKPOINT_FORMAT, "step": step,
            "model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
            "model_config": _config_dict(raw_model), "train_config": asdict(cfg),
            "tokenizer": tokenizer_dict, "rng": states,
            "losses": torch.stack(losses).cpu() if losses else torch.zeros(0),
            "lrs": lrs, "history": history, "world_size": dd.world_size,
        }, ckpt_path)

    if start == 0:
        evaluate(0)  # the loss of the untrained model: about ln(vocab_size)
    end = cfg.max_steps if stop_at is None else max(start, min(stop_at, cfg.max_steps))
    bar = tqdm(total=cfg.max_steps, initial=start, disable=not (cfg.progress and dd.is_main),
               desc="train", unit="step", dynamic_ncols=True)
    saved: Path | None = None
    train_seconds, timed_steps = 0.0, 0
    model.train()
    step = start
    try:
        for step in range(start, end):
            t0 = time.perf_counter()
            lr = warmup_cosine_lr(step, max_lr=cfg.lr, min_lr=cfg.min_lr,
                                  warmup_steps=cfg.warmup_steps, max_steps=cfg.max_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = data.get_batch("train", cfg.batch_size, block_size, data_gen, device)
            with autocast:
                _, loss = model(*batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # under DDP this also averages the gradients across ranks
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(raw_model.parameters(), cfg.grad_clip)
            optimizer.step()
            losses.append(loss.detach().float())
            lrs.append(lr)
            done = step + 1
            log_now = done % cfg.log_interval == 0 or done == end
            eval_now = done % cfg.eval_interval == 0 or done == cfg.max_steps
            if log_now or eval_now:
                loss_value = float(loss.detach())  # synchronises with the GPU once per log interval
            if step > start:  # the first step pays for warm-up (allocation, compilation)
                train_seconds += time.perf_counter() - t0
                timed_steps += 1
            if log_now:
                tok_s = tokens_per_step * timed_steps / train_seconds if train_seconds else 0.0
                bar.set_postfix(loss=f"{loss_value:.3f}", lr=f"{lr:.1e}", tok_s=f"{tok_s:,.0f}")
                bar.update(done - bar.n)
                if dd.is_main:
                    event = {"kind": "step", "step": done, "loss": loss_value, "lr": lr,
                             "tokens_per_second": tok_s}
                    log_event(out_dir, event)
                    if callback is not None:
                        callback(event)
            if eval_now:
                evaluate(done)
                bar.set_postfix(loss=f"{loss_value:.3f}", val=f"{history[-1]['val_loss']:.3f}")
                saved = checkpoint(done) or saved
        step = end
        if end < cfg.max_steps and (not history or history[-1]["step"] != end):
            saved = checkpoint(end) or saved  # stopped early: save where we are
    finally:
        bar.close()
    tok_s = tokens_per_step * timed_steps / train_seconds if train_seconds else 0.0
    return TrainResult(losses=torch.stack(losses).cpu() if losses else torch.zeros(0),
                       lrs=lrs, history=history, step=step,
                       seconds=time.perf_counter() - t_start,
                       tokens_per_second=tok_s, checkpoint=saved,
                       extra={"rank": dd.rank, "world_size": dd.world_size,
                              "device": str(device)})


def _config_dict(model: nn.Module) -> dict[str, Any]:
    config = getattr(model, "config", None)
    return config.to_dict() if hasattr(config, "to_dict") else {}


def _check_resumable(ckpt: dict[str, Any], model: nn.Module, tokenizer_dict: Any,
                     path: Path | None) -> None:
    """The checkpoint must belong to this model and tokenizer, or resuming is meaningless."""
    saved, ours = ckpt["model_config"], _config_dict(model)
    if "vocab_size" in saved and "vocab_size" in ours:
        check_vocab(model.config, saved["vocab_size"], f"the checkpoint {path}")
    differ = {k: (saved.get(k), ours.get(k)) for k in set(saved) | set(ours)
              if k != "attention" and saved.get(k) != ours.get(k)}
    if differ:
        raise ValueError(f"{path} holds a different model: {differ} (checkpoint, this run); "
                         f"resume with the same model settings or use a new --out folder")
    if ckpt["tokenizer"] is not None and tokenizer_dict is not None \
            and ckpt["tokenizer"] != tokenizer_dict:
        raise ValueError(f"{path} was trained with a different tokenizer than this data's; "
                         f"resume with the checkpoint's tokenizer (run_training does this)")


def log_event(out_dir: Path | None, event: dict[str, Any]) -> None:
    """Append ``event`` as one JSON line to ``out_dir/log.jsonl`` (nothing if out_dir is None)."""
    if out_dir is None:
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / LOG_NAME, "a", encoding="utf-8") as f:
        f.write(json.dumps(event) + "\n")


# ---------------------------------------------------------------------------------------------
# From settings to a trained model (the CLI, the benchmark and the lesson use this)
# ---------------------------------------------------------------------------------------------

def run_training(model_args: dict[str, Any], cfg: TrainConfig, *,
                 out_dir: str | Path | None = None, resume: bool = False,
                 stop_at: int | None = None,
                 callback: Callable[[dict[str, Any]], None] | None = None,
                 data: Any = None) -> tuple[GPT, TrainResult, Any]:
    """Build the corpus, the tokenizer and a GPT from settings, then :func:`train` it.

    ``model_args`` are GPTConfig fields; ``vocab_size`` comes from the tokenizer (giving a
    different one is an error). On resume the tokenizer is the checkpoint's. Returns
    (model, result, data).
    """
    from slm_course.lm_data import prepare_lm_data
    from slm_course.tokenizers import tokenizer_from_dict

    if data is None:
        existing = None
        if resume:
            if out_dir is None:
                raise ValueError("resume=True needs out_dir, the folder holding ckpt.pt")
            saved = load_checkpoint(Path(out_dir) / CHECKPOINT_NAME)["tokenizer"]
            existing = tokenizer_from_dict(saved) if saved else None
        data = prepare_lm_data(cfg.dataset, cfg.tokenizer, cfg.bpe_vocab_size, cfg.val_fraction,
                               existing=existing)
    args = dict(model_args)
    if args.get("vocab_size") is not None:
        check_vocab(GPTConfig(**args), data.vocab_size, f"the {cfg.tokenizer} tokenizer")
    args["vocab_size"] = data.vocab_size
    seed_everything(cfg.seed)
    model = GPT(GPTConfig(**args))
    result = train(model, data, cfg, out_dir=out_dir, resume=resume, stop_at=stop_at,
                   callback=callback)
    return model, result, data


class LiveLossPlot:
    """A :func:`train` callback that redraws the loss curves in a notebook as training runs.

    Outside a notebook it only collects the numbers (``steps``, ``losses``, ``evals``).
    """

    def __init__(self, title: str = "training", every: int = 100, log_y: bool = False):
        self.title, self.every, self.log_y = title, every, log_y
        self.steps: list[int] = []
        self.losses: list[float] = []
        self.evals: list[dict[str, float]] = []
        self._handle: Any = None
        self._last_drawn = -1

    def __call__(self, event: dict[str, Any]) -> None:
        if event["kind"] == "step":
            self.steps.append(event["step"])
            self.losses.append(event["loss"])
            if event["step"] - self._last_drawn >= self.every:
                self.draw()
        else:
            self.evals.append(event)
            self.draw()

    def figure(self) -> Any:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.5, 3.8))
        ax.plot(self.steps, self.losses, lw=1, alpha=0.6, label="train (batch)")
        if self.evals:
            ax.plot([e["step"] for e in self.evals], [e["val_loss"] for e in self.evals],
                    "o-", label="validation (fixed batches)")
        ax.set(xlabel="step", ylabel="loss (nats / token)", title=self.title)
        if self.log_y:
            ax.set_yscale("log")
        ax.legend()
        return fig

    def draw(self) -> None:
        self._last_drawn = self.steps[-1] if self.steps else 0
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            return
        if get_ipython() is None:
            return
        import matplotlib.pyplot as plt

        fig = self.figure()
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        plt.close(fig)


def perplexity(loss: float) -> float:
    """Perplexity exp(L): the model is as unsure as a uniform choice among exp(L) tokens."""
    return math.exp(loss)
