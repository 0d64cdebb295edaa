"""One call seeds every random number generator a lesson touches."""

from __future__ import annotations

import random

import numpy as np


def seed_everything(seed: int = 0) -> np.random.Generator:
    """Seed Python's ``random``, NumPy's global RNG and PyTorch (CPU and CUDA).

    Returns a fresh ``numpy.random.Generator`` seeded with ``seed``, the modern way to
    draw NumPy random numbers in new code.

    Python's hash seed is left alone: it only changes the hash of ``str`` and ``bytes``, and
    so the iteration order of a set of strings, and the course sorts wherever that order
    could matter (a vocabulary is ``sorted(set(text))``). Python reads ``PYTHONHASHSEED``
    once, when the interpreter starts, so setting it here would reach only child processes;
    a script that needed it would be launched as ``PYTHONHASHSEED=0 python ...``.
    """
    if not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    try:
        import torch
    except ImportError:  # stages 01-05 run on NumPy alone
        return np.random.default_rng(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    return np.random.default_rng(seed)
