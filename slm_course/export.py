"""The course's GPT and Hugging Face's ``GPT2LMHeadModel``: one architecture, two spellings.

Our GPT uses GPT-2's names, so the state dicts map key for key:

    ours                                  Hugging Face GPT2LMHeadModel
    transformer.wte.weight   (V, C)       transformer.wte.weight   (V, C)
    transformer.h.0.attn.c_attn.weight    transformer.h.0.attn.c_attn.weight
        nn.Linear: (out, in) = (3C, C)        Conv1D: (in, out) = (C, 3C)   -> transpose
    ... attn.c_proj, mlp.c_fc, mlp.c_proj: the same transpose; LayerNorms, biases, wpe: as is
    lm_head.weight = wte.weight (tied)    lm_head.weight = wte.weight (tied)

GPT-2's Conv1D computes y = x W + b with W stored (in, out), the maths' own layout; PyTorch's
``nn.Linear`` stores W as (out, in) and computes y = x W^T + b, hence the transpose. GPT-2 has
biases everywhere and uses the tanh GELU (``gelu_new``); a course GPT with ``bias=False``
exports with zero biases (the same function), and ``activation="gelu_tanh"`` runs GPT-2.

``transformers`` is an optional extra (``pip install transformers``, or ``pip install
slm-course[hf]``): it is imported only when a function here needs it.

Stage 17: inference.
"""

from __future__ import annotations

from typing import Any

import torch

from slm_course.gpt import GPT, GPTConfig

CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight",
                  "mlp.c_proj.weight")  # stored (in, out) by GPT-2, (out, in) by nn.Linear
HF_ACTIVATION = {"gelu": "gelu", "gelu_tanh": "gelu_new"}  # ours -> transformers' name
OUR_ACTIVATION = {"gelu": "gelu", "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh"}
LAYER_NORM_EPS = 1e-5  # slm_course.transformer.LayerNorm's eps, and GPT-2's


def require_transformers() -> Any:
    """Import ``transformers``, or raise an ImportError that says how to install it."""
    try:
        import transformers
    except ImportError as err:
        raise ImportError("this needs Hugging Face transformers, an optional extra of the "
                          "course: pip install transformers  (or: pip install -e '.[hf]')"
                          ) from err
    return transformers


def is_conv1d(key: str) -> bool:
    """True for the weights GPT-2 stores transposed (Conv1D: (in, out))."""
    return key.endswith(CONV1D_WEIGHTS)


# GPTConfig options beyond GPT-2 (stage 18's modern variants) and the values GPT-2 has
GPT2_ONLY = {"norm": "layernorm", "position": "learned", "mlp": "gelu"}


def check_gpt2_compatible(config: GPTConfig) -> None:
    """Raise a ValueError unless ``config`` describes a model GPT-2's architecture can hold
    (LayerNorm, learned positions, a GELU MLP, one key/value head per query head)."""
    problems = [f"{name}={getattr(config, name)!r} (GPT-2: {value!r})"
                for name, value in GPT2_ONLY.items()
                if getattr(config, name, value) != value]
    n_kv_head = getattr(config, "n_kv_head", None)
    if n_kv_head not in (None, config.n_head):
        problems.append(f"n_kv_head={n_kv_head} (GPT-2: one per query head, {config.n_head})")
    if problems:
        raise ValueError("this model cannot be exported as a GPT-2: " + "; ".join(problems))


def hf_config(config: GPTConfig) -> Any:
    """The ``transformers.GPT2Config`` of the same shape as our ``config``."""
    check_gpt2_compatible(config)
    transformers = require_transformers()
    return transformers.GPT2Config(
        bos_token_id=None, eos_token_id=None,  # GPT-2's 50256 is outside a small vocabulary
        vocab_size=config.vocab_size, n_positions=config.block_size, n_embd=config.n_embd,
        n_layer=config.n_layer, n_head=config.n_head, n_inner=4 * config.n_embd,
        activation_function=HF_ACTIVATION[config.activation],
        resid_pdrop=config.dropout, embd_pdrop=config.dropout, attn_pdrop=config.dropout,
        layer_norm_epsilon=LAYER_NORM_EPS, tie_word_embeddings=True)


def gpt_config_from_hf(hf: Any) -> GPTConfig:
    """Our GPTConfig for a ``transformers.GPT2Config``; a feature our GPT lacks is an error."""
    n_inner = hf.n_inner if hf.n_inner is not None else 4 * hf.n_embd
    problems = []
    if n_inner != 4 * hf.n_embd:
        problems.append(f"n_inner={n_inner} (ours is 4 * n_embd = {4 * hf.n_embd})")
    if hf.activation_function not in OUR_ACTIVATION:
        problems.append(f"activation {hf.activation_function!r} (ours: "
                        f"{sorted(OUR_ACTIVATION)})")
    if abs(hf.layer_norm_epsilon - LAYER_NORM_EPS) > 1e-12:
        problems.append(f"layer_norm_epsilon={hf.layer_norm_epsilon} (ours: {LAYER_NORM_EPS})")
    if getattr(hf, "scale_attn_by_inverse_layer_idx", False) or not getattr(
            hf, "scale_attn_weights", True):
        problems.append("a non-standard attention scale")
    if not getattr(hf, "tie_word_embeddings", True):
        problems.append("an output layer not tied to the token embeddings")
    if problems:
        raise ValueError("this GPT-2 configuration has " + "; ".join(problems) +
                         ": the course's GPT cannot hold it exactly")
    return GPTConfig(vocab_size=hf.vocab_size, block_size=hf.n_positions, n_layer=hf.n_layer,
                     n_head=hf.n_head, n_embd=hf.n_embd, dropout=0.0, bias=True,
                     activation=OUR_ACTIVATION[hf.activation_function])


@torch.no_grad()
def gpt_to_hf(model: GPT) -> Any:
    """Our GPT -> a ``transformers.GPT2LMHeadModel`` computing the same logits (eval mode).

    Conv1D weights are transposed; with ``bias=False`` the biases GPT-2 has are zeros."""
    transformers = require_transformers()
    hf = transformers.GPT2LMHeadModel(hf_config(model.config))
    ours = model.state_dict()
    new = {}
    for key, target in hf.state_dict().items():
        if key in ours:
            value = ours[key].t() if is_conv1d(key) else ours[key]
        elif key.endswith(".bias") and key.replace(".bias", ".weight") in ours:
            value = torch.zeros_like(target)  # our bias=False: GPT-2's bias is 0
        else:
            continue  # a buffer (e.g. an attention mask) that is not a weight
        if value.shape != target.shape:
            raise ValueError(f"{key}: our tensor has shape {tuple(value.shape)}, GPT-2 "
                             f"expects {tuple(target.shape)}")
        new[key] = value.contiguous()
    missing, unexpected = hf.load_state_dict(new, strict=False)
    weights = {name for name, _ in hf.named_parameters()}
    if any(k in weights for k in missing) or unexpected:
        raise ValueError(f"export left GPT-2 weights unset: missing {missing}, "
                         f"unexpected {unexpected}")
    return hf.eval()


@torch.no_grad()
def hf_to_gpt(hf_model: Any) -> GPT:
    """A ``transformers.GPT2LMHeadModel`` -> our GPT computing the same logits (eval mode)."""
    model = GPT(gpt_config_from_hf(hf_model.config))
    theirs = hf_model.state_dict()
    new = {}
    for key, target in model.state_dict().items():
        if key not in theirs:
            if key == "lm_head.weight" and "transformer.wte.weight" in theirs:
                new[key] = theirs["transformer.wte.weight"]  # tied: saved once
                continue
            raise ValueError(f"the GPT-2 model has no {key!r}")
        value = theirs[key].t() if is_conv1d(key) else theirs[key]
        if value.shape != target.shape:
            raise ValueError(f"{key}: GPT-2 has shape {tuple(value.shape)}, ours expects "
                             f"{tuple(target.shape)}")
        new[key] = value.to(target.dtype)
    model.load_state_dict(new)
    return model.eval()


def from_pretrained_gpt2(name: str = "gpt2") -> GPT:
    """OpenAI's GPT-2 (``"gpt2"`` = 124M, ``"gpt2-medium"``, ...) in the course's GPT class.

    Downloads the weights through ``transformers`` (needs internet the first time; about
    500 MB for gpt2) and converts them with :func:`hf_to_gpt`."""
    transformers = require_transformers()
    return hf_to_gpt(transformers.GPT2LMHeadModel.from_pretrained(name))
