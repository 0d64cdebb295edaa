"""Distributed data parallel on the CPU: two processes (gloo, 127.0.0.1) train one model.

Each rank starts from a *different* random initialisation and reads *different* batches;
after training, the ranks' parameters are still identical (DDP broadcast rank 0's weights
and averaged every gradient), the loss fell, and only rank 0 wrote the log and checkpoint.
"""

import json
import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from slm_course.cli.runs import train_lm
from slm_course.gpt import GPT, GPTConfig
from slm_course.helpers.checkpoints import CHECKPOINT_NAME, load_checkpoint
from slm_course.helpers.run_log import LOG_NAME
from slm_course.lm_data import LMData
from slm_course.tokenizers import CharTokenizer
from slm_course.train import TrainConfig

TEXT = "".join(f"{w} " for i in range(300) for w in ("to be", "or not", "that is", str(i % 5)))
WORLD = 2
STEPS = 16


class RecordingData:
    """LMData that remembers the first training batch this process drew."""

    def __init__(self, data: LMData):
        self.data, self.tokenizer, self.first = data, data.tokenizer, None

    def get_batch(self, split, *args, **kwargs):
        batch = self.data.get_batch(split, *args, **kwargs)
        if split == "train" and self.first is None:
            self.first = batch[0].clone()
        return batch

    def fixed_batches(self, *args, **kwargs):
        return self.data.fixed_batches(*args, **kwargs)


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    data = RecordingData(LMData.from_text(TEXT, CharTokenizer.from_text(TEXT)))
    torch.manual_seed(100 + rank)  # different initial weights on each rank
    model = GPT(GPTConfig(vocab_size=data.data.vocab_size, block_size=16, n_layer=1,
                          n_head=2, n_embd=16, dropout=0.1))
    cfg = TrainConfig(dataset="unused", batch_size=4, max_steps=STEPS, lr=1e-2, min_lr=1e-3,
                      warmup_steps=2, eval_interval=8, eval_batches=2, log_interval=4,
                      device="cpu", progress=False)
    result = train_lm(model, data, cfg, out_dir=os.path.join(out, "run"))
    torch.save({"state": model.state_dict(), "history": result.history,
                "first_batch": data.first, "world_size": result.extra["world_size"]},
               os.path.join(out, f"rank{rank}.pt"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_cpu_processes_stay_in_sync_and_learn(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    assert all(r["world_size"] == WORLD for r in ranks)
    assert not torch.equal(ranks[0]["first_batch"], ranks[1]["first_batch"]), \
        "each rank must read its own random batches"
    for name, p0 in ranks[0]["state"].items():
        assert torch.equal(p0, ranks[1]["state"][name]), f"{name} differs between ranks"
    history = ranks[0]["history"]
    assert history[-1]["val_loss"] < 0.8 * history[0]["val_loss"]
    # rank 0 alone logs and checkpoints: every step appears once in the log
    log = [json.loads(line) for line in (tmp_path / "run" / LOG_NAME).read_text().splitlines()]
    steps = [e["step"] for e in log if e["kind"] == "step"]
    assert steps == sorted(set(steps)) == list(range(4, STEPS + 1, 4))
    ckpt = load_checkpoint(tmp_path / "run" / CHECKPOINT_NAME)
    assert ckpt["step"] == STEPS and len(ckpt["rng"]) == WORLD  # both data streams saved
    assert not torch.equal(ckpt["rng"][0]["data"], ckpt["rng"][1]["data"])
    assert all(torch.equal(ckpt["model"][k], v) for k, v in ranks[0]["state"].items())
