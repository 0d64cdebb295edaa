"""``slm-course site build|serve``: the lessons as a static website, with their figures.

The lessons are committed without outputs, so on the web they show code and no figures.
``site build`` runs every lesson in ``notebooks/`` (whatever ``NN_slug.ipynb`` files exist)
in the profile ``$SLM_COURSE_PROFILE`` chooses (fast for CI, full for publishing), each in
its own process, into a work folder, and then builds the website from those executed copies
with Jupyter Book 1.x (Sphinx) with its own execution turned off, so a failing cell is
reported against its notebook and never hidden inside the site build.

The landing page carries the curriculum map, read from the README's curriculum table (stage,
what it teaches, status) and from each lesson's own header (its time); each lesson page says
which profile produced its figures, on what hardware, and links to the notebook, its exercise
and how to run it locally. Search, maths (MathJax, served from the site itself, no CDN) and
previous/next links come from the tool.

Needs the test and build extras: ``pip install -r requirements-dev.txt``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import http.server
import json
import os
import platform
import posixpath
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nbformat

from slm_course.helpers.workload import ENV_VAR as PROFILE_ENV
from slm_course.helpers.workload import current_profile

LESSON_GLOB = "[0-9][0-9]_*.ipynb"
DEFAULT_OUT = Path("build/site")
DEFAULT_WORK = Path("build/site-src")
REPO_ENV = "SLM_COURSE_REPO_URL"  # e.g. https://github.com/OWNER/slm-course
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    build = sub.add_parser("build", help="run every lesson and build the website")
    build.add_argument("--out", type=Path, default=None,
                       help=f"where the website goes (default: {DEFAULT_OUT} in the repository)")
    build.add_argument("--work", type=Path, default=None,
                       help="where the executed notebooks and the site sources go "
                            f"(default: {DEFAULT_WORK} in the repository)")
    build.add_argument("--workers", type=int, default=2,
                       help="notebooks executed at the same time, one process each (default 2)")
    build.add_argument("--timeout", type=int, default=1800,
                       help="seconds a single cell may run before it counts as failed")
    build.add_argument("--only", nargs="+", metavar="NN",
                       help="build only these lessons, e.g. --only 00 14 (default: all)")
    build.add_argument("--no-execute", action="store_true",
                       help="reuse the executed copies already in the work folder")
    build.add_argument("--repo-url", default=os.environ.get(REPO_ENV) or _github_repo_url(),
                       help=f"the repository's web address for links (default: ${REPO_ENV}, "
                            "or the GitHub Actions repository)")
    serve = sub.add_parser("serve", help="serve the built website on http://127.0.0.1:PORT")
    serve.add_argument("--out", type=Path, default=None, help="the website folder")
    serve.add_argument("--port", type=int, default=8000)


def run(args: argparse.Namespace) -> int:
    root = repo_root()
    out = (args.out or root / DEFAULT_OUT).resolve()
    if args.action == "serve":
        return _serve(out, args.port)
    work = (args.work or root / DEFAULT_WORK).resolve()
    return build_site(root, out=out, work=work, workers=args.workers, timeout=args.timeout,
                      only=args.only, execute=not args.no_execute, repo_url=args.repo_url)


# ------------------------------------------------------------------ what is in the course


def repo_root() -> Path:
    """The repository this package was installed from (editable), else the current folder."""
    here = Path(__file__).resolve().parents[2]
    for candidate in (here, Path.cwd()):
        if (candidate / "notebooks").is_dir() and (candidate / "README.md").is_file():
            return candidate
    raise OSError("cannot find the course: run this from the repository's root folder "
                  "(the one with notebooks/ and README.md)")


def lessons(root: Path, only: list[str] | None = None) -> list[Path]:
    """Every lesson notebook, ``notebooks/NN_slug.ipynb``, in stage order."""
    found = sorted((root / "notebooks").glob(LESSON_GLOB))
    if only:
        wanted = {n.zfill(2) for n in only}
        unknown = wanted - {p.name[:2] for p in found}
        if unknown:
            raise ValueError(f"no lesson numbered {sorted(unknown)} in notebooks/; "
                             f"the lessons are {[p.name[:2] for p in found]}")
        found = [p for p in found if p.name[:2] in wanted]
    if not found:
        raise ValueError(f"no lessons ({LESSON_GLOB}) in {root / 'notebooks'}")
    return found


def curriculum(root: Path) -> dict[int, dict[str, str]]:
    """The README's curriculum table: stage number -> {"stage": ..., "status": ...}."""
    text = (root / "README.md").read_text(encoding="utf-8")
    part = text.split("## The curriculum", 1)[-1].split("\n## ", 1)[0]
    rows: dict[int, dict[str, str]] = {}
    for line in part.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[0].isdigit():
            rows[int(cells[0])] = {"stage": cells[1], "status": cells[-1]}
    return rows


def lesson_title(nb: nbformat.NotebookNode) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            m = re.search(r"^#\s+(.+)$", cell.source, re.M)
            if m:
                return m.group(1).strip()
    return "untitled"


_TIME = re.compile(r"(?:full profile|time and hardware)\W*[^.;]*?"
                   r"((?:about |under |over )?\d[\d½¼¾.,]*(?:\s*(?:to|-|–)\s*\d+)?\s*"
                   r"(?:min(?:ute)?s?|hours?|h)\b)", re.I | re.S)


def lesson_time(nb: nbformat.NotebookNode, stage: int, readme: str) -> str:
    """The full profile's time as the lesson's header states it, else the README's results."""
    head = " ".join(c.source for c in nb.cells[:3] if c.cell_type == "markdown")
    head = head.replace("\n", " ")
    m = re.search(r"time and hardware\W*(?:the )?full profile\W*([^(;,]+)", head, re.I)
    if m:  # the convention: **Time and hardware:** full profile about N min on a ... (...)
        return m.group(1).strip()
    m = _TIME.search(head)
    if m:
        return m.group(1).replace("\n", " ")
    for line in readme.splitlines():  # results table: | NN | what | result | machine, time |
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0] == f"{stage:02d}":
            m = re.search(r"(\d[^,;]*?) for the (?:whole )?lesson", cells[3])
            if m:
                return m.group(1)
    return "—"


def hardware() -> str:
    """The machine in words: CPU model and cores, and the GPU if PyTorch sees one."""
    cpu = platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = "no GPU"
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f"GPU {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return f"{os.cpu_count()} CPU cores ({cpu}), {gpu}, {platform.system()}"


def _github_repo_url() -> str:
    repo = os.environ.get("GITHUB_REPOSITORY")
    server = os.environ.get("GITHUB_SERVER_URL", "https://github.com")
    return f"{server}/{repo}" if repo else ""


# ------------------------------------------------------------------ executing the lessons


@dataclass
class Executed:
    lesson: Path
    copy: Path
    seconds: float
    error: str = ""


def execute_all(paths: list[Path], work: Path, *, workers: int, timeout: int) -> list[Executed]:
    """Run each notebook in its own process (``workers`` at a time) into ``work/``."""
    work.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, MPLBACKEND=INLINE_BACKEND)  # figures become outputs, not Agg
    env.update(thread_limits(workers, env))

    def one(path: Path) -> Executed:
        copy = work / path.name
        start = time.perf_counter()
        with tempfile.TemporaryFile("w+") as err:
            proc = subprocess.Popen([sys.executable, "-m", "slm_course.cli.site", str(path),
                                     str(copy), str(timeout)], env=env,
                                    stdout=subprocess.DEVNULL, stderr=err, text=True)
            cpu = _wait_cpu(proc)  # CPU seconds of the process and its kernel
            err.seek(0)
            stderr = err.read()
        seconds = time.perf_counter() - start
        plain = re.sub(r"\x1b\[[0-9;]*m", "", stderr).strip()  # no terminal colours
        error = "" if proc.returncode == 0 else (plain[-4000:] or f"exit {proc.returncode}")
        cpu_note = f", {cpu:.0f} s of CPU" if cpu is not None else ""
        print(f"  {'ran' if not error else 'FAILED':>6} {path.name} in {seconds:.0f} s"
              f"{cpu_note}", flush=True)
        return Executed(path, copy, seconds, error)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, paths))


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def thread_limits(workers: int, env: Mapping[str, str],
                  cores: int | None = None) -> dict[str, str]:
    """BLAS/OpenMP threads for each of ``workers`` kernels: the cores shared out, at least one.

    Each PyTorch kernel starts one thread per core; two kernels on two cores would run four
    threads that spin-wait on each other (seen on 2 cores: lessons 14 and 15 still running
    after 4 minutes, half of it system time, where each takes under a minute alone). A
    variable the user has set is kept."""
    share = max(1, (cores or os.cpu_count() or 1) // max(1, workers))
    return {name: env.get(name) or str(share) for name in THREAD_VARIABLES}


def _wait_cpu(proc: subprocess.Popen) -> float | None:
    """Wait for ``proc``; return the CPU time it and its reaped children used (POSIX)."""
    if not hasattr(os, "wait4"):
        proc.wait()
        return None
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def _execute_one(src: str, dst: str, timeout: int) -> None:
    """Execute one notebook with nbclient (run as ``python -m slm_course.cli.site``)."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    nb = nbformat.read(src, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(Path(src).parent)}})
    began = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as err:
        nbformat.write(nb, dst)  # the partial copy shows where it stopped
        sys.exit(f"{src}: a cell failed (executed copy: {dst})\n{err}")
    nb.metadata["slm_course_site"] = {"seconds": round(time.perf_counter() - began, 1),
                                      "profile": current_profile()}
    nbformat.write(nb, dst)


# ------------------------------------------------------------------ the book


def _note(lesson: Path, root: Path, profile: str, machine: str, seconds: float,
          repo_url: str) -> str:
    """The box at the top of each lesson page: profile, hardware, links, how to run it."""
    name = lesson.name
    what = ("the **fast** profile: small sizes so that CI runs it in seconds; the numbers and "
            "figures are not the stage's real result" if profile == "fast" else
            "the **full** profile: the stage's real result")
    links = [f'<a href="files/notebooks/{name}" download>this lesson as a notebook</a>']
    if (root / "exercises" / name).is_file():
        links.append(f'<a href="files/exercises/{name}" download>its exercise</a>')
    else:
        links.append("no exercise for this stage")
    if repo_url:
        links.append(f'<a href="{repo_url}/blob/main/notebooks/{name}">on GitHub</a>')
    return (
        "```{note}\n"
        f"The outputs on this page come from {what}. Built on {machine}, "
        f"{dt.date.today().isoformat()}; the lesson ran in {seconds:.0f} s.\n\n"
        f"{' · '.join(links)} · {{ref}}`run it yourself <run-it-yourself>`: "
        f"`./course lab` and open `notebooks/{name}`.\n"
        "```\n"
    )


def _repo_links(markdown: str, repo_url: str, folder: str = "") -> str:
    """Links to files of the repository (``[text](docs/x.md)``) point at GitHub, or become
    plain text when the repository's address is unknown: the site does not carry them.

    ``folder`` is where the markdown lives in the repository: from a lesson (``notebooks``)
    only links that leave the folder (``../docs/x.md``) are rewritten; links between lessons
    stay, since the site has those pages."""

    def fix(m: re.Match) -> str:
        text, target = m.group(1), m.group(2)
        if re.match(r"[a-z]+:|#", target) or (folder and not target.startswith("../")):
            return m.group(0)
        target = posixpath.normpath(posixpath.join(folder, target))
        return f"[{text}]({repo_url}/blob/main/{target})" if repo_url else text

    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", fix, markdown)


def _landing(root: Path, done: list[Executed], profile: str, machine: str,
             repo_url: str = "") -> str:
    readme = (root / "README.md").read_text(encoding="utf-8")
    rows = curriculum(root)
    from slm_course import STAGES

    by_stage = {int(e.lesson.name[:2]): e for e in done}
    table = ["| NN | stage: what it teaches | status | time (full profile) |",
             "|---|---|---|---|"]
    for stage in sorted(set(rows) | set(STAGES) | set(by_stage)):
        row = rows.get(stage, {})
        what = row.get("stage") or STAGES.get(stage, ("",))[0]
        status = row.get("status") or ("ready" if stage in STAGES else "in progress")
        e = by_stage.get(stage)
        if e is not None:
            nb = nbformat.read(e.copy, as_version=4)
            label = f"[{stage:02d}]({e.lesson.stem}.ipynb)"
            when = lesson_time(nb, stage, readme)
        else:
            label, when = f"{stage:02d}", "—"
        what = _repo_links(what.replace("|", "/"), repo_url)
        table.append(f"| {label} | {what} | {status} | {when} |")
    intro = readme.split("\n## ", 1)[0].split("\n", 1)[1].strip()  # the README's opening
    intro = _repo_links(intro, repo_url)
    return f"""# slm-course

{intro}

This website shows every lesson **with its outputs**: the figures, printed numbers and
asserted claims of a real run. It was built in the **{profile}** profile on {machine},
{dt.date.today().isoformat()}.

## The curriculum

{chr(10).join(table)}

"ready" means the lesson, reference code, tests, solution, exercise and checks all exist and
run in CI. Use the search box for a word or a function name.

(run-it-yourself)=
## Run it yourself

```bash
git clone <this repository> slm-course && cd slm-course
./course lab          # set up everything and open the course in JupyterLab
```

Without bash (plain Windows): `python -m venv .venv`, activate it,
`pip install -r requirements.txt -e .`, `slm-course data fetch --all`, `jupyter lab`.
Each lesson is `notebooks/NN_slug.ipynb`; its exercise, with checks that say what is wrong,
is `exercises/NN_slug.ipynb`. `SLM_COURSE_PROFILE=fast` runs the small, seconds-long version.

To build this website: `./course site`, or `slm-course site build` (add
`SLM_COURSE_PROFILE=fast` for the quick version); it lands in `build/site/`.
"""


def write_book(root: Path, work: Path, done: list[Executed], repo_url: str) -> None:
    profile = current_profile()
    machine = hardware()
    for e in done:
        nb = nbformat.read(e.copy, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = _repo_links(cell.source, repo_url, folder="notebooks")
        note = nbformat.v4.new_markdown_cell(
            _note(e.lesson, root, profile, machine, e.seconds, repo_url))
        note.id = "site-build-note"
        nb.cells.insert(1, note)
        nbformat.write(nb, work / "book" / e.lesson.name)
    extra = work / "book" / "_extra" / "files"
    for folder in ("notebooks", "exercises"):
        (extra / folder).mkdir(parents=True, exist_ok=True)
        for e in done:
            src = root / folder / e.lesson.name
            if src.is_file():
                shutil.copy2(src, extra / folder / e.lesson.name)
    (work / "book" / "index.md").write_text(_landing(root, done, profile, machine, repo_url),
                                            encoding="utf-8")
    toc = {"format": "jb-book", "root": "index",
           "chapters": [{"file": e.lesson.stem} for e in done]}
    config = {
        "title": "slm-course",
        "author": "the slm-course contributors",
        "copyright": "",
        "only_build_toc_files": True,
        "exclude_patterns": ["_extra/*", "_build/*"],
        "execute": {"execute_notebooks": "off"},  # executed above, one process per notebook
        "repository": {"url": repo_url or "", "branch": "main"},
        "html": {"use_repository_button": bool(repo_url), "home_page_in_navbar": True},
        "launch_buttons": {"notebook_interface": "jupyterlab"},
        "sphinx": {
            # MathJax 3 served from the site (no CDN); this module's setup() below.
            "extra_extensions": ["sphinx-mathjax-offline", "slm_course.cli.site"],
            "config": {"html_extra_path": ["_extra"], "html_show_copyright": False,
                       "nb_merge_streams": True, "html_favicon": "favicon.svg",
                       # the theme's light/dark switch starts from the reader's setting
                       "html_context": {"default_mode": "auto"}},
        },
    }
    (work / "book" / "favicon.svg").write_text(FAVICON, encoding="utf-8")
    # JSON is valid YAML: no YAML writer needed.
    (work / "book" / "_toc.yml").write_text(json.dumps(toc, indent=1), encoding="utf-8")
    (work / "book" / "_config.yml").write_text(json.dumps(config, indent=1), encoding="utf-8")


FAVICON = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" '
           'height="32" rx="6" fill="#2b5b84"/><text x="16" y="22" font-size="14" '
           'text-anchor="middle" fill="#fff" font-family="sans-serif">slm</text></svg>\n')


def setup(app) -> dict:
    """Sphinx extension (the book lists this module): each inline script once per page.

    Jupyter Book 1.0.4 with sphinx-thebe 0.3.1 adds ``const THEBE_JS_URL = ...`` twice, and
    the second copy is a console error ("Identifier 'THEBE_JS_URL' has already been
    declared") on every page; the browser test fails on console errors.
    """

    def once(app, pagename, templatename, context, doctree) -> None:
        seen, kept = set(), []
        for script in context.get("script_files", []):
            # the same script is added once with filename None and once with '' (page)
            key = (str(getattr(script, "filename", script) or ""),
                   repr(sorted(getattr(script, "attributes", {}).items())))
            if key not in seen:
                seen.add(key)
                kept.append(script)
        context["script_files"] = kept

    app.connect("html-page-context", once)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


def build_site(root: Path, *, out: Path, work: Path, workers: int = 2, timeout: int = 1800,
               only: list[str] | None = None, execute: bool = True, repo_url: str = "") -> int:
    """Execute the lessons, write the book, build it with Jupyter Book; 0 on success."""
    try:
        import jupyter_book  # noqa: F401
    except ImportError as err:
        raise RuntimeError("the website needs Jupyter Book: pip install -r "
                           "requirements-dev.txt (or ./course site, which does it)") from err
    paths = lessons(root, only)
    profile = current_profile()  # fails early on a misspelt profile
    began = time.perf_counter()
    executed = work / "executed"
    if execute:
        print(f"==> running {len(paths)} lessons in the {profile} profile, {workers} at a time")
        done = execute_all(paths, executed, workers=workers, timeout=timeout)
    else:
        done = [Executed(p, executed / p.name, 0.0) for p in paths]
        missing = [e.copy.name for e in done if not e.copy.is_file()]
        if missing:
            raise ValueError(f"--no-execute: no executed copy of {missing} in {executed}; "
                             "build once without --no-execute")
        for e in done:
            meta = nbformat.read(e.copy, as_version=4).metadata.get("slm_course_site", {})
            e.seconds = meta.get("seconds", 0.0)
            if meta.get("profile", profile) != profile:
                raise ValueError(f"--no-execute: {e.copy} ran in the {meta['profile']} "
                                 f"profile, not {profile}; set {PROFILE_ENV} to match or "
                                 "build without --no-execute")
    failed = [e for e in done if e.error]
    if failed:
        for e in failed:
            print(f"\n!! {e.lesson.relative_to(root)} failed:\n{e.error}", file=sys.stderr)
        print(f"\n!! {len(failed)} lesson(s) failed; no website built. Run one alone with "
              "`python -m pytest --nbval-lax notebooks/NN_slug.ipynb`.", file=sys.stderr)
        return 1
    ran = time.perf_counter() - began
    book = work / "book"
    shutil.rmtree(book, ignore_errors=True)
    book.mkdir(parents=True)
    write_book(root, work, done, repo_url)
    print(f"==> building the website with Jupyter Book ({len(done)} lessons)")
    jb = [sys.executable, "-c", "from jupyter_book.cli.main import main; main()",
          "build", str(book), "--builder", "html", "--quiet"]
    proc = subprocess.run(jb, capture_output=True, text=True)
    if proc.returncode != 0:
        print(proc.stdout[-6000:] + proc.stderr[-6000:], file=sys.stderr)
        print("!! Jupyter Book failed; the messages above name the page", file=sys.stderr)
        return 1
    html = book / "_build" / "html"
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(html, out)
    (out / ".nojekyll").touch()  # GitHub Pages: serve _static/ as it is
    total = time.perf_counter() - began
    print(f"==> website in {out} ({len(done)} lessons; executing {ran:.0f} s, total "
          f"{total:.0f} s). Open {out / 'index.html'} or run `slm-course site serve`.")
    return 0


def _serve(out: Path, port: int) -> int:
    if not (out / "index.html").is_file():
        raise OSError(f"no website in {out}: build it first with `slm-course site build`")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    with http.server.ThreadingHTTPServer(("127.0.0.1", port), handler) as server:
        print(f"serving {out} on http://127.0.0.1:{port}/ (Ctrl-C stops)")
        server.serve_forever()
    return 0


if __name__ == "__main__":  # one notebook, in its own process: SRC DST TIMEOUT
    _execute_one(sys.argv[1], sys.argv[2], int(sys.argv[3]))
