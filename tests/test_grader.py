"""The mentor's grader survives a notebook that raises, hangs or is not a notebook."""

import nbformat
import pytest

from slm_course.exercises.grade import format_report, grade_notebook

CHECK = ("from slm_course.exercises.checking import expect, passed\n"
         "def check_positive(x):\n"
         "    expect('check_positive', x > 0, 'x must be positive')\n"
         "    return passed('check_positive')\n")


def _write(tmp_path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    path = tmp_path / "student.ipynb"
    nbformat.write(nb, path)
    return path


def test_grades_pass_fail_error_and_hang(tmp_path):
    path = _write(tmp_path, CHECK, "check_positive(1)", "check_positive(-1)",
                  "raise RuntimeError('student bug')", "import time\nwhile True: time.sleep(0.1)",
                  "check_positive(2)")
    before = path.read_bytes()
    results = grade_notebook(path, timeout=3)
    assert [r.passed for r in results] == [True, False, True]
    assert "CheckFailed" in results[1].reason
    report = format_report(path, results)
    assert "score: 2/3" in report
    assert path.read_bytes() == before, "grading must never modify the learner's notebook"


def test_unreadable_notebook_is_a_clear_error(tmp_path):
    bad = tmp_path / "broken.ipynb"
    bad.write_text("{ not json")
    with pytest.raises(ValueError, match="not a readable notebook"):
        grade_notebook(bad)
    with pytest.raises(FileNotFoundError):
        grade_notebook(tmp_path / "missing.ipynb")
