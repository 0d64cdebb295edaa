"""Named training set-ups for ``slm-course train --preset NAME``, and typed overrides.

A preset is a model shape (GPTConfig fields; ``vocab_size`` comes from the tokenizer) plus a
TrainConfig. ``--key=value`` overrides any field of either; the value is parsed with the
field's type, and an unknown key is an error that lists the valid ones.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field, fields, replace
from typing import Any

from slm_course.gpt import GPTConfig
from slm_course.train import TrainConfig


@dataclass(frozen=True)
class Preset:
    """A model shape and a training recipe, with a one-line description."""

    name: str
    description: str
    model: dict[str, Any] = field(default_factory=dict)  # GPTConfig fields, no vocab_size
    train: TrainConfig = field(default_factory=TrainConfig)

    def settings(self) -> dict[str, Any]:
        """Every setting, model and training, in one flat dict (for printing)."""
        return {**self.model, **dataclasses.asdict(self.train)}


_CHAR_CPU_MODEL = dict(n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0, bias=False)
_CHAR_CPU_TRAIN = TrainConfig(
    dataset="tinyshakespeare", tokenizer="char", val_fraction=0.1,
    batch_size=12, max_steps=2000, lr=1e-3, min_lr=1e-4, warmup_steps=100,
    beta1=0.9, beta2=0.99, weight_decay=0.1, grad_clip=1.0,
    eval_interval=250, eval_batches=20)

PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("shakespeare-char-cpu",
           "nanoGPT's CPU recipe: 4 layers x 128 wide, 64 characters of context, 2000 steps "
           "(about 1.91 nats/char; nanoGPT publishes 1.88)",
           _CHAR_CPU_MODEL, _CHAR_CPU_TRAIN),
    Preset("shakespeare-char-cpu-fast",
           "a lower validation loss than shakespeare-char-cpu in the same wall time (about "
           "1.70 nats/char): a 5x higher learning rate, width 96, 2500 steps of 16 windows",
           {**_CHAR_CPU_MODEL, "n_embd": 96},
           replace(_CHAR_CPU_TRAIN, batch_size=16, max_steps=2500, lr=5e-3, min_lr=5e-4)),
    Preset("shakespeare-char-cpu-speedrun",
           "stage 18's speedrun: the lowest whole-split validation loss in 120 s on 2 CPU "
           "cores (target 1.62 nats/char): shakespeare-char-cpu-fast's shape with RoPE, "
           "RMSNorm, SwiGLU and Muon, decayed to zero; benchmarks/speedrun.py measures it",
           {**_CHAR_CPU_MODEL, "n_embd": 96, "norm": "rmsnorm", "position": "rope",
            "mlp": "swiglu"},
           replace(_CHAR_CPU_TRAIN, optimizer="muon", batch_size=16, max_steps=1600, lr=5e-3,
                   min_lr=0.0, warmup_steps=100, weight_decay=0.1, eval_interval=1600,
                   eval_batches=4, num_threads=2)),
    Preset("shakespeare-char-gpu",
           "nanoGPT's baby GPT on a GPU: 6 layers x 384 wide, 256 characters of context, "
           "5000 steps (nanoGPT publishes 1.47 nats/char; not yet measured here)",
           dict(n_layer=6, n_head=6, n_embd=384, block_size=256, dropout=0.2, bias=False),
           replace(_CHAR_CPU_TRAIN, batch_size=64, max_steps=5000, lr=1e-3, min_lr=1e-4,
                   warmup_steps=100, eval_interval=250, eval_batches=200)),
    Preset("shakespeare-bpe-cpu",
           "the CPU model on byte-level BPE tokens (512-token vocabulary trained on the "
           "training split; about 1.9 characters a token): about 1.71 nats/char",
           _CHAR_CPU_MODEL, replace(_CHAR_CPU_TRAIN, tokenizer="bpe", bpe_vocab_size=512)),
    Preset("wikitext2-bpe-cpu",
           "the CPU model on WikiText-2 (raw): its own train and valid splits, byte-level BPE "
           "(1024-token vocabulary trained on the training split), 2000 steps of 12 x 64 "
           "tokens: about 3 minutes on 2 idle CPU cores, estimated (a step costs what a "
           "shakespeare-char-cpu step does); validation loss not yet measured",
           _CHAR_CPU_MODEL, replace(_CHAR_CPU_TRAIN, dataset="wikitext-2", tokenizer="bpe",
                                    bpe_vocab_size=1024)),
    Preset("tiny",
           "a toy run for tests and the benchmark's default: 2 layers x 32 wide, 200 steps "
           "(a minute or less on a laptop CPU)",
           dict(n_layer=2, n_head=2, n_embd=32, block_size=32, dropout=0.0, bias=False),
           replace(_CHAR_CPU_TRAIN, batch_size=16, max_steps=200, lr=3e-3, min_lr=3e-4,
                   warmup_steps=20, eval_interval=50, eval_batches=8)),
]}

MODEL_KEYS = tuple(f.name for f in fields(GPTConfig))
TRAIN_KEYS = tuple(f.name for f in fields(TrainConfig))


def get_preset(name: str) -> Preset:
    """The preset called ``name``; an unknown name is an error that lists the presets."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of: "
                         f"{', '.join(sorted(PRESETS))}") from None


def valid_keys() -> list[str]:
    """Every key ``--key=value`` accepts."""
    return sorted(set(MODEL_KEYS) | set(TRAIN_KEYS))


def did_you_mean(args: list[str]) -> str:
    """'did you mean --n_layer? ' for a mistyped ``--n_layers=3``, or '' without a close key."""
    hints = []
    for arg in args:
        key = arg.lstrip("-").partition("=")[0].replace("-", "_")
        close = difflib.get_close_matches(key, valid_keys(), n=1)
        if close:
            hints.append(f"--{close[0]}")
    return f"did you mean {', '.join(hints)}? " if hints else ""


def parse_value(key: str, text: str) -> Any:
    """Parse ``text`` with the type of field ``key`` (int, float, bool, str)."""
    owner = GPTConfig if key in MODEL_KEYS else TrainConfig
    hint = typing.get_type_hints(owner)[key]
    kinds = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if type(None) in kinds and text.strip().lower() in ("none", "null", ""):
        return None
    kind = next(k for k in kinds if k is not type(None))
    if kind is bool:
        lowered = text.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"--{key} expects true or false, got {text!r}")
    try:
        value = kind(text)
    except ValueError:
        raise ValueError(f"--{key} expects {kind.__name__}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise ValueError(f"--{key} expects a finite number, got {text!r}")
    return value


def apply_overrides(preset: Preset, overrides: dict[str, str]) -> Preset:
    """Return ``preset`` with ``{key: text}`` overrides parsed and applied.

    An unknown key is an error listing the valid keys; a value that does not parse as the
    field's type, or a combination the configs reject, is an error too.
    """
    keys = set(valid_keys())
    unknown = sorted(set(overrides) - keys)
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown}; {did_you_mean(unknown)}valid keys: "
                         f"{', '.join(sorted(keys))}")
    model = dict(preset.model)
    train_changes: dict[str, Any] = {}
    for key, text in overrides.items():
        value = parse_value(key, text)
        if key in MODEL_KEYS:
            model[key] = value
        else:
            train_changes[key] = value
    # build both configs now so that a bad combination fails before any work is done
    GPTConfig(**{"vocab_size": 1, **model})
    return replace(preset, model=model, train=replace(preset.train, **train_changes))


def parse_overrides(args: list[str]) -> dict[str, str]:
    """``["--n_layer=6", "--lr", "3e-4"]`` -> ``{"n_layer": "6", "lr": "3e-4"}``.

    Dashes and underscores are interchangeable in keys (``--max-steps`` = ``--max_steps``).
    """
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or arg == "--":
            raise ValueError(f"expected --key=value, got {arg!r}; valid keys: "
                             f"{', '.join(valid_keys())}")
        key, sep, value = arg[2:].partition("=")
        if not sep:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                raise ValueError(f"--{key} needs a value: --{key}=VALUE")
            value = args[i + 1]
            i += 1
        out[key.replace("-", "_")] = value
        i += 1
    return out
