"""``slm-course train --preset NAME [--key=value ...] [--out DIR] [--resume]``.

Every field of GPTConfig and TrainConfig is an option (``--n_layer=6``, ``--max-steps 500``);
``slm-course train --list`` shows the presets. Run it under ``torchrun --nproc_per_node=N``
(``torchrun --nproc_per_node=2 -m slm_course train --preset ...``) to train on N processes.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from slm_course.cli.presets import PRESETS, apply_overrides, did_you_mean, get_preset, valid_keys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", help=f"one of: {', '.join(PRESETS)}")
    parser.add_argument("--list", action="store_true",
                        help="list the presets with every value and exit (with --preset: "
                             "that one, overrides applied)")
    parser.add_argument("--out", type=Path, default=None,
                        help="checkpoint folder (default: runs/PRESET); ckpt.pt is written "
                             "every eval_interval steps, at the end and on Ctrl-C")
    parser.add_argument("--resume", action="store_true",
                        help="continue exactly from OUT/ckpt.pt (settings must match the "
                             "checkpoint's; --max_steps may grow)")
    parser.add_argument("--allow-changes", action="store_true",
                        help="with --resume: accept settings that differ from the "
                             "checkpoint's (the log records them)")
    group = parser.add_argument_group(
        "settings", "override any model or training setting of the preset, e.g. --n_layer=6 "
        f"(see a preset's values with --preset NAME --list): {', '.join(valid_keys())}")
    for key in valid_keys():
        names = [f"--{key}"] + ([f"--{key.replace('_', '-')}"] if "_" in key else [])
        group.add_argument(*names, dest=f"set_{key}", metavar="VALUE",
                           default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.allow_abbrev = False  # --n_lay=2 is a typo, not n_layer
    argparse_error = parser.error

    def error(message: str) -> None:  # an unknown --key: say which keys exist
        if message.startswith("unrecognized arguments"):
            message += f"\n{did_you_mean(message.split(':', 1)[1].split())}valid settings: " \
                       f"{', '.join(valid_keys())}"
        argparse_error(message)

    parser.error = error  # type: ignore[method-assign]


def run(args: argparse.Namespace) -> int:
    from slm_course.cli.runs import StopOnInterrupt, TrainingStopped, run_training
    from slm_course.gpt import GPTConfig
    from slm_course.helpers.checkpoints import CHECKPOINT_NAME
    from slm_course.helpers.run_log import log_event
    from slm_course.lm_data import split_loss

    is_main = int(os.environ.get("RANK", "0")) == 0
    overrides = {k[len("set_"):]: v for k, v in vars(args).items() if k.startswith("set_")}
    if args.list:
        chosen = [get_preset(args.preset)] if args.preset else list(PRESETS.values())
        for preset in chosen:
            print_preset(apply_overrides(preset, overrides) if args.preset else preset)
        return 0
    if not args.preset:
        raise ValueError(f"choose a preset with --preset NAME ({', '.join(PRESETS)}); "
                         f"see them with `slm-course train --list`")
    preset = apply_overrides(get_preset(args.preset), overrides)
    out = args.out or Path("runs") / preset.name
    check_out_folder(out)
    check_dataset(preset.train.dataset)
    if not args.resume and (out / CHECKPOINT_NAME).exists():
        raise ValueError(f"{out / CHECKPOINT_NAME} exists: pass --resume to continue that run "
                         f"or choose another --out folder")
    cfg = preset.train
    changes = check_resume(args, preset, out)
    listed = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items())
    if is_main:
        if changes:
            print(f"resuming with changed settings (--allow-changes): {listed}")
            log_event(out, {"kind": "resume_changes",
                            "changes": {k: list(v) for k, v in changes.items()}})
        changed = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "none"
        print(f"preset {preset.name} (overrides: {changed}) -> {out}")
        shape = GPTConfig(**{"vocab_size": 1, **preset.model})
        print(f"model: {shape.n_layer} layers, {shape.n_head} heads, width {shape.n_embd}, "
              f"context {shape.block_size}; data: {cfg.dataset} ({cfg.tokenizer} tokens); "
              f"{cfg.max_steps} steps of {cfg.batch_size} x {shape.block_size} tokens")
    # a progress bar only on a terminal: in a log file it is thousands of \r-joined lines
    cfg = replace(cfg, progress=cfg.progress and sys.stderr.isatty())
    single = int(os.environ.get("WORLD_SIZE", "1")) == 1  # torchrun: Ctrl-C stops at once
    try:
        with StopOnInterrupt(cfg) if single else contextlib.nullcontext() as stopper:
            hooks = [PrintProgress(cfg)] + ([stopper] if stopper else [])
            model, result, data = run_training(preset.model, cfg, out_dir=out,
                                               resume=args.resume, callbacks=hooks)
    except TrainingStopped as stop:
        again = " ".join(shlex.quote(a) for a in [
            "slm-course", "train", "--preset", preset.name,
            *(f"--{k}={v}" for k, v in overrides.items()), "--out", str(out), "--resume"])
        if stop.checkpoint is None:
            print(f"interrupted at step {stop.state.step}: nothing to save yet", file=sys.stderr)
        else:
            print(f"interrupted at step {stop.state.step}: saved {stop.checkpoint}; "
                  f"continue with: {again}", file=sys.stderr)
        return 130
    if is_main:
        print(f"{model.num_params() / 1e6:.2f}M parameters, vocabulary {data.vocab_size}, "
              f"device {result.extra['device']}, {result.extra['world_size']} process(es)")
        print(f"final validation loss {result.final_val_loss:.4f} nats/token after "
              f"{result.step} steps ({cfg.eval_batches} fixed batches); "
              f"{result.extra['seconds']:.1f} s wall, "
              f"{result.extra['tokens_per_second']:,.0f} tokens/s")
        if result.step == cfg.max_steps:  # the number to report: no sampling noise
            full = split_loss(model, data.val, model.config.block_size, cfg.batch_size)
            per_char = full / data.chars_per_token("val")  # nats/token -> nats/character
            log_event(out, {"kind": "final", "step": result.step, "val_loss_full_split": full,
                            "val_loss_per_char": per_char, "val_tokens": len(data.val)})
            print(f"validation loss on the whole validation split ({len(data.val):,} tokens): "
                  f"{full:.4f} nats/token = {per_char:.4f} nats/character")
        print(f"checkpoint: {out / CHECKPOINT_NAME}\nsample it: slm-course sample "
              f"--checkpoint {out / CHECKPOINT_NAME} --prompt 'ROMEO:'")
    return 0


def check_resume(args: argparse.Namespace, preset: Any, out: Path) -> dict[str, Any]:
    """With --resume: the settings that differ from the checkpoint's, {key: (old, new)}; an
    error unless --allow-changes accepts them."""
    from slm_course.cli.runs import resume_changes
    from slm_course.helpers.checkpoints import CHECKPOINT_NAME, load_checkpoint

    if not args.resume:
        if args.allow_changes:
            raise ValueError("--allow-changes only applies with --resume")
        return {}
    path = out / CHECKPOINT_NAME
    changes = resume_changes(load_checkpoint(path), preset.model, preset.train, path)
    if changes and not args.allow_changes:
        listed = ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changes.items())
        raise ValueError(f"--resume would not continue the same run: these settings differ "
                         f"from the checkpoint {path}'s: {listed} (checkpoint -> this run). "
                         f"Drop those overrides to resume exactly, pass --allow-changes to "
                         f"resume with them anyway (the log records it), or start a new run "
                         f"in another --out folder")
    return changes


def print_preset(preset: Any) -> None:
    """A preset's name, description and every value, wrapped to 92 columns."""
    import textwrap

    print(f"{preset.name}: {preset.description}")
    for part, values in (("model", preset.model), ("train", asdict(preset.train))):
        text = " ".join(f"{k}={v}" for k, v in values.items())
        print(textwrap.fill(text, 92, initial_indent=f"  {part}: ",
                            subsequent_indent=" " * 9))


class PrintProgress:
    """A training callback that prints each evaluation as it happens and, without a progress
    bar (stdout a file or a pipe), a line about every fifth of an evaluation interval."""

    def __init__(self, cfg: Any):
        self.bar = cfg.progress
        self.every = cfg.log_interval * max(1, cfg.eval_interval // (5 * cfg.log_interval))

    def __call__(self, kind: str, state: Any) -> None:
        if kind == "eval" and state.history:
            entry = state.history[-1]
            self.emit(f"step {entry['step']:>6}: train {entry['train_loss']:.4f}  "
                      f"val {entry['val_loss']:.4f}")
        elif kind == "step" and not self.bar and state.step % self.every == 0:
            self.emit(f"step {state.step:>6}: loss {state.last_loss:.4f}, lr "
                      f"{state.lrs[-1]:.2e}, {state.items_per_second:,.0f} tokens/s")

    def emit(self, line: str) -> None:
        if self.bar:  # above the bar, which redraws below it
            from tqdm import tqdm

            tqdm.write(line, file=sys.stdout)
        else:
            print(line, flush=True)


def check_dataset(name: str) -> None:
    """A dataset is a course corpus or a UTF-8 text file: check it before any work."""
    from slm_course.lm_data import CORPORA

    if name in CORPORA:
        return
    path = Path(name)
    if not path.is_file():
        raise ValueError(f"--dataset={name}: no such file, and not a course dataset; use "
                         f"one of {', '.join(CORPORA)} or the path of a UTF-8 text file")
    try:
        path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"--dataset={path} is not UTF-8 text (byte {err.start} is "
                         f"0x{err.object[err.start]:02x}); give a UTF-8 text file, or convert "
                         f"it first, e.g. `iconv -f latin1 -t utf-8`") from None
    except OSError as err:
        raise ValueError(f"--dataset={path} cannot be read ({err.strerror})") from None


def check_out_folder(out: Path) -> None:
    """``--out`` must be a folder this process can write (or be able to create), checked
    before any work so a long run does not fail at its first checkpoint."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder: choose a folder for ckpt.pt "
                         f"and log.jsonl (it is created if missing)")
    existing = out
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"--out {out} cannot be created: {existing} is a file, not a folder")
    try:  # a real write: permissions, read-only mounts and quotas all show up here
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise ValueError(f"--out {out} cannot be written: {existing} is not writable "
                         f"({err.strerror}); choose a folder you can write to with "
                         f"--out DIR") from None
