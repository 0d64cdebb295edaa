"""Checkpoints: everything a run needs to continue exactly, written so a crash loses nothing.

A checkpoint holds the model, the optimizer, the loop's state (step, losses, learning rates,
evaluations), the configs, the tokenizer and the state of every random number generator
(Python, NumPy, PyTorch, CUDA and the data stream), so a run stopped at step k and resumed
gives bit for bit the losses of a run that never stopped. It is written to ``ckpt.pt.tmp``
and renamed over ``ckpt.pt``: an interruption leaves the previous checkpoint whole, and the
one before it stays as ``ckpt-prev.pt`` (a second checkpoint to resume from). A failed write
(a full disk, say) removes the partial file and says what happened.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

CHECKPOINT_NAME = "ckpt.pt"
PREVIOUS_NAME = "ckpt-prev.pt"  # the checkpoint before the last one
CHECKPOINT_FORMAT = "slm-course-checkpoint-v1"
REQUIRED_KEYS = ("format", "step", "model", "optimizer", "model_config", "train_config",
                 "tokenizer", "rng", "losses", "history")


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write ``state`` atomically: to ``path.tmp`` first, then rename over ``path``, so a
    crash mid-write leaves the previous checkpoint intact rather than a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.save(state, tmp)
    except BaseException as err:  # a full disk, or a second Ctrl-C mid-write
        tmp.unlink(missing_ok=True)  # a partial file helps no one
        if isinstance(err, (OSError, RuntimeError)):
            raise _write_error(err, tmp, path) from None
        raise
    if path.exists():  # keep the last checkpoint as the previous one (a hard link: no copy)
        previous = path.with_name(PREVIOUS_NAME if path.name == CHECKPOINT_NAME
                                  else path.stem + "-prev" + path.suffix)
        previous.unlink(missing_ok=True)
        try:
            os.link(path, previous)
        except OSError:
            shutil.copy2(path, previous)
    os.replace(tmp, path)
    return path


def _write_error(err: BaseException, tmp: Path, path: Path) -> OSError:
    """The error for a failed checkpoint write, naming the folder (and a full disk as such:
    PyTorch reports one as "[enforce fail at inline_container.cc] . unexpected pos")."""
    folder = path.parent
    full = getattr(err, "errno", None) == errno.ENOSPC or "unexpected pos" in str(err) \
        or "No space left" in str(err)
    with contextlib.suppress(OSError):
        full = full or shutil.disk_usage(folder).free < 1 << 20
    kept = f"the previous checkpoint {path} is untouched" if path.exists() else \
        "no earlier checkpoint exists"
    if full:
        return OSError(errno.ENOSPC, f"no space left on the device holding {folder} while "
                       f"writing a checkpoint; the partial {tmp.name} was removed and {kept}. "
                       f"Free some space (or choose another --out) and resume with --resume")
    return OSError(getattr(err, "errno", None) or errno.EIO,
                   f"could not write the checkpoint {tmp} ({type(err).__name__}: {err}); the "
                   f"partial file was removed and {kept}")


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :class:`Checkpointer`; a missing, truncated or foreign
    file is an error that names it and says what to do."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; train one first, e.g. "
                                f"`slm-course train --preset shakespeare-char-cpu --out DIR`")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated zip, random bytes, a pickle of something else...
        raise ValueError(
            f"{path} is not a readable checkpoint ({type(err).__name__}: {err}); the file is "
            f"probably truncated or corrupt (an interrupted copy?). Resume from the checkpoint "
            f"before it ({_previous_hint(path)}), or train again") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an slm-course checkpoint (format "
                         f"{ckpt.get('format') if isinstance(ckpt, dict) else None!r}, "
                         f"expected {CHECKPOINT_FORMAT!r})")
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise ValueError(f"{path} is an incomplete checkpoint: it lacks {missing}")
    return ckpt


def _previous_hint(path: Path) -> str:
    previous = path.with_name(PREVIOUS_NAME)
    if path.name == CHECKPOINT_NAME and previous.is_file():
        return f"`mv {previous} {path}`, then --resume"
    return f"none is kept next to it as {PREVIOUS_NAME}"


def load_weights(model: nn.Module, state: dict[str, torch.Tensor], path: Path | str) -> None:
    """``model.load_state_dict(state)`` with an error that says which file did not fit, or
    that its numbers are not finite (a damaged file, or a run that diverged)."""
    bad = [name for name, t in state.items()
           if torch.is_tensor(t) and t.is_floating_point() and not torch.isfinite(t).all()]
    if bad:
        path = Path(path)
        raise ValueError(f"{path} holds non-finite weights (nan or inf) in {len(bad)} "
                         f"tensor(s): {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''}; "
                         f"the file was damaged or the run diverged. Resume from the "
                         f"checkpoint before it ({_previous_hint(path)}), or train again")
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise ValueError(f"the weights in {path} do not fit this model (different vocabulary "
                         f"or shape?): {str(err).splitlines()[0]} ...") from None


def rng_state(data_generator: torch.Generator) -> dict[str, Any]:
    """Every random number generator a step touches, as plain data (weights_only-safe)."""
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": {"kind": np_state[0], "keys": np_state[1].tolist(), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "data": data_generator.get_state(),
    }


def set_rng_state(state: dict[str, Any], data_generator: torch.Generator) -> None:
    """Restore what :func:`rng_state` captured."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state((n["kind"], np.array(n["keys"], dtype=np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    torch.set_rng_state(state["torch"])
    if torch.cuda.is_available() and state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    data_generator.set_state(state["data"])


class Checkpointer:
    """A training-loop callback that writes ``ckpt.pt`` after every evaluation and when a run
    stops early. Under torchrun every process calls it (each one's generators are gathered,
    so every data stream resumes exactly); only rank 0 writes."""

    def __init__(self, path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                 data_generator: torch.Generator, meta: dict[str, Any], *,
                 rank: int = 0, world_size: int = 1):
        self.path, self.model, self.optimizer = Path(path), model, optimizer
        self.data_generator, self.meta = data_generator, meta
        self.rank, self.world_size = rank, world_size
        self.saved: Path | None = None
        self.saved_step = -1

    def __call__(self, kind: str, state: Any) -> None:
        if kind not in ("eval", "stop") or state.step == 0 or state.step == self.saved_step:
            return
        states = [rng_state(self.data_generator)]
        if self.world_size > 1:
            import torch.distributed as dist

            states = [None] * self.world_size
            dist.all_gather_object(states, rng_state(self.data_generator))
        self.saved_step = state.step
        if self.rank != 0:
            return
        self.saved = save_checkpoint({
            "format": CHECKPOINT_FORMAT, "step": state.step,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            **self.meta, "rng": states, "losses": state.losses, "lrs": state.lrs,
            "history": state.history, "world_size": self.world_size,
        }, self.path)
