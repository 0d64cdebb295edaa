"""Generation speed with and without the KV cache, side by side, and the cache's memory.

    python benchmarks/kv_cache.py                           # shakespeare-char-cpu, context 512
    python benchmarks/kv_cache.py --new-tokens 512 --threads 1 --repeats 3

The model has the shape of the ``shakespeare-char-cpu`` preset (4 layers x 128 wide, 4
heads, 65 characters) with a context of ``--block-size`` 512; its weights are random (speed
does not depend on them). For each setting it generates ``--new-tokens`` tokens greedily from
a one-token prompt, timing every token, with the cache and without (the cached and uncached
tokens are checked equal), alternating the two ``--repeats`` times and keeping the fastest
run of each. It prints tokens/s over the first n tokens for several n, and the cache's
memory: computed 2 * n_layer * B * T * C * bytes, the bytes of the cache's tensors, and the
growth of the process's resident memory while a batch of ``--memory-batch`` fills it.

Not a test: the numbers depend on the machine and on whatever else it is running.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch

from slm_course.cli.presets import get_preset
from slm_course.generate import generate_stream
from slm_course.gpt import GPT, GPTConfig
from slm_course.transformer import KVCache


def time_per_token(model: GPT, new_tokens: int, use_cache: bool) -> tuple[list[float], list[int]]:
    """Seconds each new token took (from the call that produced it), and the tokens."""
    prompt = torch.zeros(1, 1, dtype=torch.long)
    times, tokens = [], []
    start = time.perf_counter()
    for next_id in generate_stream(model, prompt, new_tokens, temperature=0,
                                   use_cache=use_cache):
        now = time.perf_counter()
        times.append(now - start)
        tokens.append(int(next_id))
        start = now
    return times, tokens


def rss_bytes() -> int:
    """The resident memory of this process now (Linux: /proc/self/statm)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cache_memory(model: GPT, batch: int) -> dict[str, float]:
    """The cache of a full context for ``batch`` sequences: computed, tensor bytes, RSS."""
    c = model.config
    computed = 2 * c.n_layer * batch * c.block_size * c.n_embd * 4  # float32
    before = rss_bytes()
    cache = KVCache(c.block_size)
    with torch.no_grad():
        model(torch.zeros(batch, 1, dtype=torch.long), cache=cache)  # allocates every layer
        for buf in cache.keys + cache.values:
            buf.fill_(1.0)  # touch every page, so that RSS counts it
    grown = rss_bytes() - before
    return {"batch": batch, "computed": computed, "tensors": cache.nbytes(), "rss_growth": grown}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--block-size", type=int, default=512)
    parser.add_argument("--new-tokens", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--memory-batch", type=int, default=64)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shape = {**get_preset("shakespeare-char-cpu").model, "block_size": args.block_size}
    model = GPT(GPTConfig(vocab_size=65, **shape)).eval()

    best: dict[bool, list[float]] = {}
    tokens: dict[bool, list[int]] = {}
    for _ in range(args.repeats):
        for use_cache in (True, False):
            times, toks = time_per_token(model, args.new_tokens, use_cache)
            if use_cache not in best or sum(times) < sum(best[use_cache]):
                best[use_cache] = times
            tokens[use_cache] = toks
    same = tokens[True] == tokens[False]

    load = os.getloadavg()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, load average "
          f"{load[0]:.1f} {load[1]:.1f} {load[2]:.1f}; torch {torch.__version__}, "
          f"{args.threads} thread(s)")
    print(f"model: {shape} (vocab 65), {model.num_params(False):,} parameters; prompt 1 "
          f"token, greedy; cached and uncached tokens identical: {same}")
    lengths = [n for n in (32, 64, 128, 256, 512, 1024) if n <= args.new_tokens]
    if args.new_tokens not in lengths:
        lengths.append(args.new_tokens)
    print("\n| new tokens | cached tokens/s | uncached tokens/s | speed-up |")
    print("|---:|---:|---:|---:|")
    rows = []
    for n in lengths:
        cached, plain = n / sum(best[True][:n]), n / sum(best[False][:n])
        rows.append({"new_tokens": n, "cached": cached, "uncached": plain})
        print(f"| {n} | {cached:,.0f} | {plain:,.0f} | {cached / plain:.1f}x |")
    last = slice(max(0, args.new_tokens - 32), args.new_tokens)
    per_token = {k: 1e3 * sum(v[last]) / len(v[last]) for k, v in best.items()}
    print(f"\ntime per token near the end (last 32): cached {per_token[True]:.2f} ms, "
          f"uncached {per_token[False]:.2f} ms")
    mem1 = cache_memory(model, 1)
    memb = cache_memory(model, args.memory_batch)
    for m in (mem1, memb):
        print(f"cache memory, batch {m['batch']}, {args.block_size} positions: computed "
              f"{m['computed'] / 2**20:.2f} MiB, tensors {m['tensors'] / 2**20:.2f} MiB, "
              f"process RSS grew {m['rss_growth'] / 2**20:.2f} MiB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "same_tokens": same, "per_token_ms": per_token,
                       "memory": [mem1, memb], "load": load, "threads": args.threads,
                       "times": {"cached": best[True], "uncached": best[False]}}, f)
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
