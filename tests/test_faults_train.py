"""Faults around ``slm-course train``: each one a clear message, and nothing lost (issue 17).

Resuming with other settings, interrupting, a full disk, non-finite numbers, bad settings
found before any work, and a readable output when stdout is not a terminal."""

import json
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from slm_course.cli import main
from slm_course.helpers.checkpoints import CHECKPOINT_NAME, load_checkpoint
from slm_course.helpers.run_log import LOG_NAME

TEXT = "".join(f"{w}\n" for i in range(300) for w in ("ROMEO: to be", "JULIET: or not",
                                                      f"NURSE: {i % 9} is that"))
TINY = ["--preset", "tiny", "--max_steps=12", "--warmup-steps=2", "--eval_interval=6",
        "--eval_batches=2", "--batch_size=4", "--block_size=16", "--n_embd=16",
        "--progress=false", "--num_threads=1"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("faults") / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("faults") / "run"
    assert main(["train", *TINY, f"--dataset={corpus}", "--out", str(out)]) == 0
    return out


def copy_run(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"


# ----- (1) resume with other settings ----------------------------------------------------------

def test_resume_with_other_settings_names_them_and_refuses(corpus, trained, capsys):
    capsys.readouterr()
    code = main(["train", *TINY, f"--dataset={corpus}", "--out", str(trained), "--resume",
                 "--lr=1e-2", "--batch_size=8"])
    assert code == 1
    err = capsys.readouterr().err
    assert "these settings differ" in err and "lr 0.003 -> 0.01" in err
    assert "batch_size 4 -> 8" in err and "--allow-changes" in err
    assert load_checkpoint(trained / CHECKPOINT_NAME)["step"] == 12, "nothing was touched"


def test_resume_below_the_checkpoints_step_is_an_error(corpus, trained, capsys):
    capsys.readouterr()
    code = main(["train", *TINY, f"--dataset={corpus}", "--out", str(trained), "--resume",
                 "--max_steps=6"])
    assert code == 1
    err = capsys.readouterr().err
    assert "--max_steps=6 is below the step" in err and "(12)" in err
    assert "--max_steps=12 or more" in err


def test_resume_with_another_model_shape_is_refused_before_any_work(corpus, trained, capsys):
    capsys.readouterr()
    code = main(["train", *TINY, f"--dataset={corpus}", "--out", str(trained), "--resume",
                 "--n_layer=3"])
    assert code == 1
    assert "n_layer 2 -> 3" in capsys.readouterr().err


def test_allow_changes_resumes_and_the_log_records_it(corpus, trained, tmp_path, capsys):
    out = copy_run(trained, tmp_path)
    capsys.readouterr()
    code = main(["train", *TINY, f"--dataset={corpus}", "--out", str(out), "--resume",
                 "--lr=1e-2", "--max_steps=14", "--allow-changes"])
    assert code == 0
    assert "resuming with changed settings (--allow-changes): lr 0.003 -> 0.01" in \
        capsys.readouterr().out
    events = [json.loads(line) for line in (out / LOG_NAME).read_text().splitlines()]
    assert {"kind": "resume_changes", "changes": {"lr": [0.003, 0.01]}} in events
    assert load_checkpoint(out / CHECKPOINT_NAME)["step"] == 14


# ----- (2) Ctrl-C saves the current step -------------------------------------------------------

def wait_for(predicate, seconds=60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def logged_steps(out):
    log = out / LOG_NAME
    lines = log.read_text().splitlines() if log.exists() else []
    return [e["step"] for e in map(json.loads, lines) if e["kind"] == "step"]


def test_ctrl_c_saves_a_checkpoint_at_the_current_step_and_exits_130(corpus, tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "slm_course", "train", *TINY, "--max_steps=100000",
            "--eval_interval=5000", "--log_interval=3", f"--dataset={corpus}", "--out", str(out)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: len(logged_steps(out)) >= 2 or proc.poll() is not None)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, stderr
    assert "step      0: train " in stdout, "evaluations are printed as they happen"
    assert "Traceback" not in stderr
    message = stderr.strip().splitlines()
    assert len(message) == 1, stderr
    step = load_checkpoint(out / CHECKPOINT_NAME)["step"]
    assert step >= logged_steps(out)[1] and step % 5000, "the current step, not an eval's"
    assert message[0].startswith(f"interrupted at step {step}: saved {out / CHECKPOINT_NAME}")
    assert "continue with: slm-course train --preset tiny" in message[0]
    assert message[0].endswith(f"--out {out} --resume")
    # the saved step continues (max_steps may change on resume)
    assert main(["train", *TINY, "--eval_interval=5000", "--log_interval=3",
                 f"--dataset={corpus}", "--out", str(out), "--resume",
                 f"--max_steps={step + 3}"]) == 0
    assert load_checkpoint(out / CHECKPOINT_NAME)["step"] == step + 3


# ----- (3) a full disk ---------------------------------------------------------------------------

def test_a_full_disk_during_training_is_one_clear_line(corpus, trained, tmp_path, monkeypatch,
                                                       capsys):
    from slm_course.helpers import checkpoints

    out = copy_run(trained, tmp_path)

    def no_space(obj, path):
        with open(path, "wb") as f:
            f.write(b"PK partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    monkeypatch.setattr(checkpoints.torch, "save", no_space)
    capsys.readouterr()
    code = main(["train", *TINY, f"--dataset={corpus}", "--out", str(out), "--resume",
                 "--max_steps=14"])
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"slm-course train: error: no space left on the device holding {out}")
    assert "enforce fail" not in err and not (out / "ckpt.pt.tmp").exists()
    monkeypatch.undo()
    assert load_checkpoint(out / CHECKPOINT_NAME)["step"] == 12, "the last checkpoint is whole"


# ----- (4) non-finite numbers ------------------------------------------------------------------

def test_a_diverging_run_stops_with_a_clear_message(corpus, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", *TINY, f"--dataset={corpus}", "--out", str(out), "--lr=1e30",
                 "--min_lr=0"])
    assert code == 1
    err = capsys.readouterr().err
    assert "training diverged at step 6 (training loss nan" in err and "Lower --lr" in err
    assert not (out / CHECKPOINT_NAME).exists(), "no checkpoint of a diverged model"


def test_non_finite_weights_are_found_when_a_checkpoint_loads(corpus, trained, tmp_path, capsys):
    out = copy_run(trained, tmp_path)
    ckpt = torch.load(out / CHECKPOINT_NAME, weights_only=True)
    name = next(iter(ckpt["model"]))
    ckpt["model"][name].view(-1)[0] = float("nan")
    torch.save(ckpt, out / CHECKPOINT_NAME)
    capsys.readouterr()
    assert main(["sample", "--checkpoint", str(out), "--max-new-tokens", "5"]) == 1
    err = capsys.readouterr().err
    assert f"{out / CHECKPOINT_NAME} holds non-finite weights (nan or inf) in " in err
    assert name in err
    assert f"mv {out / 'ckpt-prev.pt'} {out / CHECKPOINT_NAME}" in err
    assert main(["train", *TINY, f"--dataset={corpus}", "--out", str(out), "--resume",
                 "--max_steps=14"]) == 1
    assert "holds non-finite weights" in capsys.readouterr().err


# ----- (5) every setting checked before any work or file -------------------------------------

@pytest.mark.parametrize("extra, message", [
    (["--lr=inf"], "--lr expects a finite number, got 'inf'"),
    (["--grad_clip=nan"], "--grad_clip expects a finite number, got 'nan'"),
    (["--dataset=/bin/ls"], "--dataset=/bin/ls is not UTF-8 text (byte "),
    (["--dataset=/no/such/file.txt"], "--dataset=/no/such/file.txt: no such file"),
])
def test_bad_settings_fail_before_any_file(corpus, tmp_path, capsys, extra, message):
    out = tmp_path / "run"
    code = main(["train", *TINY, f"--dataset={corpus}", "--out", str(out), *extra])
    assert code == 1
    captured = capsys.readouterr()
    assert message in captured.err
    assert not out.exists() and "model:" not in captured.out, "no work, no file"


def test_a_non_finite_train_config_is_an_error():
    from slm_course.train import TrainConfig

    with pytest.raises(ValueError, match="TrainConfig.lr must be a finite number, got inf"):
        TrainConfig(lr=float("inf"))


def test_out_naming_a_file_is_a_clear_error(corpus, tmp_path, capsys):
    code = main(["train", *TINY, f"--dataset={corpus}", "--out", str(corpus)])
    assert code == 1
    assert f"--out {corpus} is a file, not a folder" in capsys.readouterr().err
    code = main(["train", *TINY, f"--dataset={corpus}", "--out", str(corpus / "run")])
    assert code == 1
    assert f"{corpus} is a file, not a folder" in capsys.readouterr().err


def test_out_in_a_read_only_folder_is_a_clear_error(corpus, read_only_folder, capsys):
    for out in (read_only_folder, read_only_folder / "run"):
        code = main(["train", *TINY, f"--dataset={corpus}", "--out", str(out)])
        assert code == 1
        err = capsys.readouterr().err
        assert f"--out {out} cannot be written: {read_only_folder} is not writable (" in err
        assert "choose a folder you can write to" in err


# ----- (6) a readable output when stdout is not a terminal ---------------------------------

def test_without_a_terminal_there_is_no_progress_bar_but_lines(corpus, tmp_path, capsys):
    code = main(["train", *TINY, "--progress=true", "--log_interval=2", f"--dataset={corpus}",
                 "--out", str(tmp_path / "run")])
    assert code == 0
    out, err = capsys.readouterr()
    assert "\r" not in out + err and "train:" not in err, "no progress bar in a file"
    lines = out.splitlines()
    evals = [i for i, line in enumerate(lines) if line.startswith("step") and "val" in line]
    assert [lines[i].split(":")[0] for i in evals] == ["step      0", "step      6",
                                                        "step     12"]
    assert "step      2: loss " in out and "tokens/s" in out
    assert evals[-1] < next(i for i, line in enumerate(lines) if "final validation" in line)


# ----- (7) --help and --list show the values ---------------------------------------------------

def test_list_shows_every_value_of_a_preset(capsys):
    assert main(["train", "--list"]) == 0
    out = capsys.readouterr().out
    assert "shakespeare-char-cpu: nanoGPT's CPU recipe" in out
    assert out.count("eval_interval=250") >= 3 and "n_layer=6" in out
    assert main(["train", "--preset", "tiny", "--lr=1e-2", "--list"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("tiny: ") and "lr=0.01" in out and "eval_interval=50" in out
    assert "shakespeare-char" not in out, "only the chosen preset"


def test_help_names_the_settings_once_and_where_the_values_are(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.count("settings:") == 1 and out.count("warmup_steps") == 1
    assert "--preset NAME --list" in out and "every eval_interval steps" in out
