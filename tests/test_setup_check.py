"""The set-up check reports what is really installed and cached, and names what to fix."""

from __future__ import annotations

import hashlib
import platform

import numpy as np
import pytest
import torch

from slm_course.data import REGISTRY, Dataset, RemoteFile
from slm_course.data import cache as cache_module
from slm_course.helpers import setup_check
from slm_course.helpers.device import pick_device
from slm_course.helpers.setup_check import (
    SetupError,
    assert_ready,
    collect_report,
    required_datasets,
    version_tuple,
)

BODY = b"a tiny dataset\n"


@pytest.fixture(autouse=True)
def toy_registry(tmp_path, monkeypatch):
    """An empty cache in tmp_path, no mirror, offline, and a toy dataset in the registry."""
    monkeypatch.setenv("SLM_COURSE_DATA", str(tmp_path / "cache"))
    monkeypatch.delenv("SLM_COURSE_MIRROR", raising=False)
    monkeypatch.setenv("SLM_COURSE_OFFLINE", "1")
    monkeypatch.setenv("SLM_COURSE_PROFILE", "fast")
    cache_module._verified.clear()
    toy = Dataset(name="toy", title="Toy", description="-", licence="MIT", citation="-",
                  homepage="-", files=(RemoteFile("toy.txt", ("http://127.0.0.1:9/toy.txt",),
                                                  sha256=hashlib.sha256(BODY).hexdigest()),))
    monkeypatch.setitem(REGISTRY, "toy", toy)


def put_toy(folder, body=BODY):
    (folder / "toy").mkdir(parents=True, exist_ok=True)
    (folder / "toy" / "toy.txt").write_bytes(body)


def test_versions_device_and_profile_are_the_real_ones():
    report = collect_report(["toy"])
    assert report.versions["python"] == platform.python_version()
    assert report.versions["torch"] == torch.__version__
    assert report.versions["numpy"] == np.__version__
    assert report.device.startswith(pick_device().type)
    assert report.profile == "fast"
    assert version_tuple(report.versions["torch"]) >= (2, 2)


def test_version_tuple_reads_local_builds():
    assert version_tuple("2.14.1+cu130") == (2, 14, 1)
    assert version_tuple("0.9") < version_tuple("0.17")  # numbers, not strings: "9" > "17"
    with pytest.raises(ValueError, match="cannot read"):
        version_tuple("dev")


def test_a_missing_dataset_is_reported_and_not_ready(tmp_path):
    report = collect_report(["toy"])
    status = report.datasets["toy"]
    assert not status.present and not status.verified
    assert "data: toy" in report.format_table() and "missing" in report.format_table()
    with pytest.raises(SetupError) as info:
        assert_ready(["toy"])
    message = str(info.value)
    assert "dataset toy is not ready" in message and "slm-course data fetch toy" in message
    assert "SLM_COURSE_MIRROR=(not set)" in message


def test_a_verified_dataset_is_ready(tmp_path):
    put_toy(tmp_path / "cache")
    report = assert_ready(["toy"], fetch_missing=False)
    assert report.datasets["toy"].verified
    assert "verified" in report.format_table()


def test_a_corrupt_dataset_is_named_corrupt(tmp_path):
    put_toy(tmp_path / "cache", b"a tiny datasEt\n")
    report = collect_report(["toy"])
    assert report.datasets["toy"].present and not report.datasets["toy"].verified
    assert "CORRUPT" in report.format_table()
    with pytest.raises(SetupError, match="sha256"):
        assert_ready(["toy"], fetch_missing=False)


def test_assert_ready_fetches_from_the_mirror(tmp_path, monkeypatch):
    put_toy(tmp_path / "mirror")
    monkeypatch.setenv("SLM_COURSE_MIRROR", str(tmp_path / "mirror"))
    with pytest.raises(SetupError):
        assert_ready(["toy"], fetch_missing=False)
    assert assert_ready(["toy"]).datasets["toy"].verified
    assert (tmp_path / "cache" / "toy" / "toy.txt").read_bytes() == BODY


def test_an_old_package_is_a_problem(tmp_path, monkeypatch):
    put_toy(tmp_path / "cache")
    monkeypatch.setitem(setup_check.MINIMUM_VERSIONS, "torch", "99.0")
    with pytest.raises(SetupError, match=r"torch .* is older than the course needs \(99.0\)"):
        assert_ready(["toy"])
    assert "PROBLEM" in collect_report(["toy"]).format_table()


def test_the_required_vision_dataset_follows_the_environment(monkeypatch):
    monkeypatch.setenv("SLM_COURSE_VISION", "fashion-mnist")
    assert required_datasets() == ["tinyshakespeare", "names", "names-by-language",
                                   "fashion-mnist"]
    monkeypatch.delenv("SLM_COURSE_VISION")
    assert required_datasets()[-1] == "mnist"
