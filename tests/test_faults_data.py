"""Faults around ``slm-course data`` (issue 17): a data folder that cannot be written is named
with what to set instead, and offline ``fetch --all`` respects $SLM_COURSE_VISION and
mentions the mirror."""

import os
import subprocess

import pytest

from slm_course.cli import main
from slm_course.data import fetch
from slm_course.data.registry import DatasetError


@pytest.fixture
def offline(monkeypatch, tmp_path):
    (tmp_path / "mirror").mkdir()
    monkeypatch.setenv("SLM_COURSE_OFFLINE", "1")
    monkeypatch.setenv("SLM_COURSE_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("SLM_COURSE_DATA", str(tmp_path / "data"))
    return tmp_path


@pytest.fixture
def read_only_folder(tmp_path):
    """A real read-only folder: a read-only tmpfs when this process may mount one (root in a
    container), else a folder without write permission (any other user)."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs",
                                  str(folder)], capture_output=True).returncode == 0
        if not mounted:
            pytest.skip("root without permission to mount: no way to make a read-only folder")
        yield folder
        subprocess.run(["umount", str(folder)], check=True)
    else:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)


@pytest.mark.parametrize("below", ["", "data"])
def test_an_unwritable_data_folder_is_named_with_what_to_set(offline, read_only_folder,
                                                             monkeypatch, capsys, below):
    root = read_only_folder / below if below else read_only_folder
    monkeypatch.setenv("SLM_COURSE_DATA", str(root))
    assert main(["data", "fetch", "names", "tinyshakespeare"]) == 1
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert len(lines) == 2, "every dataset is tried, none with a traceback"
    assert f"the data folder {read_only_folder}" in lines[0] and "cannot be written" in lines[0]
    assert "Set $SLM_COURSE_DATA to a folder you can write" in lines[0]
    assert lines[1] == "FAILED  tinyshakespeare: the same reason as above"
    with pytest.raises(DatasetError, match="cannot be written"):
        fetch("names")  # what a lesson calls


def test_offline_fetch_all_respects_the_vision_setting(offline, monkeypatch, capsys):
    monkeypatch.setenv("SLM_COURSE_VISION", "fashion-mnist")
    assert main(["data", "fetch", "--all"]) == 1  # the text datasets are not in the mirror
    out = capsys.readouterr().out
    assert "FAILED  mnist:" not in out
    assert "skipped mnist: could not be fetched, and not needed ($SLM_COURSE_VISION=" \
           "fashion-mnist)" in out
    assert f"$SLM_COURSE_MIRROR (now: {offline / 'mirror'})" in out
    assert "could not be fetched: tinyshakespeare" in out and "mnist," not in out
