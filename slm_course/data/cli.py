"""``slm-course data list|fetch|verify``: see, download and check the course's datasets."""

from __future__ import annotations

import argparse
import os

from slm_course.data.cache import (
    DATA_ENV,
    MIRROR_ENV,
    OFFLINE_ENV,
    cache_root,
    fetch,
    is_offline,
    verify_dataset,
)
from slm_course.data.registry import REGISTRY, DatasetError, get_dataset

VISION_ENV = "SLM_COURSE_VISION"  # read by slm_course.data.vision.vision_name


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="the datasets, their size and licence, and what is cached")
    fetch_p = sub.add_parser("fetch", help="download (or copy from the mirror) and verify")
    fetch_p.add_argument("names", nargs="*", help="datasets to fetch (see `list`)")
    fetch_p.add_argument("--all", action="store_true", help="fetch every dataset")
    verify_p = sub.add_parser("verify", help="check the cached copies; exit 1 if one is bad")
    verify_p.add_argument("names", nargs="*",
                          help="datasets to verify (default: every dataset in the cache)")


def run(args: argparse.Namespace) -> int:
    _print_settings()
    if args.action == "list":
        return _list()
    if args.action == "fetch":
        return _fetch(args.names, args.all)
    return _verify(args.names)


def _print_settings() -> None:
    mirror = os.environ.get(MIRROR_ENV) or "(not set)"
    print(f"cache: {cache_root()}  (${DATA_ENV})")
    print(f"mirror: {mirror}  (${MIRROR_ENV})   offline: {is_offline()}  (${OFFLINE_ENV})")


def _list() -> int:
    print(f"{'name':<18} {'MB':>6}  {'cached':<7} {'licence':<14} title")
    for ds in REGISTRY.values():
        folder = cache_root() / ds.name
        names = [f.name for f in ds.files] or [p.name for p in folder.glob(ds.pattern)]
        cached = "yes" if names and all((folder / n).is_file() for n in names) else "no"
        print(f"{ds.name:<18} {ds.size / 1e6:>6.1f}  {cached:<7} {ds.licence:<14} "
              f"{ds.title}")
    return 0


def _fetch(names: list[str], everything: bool) -> int:
    if everything == bool(names):
        raise ValueError("name the datasets to fetch, or pass --all (not both); "
                         "`slm-course data list` shows the names")
    vision, optional = _vision_choice() if everything else ("", set())
    failed, reasons = [], []
    for name in list(REGISTRY) if everything else names:
        try:
            folder = fetch(get_dataset(name))
        except DatasetError as err:
            reason = str(err)
            said = "the same reason as above" if reason in reasons else reason
            reasons.append(reason)
            if name in optional:  # --all: the other vision dataset is not needed
                print(f"skipped {name}: could not be fetched, and not needed "
                      f"(${VISION_ENV}={vision}); `slm-course data fetch {name}` says why")
                continue
            failed.append(name)
            print(f"FAILED  {name}: {said}")
            continue
        print(f"ok      {name}: {folder}")
    if failed:
        print(f"{len(failed)} dataset(s) could not be fetched: {', '.join(failed)}")
        if is_offline():
            mirror = os.environ.get(MIRROR_ENV) or "not set"
            print(f"offline (${OFFLINE_ENV}=1): copies come only from the cache and from "
                  f"${MIRROR_ENV} (now: {mirror}), a folder holding <dataset>/<file>; point "
                  f"it at one, or unset ${OFFLINE_ENV} to download")
        if vision and vision in failed:
            print(f"the vision lessons use ${VISION_ENV}={vision} (mnist or fashion-mnist): "
                  f"only that one of the two is needed")
    return 1 if failed else 0


def _vision_choice() -> tuple[str, set[str]]:
    """The vision dataset the lessons use ($SLM_COURSE_VISION) and the others, optional."""
    from slm_course.data.vision import VISION_CLASSES, vision_name

    chosen = vision_name()
    return chosen, set(VISION_CLASSES) - {chosen}


def _verify(names: list[str]) -> int:
    datasets = [get_dataset(n) for n in names] if names else list(REGISTRY.values())
    bad = 0
    for ds in datasets:
        status = verify_dataset(ds)
        if status.verified:
            print(f"ok       {ds.name}: {status.folder}")
            for note in status.notes:
                print(f"         {note}")
        elif not status.present and not names:
            print(f"-        {ds.name}: not fetched (`slm-course data fetch {ds.name}`)")
        else:
            bad += 1
            word = "MISSING" if not status.present else "BAD"
            print(f"{word:<8} {ds.name}:")
            for problem in status.problems:
                print("    " + problem.replace("\n", "\n    "))
            print(f"    fix: `slm-course data fetch {ds.name}` (a bad copy is kept as "
                  f"<file>.corrupt, never used)")
    if bad:
        print(f"{bad} dataset(s) failed verification")
    return 1 if bad else 0
