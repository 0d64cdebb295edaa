"""Faults around ``slm-course sample`` (issue 17): text streams as it comes, a huge request is
flagged, Ctrl-C keeps what was printed, and bad numbers are clear errors."""

import os
import signal
import subprocess
import sys

import pytest

from slm_course.cli import main
from slm_course.generate import sample_next
from slm_course.helpers.checkpoints import CHECKPOINT_NAME

TEXT = "".join(f"{w}\n" for i in range(300) for w in ("ROMEO: to be", "JULIET: or not",
                                                      f"NURSE: {i % 9} is that"))
TINY = ["--preset", "tiny", "--max_steps=6", "--warmup-steps=2", "--eval_interval=6",
        "--eval_batches=2", "--batch_size=4", "--block_size=16", "--n_embd=16",
        "--progress=false", "--num_threads=1"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sample")
    (folder / "corpus.txt").write_text(TEXT, encoding="utf-8")
    assert main(["train", *TINY, f"--dataset={folder / 'corpus.txt'}", "--out",
                 str(folder / "run")]) == 0
    return folder / "run" / CHECKPOINT_NAME


def test_a_huge_request_streams_and_ctrl_c_keeps_the_text(checkpoint):
    args = [sys.executable, "-m", "slm_course", "sample", "--checkpoint", str(checkpoint),
            "--prompt", "ROMEO:", "--max-new-tokens", "1000000000"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        first = b""
        while len(first) < len("ROMEO:") + 5:  # new text arrives while it is being drawn
            chunk = os.read(proc.stdout.fileno(), 64)
            assert chunk, proc.stderr.read().decode()
            first += chunk
        assert first.startswith(b"ROMEO:")
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    err = err.decode()
    assert proc.returncode == 130, err
    assert "--max-new-tokens 1,000,000,000 is a lot" in err and "Traceback" not in err
    assert "stopped by Ctrl-C after" in err.splitlines()[-1]
    assert (first + rest).decode().endswith("\n") and len(first + rest) > len("ROMEO:")


@pytest.mark.parametrize("option, value, message", [
    ("--temperature", "nan", "--temperature must be a finite number >= 0 (0 is greedy), got nan"),
    ("--temperature", "-1", "--temperature must be a finite number >= 0"),
    ("--top-p", "nan", "--top-p must be in (0, 1], got nan"),
    ("--top-k", "0", "--top-k must be at least 1"),
])
def test_bad_sampling_numbers_are_clear_errors(checkpoint, capsys, option, value, message):
    assert main(["sample", "--checkpoint", str(checkpoint), option, value]) == 1
    assert message in capsys.readouterr().err


def test_sample_next_rejects_a_nan_temperature():
    import torch

    with pytest.raises(ValueError, match="temperature must be a finite number >= 0, got nan"):
        sample_next(torch.zeros(1, 3), temperature=float("nan"))
