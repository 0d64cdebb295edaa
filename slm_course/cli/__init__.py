"""The ``slm-course`` command. Each subcommand lives in its own module and is imported only
when used, so ``slm-course data list`` does not pay for importing PyTorch."""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module with add_arguments(parser) and run(args) -> int, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "data": ("slm_course.data.cli", "list, fetch and verify the course's datasets"),
    "exercises": ("slm_course.exercises.cli", "build, check and grade exercise notebooks"),
    "challenge": ("slm_course.exercises.challenge", "score challenge submissions: leaderboard"),
    "train": ("slm_course.cli.train", "train a GPT from a preset: --preset NAME [--key=value]"),
    "sample": ("slm_course.cli.sample", "sample text from a checkpoint"),
    "export": ("slm_course.cli.export", "export a checkpoint to a Hugging Face GPT-2 folder"),
    "site": ("slm_course.cli.site", "run the lessons and build the course website"),
}


def _top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="slm-course",
        description="slm-course: from math refreshers to a small language model.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {n:<10} {h}" for n, (_, h) in SUBCOMMANDS.items()),
    )
    parser.add_argument("command", choices=sorted(SUBCOMMANDS), help="what to do")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv:  # like `./course` with no command: the usage, and a failure exit status
        _top_parser().print_help(sys.stderr)
        return 2
    if argv[0] not in SUBCOMMANDS:
        _top_parser().parse_args(argv)
        return 2
    name, rest = argv[0], argv[1:]
    module = importlib.import_module(SUBCOMMANDS[name][0])
    parser = argparse.ArgumentParser(prog=f"slm-course {name}",
                                     description=SUBCOMMANDS[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:  # Ctrl-C: no traceback (training saves its checkpoint first)
        print(f"slm-course {name}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as err:
        # Errors from the package already say what was wrong and how to fix it.
        if isinstance(err, OSError) and err.strerror and not err.filename:
            err = err.strerror  # type: ignore[assignment]  # no "[Errno 28]" prefix
        print(f"slm-course {name}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
