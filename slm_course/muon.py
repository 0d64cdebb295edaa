"""Muon: momentum, orthogonalised, for the weight matrices of the hidden layers.

For a weight matrix W with gradient G, Muon keeps a momentum M and steps along the
"orthogonal part" of it (Jordan et al., 2024):

    M <- mu M + G,    U = G + mu M  (Nesterov)
    O = NS_5(U) ~ U_svd V_svd^T          the polar factor: U's singular values all set to ~1
    W <- W (1 - lr wd) - lr s O,   s = 0.2 sqrt(max(rows, cols))   (RMS of O s ~ AdamW's)

NS_k is k Newton-Schulz iterations of the quintic X <- a X + b (X X^T) X + c (X X^T)^2 X,
with (a, b, c) = (3.4445, -4.7750, 2.0315): after scaling X to spectral norm <= 1 it pushes
every singular value towards 1 using matrix products only, no SVD. The coefficients trade
accuracy for speed: after 5 steps the singular values land in about [0.7, 1.2], not exactly 1,
which trains just as well. Every other parameter (embeddings, the output layer, norm gains,
biases) trains with AdamW, inside the same optimizer, so the loop's ``group["lr"] = lr_t``
schedules both. The scale s (Moonshot's "match RMS of AdamW", Liu et al., 2025) lets Muon
take the same learning rate as AdamW.

Stage 18: from GPT-2 to a modern small LM.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz(G: torch.Tensor, steps: int = 5,
                  coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
                  eps: float = 1e-7) -> torch.Tensor:
    """Approximately orthogonalise a matrix G (m, n): return ~ U V^T where G = U S V^T.

        X_0 = G / ||G||_F,    X_{k+1} = a X_k + (b A_k + c A_k^2) X_k,    A_k = X_k X_k^T

    Each step maps every singular value s of X to a s + b s^3 + c s^5 and leaves the singular
    vectors alone. Dividing by the Frobenius norm puts every s in (0, 1] first. A stack of
    same-shaped matrices (k, m, n) is orthogonalised matrix by matrix, in batched products:
    the optimizer sends all its matrices of one shape at once (fewer, larger calls).
    """
    if G.ndim not in (2, 3):
        raise ValueError(f"Newton-Schulz orthogonalises a matrix (or a stack of them), got "
                         f"shape {tuple(G.shape)}")
    a, b, c = coefficients
    tall = G.shape[-2] > G.shape[-1]
    X = G.mT if tall else G  # (m, n) with m <= n: the Gram matrix A is the small one, (m, m)
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + eps)
    add_product = torch.addmm if X.ndim == 2 else torch.baddbmm  # beta * C + alpha * (A @ B)
    for _ in range(steps):
        A = X @ X.mT  # (m, m)
        B = add_product(A, A, A, beta=b, alpha=c)  # b A + c A A, in one fused call
        X = add_product(X, B, X, beta=a)  # a X + B X: (m, n)
    return X.mT if tall else X


class Muon(torch.optim.Optimizer):
    """Muon for the groups with ``use_muon=True`` (2-D matrices), AdamW for the others.

    Muon group keys: lr, momentum (mu), nesterov, ns_steps, weight_decay, rms_scale (the 0.2
    in s). AdamW group keys: lr, betas, eps, weight_decay. Build the groups with
    :func:`muon_param_groups`.
    """

    def __init__(self, params: Any, lr: float = 1e-3, momentum: float = 0.95,
                 nesterov: bool = True, ns_steps: int = 5, rms_scale: float = 0.2,
                 betas: tuple[float, float] = (0.9, 0.99), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        if lr < 0 or not 0 <= momentum < 1 or ns_steps < 1 or weight_decay < 0:
            raise ValueError(f"need lr >= 0, 0 <= momentum < 1, ns_steps >= 1 and "
                             f"weight_decay >= 0, got {lr}, {momentum}, {ns_steps}, "
                             f"{weight_decay}")
        defaults = dict(lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps,
                        rms_scale=rms_scale, betas=betas, eps=eps, weight_decay=weight_decay,
                        use_muon=False)
        super().__init__(params, defaults)
        for group in self.param_groups:
            if group["use_muon"] and any(p.ndim != 2 for p in group["params"]):
                raise ValueError("Muon orthogonalises matrices: put only 2-D parameters in a "
                                 "use_muon group and the rest in an AdamW group")

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not group["use_muon"]:
                for p in params:
                    self._adamw(p, self.state[p], group)
                continue
            by_shape: dict[tuple[int, ...], list[torch.Tensor]] = {}
            for p in params:
                by_shape.setdefault(tuple(p.shape), []).append(p)
            for same in by_shape.values():
                self._muon(same, [self.state[p] for p in same], group)
        return loss

    @staticmethod
    def _muon(params: list[torch.Tensor], states: list[dict[str, Any]],
              group: dict[str, Any]) -> None:
        """M <- mu M + G;  O = NS(G + mu M);  W <- W (1 - lr wd) - lr s O, for matrices of
        one shape: their Newton-Schulz runs as one batch (k, m, n)."""
        mu, updates = group["momentum"], []
        for p, state in zip(params, states, strict=True):
            if "momentum" not in state:
                state["momentum"] = torch.zeros_like(p)
            M = state["momentum"]
            M.mul_(mu).add_(p.grad)
            updates.append(p.grad.add(M, alpha=mu) if group["nesterov"] else M)
        O = newton_schulz(torch.stack(updates), group["ns_steps"])  # (k, m, n)
        scale = group["rms_scale"] * math.sqrt(max(params[0].shape))
        for p, o in zip(params, O, strict=True):
            p.mul_(1 - group["lr"] * group["weight_decay"])
            p.add_(o, alpha=-group["lr"] * scale)

    @staticmethod
    def _adamw(p: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        """AdamW (decoupled weight decay), as ``torch.optim.AdamW``."""
        if "step" not in state:
            state.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
        beta1, beta2 = group["betas"]
        state["step"] += 1
        t, m, v = state["step"], state["m"], state["v"]
        m.lerp_(p.grad, 1 - beta1)  # m <- beta1 m + (1 - beta1) g
        v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
        denom = (v / (1 - beta2 ** t)).sqrt_().add_(group["eps"])
        p.mul_(1 - group["lr"] * group["weight_decay"])
        p.addcdiv_(m, denom, value=-group["lr"] / (1 - beta1 ** t))


def muon_param_groups(model: nn.Module, weight_decay: float = 0.0) -> list[dict[str, Any]]:
    """Three groups: the weights of the hidden ``nn.Linear`` layers (Muon); embeddings and
    the output layer, which map tokens rather than features (AdamW, decayed); gains and
    biases (AdamW, not decayed)."""
    embedding = {id(p) for m in model.modules() if isinstance(m, nn.Embedding)
                 for p in m.parameters()}
    hidden = {id(m.weight) for name, m in model.named_modules()
              if isinstance(m, nn.Linear) and not name.endswith("lm_head")}
    params = [p for p in model.parameters() if p.requires_grad]  # a tied matrix comes once
    muon = [p for p in params if id(p) in hidden and id(p) not in embedding]
    rest = [p for p in params if id(p) not in {id(q) for q in muon}]
    groups = [{"params": muon, "use_muon": True, "weight_decay": weight_decay},
              {"params": [p for p in rest if p.ndim >= 2], "weight_decay": weight_decay},
              {"params": [p for p in rest if p.ndim < 2], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def make_muon(model: nn.Module, cfg: Any) -> Muon:
    """The optimizer of ``TrainConfig(optimizer="muon")``: Muon for the hidden matrices and
    AdamW for the rest, all at ``cfg.lr`` (the loop's schedule sets it every step)."""
    return Muon(muon_param_groups(model, cfg.weight_decay), lr=cfg.lr,
                betas=(cfg.beta1, cfg.beta2))
