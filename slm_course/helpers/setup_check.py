"""Is this machine ready for the course? Versions, device, profile and datasets in one report.

    from slm_course.helpers.setup_check import assert_ready, collect_report, print_report
    print_report(collect_report())   # a table: what is installed, what is cached and verified
    assert_ready()                   # raises SetupError saying what is missing and how to fix

From a shell: ``python -m slm_course.helpers.setup_check``.

Stage 00: welcome and set-up check.
"""

from __future__ import annotations

import importlib
import os
import platform
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from slm_course.data import REGISTRY, DatasetError, DatasetStatus, fetch, verify_dataset
from slm_course.data.cache import MIRROR_ENV, OFFLINE_ENV, cache_root, is_offline
from slm_course.data.vision import vision_name
from slm_course.helpers.workload import current_profile

# The oldest versions the course is tested with (requirements.txt states the same ranges).
MINIMUM_VERSIONS = {"python": "3.10", "torch": "2.2", "torchvision": "0.17",
                    "numpy": "1.24", "matplotlib": "3.7"}
# Datasets every offline machine (and CI) must have; the vision one is added by
# required_datasets() from $SLM_COURSE_VISION.
TEXT_DATASETS = ("tinyshakespeare", "names", "names-by-language")


class SetupError(RuntimeError):
    """The machine is not ready for the course. The message lists what to fix."""


@dataclass
class SetupReport:
    """What :func:`collect_report` found."""

    versions: dict[str, str | None]  # None: not installed
    device: str
    profile: str
    vision: str
    cache: str
    datasets: dict[str, DatasetStatus] = field(default_factory=dict)

    def problems(self, required: Iterable[str] = ()) -> list[str]:
        """One line per thing to fix: an old or missing package, a required dataset not ready."""
        found = []
        for name, minimum in MINIMUM_VERSIONS.items():
            version = self.versions.get(name)
            if version is None:
                found.append(f"{name} is not installed: `pip install -r requirements.txt`")
            elif version_tuple(version) < version_tuple(minimum):
                found.append(f"{name} {version} is older than the course needs ({minimum}): "
                             f"`pip install -U -r requirements.txt`")
        for name in required:
            status = self.datasets.get(name) or verify_dataset(name)
            if not status.verified:
                why = "; ".join(p.splitlines()[0] for p in status.problems) or "not verified"
                found.append(f"dataset {name} is not ready ({why}): "
                             f"`slm-course data fetch {name}`")
        return found

    def format_table(self) -> str:
        """The report as a plain-text table, one line per package and per dataset."""
        lines = [f"{'item':<26} {'status':<10} detail"]
        for name, version in self.versions.items():
            minimum = MINIMUM_VERSIONS.get(name)
            ok = version is not None and (minimum is None
                                          or version_tuple(version) >= version_tuple(minimum))
            detail = (version or "not installed") + (f"  (needs >= {minimum})" if minimum else "")
            lines.append(f"{name:<26} {'ok' if ok else 'PROBLEM':<10} {detail}")
        lines.append(f"{'device':<26} {'ok':<10} {self.device}")
        lines.append(f"{'profile':<26} {'ok':<10} {self.profile}  ($SLM_COURSE_PROFILE)")
        lines.append(f"{'vision dataset':<26} {'ok':<10} {self.vision}  ($SLM_COURSE_VISION)")
        lines.append(f"{'data cache':<26} {'ok':<10} {self.cache}  ($SLM_COURSE_DATA)")
        for name, status in self.datasets.items():
            word = "verified" if status.verified else "CORRUPT" if status.present else "missing"
            detail = "" if status.verified else (status.problems[0].splitlines()[0]
                                                 if status.present else
                                                 f"`slm-course data fetch {name}`")
            lines.append(f"{'data: ' + name:<26} {word:<10} {detail}")
        return "\n".join(lines)


def version_tuple(version: str) -> tuple[int, ...]:
    """``"2.14.1+cu130"`` -> ``(2, 14, 1)``: the leading numbers, for comparisons."""
    numbers = re.match(r"\d+(\.\d+)*", version)
    if numbers is None:
        raise ValueError(f"cannot read a version number from {version!r}")
    return tuple(int(n) for n in numbers.group(0).split("."))


def collect_versions() -> dict[str, str | None]:
    """Python's version and each course package's ``__version__`` (None if not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("torch", "torchvision", "numpy", "matplotlib"):
        try:
            versions[name] = importlib.import_module(name).__version__
        except ImportError:
            versions[name] = None
    return versions


def describe_device() -> str:
    """The device :func:`slm_course.helpers.device.pick_device` chooses, in words."""
    import torch

    from slm_course.helpers.device import pick_device

    device = pick_device()
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        return f"cpu ({torch.get_num_threads()} threads)"
    return str(device)


def required_datasets() -> list[str]:
    """The datasets the course needs on every machine: the text ones and the vision one."""
    return [*TEXT_DATASETS, vision_name()]


def collect_report(datasets: Iterable[str] | None = None) -> SetupReport:
    """Look at the machine without changing anything (datasets are verified, not fetched)."""
    names = list(REGISTRY) if datasets is None else list(datasets)
    return SetupReport(
        versions=collect_versions(),
        device=describe_device(),
        profile=current_profile(),
        vision=vision_name(),
        cache=str(cache_root()),
        datasets={name: verify_dataset(name) for name in names},
    )


def print_report(report: SetupReport) -> None:
    """Print :meth:`SetupReport.format_table`."""
    print(report.format_table())


def assert_ready(required: Iterable[str] | None = None, *, fetch_missing: bool = True
                 ) -> SetupReport:
    """Raise :class:`SetupError` unless the packages and the ``required`` datasets are ready.

    ``required`` defaults to :func:`required_datasets`. With ``fetch_missing`` a dataset that
    is not yet in the cache is fetched first (copied from ``$SLM_COURSE_MIRROR`` or
    downloaded), so a fresh checkout becomes ready in one call.
    """
    names = required_datasets() if required is None else list(required)
    fetch_errors = {}
    if fetch_missing:
        for name in names:
            if not verify_dataset(name).verified:
                try:
                    fetch(name)
                except DatasetError as err:
                    fetch_errors[name] = str(err)
    report = collect_report(names)
    problems = report.problems(names)
    if problems:
        details = "".join(f"\n\n{name}: {text}" for name, text in fetch_errors.items())
        mirror = os.environ.get(MIRROR_ENV)
        raise SetupError(
            "the machine is not ready for the course:\n"
            + "\n".join(f"  - {p}" for p in problems)
            + f"\n(data cache: {report.cache}; {MIRROR_ENV}="
              f"{mirror or '(not set)'}; {OFFLINE_ENV}={'1' if is_offline() else '(not set)'})"
            + details)
    return report


if __name__ == "__main__":
    print_report(collect_report())
