"""The first call of every notebook: seed, report the profile and device, style plots."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import numpy as np

from slm_course.helpers.seeding import seed_everything
from slm_course.helpers.workload import current_profile


@dataclass(frozen=True)
class Session:
    """What a notebook needs to know about the run it is in."""

    profile: str
    seed: int
    rng: np.random.Generator

    @property
    def fast(self) -> bool:
        return self.profile == "fast"


def start(seed: int = 0, *, quiet: bool = False) -> Session:
    """Seed everything, set a readable plot style and print the profile and the device.

    The device is the one :func:`slm_course.helpers.device.pick_device` chooses (CUDA, then
    MPS, then CPU, or ``$SLM_COURSE_DEVICE``); without PyTorch (stages 01-05 need only NumPy)
    the line says so. Every lesson and solution notebook calls this in its first code cell.
    """
    rng = seed_everything(seed)
    profile = current_profile()
    try:
        import matplotlib.pyplot as plt

        plt.rcParams.update({"figure.figsize": (6, 4), "figure.dpi": 90, "axes.grid": True})
    except ImportError:
        pass
    if not quiet:
        print(f"slm-course | profile: {profile} | seed: {seed} | device: {device_report()}")
    return Session(profile=profile, seed=seed, rng=rng)


def device_report() -> str:
    """The device PyTorch code will run on, or a note that PyTorch is not installed.

    PyTorch is imported only here and only if installed, so ``start`` works with NumPy alone.
    """
    if importlib.util.find_spec("torch") is None:
        return "none (PyTorch is not installed; NumPy only)"
    from slm_course.helpers.device import pick_device

    return str(pick_device())


def shown(value: object, digits: int = 4) -> str:
    """A short, readable form of ``value`` for the message of a lesson's assert.

    A lesson writes ``assert loss < 2.0, f"this lesson claims ...; with your settings the
    loss is {shown(loss)}"``: numbers to ``digits`` significant figures, a small array or
    tensor in full, a large one by its shape and range, anything else by its (shortened)
    ``repr``. It never raises, because it runs only while an assert is already failing.
    """
    try:
        return _shown(value, digits)
    except Exception:  # noqa: BLE001 - a message must never hide the failure it reports
        return repr(value)[:200]


def _shown(value: object, digits: int) -> str:
    if isinstance(value, bool | str | int) and not isinstance(value, np.generic):
        return repr(value)[:200] if isinstance(value, str) else str(value)
    if hasattr(value, "detach"):  # a torch.Tensor, without importing torch
        value = value.detach().cpu().numpy()
    if isinstance(value, float | np.generic):
        return f"{float(value):.{digits}g}" if np.isrealobj(value) else str(value)
    if isinstance(value, np.ndarray | list | tuple):
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            return repr(value)[:200]
        if array.size == 1:
            return f"{array.item():.{digits}g}"
        if array.size <= 8:
            return np.array2string(array, precision=digits, separator=", ")
        return (f"an array of shape {tuple(array.shape)}, from {array.min():.{digits}g} "
                f"to {array.max():.{digits}g}")
    return repr(value)[:200]
