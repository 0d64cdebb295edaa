"""The package's shape: every teaching module belongs to a stage, names one idea once, and
imports run one way (teaching modules never reach up into the command line)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from collections import defaultdict
from pathlib import Path

import pytest

import slm_course
from slm_course import STAGES

PACKAGE = Path(slm_course.__file__).parent
PLUMBING = {"helpers", "cli", "data", "exercises", "__main__"}

# Public names that two teaching modules may both define, and why. Keep this list short.
ALLOWED_TWICE: dict[str, str] = {}


def teaching_modules() -> list[str]:
    """Top-level modules and the tokenizers subpackage, relative to slm_course."""
    names = []
    for info in pkgutil.iter_modules([str(PACKAGE)]):
        if info.name in PLUMBING:
            continue
        names.append(info.name)
        if info.ispkg:
            sub = PACKAGE / info.name
            names += [f"{info.name}.{s.name}" for s in pkgutil.iter_modules([str(sub)])]
    return sorted(names)


def module_path(name: str) -> Path:
    path = PACKAGE.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def test_every_listed_module_exists_and_names_its_stage():
    for stage, (_, modules) in STAGES.items():
        for name in modules:
            module = importlib.import_module(f"slm_course.{name}")
            assert re.search(rf"\b[Ss]tages? (\d\d[ ,and]*)*{stage:02d}\b", module.__doc__ or ""), \
                f"slm_course.{name}'s docstring does not name stage {stage:02d}"


def test_every_teaching_module_belongs_to_a_stage():
    listed = {name for _, modules in STAGES.values() for name in modules}
    orphans = [name for name in teaching_modules() if name not in listed]
    assert not orphans, f"teaching modules in no stage of slm_course.STAGES: {orphans}"


def public_definitions(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return {n for n in names if not n.startswith("_") and n != "__all__"}


def test_each_public_name_is_defined_by_one_teaching_module():
    where = defaultdict(list)
    for name in teaching_modules():
        for defined in public_definitions(module_path(name)):
            where[defined].append(name)
    twice = {n: ms for n, ms in where.items() if len(ms) > 1 and n not in ALLOWED_TWICE}
    assert not twice, f"public names defined by more than one teaching module: {twice}"


def test_the_duplicate_name_check_can_fail(tmp_path):
    (tmp_path / "a.py").write_text("def fit():\n    pass\n_private = 1\n")
    (tmp_path / "b.py").write_text("class fit:\n    pass\nSGD: int = 1\n")
    assert public_definitions(tmp_path / "a.py") & public_definitions(tmp_path / "b.py") == {
        "fit"}


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from ... import`` names, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("name", teaching_modules() + ["helpers", "data"])
def test_imports_run_one_way(name):
    """Below the command line nothing imports it (presets and the CLI assemble runs)."""
    path = module_path(name)
    paths = sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]
    for path in paths:
        upward = {m for m in imported_modules(path) if m.startswith("slm_course.cli")}
        assert not upward, f"{path.relative_to(PACKAGE)} imports {upward}, which sit above it"


def test_the_import_check_sees_nested_imports(tmp_path):
    (tmp_path / "m.py").write_text("def f():\n    from slm_course.cli.runs import train_lm\n")
    assert imported_modules(tmp_path / "m.py") == {"slm_course.cli.runs"}


def test_the_ready_stages_are_the_same_everywhere():
    """A stage is ready when it has reference code (STAGES), a lesson, and the two maps (the
    README's and lesson 00's) say so; no map may call a missing stage ready."""
    import nbformat

    root = PACKAGE.parent
    lessons = {int(p.name[:2]) for p in (root / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    readme = {int(m) for m in re.findall(r"^\| (\d\d) \|.*\| ready \|$",
                                         (root / "README.md").read_text(), flags=re.M)}
    welcome = nbformat.read(next((root / "notebooks").glob("00_*.ipynb")), as_version=4)
    text = "\n".join(c.source for c in welcome.cells if c.cell_type == "markdown")
    lesson00 = {int(m) for m in re.findall(r"^\| (\d\d) \|.*\| ready \|$", text, flags=re.M)}
    assert set(STAGES) == lessons == readme == lesson00, (
        f"STAGES {sorted(STAGES)}, lessons {sorted(lessons)}, README ready {sorted(readme)}, "
        f"lesson 00 ready {sorted(lesson00)}")
    assert list(STAGES) == sorted(STAGES), f"STAGES out of order: {list(STAGES)}"
