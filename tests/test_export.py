"""Export to Hugging Face's GPT2LMHeadModel and back, against transformers itself: the same
logits within 1e-4 both ways (random small models, no download), Conv1D transposes, zero
biases for bias=False, the tanh GELU, save_pretrained through `slm-course export`, and the
clear errors (a missing transformers, a GPT-2 feature our class lacks)."""

import builtins
import sys

import pytest
import torch

from slm_course.export import (
    from_pretrained_gpt2,
    gpt_config_from_hf,
    gpt_to_hf,
    hf_to_gpt,
    require_transformers,
)
from slm_course.gpt import GPT, GPTConfig

transformers = pytest.importorskip("transformers", reason="the optional extra: pip install "
                                   "transformers")


def small(**kw) -> GPTConfig:
    return GPTConfig(**{**dict(vocab_size=37, block_size=24, n_layer=2, n_head=4, n_embd=32,
                               bias=True, activation="gelu_tanh"), **kw})


def randomised(model: torch.nn.Module, seed: int = 0, std: float = 0.2) -> torch.nn.Module:
    """Every weight random (LayerNorms and biases too), so a mismapped tensor shows."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * std)
    return model.eval()


@pytest.mark.parametrize("kw", [{}, dict(bias=False), dict(activation="gelu")])
def test_our_gpt_exports_to_the_same_logits(kw):
    model = randomised(GPT(small(**kw)))
    hf = gpt_to_hf(model)
    idx = torch.randint(37, (3, 24))
    with torch.no_grad():
        ours, theirs = model(idx)[0], hf(idx).logits
    assert (ours - theirs).abs().max() < 1e-4
    assert ours.std() > 0.1, "logits near 0 would hide a mistake"
    assert hf.lm_head.weight.data_ptr() == hf.transformer.wte.weight.data_ptr(), "still tied"
    w = model.transformer.h[0].attn.c_attn.weight
    assert torch.equal(hf.transformer.h[0].attn.c_attn.weight, w.t()), "Conv1D: (in, out)"


def test_a_random_hf_gpt2_imports_to_the_same_logits_and_back():
    torch.manual_seed(1)
    cfg = transformers.GPT2Config(vocab_size=41, n_positions=20, n_embd=24, n_layer=2,
                                  n_head=3)  # GPT-2's defaults: biases, gelu_new, tied
    hf = randomised(transformers.GPT2LMHeadModel(cfg), seed=2)
    model = hf_to_gpt(hf)
    assert model.config.activation == "gelu_tanh" and model.config.bias
    idx = torch.randint(41, (2, 20))
    with torch.no_grad():
        theirs, ours = hf(idx).logits, model(idx)[0]
        back = gpt_to_hf(model)(idx).logits
    assert (ours - theirs).abs().max() < 1e-4
    assert (back - theirs).abs().max() < 1e-4


def test_the_exact_gelu_would_not_match_gpt2():
    hf = randomised(transformers.GPT2LMHeadModel(transformers.GPT2Config(
        vocab_size=41, n_positions=20, n_embd=24, n_layer=2, n_head=3)), seed=3, std=1.0)
    model = hf_to_gpt(hf)
    idx = torch.randint(41, (2, 20))
    with torch.no_grad():
        assert (model(idx)[0] - hf(idx).logits).abs().max() < 1e-4 * hf(idx).logits.abs().max()
        for block in model.transformer.h:
            block.mlp.gelu.approximate = "none"
        assert (model(idx)[0] - hf(idx).logits).abs().max() > 1e-3


def test_gpt2_features_our_class_lacks_are_clear_errors():
    cfg = transformers.GPT2Config(n_embd=24, n_layer=1, n_head=3, n_inner=50)
    with pytest.raises(ValueError, match="n_inner=50"):
        gpt_config_from_hf(cfg)
    cfg = transformers.GPT2Config(n_embd=24, n_layer=1, n_head=3, activation_function="relu")
    with pytest.raises(ValueError, match="activation 'relu'"):
        gpt_config_from_hf(cfg)


def test_a_missing_transformers_says_how_to_install_it(monkeypatch):
    real_import = builtins.__import__

    def no_transformers(name, *args, **kwargs):
        if name == "transformers" or name.startswith("transformers."):
            raise ImportError("No module named 'transformers'")
        return real_import(name, *args, **kwargs)

    monkeypatch.delitem(sys.modules, "transformers")
    monkeypatch.setattr(builtins, "__import__", no_transformers)
    with pytest.raises(ImportError, match="pip install transformers"):
        require_transformers()
    with pytest.raises(ImportError, match="pip install transformers"):
        from_pretrained_gpt2("gpt2")


def test_cli_export_writes_a_folder_transformers_loads(tmp_path, capsys):
    from slm_course.cli import main
    from slm_course.cli.runs import load_model

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("ROMEO: to be\nJULIET: or not\n" * 200, encoding="utf-8")
    assert main(["train", "--preset", "tiny", "--max_steps=3", "--warmup-steps=1",
                 "--eval_interval=3", "--eval_batches=1", "--batch_size=4", "--block_size=16",
                 "--n_embd=16", "--progress=false", "--num_threads=1",
                 f"--dataset={corpus}", "--out", str(tmp_path / "run")]) == 0
    out = tmp_path / "hf"
    assert main(["export", "--checkpoint", str(tmp_path / "run"), "--out", str(out)]) == 0
    assert "GPT2LMHeadModel.from_pretrained" in capsys.readouterr().out
    model, tokenizer = load_model(tmp_path / "run", device="cpu")
    hf = transformers.GPT2LMHeadModel.from_pretrained(out).eval()
    idx = torch.tensor([tokenizer.encode("ROMEO: to be\nJUL")])
    with torch.no_grad():
        assert (hf(idx).logits - model(idx)[0]).abs().max() < 1e-4
    assert (out / "slm_course_tokenizer.json").exists()
    assert main(["export", "--checkpoint", str(tmp_path / "run"), "--out", str(out)]) == 1
    assert "already exists" in capsys.readouterr().err


def test_a_modern_model_is_refused_with_the_reasons():
    from types import SimpleNamespace

    from slm_course.export import check_gpt2_compatible

    check_gpt2_compatible(small())  # GPT-2's own options: fine
    modern = SimpleNamespace(n_head=4, norm="rmsnorm", position="rope", mlp="gelu",
                             n_kv_head=2)
    with pytest.raises(ValueError, match="norm='rmsnorm'.*position='rope'.*n_kv_head=2"):
        check_gpt2_compatible(modern)
