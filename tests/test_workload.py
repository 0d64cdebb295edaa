import pytest

from slm_course.helpers.workload import ENV_VAR, current_profile, pick


def test_default_is_full(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert current_profile() == "full"
    assert pick(fast=1, full=2) == 2


def test_fast(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "FAST")
    assert pick(fast=1, full=2) == 1


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "quick")
    with pytest.raises(ValueError, match="fast.*full"):
        current_profile()
