"""The mentor's grader: the mentor's copy, the command line, and the class report.

The hostile submissions are in test_grader_hostile.py; this file covers the parts that need
no child process, plus one end-to-end class report on a small folder.
"""

import csv
import json
from pathlib import Path

import nbformat
import pytest

from slm_course.exercises.grade import (
    ExerciseResult,
    Grade,
    canonical_notebooks,
    learner_name,
    load_canonical,
    match_canonical,
)
from slm_course.exercises.report import markdown, summarize, write_reports
from slm_course.exercises.sandbox import Limits, check_timeout

ROOT = Path(__file__).resolve().parents[1]


def test_every_exercise_notebook_has_canonical_checks():
    for canon in canonical_notebooks(ROOT / "exercises"):
        keys = [e.key for e in canon.exercises]
        assert keys, f"{canon.name} has no check cells"
        assert len(keys) == len(set(keys)), f"{canon.name}: a check is called twice: {keys}"
        for e in canon.exercises:
            assert not any(n.startswith("check_") for n in e.needs), (canon.name, e)


def test_canonical_of_stage_05():
    canon = load_canonical(ROOT / "exercises" / "05_perceptron_backprop.ipynb")
    assert [e.key for e in canon.exercises][:4] == [  # (later exercises may be added)
        "check_perceptron_update", "check_linear_backward", "check_tanh_backward",
        "check_train_xor"]
    assert canon.exercises[0].needs == ("perceptron_update",)
    assert canon.exercises[0].targets == ("perceptron_update",)
    assert canon.imports[0][0] == "slm_course.exercises.stage05"


def test_a_submission_is_matched_to_its_exercise_notebook():
    candidates = canonical_notebooks(ROOT / "exercises")
    for exercise in (ROOT / "exercises").glob("*.ipynb"):
        path = ROOT / "solutions" / exercise.name
        nb = nbformat.read(path, as_version=4)
        assert match_canonical(nb, candidates).path.name == path.name
        for cell in nb.cells:  # a notebook saved without cell ids: matched by its title
            cell.pop("id", None)
        assert match_canonical(nb, candidates).path.name == path.name


def test_learner_name_from_metadata_or_file_name():
    nb = nbformat.v4.new_notebook()
    assert learner_name(Path("sub/alice.ipynb"), nb) == "alice"
    nb.metadata["authors"] = [{"name": "Bob B."}]
    assert learner_name(Path("sub/x.ipynb"), nb) == "Bob B."
    nb.metadata["slm_course"] = {"learner": "Carol"}
    assert learner_name(Path("sub/x.ipynb"), nb) == "Carol"


@pytest.mark.parametrize("seconds", [0, -1, 10**6])
def test_timeout_zero_is_not_no_limit(seconds):
    with pytest.raises(ValueError, match="--timeout"):
        check_timeout(seconds)
    with pytest.raises(ValueError):
        Limits(step_s=seconds)


def test_cli_rejects_timeout_zero(capsys):
    from slm_course.cli import main

    assert main(["exercises", "grade", "x.ipynb", "--timeout", "0"]) == 1
    assert "0 does not mean 'no limit'" in capsys.readouterr().err


def _grade(learner, marks, reason="check_x: wrong"):
    return Grade(Path(f"{learner}.ipynb"), learner, "05_perceptron_backprop", [
        ExerciseResult(f"check_{i}", f"Exercise {i}", m, "passed" if m else reason)
        for i, m in enumerate(marks)])


def test_class_report_counts_and_reasons(tmp_path):
    grades = [_grade("ann", [True, True]), _grade("ben", [True, False], "x is wrong (0.5)"),
              _grade("cat", [False, False], "x is wrong (0.25)")]
    summary = summarize(grades)
    nb = summary["notebooks"][0]
    assert [e["passed"] for e in nb["per_exercise"]] == [2, 1]
    assert nb["per_exercise"][1]["top_reasons"] == [{"reason": "x is wrong (N)", "count": 2}]
    assert abs(nb["mean_score"] - 1.0) < 1e-9
    text = markdown(summary)
    assert "| ann | PASS | PASS | 2/2 |" in text and "2 × x is wrong (N)" in text
    paths = write_reports(grades, tmp_path)
    rows = list(csv.DictReader(paths[1].read_text().splitlines()))
    assert [(r["learner"], r["score"]) for r in rows] == [("ann", "2"), ("ben", "1"),
                                                         ("cat", "0")]
    assert len(list(csv.DictReader(paths[2].read_text().splitlines()))) == 6
    assert json.loads(paths[3].read_text())["submissions"] == 3


def test_grading_a_folder_end_to_end(tmp_path, capsys):
    """Two solutions, one exercise and one broken file: full, full, 0 and 0 marks."""
    sub = tmp_path / "submissions"
    sub.mkdir()
    for name, src in (("ann", "solutions"), ("ben", "solutions"), ("cat", "exercises")):
        (sub / f"{name}.ipynb").write_bytes((ROOT / src / "00_welcome.ipynb").read_bytes())
    (sub / "dan.ipynb").write_text("not a notebook")
    from slm_course.cli import main

    out = tmp_path / "report"
    assert main(["exercises", "grade", str(sub), "--jobs", "2", "--timeout", "60",
                 "--out", str(out)]) == 0
    n = str(len(load_canonical(ROOT / "exercises" / "00_welcome.ipynb").exercises))
    rows = list(csv.DictReader((out / "scores.csv").read_text().splitlines()))
    assert [(r["learner"], r["score"], r["total"]) for r in rows] == [
        ("ann", n, n), ("ben", n, n), ("cat", "0", n), ("dan", "0", n)]
    report = (out / "report.md").read_text()
    assert "| cat | " + "FAIL | " * int(n) + f"0/{n} |" in report
    assert "1 × check_count_characters: not implemented yet" in report
    assert "not a readable notebook" in report
    for name in ("ann", "ben", "cat"):  # the submissions are untouched
        src = "exercises" if name == "cat" else "solutions"
        assert (sub / f"{name}.ipynb").read_bytes() == (ROOT / src / "00_welcome.ipynb"
                                                       ).read_bytes()
