"""Paths and oracles shared by the tests."""

from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"


def notebook_paths(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders for p in folder.glob("*.ipynb"))


TOL = 1e-6  # the course's bar for "this backward is right" (float64)


def rel_err(a, b) -> float:
    """||a - b|| / (||a|| + ||b||), written out here so the oracle does not trust the module."""
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
    assert a.shape == b.shape, f"shapes differ: {a.shape} vs {b.shape}"
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300))


def t64(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64, requires_grad=True)
