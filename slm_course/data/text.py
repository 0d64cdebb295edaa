"""The course's text datasets as plain Python strings and lists, fetched and verified first."""

from __future__ import annotations

from pathlib import Path

from slm_course.data.cache import fetch

WIKITEXT2_SPLITS = ("train", "valid", "test")

# The course's copy of names-by-language spells one file "Portugese.txt"; the keys returned
# by load_names_by_language are spelled correctly whatever the copy says.
LANGUAGE_SPELLING = {"Portugese": "Portuguese"}


def load_tinyshakespeare(cache: Path | None = None) -> str:
    """The whole Tiny Shakespeare corpus as one string (1,115,394 characters, 65 distinct)."""
    folder = fetch("tinyshakespeare", cache=cache)
    return (folder / "input.txt").read_text(encoding="utf-8")


def load_names(cache: Path | None = None) -> list[str]:
    """The 32,033 lowercase first names of makemore, in file order."""
    folder = fetch("names", cache=cache)
    return _lines(folder / "names.txt")


def load_names_by_language(cache: Path | None = None) -> dict[str, list[str]]:
    """Surnames by language of origin: ``{"Arabic": [...], ..., "Vietnamese": [...]}``.

    18 languages in alphabetical order, 20,050 names in all; each list keeps the file's
    order and its repeats (a name common in a language appears several times).
    """
    folder = fetch("names-by-language", cache=cache)
    by_language = {}
    for path in sorted(folder.glob("*.txt")):
        language = LANGUAGE_SPELLING.get(path.stem, path.stem)
        by_language[language] = _lines(path)
    return dict(sorted(by_language.items()))


def load_wikitext2(cache: Path | None = None) -> dict[str, str]:
    """WikiText-2 (raw) as ``{"train": str, "valid": str, "test": str}``, each split exactly
    as its file holds it (lines end with ``"\\n"``; headings look like ``" = Title = "``).

    About 10.9, 1.1 and 1.3 MB of UTF-8 text. Offline without a copy, this raises
    :class:`DatasetError` saying how to provide one (``$SLM_COURSE_MIRROR``).
    """
    folder = fetch("wikitext-2", cache=cache)
    # bytes, not read_text: universal newlines would turn a stray "\r" into a line break
    return {split: (folder / f"wiki.{split}.raw").read_bytes().decode("utf-8")
            for split in WIKITEXT2_SPLITS}


def _lines(path: Path) -> list[str]:
    """Non-empty lines of a UTF-8 file, stripped of surrounding white space."""
    return [s for line in path.read_text(encoding="utf-8").splitlines() if (s := line.strip())]
