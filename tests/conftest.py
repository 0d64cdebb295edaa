"""Fixtures shared by the tests."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny models train faster on one thread than on threads fighting for shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
