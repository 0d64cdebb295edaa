"""``slm-course exercises build|check|quizzes|grade``."""

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
    quizzes = sub.add_parser("quizzes", help="write exercises/quizzes/ from the quiz data "
                                               "in slm_course/exercises/quizzes/")
    quizzes.add_argument("--out", type=Path, default=Path("exercises") / "quizzes")
    quizzes.add_argument("--check", action="store_true",
                         help="only report whether the quiz notebooks are in sync")
    grade = sub.add_parser(
        "grade", help="grade learners' notebooks with the course's own checks, contained")
    grade.add_argument("notebooks", type=Path, nargs="+",
                       help="submitted notebooks, or folders of them")
    grade.add_argument("--exercise", type=Path, default=None,
                       help="grade every submission against this exercise notebook "
                            "(default: found from each submission)")
    grade.add_argument("--exercises", type=Path, default=None,
                       help="the course's exercises/ folder (default: this checkout's)")
    grade.add_argument("--timeout", type=float, default=120,
                       help="seconds per cell and per check, 1 to 3600 (default 120)")
    grade.add_argument("--notebook-timeout", type=float, default=900,
                       help="seconds per submission, all cells and checks (default 900)")
    grade.add_argument("--memory-mb", type=int, default=6144,
                       help="address-space limit of a submission's process (default 6144)")
    grade.add_argument("--jobs", type=int, default=None,
                       help="submissions graded at once (default: the number of cores)")
    grade.add_argument("--out", type=Path, default=None,
                       help="write the class report here (report.md, scores.csv, "
                            "results.csv, report.json)")


def run(args: argparse.Namespace) -> int:
    if args.action == "grade":
        return _grade(args)
    if args.action == "quizzes":
        return _quizzes(args)
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


def _grade(args: argparse.Namespace) -> int:
    from slm_course.exercises.grade import format_report
    from slm_course.exercises.report import grade_all, write_reports
    from slm_course.exercises.sandbox import Limits, check_timeout

    check_timeout(args.timeout)
    check_timeout(args.notebook_timeout)
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs {args.jobs}: give 1 or more")
    limits = Limits(step_s=args.timeout, total_s=args.notebook_timeout,
                    memory_mb=args.memory_mb)
    grades = grade_all(args.notebooks, jobs=args.jobs, exercise=args.exercise,
                       exercises_dir=args.exercises, limits=limits)
    for grade in grades:
        print(format_report(grade))
    if args.out is not None:
        for path in write_reports(grades, args.out):
            print(f"wrote {path}")
    return 0


def _quizzes(args: argparse.Namespace) -> int:
    from slm_course.exercises.quizzes import build_quizzes, quizzes_out_of_sync

    if args.check:
        problems = quizzes_out_of_sync(args.out)
        for problem in problems:
            print(problem)
        if problems:
            print("run `slm-course exercises quizzes` and commit exercises/quizzes/")
        return 1 if problems else 0
    for path in build_quizzes(args.out):
        print(f"wrote {path}")
    return 0
