"""`slm-course sample --interactive` (stage 17) with piped input: it answers each line,
streams with the KV cache on, gives the same text with the cache off, handles /reset, an
unknown character and the end of input."""

import os
import subprocess
import sys

import pytest

from slm_course.cli import main
from slm_course.helpers.checkpoints import CHECKPOINT_NAME

TEXT = "".join(f"{w}\n" for i in range(300) for w in ("ROMEO: to be", "JULIET: or not",
                                                      f"NURSE: {i % 9} is that"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    folder = tmp_path_factory.mktemp("interactive")
    (folder / "corpus.txt").write_text(TEXT, encoding="utf-8")
    assert main(["train", "--preset", "tiny", "--max_steps=30", "--warmup-steps=2",
                 "--eval_interval=30", "--eval_batches=2", "--batch_size=8", "--block_size=32",
                 "--n_embd=16", "--progress=false", "--num_threads=1",
                 f"--dataset={folder / 'corpus.txt'}", "--out", str(folder / "run")]) == 0
    return folder / "run" / CHECKPOINT_NAME


def chat(checkpoint, lines: str, *extra: str) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "slm_course", "sample", "--checkpoint", str(checkpoint),
            "--interactive", "--max-new-tokens", "60", "--seed", "3", *extra]
    return subprocess.run(args, input=lines, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_piped_lines_get_streamed_answers_the_same_with_and_without_the_cache(checkpoint):
    lines = "ROMEO: to be\n/reset\nJULIET:\n"
    cached = chat(checkpoint, lines)
    assert cached.returncode == 0, cached.stderr
    assert "KV cache on" in cached.stderr and "conversation forgotten" in cached.stderr
    assert cached.stderr.count("> ") == 4, "a prompt before each of 3 lines and at the end"
    answers = cached.stdout.split("\n\n")
    assert len(cached.stdout) > 20 and len(answers) >= 2, cached.stdout
    plain = chat(checkpoint, lines, "--no-cache")
    assert plain.returncode == 0 and "KV cache off" in plain.stderr
    assert plain.stdout == cached.stdout, "the cache changes the speed, not the text"


def test_an_unknown_character_is_reported_and_the_loop_goes_on(checkpoint):
    result = chat(checkpoint, "ROMEO: \u00e9\nROMEO:\n/quit\nnever read\n")
    assert result.returncode == 0, result.stderr
    assert "slm-course sample:" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout.strip(), "the second line was answered"
