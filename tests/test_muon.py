"""Muon (slm_course.muon) against the SVD's polar factor and PyTorch's own Muon and AdamW."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slm_course.muon import Muon, muon_param_groups, newton_schulz


def matrix_with_singular_values(s: torch.Tensor, m: int, n: int, seed: int = 0
                                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """G = U diag(s) V^T with random orthonormal U (m, r), V (n, r); returns G, U, V."""
    g = torch.Generator().manual_seed(seed)
    r = len(s)
    U, _ = torch.linalg.qr(torch.randn(m, r, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(n, r, generator=g, dtype=torch.float64))
    return (U * s) @ V.T, U, V


@pytest.mark.parametrize("shape", [(48, 48), (32, 96), (96, 32)])
def test_newton_schulz_approximates_the_polar_factor(shape):
    m, n = shape
    r = min(m, n)
    s = torch.logspace(0, 1.7, r, dtype=torch.float64)  # singular values 1 .. 50
    G, U, V = matrix_with_singular_values(s, m, n)
    O = newton_schulz(G.float()).double()
    assert O.shape == G.shape
    # the singular vectors are kept: U^T O V is diagonal ...
    core = U.T @ O @ V  # (r, r)
    off = core - torch.diag(torch.diagonal(core))
    assert off.abs().max() < 1e-4, "Newton-Schulz must not rotate the singular vectors"
    # ... and every singular value lands in the quintic's band around 1, not at 0.02 .. 1
    new_s = torch.diagonal(core)
    assert new_s.min() > 0.67 and new_s.max() < 1.21, (new_s.min(), new_s.max())
    assert torch.allclose(torch.linalg.svdvals(O), new_s.sort(descending=True).values,
                          atol=1e-4)
    # so O is close to U V^T in direction: cosine similarity well above 0.95
    polar = U @ V.T
    cosine = (O * polar).sum() / (O.norm() * polar.norm())
    assert cosine > 0.97, f"cosine with U V^T only {cosine:.3f}"


def test_newton_schulz_with_more_steps_of_the_cubic_converges_to_u_vt():
    """With the classic cubic (a, b, c) = (1.5, -0.5, 0) the iteration converges to U V^T
    exactly; the quintic's coefficients trade that for speed."""
    s = torch.linspace(0.2, 1.0, 16, dtype=torch.float64)
    G, U, V = matrix_with_singular_values(s, 16, 40, seed=3)
    O = newton_schulz(G, steps=40, coefficients=(1.5, -0.5, 0.0))
    assert torch.allclose(O, U @ V.T, atol=1e-6)


def test_newton_schulz_rejects_a_vector():
    with pytest.raises(ValueError, match="matrix"):
        newton_schulz(torch.ones(5))


def test_a_muon_step_equals_torch_optim_muon():
    """PyTorch's Muon (adjust_lr_fn="match_rms_adamw" is our scale 0.2 sqrt(max(A, B)))
    runs Newton-Schulz in bfloat16; ours runs it in float32, so they agree to bf16 accuracy."""
    torch.manual_seed(0)
    ours_w = nn.Parameter(torch.randn(24, 40) * 0.1)
    theirs_w = nn.Parameter(ours_w.detach().clone())
    ours = Muon([{"params": [ours_w], "use_muon": True}], lr=0.02, momentum=0.9,
                weight_decay=0.1)
    theirs = torch.optim.Muon([theirs_w], lr=0.02, momentum=0.9, weight_decay=0.1,
                              adjust_lr_fn="match_rms_adamw")
    start = ours_w.detach().clone()
    for step in range(3):
        grad = torch.randn(24, 40, generator=torch.Generator().manual_seed(step))
        ours_w.grad, theirs_w.grad = grad.clone(), grad.clone()
        ours.step()
        theirs.step()
    moved = (theirs_w - start).norm()
    assert (ours_w - theirs_w).norm() < 0.02 * moved, "our Muon differs from torch.optim.Muon"


def test_a_stack_of_matrices_is_orthogonalised_matrix_by_matrix():
    """The batched path (k, m, n), which the optimizer uses for same-shaped matrices, equals
    k separate calls, for wide and tall shapes."""
    g = torch.Generator().manual_seed(3)
    for shape in [(3, 8, 20), (4, 20, 8)]:
        G = torch.randn(*shape, generator=g)
        one_by_one = torch.stack([newton_schulz(m) for m in G])
        assert torch.allclose(newton_schulz(G), one_by_one, atol=1e-5), shape


def test_muon_on_several_matrices_equals_torch_optim_muon():
    """Two matrices of one shape (one batched Newton-Schulz) and one of another, three steps:
    each moves as torch.optim.Muon moves it alone (bf16 accuracy, as above)."""
    torch.manual_seed(1)
    shapes = [(24, 40), (24, 40), (40, 16)]
    ours_ws = [nn.Parameter(torch.randn(*s) * 0.1) for s in shapes]
    theirs_ws = [nn.Parameter(w.detach().clone()) for w in ours_ws]
    ours = Muon([{"params": ours_ws, "use_muon": True}], lr=0.02, momentum=0.9,
                weight_decay=0.1)
    theirs = torch.optim.Muon(theirs_ws, lr=0.02, momentum=0.9, weight_decay=0.1,
                              adjust_lr_fn="match_rms_adamw")
    starts = [w.detach().clone() for w in ours_ws]
    for step in range(3):
        for i, (a, b) in enumerate(zip(ours_ws, theirs_ws, strict=True)):
            grad = torch.randn(*a.shape, generator=torch.Generator().manual_seed(10 * step + i))
            a.grad, b.grad = grad.clone(), grad.clone()
        ours.step()
        theirs.step()
    for a, b, start in zip(ours_ws, theirs_ws, starts, strict=True):
        assert (a - b).norm() < 0.02 * (b - start).norm(), f"matrix {tuple(a.shape)} differs"


def test_the_adamw_groups_equal_torch_adamw():
    torch.manual_seed(0)
    ours_p = [nn.Parameter(torch.randn(7, 5)), nn.Parameter(torch.randn(5))]
    theirs_p = [nn.Parameter(p.detach().clone()) for p in ours_p]
    ours = Muon([{"params": ours_p, "weight_decay": 0.1}], lr=1e-2, betas=(0.9, 0.95))
    theirs = torch.optim.AdamW(theirs_p, lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)
    for step in range(5):
        g = torch.Generator().manual_seed(step)
        for a, b in zip(ours_p, theirs_p, strict=True):
            a.grad = torch.randn(a.shape, generator=g)
            b.grad = a.grad.clone()
        ours.step()
        theirs.step()
    for a, b in zip(ours_p, theirs_p, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_param_groups_send_hidden_matrices_to_muon_and_the_rest_to_adamw():
    from slm_course.gpt import GPT, GPTConfig

    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16))
    groups = muon_param_groups(model, weight_decay=0.1)
    muon = [p for g in groups if g.get("use_muon") for p in g["params"]]
    others = [p for g in groups if not g.get("use_muon") for p in g["params"]]
    assert all(p.ndim == 2 for p in muon) and len(muon) == 2 * 4  # c_attn, c_proj, c_fc, c_proj
    ids = {id(p) for p in muon}
    assert id(model.lm_head.weight) not in ids, "the (tied) output layer belongs to AdamW"
    assert id(model.transformer.wpe.weight) not in ids
    assert len(ids) + len(others) == len(list(model.parameters()))
    gains = [g for g in groups if any(p.ndim == 1 for p in g["params"])]
    assert gains and all(g["weight_decay"] == 0.0 for g in gains), "no decay on gains"


def test_muon_rejects_a_vector_in_a_muon_group():
    with pytest.raises(ValueError, match="2-D"):
        Muon([{"params": [nn.Parameter(torch.ones(3))], "use_muon": True}])


def test_muon_trains_a_small_gpt():
    from slm_course.gpt import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=8, block_size=8, n_layer=1, n_head=2, n_embd=16))
    opt = Muon(muon_param_groups(model), lr=1e-2)
    x = torch.randint(0, 8, (16, 8))
    y = (x + 1) % 8  # next token = this token + 1: learnable without context
    losses = []
    for _ in range(60):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0], losses[::10]


def test_the_shared_loop_builds_muon_from_the_train_config():
    from slm_course.gpt import GPT, GPTConfig
    from slm_course.train import TrainConfig, make_optimizer

    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16))
    assert isinstance(make_optimizer(model, TrainConfig()), torch.optim.AdamW), "default"
    opt = make_optimizer(model, TrainConfig(optimizer="muon", lr=3e-3, weight_decay=0.0))
    assert isinstance(opt, Muon) and all(g["lr"] == 3e-3 for g in opt.param_groups)
    assert sum(bool(g["use_muon"]) for g in opt.param_groups) == 1
    with pytest.raises(ValueError, match="muon"):
        TrainConfig(optimizer="sgd")


def test_a_muon_run_resumes_exactly(tmp_path):
    """The optimizer state (momentum buffers, AdamW moments) goes into the checkpoint and
    comes back: a run stopped and resumed gives the losses of an uninterrupted one."""
    from slm_course.cli.runs import run_training
    from slm_course.lm_data import LMData
    from slm_course.tokenizers import CharTokenizer
    from slm_course.train import TrainConfig

    text = "to be or not to be, that is the question. " * 40
    tokenizer = CharTokenizer.from_text(text)
    data = LMData.from_text(text, tokenizer)
    model_args = dict(block_size=8, n_layer=1, n_head=2, n_embd=16, position="rope",
                      norm="rmsnorm", mlp="swiglu")
    cfg = TrainConfig(optimizer="muon", batch_size=4, max_steps=12, lr=1e-2, min_lr=0.0,
                      warmup_steps=2, eval_interval=6, eval_batches=2, progress=False)
    _, whole, _ = run_training(model_args, cfg, data=data)
    out = tmp_path / "run"
    run_training(model_args, cfg, data=data, out_dir=out, stop_at=6)
    _, resumed, _ = run_training(model_args, cfg, data=data, out_dir=out, resume=True)
    assert torch.equal(resumed.losses, whole.losses)
