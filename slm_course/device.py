"""The one place that chooses where tensors live: CUDA, then Apple MPS, then the CPU."""

from __future__ import annotations

import os

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
