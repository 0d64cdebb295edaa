"""The training loop every stage shares: one function, :func:`train`, small enough to read.

A batch goes in, the model returns ``(output, loss)``, and the loop takes one step,

    lr_t = warmup_cosine_lr(t)                 linear warm-up, then cosine decay to min_lr
    g = clip(grad L(theta), max_norm)          gradient clipping: g <- g min(1, c / ||g||)
    theta <- AdamW(theta, g, lr_t)             weight decay on matrices (dim >= 2) only

The same loop trains a classifier (a batch is images and labels) and a language model (a
batch is token windows and the next tokens). Everything around it is a callback or lives in
``slm_course.helpers``: evaluation, the log file, the live plot, checkpoints with exact resume
(``helpers.checkpoints``), torchrun (``helpers.distributed``) and mixed precision
(``helpers.device.autocast_context``). ``slm_course.cli.runs.train_lm`` assembles them for a
language model.

Stage 14: GPT, the small language model (every later stage trains with it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, fields
from typing import Any

import torch
import torch.nn as nn
from tqdm import tqdm

from slm_course.helpers.configs import config_from_dict
from slm_course.helpers.device import autocast_context
from slm_course.helpers.eval_mode import evaluating
from slm_course.muon import make_muon
from slm_course.optim import warmup_cosine_lr

DTYPES = ("auto", "float32", "bfloat16")
OPTIMIZERS = ("adamw", "muon")  # muon: slm_course.muon (stage 18) for hidden matrices
Batch = tuple[torch.Tensor, ...]
Callback = Callable[[str, "TrainState"], None]  # (kind: "step" | "eval" | "stop", state)


@dataclass
class TrainConfig:
    """How to train: data, optimisation, evaluation and where it runs."""

    # data (read by slm_course.cli.runs to build the corpus; the loop gets batches)
    dataset: str = "tinyshakespeare"  # a course dataset or the path of a text file
    tokenizer: str = "char"  # "char" or "bpe"
    bpe_vocab_size: int = 512
    val_fraction: float = 0.1
    # optimisation
    optimizer: str = "adamw"  # "muon": Muon for hidden matrices, AdamW for the rest (stage 18)
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
    eval_batches: int = 20  # (read by the run: how many fixed batches evaluate)
    eval_seed: int = 1234  # seeds the fixed evaluation batches
    log_interval: int = 10  # steps between progress-bar updates and log lines
    # where and how it runs
    seed: int = 1337  # (read by the run: weights, dropout and the data stream)
    device: str = ""  # "" = slm_course.helpers.device.pick_device(): cuda > mps > cpu
    dtype: str = "auto"  # "auto": bfloat16 autocast on a CUDA GPU that supports it
    compile: bool = False  # torch.compile the model (faster on a GPU; slow to start)
    num_threads: int = 0  # CPU threads for PyTorch; 0 keeps PyTorch's default
    progress: bool = True  # show a tqdm progress bar

    def __post_init__(self) -> None:
        for f in fields(self):  # nan or inf would only show up as nan losses later
            value = getattr(self, f.name)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"TrainConfig.{f.name} must be a finite number, got {value}")
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
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"TrainConfig.optimizer must be one of {OPTIMIZERS}, got "
                             f"{self.optimizer!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"TrainConfig.dtype must be one of {DTYPES}, got {self.dtype!r}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return config_from_dict(cls, data)


@dataclass
class TrainState:
    """Where a run is: the step reached and what it recorded. A checkpoint stores it, and
    :func:`train` continues from it."""

    step: int = 0  # steps completed
    # Every step's loss, in a buffer on the loss's device that doubles when full: one 0-d
    # tensor per step would fragment the heap (a 7,000-step run grew to 12 GB on Linux).
    loss_buffer: torch.Tensor = field(default_factory=lambda: torch.zeros(0))
    lrs: list[float] = field(default_factory=list)
    history: list[dict[str, float]] = field(default_factory=list)  # {"step": s, metric: value}
    timed_seconds: float = 0.0  # the steps timed (each call's first step warms up, untimed)
    timed_items: int = 0  # targets predicted in the timed steps (tokens, or examples)
    extra: dict[str, Any] = field(default_factory=dict)  # what a run adds: device, checkpoint

    def record(self, loss: torch.Tensor, lr: float, items: int, seconds: float | None) -> None:
        """Note one finished step; ``seconds`` None for an untimed (warm-up) step."""
        if self.step >= len(self.loss_buffer):
            grown = torch.zeros(max(1024, 2 * self.step), device=loss.device)
            grown[:self.step] = self.loss_buffer[:self.step]
            self.loss_buffer = grown
        self.loss_buffer[self.step] = loss.detach()  # a copy into place: nothing allocated
        self.step += 1
        self.lrs.append(lr)
        if seconds is not None:
            self.timed_seconds += seconds
            self.timed_items += items

    @property
    def losses(self) -> torch.Tensor:
        """The training loss of every step, (steps,) float32 on the CPU."""
        return self.loss_buffer[:self.step].float().cpu()

    @property
    def last_loss(self) -> float:
        return float(self.loss_buffer[self.step - 1])  # waits for the GPU: once per log interval

    @property
    def items_per_second(self) -> float:
        """Targets predicted per second of training (evaluation excluded), this process:
        tokens per second for a language model, examples per second for a classifier."""
        return self.timed_items / self.timed_seconds if self.timed_seconds else 0.0

    @property
    def final_val_loss(self) -> float:
        if not self.history or "val_loss" not in self.history[-1]:
            raise ValueError("this run never measured val_loss; pass evaluate= to train()")
        return self.history[-1]["val_loss"]


# ---------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------

def train(model: nn.Module, next_batch: Callable[[], Batch], cfg: TrainConfig, *,
          optimizer: torch.optim.Optimizer | None = None,
          evaluate: Callable[[], dict[str, float]] | None = None,
          callbacks: Sequence[Callback] = (), state: TrainState | None = None,
          stop_at: int | None = None) -> TrainState:
    """Train ``model`` until ``cfg.max_steps``; ``next_batch()`` returns the next batch, on
    the model's device, and ``model(*batch)`` returns ``(output, loss)``.

    ``evaluate()`` returns {name: value}; it runs before the first step and every
    ``cfg.eval_interval`` steps, into ``state.history``. Each callback(kind, state) hears
    "step" every ``cfg.log_interval`` steps, "eval" after each evaluation, and "stop" when
    ``stop_at`` ends the call early. Pass a checkpoint's ``state`` and optimizer to go on.
    """
    state = state or TrainState()
    optimizer = optimizer or make_optimizer(model, cfg)
    autocast = autocast_context(cfg.dtype, next(model.parameters()).device)
    end = cfg.max_steps if stop_at is None else max(state.step, min(stop_at, cfg.max_steps))
    first_step = state.step

    def report(kind: str) -> None:
        if kind == "eval" and evaluate is not None:
            state.history.append({"step": state.step, **evaluate()})
        for callback in callbacks:
            callback(kind, state)

    if state.step == 0:
        report("eval")  # the untrained model (a language model: about ln(vocab_size))
    model.train()
    with tqdm(total=cfg.max_steps, initial=state.step, desc="train", unit="step",
              disable=not cfg.progress, dynamic_ncols=True) as bar:
        while state.step < end:
            t0 = time.perf_counter()
            lr = warmup_cosine_lr(state.step, max_lr=cfg.lr, min_lr=cfg.min_lr,
                                  warmup_steps=cfg.warmup_steps, max_steps=cfg.max_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            batch = next_batch()
            with autocast:
                _, loss = model(*batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # under DDP this also averages the gradients across processes
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            timed = time.perf_counter() - t0 if state.step > first_step else None
            state.record(loss, lr, batch[-1].numel(), timed)
            bar.update()
            if state.step % cfg.log_interval == 0 or state.step == end:
                bar.set_postfix(loss=f"{state.last_loss:.3f}", lr=f"{lr:.1e}")
                report("step")
            if state.step % cfg.eval_interval == 0 or state.step == cfg.max_steps:
                report("eval")
    if state.step < cfg.max_steps:
        report("stop")  # stopped on purpose: a checkpoint callback saves here
    return state


def batches_from(loader: Iterable[Batch], device: torch.device | str | None = None
                 ) -> Callable[[], Batch]:
    """Turn a finite ``DataLoader`` (or any iterable of batches) into the loop's
    ``next_batch``: epoch after epoch (a shuffling loader reshuffles each one), each batch
    moved to ``device``."""
    def batches() -> Iterator[Batch]:
        while True:
            empty = True
            for batch in loader:
                empty = False
                yield tuple(t.to(device) if device is not None else t for t in batch)
            if empty:
                raise ValueError("the loader gave no batch: is the dataset empty, or "
                                 "batch_size larger than it with drop_last=True?")

    stream = batches()
    return lambda: next(stream)


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


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW with decoupled weight decay on matrices only (see :func:`param_groups`), or with
    ``cfg.optimizer="muon"`` stage 18's Muon for the hidden matrices and AdamW for the rest."""
    if cfg.optimizer == "muon":
        return make_muon(model, cfg)
    on_cuda = next(model.parameters()).device.type == "cuda"
    return torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr,
                             betas=(cfg.beta1, cfg.beta2), **({"fused": True} if on_cuda else {}))


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
