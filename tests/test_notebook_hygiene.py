"""Notebooks are committed clean: no outputs, no execution counts, kernel python3, seeded."""

import re

import nbformat
import pytest
from helpers import EXERCISES, NOTEBOOKS, SOLUTIONS, notebook_paths

ALL = notebook_paths(NOTEBOOKS, SOLUTIONS, EXERCISES)
NAME = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")


def test_there_are_notebooks():
    assert notebook_paths(NOTEBOOKS), "notebooks/ is empty"
    assert notebook_paths(SOLUTIONS), "solutions/ is empty"


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.outputs or c.execution_count is not None)]
    assert not dirty, (f"{path.name}: cells {dirty} have outputs or execution counts; clear "
                       f"them (jupyter nbconvert --clear-output --inplace {path})")
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3", \
        f"{path.name}: kernel must be python3"


@pytest.mark.parametrize("path", notebook_paths(NOTEBOOKS, SOLUTIONS),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_named_seeded_and_structured(path):
    assert NAME.match(path.name), f"{path.name}: name notebooks NN_slug.ipynb"
    nb = nbformat.read(path, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert code and "start(" in code[0], \
        f"{path.name}: the first code cell must call slm_course.helpers.notebook.start(seed=...)"
    if path.parent == NOTEBOOKS:
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown").lower()
        assert "learning objectives" in text, f"{path.name}: state the learning objectives"
        assert "check your understanding" in text, \
            f"{path.name}: end with a 'check your understanding' section"
        assert any("assert " in c for c in code), f"{path.name}: assert the lesson's claims"
        header = "\n".join(c.source for c in nb.cells[:3] if c.cell_type == "markdown")
        assert "**Time and hardware:**" in header and "full profile" in header, (
            f"{path.name}: say near the top what the lesson costs: a '**Time and hardware:** "
            f"full profile about N min on a 2-core CPU ...' line (see CONTRIBUTING.md)")


def test_every_lesson_has_a_solution_and_exercise():
    lessons = {p.name for p in notebook_paths(NOTEBOOKS)}
    solutions = {p.name for p in notebook_paths(SOLUTIONS)}
    assert lessons == solutions, f"lessons without solutions: {sorted(lessons - solutions)}; " \
                                 f"solutions without lessons: {sorted(solutions - lessons)}"
