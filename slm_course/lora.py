"""LoRA: fine-tune a big linear layer by learning a small low-rank change to it.

A frozen linear layer y = x W^T + b (PyTorch stores W as (out, in)) gets a trainable
low-rank correction (Hu et al., 2021),

    y = x W^T + b + (alpha / r) * dropout(x) A^T B^T,     A (r, in), B (out, r), r << min(in, out)

A starts random and B at zero, so at initialisation B A = 0 and the model is exactly the
pretrained one. Only A and B learn: r (in + out) numbers instead of in * out. After
training the change can be folded into the weight, W' = W + (alpha / r) B A (``merge``), so
inference costs nothing extra; ``unmerge`` takes it out again.

:func:`apply_lora` replaces chosen ``nn.Linear`` submodules of a model (the course's GPT:
``attn.c_attn``, ``attn.c_proj``, ``mlp.c_fc``, ``mlp.c_proj``) by ``LoRALinear`` wrappers
and freezes every other parameter; :func:`lora_parameter_count` gives the closed form.

Stage 16: fine-tuning the small language model (LoRA, instruction tuning, DPO).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn


def _check_lora_args(base: nn.Module, r: int, alpha: float, dropout: float) -> None:
    if not isinstance(base, nn.Linear):
        raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}")
    if not isinstance(r, int) or isinstance(r, bool) or r < 1:
        raise ValueError(f"LoRA rank r must be a positive int, got {r!r}")
    if r > min(base.in_features, base.out_features):
        raise ValueError(f"LoRA rank r={r} exceeds min(in, out) = "
                         f"{min(base.in_features, base.out_features)} of the layer: a rank this "
                         f"high is no longer low-rank; pick r <= "
                         f"{min(base.in_features, base.out_features)}")
    if not (isinstance(alpha, int | float) and math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"LoRA alpha must be a positive number (the update is scaled by "
                         f"alpha / r), got {alpha!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"LoRA dropout must be in [0, 1), got {dropout}")


class LoRALinear(nn.Module):
    """A frozen ``nn.Linear`` plus a trainable rank-r update (alpha / r) B A."""

    def __init__(self, base: nn.Linear, r: int = 4, alpha: float = 8.0,
                 dropout: float = 0.0) -> None:
        super().__init__()
        _check_lora_args(base, r, alpha, dropout)
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.r, self.alpha, self.scaling = r, alpha, alpha / r
        like = dict(device=base.weight.device, dtype=base.weight.dtype)
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, **like))  # (r, in)
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, **like))  # (out, r)
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # as nn.Linear (and peft) do
        self.lora_dropout = nn.Dropout(dropout)
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        """The change to W, (alpha / r) B A, shape (out, in) like ``base.weight``."""
        return self.scaling * (self.lora_B @ self.lora_A)  # (out, r) @ (r, in)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., in) -> (..., out): base(x) + (alpha / r) dropout(x) A^T B^T."""
        y = self.base(x)  # (..., out); when merged, W already holds the update
        if not self.merged:
            y = y + self.scaling * (self.lora_dropout(x) @ self.lora_A.T @ self.lora_B.T)
        return y

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into the weight, W <- W + (alpha / r) B A: one matmul at inference."""
        if self.merged:
            raise RuntimeError("this LoRALinear is already merged; call unmerge() first")
        self.base.weight += self.delta_weight()
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take the update out again, W <- W - (alpha / r) B A (to go on training A and B)."""
        if not self.merged:
            raise RuntimeError("this LoRALinear is not merged; there is nothing to unmerge")
        self.base.weight -= self.delta_weight()
        self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, merged={self.merged}"


# The linear layers of the course's GPT (slm_course.gpt.GPT), by their name in a block.
GPT_LINEAR_LAYERS = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")


def apply_lora(model: nn.Module, targets: Sequence[str] = ("attn.c_attn", "attn.c_proj"), *,
               r: int = 4, alpha: float = 8.0, dropout: float = 0.0) -> list[str]:
    """Freeze every parameter of ``model``, then replace each ``nn.Linear`` whose name ends
    with one of ``targets`` by a :class:`LoRALinear` (only its A and B train).

    Returns the names of the wrapped layers. The model is changed in place.
    """
    names = [name for name, m in model.named_modules()
             if isinstance(m, nn.Linear) and any(name.endswith(t) for t in targets)]
    if not names:
        linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        raise ValueError(f"no nn.Linear in the model has a name ending with any of {targets}; "
                         f"its linear layers are, e.g., {linears[:6]}")
    for p in model.parameters():
        p.requires_grad_(False)
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), r, alpha, dropout))
    return names


def lora_layers(model: nn.Module) -> list[LoRALinear]:
    """Every :class:`LoRALinear` inside ``model``."""
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def merge_lora(model: nn.Module) -> None:
    """Merge every LoRA layer of ``model`` (see :meth:`LoRALinear.merge`)."""
    for layer in lora_layers(model):
        layer.merge()


def unwrap_lora(model: nn.Module) -> nn.Module:
    """Merge every LoRA layer and put its ``nn.Linear`` back in its place: the model is a
    plain one again (same outputs), ready for inference, saving, or new adapters."""
    for name, layer in list(model.named_modules()):
        if isinstance(layer, LoRALinear):
            if not layer.merged:
                layer.merge()
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, layer.base)
    return model


def trainable_parameters(model: nn.Module) -> int:
    """How many numbers the optimiser updates: parameters with ``requires_grad``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def lora_parameter_count(shapes: Sequence[tuple[int, int]], r: int) -> int:
    """The closed form: sum over the wrapped layers of r (in + out), given (in, out) shapes."""
    return sum(r * (n_in + n_out) for n_in, n_out in shapes)


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the LoRA factors (A and B of each layer): what a LoRA checkpoint must store."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()
            if k.endswith("lora_A") or k.endswith("lora_B")}
