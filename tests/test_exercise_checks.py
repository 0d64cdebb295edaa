"""Every check fails on its untouched stub, and every check is used by a solution.

nbval runs each solution notebook, so every check passes on its solution (a failing check
raises and fails the cell). Here each exercise notebook runs with its stubs untouched, and
every check cell must fail.
"""

import importlib
import pkgutil
import re

import nbformat
import pytest
from helpers import EXERCISES, SOLUTIONS, notebook_paths

import slm_course.exercises as exercises_pkg
from slm_course.exercises.grade import CHECK_CALL, grade_notebook


def _stage_checks() -> dict[str, str]:
    found = {}
    for info in pkgutil.iter_modules(exercises_pkg.__path__):
        if re.fullmatch(r"stage\d\d", info.name):
            module = importlib.import_module(f"slm_course.exercises.{info.name}")
            found.update({n: info.name for n in dir(module) if n.startswith("check_")})
    return found


@pytest.mark.parametrize("path", notebook_paths(EXERCISES), ids=lambda p: p.name)
def test_every_check_fails_on_the_untouched_stub(path):
    grade = grade_notebook(path, canonical=path, timeout=120)  # graded against itself
    assert grade.results, f"{path.name} calls no check: {grade.notes}"
    passing = [r for r in grade.results if r.passed]
    assert not passing, f"{path.name}: checks pass on a stub (a check that cannot fail): " \
                        f"{[r.key for r in passing]}"


@pytest.mark.parametrize("path", notebook_paths(SOLUTIONS), ids=lambda p: p.name)
def test_solution_calls_known_checks(path):
    nb = nbformat.read(path, as_version=4)
    called = {name for c in nb.cells if c.cell_type == "code"
              and not c.source.lstrip().startswith(("from ", "import "))
              for name in CHECK_CALL.findall(c.source)}
    assert called, f"{path.name} never calls a check"
    known = _stage_checks()
    unknown = called - set(known)
    assert not unknown, f"{path.name} calls checks that no stage module defines: {unknown}"


def test_every_check_is_used_by_some_solution():
    used = set()
    for path in notebook_paths(SOLUTIONS):
        nb = nbformat.read(path, as_version=4)
        used |= {n for c in nb.cells if c.cell_type == "code" for n in CHECK_CALL.findall(c.source)}
    unused = set(_stage_checks()) - used
    assert not unused, f"checks defined but never used in a solution notebook: {unused}"
