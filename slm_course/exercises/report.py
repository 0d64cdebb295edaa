"""Grade a class: many submissions in parallel, one report for the mentor and one for an LMS.

``slm-course exercises grade submissions/ --out report/`` writes:

* ``report.md``: per notebook, a table learners x exercises (PASS/FAIL), the totals, and for
  each exercise the most frequent failure reasons (the hint the class needed most);
* ``scores.csv``: one row per learner and notebook (learner, file, notebook, score, total);
* ``results.csv``: one row per learner and exercise (passed, reason), for import;
* ``report.json``: everything above, plus each submission's notes.
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm.auto import tqdm

from slm_course.exercises.grade import (
    Canonical,
    Grade,
    canonical_notebooks,
    grade_notebook,
    load_canonical,
    match_canonical,
    read_submission,
)
from slm_course.exercises.sandbox import Limits

_NUMBER = re.compile(r"-?\d+(\.\d+)?(e-?\d+)?")


def collect(paths: Iterable[Path]) -> list[Path]:
    """The submissions: notebook files given, and every ``*.ipynb`` inside folders given."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += sorted(p for p in path.rglob("*.ipynb")
                            if ".ipynb_checkpoints" not in p.parts)
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or folder")
    if not found:
        raise FileNotFoundError("no notebooks to grade: pass notebook files or a folder of "
                                "*.ipynb submissions")
    return found


def grade_all(paths: Iterable[Path], *, jobs: int | None = None, exercise: Path | None = None,
              exercises_dir: Path | None = None, limits: Limits | None = None,
              progress: bool = True) -> list[Grade]:
    """Grade every submission, ``jobs`` at a time (default: the number of cores)."""
    paths = collect(paths)
    limits = limits or Limits()
    if exercise is not None:
        fixed = load_canonical(Path(exercise))
        plan: dict[Path, Canonical | None] = {p: fixed for p in paths}
    else:
        candidates = canonical_notebooks(exercises_dir)
        plan = {}
        for p in paths:
            try:
                plan[p] = match_canonical(read_submission(p), candidates)
            except (ValueError, FileNotFoundError):
                plan[p] = None  # unreadable: graded against the class's most common notebook
        common = Counter(c.path for c in plan.values() if c is not None).most_common(1)
        default = next((c for c in plan.values() if common and c is not None
                        and c.path == common[0][0]), None)
        plan = {p: c or default for p, c in plan.items()}
    jobs = max(1, jobs or os.cpu_count() or 1)
    grades: dict[Path, Grade] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool, \
            tqdm(total=len(paths), desc="grading", unit="notebook",
                 disable=not progress) as bar:
        futures = {pool.submit(grade_notebook, p, canonical=plan[p], limits=limits): p
                   for p in paths}
        for future in as_completed(futures):
            grades[futures[future]] = future.result()
            bar.update(1)
    return [grades[p] for p in paths]


def summarize(grades: list[Grade], top: int = 3) -> dict:
    """The class report as plain data, grouped by the notebook graded against."""
    groups: dict[str, list[Grade]] = {}
    for g in grades:
        groups.setdefault(g.notebook or "(no matching notebook)", []).append(g)
    notebooks = []
    for name, members in groups.items():
        keys = list(dict.fromkeys(r.key for g in members for r in g.results))
        titles = {r.key: r.title for g in members for r in g.results}
        per_exercise = []
        for key in keys:
            rows = [r for g in members for r in g.results if r.key == key]
            reasons = Counter(_NUMBER.sub("N", r.reason) for r in rows if not r.passed)
            per_exercise.append({
                "exercise": key, "title": titles[key],
                "passed": sum(r.passed for r in rows), "failed": sum(not r.passed for r in rows),
                "top_reasons": [{"reason": reason, "count": n}
                                for reason, n in reasons.most_common(top)]})
        notebooks.append({
            "notebook": name, "exercises": keys, "per_exercise": per_exercise,
            "learners": [g.to_dict() for g in members],
            "mean_score": (sum(g.score for g in members) / len(members)) if members else 0.0})
    return {"submissions": len(grades), "notebooks": notebooks}


def write_reports(grades: list[Grade], out_dir: Path) -> list[Path]:
    """Write report.md, scores.csv, results.csv and report.json into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarize(grades)
    paths = [out_dir / n for n in ("report.md", "scores.csv", "results.csv", "report.json")]
    paths[0].write_text(markdown(summary), encoding="utf-8")
    with paths[1].open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["learner", "file", "notebook", "score", "total"])
        for g in grades:
            w.writerow([g.learner, str(g.path), g.notebook, g.score, g.total])
    with paths[2].open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["learner", "file", "notebook", "exercise", "passed", "reason"])
        for g in grades:
            for r in g.results:
                w.writerow([g.learner, str(g.path), g.notebook, r.key, int(r.passed),
                            "" if r.passed else r.reason])
    paths[3].write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return paths


def markdown(summary: dict) -> str:
    """The class report for reading."""
    lines = ["# Class report", "", f"{summary['submissions']} submissions.", ""]
    for nb in summary["notebooks"]:
        keys = nb["exercises"]
        short = [k.removeprefix("check_") for k in keys]
        lines += [f"## {nb['notebook']}", "",
                  f"Mean score {nb['mean_score']:.2f} / {len(keys)}.", "",
                  "| learner | " + " | ".join(short) + " | score |",
                  "|---|" + "---|" * len(keys) + "---|"]
        for g in nb["learners"]:
            marks = {r["key"]: ("PASS" if r["passed"] else "FAIL") for r in g["results"]}
            lines.append(f"| {_cell(g['learner'])} | "
                         + " | ".join(marks.get(k, "-") for k in keys)
                         + f" | {g['score']}/{g['total']} |")
        passed = [e["passed"] for e in nb["per_exercise"]]
        lines += ["| **passed** | " + " | ".join(str(p) for p in passed) + " | |", "",
                  "### What the class found hardest", ""]
        for e in sorted(nb["per_exercise"], key=lambda e: -e["failed"]):
            if not e["failed"]:
                continue
            lines.append(f"- **{e['exercise']}** ({e['title']}): {e['failed']} failed")
            lines += [f"  - {r['count']} × {_cell(r['reason'])}" for r in e["top_reasons"]]
        notes = [(g["learner"], n) for g in nb["learners"] for n in g["notes"]]
        if notes:
            lines += ["", "### Notes", ""] + [f"- {_cell(who)}: {_cell(n)}" for who, n in notes]
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
