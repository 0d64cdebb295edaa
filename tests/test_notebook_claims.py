"""``shown``: the short form of a value that a lesson's assert message prints."""

import numpy as np
import torch

from slm_course.helpers.notebook import shown


def test_numbers_are_rounded_to_significant_figures():
    assert shown(2.0 / 3.0) == "0.6667"
    assert shown(np.float32(1234567.0)) == "1.235e+06"
    assert shown(7) == "7" and shown(True) == "True"


def test_small_arrays_in_full_large_ones_by_shape_and_range():
    assert shown(np.array([0.5, 1.25])) == "[0.5 , 1.25]"
    assert shown(torch.tensor(3.5)) == "3.5"
    big = shown(torch.arange(20.0).reshape(4, 5))
    assert big == "an array of shape (4, 5), from 0 to 19"


def test_anything_else_by_a_shortened_repr_and_never_an_error():
    assert shown("abc") == "'abc'"
    assert shown({"a": 1}) == "{'a': 1}"
    assert len(shown("x" * 1000)) == 200

    class Broken:
        def __repr__(self):
            return "broken"

        def __array__(self, *args, **kwargs):
            raise RuntimeError("no")

    assert shown([Broken()]) == "[broken]"
    assert shown(torch.tensor([1.0, 2.0], requires_grad=True)) == "[1., 2.]"
