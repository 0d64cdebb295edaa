"""A recurrent network from scratch, and a name classifier built on it (or on ``nn.GRU``).

An Elman RNN reads a sequence one step at a time and keeps a hidden state h_t (PyTorch's
``nn.RNN`` with tanh, whose parameter names and initialisation this module copies):

    h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),      h_0 = 0
    x_t: (B, I),  h_t: (B, H),  W_ih: (H, I),  W_hh: (H, H),  b_ih, b_hh: (H,)

Backpropagation through time (BPTT) is the chain rule on the unrolled loop: the same
weights act at every step, so their gradient is a sum over steps, and the gradient reaching
h_{t-1} is W_hh^T [(1 - h_t^2) * dL/dh_t], a product of one such factor per step back (it
vanishes or explodes over long spans). Autograd derives it from :func:`rnn_forward`'s loop.

Names have different lengths, so a batch is padded to its longest name; ``lengths`` says
where each name ends. :func:`rnn_forward` masks: after its last character a name's hidden
state is carried unchanged, so h_T is the state after the last real character, the same
that ``nn.utils.rnn.pack_padded_sequence`` gives ``nn.RNN`` and ``nn.GRU``.
``tests/test_rnn.py`` proves outputs and gradients equal to ``nn.RNN``'s.

:class:`NameClassifier` embeds each character, runs a recurrent layer (from scratch,
``nn.RNN`` or ``nn.GRU``) and classifies the last hidden state; it returns ``(logits,
loss)`` for the shared training loop. :func:`predict_language` gives the top-k languages.

Stage 10: RNN text classification.
"""

from __future__ import annotations

import math
import unicodedata
import warnings
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

PAD, UNK = "<pad>", "<unk>"  # ids 0 and 1 of every character vocabulary
CELLS = ("scratch", "rnn", "gru")

# ---------------------------------------------------------------------------------------
# The RNN from scratch
# ---------------------------------------------------------------------------------------


def rnn_cell(x: torch.Tensor, h: torch.Tensor, W_ih: torch.Tensor, W_hh: torch.Tensor,
             b_ih: torch.Tensor, b_hh: torch.Tensor) -> torch.Tensor:
    """One step: h_new = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh).  x (B, I), h (B, H)."""
    return torch.tanh(x @ W_ih.T + b_ih + h @ W_hh.T + b_hh)  # (B, H)


def rnn_forward(x: torch.Tensor, W_ih: torch.Tensor, W_hh: torch.Tensor, b_ih: torch.Tensor,
                b_hh: torch.Tensor, h0: torch.Tensor | None = None,
                lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Unroll :func:`rnn_cell` over time: x (B, T, I) -> (outputs (B, T, H), h_last (B, H)).

    With ``lengths`` (B,), step t updates only the names longer than t; the others keep
    their state and output 0 there, as ``nn.RNN`` on a packed sequence does.
    """
    B, T, _ = _check_rnn_input(x, W_ih, lengths)
    h = x.new_zeros(B, W_hh.shape[0]) if h0 is None else h0  # (B, H)
    outputs = []
    for t in range(T):
        h_new = rnn_cell(x[:, t], h, W_ih, W_hh, b_ih, b_hh)  # (B, H)
        if lengths is None:
            h = h_new
            outputs.append(h)
        else:
            live = (lengths > t).unsqueeze(1).to(x.dtype)  # (B, 1): 1 where step t is real
            h = live * h_new + (1 - live) * h
            outputs.append(live * h_new)
    return torch.stack(outputs, dim=1), h  # (B, T, H), (B, H)


class ScratchRNN(nn.Module):
    """:func:`rnn_forward` as a layer with ``nn.RNN``'s parameters, names, initialisation
    (uniform in +-1/sqrt(H)) and batch-first interface, so the two can swap weights."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.weight_ih_l0 = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_hh_l0 = nn.Parameter(torch.empty(hidden_size, hidden_size))
        self.bias_ih_l0 = nn.Parameter(torch.empty(hidden_size))
        self.bias_hh_l0 = nn.Parameter(torch.empty(hidden_size))
        bound = 1 / math.sqrt(hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None,
                h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, I) -> (outputs (B, T, H), h_n (1, B, H)), h0 (1, B, H) as nn.RNN's."""
        outputs, h = rnn_forward(x, self.weight_ih_l0, self.weight_hh_l0, self.bias_ih_l0,
                                 self.bias_hh_l0, None if h0 is None else h0[0], lengths)
        return outputs, h.unsqueeze(0)


# ---------------------------------------------------------------------------------------
# Characters to ids
# ---------------------------------------------------------------------------------------


def build_char_vocab(names: Sequence[str]) -> dict[str, int]:
    """{<pad>: 0, <unk>: 1, then every character of ``names`` (NFC-normalised), sorted}."""
    chars = sorted({c for name in names for c in unicodedata.normalize("NFC", name)})
    return {PAD: 0, UNK: 1, **{c: i + 2 for i, c in enumerate(chars)}}


def encode_names(names: Sequence[str], vocab: dict[str, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Names -> (ids (N, T_max) padded with 0, lengths (N,)); an unknown character -> <unk>."""
    if not names or any(not isinstance(n, str) or not n for n in names):
        raise ValueError("encode_names needs a non-empty list of non-empty strings")
    rows = [[vocab.get(c, vocab[UNK]) for c in unicodedata.normalize("NFC", n)] for n in names]
    lengths = torch.tensor([len(r) for r in rows])
    ids = torch.zeros(len(rows), int(lengths.max()), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
    return ids, lengths


# ---------------------------------------------------------------------------------------
# The classifier
# ---------------------------------------------------------------------------------------


class NameClassifier(nn.Module):
    """Characters -> embedding (E) -> recurrent layer (H) -> last state -> linear -> logits.

    ``cell``: "scratch" (:class:`ScratchRNN`, masked), "rnn" (``nn.RNN``) or "gru"
    (``nn.GRU``), both on packed sequences; ``bidirectional`` (built-in cells only) adds a
    second layer that reads the name backwards, and the head reads both last states.
    ``class_weights`` (C,) weighs the loss.
    The model keeps its ``vocab`` and ``languages``, so :func:`predict_language` needs
    nothing else.
    """

    def __init__(self, vocab: dict[str, int], languages: Sequence[str], cell: str = "gru",
                 embed_dim: int = 32, hidden_size: int = 128, dropout: float = 0.0,
                 class_weights: torch.Tensor | None = None, bidirectional: bool = False
                 ) -> None:
        super().__init__()
        if cell not in CELLS or (bidirectional and cell == "scratch"):
            raise ValueError(f"cell must be one of {CELLS} (bidirectional: rnn or gru), got "
                             f"{cell!r}")
        self.vocab, self.languages, self.cell = dict(vocab), list(languages), cell
        self.embed = nn.Embedding(len(vocab), embed_dim, padding_idx=0)
        self.rnn = (ScratchRNN(embed_dim, hidden_size) if cell == "scratch" else
                    {"rnn": nn.RNN, "gru": nn.GRU}[cell](embed_dim, hidden_size, batch_first=True,
                                                         bidirectional=bidirectional))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), len(self.languages))
        self.register_buffer("class_weights", class_weights, persistent=False)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor, y: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """ids (B, T) padded, lengths (B,), y (B,) -> (logits (B, C), loss or None)."""
        ids = ids[:, :int(lengths.max())]  # a batch of short names needs fewer steps
        x = self.embed(ids)  # (B, T, E)
        if self.cell == "scratch":
            _, h = self.rnn(x, lengths)  # masked: h is the state after the last character
        else:
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True,
                                                       enforce_sorted=False)
            _, h = self.rnn(packed)  # (1 or 2, B, H): each direction's state at the name's end
        logits = self.head(self.dropout(torch.cat(list(h), dim=1)))  # (B, H or 2H) -> (B, C)
        if y is None:
            return logits, None
        return logits, F.cross_entropy(logits, y, weight=self.class_weights, ignore_index=-100)


@torch.no_grad()
def name_probabilities(model: NameClassifier, names: Sequence[str], batch_size: int = 1024
                       ) -> torch.Tensor:
    """softmax(model(names)), (N, C) on the CPU, in eval mode and in batches."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    ids, lengths = encode_names(names, model.vocab)
    parts = [F.softmax(model(ids[i:i + batch_size].to(device), lengths[i:i + batch_size])[0],
                       dim=1).cpu() for i in range(0, len(names), batch_size)]
    model.train(was_training)
    return torch.cat(parts)


def predict_language(model: NameClassifier, name: str, k: int = 3) -> list[tuple[str, float]]:
    """The k most likely languages of ``name`` with their probabilities, most likely first.

    Characters the model never saw in training are read as <unk>, with a warning naming them.
    """
    name = unicodedata.normalize("NFC", name.strip()) if isinstance(name, str) else name
    if not isinstance(name, str) or not name:
        raise ValueError(f"predict_language needs a non-empty name, got {name!r}")
    if not 1 <= k <= len(model.languages):
        raise ValueError(f"k must lie in [1, {len(model.languages)}], got {k}")
    unknown = sorted({c for c in name if c not in model.vocab})
    if unknown:
        warnings.warn(f"{name!r}: the model never saw the character(s) {unknown} in training; "
                      f"they are read as {UNK}, so the prediction leans on the others",
                      stacklevel=2)
    top = name_probabilities(model, [name])[0].topk(k)
    return [(model.languages[i], float(p)) for p, i in zip(top.values, top.indices, strict=True)]


def _check_rnn_input(x: torch.Tensor, W_ih: torch.Tensor, lengths: torch.Tensor | None
                     ) -> tuple[int, int, int]:
    if x.ndim != 3:
        raise ValueError(f"x must be a batch of sequences (B, T, I), got shape "
                         f"{tuple(x.shape)}; add a batch axis with x[None]")
    if x.shape[2] != W_ih.shape[1]:
        raise ValueError(f"x has {x.shape[2]} features per step but W_ih expects "
                         f"{W_ih.shape[1]} (W_ih is (H, I))")
    if lengths is not None and (lengths.shape != (x.shape[0],) or lengths.min() < 1
                                or lengths.max() > x.shape[1]):
        raise ValueError(f"lengths must be (B,) = ({x.shape[0]},) with 1 <= length <= T = "
                         f"{x.shape[1]}, got {lengths.tolist()}")
    return x.shape
