"""Byte-level byte-pair encoding (BPE), the tokenizer family of GPT-2.

Text is UTF-8 bytes, so the 256 byte values are the base vocabulary and *any* string can be
encoded. Training repeats one step until the vocabulary is big enough::

    (a, b) = argmax_{pairs} count(a, b)        # most frequent adjacent pair
    new id  = 256 + number of merges so far     # replace every (a, b) by it

Text is first split into chunks (a word with its leading space, a number, punctuation,
whitespace) so that merges never cross a word boundary. Ties are broken by the smaller pair,
which makes training deterministic.

Stages 08 and 14: stage 08 (text as data) trains it from scratch and teaches it (the
merge step, a worked example, compression against vocabulary size); stage 14 uses it.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from slm_course.tokenizers.base import as_token_ids

# A word with an optional leading space, digits, punctuation runs, whitespace; the final
# [\s\S] catches anything else, so the chunks always concatenate back to the text.
CHUNK_PATTERN = r"'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+(?!\S)|\s+|[\s\S]"
_ENCODING = ("utf-8", "surrogatepass")  # round-trips every Python str, even lone surrogates

Pair = tuple[int, int]


def count_pairs(ids: list[int], counts: Counter | None = None, weight: int = 1) -> Counter:
    """Add ``weight`` to ``counts[(a, b)]`` for each adjacent pair in ``ids``."""
    counts = Counter() if counts is None else counts
    for pair in zip(ids, ids[1:], strict=False):
        counts[pair] += weight
    return counts


def merge_pair(ids: list[int], pair: Pair, new_id: int) -> list[int]:
    """Replace every non-overlapping occurrence of ``pair`` (left to right) by ``new_id``."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


class ByteBPETokenizer:
    """A byte-level BPE tokenizer: ``vocab_size = 256 + len(merges)``."""

    kind = "bpe"

    def __init__(self, merges: list[Pair], pattern: str = CHUNK_PATTERN):
        self.merges: dict[Pair, int] = {}
        self.vocab: dict[int, bytes] = {i: bytes([i]) for i in range(256)}
        for rank, (a, b) in enumerate(merges):
            new_id = 256 + rank
            if not (0 <= a < new_id and 0 <= b < new_id):
                raise ValueError(f"merge {rank} ({a}, {b}) refers to an id that does not "
                                 f"exist yet; the merge list is corrupt")
            self.merges[(a, b)] = new_id
            self.vocab[new_id] = self.vocab[a] + self.vocab[b]
        self.pattern = pattern
        self._chunker = re.compile(pattern)
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def train(cls, text: str, vocab_size: int, pattern: str = CHUNK_PATTERN
              ) -> ByteBPETokenizer:
        """Learn ``vocab_size - 256`` merges from ``text``."""
        if not isinstance(vocab_size, int) or vocab_size < 256:
            raise ValueError(f"vocab_size must be an int of at least 256 (the byte alphabet), "
                             f"got {vocab_size!r}")
        chunk_counts = Counter(re.findall(pattern, text))
        words = [list(chunk.encode(*_ENCODING)) for chunk in chunk_counts]  # unique chunks
        freqs = list(chunk_counts.values())
        merges: list[Pair] = []
        counts: Counter = Counter()
        where: dict[Pair, set[int]] = {}  # pair -> indices of the words that contain it
        for w, ids in enumerate(words):
            count_pairs(ids, counts, freqs[w])
            for pair in zip(ids, ids[1:], strict=False):
                where.setdefault(pair, set()).add(w)
        for new_id in range(256, vocab_size):
            if not counts:
                break  # nothing left to merge: the text is tiny
            best = min(counts, key=lambda p: (-counts[p], p))  # most frequent, then smallest
            merges.append(best)
            # Only the words that contain the pair change: update their counts in place.
            for w in where.pop(best):
                old, words[w] = words[w], merge_pair(words[w], best, new_id)
                for pair in zip(old, old[1:], strict=False):
                    counts[pair] -= freqs[w]
                    if counts[pair] <= 0:
                        del counts[pair]
                count_pairs(words[w], counts, freqs[w])
                for pair in zip(words[w], words[w][1:], strict=False):
                    where.setdefault(pair, set()).add(w)
        return cls(merges, pattern)

    @property
    def vocab_size(self) -> int:
        return 256 + len(self.merges)

    def _encode_chunk(self, chunk: str) -> list[int]:
        ids = list(chunk.encode(*_ENCODING))
        while len(ids) > 1:
            # apply the earliest-learned merge first, exactly as in training
            pair = min(zip(ids, ids[1:], strict=False),
                       key=lambda p: self.merges.get(p, float("inf")))
            if pair not in self.merges:
                break
            ids = merge_pair(ids, pair, self.merges[pair])
        return ids

    def encode(self, text: str) -> list[int]:
        out: list[int] = []
        for chunk in self._chunker.findall(text):
            ids = self._cache.get(chunk)
            if ids is None:
                ids = self._encode_chunk(chunk)
                if len(self._cache) < 100_000:
                    self._cache[chunk] = ids
            out.extend(ids)
        return out

    def decode(self, ids: list[int]) -> str:
        data = b"".join(self.vocab[i] for i in as_token_ids(ids, self.vocab_size))
        # A slice of ids may end inside a multi-byte character: show U+FFFD, never crash.
        try:
            return data.decode(*_ENCODING)
        except UnicodeDecodeError:
            return data.decode("utf-8", errors="replace")

    def token_strings(self, ids: list[int]) -> list[str]:
        """Each token as readable text (bytes that are not valid UTF-8 shown escaped)."""
        return [self.vocab[i].decode("utf-8", errors="backslashreplace")
                for i in as_token_ids(ids, self.vocab_size)]

    def to_dict(self) -> dict[str, Any]:
        ordered = sorted(self.merges.items(), key=lambda kv: kv[1])
        return {"kind": self.kind, "pattern": self.pattern,
                "merges": [list(pair) for pair, _ in ordered]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ByteBPETokenizer:
        if data.get("kind") != cls.kind:
            raise ValueError(f"not a byte-level BPE tokenizer: kind={data.get('kind')!r}")
        try:
            merges = [(int(a), int(b)) for a, b in data["merges"]]
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"corrupt BPE tokenizer data: {err}") from None
        return cls(merges, data.get("pattern", CHUNK_PATTERN))

    def __repr__(self) -> str:
        return f"ByteBPETokenizer(vocab_size={self.vocab_size})"
