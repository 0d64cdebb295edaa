"""The building blocks of checks give the learner a clear pass or a helpful failure."""

import numpy as np
import pytest

from slm_course.exercises.checking import (
    CheckFailed,
    as_array,
    call_learner,
    expect,
    expect_close,
    passed,
)


def stub(*args):
    raise NotImplementedError()


def test_a_stub_is_reported_as_not_implemented():
    with pytest.raises(CheckFailed, match="not implemented yet") as info:
        call_learner("check_x", stub, 1)
    assert "YOUR CODE HERE" in str(info.value)


def test_a_crash_names_the_exception_and_keeps_the_traceback():
    def buggy(x):
        return x / 0

    with pytest.raises(CheckFailed, match="raised ZeroDivisionError") as info:
        call_learner("check_x", buggy, 1)
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_passing_the_result_instead_of_the_function():
    with pytest.raises(CheckFailed, match="expected a function"):
        call_learner("check_x", 3.0)


def test_expect_close_reports_shape_value_and_missing_return():
    with pytest.raises(CheckFailed, match=r"shape \(2,\), expected \(3,\)"):
        expect_close("check_x", np.zeros(2), np.zeros(3))
    with pytest.raises(CheckFailed, match="largest difference 0.5") as info:
        expect_close("check_x", [1.0, 2.5], [1.0, 2.0], hint="look at the second entry")
    assert "expected: [1. 2.]" in str(info.value) and "hint: look at" in str(info.value)
    with pytest.raises(CheckFailed, match="NoneType"):
        expect_close("check_x", None, 1.0)
    expect_close("check_x", np.float32(1.0), 1.0)  # close enough: no exception


def test_expect_shows_none_and_scalars_readably():
    with pytest.raises(CheckFailed) as info:
        expect("check_x", False, "wrong", expected=0.1, got=None)
    assert "expected: 0.1" in str(info.value) and "got:      None" in str(info.value)


def test_as_array_and_passed(capsys):
    assert as_array("check_x", [1, 2]).dtype == np.float64
    with pytest.raises(CheckFailed, match="str, expected numbers"):
        as_array("check_x", "text")
    assert passed("check_x", "3 cases") is True
    assert capsys.readouterr().out == "✓ check_x passed: 3 cases\n"
