"""Grade a learner's notebook with the course's own checks, in a contained process.

What is graded is decided by the mentor's copy, never by the learner's notebook:

* the *canonical* notebook is the course's exercise notebook (``exercises/NN_slug.ipynb``,
  or a quiz in ``exercises/quizzes/``) that the submission is a copy of, found by its cell
  ids (kept by JupyterLab), its title, or the functions it defines; ``--exercise`` names it;
* each exercise is one check cell of the canonical notebook, e.g.
  ``check_perceptron_update(perceptron_update)``. The learner's notebook may edit, delete,
  wrap, comment out or redefine its own check cells: they are the learner's code, nothing
  more;
* the learner's code cells run first, in a child process (:mod:`slm_course.exercises.runner`)
  inside a scratch folder with limits (:mod:`slm_course.exercises.sandbox`); then each
  canonical check cell runs there in a fresh namespace holding only the check function
  (imported before any learner code ran) and the objects the check cell names;
* an exercise function imported from ``slm_course`` instead of written is a FAIL saying so;
  a renamed or deleted one is a FAIL saying it is not defined.

A cell that hangs is interrupted, then killed with its process group; the notebook is then
re-run without that cell, so one bad cell costs only the exercises that need it.
"""

from __future__ import annotations

import ast
import builtins
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat

import slm_course
from slm_course.exercises.notebooks import STUB
from slm_course.exercises.sandbox import Limits, run_contained

COURSE_DIR = Path(slm_course.__file__).resolve().parent
REPO_DIR = COURSE_DIR.parent
CHECK_CALL = re.compile(r"\b(check_\w+)\s*\(")
_TITLE = re.compile(r"^#\s*(\d\d)\b")
_MAX_RESTARTS = 3


@dataclass(frozen=True)
class Exercise:
    """One canonical check cell: what it runs and which learner objects it needs."""

    key: str                 # the check function it calls, e.g. "check_perceptron_update"
    title: str               # the heading above it, e.g. "Exercise 1: the perceptron update"
    source: str              # the mentor's check cell
    needs: tuple[str, ...]   # names it takes from the learner's namespace
    targets: tuple[str, ...]  # of those, the ones the learner writes (stubs in the exercise)


@dataclass(frozen=True)
class Canonical:
    """The mentor's copy of one exercise (or quiz) notebook."""

    path: Path
    name: str                # e.g. "05_perceptron_backprop" or "quiz 05_perceptron_backprop"
    imports: tuple[tuple[str, tuple[str, ...]], ...]
    exercises: tuple[Exercise, ...]
    cell_ids: frozenset[str]
    check_sources: frozenset[str]
    defined: frozenset[str]


@dataclass
class ExerciseResult:
    key: str
    title: str
    passed: bool
    reason: str
    message: str = ""


@dataclass
class Grade:
    """The grade of one submission."""

    path: Path
    learner: str
    notebook: str            # the canonical notebook's name, or "" if none matched
    results: list[ExerciseResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    output: str = ""
    seconds: float = 0.0

    @property
    def score(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def total(self) -> int:
        return len(self.results)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["path"] = str(self.path)
        d.pop("output")
        d.update(score=self.score, total=self.total)
        return d


# ------------------------------------------------------------------ the mentor's copy

def default_exercises_dir() -> Path:
    """``exercises/`` of this checkout (the folder next to the ``slm_course`` package)."""
    return REPO_DIR / "exercises"


def load_canonical(path: Path) -> Canonical:
    """Read the mentor's exercise notebook at ``path`` and list its exercises."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    imports: dict[str, list[str]] = {}
    defined: set[str] = set()
    stub_defined: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        tree = _parse(cell.source)
        if tree is None:
            continue
        names = {n.name for n in tree.body
                 if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))}
        defined |= names
        if STUB[1] in cell.source:
            stub_defined |= names
        for node in ast.walk(tree):
            if (isinstance(node, ast.ImportFrom) and node.module
                    and node.module.startswith("slm_course.exercises")):
                imports.setdefault(node.module, []).extend(
                    a.name for a in node.names if a.name.startswith("check_"))
    check_names = {n for names in imports.values() for n in names}
    exercises = []
    title = ""
    calls: dict[str, int] = {}
    every_call = [n for c in nb.cells if c.cell_type == "code"
                  and _is_check_cell(c.source, check_names)
                  for n in CHECK_CALL.findall(c.source)[:1]]
    repeated = {n for n in every_call if every_call.count(n) > 1}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            heading = next((line.lstrip("#").strip() for line in cell.source.splitlines()
                            if line.startswith("#")), "")
            title = heading or title
            continue
        if cell.cell_type != "code" or not _is_check_cell(cell.source, check_names):
            continue
        tree = _parse(cell.source)
        key = next(n for n in CHECK_CALL.findall(cell.source) if n in check_names)
        calls[key] = calls.get(key, 0) + 1
        key = f"{key}#{calls[key]}" if calls[key] > 1 or key in repeated else key
        needs = tuple(n for n in _free_names(tree) if n not in check_names)
        exercises.append(Exercise(key, title or key, cell.source, needs,
                                  tuple(n for n in needs if n in stub_defined)))
    if not exercises:
        raise ValueError(f"{path} has no check cells: it is not an exercise notebook")
    name = path.stem if path.parent.name != "quizzes" else f"quiz {path.stem}"
    return Canonical(path, name, tuple((m, tuple(dict.fromkeys(n))) for m, n in imports.items()),
                     tuple(exercises), frozenset(c.get("id", "") for c in nb.cells) - {""},
                     frozenset(e.source.strip() for e in exercises), frozenset(defined))


def canonical_notebooks(exercises_dir: Path | None = None) -> list[Canonical]:
    """Every exercise notebook and quiz of the course, as the mentor's copies."""
    root = Path(exercises_dir or default_exercises_dir())
    paths = sorted(root.glob("*.ipynb")) + sorted((root / "quizzes").glob("*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no exercise notebooks in {root}; pass --exercises with the "
                                f"course's exercises/ folder")
    return [load_canonical(p) for p in paths]


def match_canonical(nb: nbformat.NotebookNode, candidates: list[Canonical]) -> Canonical | None:
    """The canonical notebook ``nb`` is a copy of: by cell ids, then title, then functions."""
    ids = {c.get("id", "") for c in nb.cells} - {""}
    best = max(candidates, key=lambda c: len(c.cell_ids & ids), default=None)
    if best is not None and len(best.cell_ids & ids) >= 3:
        return best
    first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
    title = _TITLE.match(first.strip())
    is_quiz = "quiz" in first.lower()
    if title:
        named = [c for c in candidates if c.path.stem.startswith(title.group(1))
                 and (c.path.parent.name == "quizzes") == is_quiz]
        if len(named) == 1:
            return named[0]
    defined: set[str] = set()
    for cell in nb.cells:
        tree = _parse(cell.source) if cell.cell_type == "code" else None
        if tree is not None:
            defined |= {n.name for n in tree.body if isinstance(n, (ast.FunctionDef,
                                                                     ast.ClassDef))}
    scored = [(len(c.defined & defined), c) for c in candidates]
    top = max(scored, key=lambda s: s[0], default=(0, None))
    return top[1] if top[0] >= 2 else None


def learner_name(path: Path, nb: nbformat.NotebookNode | None) -> str:
    """The learner: ``metadata.slm_course.learner``, the first of ``metadata.authors``, or
    the file name without its extension."""
    if nb is not None:
        meta = nb.metadata.get("slm_course", {})
        if isinstance(meta, dict) and str(meta.get("learner", "")).strip():
            return str(meta["learner"]).strip()
        authors = nb.metadata.get("authors")
        if (isinstance(authors, list) and authors and isinstance(authors[0], dict)
                and str(authors[0].get("name", "")).strip()):
            return str(authors[0]["name"]).strip()
    return Path(path).stem


# ------------------------------------------------------------------ grading one notebook

def read_submission(path: Path) -> nbformat.NotebookNode:
    """Read a learner's notebook, or raise ValueError saying why it is not one."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no notebook at {path}")
    if path.stat().st_size > 50 * 2**20:
        raise ValueError(f"{path} is larger than 50 MB: clear its outputs and save it again")
    try:
        nb = nbformat.read(path, as_version=4)
        if not isinstance(nb.get("cells"), list):
            raise ValueError("it has no cells")
    except Exception as err:
        raise ValueError(f"{path} is not a readable notebook ({str(err)[:200]}); open it in "
                         f"JupyterLab and save it again") from err
    return nb


def grade_notebook(path: Path, *, canonical: Canonical | Path | None = None,
                   exercises_dir: Path | None = None, timeout: float = 120,
                   limits: Limits | None = None) -> Grade:
    """Grade the learner's notebook at ``path``; never raises for a bad submission.

    ``canonical``: the mentor's notebook to grade against (found automatically if None).
    ``timeout``: seconds per cell and per check (``limits`` sets all limits at once).
    """
    path = Path(path)
    limits = limits or Limits(step_s=timeout, total_s=max(900.0, 4 * timeout))
    started = time.monotonic()
    if isinstance(canonical, (str, Path)):
        canonical = load_canonical(Path(canonical))
    try:
        nb = read_submission(path)
    except (ValueError, FileNotFoundError) as err:
        grade = Grade(path, path.stem, canonical.name if canonical else "", notes=[str(err)])
        if canonical is not None:
            grade.results = [ExerciseResult(e.key, e.title, False, "the submission is not a "
                                            "readable notebook") for e in canonical.exercises]
        return grade
    if canonical is None:
        canonical = match_canonical(nb, canonical_notebooks(exercises_dir))
    grade = Grade(path, learner_name(path, nb), canonical.name if canonical else "")
    if canonical is None:
        grade.notes.append("this notebook matches none of the course's exercise notebooks; "
                           "pass --exercise exercises/NN_slug.ipynb")
        return grade
    _run(nb, path, canonical, limits, grade)
    grade.seconds = time.monotonic() - started
    return grade


def _run(nb: nbformat.NotebookNode, path: Path, canonical: Canonical, limits: Limits,
         grade: Grade) -> None:
    cells = [(i, c.source) for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and c.source.strip() not in canonical.check_sources]
    results: dict[str, ExerciseResult] = {}
    titles = {e.key: e.title for e in canonical.exercises}
    skip_cells: list[int] = []
    deadline = time.monotonic() + limits.total_s
    why_last = ""
    scratch = Path(tempfile.mkdtemp(prefix="slm-grade-"))
    try:
        shutil.copyfile(path, scratch / "submission.ipynb")
        for _ in range(_MAX_RESTARTS + 1):
            job = {"cells": cells, "skip_cells": skip_cells, "skip_checks": list(results),
                   "check_imports": [list(x) for x in canonical.imports],
                   "checks": [{"key": e.key, "source": e.source, "needs": list(e.needs),
                               "targets": list(e.targets)} for e in canonical.exercises],
                   "course_dir": str(COURSE_DIR), **_protected(path)}
            (scratch / "job.json").write_text(json.dumps(job), encoding="utf-8")
            outcome = run_contained([sys.executable, "-m", "slm_course.exercises.runner",
                                     "job.json"], cwd=scratch, limits=limits,
                                    deadline=deadline)
            grade.output += outcome.output
            for ev in outcome.events:
                if ev.get("ev") == "result" and ev.get("key") in titles:
                    results[ev["key"]] = ExerciseResult(
                        ev["key"], titles[ev["key"]], bool(ev.get("passed")),
                        str(ev.get("reason", ""))[:300], str(ev.get("message", ""))[:2000])
            if outcome.finished:
                break
            why_last = outcome.why_stopped
            step = outcome.stuck_step or ""
            if step.startswith("cell "):
                skip_cells.append(int(step.split()[1]))
                grade.notes.append(f"{step}: {why_last}; the notebook was run again "
                                   f"without it")
            elif step.startswith("check "):
                key = step.split()[1]
                results[key] = ExerciseResult(key, titles.get(key, key), False,
                                              f"the check stopped: {why_last}")
            else:
                grade.notes.append(f"the run stopped: {why_last}")
                break
            if time.monotonic() > deadline - 1:
                break
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    grade.results = [results.get(e.key) or ExerciseResult(
        e.key, e.title, False, f"not graded: {why_last or 'the run stopped early'}")
        for e in canonical.exercises]


def _protected(path: Path) -> dict[str, list[str]]:
    """Folders the learner's code may not read (hidden) or change (read_only)."""
    folder = path.resolve().parent
    hidden = [str(REPO_DIR / "solutions")]
    base = os.path.realpath(sys.prefix)
    if not (str(COURSE_DIR).startswith(str(folder)) or base.startswith(str(folder))):
        hidden.append(str(folder))
    return {"hidden": hidden, "read_only": [str(REPO_DIR), str(folder)]}


# ------------------------------------------------------------------ the report

def format_report(grade: Grade) -> str:
    """A short plain-text report: one line per exercise and the score."""
    lines = [f"{grade.path}  ({grade.learner}, graded against "
             f"{grade.notebook or 'nothing'})"]
    for r in grade.results:
        mark = "PASS" if r.passed else "FAIL"
        lines.append(f"  [{mark}] {r.key}" + ("" if r.passed else f"  ({r.reason})"))
    lines += [f"  note: {n}" for n in grade.notes]
    lines.append(f"  score: {grade.score}/{grade.total}")
    return "\n".join(lines)


# ------------------------------------------------------------------ source analysis

def _parse(source: str) -> ast.Module | None:
    lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _is_check_cell(source: str, check_names: set[str]) -> bool:
    tree = _parse(source)
    if tree is None or source.lstrip().startswith(("from ", "import ")):
        return False
    return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
               and n.func.id in check_names for n in ast.walk(tree))


def _free_names(tree: ast.Module | None) -> list[str]:
    if tree is None:
        return []
    stored = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
              and isinstance(n.ctx, ast.Store)}
    loaded = [n.id for n in ast.walk(tree) if isinstance(n, ast.Name)
              and isinstance(n.ctx, ast.Load)]
    return [n for n in dict.fromkeys(loaded) if n not in stored and not hasattr(builtins, n)]
