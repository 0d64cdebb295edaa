"""Faults around ``slm-course data`` (issue 17): a data folder that cannot be written is named
with what to set instead, and offline ``fetch --all`` respects $SLM_COURSE_VISION and
mentions the mirror."""


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
