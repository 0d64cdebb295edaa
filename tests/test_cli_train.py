"""``slm-course train`` and ``slm-course sample`` end to end on a tiny corpus, the presets,
and the typed ``--key=value`` overrides."""

import json

import pytest
import torch

from slm_course.cli import main
from slm_course.cli.presets import PRESETS, apply_overrides, get_preset, parse_overrides
from slm_course.helpers.checkpoints import CHECKPOINT_NAME, load_checkpoint
from slm_course.helpers.run_log import LOG_NAME

TEXT = "".join(f"{w}\n" for i in range(300) for w in ("ROMEO: to be", "JULIET: or not",
                                                      f"NURSE: {i % 9} is that"))
TINY = ["--preset", "tiny", "--max_steps=12", "--warmup-steps=2", "--eval_interval=6",
        "--eval_batches=2", "--batch_size=4", "--block_size=16", "--n_embd=16",
        "--progress=false", "--num_threads=1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    corpus = folder / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    out = folder / "run"
    code = main(["train", *TINY, f"--dataset={corpus}", "--out", str(out)])
    assert code == 0
    return corpus, out


def test_train_writes_a_checkpoint_with_the_overrides(trained, capsys):
    corpus, out = trained
    ckpt = load_checkpoint(out / CHECKPOINT_NAME)
    assert ckpt["step"] == 12
    assert ckpt["model_config"]["n_embd"] == 16 and ckpt["model_config"]["block_size"] == 16
    assert ckpt["train_config"]["batch_size"] == 4 and ckpt["train_config"]["dataset"] == \
        str(corpus)
    assert ckpt["model_config"]["vocab_size"] == len(set(TEXT))


def test_refuses_to_overwrite_and_resumes_on_request(trained, capsys):
    corpus, out = trained
    assert main(["train", *TINY, f"--dataset={corpus}", "--out", str(out)]) == 1
    assert "pass --resume" in capsys.readouterr().err
    before = load_checkpoint(out / CHECKPOINT_NAME)
    code = main(["train", *TINY, f"--dataset={corpus}", "--out", str(out), "--resume",
                 "--max_steps=18"])
    assert code == 0
    after = load_checkpoint(out / CHECKPOINT_NAME)
    assert after["step"] == 18
    assert torch.equal(after["losses"][:12], before["losses"]), "resume continues the run"
    printed = capsys.readouterr().out
    assert "final validation loss" in printed and "whole validation split" in printed
    final = [json.loads(line) for line in (out / LOG_NAME).read_text().splitlines()][-1]
    assert final["kind"] == "final" and final["step"] == 18
    assert 0 < final["val_loss_full_split"] < 10
    assert final["val_loss_per_char"] == final["val_loss_full_split"], "1 character per token"


def test_sample_continues_the_prompt_reproducibly(trained, capsys):
    _, out = trained
    args = ["sample", "--checkpoint", str(out / CHECKPOINT_NAME), "--prompt", "ROMEO:",
            "--max-new-tokens", "20", "--seed", "3", "--top-k", "5", "--top-p", "0.9"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert first.startswith("ROMEO:") and len(first.rstrip("\n")) >= len("ROMEO:") + 10
    assert main(args) == 0
    assert capsys.readouterr().out == first, "the same seed gives the same text"


def test_sample_reports_an_unknown_character(trained, capsys):
    _, out = trained
    code = main(["sample", "--checkpoint", str(out), "--prompt", "ROMEO€"])
    assert code == 1
    assert "unknown character '€'" in capsys.readouterr().err


def test_sample_from_a_missing_checkpoint(tmp_path, capsys):
    assert main(["sample", "--checkpoint", str(tmp_path / "none.pt")]) == 1
    assert "no checkpoint at" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    (["--n_layer=two"], "--n_layer expects int, got 'two'"),
    (["--bias=maybe"], "--bias expects true or false"),
    (["--n_head=3"], "not divisible by n_head=3"),
    (["--vocab_size=100"], "vocabulary mismatch"),
])
def test_bad_settings_are_clear_errors(trained, tmp_path, capsys, extra, message):
    corpus, _ = trained
    code = main(["train", *TINY, f"--dataset={corpus}", "--out", str(tmp_path), *extra])
    assert code == 1
    assert message in capsys.readouterr().err


def test_unknown_key_lists_the_valid_ones(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--preset", "tiny", "--n_layers=3"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "unrecognized arguments: --n_layers=3" in err and "did you mean --n_layer?" in err
    assert "valid settings: " in err and "attention, batch_size" in err


def test_unknown_preset_lists_the_presets(capsys):
    assert main(["train", "--preset", "shakespeare"]) == 1
    err = capsys.readouterr().err
    assert all(name in err for name in PRESETS)
    assert main(["train", "--list"]) == 0
    assert "shakespeare-char-gpu" in capsys.readouterr().out


def test_presets_hold_the_published_recipes():
    cpu = get_preset("shakespeare-char-cpu")
    assert cpu.model == dict(n_layer=4, n_head=4, n_embd=128, block_size=64, dropout=0.0,
                             bias=False)
    t = cpu.train
    assert (t.batch_size, t.max_steps, t.lr, t.min_lr, t.warmup_steps) == (12, 2000, 1e-3, 1e-4,
                                                                           100)
    assert (t.beta1, t.beta2, t.weight_decay, t.grad_clip) == (0.9, 0.99, 0.1, 1.0)
    assert (t.eval_interval, t.eval_batches, t.val_fraction) == (250, 20, 0.1)
    gpu = get_preset("shakespeare-char-gpu")
    assert gpu.model["n_layer"] == 6 and gpu.model["n_embd"] == 384
    assert (gpu.model["block_size"], gpu.train.batch_size, gpu.model["dropout"]) == (256, 64,
                                                                                    0.2)
    assert get_preset("shakespeare-bpe-cpu").train.tokenizer == "bpe"


def test_overrides_are_typed_by_the_dataclasses():
    assert parse_overrides(["--n-layer=6", "--lr", "3e-4", "--compile=yes"]) == \
        {"n_layer": "6", "lr": "3e-4", "compile": "yes"}
    p = apply_overrides(get_preset("tiny"), {"n_layer": "6", "lr": "3e-4", "compile": "yes",
                                             "device": "cpu"})
    assert p.model["n_layer"] == 6 and isinstance(p.model["n_layer"], int)
    assert p.train.lr == 3e-4 and p.train.compile is True and p.train.device == "cpu"
    assert get_preset("tiny").model["n_layer"] == 2, "the preset itself is unchanged"
    with pytest.raises(ValueError, match="valid keys: .*batch_size"):
        apply_overrides(get_preset("tiny"), {"batchsize": "3"})
