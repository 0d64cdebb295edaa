"""Training speed of a preset: tokens/s, time to a validation loss, peak memory.

    python benchmarks/train_speed.py                                  # tiny preset, ~1 min
    python benchmarks/train_speed.py --preset shakespeare-char-cpu --target-val-loss 1.88
    python benchmarks/train_speed.py --preset shakespeare-char-gpu --target-val-loss 1.5 \\
        --compile=true                                                # any --key=value

Not a test: the numbers depend on the machine and on whatever else it is running.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time

import torch

from slm_course.cli.presets import apply_overrides, get_preset, parse_overrides
from slm_course.cli.runs import run_training
from slm_course.lm_data import prepare_lm_data, split_loss


def peak_memory_bytes(device: str) -> tuple[int, str]:
    """CUDA: max_memory_allocated; otherwise the peak resident set size of this process."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(), "CUDA max_memory_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (rss if sys.platform == "darwin" else rss * 1024), "peak process RSS"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--target-val-loss", type=float, default=2.8,
                        help="report the wall time until validation loss <= this (default "
                             "2.8, which the tiny preset reaches)")
    args, rest = parser.parse_known_args(argv)
    preset = apply_overrides(get_preset(args.preset), parse_overrides(rest))
    cfg = preset.train

    t0 = time.perf_counter()
    data = prepare_lm_data(cfg.dataset, cfg.tokenizer, cfg.bpe_vocab_size, cfg.val_fraction)
    prep_seconds = time.perf_counter() - t0
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()

    reached: dict[str, float] = {}
    start = time.perf_counter()

    def on_eval(kind: str, state) -> None:
        if kind == "eval" and "val_loss" not in reached \
                and state.history[-1]["val_loss"] <= args.target_val_loss:
            reached.update(val_loss=state.history[-1]["val_loss"], step=state.step,
                           seconds=time.perf_counter() - start)

    model, result, _ = run_training(preset.model, cfg, callbacks=[on_eval], data=data)
    memory, how = peak_memory_bytes(result.extra["device"])  # before the full-split evaluation
    full_val = split_loss(model, data.val, model.config.block_size, cfg.batch_size)
    block = model.config.block_size
    print(f"preset {preset.name}: {model.num_params() / 1e6:.2f}M parameters, "
          f"{cfg.batch_size} x {block} tokens a step, {result.step} steps")
    print(f"machine: {platform.machine()} {platform.system()}, device {result.extra['device']}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    print(f"data + tokenizer: {prep_seconds:.1f} s")
    tok_s = result.extra["tokens_per_second"]
    print(f"training: {tok_s:,.0f} tokens/s "
          f"({1000 * cfg.batch_size * block / tok_s:.1f} ms a step, "
          f"evaluation excluded); {result.extra['seconds']:.1f} s wall, "
          f"{result.extra['cpu_seconds']:.1f} s CPU")
    if reached:
        print(f"validation loss <= {args.target_val_loss}: reached {reached['val_loss']:.3f} at "
              f"step {reached['step']} after {reached['seconds']:.1f} s (evaluations included)")
    else:
        print(f"validation loss <= {args.target_val_loss}: not reached "
              f"(final {result.final_val_loss:.3f})")
    print(f"final validation loss: {result.final_val_loss:.4f} on {cfg.eval_batches} fixed "
          f"batches, {full_val:.4f} on the whole validation split")
    print(f"peak memory: {memory / 2**20:,.0f} MiB ({how})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
