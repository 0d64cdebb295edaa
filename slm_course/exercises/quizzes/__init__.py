"""Short auto-checked quizzes, one per stage, graded with the exercises.

A quiz is a small data file, ``slm_course/exercises/quizzes/qNN.py``, holding
``QUIZ = Quiz(stage="NN_slug", title=..., questions=[Choice(...), Number(...)])``. The
notebook ``exercises/quizzes/NN_slug.ipynb`` is generated from it
(``slm-course exercises quizzes``; ``tests/test_quizzes.py`` fails when they differ). Each
question has an answer cell (``answer_1 = None``) and a check cell
(``check_answer("NN_slug", 1, answer_1)``) that prints ✓ and the explanation, or raises
:class:`~slm_course.exercises.checking.CheckFailed` with the explanation. The grader scores
quiz notebooks like exercise notebooks: one point per question.

To add a stage's quiz: copy a ``qNN.py``, write 3 to 5 questions whose answers the lesson
states (cite the section in the explanation), run ``slm-course exercises quizzes``.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from slm_course.exercises.checking import PASS_MARK, fail

LETTERS = "abcdefgh"


@dataclass(frozen=True)
class Choice:
    """A multiple-choice question; ``answer`` is the letter of the right option."""

    text: str
    options: tuple[str, ...]
    answer: str
    explain: str

    def __post_init__(self) -> None:
        if self.answer not in LETTERS[: len(self.options)]:
            raise ValueError(f"answer {self.answer!r} is not one of the "
                             f"{len(self.options)} options of {self.text[:40]!r}")

    def prompt(self) -> str:
        return "\n".join(f"- **({LETTERS[i]})** {o}" for i, o in enumerate(self.options))

    def example(self) -> str:
        return '"a"'

    def is_right(self, given: Any) -> bool:
        if not isinstance(given, str):
            raise TypeError("answer with the option's letter as a string, e.g. \"b\"")
        return given.strip().strip("()").strip().lower() == self.answer


@dataclass(frozen=True)
class Number:
    """A question with a numeric answer, right within ``tol`` (absolute) or ``rel``."""

    text: str
    answer: float
    explain: str
    tol: float = 0.0
    rel: float = 0.0

    def prompt(self) -> str:
        return "Answer with a number."

    def example(self) -> str:
        return "0.0"

    def is_right(self, given: Any) -> bool:
        if isinstance(given, bool) or not isinstance(given, (int, float)):
            raise TypeError("answer with a number, e.g. 0.5 or 12")
        limit = max(self.tol, self.rel * abs(self.answer))
        return math.isfinite(given) and abs(given - self.answer) <= limit


@dataclass(frozen=True)
class Quiz:
    stage: str                      # the lesson's file stem, e.g. "05_perceptron_backprop"
    title: str
    questions: list[Choice | Number] = field(default_factory=list)


def all_quizzes() -> list[Quiz]:
    """Every quiz data file ``qNN.py`` in this package, in stage order."""
    quizzes = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
        if info.name.startswith("q") and info.name[1:].isdigit():
            quizzes.append(importlib.import_module(f"{__name__}.{info.name}").QUIZ)
    return quizzes


def get_quiz(stage: str) -> Quiz:
    """The quiz of ``stage`` ("05" or "05_perceptron_backprop")."""
    try:
        return importlib.import_module(f"{__name__}.q{stage[:2]}").QUIZ
    except ModuleNotFoundError:
        raise ValueError(f"no quiz for stage {stage!r}; the quizzes are "
                         f"{[q.stage for q in all_quizzes()]}") from None


def check_answer(stage: str, number: int, given: Any) -> bool:
    """Check the answer to question ``number`` of ``stage``'s quiz; show the explanation."""
    quiz = get_quiz(stage)
    if not 1 <= number <= len(quiz.questions):
        raise ValueError(f"quiz {stage} has questions 1 to {len(quiz.questions)}, not {number}")
    question = quiz.questions[number - 1]
    name = f"question {number}"
    if given is None:
        raise fail(name, "not answered yet",
                   hint=f"set answer_{number} = {question.example()} in the cell above and "
                        f"run it, then run this cell")
    try:
        right = question.is_right(given)
    except TypeError as err:
        raise fail(name, f"{given!r} is not an answer of the right kind", hint=str(err)) from None
    if not right:
        raise fail(name, f"{given!r} is not right", hint=question.explain)
    print(f"{PASS_MARK} {name}: right. {question.explain}")
    return True


# ------------------------------------------------------------------ the notebooks

def quiz_notebook(quiz: Quiz) -> nbformat.NotebookNode:
    """The quiz notebook a learner fills in (deterministic cell ids, no outputs)."""
    nn = quiz.stage[:2]
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python",
                                 "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    cells = [
        md(f"# {nn} · Quiz: {quiz.title}\n\n"
           f"{len(quiz.questions)} short questions on lesson `notebooks/{quiz.stage}.ipynb`. "
           f"Write your answer in each `answer_N = ...` cell (a letter such as `\"b\"`, or a "
           f"number), run it, then run the check below it: it says whether you are right "
           f"and explains why.", id=f"q{nn}-title"),
        code("from slm_course.exercises.quizzes import check_answer", id=f"q{nn}-import")]
    for k, q in enumerate(quiz.questions, start=1):
        cells += [md(f"### Question {k}\n\n{q.text}\n\n{q.prompt()}", id=f"q{nn}-{k}-text"),
                  code(f"answer_{k} = None  # your answer, e.g. answer_{k} = {q.example()}",
                       id=f"q{nn}-{k}-answer"),
                  code(f'check_answer("{quiz.stage}", {k}, answer_{k})', id=f"q{nn}-{k}-check")]
    nb.cells = cells
    return nb


def build_quizzes(out_dir: Path) -> list[Path]:
    """Write every quiz notebook into ``out_dir``; return the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for quiz in all_quizzes():
        target = out_dir / f"{quiz.stage}.ipynb"
        text = nbformat.writes(quiz_notebook(quiz)) + "\n"
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def quizzes_out_of_sync(out_dir: Path) -> list[str]:
    """Problems with ``out_dir`` (``exercises/quizzes``); empty when it matches the data."""
    out_dir = Path(out_dir)
    problems = []
    names = set()
    for quiz in all_quizzes():
        target = out_dir / f"{quiz.stage}.ipynb"
        names.add(target.name)
        if not target.exists():
            problems.append(f"{target} is missing")
        elif target.read_text(encoding="utf-8") != nbformat.writes(quiz_notebook(quiz)) + "\n":
            problems.append(f"{target} differs from its quiz data")
    problems += [f"{p} has no quiz data" for p in sorted(out_dir.glob("*.ipynb"))
                 if p.name not in names]
    return problems
