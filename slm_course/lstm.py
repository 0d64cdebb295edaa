"""LSTM and GRU language models: the gated cells from scratch, truncated BPTT, clipping.

A vanilla RNN multiplies the gradient by the same Jacobian at every step back in time, so it
shrinks (or blows up) geometrically with the distance. The LSTM (Hochreiter & Schmidhuber,
1997) adds a cell state c that is *updated additively* through gates, so the gradient along c
is scaled only by the forget gate f; the GRU (Cho et al., 2014) does the same with one state.
With sigma the logistic function and (.) the elementwise product, as in ``nn.LSTM``/``nn.GRU``:

    LSTM                                          GRU
    i  = sigma(W_ii x + b_ii + W_hi h + b_hi)     r  = sigma(W_ir x + b_ir + W_hr h + b_hr)
    f  = sigma(W_if x + b_if + W_hf h + b_hf)     z  = sigma(W_iz x + b_iz + W_hz h + b_hz)
    g  = tanh (W_ig x + b_ig + W_hg h + b_hg)     n  = tanh (W_in x + b_in + r (.) (W_hn h + b_hn))
    o  = sigma(W_io x + b_io + W_ho h + b_ho)     h' = (1 - z) (.) n + z (.) h
    c' = f (.) c + i (.) g
    h' = o (.) tanh(c')

A recurrent language model reads a long text as B contiguous streams (:func:`batchify`) in
chunks of T tokens (:class:`TBPTTBatches`); the hidden state is carried from one chunk to the
next but *detached* (:func:`detach_hidden`), so backpropagation stops at the chunk boundary:
truncated backpropagation through time, as in char-rnn and PyTorch's word_language_model.
Gradient clipping by global norm (:func:`clip_grad_norm`) keeps the rare exploding step
from wrecking the weights: g <- g min(1, c / ||g||).

``tests/test_lstm.py`` proves the cells (one step and many, values and gradients, float64)
equal to ``nn.LSTM`` and ``nn.GRU`` with the same weights, the clipping equal to
``torch.nn.utils.clip_grad_norm_``, and the stream layout equal to a hand-made one.

Stage 11: LSTM and GRU language models.
"""

from __future__ import annotations

import copy
import itertools
import math
import statistics
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from slm_course.generate import sample_next
from slm_course.helpers.eval_mode import evaluating
from slm_course.train import Batch, TrainConfig, TrainState, train

Hidden = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # GRU/RNN: h; LSTM: (h, c)
RECURRENT_LAYERS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}

# ---------------------------------------------------------------------------------------
# The cells from scratch (same parameter names, shapes and gate order as nn.LSTM / nn.GRU)
# ---------------------------------------------------------------------------------------


class _GatedCell(nn.Module):
    """Parameters of a cell with ``gates`` blocks: weight_ih (gates H, I), weight_hh
    (gates H, H), bias_ih and bias_hh (gates H,), initialised U(-1/sqrt(H), 1/sqrt(H)) as
    PyTorch does."""

    gates = 1

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        if input_size < 1 or hidden_size < 1:
            raise ValueError(f"input_size and hidden_size must be >= 1, got {input_size}, "
                             f"{hidden_size}")
        self.input_size, self.hidden_size = input_size, hidden_size
        G, H = self.gates, hidden_size
        self.weight_ih = nn.Parameter(torch.empty(G * H, input_size))
        self.weight_hh = nn.Parameter(torch.empty(G * H, H))
        self.bias_ih = nn.Parameter(torch.empty(G * H))
        self.bias_hh = nn.Parameter(torch.empty(G * H))
        bound = 1.0 / math.sqrt(H)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.dim() != 2 or x.shape[1] != self.input_size:
            raise ValueError(f"x must be (batch, {self.input_size}), got shape "
                             f"{tuple(x.shape)}; a sequence goes through unroll(cell, x)")

    def load_from(self, rnn: nn.LSTM | nn.GRU, layer: int = 0) -> _GatedCell:
        """Copy layer ``layer`` of a PyTorch ``nn.LSTM``/``nn.GRU`` into this cell."""
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                theirs = getattr(rnn, f"{name}_l{layer}")
                if theirs.shape != getattr(self, name).shape:
                    raise ValueError(f"{name}_l{layer} has shape {tuple(theirs.shape)}, this "
                                     f"cell's {name} {tuple(getattr(self, name).shape)}")
                getattr(self, name).copy_(theirs)
        return self


class LSTMCellScratch(_GatedCell):
    """One LSTM step, ``(x, (h, c)) -> (h', c')``; gates stacked in the order i, f, g, o.

    i, f, o = sigma(.), g = tanh(.) of W_i* x + b_i* + W_h* h + b_h*;
    c' = f * c + i * g;   h' = o * tanh(c').
    """

    gates = 4

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_input(x)
        h, c = state if state is not None else self.zero_state(x.shape[0], x)
        z = x @ self.weight_ih.T + self.bias_ih + h @ self.weight_hh.T + self.bias_hh  # (B, 4H)
        i, f, g, o = z.chunk(4, dim=1)  # each (B, H)
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        c = f * c + i * g  # the additive path: dc'/dc = f
        h = o * torch.tanh(c)
        return h, c

    def zero_state(self, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = like.new_zeros(batch, self.hidden_size)
        return zeros, zeros.clone()


class GRUCellScratch(_GatedCell):
    """One GRU step, ``(x, h) -> h'``; gates stacked in the order r, z, n.

    r, z = sigma(W_i* x + b_i* + W_h* h + b_h*);   n = tanh(W_in x + b_in + r * (W_hn h + b_hn));
    h' = (1 - z) * n + z * h.
    """

    gates = 3

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        self._check_input(x)
        h = h if h is not None else self.zero_state(x.shape[0], x)
        xr, xz, xn = (x @ self.weight_ih.T + self.bias_ih).chunk(3, dim=1)  # each (B, H)
        hr, hz, hn = (h @ self.weight_hh.T + self.bias_hh).chunk(3, dim=1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)  # the reset gate scales the recurrent part only
        return (1 - z) * n + z * h

    def zero_state(self, batch: int, like: torch.Tensor) -> torch.Tensor:
        return like.new_zeros(batch, self.hidden_size)


def unroll(cell: nn.Module, x: torch.Tensor, state: Hidden | None = None
           ) -> tuple[torch.Tensor, Hidden]:
    """Run ``cell`` over a sequence: x (B, T, I) -> outputs (B, T, H) (every h_t) and the
    last state (h_T, or (h_T, c_T) for an LSTM), like ``nn.LSTM(batch_first=True)``."""
    if x.dim() != 3:
        raise ValueError(f"x must be (batch, time, features), got shape {tuple(x.shape)}")
    outputs = []
    for t in range(x.shape[1]):
        state = cell(x[:, t], state)
        outputs.append(state[0] if isinstance(state, tuple) else state)  # h_t (B, H)
    return torch.stack(outputs, dim=1), state


# ---------------------------------------------------------------------------------------
# Gradients through time: vanishing, exploding, clipping
# ---------------------------------------------------------------------------------------


def hidden_gradient_norms(rnn: nn.RNN | nn.LSTM | nn.GRU, x: torch.Tensor) -> torch.Tensor:
    """||dL/dh_t|| for every step t of x (B, T, I), with L = sum(h_T): how much the last
    output still depends on the hidden state t steps earlier. Returns (T,); entry T - 1 - k
    is the norm at distance k from the end."""
    if x.dim() != 3 or not getattr(rnn, "batch_first", False):
        raise ValueError("need x (batch, time, features) and an RNN built with batch_first=True")
    hidden, kept = None, []
    for t in range(x.shape[1]):
        _, hidden = rnn(x[:, t:t + 1], hidden)
        h = hidden[0] if isinstance(hidden, tuple) else hidden  # (layers, B, H)
        h.retain_grad()
        kept.append(h)
    kept[-1][-1].sum().backward()
    return torch.stack([h.grad.norm() for h in kept])


def global_grad_norm(params: Iterable[nn.Parameter]) -> torch.Tensor:
    """||g|| over every parameter's gradient taken as one vector: sqrt(sum_p ||g_p||^2)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    return torch.sqrt(sum((g.detach().double() ** 2).sum() for g in grads)).float()


def clip_grad_norm(params: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Scale every gradient in place by min(1, max_norm / (||g|| + 1e-6)), with ||g|| the
    global norm; returns ||g|| before clipping (as ``torch.nn.utils.clip_grad_norm_`` does)."""
    if not max_norm > 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    params = [p for p in params if p.grad is not None]
    total = global_grad_norm(params)
    scale = min(1.0, max_norm / (float(total) + 1e-6))
    for p in params:
        p.grad.mul_(scale)
    return total


# ---------------------------------------------------------------------------------------
# Truncated BPTT: contiguous streams, chunks, a detached state carried across chunks
# ---------------------------------------------------------------------------------------


def batchify(tokens: torch.Tensor, rows: int) -> torch.Tensor:
    """Cut a token stream (N,) into ``rows`` contiguous streams, (rows, N // rows): row r is
    tokens[r L : (r + 1) L] with L = N // rows (the last N mod rows tokens are dropped), so
    each row continues where its previous chunk stopped."""
    if tokens.dim() != 1:
        raise ValueError(f"tokens must be one stream (N,), got shape {tuple(tokens.shape)}")
    if rows < 1 or len(tokens) // rows < 2:
        raise ValueError(f"cannot cut {len(tokens)} tokens into {rows} rows of at least 2 "
                         f"tokens; use fewer rows")
    length = len(tokens) // rows
    return tokens[:rows * length].view(rows, length)


def detach_hidden(hidden: Hidden | None) -> Hidden | None:
    """The same state cut from the graph of the chunk that made it: the next chunk starts
    from its values, but backpropagation stops here (truncated BPTT)."""
    if hidden is None:
        return None
    if isinstance(hidden, tuple):
        return tuple(h.detach() for h in hidden)
    return hidden.detach()


class TBPTTBatches:
    """The loop's ``next_batch`` for truncated BPTT: consecutive chunks of a batchified stream.

    Call k returns x = data[:, s : s + T] and y = data[:, s + 1 : s + T + 1] with s = k T, so
    row r of one chunk continues row r of the previous one; the last chunk of a pass may be
    shorter. After the last chunk the stream starts again and ``on_restart()`` is called (to
    reset a carried state).
    """

    def __init__(self, tokens: torch.Tensor, rows: int, chunk: int,
                 device: torch.device | str | None = None,
                 on_restart: Callable[[], None] | None = None) -> None:
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1 token, got {chunk}")
        self.data = batchify(tokens, rows).to(device)  # (rows, L)
        self.chunk, self.on_restart = chunk, on_restart
        self.position, self.passes = 0, 0

    def __call__(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.position >= self.data.shape[1] - 1:  # every target of this pass was used
            self.position, self.passes = 0, self.passes + 1
            if self.on_restart is not None:
                self.on_restart()
        s = self.position
        T = min(self.chunk, self.data.shape[1] - 1 - s)
        self.position += T
        return self.data[:, s:s + T], self.data[:, s + 1:s + T + 1]  # (rows, T) each


# ---------------------------------------------------------------------------------------
# The recurrent language model
# ---------------------------------------------------------------------------------------


@dataclass
class RecurrentLMConfig:
    """Shape of a :class:`RecurrentLM`."""

    vocab_size: int
    n_embd: int = 64  # embedding size (must equal n_hidden to tie the weights)
    n_hidden: int = 256
    n_layer: int = 1
    cell: str = "lstm"  # "lstm", "gru" or "rnn" (tanh)
    dropout: float = 0.0  # on the embeddings, between layers and before the output layer
    tie_weights: bool = False  # the output layer reuses the embedding matrix

    def __post_init__(self) -> None:
        if self.cell not in RECURRENT_LAYERS:
            raise ValueError(f"cell must be one of {sorted(RECURRENT_LAYERS)}, got {self.cell!r}")
        if min(self.vocab_size, self.n_embd, self.n_hidden, self.n_layer) < 1:
            raise ValueError(f"sizes must be >= 1: {self}")
        if self.tie_weights and self.n_embd != self.n_hidden:
            raise ValueError(f"tie_weights needs n_embd == n_hidden, got {self.n_embd} and "
                             f"{self.n_hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict:
        return asdict(self)


class RecurrentLM(nn.Module):
    """Embedding -> dropout -> ``nn.LSTM``/``nn.GRU``/``nn.RNN`` -> dropout -> linear (the
    recipe of PyTorch's word_language_model). The PyTorch layer computes exactly the
    equations of :class:`LSTMCellScratch` / :class:`GRUCellScratch`, only faster.

    ``forward(x, y=None, hidden=None)`` takes the state to start from and returns
    ``((logits (B, T, V), new_hidden), loss)``: the course's ``(output, loss)`` with the new
    state in the output, so the caller decides whether to carry it (:class:`CarryState`).
    """

    def __init__(self, config: RecurrentLMConfig) -> None:
        super().__init__()
        self.config = c = config
        self.embed = nn.Embedding(c.vocab_size, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.rnn = RECURRENT_LAYERS[c.cell](c.n_embd, c.n_hidden, c.n_layer, batch_first=True,
                                 dropout=c.dropout if c.n_layer > 1 else 0.0)
        self.head = nn.Linear(c.n_hidden, c.vocab_size)
        if c.tie_weights:
            self.head.weight = self.embed.weight  # (V, H) both
        nn.init.normal_(self.embed.weight, std=0.1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None,
                hidden: Hidden | None = None
                ) -> tuple[tuple[torch.Tensor, Hidden], torch.Tensor | None]:
        out, hidden = self.rnn(self.drop(self.embed(x)), hidden)  # (B, T, H)
        logits = self.head(self.drop(out))  # (B, T, V)
        loss = None
        if y is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                                   ignore_index=-100)
        return (logits, hidden), loss

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


class CarryState(nn.Module):
    """Wrap a :class:`RecurrentLM` for the course's loop, ``model(x, y) -> (logits, loss)``,
    carrying the hidden state from each call to the next, detached: truncated BPTT.
    ``reset()`` forgets it (at the start of a new pass over the streams)."""

    def __init__(self, lm: RecurrentLM) -> None:
        super().__init__()
        self.lm, self.hidden = lm, None

    def reset(self) -> None:
        self.hidden = None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        (logits, hidden), loss = self.lm(x, y, self.hidden)
        self.hidden = detach_hidden(hidden)  # values go on, the graph stops here
        return logits, loss


@torch.no_grad()
def stream_loss(lm: RecurrentLM, tokens: torch.Tensor, chunk: int = 1024,
                device: torch.device | str | None = None) -> float:
    """The loss on a whole split read as one stream, the state carried all the way:

        L = -(1/(N-1)) sum_{t=1}^{N-1} log p(tokens[t] | tokens[0 : t])

    every one of the N - 1 targets predicted once, each with *all* the text before it (a
    GPT's ``lm_data.split_loss`` sees at most block_size tokens). Nats per token."""
    if tokens.dim() != 1 or len(tokens) < 2:
        raise ValueError(f"tokens must be one stream of >= 2 tokens, got shape "
                         f"{tuple(tokens.shape)}")
    device = device or next(lm.parameters()).device
    data = tokens.to(device).view(1, -1)  # one row: nothing dropped
    total, hidden = 0.0, None
    with evaluating(lm):
        for s in range(0, len(tokens) - 1, chunk):
            x, y = data[:, s:s + chunk], data[:, s + 1:s + chunk + 1]
            x = x[:, :y.shape[1]]
            (_, hidden), loss = lm(x, y, hidden)
            total += float(loss) * y.numel()
    return total / (len(tokens) - 1)


@torch.no_grad()
def sample_recurrent(lm: RecurrentLM, prompt: torch.Tensor, max_new_tokens: int, *,
                     temperature: float = 1.0, top_k: int | None = None,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """Extend ``prompt`` (B, T) by ``max_new_tokens`` sampled tokens, carrying the state: the
    prompt is read once, then each new token costs one step (no context window to crop)."""
    if prompt.dim() != 2 or prompt.shape[1] == 0:
        raise ValueError(f"prompt must be (batch, time) with time >= 1, got {tuple(prompt.shape)}")
    out = [prompt]
    with evaluating(lm):
        (logits, hidden), _ = lm(prompt)  # (B, T, V)
        for _ in range(max_new_tokens):
            next_id = sample_next(logits[:, -1], temperature=temperature, top_k=top_k,
                                  generator=generator).to(prompt.device)  # (B, 1)
            out.append(next_id)
            (logits, hidden), _ = lm(next_id, None, hidden)  # one step from the carried state
    return torch.cat(out, dim=1)


def steps_in_budget(model: nn.Module, next_batch: Callable[[], Batch], cfg: TrainConfig,
                    seconds: float, probe_steps: int = 10,
                    clock: Callable[[], float] = time.perf_counter,
                    optimizer: Callable[[nn.Module], torch.optim.Optimizer] | None = None) -> int:
    """How many training steps of ``cfg`` fit in ``seconds`` of ``clock``: time
    ``probe_steps`` steps of the course's loop (after two untimed ones) on a throw-away copy
    of ``model``, so two models can be given the same time budget with a learning-rate
    schedule that ends on time. A step's time is the *median* of the probe's steps, so a burst
    of another program during one or two of them does not shrink the budget.
    ``clock=time.process_time`` measures CPU time, which other programs do not inflate.
    ``optimizer(copy)`` builds the run's optimizer (default: the loop's AdamW), so a costlier
    step such as Muon's is what gets timed."""
    if seconds <= 0 or probe_steps < 1:
        raise ValueError(f"need seconds > 0 and probe_steps >= 1, got {seconds}, {probe_steps}")
    marks: list[float] = []

    def mark(kind: str, state: TrainState) -> None:  # the clock after steps 2, 3, ..., last
        if kind == "step" and 2 <= state.step <= probe_steps + 2:
            marks.append(clock())

    probe_cfg = replace(cfg, max_steps=probe_steps + 2, warmup_steps=0, log_interval=1,
                        eval_interval=probe_steps + 2, progress=False)
    twin = copy.deepcopy(model)
    train(twin, next_batch, probe_cfg, callbacks=[mark],
          optimizer=optimizer(twin) if optimizer else None)
    per_step = statistics.median(b - a for a, b in itertools.pairwise(marks))
    return max(1, int(seconds / per_step))
