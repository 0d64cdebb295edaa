"""A corpus of hostile submissions: each must get exactly the score written next to it.

Every case is stage 00's exercise notebook (three checked exercises, plain Python) or its
solution, changed the way a learner could change it to fool the grader or to break the run.
The cases are generated into a temporary folder and graded in parallel, against the mentor's
copy ``exercises/00_welcome.ipynb`` (its first three exercises). Most cases drop the
``start()`` call (it imports PyTorch, which makes every case seconds slower and proves
nothing about grading); the first two cases are the untouched notebooks.
"""

from __future__ import annotations

import copy
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from slm_course.exercises.grade import grade_notebook, load_canonical
from slm_course.exercises.sandbox import Limits

ROOT = Path(__file__).resolve().parents[1]
EXERCISE = ROOT / "exercises" / "00_welcome.ipynb"
SOLUTION = ROOT / "solutions" / "00_welcome.ipynb"
LIMITS = Limits(step_s=12, total_s=120, grace_s=3)
_FUNCS = {"count": "count_characters", "vocab": "build_vocabulary", "encode": "encode"}


def _index(prefix: str) -> dict[str, int]:
    cells = nbformat.read(EXERCISE, as_version=4).cells
    return {k: next(i for i, c in enumerate(cells) if c.source.startswith(prefix + f))
            for k, f in _FUNCS.items()}


CHECKS = _index("check_")  # the check cells' indices, e.g. check_count_characters(...)
DEFS = _index("def ")      # the cells that define the functions


def _read(path: Path, *, start: bool) -> nbformat.NotebookNode:
    """The notebook up to its "put it to work" cell: the three warm-up exercises only, so
    that exercises added to stage 00 later do not change the scores below."""
    nb = nbformat.read(path, as_version=4)
    nb.cells = nb.cells[: CHECKS["encode"] + 3]
    if not start:  # keep the imports, drop `session = start(seed=0)` (it imports torch)
        nb.cells[1].source = "\n".join(
            line for line in nb.cells[1].source.splitlines()
            if "start" not in line)
    return nb


def _sol() -> nbformat.NotebookNode:
    return _read(SOLUTION, start=False)


def _ex() -> nbformat.NotebookNode:
    return _read(EXERCISE, start=False)


def _add(nb: nbformat.NotebookNode, after: int, source: str) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    nb.cells.insert(after + 1, nbformat.v4.new_code_cell(source))
    return nb


def _edit(nb: nbformat.NotebookNode, cells: dict[int, str]) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    for index, source in cells.items():
        nb.cells[index].source = source
    return nb


def _wrap_checks(nb, template):
    return _edit(nb, {i: template.format(call=nb.cells[i].source) for i in CHECKS.values()})


READ_SOLUTIONS = """import json
nb = json.load(open({path}))
for cell in nb["cells"]:
    if cell["cell_type"] == "code":
        exec("".join(cell["source"]), globals())
"""
IGNORE_INTERRUPT = """import time
while True:
    try:
        time.sleep(0.5)
    except KeyboardInterrupt:
        pass
"""
FAKE_MODULE = """import sys, types
fake = types.ModuleType("slm_course.exercises.stage00")
fake.check_count_characters = fake.check_build_vocabulary = lambda *a: True
fake.check_encode_decode = lambda *a: True
sys.modules["slm_course.exercises.stage00"] = fake
from slm_course.exercises.stage00 import check_count_characters, check_build_vocabulary
"""
WRONG = {DEFS["count"]: "def count_characters(text):\n    return {}",
         DEFS["vocab"]: "def build_vocabulary(text):\n    return []",
         DEFS["encode"]: "def encode(text, vocab):\n    return []\n\n"
                         "def decode(ids, vocab):\n    return ''"}


def _cases(tmp: Path) -> list[tuple[str, object, int, dict[str, str]]]:
    """(name, notebook or raw bytes, the score it must get, {exercise: words in the reason})."""
    victim = tmp / "victim.ipynb"
    sol, ex = _sol(), _ex()
    func = {k: sol.cells[i].source for k, i in DEFS.items()}
    c, v = DEFS["count"], DEFS["vocab"]  # the cells that define the first two functions
    return [
        ("solution", _read(SOLUTION, start=True), 3, {}),
        ("untouched exercise", _read(EXERCISE, start=True), 0,
         {"check_count_characters": "not implemented"}),
        ("checks wrapped in try/except", _wrap_checks(
            ex, "try:\n    {call}\nexcept Exception:\n    pass"), 0, {}),
        ("checks commented out", _wrap_checks(ex, "# {call}"), 0, {}),
        ("checks redefined", _add(ex, 1, "check_count_characters = check_build_vocabulary = "
                                  "check_encode_decode = lambda *a: True"), 0, {}),
        ("bonus checks added", _add(_add(ex, 1, "def check_bonus_1():\n    pass\n"
                                     "check_bonus_1()"), 1, "def check_x(): pass\ncheck_x()"),
         0, {}),
        ("solution with its check cells deleted",
         _edit(sol, dict.fromkeys(CHECKS.values(), "")), 3, {}),
        ("exercise with its check cells deleted",
         _edit(ex, dict.fromkeys(CHECKS.values(), "")), 0, {}),
        ("reads ../solutions", _add(ex, 1, READ_SOLUTIONS.format(
            path="'../solutions/00_welcome.ipynb'")), 0, {}),
        ("reads the solutions by absolute path", _add(ex, 1, READ_SOLUTIONS.format(
            path=repr(str(SOLUTION)))), 0, {}),
        ("a cell that ignores the interrupt", _add(sol, c, IGNORE_INTERRUPT), 3, {}),
        ("a cell that ignores SIGINT", _add(sol, c, "import signal\nsignal.signal("
                                            "signal.SIGINT, signal.SIG_IGN)\nwhile True:\n"
                                            "    pass"), 3, {}),
        ("os._exit in a cell", _add(sol, c, "import os\nos._exit(3)"), 3, {}),
        ("the kernel kills itself", _add(sol, v, "import os, signal\n"
                                         "os.kill(os.getpid(), signal.SIGKILL)"), 3, {}),
        ("sys.exit in a cell", _add(sol, c, "import sys\nsys.exit(1)"), 3, {}),
        ("os._exit inside an exercise function", _edit(sol, {c: func["count"].replace(
            "counts: dict", "import os; os._exit(0)\n    counts: dict")}), 2,
         {"check_count_characters": "stopped"}),
        ("an infinite loop inside an exercise function", _edit(sol, {v: func["vocab"].replace(
            "return sorted", "while True:\n        pass\n    return sorted")}), 2,
         {"check_build_vocabulary": "limit"}),
        ("fork and subprocess in a cell", _add(sol, c, "import os, subprocess\ntry:\n"
                                               "    os.fork()\nfinally:\n"
                                               "    subprocess.run(['true'])"), 3, {}),
        ("fork inside an exercise function", _edit(sol, {c: func["count"].replace(
            "counts: dict", "import os; os.fork()\n    counts: dict")}), 2,
         {"check_count_characters": "start processes"}),
        ("100 MB of output", _add(sol, c, "import sys\nfor _ in range(100):\n"
                                  "    sys.stdout.write('x' * 1_000_000)"), 3, {}),
        ("20 GB of memory", _add(sol, c, "x = bytearray(20 * 2**30)"), 3, {}),
        ("not a notebook", b"{ this is not json", 0,
         {"check_count_characters": "not a readable notebook"}),
        ("the check machinery patched", _add(_edit(ex, WRONG), 1,
                                             "import slm_course.exercises.checking as c\n"
                                             "c.expect = lambda *a, **k: None"), 0,
         {"check_count_characters": "replaced slm_course.exercises.checking.expect"}),
        ("a check's code replaced", _add(_edit(ex, WRONG), 1,
                                         "import slm_course.exercises.stage00 as s\n"
                                         "s.check_encode_decode.__code__ = "
                                         "(lambda *a: True).__code__"), 0,
         {"check_encode_decode": "replaced"}),
        ("sys.modules tricks", _add(_edit(ex, WRONG), 1, FAKE_MODULE), 0,
         {"check_count_characters": "sys.modules"}),
        ("the course's function imported", _add(ex, v, "from slm_course.perceptron import "
                                                "perceptron_update as build_vocabulary"), 0,
         {"check_build_vocabulary": "imported from the course"}),
        ("an exercise function renamed", _edit(sol, {c: func["count"].replace(
            "def count_characters", "def count_chars")}), 2,
         {"check_count_characters": "not defined"}),
        ("writes over a classmate's submission", _add(sol, c, f"open({str(victim)!r}, 'w')"
                                                      f".write('gone')"), 3, {}),
    ]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    mentor = tmp_path_factory.mktemp("mentor")  # the mentor's copy: the three exercises
    nbformat.write(_read(EXERCISE, start=True), mentor / EXERCISE.name)
    canonical = load_canonical(mentor / EXERCISE.name)
    (tmp / "victim.ipynb").write_bytes(SOLUTION.read_bytes())
    jobs = []
    for number, (name, nb, score, reasons) in enumerate(_cases(tmp)):
        path = tmp / f"case{number:02d}.ipynb"
        if isinstance(nb, bytes):
            path.write_bytes(nb)
        else:
            nbformat.write(nb, path)
        jobs.append((name, path, score, reasons))
    before = {p: p.read_bytes() for p in tmp.iterdir()}
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        grades = list(pool.map(
            lambda job: grade_notebook(job[1], canonical=canonical, limits=LIMITS), jobs))
    seconds = time.monotonic() - started
    print(f"\n{len(jobs)} hostile submissions graded in {seconds:.0f} s")
    return {name: (grade, score, reasons) for (name, _, score, reasons), grade
            in zip(jobs, grades, strict=True)}, before


def test_at_least_fifteen_cases(tmp_path):
    assert len(_cases(tmp_path)) >= 15


@pytest.mark.parametrize("name", [c[0] for c in _cases(Path("/nonexistent"))])
def test_hostile_submission_gets_its_exact_score(graded, name):
    grades, _ = graded
    grade, score, reasons = grades[name]
    detail = "\n".join(f"{r.key}: {'PASS' if r.passed else r.reason}" for r in grade.results)
    assert grade.total == 3, f"{name}: every case is graded on the mentor's 3 exercises"
    assert grade.score == score, f"{name}: expected {score}/3, got {grade.score}/3\n{detail}"
    by_key = {r.key: r for r in grade.results}
    for key, words in reasons.items():
        assert words in by_key[key].reason, f"{name}: {key}'s reason lacks {words!r}: {detail}"


def test_nothing_in_the_submissions_folder_changed(graded):
    grades, before = graded
    for path, data in before.items():
        assert path.read_bytes() == data, f"grading changed {path.name}"


def test_output_is_truncated_and_has_no_kernel_warnings(graded):
    grades, _ = graded
    flood = grades["100 MB of output"][0]
    assert len(flood.output) < 200_000, "100 MB of output must not be kept"
    assert "dropped" in flood.output
    for grade, _, _ in grades.values():
        assert "without encryption" not in grade.output


def test_borrowed_code_is_recognised():
    from slm_course.exercises.runner import borrowed
    from slm_course.perceptron import perceptron_update as ref

    course = str(ROOT / "slm_course")
    assert "imported from the course" in borrowed(ref, "perceptron_update", course)

    def perceptron_update(*args):  # a wrapper around the course's function
        return ref(*args)

    assert "calls the course's" in borrowed(perceptron_update, "perceptron_update", course)

    def written(w, b, x, y, lr=1.0):  # the learner's own code
        return (w + lr * y * x, b + lr * y) if y * (w @ x + b) <= 0 else (w, b)

    assert borrowed(written, "perceptron_update", course) == ""
