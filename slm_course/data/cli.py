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
    failed = []
    for name in list(REGISTRY) if everything else names:
        try:
            folder = fetch(get_dataset(name))
        except DatasetError as err:
            failed.append(name)
            print(f"FAILED  {name}: {err}")
            continue
        print(f"ok      {name}: {folder}")
    if failed:
        print(f"{len(failed)} dataset(s) could not be fetched: {', '.join(failed)}")
    return 1 if failed else 0


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
