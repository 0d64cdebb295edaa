"""``slm-course sample --checkpoint PATH --prompt TEXT [--max-new-tokens N ...]``."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="a ckpt.pt written by `slm-course train` (or its folder)")
    parser.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    parser.add_argument("--max-new-tokens", type=int, default=300)
    parser.add_argument("--temperature", type=float, default=0.8,
                        help="< 1 sharper, > 1 more random, 0 greedy (default 0.8)")
    parser.add_argument("--top-k", type=int, default=None, help="keep the k likeliest tokens")
    parser.add_argument("--top-p", type=float, default=None,
                        help="keep the likeliest tokens whose probabilities sum to p")
    parser.add_argument("--num-samples", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best)")


def run(args: argparse.Namespace) -> int:
    import torch

    from slm_course.cli.runs import load_model
    from slm_course.generate import generate

    if args.max_new_tokens < 0 or args.num_samples < 1:
        raise ValueError("--max-new-tokens must be >= 0 and --num-samples >= 1")
    model, tokenizer = load_model(args.checkpoint, device=args.device)
    if tokenizer is None:
        raise ValueError(f"{args.checkpoint} holds no tokenizer, so text cannot be encoded")
    ids = tokenizer.encode(args.prompt)  # an unknown character is the tokenizer's clear error
    if not ids:
        raise ValueError("the prompt is empty: give at least one character with --prompt")
    device = next(model.parameters()).device
    idx = torch.tensor([ids] * args.num_samples, dtype=torch.long, device=device)  # (N, T)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    out = generate(model, idx, args.max_new_tokens, temperature=args.temperature,
                   top_k=args.top_k, top_p=args.top_p, generator=generator)
    for i, row in enumerate(out.tolist()):
        if args.num_samples > 1:
            print(f"--- sample {i + 1} ---")
        print(tokenizer.decode(row))
    return 0
