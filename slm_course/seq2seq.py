"""Sequence to sequence with GRUs, without and with (Bahdanau) attention.

An encoder reads the source x_1..x_S into states h_1..h_S; a decoder writes the target one
token at a time, each step fed a context vector c_t:

    without attention:  c_t = [h_S(forward); h_1(backward)]        the same for every t
    with attention:     e_tj = v^T tanh(W s_{t-1} + U h_j)           (Bahdanau et al., 2015)
                        a_t = softmax_j(e_tj),  c_t = sum_j a_tj h_j  a fresh look every step

The synthetic task comes from :func:`make_digit_batch`: random digit strings to reverse (or
sort, or copy), so the right alignment is known (reversal: the anti-diagonal).

Every model of the course returns ``(logits, loss)`` from ``forward`` (loss None without
targets), and every target position that should not count holds :data:`IGNORE_INDEX`, the
one ignore index that :func:`sequence_loss`, the transformer of stage 13 and the GPT of
stage 14 share.

Stage 12: attention and seq2seq.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from slm_course.attention import padding_mask
from slm_course.helpers.eval_mode import evaluating
from slm_course.train import TrainConfig, train

# The vocabulary: three special tokens, then the ten digits.
PAD, SOS, EOS = 0, 1, 2
DIGIT0 = 3  # token id of the digit 0; digit d is token DIGIT0 + d
VOCAB_SIZE = DIGIT0 + 10
IGNORE_INDEX = -100  # a target that the loss skips (F.cross_entropy's default ignore_index)
TASKS: dict[str, Callable[[list[int]], list[int]]] = {
    "reverse": lambda digits: digits[::-1],
    "sort": sorted,
    "copy": list,
}


@dataclass
class DigitBatch:
    """A padded batch of (source, target) token sequences.

    src:         (B, S) source digit tokens, PAD after ``src_lengths[b]``
    src_lengths: (B,)   number of real source tokens
    tgt_in:      (B, T) decoder input  = [SOS, y_1, ..., y_L], PAD after   (T = S + 1)
    tgt_out:     (B, T) decoder target = [y_1, ..., y_L, EOS], IGNORE_INDEX after
    """

    src: torch.Tensor
    src_lengths: torch.Tensor
    tgt_in: torch.Tensor
    tgt_out: torch.Tensor

    def __iter__(self) -> Iterator[torch.Tensor]:
        """src, src_lengths, tgt_in, tgt_out: so ``_, loss = model(*batch)`` trains."""
        return iter((self.src, self.src_lengths, self.tgt_in, self.tgt_out))

    def to(self, device: torch.device | str) -> DigitBatch:
        return DigitBatch(*(t.to(device) for t in self))


def make_digit_batch(batch_size: int, min_len: int, max_len: int, *, task: str = "reverse",
                     generator: torch.Generator | int | None = None) -> DigitBatch:
    """Draw ``batch_size`` random digit strings and their targets under ``task``.

    Each length is uniform in [min_len, max_len], each digit uniform in 0..9; the target is
    ``TASKS[task](digits)`` (reverse: y_i = x_{L+1-i}). ``generator`` is a
    ``torch.Generator`` or an int seed: the same seed always gives the same batch.
    """
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {sorted(TASKS)}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got min_len={min_len}, "
                         f"max_len={max_len}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if generator is None or isinstance(generator, int):
        seed = generator
        generator = torch.Generator()
        if seed is None:
            generator.seed()
        else:
            generator.manual_seed(seed)
    lengths = torch.randint(min_len, max_len + 1, (batch_size,), generator=generator)
    digits = torch.randint(0, 10, (batch_size, max_len), generator=generator)
    src = torch.full((batch_size, max_len), PAD, dtype=torch.long)
    tgt_in = torch.full((batch_size, max_len + 1), PAD, dtype=torch.long)
    tgt_out = torch.full((batch_size, max_len + 1), IGNORE_INDEX, dtype=torch.long)
    for b, length in enumerate(lengths.tolist()):
        x = digits[b, :length].tolist()
        y = TASKS[task](x)
        src[b, :length] = torch.tensor(x) + DIGIT0
        tgt_in[b, 0] = SOS
        tgt_in[b, 1:length + 1] = torch.tensor(y) + DIGIT0
        tgt_out[b, :length] = torch.tensor(y) + DIGIT0
        tgt_out[b, length] = EOS
    # Trim the columns nobody uses (when no sequence reached max_len).
    longest = int(lengths.max())
    return DigitBatch(src[:, :longest], lengths, tgt_in[:, :longest + 1],
                      tgt_out[:, :longest + 1])


def digits_to_string(tokens: torch.Tensor) -> str:
    """'3 1 4' style text for a 1-D tensor of tokens; stops at EOS, skips PAD, SOS and
    IGNORE_INDEX."""
    out = []
    for t in tokens.tolist():
        if t == EOS:
            break
        if t >= DIGIT0:
            out.append(str(t - DIGIT0))
    return "".join(out)


class Encoder(nn.Module):
    """Embed the source and read it both ways with a GRU.

    h_j = [GRU_fwd(x_1..x_j) ; GRU_bwd(x_j..x_L)]: the state at j knows the tokens on both
    sides of it. Padding is skipped with packed sequences, so it never changes the states.
    """

    def __init__(self, vocab_size: int, emb_dim: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, emb_dim, padding_idx=PAD)
        self.rnn = nn.GRU(emb_dim, hidden, batch_first=True, bidirectional=True)

    def forward(self, src: torch.Tensor, lengths: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the states (B, S, 2H) (zero at padding) and the summary (B, 2H)."""
        x = self.embed(src)  # (B, S, E)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, h_n = self.rnn(packed)  # h_n: (2, B, H) = last forward state, first backward state
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=src.shape[1])
        summary = torch.cat([h_n[0], h_n[1]], dim=-1)  # (B, 2H)
        return states, summary


class AdditiveAttention(nn.Module):
    """Bahdanau attention: e_j = v^T tanh(W s + U h_j), a = softmax(e), c = sum_j a_j h_j.

    The keys U h_j do not depend on the decoder step, so :meth:`project_keys` computes them
    once per source sentence.
    """

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int) -> None:
        super().__init__()
        self.W = nn.Linear(query_dim, attn_dim, bias=False)
        self.U = nn.Linear(key_dim, attn_dim)
        self.v = nn.Linear(attn_dim, 1, bias=False)

    def project_keys(self, states: torch.Tensor) -> torch.Tensor:
        """U h_j for every source position: (B, S, K) -> (B, S, A)."""
        return self.U(states)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, states: torch.Tensor,
                mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """query s (B, Q), keys U h (B, S, A), states h (B, S, K), mask (B, S) True = real.

        Returns the context c (B, K) and the weights a (B, S), zero at padding.
        """
        scores = self.v(torch.tanh(self.W(query)[:, None, :] + keys)).squeeze(-1)  # (B, S)
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1)  # (B, S)
        context = torch.bmm(weights[:, None, :], states).squeeze(1)  # (B, K)
        return context, weights


class Seq2Seq(nn.Module):
    """A GRU encoder-decoder; ``attention=False`` squeezes the source through one vector.

    Decoder step t:  c_t = context (fixed summary, or attention with query s_{t-1})
                     s_t = GRUCell([embed(y_{t-1}); c_t], s_{t-1})
                     p(y_t | ...) = softmax(W_o [s_t; c_t])
    The first decoder state is s_0 = tanh(W_b [h_S(fwd); h_1(bwd)]).
    """

    def __init__(self, vocab_size: int = VOCAB_SIZE, emb_dim: int = 32, hidden: int = 64,
                 attention: bool = True) -> None:
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("emb_dim", emb_dim),
                            ("hidden", hidden)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if vocab_size <= DIGIT0:
            raise ValueError(f"vocab_size={vocab_size} leaves no room for tokens after the "
                             f"{DIGIT0} special ones; use VOCAB_SIZE={VOCAB_SIZE}")
        self.vocab_size = vocab_size
        self.encoder = Encoder(vocab_size, emb_dim, hidden)
        self.bridge = nn.Linear(2 * hidden, hidden)
        self.embed = nn.Embedding(vocab_size, emb_dim, padding_idx=PAD)
        self.attention = AdditiveAttention(hidden, 2 * hidden, hidden) if attention else None
        self.cell = nn.GRUCell(emb_dim + 2 * hidden, hidden)
        self.out = nn.Linear(hidden + 2 * hidden, vocab_size)

    def _start(self, src: torch.Tensor, src_lengths: torch.Tensor) -> dict[str, torch.Tensor]:
        if src.ndim != 2 or src_lengths.shape != (src.shape[0],):
            raise ValueError(f"expected src (B, S) and src_lengths (B,), got "
                             f"{tuple(src.shape)} and {tuple(src_lengths.shape)}")
        if int(src_lengths.min()) < 1 or int(src_lengths.max()) > src.shape[1]:
            raise ValueError(f"every source length must be in 1..{src.shape[1]}, got "
                             f"{src_lengths.tolist()}")
        states, summary = self.encoder(src, src_lengths)  # (B, S, 2H), (B, 2H)
        memory = {"states": states, "summary": summary,
                  "mask": padding_mask(src_lengths, src.shape[1]).to(src.device),
                  "s": torch.tanh(self.bridge(summary))}  # s_0: (B, H)
        if self.attention is not None:
            memory["keys"] = self.attention.project_keys(states)  # (B, S, H)
        return memory

    def _step(self, y_prev: torch.Tensor, memory: dict[str, torch.Tensor]
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One decoder step; updates memory["s"]; returns logits (B, V) and weights (B, S)."""
        s = memory["s"]  # (B, H)
        if self.attention is None:
            context, weights = memory["summary"], None  # (B, 2H): the same at every step
        else:
            context, weights = self.attention(s, memory["keys"], memory["states"],
                                              memory["mask"])
        s = self.cell(torch.cat([self.embed(y_prev), context], dim=-1), s)  # (B, H)
        memory["s"] = s
        return self.out(torch.cat([s, context], dim=-1)), weights

    def forward(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor,
                tgt_out: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher forcing: (logits (B, T, V), loss or None), the loss being
        :func:`sequence_loss` against ``tgt_out`` (B, T) when it is given."""
        logits, _ = self.run(src, src_lengths, tgt_in)
        loss = None if tgt_out is None else sequence_loss(logits, tgt_out)
        return logits, loss

    def run(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt_in: torch.Tensor
            ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher forcing: logits (B, T, V) for every target position given the true
        previous tokens, and the attention weights (B, T, S) (None without attention)."""
        memory = self._start(src, src_lengths)
        logits, weights = [], []
        for t in range(tgt_in.shape[1]):
            step_logits, step_weights = self._step(tgt_in[:, t], memory)
            logits.append(step_logits)
            weights.append(step_weights)
        stacked = None if self.attention is None else torch.stack(weights, dim=1)
        return torch.stack(logits, dim=1), stacked

    @torch.no_grad()
    def greedy_decode(self, src: torch.Tensor, src_lengths: torch.Tensor, steps: int
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Feed back the most likely token for ``steps`` steps: tokens (B, steps) and the
        attention weights (B, steps, S) (None without attention). Runs in eval mode and
        leaves the model in the mode it was in."""
        y = torch.full((src.shape[0],), SOS, dtype=torch.long, device=src.device)
        tokens, weights = [], []
        with evaluating(self):
            memory = self._start(src, src_lengths)
            for _ in range(steps):
                logits, step_weights = self._step(y, memory)
                y = logits.argmax(dim=-1)  # (B,)
                tokens.append(y)
                weights.append(step_weights)
        stacked = None if self.attention is None else torch.stack(weights, dim=1)
        return torch.stack(tokens, dim=1), stacked


def sequence_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the positions whose target is not IGNORE_INDEX:

        L = -(1 / N) sum_{(b, t): y_bt != IGNORE_INDEX} log softmax(z_bt)[y_bt]

    logits (B, T, V) and targets (B, T), or any (..., V) and (...). Half-precision logits
    (under autocast) are upcast first: a softmax over many tokens needs float32's digits.
    """
    logits = logits.reshape(-1, logits.shape[-1])  # (N, V)
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    return F.cross_entropy(logits, targets.reshape(-1), ignore_index=IGNORE_INDEX)


def train_seq2seq(model: Seq2Seq, *, steps: int, batch_size: int, min_len: int,
                  max_len: int, task: str = "reverse", lr: float = 3e-3, clip: float = 1.0,
                  seed: int = 0, device: torch.device | str = "cpu",
                  progress: bool = True) -> list[float]:
    """Adam at a constant learning rate with gradient clipping, on fresh random batches,
    through the course's one loop (:func:`slm_course.train.train`); returns the losses."""
    generator = torch.Generator().manual_seed(seed)
    model.to(device)

    def next_batch() -> tuple[torch.Tensor, ...]:  # src, src_lengths, tgt_in, tgt_out
        return tuple(make_digit_batch(batch_size, min_len, max_len, task=task,
                                      generator=generator).to(device))

    cfg = TrainConfig(max_steps=steps, lr=lr, min_lr=lr, warmup_steps=0, grad_clip=clip,
                      eval_interval=steps, log_interval=max(1, steps // 20), progress=progress)
    state = train(model, next_batch, cfg, optimizer=torch.optim.Adam(model.parameters(), lr=lr))
    return state.losses.tolist()


@torch.no_grad()
def accuracy_by_length(model: Seq2Seq, lengths: list[int], *, n: int = 200,
                       task: str = "reverse", seed: int = 1,
                       device: torch.device | str = "cpu") -> dict[str, list[float]]:
    """Greedy-decode ``n`` fresh strings of each length; return per-length accuracies.

    token: the fraction of the L target digits predicted right (position by position);
    exact: the fraction of strings whose whole output (L digits, then EOS) is right.
    """
    model.to(device)
    token, exact = [], []
    for length in lengths:
        batch = make_digit_batch(n, length, length, task=task,
                                 generator=seed * 1000 + length).to(device)
        pred, _ = model.greedy_decode(batch.src, batch.src_lengths, steps=length + 1)
        right = pred == batch.tgt_out  # (n, L + 1): L digits and the EOS
        token.append(right[:, :length].float().mean().item())
        exact.append(right.all(dim=1).float().mean().item())
    return {"length": list(lengths), "token": token, "exact": exact}
