"""Runs: a language model, its corpus and the shared loop, put together with everything a
real run needs around :func:`slm_course.train.train`: the device, fixed evaluation batches,
the log file, checkpoints with exact resume and torchrun. The ``slm-course train`` command,
the benchmarks and lesson 14 use it.

    train_lm(model, data, cfg, out_dir=...)   a GPT on an LMData -> TrainState
    run_training(model_args, cfg, ...)         settings -> corpus, tokenizer, GPT, train_lm
    load_model(path)                           a checkpoint -> (GPT in eval mode, tokenizer)
"""

from __future__ import annotations

import math
import signal
import time
import warnings
from collections.abc import Sequence
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from slm_course.gpt import GPT, GPTConfig, check_vocab
from slm_course.helpers.checkpoints import (
    CHECKPOINT_NAME,
    Checkpointer,
    load_checkpoint,
    load_weights,
    set_rng_state,
)
from slm_course.helpers.device import autocast_context, pick_device
from slm_course.helpers.distributed import (
    Distributed,
    process_device,
    setup_distributed,
    teardown_distributed,
    wrap_ddp,
)
from slm_course.helpers.run_log import JsonlLog
from slm_course.helpers.seeding import seed_everything
from slm_course.lm_data import LMData, prepare_lm_data
from slm_course.tokenizers import Tokenizer, tokenizer_from_dict
from slm_course.train import Callback, TrainConfig, TrainState, estimate_loss, make_optimizer, train


def train_lm(model: nn.Module, data: LMData, cfg: TrainConfig, *,
             out_dir: str | Path | None = None, resume: bool = False,
             stop_at: int | None = None, callbacks: Sequence[Callback] = (),
             block_size: int | None = None) -> TrainState:
    """Train a language model (``model(x, y) -> (logits, loss)``) on random windows of
    ``data``'s training split, evaluating on fixed batches of both splits.

    out_dir: where ``ckpt.pt`` and ``log.jsonl`` go (None: no files).
    resume: continue from ``out_dir/ckpt.pt``, restoring every state, so the losses are
        exactly those of an uninterrupted run.
    stop_at: stop (and checkpoint) after this many steps, as if interrupted there.
    callbacks: called on rank 0 as (kind, state); a live plot, for example.
    block_size: context length of the batches (default ``model.config.block_size``).
    """
    t_start, cpu_start = time.perf_counter(), time.process_time()
    out_dir = Path(out_dir) if out_dir is not None else None
    if resume and out_dir is None:
        raise ValueError("resume=True needs out_dir, the folder holding ckpt.pt")
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    device = pick_device(cfg.device or None)
    dd = setup_distributed(device.type)
    try:
        state = _train_lm(model, data, cfg, dd, process_device(device, dd), out_dir, resume,
                          stop_at, callbacks, block_size or model.config.block_size)
    finally:
        teardown_distributed(dd)
    state.extra.update(seconds=time.perf_counter() - t_start,
                       cpu_seconds=time.process_time() - cpu_start,
                       tokens_per_second=state.items_per_second * dd.world_size)
    return state


def _train_lm(model: nn.Module, data: LMData, cfg: TrainConfig, dd: Distributed,
              device: torch.device, out_dir: Path | None, resume: bool, stop_at: int | None,
              callbacks: Sequence[Callback], block_size: int) -> TrainState:
    raw_model = model.to(device)
    optimizer = make_optimizer(raw_model, cfg)
    tokenizer_dict = data.tokenizer.to_dict() if getattr(data, "tokenizer", None) else None
    # Fresh runs start from known seeds; each rank gets its own dropout and data stream.
    seed_everything(cfg.seed + dd.rank)
    data_gen = torch.Generator().manual_seed(cfg.seed + dd.rank)
    ckpt_path = out_dir / CHECKPOINT_NAME if out_dir is not None else None
    state = TrainState()
    if resume:
        state = _resume(ckpt_path, raw_model, optimizer, tokenizer_dict, data_gen, dd, cfg,
                        device)
    model = wrap_ddp(torch.compile(raw_model) if cfg.compile else raw_model, dd, device)
    autocast = autocast_context(cfg.dtype, device)
    fixed = {split: data.fixed_batches(split, cfg.eval_batches, cfg.batch_size, block_size,
                                       seed=cfg.eval_seed) for split in ("train", "val")}

    def evaluate() -> dict[str, float]:
        return {f"{split}_loss": estimate_loss(raw_model, batches, autocast, device)
                for split, batches in fixed.items()}

    def next_batch() -> tuple[torch.Tensor, torch.Tensor]:
        return data.get_batch("train", cfg.batch_size, block_size, data_gen, device)

    hooks = list(callbacks) if dd.is_main else []
    if dd.is_main and out_dir is not None:
        hooks.insert(0, JsonlLog(out_dir, fresh=not resume))
    checkpointer = None
    if ckpt_path is not None:  # every rank: their generators are gathered into the file
        meta = {"model_config": _config_dict(raw_model), "train_config": asdict(cfg),
                "tokenizer": tokenizer_dict}
        checkpointer = Checkpointer(ckpt_path, raw_model, optimizer, data_gen, meta,
                                    rank=dd.rank, world_size=dd.world_size)
        hooks.append(checkpointer)
    if dd.is_main:  # before the checkpointer: a diverged run must not overwrite a good file
        hooks.insert(len(hooks) - (checkpointer is not None), StopOnNonFinite(checkpointer))
    loop_cfg = replace(cfg, progress=cfg.progress and dd.is_main)
    try:
        state = train(model, next_batch, loop_cfg, optimizer=optimizer, evaluate=evaluate,
                      callbacks=hooks, state=state, stop_at=stop_at)
    except TrainingStopped as stop:  # a callback asked to stop: save where the run is
        if checkpointer is not None:
            checkpointer("stop", stop.state)
            stop.checkpoint = checkpointer.saved if checkpointer.saved_step > 0 else None
        raise
    state.extra.update(rank=dd.rank, world_size=dd.world_size, device=str(device),
                       checkpoint=checkpointer.saved if checkpointer else None)
    return state


class TrainingStopped(Exception):
    """Raised by a callback to end a run at a step boundary (a Ctrl-C, say); :func:`train_lm`
    writes the checkpoint at that step first and fills in ``checkpoint`` (None: no file)."""

    def __init__(self, state: TrainState, reason: str = "interrupted"):
        super().__init__(f"{reason} at step {state.step}")
        self.state, self.reason = state, reason
        self.checkpoint: Path | None = None


class StopOnNonFinite:
    """A callback that stops training with a clear error when the training loss, or an
    evaluation, is nan or infinite: the run diverged, and going on only wastes time (and would
    overwrite the last good checkpoint)."""

    def __init__(self, checkpointer: Checkpointer | None = None):
        self.checkpointer = checkpointer

    def __call__(self, kind: str, state: TrainState) -> None:
        bad = {}
        if state.step and not math.isfinite(state.last_loss):
            bad["training loss"] = state.last_loss
        if kind == "eval" and state.history:
            bad.update({k: v for k, v in state.history[-1].items()
                        if isinstance(v, float) and not math.isfinite(v)})
        if not bad:
            return
        saved = self.checkpointer.saved if self.checkpointer else None
        kept = (f"the last good checkpoint, {saved} (step {self.checkpointer.saved_step}), "
                f"is untouched" if saved else "no checkpoint was written")
        what = ", ".join(f"{k} {v}" for k, v in bad.items())
        raise ValueError(f"training diverged at step {state.step} ({what}, learning rate "
                         f"{state.lrs[-1] if state.lrs else 0:.3g}); {kept}. Lower --lr (or "
                         f"--grad_clip) and train again, or resume with --allow-changes")


class StopOnInterrupt:
    """A callback that turns Ctrl-C (SIGINT) into :class:`TrainingStopped` at the next step
    boundary where the run's state is whole, so the checkpoint holds the current step. Before
    training reports anything, and on a second Ctrl-C, the interrupt acts at once
    (KeyboardInterrupt). Use as a context manager: it installs the signal handler and puts
    the previous one back."""

    def __init__(self, cfg: TrainConfig):
        self.eval_interval, self.max_steps = cfg.eval_interval, cfg.max_steps
        self.armed = self.requested = False
        self.previous: Any = None

    def __enter__(self) -> StopOnInterrupt:
        self.previous = signal.getsignal(signal.SIGINT)
        if self.previous is not signal.SIG_IGN:  # nohup, `cmd &`: SIGINT stays ignored
            signal.signal(signal.SIGINT, self._on_signal)
        return self

    def __exit__(self, *exc: Any) -> None:
        signal.signal(signal.SIGINT, self.previous)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.requested or not self.armed:
            raise KeyboardInterrupt
        self.requested = True

    def __call__(self, kind: str, state: TrainState) -> None:
        self.armed = True
        if not self.requested:
            return
        # a "step" report at an evaluation step comes before the evaluation: wait for it
        at_eval = state.step % self.eval_interval == 0 or state.step == self.max_steps
        if kind == "eval" or (kind == "step" and not at_eval):
            raise TrainingStopped(state)


def _resume(path: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
            tokenizer_dict: Any, data_gen: torch.Generator, dd: Distributed,
            cfg: TrainConfig, device: torch.device) -> TrainState:
    """Load weights, optimizer, loop state and generators from ``path``."""
    ckpt = load_checkpoint(path)
    check_resumable(ckpt, model, tokenizer_dict, path)
    start = int(ckpt["step"])
    if start > cfg.max_steps:
        raise ValueError(_below_step_message(path, start, cfg.max_steps))
    load_weights(model, ckpt["model"], path)
    optimizer.load_state_dict(ckpt["optimizer"])
    state = TrainState(step=start, loss_buffer=ckpt["losses"].to(device).float(),
                       lrs=list(ckpt.get("lrs", [])),
                       history=[dict(h) for h in ckpt["history"]])
    if len(ckpt["rng"]) == dd.world_size:
        set_rng_state(ckpt["rng"][dd.rank], data_gen)
    else:
        warnings.warn(f"{path} was written by {len(ckpt['rng'])} process(es), this run has "
                      f"{dd.world_size}: the data streams restart from new seeds, so the "
                      f"resumed run is not an exact continuation", stacklevel=3)
        seed_everything(cfg.seed + dd.rank + 7919 * start)
        data_gen.manual_seed(cfg.seed + dd.rank + 7919 * start)
    return state


def _config_dict(model: nn.Module) -> dict[str, Any]:
    config = getattr(model, "config", None)
    return config.to_dict() if hasattr(config, "to_dict") else {}


def _with_defaults(saved: dict[str, Any], model: nn.Module) -> dict[str, Any]:
    """A config saved before a setting existed gets that setting's default (the model it
    describes is the same), so adding a field to GPTConfig never blocks a resume."""
    config = getattr(model, "config", None)
    try:
        return type(config).from_dict(saved).to_dict()
    except (AttributeError, TypeError, ValueError):  # not a config class, or unknown keys
        return saved


def check_resumable(ckpt: dict[str, Any], model: nn.Module, tokenizer_dict: Any,
                    path: Path | None) -> None:
    """The checkpoint must belong to this model and tokenizer, or resuming is meaningless."""
    saved, ours = _with_defaults(ckpt["model_config"], model), _config_dict(model)
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


# Settings that may differ on resume without changing what the run computes (max_steps may
# grow: that is how a run is extended; it stretches the learning-rate schedule).
FREE_ON_RESUME = ("progress", "num_threads", "log_interval", "max_steps")


def _below_step_message(path: Path, step: int, max_steps: int) -> str:
    return (f"--max_steps={max_steps} is below the step the checkpoint {path} reached "
            f"({step}): a resumed run cannot go back. Give --max_steps={step} or more, or "
            f"start a new run in another --out folder")


def resume_changes(ckpt: dict[str, Any], model_args: dict[str, Any], cfg: TrainConfig,
                   path: Path | str) -> dict[str, tuple[Any, Any]]:
    """The training settings of this run that differ from the checkpoint's, as
    {key: (checkpoint's, this run's)}, settings in FREE_ON_RESUME left out. A model setting
    that differs, or ``max_steps`` below the checkpoint's step, is an error: the run cannot
    continue at all."""
    saved_model = ckpt.get("model_config", {})
    model_diff = {k: (saved_model[k], v) for k, v in model_args.items()
                  if k in saved_model and saved_model[k] != v}
    if model_diff:
        raise ValueError(f"{path} holds a different model: "
                         f"{_describe(model_diff)} (checkpoint -> this run); the weights cannot "
                         f"change shape, so resume with the checkpoint's model settings or "
                         f"start a new run in another --out folder")
    if int(ckpt["step"]) > cfg.max_steps:
        raise ValueError(_below_step_message(Path(path), int(ckpt["step"]), cfg.max_steps))
    saved, ours = ckpt.get("train_config", {}), asdict(cfg)
    return {k: (saved.get(k), ours[k]) for k in ours
            if k not in FREE_ON_RESUME and k in saved and saved[k] != ours[k]}


def _describe(changes: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in sorted(changes.items()))


def run_training(model_args: dict[str, Any], cfg: TrainConfig, *,
                 out_dir: str | Path | None = None, resume: bool = False,
                 stop_at: int | None = None, callbacks: Sequence[Callback] = (),
                 data: LMData | None = None) -> tuple[GPT, TrainState, LMData]:
    """Build the corpus, the tokenizer and a GPT from settings, then :func:`train_lm` it.

    ``model_args`` are GPTConfig fields; ``vocab_size`` comes from the tokenizer (giving a
    different one is an error). On resume the tokenizer is the checkpoint's. Returns
    (model, state, data).
    """
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
    state = train_lm(model, data, cfg, out_dir=out_dir, resume=resume, stop_at=stop_at,
                     callbacks=callbacks)
    return model, state, data


def load_model(path: str | Path, device: torch.device | str | None = None
               ) -> tuple[GPT, Tokenizer | None]:
    """Rebuild (model, tokenizer) from a checkpoint (or its folder), the model in eval mode on
    ``device``."""
    path = Path(path) / CHECKPOINT_NAME if Path(path).is_dir() else Path(path)
    ckpt = load_checkpoint(path)
    config = GPTConfig.from_dict(ckpt["model_config"])
    tokenizer = tokenizer_from_dict(ckpt["tokenizer"]) if ckpt["tokenizer"] else None
    if tokenizer is not None:
        check_vocab(config, tokenizer.vocab_size, f"the tokenizer stored in {path}")
    model = GPT(config)
    load_weights(model, ckpt["model"], path)
    device = pick_device(str(device) if device else None)
    return model.to(device).eval(), tokenizer
