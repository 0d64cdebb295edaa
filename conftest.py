"""Repository-wide pytest hooks: report how long each notebook took to run.

nbval turns every notebook cell into a test item; here they are summed per notebook so the
closing summary shows which notebooks are slow (the fast profile has a budget per notebook).
"""

from __future__ import annotations

from collections import defaultdict

_durations: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    path = report.nodeid.split("::", 1)[0]
    if path.endswith(".ipynb"):
        _durations[path] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _durations:
        return
    terminalreporter.section("notebook durations (s)")
    for path, seconds in sorted(_durations.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{seconds:8.1f}  {path}")
    terminalreporter.write_line(f"{sum(_durations.values()):8.1f}  total")
