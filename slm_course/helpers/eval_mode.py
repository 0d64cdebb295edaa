"""Evaluate a model without disturbing how it was being trained."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch.nn as nn


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Run the block in eval mode (dropout off), then restore the model's mode, even on error."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
