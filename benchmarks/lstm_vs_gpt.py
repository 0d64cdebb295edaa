"""A character LSTM against the GPT of stage 14 at the same wall-clock budget (stage 11).

    python benchmarks/lstm_vs_gpt.py                    # 150 s each, PyTorch's default threads
    python benchmarks/lstm_vs_gpt.py --seconds 5 --threads 1      # a smoke test

Both train on Tiny Shakespeare with lesson 14's character tokenizer and 90/10 split, one
after the other in this process:

- the LSTM of lesson 11 (embedding 64, one LSTM layer of 256, 32 contiguous rows, chunks of
  64 characters, truncated BPTT with the state carried, AdamW 6e-3 with cosine decay);
- the GPT of the preset ``shakespeare-char-cpu`` (4 layers x 128, context 64), with the
  preset's settings.

Each gets a schedule that ends on time: ``slm_course.lstm.steps_in_budget`` times a few steps
on a throw-away copy (not counted in the budget) and sets ``max_steps`` to what fits in
``--seconds``. If the machine slows down after that, a deadline stops training at 1.1 x
``--seconds`` (the table then shows fewer steps than planned). Printed per model: steps,
training seconds (wall), tokens/s and the loss on the **whole** validation split (every
character predicted once): for the LSTM both with the state carried through the split
(``stream_loss``) and in windows of 64 from a zero state (``lm_data.split_loss``, exactly
how the GPT is scored).

Not a test: the numbers depend on the machine and on whatever else it is running.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from dataclasses import replace

import torch

from slm_course.cli.presets import get_preset
from slm_course.gpt import GPT, GPTConfig
from slm_course.lm_data import LMData, prepare_lm_data, split_loss
from slm_course.lstm import (
    CarryState,
    RecurrentLM,
    RecurrentLMConfig,
    TBPTTBatches,
    steps_in_budget,
    stream_loss,
)
from slm_course.train import TrainConfig, train

LSTM_ROWS, LSTM_CHUNK, LSTM_LR = 32, 64, 6e-3
GRACE = 1.1  # training stops at GRACE x the budget even if the planned steps are not done


class _OutOfTime(Exception):
    pass


def train_until(model, next_batch, cfg: TrainConfig, seconds: float):
    """``train`` with a deadline: returns (state, wall seconds, whether the deadline hit)."""
    seen = {}
    start = time.perf_counter()

    def deadline(kind: str, state) -> None:
        seen["state"] = state
        if kind == "step" and time.perf_counter() - start > GRACE * seconds:
            raise _OutOfTime

    try:
        state, stopped = train(model, next_batch, cfg, callbacks=[deadline]), False
    except _OutOfTime:
        state, stopped = seen["state"], True
    return state, time.perf_counter() - start, stopped


def run_lstm(data: LMData, seconds: float) -> dict[str, float]:
    torch.manual_seed(0)
    lm = RecurrentLM(RecurrentLMConfig(data.vocab_size, n_embd=64, n_hidden=256))
    model = CarryState(lm)
    base = TrainConfig(batch_size=LSTM_ROWS, max_steps=1, lr=LSTM_LR, min_lr=LSTM_LR / 10,
                       warmup_steps=0, weight_decay=0.1, grad_clip=1.0, progress=False)
    probe = TBPTTBatches(data.train, LSTM_ROWS, LSTM_CHUNK)
    steps = steps_in_budget(model, probe, base, seconds)
    cfg = replace(base, max_steps=steps, warmup_steps=min(50, steps // 10), eval_interval=steps,
                  log_interval=1, progress=True)  # log_interval 1: the deadline checks each step
    stream = TBPTTBatches(data.train, LSTM_ROWS, LSTM_CHUNK, on_restart=model.reset)
    state, train_seconds, _ = train_until(model, stream, cfg, seconds)
    return {"params": lm.num_params(), "steps": state.step, "planned": steps,
            "seconds": train_seconds,
            "tokens_per_s": state.items_per_second,
            "val_windows": split_loss(lm, data.val, 64),
            "val_carried": stream_loss(lm, data.val)}


def run_gpt(data: LMData, seconds: float) -> dict[str, float]:
    preset = get_preset("shakespeare-char-cpu")
    base = replace(preset.train, progress=False)
    torch.manual_seed(base.seed)
    model = GPT(GPTConfig(**preset.model, vocab_size=data.vocab_size))
    block = model.config.block_size
    probe_gen = torch.Generator().manual_seed(base.seed + 1)
    steps = steps_in_budget(model, lambda: data.get_batch("train", base.batch_size, block,
                                                          probe_gen), base, seconds)
    cfg = replace(base, max_steps=steps, warmup_steps=min(base.warmup_steps, steps // 10),
                  eval_interval=steps, log_interval=1, progress=True)
    data_gen = torch.Generator().manual_seed(base.seed)
    state, train_seconds, _ = train_until(
        model, lambda: data.get_batch("train", cfg.batch_size, block, data_gen), cfg, seconds)
    return {"params": model.num_params(), "steps": state.step, "planned": steps,
            "seconds": train_seconds,
            "tokens_per_s": state.items_per_second,
            "val_windows": split_loss(model, data.val, block)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=150.0,
                        help="wall-clock training budget of each model (default 150)")
    parser.add_argument("--threads", type=int, default=0,
                        help="PyTorch CPU threads (default 0: PyTorch's default)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.threads < 0:
        parser.error("--seconds must be > 0 and --threads >= 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    data = prepare_lm_data()  # lesson 14's: character tokenizer, 90/10 split
    results = {"char LSTM (lesson 11)": run_lstm(data, args.seconds),
               "GPT shakespeare-char-cpu": run_gpt(data, args.seconds)}

    print(f"\nmachine: {platform.machine()} {platform.system()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}; budget {args.seconds:g} s of training each")
    print(f"validation: the whole split ({len(data.val):,} characters), nats/char")
    header = (f"{'model':>26} {'params':>9} {'steps':>11} {'train s':>8} {'tokens/s':>9} "
              f"{'val, windows of 64':>19} {'val, state carried':>19}")
    print(header + "   (steps: done/planned)")
    for name, r in results.items():
        carried = f"{r['val_carried']:.3f}" if "val_carried" in r else "-"
        steps = f"{r['steps']}/{r['planned']}"
        print(f"{name:>26} {r['params']:>9,} {steps:>11} {r['seconds']:>8.1f} "
              f"{r['tokens_per_s']:>9,.0f} {r['val_windows']:>19.3f} {carried:>19}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
