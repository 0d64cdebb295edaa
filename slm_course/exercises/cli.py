"""``slm-course exercises build|check|grade``."""

from __future__ import annotations

import argparse
from pathlib import Path

from slm_course.exercises.notebooks import build_exercises, out_of_sync


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    for action, text in (("build", "write exercises/ from solutions/"),
                         ("check", "fail if exercises/ is out of sync with solutions/")):
        p = sub.add_parser(action, help=text)
        p.add_argument("--solutions", type=Path, default=Path("solutions"))
        p.add_argument("--exercises", type=Path, default=Path("exercises"))
    grade = sub.add_parser("grade", help="run learners' notebooks and report passed checks")
    grade.add_argument("notebooks", type=Path, nargs="+")
    grade.add_argument("--timeout", type=int, default=120, help="seconds per cell (default 120)")


def run(args: argparse.Namespace) -> int:
    if args.action == "grade":
        from slm_course.exercises.grade import format_report, grade_notebook

        for path in args.notebooks:
            print(format_report(path, grade_notebook(path, timeout=args.timeout)))
        return 0
    if not args.solutions.is_dir():
        raise FileNotFoundError(f"no solutions folder at {args.solutions}; run this from the "
                                f"repository root or pass --solutions")
    if args.action == "build":
        for path in build_exercises(args.solutions, args.exercises):
            print(f"wrote {path}")
        return 0
    problems = out_of_sync(args.solutions, args.exercises)
    for problem in problems:
        print(problem)
    if problems:
        print("run `slm-course exercises build` and commit exercises/")
        return 1
    print(f"exercises/ is in sync with {args.solutions}/")
    return 0
