"""The data batching and the training loop: batches are shifted windows of the right split,
the optimiser decays matrices only and follows the schedule, checkpoints are atomic and
checked, and a run stopped at step k and resumed is *bitwise* the run that never stopped."""

import math

import pytest
import torch

from slm_course.cli.runs import load_model, train_lm
from slm_course.gpt import GPT, GPTConfig
from slm_course.helpers.checkpoints import CHECKPOINT_NAME, load_checkpoint
from slm_course.helpers.eval_mode import evaluating
from slm_course.lm_data import LMData, prepare_lm_data, split_loss, split_text
from slm_course.optim import warmup_cosine_lr
from slm_course.tokenizers import CharTokenizer
from slm_course.train import (
    TrainConfig,
    TrainState,
    batches_from,
    estimate_loss,
    param_groups,
    train,
)

TEXT = "".join(f"{w} " for i in range(400) for w in ("to be", "or not", "that is", str(i % 7)))


@pytest.fixture(scope="module")
def data() -> LMData:
    return LMData.from_text(TEXT, CharTokenizer.from_text(TEXT))


def small_model(vocab_size: int, seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    cfg = dict(vocab_size=vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16)
    return GPT(GPTConfig(**{**cfg, **kw}))


def small_cfg(**kw) -> TrainConfig:
    base = dict(dataset="unused", batch_size=4, max_steps=12, lr=3e-3, min_lr=3e-4,
                warmup_steps=3, eval_interval=4, eval_batches=2, log_interval=2, seed=7,
                progress=False, num_threads=1)
    return TrainConfig(**{**base, **kw})


# ----- data ------------------------------------------------------------------------------------

def test_split_is_a_fixed_90_10_cut():
    train_text, val_text = split_text("abcdefghij" * 10)
    assert len(train_text) == 90 and train_text + val_text == "abcdefghij" * 10
    with pytest.raises(ValueError, match="val_fraction"):
        split_text("abc", 0.0)


def test_batches_are_windows_of_the_split_shifted_by_one(data):
    g = torch.Generator().manual_seed(0)
    x, y = data.get_batch("val", 8, 10, g)
    assert x.shape == y.shape == (8, 10) and x.dtype == torch.long
    val = data.val.tolist()
    for row_x, row_y in zip(x.tolist(), y.tolist(), strict=True):
        starts = [i for i in range(len(val) - 10) if val[i:i + 10] == row_x]
        assert starts, "every x row is a window of the validation split"
        assert any(val[i + 1:i + 11] == row_y for i in starts), "y is x shifted by one"


def test_batches_replay_from_the_generator_and_reach_the_last_window():
    data = LMData.from_text("abcdefghijklmnopqrstuvwxyz" * 4, CharTokenizer("abcdefghijklm"
                                                                           "nopqrstuvwxyz"))
    a = data.get_batch("train", 5, 3, torch.Generator().manual_seed(1))
    b = data.get_batch("train", 5, 3, torch.Generator().manual_seed(1))
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    # with block_size = len - 1 there is exactly one window: the whole split
    n = len(data.val)
    x, y = data.get_batch("val", 2, n - 1, torch.Generator().manual_seed(0))
    assert torch.equal(x[0], data.val[:-1]) and torch.equal(y[0], data.val[1:])
    with pytest.raises(ValueError, match="does not fit the val split"):
        data.get_batch("val", 2, n)
    with pytest.raises(ValueError, match="split must be one of"):
        data.get_batch("test", 2, 3)


def test_fixed_batches_are_the_same_every_time(data):
    first = data.fixed_batches("val", 3, 4, 8, seed=5)
    again = data.fixed_batches("val", 3, 4, 8, seed=5)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0][0], first[1][0])


def test_bpe_tokenizer_is_trained_on_the_train_split_only(tmp_path):
    text = "aaaa " * 300 + "zzzz " * 10  # the "zzzz" words are all in the last 10%
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(text, encoding="utf-8")
    tok = prepare_lm_data(str(corpus), "bpe", bpe_vocab_size=260).tokenizer
    assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode("zzzz")) == 4, "no merge was learned from validation text"
    assert len(tok.encode("aaaa")) < 4
    with pytest.raises(ValueError, match="unknown tokenizer"):
        prepare_lm_data(str(corpus), "words")


# ----- the optimiser ---------------------------------------------------------------------------

def test_weight_decay_applies_to_matrices_only():
    model = small_model(10, bias=True)
    decay, no_decay = param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"])
    assert all(p.dim() == 1 for p in no_decay["params"])
    n_group = sum(p.numel() for g in (decay, no_decay) for p in g["params"])
    assert n_group == model.num_params(non_embedding=False), "every parameter exactly once"
    ids = {id(p) for p in decay["params"]}
    assert id(model.lm_head.weight) in ids and id(model.transformer.h[0].ln_1.bias) not in ids


def test_training_follows_the_schedule_and_learns(data):
    cfg = small_cfg(max_steps=40, eval_interval=20, lr=1e-2, min_lr=1e-3)
    result = train_lm(small_model(data.vocab_size), data, cfg)
    expected = [warmup_cosine_lr(s, max_lr=cfg.lr, min_lr=cfg.min_lr,
                                 warmup_steps=cfg.warmup_steps, max_steps=cfg.max_steps)
                for s in range(cfg.max_steps)]
    assert result.lrs == pytest.approx(expected)
    assert result.losses.shape == (40,)
    assert [h["step"] for h in result.history] == [0, 20, 40]
    assert abs(result.history[0]["val_loss"] - math.log(data.vocab_size)) < 0.1
    assert result.final_val_loss < 0.7 * result.history[0]["val_loss"]
    assert result.items_per_second > 0 and result.extra["tokens_per_second"] > 0


def test_gradient_clipping_bounds_the_global_norm(data, monkeypatch):
    """Every step clips: after clip_grad_norm_ the global gradient norm is <= grad_clip."""
    seen = []
    original = torch.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *args, **kwargs):
        params = list(params)
        before = original(params, max_norm, *args, **kwargs)
        after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params]))
        seen.append((float(before), float(after)))
        return before

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    train_lm(small_model(data.vocab_size), data, small_cfg(max_steps=3, warmup_steps=0,
                                                        grad_clip=1e-3))
    assert len(seen) == 3
    assert all(before > 1e-3 and after <= 1e-3 * 1.001 for before, after in seen)


def test_estimate_loss_uses_eval_mode_and_restores_training_mode(data):
    model = small_model(data.vocab_size, dropout=0.5).train()
    batches = data.fixed_batches("val", 2, 4, 16)
    a, b = estimate_loss(model, batches), estimate_loss(model, batches)
    assert a == b, "dropout must be off during evaluation"
    assert model.training


def test_evaluating_restores_the_mode_even_after_an_error():
    model = torch.nn.Sequential(torch.nn.Dropout(0.5))
    for mode in (True, False):
        model.train(mode)
        with pytest.raises(RuntimeError, match="boom"), evaluating(model):
            assert not model.training
            raise RuntimeError("boom")
        assert model.training is mode


def test_split_loss_is_the_mean_over_every_predicted_token(data):
    """Oracle: cross-entropy summed by hand over consecutive windows, divided by the count."""
    model = small_model(data.vocab_size, dropout=0.5).train()
    T, tokens = 16, data.val
    n = (len(tokens) - 1) // T
    total = 0.0
    with torch.no_grad():
        model.eval()
        for w in range(n):
            x = tokens[w * T:(w + 1) * T][None]  # (1, T)
            y = tokens[w * T + 1:(w + 1) * T + 1]  # (T,)
            logits, _ = model(x)
            total += torch.nn.functional.cross_entropy(logits[0], y, reduction="sum").item()
        model.train()
    got = split_loss(model, tokens, T, batch_size=3)  # a last batch smaller than the others
    assert got == pytest.approx(total / (n * T), rel=1e-5)
    assert model.training, "split_loss must restore training mode"
    assert split_loss(model, tokens, T, batch_size=n) == pytest.approx(got, rel=1e-5)
    with pytest.raises(ValueError, match="fewer than block_size"):
        split_loss(model, tokens[:T], T)


def test_train_equals_a_plain_nanogpt_style_loop(data):
    """Oracle for the whole loop: the textbook loop (forward, backward, clip, AdamW with two
    groups, schedule) on the same start weights and batches gives bit-identical losses."""
    cfg = small_cfg(max_steps=15, eval_interval=15)
    ours, ref = small_model(data.vocab_size, seed=3), small_model(data.vocab_size, seed=3)
    result = train_lm(ours, data, cfg)
    g = torch.Generator().manual_seed(cfg.seed)  # train_lm() draws its batches from this stream
    decay = [p for p in ref.parameters() if p.dim() >= 2]
    rest = [p for p in ref.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": rest, "weight_decay": 0.0}],
                            lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    losses = []
    for step in range(cfg.max_steps):
        for group in opt.param_groups:
            group["lr"] = warmup_cosine_lr(step, max_lr=cfg.lr, min_lr=cfg.min_lr,
                                           warmup_steps=cfg.warmup_steps,
                                           max_steps=cfg.max_steps)
        x, y = data.get_batch("train", cfg.batch_size, 16, g)
        _, loss = ref(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), cfg.grad_clip)
        opt.step()
        losses.append(loss.item())
    assert torch.equal(result.losses, torch.tensor(losses))


# ----- the loop itself: any model that returns (output, loss) ---------------------------------

class Classifier(torch.nn.Module):
    """Logistic regression that follows the loop's contract: model(x, y) -> (logits, loss)."""

    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)

    def forward(self, x, y=None):
        logits = self.linear(x)
        return logits, None if y is None else torch.nn.functional.cross_entropy(logits, y)


def blobs(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 2, generator=g) + 3.0 * (2 * y[:, None] - 1)  # centres at -3 and +3
    return x, y


def test_the_loop_trains_a_classifier_and_reports_in_order():
    torch.manual_seed(0)
    model, (x_val, y_val), g = Classifier(), blobs(500, 1), torch.Generator().manual_seed(2)
    heard = []

    def accuracy() -> dict[str, float]:
        return {"val_accuracy": float((model(x_val)[0].argmax(1) == y_val).float().mean())}

    def next_batch():
        return blobs(32, int(torch.randint(1 << 30, (1,), generator=g)))

    cfg = small_cfg(max_steps=30, eval_interval=10, log_interval=5, warmup_steps=0, lr=0.1)
    state = train(model, next_batch, cfg, evaluate=accuracy,
                  callbacks=[lambda kind, st: heard.append((kind, st.step))], stop_at=25)
    assert heard == [("eval", 0), ("step", 5), ("step", 10), ("eval", 10), ("step", 15),
                     ("step", 20), ("eval", 20), ("step", 25), ("stop", 25)]
    state = train(model, next_batch, cfg, evaluate=accuracy, state=state)  # go on to the end
    assert state.step == 30 and len(state.losses) == 30 and state.items_per_second > 0
    assert [h["step"] for h in state.history] == [0, 10, 20, 30]
    assert state.history[0]["val_accuracy"] < 0.9 < state.history[-1]["val_accuracy"]
    with pytest.raises(ValueError, match="never measured val_loss"):
        _ = state.final_val_loss


def test_batches_from_a_loader_run_epoch_after_epoch():
    from torch.utils.data import DataLoader, TensorDataset

    x = torch.arange(10.0)[:, None]
    loader = DataLoader(TensorDataset(x, x.squeeze(1).long()), batch_size=4, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    next_batch = batches_from(loader, "cpu")
    seen = [next_batch()[1] for _ in range(6)]  # 3 batches an epoch (4, 4, 2): two epochs
    assert [len(b) for b in seen] == [4, 4, 2, 4, 4, 2]
    assert sorted(torch.cat(seen[:3]).tolist()) == sorted(torch.cat(seen[3:]).tolist()) \
        == list(range(10))
    assert not torch.equal(torch.cat(seen[:3]), torch.cat(seen[3:])), "reshuffled each epoch"
    with pytest.raises(ValueError, match="gave no batch"):
        batches_from([])()


def test_state_keeps_every_loss_in_order_through_buffer_growth():
    state = TrainState()
    values = torch.linspace(5.0, 1.0, 2500)            # past two doublings of the buffer
    for v in values:
        state.record(v.clone().requires_grad_(), lr=0.1, items=4, seconds=0.01)
    assert state.step == 2500
    assert torch.equal(state.losses, values)
    assert state.last_loss == pytest.approx(1.0)
    assert not state.losses.requires_grad
    resumed = TrainState(step=3, loss_buffer=torch.tensor([3.0, 2.0, 1.0]))
    resumed.record(torch.tensor(0.5), lr=0.1, items=4, seconds=None)
    assert resumed.losses.tolist() == [3.0, 2.0, 1.0, 0.5]


def test_the_loop_stays_short_enough_to_read_in_a_lesson():
    import inspect

    lines = inspect.getsource(train).splitlines()
    assert len(lines) <= 60, f"train() is {len(lines)} lines; lesson 14 prints it whole"


# ----- checkpoints and exact resume ------------------------------------------------------------

def test_resume_gives_exactly_the_uninterrupted_losses(data, tmp_path):
    """Dropout (torch RNG), random batches (data generator), AdamW moments and the schedule
    must all be restored: the losses match bit for bit."""
    cfg = small_cfg(max_steps=12, eval_interval=4)
    kw = dict(dropout=0.2)
    straight = train_lm(small_model(data.vocab_size, **kw), data, cfg, out_dir=tmp_path / "a")

    part = train_lm(small_model(data.vocab_size, **kw), data, cfg, out_dir=tmp_path / "b",
                 stop_at=6)  # 6 is not an evaluation step: the stop itself checkpoints
    assert part.step == 6 and len(part.losses) == 6
    # a differently initialised model: everything must come from the checkpoint
    resumed = train_lm(small_model(data.vocab_size, seed=99, **kw), data, cfg,
                    out_dir=tmp_path / "b", resume=True)
    assert torch.equal(resumed.losses, straight.losses)
    assert resumed.history == straight.history
    assert resumed.lrs == straight.lrs
    a = load_checkpoint(tmp_path / "a" / CHECKPOINT_NAME)["model"]
    b = load_checkpoint(tmp_path / "b" / CHECKPOINT_NAME)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_checkpoint_is_written_atomically_and_rebuilds_the_model(data, tmp_path):
    model = small_model(data.vocab_size)
    result = train_lm(model, data, small_cfg(), out_dir=tmp_path)
    assert result.extra["checkpoint"] == tmp_path / CHECKPOINT_NAME
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-prev.pt", "ckpt.pt",
                                                         "log.jsonl"]  # no .tmp
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["step"] == 12 and ckpt["tokenizer"] == data.tokenizer.to_dict()
    loaded, tokenizer = load_model(tmp_path / CHECKPOINT_NAME, device="cpu")
    assert tokenizer.encode("to be") == data.tokenizer.encode("to be")
    x = data.get_batch("val", 2, 16, torch.Generator().manual_seed(0))[0]
    assert torch.equal(loaded(x)[0], model.eval()(x)[0])


def test_truncated_or_missing_checkpoint_is_a_clear_error(data, tmp_path):
    train_lm(small_model(data.vocab_size), data, small_cfg(max_steps=4), out_dir=tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(path.read_bytes()[:1000])  # an interrupted copy
    with pytest.raises(ValueError, match=f"{path}.*truncated or corrupt"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        train_lm(small_model(data.vocab_size), data, small_cfg(), out_dir=tmp_path, resume=True)
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nothing.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an slm-course checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_resuming_with_another_vocabulary_or_shape_is_an_error(data, tmp_path):
    train_lm(small_model(data.vocab_size), data, small_cfg(max_steps=4), out_dir=tmp_path)
    with pytest.raises(ValueError, match="vocabulary mismatch"):
        train_lm(small_model(data.vocab_size + 1), data, small_cfg(), out_dir=tmp_path,
              resume=True)
    with pytest.raises(ValueError, match="different model.*n_embd"):
        train_lm(small_model(data.vocab_size, n_embd=32), data, small_cfg(), out_dir=tmp_path,
              resume=True)


def test_a_checkpoint_from_before_a_new_setting_still_resumes(data, tmp_path):
    # GPTConfig grows fields (activation, norm, position, ...); a checkpoint saved without
    # them describes the same model with the defaults, so resuming must work.
    train_lm(small_model(data.vocab_size), data, small_cfg(max_steps=4), out_dir=tmp_path)
    path = tmp_path / CHECKPOINT_NAME
    ckpt = torch.load(path, weights_only=False)
    del ckpt["model_config"]["activation"]
    torch.save(ckpt, path)
    result = train_lm(small_model(data.vocab_size), data, small_cfg(max_steps=6),
                      out_dir=tmp_path, resume=True)
    assert result.step == 6 and len(result.losses) == 6  # steps 5 and 6 ran on top of 1-4


def test_bad_train_configs_are_clear_errors():
    with pytest.raises(ValueError, match="warmup_steps=50 > max_steps=10"):
        small_cfg(max_steps=10, warmup_steps=50)
    with pytest.raises(ValueError, match="min_lr"):
        small_cfg(lr=1e-4, min_lr=1e-3)
    with pytest.raises(ValueError, match="unknown TrainConfig keys"):
        TrainConfig.from_dict({"max_step": 3})
