"""Train the `shakespeare-char-cpu` recipe the way nanoGPT's ``train.py`` does, and print
what nanoGPT would print.

    python benchmarks/nanogpt_procedure.py                  # seed 1337, eval_iters 20
    python benchmarks/nanogpt_procedure.py --seed 2 --eval-iters 200

The model is ``slm_course.gpt.GPT`` (nanoGPT's layout and initialisation); what this script
copies is nanoGPT's *procedure*, which differs from ``slm_course.train`` only in its random
streams and its evaluation:

- one global torch RNG, seeded once, draws the initial weights, every training batch and
  every evaluation batch, so evaluating (and how many batches it uses) changes the batches
  that training sees afterwards;
- each evaluation averages ``eval_iters`` *random* batches of each split;
- the warm-up is lr (it + 1) / (warmup + 1), and the next batch is drawn before backward.

It exists to answer one question: is nanoGPT's published "1.88" for this recipe a property
of the recipe, or one draw? See benchmarks/README.md. Not a test: a run takes minutes.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import torch

from slm_course.cli.presets import get_preset
from slm_course.gpt import GPT, GPTConfig
from slm_course.lm_data import prepare_lm_data, split_loss
from slm_course.train import param_groups


def nanogpt_lr(it: int, lr: float, min_lr: float, warmup: int, decay_iters: int) -> float:
    """nanoGPT's get_lr: linear warm-up to lr at it = warmup, cosine to min_lr at decay_iters."""
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it > decay_iters:
        return min_lr
    ratio = (it - warmup) / (decay_iters - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr - min_lr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1337)
    parser.add_argument("--eval-iters", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0, help="0: PyTorch's default")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    preset = get_preset("shakespeare-char-cpu")
    cfg, T = preset.train, preset.model["block_size"]
    data = prepare_lm_data(cfg.dataset, cfg.tokenizer, val_fraction=cfg.val_fraction)

    torch.manual_seed(args.seed)  # the one generator behind everything below
    model = GPT(GPTConfig(vocab_size=data.vocab_size, **preset.model))
    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr,
                                  betas=(cfg.beta1, cfg.beta2))

    def batch(split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return data.get_batch(split, cfg.batch_size, T)  # global RNG

    @torch.no_grad()
    def estimate() -> dict[str, float]:
        model.eval()
        out = {s: sum(float(model(*batch(s))[1]) for _ in range(args.eval_iters))
               / args.eval_iters for s in ("train", "val")}
        model.train()
        return out

    x, y = batch("train")
    start = time.perf_counter()
    for it in range(cfg.max_steps + 1):
        lr = nanogpt_lr(it, cfg.lr, cfg.min_lr, cfg.warmup_steps, cfg.max_steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if it % cfg.eval_interval == 0:
            losses = estimate()
            print(f"step {it}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
                  f"  ({time.perf_counter() - start:.0f} s)", flush=True)
        if it == cfg.max_steps:  # nanoGPT takes one more step and stops; it changes nothing
            break
        _, loss = model(x, y)
        x, y = batch("train")  # drawn before backward, as nanoGPT prefetches
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    whole = split_loss(model, data.val, T)
    print(f"whole validation split: {whole:.4f} (seed {args.seed}, eval_iters "
          f"{args.eval_iters})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
