"""``slm-course export --checkpoint PATH --out DIR``: a checkpoint as a Hugging Face folder.

The folder holds a ``transformers`` GPT-2 (``config.json`` and the weights, written by
``save_pretrained``) and the course's tokenizer as ``slm_course_tokenizer.json`` (a GPT-2
tokenizer would not know our characters or merges). Needs the optional ``transformers``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TOKENIZER_FILE = "slm_course_tokenizer.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", type=Path, required=True,
                        help="a ckpt.pt written by `slm-course train` (or its folder)")
    parser.add_argument("--out", type=Path, required=True,
                        help="the folder to write (must not exist yet, or be empty)")


def run(args: argparse.Namespace) -> int:
    from slm_course.cli.runs import load_model
    from slm_course.export import gpt_to_hf, require_transformers

    if args.out.exists() and any(args.out.iterdir()):
        raise ValueError(f"{args.out} already exists and is not empty; choose a new --out "
                         f"folder (nothing was overwritten)")
    require_transformers()  # before loading anything: the clear install hint
    model, tokenizer = load_model(args.checkpoint, device="cpu")
    hf = gpt_to_hf(model)
    hf.save_pretrained(args.out)
    if tokenizer is not None:
        (args.out / TOKENIZER_FILE).write_text(json.dumps(tokenizer.to_dict()),
                                               encoding="utf-8")
    print(f"wrote {args.out}: a GPT-2 of {model.num_params(False):,} parameters "
          f"(vocab {model.config.vocab_size}, context {model.config.block_size})\n"
          f"load it with: transformers.GPT2LMHeadModel.from_pretrained({str(args.out)!r}); "
          f"its tokenizer: slm_course.tokenizers.tokenizer_from_dict(json.load(open("
          f"'{args.out / TOKENIZER_FILE}')))")
    return 0
