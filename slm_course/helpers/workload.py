"""How much work a notebook does: the fast profile (CI, seconds) or the full profile.

One environment variable, ``SLM_COURSE_PROFILE``, chooses; the same code runs in both and
only sizes and step counts change::

    steps = pick(fast=200, full=5_000)
"""

from __future__ import annotations

import os
from typing import TypeVar

ENV_VAR = "SLM_COURSE_PROFILE"
PROFILES = ("fast", "full")
DEFAULT = "full"

T = TypeVar("T")


def current_profile() -> str:
    """Return ``"fast"`` or ``"full"`` from ``$SLM_COURSE_PROFILE`` (default: full)."""
    value = os.environ.get(ENV_VAR, DEFAULT).strip().lower() or DEFAULT
    if value not in PROFILES:
        raise ValueError(
            f"{ENV_VAR}={value!r} is not a profile; set it to one of {PROFILES} "
            f"(fast: CI-sized runs in seconds, full: the stage's real result)."
        )
    return value


def is_fast() -> bool:
    """True when running the fast (CI) profile."""
    return current_profile() == "fast"


def pick(*, fast: T, full: T) -> T:
    """Return ``fast`` in the fast profile and ``full`` in the full profile."""
    return fast if is_fast() else full
