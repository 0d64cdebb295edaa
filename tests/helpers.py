"""Paths shared by the tests."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SOLUTIONS = ROOT / "solutions"
EXERCISES = ROOT / "exercises"


def notebook_paths(*folders: Path) -> list[Path]:
    return sorted(p for folder in folders for p in folder.glob("*.ipynb"))
