"""The first call of every notebook: seed, report the profile and device, style plots."""

from __future__ import annotations

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
    """Seed everything, set a readable plot style and print the profile.

    Every lesson and solution notebook calls this in its first code cell.
    """
    rng = seed_everything(seed)
    profile = current_profile()
    try:
        import matplotlib.pyplot as plt

        plt.rcParams.update({"figure.figsize": (6, 4), "figure.dpi": 90, "axes.grid": True})
    except ImportError:
        pass
    if not quiet:
        print(f"slm-course | profile: {profile} | seed: {seed}")
    return Session(profile=profile, seed=seed, rng=rng)
