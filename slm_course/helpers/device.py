"""The one place that chooses where tensors live: CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import os
from contextlib import nullcontext
from typing import Any

import torch

ENV_VAR = "SLM_COURSE_DEVICE"


def pick_device(prefer: str | None = None) -> torch.device:
    """Return the best available device, or ``prefer`` / ``$SLM_COURSE_DEVICE`` if given.

    Order: ``cuda`` > ``mps`` > ``cpu``. Asking for a device that is not there is an error
    rather than a silent fall-back, so a run never pretends to use a GPU it does not have.
    """
    wanted = prefer or os.environ.get(ENV_VAR)
    if wanted:
        device = torch.device(wanted)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {wanted!r} requested but CUDA is not available here")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"device {wanted!r} requested but Apple MPS is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_context(dtype: str, device: torch.device) -> Any:
    """The mixed-precision context for ``dtype``: "auto" is bfloat16 autocast on a CUDA GPU
    that supports it and full float32 elsewhere; "bfloat16" and "float32" force one."""
    if dtype == "float32":
        return nullcontext()
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        if dtype == "bfloat16":
            raise ValueError("dtype='bfloat16' requested but this GPU does not support it; "
                             "use --dtype=float32")
        return nullcontext()
    if dtype == "bfloat16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return nullcontext()
