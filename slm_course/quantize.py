"""Quantization from scratch: store weights as 8-bit integers and a scale.

A float weight w is replaced by an integer q and one or two numbers shared by many weights:

    symmetric:   q = clamp(round(w / s), -127, 127),          s = max|w| / 127,
                 w_hat = s q
    asymmetric:  q = clamp(round(w / s) + z, -128, 127),      s = (max w - min w) / 255,
                 z = -128 - round(min w / s),                 w_hat = s (q - z)

(the range [min w, max w] is first widened to contain 0, so that 0 is stored exactly).
Rounding moves each weight by at most half a step, so |w - w_hat| <= s / 2 for every
element. Per-tensor: one s (and z) for the whole matrix; per-channel: one per output row
(``axis=0`` of an ``nn.Linear`` weight, stored (out, in)), so a row of small weights is not
crushed by another row's large one.

Weight-only int8 (:class:`Int8Linear`, :class:`Int8Embedding`, :func:`quantize_model`)
keeps the int8 matrix and float scales, and dequantizes in forward: 4x smaller weights, the
same float arithmetic. PyTorch's dynamic quantization (``torch.ao.quantization
.quantize_dynamic``) also quantizes the activations on the fly and multiplies int8 by int8.

Stage 17: inference.
"""

from __future__ import annotations

import copy
import io

import torch
import torch.nn.functional as F
from torch import nn

QMAX_SYMMETRIC = 127  # symmetric int8 uses [-127, 127], so that -q is always representable
QMIN, QMAX = -128, 127  # asymmetric int8 uses the whole range


def _reduce_max(x: torch.Tensor, axis: int | None) -> torch.Tensor:
    """max over everything (a 0-d tensor) or over every dim but ``axis`` (kept for broadcast)."""
    if axis is None:
        return x.max()
    dims = [d for d in range(x.dim()) if d != axis % x.dim()]
    return x.amax(dim=dims, keepdim=True)


def _check(w: torch.Tensor, axis: int | None) -> None:
    if not torch.is_floating_point(w):
        raise ValueError(f"quantize a float tensor, got dtype {w.dtype}")
    if axis is not None and not -w.dim() <= axis < w.dim():
        raise ValueError(f"axis={axis} is out of range for a tensor of shape {tuple(w.shape)}; "
                         f"use axis=None (per tensor) or 0 (per output row of a Linear)")
    if not torch.isfinite(w).all():
        raise ValueError("the tensor holds inf or nan: quantize finite weights only")


def quantize_symmetric(w: torch.Tensor, axis: int | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """w -> (q int8, scale): q = round(w / s) in [-127, 127], s = max|w| / 127.

    ``axis=None``: one scale (0-d); ``axis=0``: one per row, shape (rows, 1, ...)."""
    _check(w, axis)
    scale = _reduce_max(w.abs(), axis) / QMAX_SYMMETRIC  # () or (out, 1)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))  # an all-zero row: any s
    q = torch.clamp(torch.round(w / scale), -QMAX_SYMMETRIC, QMAX_SYMMETRIC)
    return q.to(torch.int8), scale


def quantize_asymmetric(w: torch.Tensor, axis: int | None = None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """w -> (q int8, scale, zero_point): q = round(w / s) + z in [-128, 127],
    s = (max - min) / 255 over a range widened to contain 0, z = -128 - round(min / s)."""
    _check(w, axis)
    lo = torch.clamp(-_reduce_max(-w, axis), max=0.0)  # min(w), but at most 0
    hi = torch.clamp(_reduce_max(w, axis), min=0.0)  # max(w), but at least 0
    scale = (hi - lo) / (QMAX - QMIN)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    zero_point = QMIN - torch.round(lo / scale)  # the integer that stands for 0.0
    q = torch.clamp(torch.round(w / scale) + zero_point, QMIN, QMAX)
    return q.to(torch.int8), scale, zero_point.to(torch.int32)


def dequantize(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor | None = None
               ) -> torch.Tensor:
    """w_hat = s (q - z) (z = 0 for symmetric), as float32."""
    q = q.to(torch.float32)
    if zero_point is not None:
        q = q - zero_point.to(torch.float32)
    return q * scale


def quantization_error(w: torch.Tensor, symmetric: bool = True, axis: int | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """(|w - w_hat| elementwise, the scale broadcast to w's shape): the round trip's error
    and its bound's ingredient (error <= scale / 2)."""
    if symmetric:
        q, scale = quantize_symmetric(w, axis)
        w_hat = dequantize(q, scale)
    else:
        q, scale, zero_point = quantize_asymmetric(w, axis)
        w_hat = dequantize(q, scale, zero_point)
    return (w - w_hat).abs(), scale.expand_as(w)


class Int8Linear(nn.Module):
    """A Linear layer whose weight is stored in int8 with one float scale per output row:

        y = x (s * Q)^T + b,    Q int8 (out, in), s float (out, 1)

    The matrix is dequantized at every forward (weight-only quantization: 4x less memory for
    the weights, float arithmetic)."""

    def __init__(self, weight_int8: torch.Tensor, scale: torch.Tensor,
                 bias: torch.Tensor | None = None) -> None:
        super().__init__()
        if weight_int8.dtype != torch.int8 or weight_int8.dim() != 2:
            raise ValueError(f"weight_int8 must be a 2-D int8 tensor, got {weight_int8.dtype} "
                             f"{tuple(weight_int8.shape)}")
        self.out_features, self.in_features = weight_int8.shape
        self.register_buffer("weight_int8", weight_int8)  # (out, in)
        self.register_buffer("scale", scale.reshape(-1, 1).float())  # (out, 1)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone(),
                                                            requires_grad=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear, per_channel: bool = True) -> Int8Linear:
        """Quantize an ``nn.Linear`` (symmetric; per output row unless ``per_channel=False``)."""
        q, scale = quantize_symmetric(linear.weight.detach().float(),
                                      axis=0 if per_channel else None)
        return cls(q, scale.expand(q.shape[0], 1).clone(), linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight_int8.to(x.dtype) * self.scale.to(x.dtype)  # (out, in)
        return F.linear(x, weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


class Int8Embedding(nn.Module):
    """An embedding table stored in int8, one scale per row (token): E[i] = s_i Q[i]."""

    def __init__(self, weight_int8: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = weight_int8.shape
        self.register_buffer("weight_int8", weight_int8)  # (V, C)
        self.register_buffer("scale", scale.reshape(-1, 1).float())  # (V, 1)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self.weight_int8[idx].float() * self.scale[idx]  # (..., C)


@torch.no_grad()
def quantize_model(model: nn.Module, per_channel: bool = True) -> nn.Module:
    """A copy of ``model`` with every ``nn.Linear`` and ``nn.Embedding`` stored in int8
    (symmetric, per output row by default); LayerNorms and biases stay float.

    A weight shared by two layers (the GPT's tied embedding and output layer: the same
    (V, C) matrix, whose rows are both the token vectors and the output channels) is
    quantized once, and both layers share the int8 tensor and its scales."""
    model = copy.deepcopy(model)
    done: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # id(weight) -> (q, scale)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, nn.Linear | nn.Embedding):
                continue
            key = id(child.weight)
            if key not in done:
                q, scale = quantize_symmetric(child.weight.float(),
                                              axis=0 if per_channel else None)
                done[key] = (q, scale.expand(q.shape[0], 1).clone())
            q, scale = done[key]
            if isinstance(child, nn.Linear):
                new: nn.Module = Int8Linear(q, scale, child.bias)
            else:
                new = Int8Embedding(q, scale)
            new.weight_int8, new.scale = q, scale  # share the tensors (tied weights)
            setattr(parent, name, new)
    return model


def state_dict_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: what the weights take on disk (a tensor
    shared by two layers, like tied embeddings, is saved once)."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def dynamic_quantize(model: nn.Module) -> nn.Module | None:
    """PyTorch's built-in dynamic int8 quantization of every ``nn.Linear`` (weights int8 per
    tensor, activations quantized on the fly), or None with a printed reason where this
    PyTorch or CPU does not run it (the API is deprecated in favour of ``torchao``)."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the deprecation notice, not for the learner
            quantized = torch.ao.quantization.quantize_dynamic(
                copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)
            with torch.no_grad():  # does it run here? (needs the fbgemm/qnnpack kernels)
                emb = [m for m in quantized.modules() if isinstance(m, nn.Embedding)]
                if emb:
                    quantized(torch.zeros(1, 1, dtype=torch.long))
    except (AttributeError, RuntimeError, NotImplementedError, ImportError) as err:
        print(f"PyTorch's dynamic quantization does not run here ({type(err).__name__}: "
              f"{str(err)[:200]}); skipping the comparison")
        return None
    return quantized
