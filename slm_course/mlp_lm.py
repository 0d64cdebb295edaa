"""Neural language models of names: the bigram as a one-layer network, then Bengio's MLP.

The counting bigram of ``slm_course.ngram`` is also a neural network with one weight matrix
W (V, V): a one-hot row times W picks the row W[a], and a softmax turns it into P(b | a),

    logits = onehot(a) W = W[a],     P(b | a) = softmax(W[a])_b,     L = -mean log P(y | x)

Trained by gradient descent it reaches the counting model's loss, since W = log N (up to a
constant per row) is its optimum. A penalty reg * mean(W^2) pulls every logit towards 0, the
uniform distribution, which is what add-k smoothing does to the counts.

The MLP language model of Bengio et al. (2003) looks at the last T characters: each id
becomes a learned embedding (a row of C), the T embeddings are concatenated, and one tanh
hidden layer and a linear output give the logits of the next character,

    e = concat(C[x_1], ..., C[x_T])   (B, T E)
    h = tanh(e W1 + b1)               (B, H)
    logits = h W2 + b2                (B, V)

Stage 08: text as data (the counting models are in ``slm_course.ngram``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from slm_course.generate import sample_next
from slm_course.helpers.eval_mode import evaluating
from slm_course.ngram import NAME_BOUNDARY
from slm_course.tokenizers import CharTokenizer


def makemore_split(names: Sequence[str], seed: int = 42
                   ) -> tuple[list[str], list[str], list[str]]:
    """makemore's 80/10/10 split: shuffle with ``random.seed(seed)``, then cut at 80% and 90%."""
    names = list(names)
    random.Random(seed).shuffle(names)
    n1, n2 = int(0.8 * len(names)), int(0.9 * len(names))
    return names[:n1], names[n1:n2], names[n2:]


def context_windows(names: Sequence[str], tokenizer: CharTokenizer, block_size: int = 3
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Every (last ``block_size`` ids, next id) of every name, the context padded with '.':
    "emma", T = 3: ... -> e, ..e -> m, .em -> m, emm -> a, mma -> '.'. X (N, T), Y (N,)."""
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    xs, ys = [], []
    for name in names:
        context = [0] * block_size  # id 0 is the boundary '.'
        for i in tokenizer.encode(name + NAME_BOUNDARY):
            xs.append(context)
            ys.append(i)
            context = context[1:] + [i]
    return torch.tensor(xs, dtype=torch.long).view(-1, block_size), torch.tensor(ys)


class NeuralBigram(nn.Module):
    """P(b | a) = softmax(onehot(a) W): the bigram model as a one-layer network."""

    def __init__(self, vocab_size: int, reg: float = 0.0):
        super().__init__()
        if reg < 0:
            raise ValueError(f"reg must be >= 0, got {reg}")
        self.vocab_size, self.reg = vocab_size, reg
        self.W = nn.Parameter(torch.zeros(vocab_size, vocab_size))  # zeros: uniform at first

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B,) previous ids -> logits (B, V); the loss adds reg * mean(W^2)."""
        logits = F.one_hot(x, self.vocab_size).float() @ self.W  # (B, V) = the rows W[x]
        if y is None:
            return logits, None
        return logits, F.cross_entropy(logits, y) + self.reg * (self.W ** 2).mean()


class MLPLanguageModel(nn.Module):
    """Bengio et al. (2003): embeddings of the last ``block_size`` ids -> tanh layer -> logits."""

    def __init__(self, vocab_size: int, block_size: int = 3, n_embd: int = 10,
                 n_hidden: int = 200):
        super().__init__()
        for name, value in [("vocab_size", vocab_size), ("block_size", block_size),
                            ("n_embd", n_embd), ("n_hidden", n_hidden)]:
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.vocab_size, self.block_size = vocab_size, block_size
        self.wte = nn.Embedding(vocab_size, n_embd)  # C: one learned vector per character
        self.hidden = nn.Linear(block_size * n_embd, n_hidden)
        self.out = nn.Linear(n_hidden, vocab_size)
        with torch.no_grad():  # small output weights: the first loss is about ln V, not huge
            self.out.weight.mul_(0.1)
            self.out.bias.zero_()

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T) ids -> logits (B, V), and the cross-entropy with y (B,) if given."""
        if x.dim() != 2 or x.shape[1] != self.block_size:
            raise ValueError(f"x must be (batch, block_size={self.block_size}) ids, got shape "
                             f"{tuple(x.shape)}")
        e = self.wte(x).flatten(1)  # (B, T, E) -> (B, T E): the embeddings side by side
        h = torch.tanh(self.hidden(e))  # (B, H)
        logits = self.out(h)  # (B, V)
        return logits, None if y is None else F.cross_entropy(logits, y)


@torch.no_grad()
def sample_name(model: MLPLanguageModel, tokenizer: CharTokenizer,
                generator: torch.Generator | None = None, max_len: int = 50) -> str:
    """Start from a context of '.', draw the next character until '.' comes back."""
    context = [0] * model.block_size
    out: list[int] = []
    with evaluating(model):
        while len(out) < max_len:
            logits, _ = model(torch.tensor([context]))  # (1, V)
            i = int(sample_next(logits, generator=generator))
            if i == 0:
                break
            out.append(i)
            context = context[1:] + [i]
    return tokenizer.decode(out)
