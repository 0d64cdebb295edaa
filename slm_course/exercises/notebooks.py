"""Generate exercise notebooks from solution notebooks, and check they are in sync.

In ``solutions/NN_slug.ipynb`` a solution region is a block of lines between
``### BEGIN SOLUTION`` and ``### END SOLUTION``. The exercise keeps everything else and
replaces each region by a stub at the same indentation::

    # YOUR CODE HERE
    raise NotImplementedError()
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = ("# YOUR CODE HERE", "raise NotImplementedError()")
_INDENT = re.compile(r"^(\s*)")


class SolutionMarkupError(ValueError):
    """A solution notebook's BEGIN/END markers do not pair up."""


def stub_source(source: str, where: str = "cell") -> tuple[str, int]:
    """Replace every solution region in ``source``; return the new source and region count."""
    out: list[str] = []
    regions = 0
    inside_since: int | None = None
    for number, line in enumerate(source.splitlines(), start=1):
        marker = line.strip()
        if marker == BEGIN:
            if inside_since is not None:
                raise SolutionMarkupError(
                    f"{where}, line {number}: {BEGIN} inside the region opened on line "
                    f"{inside_since}; close it with {END} first")
            indent = _INDENT.match(line).group(1)
            out.extend(indent + stub for stub in STUB)
            inside_since = number
            regions += 1
        elif marker == END:
            if inside_since is None:
                raise SolutionMarkupError(f"{where}, line {number}: {END} without {BEGIN}")
            inside_since = None
        elif inside_since is None:
            out.append(line)
    if inside_since is not None:
        raise SolutionMarkupError(f"{where}: {BEGIN} on line {inside_since} is never closed")
    return "\n".join(out), regions


def exercise_from_solution(solution: nbformat.NotebookNode, name: str = "notebook"
                           ) -> tuple[nbformat.NotebookNode, int]:
    """Return the exercise notebook for ``solution`` (outputs cleared) and its region count."""
    exercise = nbformat.from_dict(solution)
    total = 0
    for index, cell in enumerate(exercise.cells):
        if cell.cell_type != "code":
            continue
        cell.source, regions = stub_source(cell.source, where=f"{name}, cell {index}")
        cell.outputs = []
        cell.execution_count = None
        total += regions
    return exercise, total


def build_exercises(solutions_dir: Path, exercises_dir: Path) -> list[Path]:
    """Write one exercise notebook per solution notebook; return the paths written."""
    exercises_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for solution_path in sorted(solutions_dir.glob("*.ipynb")):
        exercise, regions = _exercise_for(solution_path)
        target = exercises_dir / solution_path.name
        text = nbformat.writes(exercise) + "\n"
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            tmp = target.with_suffix(".ipynb.tmp")
            tmp.write_text(text, encoding="utf-8")
            tmp.replace(target)  # atomic: a half-written exercise is never left behind
        written.append(target)
    return written


def out_of_sync(solutions_dir: Path, exercises_dir: Path) -> list[str]:
    """Return a list of problems; empty when ``exercises/`` matches ``solutions/`` exactly."""
    problems = []
    solution_names = {p.name for p in solutions_dir.glob("*.ipynb")}
    for stray in sorted({p.name for p in exercises_dir.glob("*.ipynb")} - solution_names):
        problems.append(f"exercises/{stray} has no solution in {solutions_dir.name}/")
    for solution_path in sorted(solutions_dir.glob("*.ipynb")):
        target = exercises_dir / solution_path.name
        exercise, _ = _exercise_for(solution_path)
        if not target.exists():
            problems.append(f"exercises/{target.name} is missing")
        elif target.read_text(encoding="utf-8") != nbformat.writes(exercise) + "\n":
            problems.append(f"exercises/{target.name} differs from its solution")
    return problems


def _exercise_for(solution_path: Path) -> tuple[nbformat.NotebookNode, int]:
    solution = nbformat.read(solution_path, as_version=4)
    exercise, regions = exercise_from_solution(solution, name=solution_path.name)
    if regions == 0:
        raise SolutionMarkupError(
            f"{solution_path} has no {BEGIN} region: a solution notebook must hold an exercise")
    return exercise, regions
