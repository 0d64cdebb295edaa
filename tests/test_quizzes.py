"""Quizzes: one per ready stage, in sync with their data, right answers pass, and graded."""

import math
from pathlib import Path

import nbformat
import pytest

import slm_course
from slm_course.exercises.checking import CheckFailed
from slm_course.exercises.grade import grade_notebook, load_canonical
from slm_course.exercises.quizzes import (
    Choice,
    Number,
    all_quizzes,
    check_answer,
    quizzes_out_of_sync,
)
from slm_course.exercises.sandbox import Limits

ROOT = Path(__file__).resolve().parents[1]
QUIZZES = ROOT / "exercises" / "quizzes"


def test_quiz_notebooks_are_in_sync_with_their_data():
    assert quizzes_out_of_sync(QUIZZES) == [], "run `slm-course exercises quizzes`"


def test_every_ready_stage_has_a_quiz_with_both_kinds_of_question():
    stages = {int(q.stage[:2]): q for q in all_quizzes()}
    missing = sorted(set(slm_course.STAGES) - set(stages))
    assert not missing, f"stages without a quiz: {missing}"
    for number, quiz in stages.items():
        if number in slm_course.STAGES:  # quizzes of stages still being written may come first
            assert (ROOT / "notebooks" / f"{quiz.stage}.ipynb").exists(), quiz.stage
        assert len(quiz.questions) >= 3, quiz.stage
        kinds = {type(q) for q in quiz.questions}
        assert kinds == {Choice, Number}, f"{quiz.stage}: needs multiple choice and numbers"


def _right(q):
    return q.answer


def _wrong(q):
    if isinstance(q, Choice):
        return next(letter for letter in "abc" if letter != q.answer)
    return q.answer + max(1.0, 10 * (q.tol + q.rel * abs(q.answer)), abs(q.answer))


@pytest.mark.parametrize("quiz", all_quizzes(), ids=lambda q: q.stage)
def test_right_answers_pass_and_wrong_ones_explain(quiz, capsys):
    for k, q in enumerate(quiz.questions, start=1):
        assert check_answer(quiz.stage, k, _right(q)) is True
        assert q.explain in capsys.readouterr().out
        with pytest.raises(CheckFailed, match="not right") as err:
            check_answer(quiz.stage, k, _wrong(q))
        assert q.explain.split()[0] in str(err.value)
        with pytest.raises(CheckFailed, match="not answered"):
            check_answer(quiz.stage, k, None)
    if any(isinstance(q, Choice) for q in quiz.questions):
        k = next(k for k, q in enumerate(quiz.questions, 1) if isinstance(q, Choice))
        assert check_answer(quiz.stage, k, f"({quiz.questions[k - 1].answer.upper()})")


def test_numeric_answers_against_the_formulas():
    """The computed answers, recomputed from the lessons' formulas."""
    answers = {q.stage[:2]: [x.answer for x in q.questions] for q in all_quizzes()}
    assert answers["01"][0] == 3 * 5 * 2
    assert answers["03"][0] == pytest.approx(math.exp(-math.log(0.25)))
    assert answers["03"][1] == pytest.approx(-math.log(0.25), abs=1e-3)
    assert answers["04"][0] == pytest.approx(2 / 50)
    assert answers["05"][2] == pytest.approx(1 - math.tanh(8) ** 2, rel=0.02)
    assert answers["06"][3] == pytest.approx(math.sqrt(2 / 512))
    assert answers["07"][:2] == [128 * 64 * 3 * 3 + 128, (28 + 2 * 2 - 5) // 2 + 1]
    assert answers["08"][0] == pytest.approx(math.log2(8))
    assert answers["09"][0] == pytest.approx(math.sqrt(1e-3 / 0.01) + 1e-3 / 0.01, abs=1e-3)
    assert answers["10"][3] == pytest.approx(2 * 0.5 * 1 / 1.5, abs=1e-3)
    assert answers["12"][0] == math.sqrt(1024)
    assert answers["13"][3] == 256 * 256
    assert answers["14"][0] == pytest.approx(math.log(65), abs=1e-3)
    assert answers["14"][1] == pytest.approx(3.3 / 1.85, abs=1e-3)


def test_a_quiz_is_graded_like_an_exercise(tmp_path):
    path = QUIZZES / "05_perceptron_backprop.ipynb"
    canon = load_canonical(path)
    assert [e.key for e in canon.exercises] == ["check_answer#1", "check_answer#2",
                                                "check_answer#3"]
    quiz = next(q for q in all_quizzes() if q.stage == "05_perceptron_backprop")
    nb = nbformat.read(path, as_version=4)
    answers = {f"q05-{k}-answer": f"answer_{k} = {_right(q)!r}"
               for k, q in enumerate(quiz.questions, start=1)}
    answers["q05-2-answer"] = "answer_2 = 'c'"  # one wrong answer
    for cell in nb.cells:
        cell.source = answers.get(cell.id, cell.source)
    nbformat.write(nb, tmp_path / "ann.ipynb")
    grade = grade_notebook(tmp_path / "ann.ipynb", limits=Limits(step_s=60, total_s=120))
    assert grade.notebook == "quiz 05_perceptron_backprop"
    assert [r.passed for r in grade.results] == [True, False, True]
    assert "not right" in grade.results[1].reason
