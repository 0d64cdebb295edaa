"""A checkpoint write that fails (a full disk) or a checkpoint whose numbers went bad: a
clear message, no partial file, and the previous checkpoint still usable (issue 17)."""

import errno
import subprocess

import pytest
import torch

from slm_course.helpers import checkpoints
from slm_course.helpers.checkpoints import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    PREVIOUS_NAME,
    load_checkpoint,
    save_checkpoint,
)


def state(step):
    return {"format": CHECKPOINT_FORMAT, "step": step, "model": {"w": torch.ones(2) * step},
            "optimizer": {}, "model_config": {}, "train_config": {}, "tokenizer": None,
            "rng": [], "losses": torch.zeros(step), "history": []}


def full_disk(error):
    def save(obj, path):
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04 half a checkpoint")
        raise error
    return save


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device"),
    RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4096 vs 2048"),
])
def test_a_full_disk_is_named_and_the_previous_checkpoint_survives(tmp_path, monkeypatch,
                                                                   error):
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(state(1), path)
    save_checkpoint(state(2), path)
    assert load_checkpoint(tmp_path / PREVIOUS_NAME)["step"] == 1, "two checkpoints kept"
    monkeypatch.setattr(checkpoints.torch, "save", full_disk(error))
    with pytest.raises(OSError, match=f"no space left on the device holding {tmp_path}") as info:
        save_checkpoint(state(3), path)
    assert info.value.errno == errno.ENOSPC
    assert "partial ckpt.pt.tmp was removed" in str(info.value)
    assert not (tmp_path / "ckpt.pt.tmp").exists()
    assert load_checkpoint(path)["step"] == 2
    assert load_checkpoint(tmp_path / PREVIOUS_NAME)["step"] == 1


def test_a_corrupt_checkpoint_points_to_the_previous_one(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(state(1), path)
    save_checkpoint(state(2), path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=f"mv {tmp_path / PREVIOUS_NAME} {path}"):
        load_checkpoint(path)
    assert load_checkpoint(tmp_path / PREVIOUS_NAME)["step"] == 1


def test_an_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / CHECKPOINT_NAME
    save_checkpoint(state(1), path)
    monkeypatch.setattr(checkpoints.torch, "save", full_disk(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(state(2), path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]
    assert load_checkpoint(path)["step"] == 1


@pytest.fixture
def small_disk(tmp_path):
    """A real 256 KiB file system (tmpfs), where this process may mount one."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small file system here (needs root in a container)")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_really_full_disk(small_disk):
    path = small_disk / CHECKPOINT_NAME
    save_checkpoint(state(1), path)
    big = {**state(2), "model": {"w": torch.ones(100_000)}}  # 400 kB: does not fit
    with pytest.raises(OSError, match=f"no space left on the device holding {small_disk}"):
        save_checkpoint(big, path)
    assert sorted(p.name for p in small_disk.iterdir()) == [CHECKPOINT_NAME]
    assert load_checkpoint(path)["step"] == 1
