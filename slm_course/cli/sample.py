"""``slm-course sample --checkpoint PATH --prompt TEXT [--max-new-tokens N ...]``.

``--interactive`` (stage 17): a prompt loop on stdin. Each line you type is added to the
conversation so far, the model continues it, streaming token by token with the KV cache on,
until ``--stop`` (default: a blank line) or ``--max-new-tokens``; ``/reset`` forgets the
conversation, ``/quit`` or end of input (Ctrl-D) ends. Works with piped input too.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any


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
    parser.add_argument("--interactive", action="store_true",
                        help="a prompt loop: type a line, the model continues the "
                             "conversation (streamed, KV cache on); /reset, /quit")
    parser.add_argument("--stop", default="\n\n",
                        help="--interactive: end the model's turn at this text (default: a "
                             "blank line)")
    parser.add_argument("--no-cache", action="store_true",
                        help="recompute the whole context for every token (slower; the same "
                             "text), to compare with the KV cache")


LARGE = 100_000  # more new tokens than this takes minutes on a CPU: say so


def check_arguments(args: argparse.Namespace) -> None:
    """Every argument checked before the checkpoint loads."""
    if args.max_new_tokens < 0 or args.num_samples < 1:
        raise ValueError("--max-new-tokens must be >= 0 and --num-samples >= 1")
    if not (args.temperature >= 0 and math.isfinite(args.temperature)):
        raise ValueError(f"--temperature must be a finite number >= 0 (0 is greedy), got "
                         f"{args.temperature}")
    if args.top_k is not None and args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
    if args.top_p is not None and not 0 < args.top_p <= 1:
        raise ValueError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.max_new_tokens > LARGE:
        print(f"slm-course sample: --max-new-tokens {args.max_new_tokens:,} is a lot (minutes "
              f"or hours on a CPU); the text is printed as it comes, and Ctrl-C stops it "
              f"keeping what was printed", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    import torch

    from slm_course.cli.runs import load_model
    from slm_course.generate import generate_stream

    check_arguments(args)
    model, tokenizer = load_model(args.checkpoint, device=args.device)
    if tokenizer is None:
        raise ValueError(f"{args.checkpoint} holds no tokenizer, so text cannot be encoded")
    if args.interactive:
        return interactive(model, tokenizer, args)
    ids = tokenizer.encode(args.prompt)  # an unknown character is the tokenizer's clear error
    if not ids:
        raise ValueError("the prompt is empty: give at least one character with --prompt")
    device = next(model.parameters()).device
    idx = torch.tensor([ids] * args.num_samples, dtype=torch.long, device=device)  # (N, T)
    generator = torch.Generator(device=device).manual_seed(args.seed)
    rows = [list(ids) for _ in range(args.num_samples)]
    stream = args.num_samples == 1  # one sample: print each token as it comes
    pending: list[int] = []
    try:
        if stream:
            print(tokenizer.decode(ids), end="", flush=True)
        for next_id in generate_stream(model, idx, args.max_new_tokens,
                                       temperature=args.temperature, top_k=args.top_k,
                                       top_p=args.top_p, generator=generator,
                                       use_cache=not args.no_cache):
            for row, token in zip(rows, next_id[:, 0].tolist(), strict=True):
                row.append(token)
            if stream:
                pending.append(rows[0][-1])
                pending = _print_complete(tokenizer, pending)
    except KeyboardInterrupt:
        new = len(rows[0]) - len(ids)
        _print_rows(tokenizer, rows, pending if stream else None)
        print(f"slm-course sample: stopped by Ctrl-C after {new} new token(s)", file=sys.stderr)
        return 130
    _print_rows(tokenizer, rows, pending if stream else None)
    return 0


def interactive(model: Any, tokenizer: Any, args: argparse.Namespace) -> int:
    """The prompt loop of ``--interactive``: read a line, stream the model's continuation of
    the whole conversation (cropped to its context by the generator), repeat."""
    import torch

    from slm_course.generate import generate_stream

    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(args.seed)
    history: list[int] = tokenizer.encode(args.prompt) if args.prompt != "\n" else []
    print(f"slm-course sample: interactive, context {model.config.block_size} tokens, KV "
          f"cache {'off' if args.no_cache else 'on'}; /reset forgets, /quit or Ctrl-D ends",
          file=sys.stderr)
    while True:
        print("> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        if not line or line.strip() == "/quit":  # end of input
            print(file=sys.stderr)
            return 0
        if line.strip() == "/reset":
            history = []
            print("(conversation forgotten)", file=sys.stderr)
            continue
        try:
            history += tokenizer.encode(line if line.endswith("\n") else line + "\n")
        except ValueError as err:  # e.g. a character the model never saw
            print(f"slm-course sample: {err}", file=sys.stderr)
            continue
        if not history:
            continue
        idx = torch.tensor([history], dtype=torch.long, device=device)  # (1, T)
        reply: list[int] = []
        pending: list[int] = []
        try:
            for next_id in generate_stream(model, idx, args.max_new_tokens,
                                           temperature=args.temperature, top_k=args.top_k,
                                           top_p=args.top_p, generator=generator,
                                           use_cache=not args.no_cache):
                reply.append(int(next_id))
                pending = _print_complete(tokenizer, pending + [reply[-1]])
                if args.stop and tokenizer.decode(reply).endswith(args.stop):
                    break
        except KeyboardInterrupt:  # Ctrl-C ends this turn, not the session
            print("\n(stopped)", file=sys.stderr)
        print(tokenizer.decode(pending) if pending else "", flush=True)
        history += reply


def _print_complete(tokenizer: Any, pending: list[int]) -> list[int]:
    """Print the text of ``pending`` unless it ends inside a character (a byte-level token
    can hold part of one); returns what is still pending."""
    text = tokenizer.decode(pending)
    if text.endswith("\ufffd") and len(pending) < 8:
        return pending
    print(text, end="", flush=True)
    return []


def _print_rows(tokenizer: Any, rows: list[list[int]], pending: list[int] | None) -> None:
    if pending is not None:  # streamed: finish the line
        print(tokenizer.decode(pending) if pending else "", flush=True)
        return
    for i, row in enumerate(rows):
        if len(rows) > 1:
            print(f"--- sample {i + 1} ---")
        print(tokenizer.decode(row))
