"""A newcomer's first hour (issue 17): the README's commands work as written, through
``./course slm-course ...``, and ``slm-course`` alone is a failure that shows the usage."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from slm_course.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_slm_course_alone_shows_the_usage_and_fails(capsys):
    assert main([]) == 2
    captured = capsys.readouterr()
    assert "usage: slm-course" in captured.err and "train" in captured.err
    assert captured.out == ""


def ready_environment(folder: Path) -> Path:
    """A virtual environment ./course takes as set up: its stamp matches, and its bin/ holds
    this interpreter and its slm-course (so nothing is installed)."""
    (folder / "bin").mkdir(parents=True)
    (folder / "bin" / "python").symlink_to(sys.executable)
    real = Path(shutil.which("slm-course") or Path(sys.executable).parent / "slm-course")
    (folder / "bin" / "slm-course").symlink_to(real)
    want = hashlib.sha256((ROOT / "requirements.txt").read_bytes()
                          + (ROOT / "pyproject.toml").read_bytes()).hexdigest()
    (folder / ".slm-course-installed").write_text(want + "\n")
    return folder


def test_course_passes_slm_course_commands_to_its_environment(tmp_path):
    venv = ready_environment(tmp_path / "venv")
    env = {**os.environ, "SLM_COURSE_VENV": str(venv),
           "PATH": "/usr/bin:/bin"}  # a new shell: the environment is not active
    done = subprocess.run([str(ROOT / "course"), "slm-course", "train", "--list"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "tiny: a toy run" in done.stdout
    done = subprocess.run([str(ROOT / "course"), "slm-course"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "usage: slm-course" in done.stderr


def test_the_readme_says_how_to_run_its_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "./course slm-course data list" in readme
    assert "source .venv/bin/activate" in readme
