"""The exercise generator: stubs keep indentation, markers must pair, exercises stay in sync."""

import nbformat
import pytest
from helpers import EXERCISES, SOLUTIONS

from slm_course.exercises.notebooks import (
    SolutionMarkupError,
    build_exercises,
    exercise_from_solution,
    out_of_sync,
    stub_source,
)

SOLVED = """def f(x):
    y = x + 1
    ### BEGIN SOLUTION
    return y * 2
    ### END SOLUTION
"""


def test_stub_keeps_indentation_and_surroundings():
    out, regions = stub_source(SOLVED)
    assert regions == 1
    assert out.splitlines() == ["def f(x):", "    y = x + 1", "    # YOUR CODE HERE",
                                "    raise NotImplementedError()"]
    ns: dict = {}
    exec(out, ns)  # the stub is valid Python ...
    with pytest.raises(NotImplementedError):  # ... that raises
        ns["f"](1)


@pytest.mark.parametrize("source", [
    "### BEGIN SOLUTION\nx = 1\n",
    "x = 1\n### END SOLUTION\n",
    "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n",
])
def test_unpaired_markers_are_errors(source):
    with pytest.raises(SolutionMarkupError):
        stub_source(source)


def _notebook(*sources):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    return nb


def test_exercise_clears_outputs_and_counts_regions():
    nb = _notebook(SOLVED, "print(1)")
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb.cells[1].execution_count = 3
    exercise, regions = exercise_from_solution(nb)
    assert regions == 1
    assert "return y * 2" not in exercise.cells[0].source
    assert exercise.cells[1].outputs == [] and exercise.cells[1].execution_count is None
    assert "return y * 2" in nb.cells[0].source, "the solution itself must not change"


def test_out_of_sync_detects_edits_missing_and_stray(tmp_path):
    sol, ex = tmp_path / "solutions", tmp_path / "exercises"
    sol.mkdir()
    nbformat.write(_notebook(SOLVED), sol / "01_a.ipynb")
    assert out_of_sync(sol, ex) == ["exercises/01_a.ipynb is missing"]
    build_exercises(sol, ex)
    assert out_of_sync(sol, ex) == []
    nbformat.write(_notebook(SOLVED.replace("+ 1", "+ 2")), sol / "01_a.ipynb")
    assert out_of_sync(sol, ex) == ["exercises/01_a.ipynb differs from its solution"]
    build_exercises(sol, ex)
    (ex / "99_stray.ipynb").write_text("{}")
    assert out_of_sync(sol, ex) == ["exercises/99_stray.ipynb has no solution in solutions/"]


def test_solution_without_regions_is_an_error(tmp_path):
    nbformat.write(_notebook("x = 1"), tmp_path / "01_a.ipynb")
    with pytest.raises(SolutionMarkupError, match="no ### BEGIN SOLUTION"):
        build_exercises(tmp_path, tmp_path / "out")


def test_repository_exercises_are_in_sync():
    assert out_of_sync(SOLUTIONS, EXERCISES) == [], "run `slm-course exercises build`"
