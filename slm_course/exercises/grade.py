"""Run a learner's notebook safely and report which exercise checks passed.

The notebook runs in a fresh kernel with a per-cell timeout: a cell that raises is recorded
and the run goes on; a cell that hangs is interrupted. The learner's file is only read,
never written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

CHECK_CALL = re.compile(r"\b(check_\w+)\s*\(")


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check cell."""

    cell: int
    checks: tuple[str, ...]
    passed: bool
    reason: str


def check_cells(nb: nbformat.NotebookNode) -> list[int]:
    """Indices of code cells that call a ``check_*`` function."""
    return [i for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and CHECK_CALL.search(c.source)
            and not c.source.lstrip().startswith(("from ", "import "))]


def grade_notebook(path: Path, *, timeout: int = 120, cwd: Path | None = None
                   ) -> list[CheckResult]:
    """Execute the notebook at ``path`` and return one :class:`CheckResult` per check cell."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no notebook at {path}")
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as err:
        raise ValueError(f"{path} is not a readable notebook ({err}); "
                         f"open it in JupyterLab and save it again") from err
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            interrupt_on_timeout=True,
                            resources={"metadata": {"path": str(cwd or path.parent)}})
    stopped = ""
    try:
        client.execute()
    except (CellTimeoutError, DeadKernelError) as err:
        stopped = f"the run stopped early: {type(err).__name__}"
    return [_result(i, nb.cells[i], stopped) for i in check_cells(nb)]


def _result(index: int, cell: nbformat.NotebookNode, stopped: str) -> CheckResult:
    names = tuple(dict.fromkeys(CHECK_CALL.findall(cell.source)))
    errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        err = errors[0]
        first = str(err.get("evalue", "")).splitlines()[:1]
        return CheckResult(index, names, False, f"{err.get('ename')}: {' '.join(first)}")
    if cell.get("execution_count") is None and not cell.get("outputs"):
        return CheckResult(index, names, False, stopped or "cell was not run")
    return CheckResult(index, names, True, "passed")


def format_report(path: Path, results: list[CheckResult]) -> str:
    """A short plain-text report: one line per check cell and the score."""
    lines = [f"{path}"]
    for r in results:
        mark = "PASS" if r.passed else "FAIL"
        lines.append(f"  [{mark}] cell {r.cell:>3} {', '.join(r.checks)}"
                     + ("" if r.passed else f"  ({r.reason})"))
    score = sum(r.passed for r in results)
    lines.append(f"  score: {score}/{len(results)}")
    return "\n".join(lines)
