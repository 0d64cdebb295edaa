"""Fixtures shared by the tests."""

import os
import subprocess

import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny models train faster on one thread than on threads fighting for shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
