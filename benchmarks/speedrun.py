"""The CPU speedrun (stage 18): the best Tiny Shakespeare model in two minutes on 2 cores.

    python benchmarks/speedrun.py                       # 3 runs of each preset, ~15 min
    python benchmarks/speedrun.py --runs 1 --presets shakespeare-char-cpu-speedrun

Trains ``shakespeare-char-cpu-fast`` (the GPT-2-style recipe of stage 14) and
``shakespeare-char-cpu-speedrun`` (RoPE, RMSNorm, SwiGLU, Muon, ...) side by side in one
process: the presets take turns (A B A B A B), so a change in the machine's load hits both,
and each run starts from its preset's seed with the same data. Per run it records the
training wall time (``slm_course.cli.runs.train_lm``: everything from the first step to the
last evaluation, model set-up included, data preparation not) and the loss on the **whole**
validation split (``slm_course.lm_data.split_loss``: every character predicted once, in
windows of the preset's context), and prints the median of the runs of each preset.

The target of the speedrun: a whole-split validation loss of at most 1.62 nats/char within
120 s of training on the course's 2-core build machine (two PyTorch threads). The records
table is in ``benchmarks/README.md``.

Not a test: the numbers depend on the machine and on whatever else it is running.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from dataclasses import replace

import torch

from slm_course.cli.presets import get_preset
from slm_course.cli.runs import run_training
from slm_course.lm_data import prepare_lm_data, split_loss

TARGET_LOSS, TARGET_SECONDS = 1.62, 120.0


def run_once(name: str, threads: int, data) -> dict[str, float]:
    """Train preset ``name`` once; return its training seconds and whole-split loss."""
    preset = get_preset(name)
    cfg = replace(preset.train, num_threads=threads, progress=False)
    model, state, _ = run_training(preset.model, cfg, data=data)
    torch.set_num_threads(threads)
    loss = split_loss(model, data.val, model.config.block_size, 64)
    return {"seconds": state.extra["seconds"], "loss": loss / data.chars_per_token("val"),
            "steps": state.step, "tokens_per_second": state.extra["tokens_per_second"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=["shakespeare-char-cpu-fast",
                                                         "shakespeare-char-cpu-speedrun"])
    parser.add_argument("--runs", type=int, default=3, help="runs of each preset (median)")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads")
    parser.add_argument("--json", default=None, help="also write every run to this file")
    args = parser.parse_args()
    data = prepare_lm_data("tinyshakespeare", "char")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch "
          f"{torch.__version__}, {args.threads} threads, load average {load:.2f} at start")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in args.presets}
    for round_ in range(args.runs):
        for name in args.presets:
            t0 = time.perf_counter()
            result = run_once(name, args.threads, data)
            results[name].append(result)
            print(f"run {round_ + 1}/{args.runs} {name}: {result['loss']:.4f} nats/char, "
                  f"{result['seconds']:.1f} s training ({result['steps']} steps, "
                  f"{result['tokens_per_second']:,.0f} tokens/s; "
                  f"{time.perf_counter() - t0:.1f} s with the evaluation)", flush=True)
    print(f"\nload average {os.getloadavg()[0]:.2f} at the end\n")
    print("| preset | whole-split val loss (median; runs) | training wall time (median; runs) "
          "| target met |")
    print("|---|---|---|---|")
    for name, runs in results.items():
        loss = statistics.median(r["loss"] for r in runs)
        secs = statistics.median(r["seconds"] for r in runs)
        met = "yes" if loss <= TARGET_LOSS and secs <= TARGET_SECONDS else "no"
        losses = ", ".join(f"{r['loss']:.3f}" for r in runs)
        times = ", ".join(f"{r['seconds']:.0f}" for r in runs)
        print(f"| `{name}` | **{loss:.3f}** ({losses}) | **{secs:.0f} s** ({times}) | {met} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
