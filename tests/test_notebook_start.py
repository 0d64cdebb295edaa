"""The first call of every notebook: it seeds, and its report line names the profile, the seed
and the device that slm_course.helpers.device.pick_device chooses."""

from __future__ import annotations

import importlib.util
import os
import random
import sys

import numpy as np
import pytest

from slm_course.helpers import notebook
from slm_course.helpers.notebook import start
from slm_course.helpers.seeding import seed_everything


def test_start_reports_profile_seed_and_the_chosen_device(monkeypatch, capsys):
    monkeypatch.setenv("SLM_COURSE_DEVICE", "cpu")  # what pick_device must then choose
    session = start(seed=3)
    line = capsys.readouterr().out.strip()
    assert line == f"slm-course | profile: {session.profile} | seed: 3 | device: cpu"
    start(seed=3, quiet=True)
    assert capsys.readouterr().out == ""


def test_start_without_pytorch_says_so_and_imports_no_device_code(monkeypatch, capsys):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real_find_spec(name, *a))
    monkeypatch.delitem(sys.modules, "slm_course.helpers.device", raising=False)
    assert "PyTorch is not installed" in notebook.device_report()
    assert "slm_course.helpers.device" not in sys.modules


def test_seed_everything_repeats_every_generator_and_leaves_the_hash_seed_alone(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)

    def draws():
        rng = seed_everything(7)
        return (random.random(), np.random.random(), rng.random(), torch.rand(1).item())

    assert draws() == draws()
    assert "PYTHONHASHSEED" not in os.environ  # it would reach child processes only
    with pytest.raises(ValueError, match="non-negative int"):
        seed_everything(-1)
